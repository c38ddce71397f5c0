#!/usr/bin/env bash
# Redis load of agents waiting for a hub-wide throttling slot. One swarm
# process simulates WAITERS identities (default 2000); a broadcast of the
# builtin `ping` with `--fanout 1` makes every identity wait for the single
# slot, which the bench holds itself (a far-future lease in the slot set)
# while it counts Redis commands for SECONDS (default 5) from
# `INFO stats` total_commands_processed. Then it frees the slot (as a
# release does: lease removed, one token on the wake list) and times the
# rest of the run. Two modes, each against its own private redis-server:
#  - blocking: waiters block on the wake list (BLPOP), the default;
#  - polling: the agents' Redis user may not BLPOP, so waiters fall back to
#    trying every 40-80 ms, which is how every waiter behaved before
#    wake-ups existed.
# One JSON line per mode.
#   bash bench/hub-throttle.sh
#   WAITERS=500 SECONDS_MEASURED=3 bash bench/hub-throttle.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/muster
WAITERS=${WAITERS:-2000}
MEASURE=${SECONDS_MEASURED:-5}
ulimit -n 65536 2>/dev/null || true
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }

work=$(mktemp -d)
redis_pid="" swarm_pid="" station_pid=""
stop_all() {
  for p in $station_pid $swarm_pid $redis_pid; do kill "$p" 2>/dev/null || true; done
  for p in $station_pid $swarm_pid $redis_pid; do wait "$p" 2>/dev/null || true; done
  redis_pid="" swarm_pid="" station_pid=""
}
trap 'stop_all; rm -rf "$work"' EXIT

"$BIN" hub keygen station --out "$work/keys" >/dev/null
"$BIN" hub keygen network --out "$work/keys" >/dev/null

measure() { # mode
  local mode=$1 port
  port=$(( 20000 + RANDOM % 30000 ))
  mkdir -p "$work/$mode"
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$work/$mode" \
    --maxclients 20000 >/dev/null &
  redis_pid=$!
  cli() { redis-cli -p "$port" "$@"; }
  for _ in $(seq 1 100); do cli ping >/dev/null 2>&1 && break; sleep 0.05; done
  local url="redis://127.0.0.1:$port" state=$work/$mode/station sw=$work/$mode/swarm agent_url
  agent_url=$url
  if [ "$mode" = polling ]; then
    # The agents' user may not BLPOP (the station's may), so they poll.
    cli acl setuser waiter on '>bench' '~*' '&*' +@all -blpop >/dev/null
    agent_url="redis://waiter:bench@127.0.0.1:$port"
  fi
  mkdir -p "$state/hub" "$sw"
  cp "$work/keys/station.key" "$work/keys/network.pub" "$state/hub/"
  printf '[hub]\nurl = "%s"\nchannel = "bench"\n' "$url" >"$state/dispatcher.toml"
  printf 'name = "swarm"\nstate_dir = "."\ntls = false\n[hub]\nurl = "%s"\nchannel = "bench"\nstation_key = "%s"\nnetwork_key = "%s"\n' \
    "$agent_url" "$work/keys/station.pub" "$work/keys/network.key" >"$sw/agent.toml"
  (cd "$sw" && exec "$BIN" hub swarm --config "$sw/agent.toml" --count "$WAITERS" 2>"$sw/log") &
  swarm_pid=$!
  for _ in $(seq 1 300); do [ "$(cli PUBSUB NUMSUB muster/bench/requests | tail -1)" -ge 1 ] && break; sleep 0.1; done

  "$BIN" --state-dir "$state" run all --via hub --no-discovery --fanout 1 --expect "$WAITERS" \
    --reply-wait 120 --output json -- ping >"$work/$mode/out" 2>"$work/$mode/err" &
  station_pid=$!
  # The slot set appears with the first lease; hold the only slot from then on.
  local key=""
  for _ in $(seq 1 500); do
    key=$(cli --scan --pattern '*:slots' | head -1)
    [ -n "$key" ] && break
    sleep 0.01
  done
  [ -n "$key" ] || { echo "$mode: no slot set appeared" >&2; cat "$work/$mode/err" >&2; exit 1; }
  cli zadd "$key" 99999999999999 bench-holder >/dev/null
  sleep 2 # every identity reaches its wait
  local done_before c0 c1 t0 t1 waiting
  done_before=$(grep -c '"event":"end"' "$work/$mode/out" || true)
  waiting=$((WAITERS - done_before))
  c0=$(cli info stats | awk -F: '/^total_commands_processed/ {print $2+0}')
  t0=$(date +%s%N)
  sleep "$MEASURE"
  c1=$(cli info stats | awk -F: '/^total_commands_processed/ {print $2+0}')
  t1=$(date +%s%N)
  local clients
  clients=$(cli info clients | awk -F: '/^connected_clients/ {print $2+0}')
  # Free the slot as a release does.
  local r0 r1 rc=0
  r0=$(date +%s%N)
  cli zrem "$key" bench-holder >/dev/null
  cli lpush "$key:wake" 1 >/dev/null
  wait "$station_pid" || rc=$?
  r1=$(date +%s%N)
  station_pid=""
  local ended
  ended=$(grep -c '"event":"end"' "$work/$mode/out" || true)
  [ "$rc" -eq 0 ] && [ "$ended" -eq "$WAITERS" ] || { echo "$mode: run failed (exit $rc, $ended of $WAITERS)" >&2; tail -3 "$work/$mode/err" >&2; tail -5 "$sw/log" >&2; exit 1; }
  local rss
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$swarm_pid/status")
  awk -v mode="$mode" -v w="$WAITERS" -v waiting="$waiting" -v c="$((c1 - c0))" -v dt="$((t1 - t0))" \
    -v drain="$((r1 - r0))" -v clients="$clients" -v rss="$rss" 'BEGIN {
    s = dt / 1e9
    printf "{\"bench\":\"hub-throttle\",\"mode\":\"%s\",\"identities\":%d,\"waiting\":%d,\"measured_s\":%.2f,\"redis_commands_per_sec\":%.0f,\"redis_clients\":%d,\"drain_s\":%.3f,\"swarm_rss_kib\":%d}\n", mode, w, waiting, s, c / s, clients, drain / 1e9, rss
  }'
  stop_all
}

for mode in ${MODES:-polling blocking}; do measure "$mode"; done
