# Sourced by the hub benches (hub.sh, hub-scale.sh); needs BIN set.
# Sets up a private redis-server on a free port in a temp dir ($work,
# $port, $url), station and network keys, a station state dir ($state)
# whose dispatcher.toml points at it, and helpers to write hub agents'
# configs and wait for their subscriptions. Everything started is stopped
# by its pid on exit: agents listed in $pids, then the redis-server.
work=$(mktemp -d)
pids=()
redis_pid=""
stop_agents() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
cleanup() {
  stop_agents
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(( 20000 + RANDOM % 30000 ))
redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$work" --maxclients 20000 >/dev/null &
redis_pid=$!
cli() { redis-cli -p "$port" "$@"; }
for _ in $(seq 1 100); do cli ping >/dev/null 2>&1 && break; sleep 0.05; done
url="redis://127.0.0.1:$port"

"$BIN" hub keygen station --out "$work/keys" >/dev/null
"$BIN" hub keygen network --out "$work/keys" >/dev/null
state=$work/station
mkdir -p "$state/hub"
cp "$work/keys/station.key" "$work/keys/network.pub" "$state/hub/"
printf '[hub]\nurl = "%s"\nchannel = "bench"\n' "$url" >"$state/dispatcher.toml"

agent_conf() { # name dir
  mkdir -p "$2"
  echo "true = /bin/true" >"$2/scripts.conf"
  printf 'name = "%s"\nstate_dir = "."\ntls = false\n[hub]\nurl = "%s"\nchannel = "bench"\nstation_key = "%s"\nnetwork_key = "%s"\n' \
    "$1" "$url" "$work/keys/station.pub" "$work/keys/network.key" >"$2/agent.toml"
}
subscribers() { cli PUBSUB NUMSUB muster/bench/requests | tail -1; }
wait_subscribers() { # count [tenths of a second to give up after, default 600]
  for _ in $(seq 1 "${2:-600}"); do [ "$(subscribers)" -ge "$1" ] && return; sleep 0.1; done
  echo "only $(subscribers) of $1 subscribed" >&2; exit 1
}
