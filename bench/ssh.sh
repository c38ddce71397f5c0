#!/usr/bin/env bash
# SSH benchmark: N hosts, each a real sshd on its own 127.20.x.y address
# (one sshd per address), `muster run all --via ssh -- true` timed on the
# first run (the agent is copied to every host) and on later runs (already
# installed, connections multiplexed), then through a resident daemon
# (sessions kept open). Beside it, the same N hosts as mTLS agents, run
# directly and through the daemon. One JSON line per case.
# Each remote step runs the host user's login shell: on a machine whose
# ~/.bashrc is heavy (pyenv init forks hundreds of processes) that shell
# dominates the SSH figures; the daemon cases pay it once per host.
#   bash bench/ssh.sh          # N = 100
#   N=20 RUNS=3 bash bench/ssh.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/muster
N=${N:-100}
RUNS=${RUNS:-5}
ulimit -n 65536 2>/dev/null || true
mkdir -p /run/sshd 2>/dev/null || true

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
stats() { sort -g | awk '{a[NR]=$1} END {printf "%s %s %s", a[int((NR+1)/2)], a[1], a[NR]}'; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", (b-a)/1e9}'; }

ssh-keygen -q -t ed25519 -N '' -f "$work/hostkey"
ssh-keygen -q -t ed25519 -N '' -f "$work/userkey"
cp "$work/userkey.pub" "$work/authorized_keys"
port=22$((RANDOM % 90 + 10))
mkdir -p "$work/config"
{
  echo "[defaults]"
  echo "ssh_options = [\"-F\", \"/dev/null\", \"-o\", \"StrictHostKeyChecking=no\", \"-o\", \"UserKnownHostsFile=$work/known\", \"-o\", \"LogLevel=ERROR\", \"-i\", \"$work/userkey\", \"-p\", \"$port\"]"
} > "$work/config/ssh.toml"
for i in $(seq 1 "$N"); do
  addr="127.20.$((i / 200)).$((i % 200 + 1))"
  cat > "$work/sshd$i.conf" <<CONF
Port $port
ListenAddress $addr
HostKey $work/hostkey
AuthorizedKeysFile $work/authorized_keys
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
PidFile $work/sshd$i.pid
CONF
  /usr/sbin/sshd -D -e -f "$work/sshd$i.conf" 2>>"$work/sshd.log" &
  pids+=($!)
  printf '[hosts.h%03d]\naddress = "root@%s"\ninstall_dir = "%s/lib/h%03d"\n' "$i" "$addr" "$work" "$i" >> "$work/config/ssh.toml"
done
export MUSTER_CONFIG=$work/config
state=$work/ssh-state
for _ in $(seq 1 100); do
  ok=1; for i in 1 "$N"; do (exec 3<>/dev/tcp/127.20.$((i / 200)).$((i % 200 + 1))/$port) 2>/dev/null || ok=0; done
  [ $ok = 1 ] && break; sleep 0.1
done

run() {  # run ARGS...: wall seconds of one `muster run`, failing loudly
  local t0 t1 rc=0
  t0=$(now); "$BIN" --state-dir "$state" run all "$@" >/dev/null 2>"$work/err" || rc=$?; t1=$(now)
  [ "$rc" -eq 0 ] || { echo "run failed (exit $rc):" >&2; tail -5 "$work/err" >&2; exit 1; }
  secs "$t0" "$t1"
}
line() {  # line CASE HOSTS VALUES...
  local case=$1 hosts=$2; shift 2
  read -r med min max <<<"$(printf '%s\n' "$@" | stats)"
  printf '{"bench":"ssh","case":"%s","hosts":%d,"runs":%d,"wall_s":{"median":%s,"min":%s,"max":%s}}\n' "$case" "$hosts" "$#" "$med" "$min" "$max"
}

first=$(run --via ssh --no-daemon -- true)
line ssh-first-run-installs "$N" "$first"
walls=(); for _ in $(seq 1 "$RUNS"); do walls+=("$(run --via ssh --no-daemon -- true)"); done
line ssh-later-runs "$N" "${walls[@]}"
"$BIN" --state-dir "$state" daemon 2>"$work/daemon.err" & dpid=$!; pids+=($dpid)
for _ in $(seq 1 100); do [ -S "$state/daemon/daemon.sock" ] && break; sleep 0.1; done
first=$(run --via ssh -- true)
line ssh-daemon-first "$N" "$first"
walls=(); for _ in $(seq 1 "$RUNS"); do walls+=("$(run --via ssh -- true)"); done
line ssh-daemon-later "$N" "${walls[@]}"
kill $dpid; wait $dpid 2>/dev/null || true

# The same hosts as mTLS agents.
state=$work/tls-state
"$BIN" --state-dir "$state" ca init --id bench >/dev/null
for i in $(seq 1 "$N"); do
  name=$(printf 'h%03d' "$i")
  dir=$work/agents/$name
  "$BIN" --state-dir "$state" ca issue-agent "$name" --addr "127.21.$((i / 200)).$((i % 200 + 1)):7443" --out "$dir" >/dev/null
  echo "true = /bin/true" > "$dir/scripts.conf"
  "$BIN" agent serve --config "$dir/agent.toml" 2>"$dir/log" &
  pids+=($!)
done
for _ in $(seq 1 100); do "$BIN" --state-dir "$state" ping all >/dev/null 2>&1 && break; sleep 0.2; done
walls=(); for _ in $(seq 1 "$RUNS"); do walls+=("$(run --no-daemon -- true)"); done
line tls-direct "$N" "${walls[@]}"
"$BIN" --state-dir "$state" daemon 2>"$work/daemon2.err" & dpid=$!; pids+=($dpid)
for _ in $(seq 1 100); do [ -S "$state/daemon/daemon.sock" ] && break; sleep 0.1; done
first=$(run -- true)
line tls-daemon-first "$N" "$first"
walls=(); for _ in $(seq 1 "$RUNS"); do walls+=("$(run -- true)"); done
line tls-daemon-later "$N" "${walls[@]}"
