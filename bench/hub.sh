#!/usr/bin/env bash
# Hub benchmark against a private redis-server:
#  - N real agent processes (hub only), `muster run all --via hub -- true`
#    timed over several runs: wall (median/min/max), station CPU (median),
#    agent idle RSS (median/max) and the agents' total CPU over 5 idle seconds;
#  - swarm mode: one process simulating COUNT identities, all answering one
#    broadcast of the builtin `ping`.
# One JSON line per measurement.
#   bash bench/hub.sh                      # N = 200 and 1000, swarm 10000
#   RUNS=3 SWARM=2000 bash bench/hub.sh 50
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/muster
RUNS=${RUNS:-5}
SWARM=${SWARM:-10000}
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(200 1000)
ulimit -n 65536 2>/dev/null || true
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }

. bench/hub-fleet.sh
stats() { sort -g | awk '{a[NR]=$1} END {printf "%s %s %s", a[int((NR+1)/2)], a[1], a[NR]}'; }
child_cpu() { times >"$work/times"; CPU=$(tail -1 "$work/times" | awk '{ s=0; for (i=1;i<=2;i++) { split($i,p,"m"); sub("s","",p[2]); s+=p[1]*60+p[2] } print s }'); }
proc_cpu() { awk '{print ($14+$15)/100}' "/proc/$1/stat" 2>/dev/null || echo 0; }

timed_runs() { # expect action -> sets WALL CPUS arrays
  walls=(); cpus=()
  "$BIN" --state-dir "$state" run all --via hub --no-discovery --expect "$1" --output json -- "$2" >/dev/null 2>&1 || true
  for _ in $(seq 1 "$RUNS"); do
    child_cpu; c0=$CPU; t0=$(date +%s%N)
    rc=0; "$BIN" --state-dir "$state" run all --via hub --no-discovery --expect "$1" --output json -- "$2" >"$work/out" 2>"$work/err" || rc=$?
    t1=$(date +%s%N); child_cpu; c1=$CPU
    got=$(grep -c '"event":"end"' "$work/out" || true)
    [ "$rc" -eq 0 ] && [ "$got" -eq "$1" ] || { echo "run failed (exit $rc, $got of $1 answered):" >&2; tail -3 "$work/err" >&2; exit 1; }
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')")
    cpus+=("$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.3f", b-a}')")
  done
  read -r wmed wmin wmax <<<"$(printf '%s\n' "${walls[@]}" | stats)"
  read -r cmed _ _ <<<"$(printf '%s\n' "${cpus[@]}" | stats)"
}

for n in "${SIZES[@]}"; do
  stop_agents
  for i in $(seq 0 $((n - 1))); do
    name=$(printf 'h%04d' "$i"); dir=$work/a$n/$name
    agent_conf "$name" "$dir"
    "$BIN" agent serve --config "$dir/agent.toml" 2>"$dir/log" &
    pids+=($!)
  done
  wait_subscribers "$n"
  timed_runs "$n" true
  sleep 1
  idle0=0; for p in "${pids[@]}"; do idle0=$(awk -v a="$idle0" -v b="$(proc_cpu "$p")" 'BEGIN{print a+b}'); done
  sleep 5
  idle1=0; for p in "${pids[@]}"; do idle1=$(awk -v a="$idle1" -v b="$(proc_cpu "$p")" 'BEGIN{print a+b}'); done
  read -r rmed _ rmax <<<"$(for p in "${pids[@]}"; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | stats)"
  printf '{"bench":"hub","agents":%d,"runs":%d,"wall_s":{"median":%s,"min":%s,"max":%s},"station_cpu_s":%s,"agent_idle_rss_kib":{"median":%s,"max":%s},"agents_idle_cpu_s_per_5s":%s}\n' \
    "$n" "$RUNS" "$wmed" "$wmin" "$wmax" "$cmed" "$rmed" "$rmax" "$(awk -v a="$idle0" -v b="$idle1" 'BEGIN{printf "%.2f", b-a}')"
done
stop_agents

if [ "$SWARM" -gt 0 ]; then
  agent_conf swarm "$work/swarm"
  "$BIN" hub swarm --config "$work/swarm/agent.toml" --count "$SWARM" 2>"$work/swarm/log" &
  pids+=($!)
  wait_subscribers 1
  sleep 0.5
  timed_runs "$SWARM" ping
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/${pids[0]}/status")
  printf '{"bench":"hub-swarm","identities":%d,"runs":%d,"wall_s":{"median":%s,"min":%s,"max":%s},"station_cpu_s":%s,"swarm_rss_kib":%s}\n' \
    "$SWARM" "$RUNS" "$wmed" "$wmin" "$wmax" "$cmed" "$rss"
fi
