#!/usr/bin/env bash
# ns8 agent throughput: a private redis-server on a free port, one
# `muster ns8-agent` (release build) with a no-op action, N tasks pushed at
# once (default 1000), timed from the push to the last result. Prints one
# JSON line: tasks per second, agent RSS after the run and its peak, and
# how the tasks ended (exit codes), the agent's CPU time, Redis commands per
# task, and the spawn floor (the same step started N times from 2 shells).
#   bash bench/ns8.sh            # N = 1000
#   N=200 bash bench/ns8.sh
# MAX_CONCURRENCY (default 32, as the original) and OVERLOAD_SLEEP (20ms
# here, so a burst is throttled rather than parked for a polling interval)
# are passed to the agent.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/muster
N=${N:-1000}
ID=module/bench
command -v redis-server >/dev/null || { echo "redis-server is needed (apt-get install redis-server)" >&2; exit 1; }
command -v redis-cli >/dev/null || { echo "redis-cli is needed (apt-get install redis-tools)" >&2; exit 1; }

work=$(mktemp -d)
redis_pid="" agent_pid=""
cleanup() {
  [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A free port: ask the kernel for one, then let redis bind it.
port=$(bash -c 'for p in $(shuf -i 20000-60000 -n 50); do (echo >/dev/tcp/127.0.0.1/$p) 2>/dev/null || { echo $p; break; }; done')
redis-server --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$work" >/dev/null 2>&1 &
redis_pid=$!
cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
for _ in $(seq 100); do cli ping >/dev/null 2>&1 && break; sleep 0.05; done

mkdir -p "$work/actions/noop" "$work/state"
printf '#!/bin/sh\nexit 0\n' >"$work/actions/noop/10noop"
chmod +x "$work/actions/noop/10noop"
echo "BENCH=1" >"$work/state/environment"

(cd "$work/state" && REDIS_ADDRESS=127.0.0.1:$port MAX_CONCURRENCY=${MAX_CONCURRENCY:-32} \
  OVERLOAD_SLEEP=${OVERLOAD_SLEEP:-20ms} exec "$BIN" ns8-agent --agentid=$ID --actionsdir="$work/actions" \
  2>"$work/agent.log") &
agent_pid=$!
for _ in $(seq 100); do cli client list | grep -q "name=$ID" && break; sleep 0.05; done

# All N pushes in one pipeline (RESP), then wait for N exit codes.
resp() { printf '*%d\r\n' $#; for a in "$@"; do printf '$%d\r\n%s\r\n' ${#a} "$a"; done; }
for i in $(seq 1 "$N"); do
  resp lpush "$ID/tasks" "{\"id\":\"t$i\",\"action\":\"noop\",\"data\":{},\"extra\":{}}"
done >"$work/push.resp"
start=$(date +%s.%N)
cli --pipe <"$work/push.resp" >/dev/null
# 4 keys per task (context, output, error, exit_code) plus the environment hash.
until [ "$(cli dbsize)" -ge $((4 * N + 1)) ]; do sleep 0.01; done
end=$(date +%s.%N)

rss=$(awk '/^VmRSS/ {print $2}' /proc/$agent_pid/status)
peak=$(awk '/^VmHWM/ {print $2}' /proc/$agent_pid/status)
cpu=$(awk '{printf "%.2f", ($14+$15)/100}' /proc/$agent_pid/stat)
calls=$(cli info stats | awk -F: '/^total_commands_processed/ {print $2+0}')
codes=$(for i in $(seq 1 "$N"); do echo "get task/$ID/t$i/exit_code"; done | cli | sort | uniq -c |
  awk '{printf "%s\"%s\":%s", (NR>1?",":""), $2, $1}')
kill -USR1 "$agent_pid"
wait "$agent_pid" || true
agent_pid=""
# The floor on this machine, measured in the same run: the same step file
# started N times from two shells at once (fork+exec, no Redis, no agent).
f0=$(date +%s.%N)
floor_pids=()
for _ in 1 2; do (for _ in $(seq 1 $((N / 2))); do "$work/actions/noop/10noop" </dev/null; done) & floor_pids+=($!); done
wait "${floor_pids[@]}"
f1=$(date +%s.%N)
floor=$(awk -v n="$N" -v a="$f0" -v b="$f1" 'BEGIN { printf "%.1f", n / (b - a) }')
awk -v n="$N" -v s="$start" -v e="$end" -v rss="$rss" -v peak="$peak" -v codes="$codes" -v cpu="$cpu" -v calls="$calls" -v floor="$floor" 'BEGIN {
  d = e - s
  printf "{\"bench\":\"ns8\",\"tasks\":%d,\"seconds\":%.3f,\"tasks_per_sec\":%.1f,\"spawn_floor_per_sec\":%s,\"agent_rss_kib\":%d,\"agent_peak_rss_kib\":%d,\"agent_cpu_s\":%s,\"redis_commands_per_task\":%.1f,\"exit_codes\":{%s}}\n", n, d, n / d, floor, rss, peak, cpu, calls / n, codes
}'
