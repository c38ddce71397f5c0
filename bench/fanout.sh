#!/usr/bin/env bash
# Fan-out benchmark: N real agent processes on loopback (distinct
# 127.10.x.y addresses), `muster run all -- true` timed over several runs.
# Prints one JSON line per N: wall seconds (median/min/max), dispatcher CPU
# seconds (median), agent idle RSS in KiB (median/max) before the timed runs
# and after them, and the spawn floor of the same run: N × fork+exec of
# /bin/true from 2 shells at once (what the agents' own `true` costs, with
# no TLS and no dispatcher), with the median wall as a multiple of it.
#   bash bench/fanout.sh            # N = 100 and 1000, 5 runs each
#   RUNS=3 bash bench/fanout.sh 10 100
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/muster
RUNS=${RUNS:-5}
SIZES=("$@"); [ ${#SIZES[@]} -gt 0 ] || SIZES=(100 1000)
ulimit -n 65536 2>/dev/null || true

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# median / min / max of the numbers on stdin
stats() { sort -g | awk '{a[NR]=$1} END {printf "%s %s %s", a[int((NR+1)/2)], a[1], a[NR]}'; }
# children's user+sys CPU seconds so far, from the `times` builtin
# (`times` must run in this shell, not a subshell, to see our children; sets CPU)
child_cpu() {
  times >"$work/times"
  CPU=$(tail -1 "$work/times" | awk '{ s=0; for (i=1;i<=2;i++) { split($i,p,"m"); sub("s","",p[2]); s+=p[1]*60+p[2] } print s }')
}

for n in "${SIZES[@]}"; do
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
  state=$work/d$n; rm -rf "$state"
  "$BIN" --state-dir "$state" ca init --id bench >/dev/null
  for i in $(seq 0 $((n - 1))); do
    name=$(printf 'h%04d' "$i")
    addr="127.10.$((i / 200)).$((i % 200 + 2)):7443"
    dir=$work/a$n/$name
    "$BIN" --state-dir "$state" ca issue-agent "$name" --addr "$addr" --out "$dir" >/dev/null
    echo "true = /bin/true" > "$dir/scripts.conf"
    "$BIN" agent serve --config "$dir/agent.toml" 2>"$dir/log" &
    pids+=($!)
  done
  # wait until every agent answers a ping
  for _ in $(seq 1 100); do
    "$BIN" --state-dir "$state" ping all >/dev/null 2>&1 && break
    sleep 0.2
  done
  sleep 1
  rss_before=$(for p in "${pids[@]}"; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | stats)
  walls=(); cpus=()
  "$BIN" --state-dir "$state" run all --output json -- true >/dev/null 2>&1 || true   # warm-up
  for _ in $(seq 1 "$RUNS"); do
    child_cpu; c0=$CPU; t0=$(date +%s%N)
    rc=0; "$BIN" --state-dir "$state" run all --output json -- true >/dev/null 2>"$work/err" || rc=$?
    t1=$(date +%s%N); child_cpu; c1=$CPU
    [ "$rc" -eq 0 ] || { echo "run failed (exit $rc):" >&2; tail -5 "$work/err" >&2; exit 1; }
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')")
    cpus+=("$(awk -v a="$c0" -v b="$c1" 'BEGIN{printf "%.3f", b-a}')")
  done
  sleep 1
  rss=$(for p in "${pids[@]}"; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | stats)
  read -r wmed wmin wmax <<<"$(printf '%s\n' "${walls[@]}" | stats)"
  read -r cmed _ _ <<<"$(printf '%s\n' "${cpus[@]}" | stats)"
  read -r rmed _ rmax <<<"$rss"
  read -r bmed _ bmax <<<"$rss_before"
  f0=$(date +%s%N)
  floor_pids=()
  for _ in 1 2; do (for _ in $(seq 1 $((n / 2))); do /bin/true; done) & floor_pids+=($!); done
  wait "${floor_pids[@]}"
  f1=$(date +%s%N)
  floor=$(awk -v a="$f0" -v b="$f1" 'BEGIN{printf "%.3f", (b-a)/1e9}')
  ratio=$(awk -v w="$wmed" -v f="$floor" 'BEGIN{printf "%.2f", w/f}')
  printf '{"bench":"fanout","agents":%d,"runs":%d,"wall_s":{"median":%s,"min":%s,"max":%s},"dispatcher_cpu_s":%s,"spawn_floor_s":%s,"wall_over_floor":%s,"agent_idle_rss_kib":{"before_runs":{"median":%s,"max":%s},"after_runs":{"median":%s,"max":%s}}}\n' \
    "$n" "$RUNS" "$wmed" "$wmin" "$wmax" "$cmed" "$floor" "$ratio" "$bmed" "$bmax" "$rmed" "$rmax"
done
