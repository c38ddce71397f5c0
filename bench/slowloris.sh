#!/usr/bin/env bash
# Slow-loris benchmark: one real agent, PEERS connections held open against
# it (half idle, half dribbling the first bytes of a TLS ClientHello, one
# byte per second), then `muster run a1 -- true` timed RUNS times while
# they hold. Prints one JSON line: peers held, run latency in seconds
# (median/min/max), failures, and the agent's open fds and RSS under load.
#   bash bench/slowloris.sh            # 1000 peers, 10 runs
#   PEERS=3000 RUNS=20 bash bench/slowloris.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/muster
PEERS=${PEERS:-1000}
RUNS=${RUNS:-10}
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
stats() { sort -g | awk '{a[NR]=$1} END {printf "%s %s %s", a[int((NR+1)/2)], a[1], a[NR]}'; }

addr=127.0.0.$((RANDOM % 200 + 20)):17443
"$BIN" --state-dir "$work/d" ca init --id bench >/dev/null
"$BIN" --state-dir "$work/d" ca issue-agent a1 --addr "$addr" --out "$work/a1" >/dev/null
echo "true = /bin/true" > "$work/a1/scripts.conf"
"$BIN" agent serve --config "$work/a1/agent.toml" 2>"$work/agent.log" &
agent=$!; pids+=("$agent")
for _ in $(seq 1 100); do "$BIN" --state-dir "$work/d" ping a1 >/dev/null 2>&1 && break; sleep 0.1; done

python3 - "$addr" "$PEERS" >"$work/held" <<'PY' &
import socket, sys, time
host, port = sys.argv[1].rsplit(":", 1)
hello = bytes([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03])
socks, slow = [], []
for i in range(int(sys.argv[2])):
    try:
        s = socket.create_connection((host, int(port)), timeout=2)
    except OSError:
        continue
    socks.append(s)
    if i % 2:
        slow.append(s)
print(len(socks), flush=True)
step = 0
while True:
    # one more byte per slow peer per second; reconnect any that were dropped
    for i, s in enumerate(list(socks)):
        try:
            if s in slow:
                s.send(hello[step % len(hello):step % len(hello) + 1])
        except OSError:
            s.close()
            try:
                socks[i] = socket.create_connection((host, int(port)), timeout=2)
            except OSError:
                pass
    step += 1
    time.sleep(1)
PY
pids+=($!)
for _ in $(seq 1 100); do [ -s "$work/held" ] && break; sleep 0.1; done
held=$(head -1 "$work/held")
sleep 1

lat=(); fails=0
for _ in $(seq 1 "$RUNS"); do
  t0=$(date +%s%N)
  "$BIN" --state-dir "$work/d" run a1 --output json -- true >/dev/null 2>"$work/err" || fails=$((fails + 1))
  t1=$(date +%s%N)
  lat+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", (b-a)/1e9}')")
done
fds=$(ls /proc/"$agent"/fd | wc -l)
rss=$(awk '/^VmRSS/ {print $2}' /proc/"$agent"/status)
read -r med min max <<<"$(printf '%s\n' "${lat[@]}" | stats)"
printf '{"bench":"slowloris","peers_held":%s,"runs":%d,"failures":%d,"run_latency_s":{"median":%s,"min":%s,"max":%s},"agent_open_fds":%s,"agent_rss_kib":%s}\n' \
  "$held" "$RUNS" "$fails" "$med" "$min" "$max" "$fds" "$rss"
