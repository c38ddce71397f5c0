#!/usr/bin/env bash
# Per-agent costs of the hub, the inputs of the scale model in
# docs/performance.md, against a private redis-server:
#  - AGENTS real hub agents (default 200): Redis memory and connections per
#    subscribed agent (`INFO memory` used_memory and connected_clients
#    before and after they subscribe, just after and once Redis has shrunk
#    the idle clients' buffers), Redis bytes in and out per agent for one
#    run of `true` (the command published to each, its replies pushed and
#    read back), and their idle RSS after a run;
#  - one swarm process per size in SWARMS (default "10000 50000"), every
#    identity answering one broadcast of the builtin `ping`: wall, station
#    CPU and peak RSS, station CPU per reply, Redis bytes in and out per
#    reply (`INFO stats`: the one command published, the replies pushed,
#    read back and the station's reads), and the swarm's RSS per identity.
#    The station waits for every identity (`--expect`, with a long
#    `--minimum-wait`): one swarm process answers only about 15,000
#    identities a second, slower than the station reads.
# One JSON line per measurement.
#   bash bench/hub-scale.sh
#   AGENTS=50 SWARMS="2000" RUNS=1 bash bench/hub-scale.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q
BIN=$PWD/target/release/muster
RUNS=${RUNS:-3}
AGENTS=${AGENTS:-200}
read -r -a SWARMS <<<"${SWARMS:-10000 50000}"
ulimit -n 65536 2>/dev/null || true
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }

. bench/hub-fleet.sh
info() { cli INFO "$1" | tr -d '\r' | awk -F: -v k="$2" '$1 == k {print $2}'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

# Real agents: what one subscribed agent costs Redis.
mem0=$(info memory used_memory); clients0=$(info clients connected_clients)
for i in $(seq 0 $((AGENTS - 1))); do
  name=$(printf 'h%04d' "$i"); dir=$work/agents/$name
  agent_conf "$name" "$dir"
  "$BIN" agent serve --config "$dir/agent.toml" 2>"$dir/log" &
  pids+=($!)
done
wait_subscribers "$AGENTS" 1200
# Each agent also opens its command connection right after subscribing.
for _ in $(seq 1 200); do [ "$(info clients connected_clients)" -ge $((clients0 + 2 * AGENTS)) ] && break; sleep 0.1; done
sleep 1
mem1=$(info memory used_memory); clients1=$(info clients connected_clients)
# Redis shrinks the buffers of clients idle for a few seconds: what an idle
# fleet costs is the settled figure.
sleep 10
mem2=$(info memory used_memory)
i0=$(info stats total_net_input_bytes); o0=$(info stats total_net_output_bytes)
"$BIN" --state-dir "$state" run all --via hub --no-discovery --expect "$AGENTS" --output json -- true >/dev/null 2>&1
i1=$(info stats total_net_input_bytes); o1=$(info stats total_net_output_bytes)
sleep 1
rss=$(for p in "${pids[@]}"; do awk '/^VmRSS/ {print $2}' "/proc/$p/status"; done | median)
printf '{"bench":"hub-scale","part":"agents","agents":%d,"redis_bytes_per_agent":{"just_subscribed":%d,"settled":%d},"redis_clients_per_agent":%.1f,"redis_bytes_per_agent_per_run":{"in":%d,"out":%d},"agent_idle_rss_kib_after_run":%s}\n' \
  "$AGENTS" $(((mem1 - mem0) / AGENTS)) $(((mem2 - mem0) / AGENTS)) "$(awk -v a="$clients0" -v b="$clients1" -v n="$AGENTS" 'BEGIN{print (b-a)/n}')" \
  $(((i1 - i0) / AGENTS)) $(((o1 - o0) / AGENTS)) "$rss"
stop_agents

# Swarms: what one reply costs the station and Redis.
for s in "${SWARMS[@]}"; do
  agent_conf swarm "$work/swarm$s"
  "$BIN" hub swarm --config "$work/swarm$s/agent.toml" --count "$s" 2>"$work/swarm$s/log" &
  pids+=($!)
  wait_subscribers 1 1200
  sleep 0.5
  "$BIN" --state-dir "$state" run all --via hub --no-discovery --expect "$s" --minimum-wait 120 --output json -- ping >/dev/null 2>&1 || true
  walls=(); cpus=(); peaks=(); ins=(); outs=()
  for _ in $(seq 1 "$RUNS"); do
    cli CONFIG RESETSTAT >/dev/null
    i0=$(info stats total_net_input_bytes); o0=$(info stats total_net_output_bytes)
    t0=$(date +%s%N)
    rc=0
    /usr/bin/time -f '%U %S %M' -o "$work/time" \
      "$BIN" --state-dir "$state" run all --via hub --no-discovery --expect "$s" --minimum-wait 120 --output json -- ping \
      >"$work/out" 2>"$work/err" || rc=$?
    t1=$(date +%s%N)
    got=$(grep -c '"event":"end"' "$work/out" || true)
    [ "$rc" -eq 0 ] && [ "$got" -eq "$s" ] || { echo "swarm run failed (exit $rc, $got of $s answered):" >&2; tail -3 "$work/err" >&2; exit 1; }
    read -r u sy m <"$work/time"
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')")
    cpus+=("$(awk -v a="$u" -v b="$sy" 'BEGIN{printf "%.2f", a+b}')")
    peaks+=("$m")
    ins+=("$(($(info stats total_net_input_bytes) - i0))")
    outs+=("$(($(info stats total_net_output_bytes) - o0))")
  done
  sw_rss=$(awk '/^VmRSS/ {print $2}' "/proc/${pids[0]}/status")
  wall=$(printf '%s\n' "${walls[@]}" | median); cpu=$(printf '%s\n' "${cpus[@]}" | median)
  peak=$(printf '%s\n' "${peaks[@]}" | median); in_b=$(printf '%s\n' "${ins[@]}" | median)
  out_b=$(printf '%s\n' "${outs[@]}" | median)
  awk -v s="$s" -v runs="$RUNS" -v wall="$wall" -v cpu="$cpu" -v peak="$peak" -v in_b="$in_b" -v out_b="$out_b" \
    -v rss="$sw_rss" 'BEGIN {
    printf "{\"bench\":\"hub-scale\",\"part\":\"swarm\",\"identities\":%d,\"runs\":%d,\"wall_s\":%.3f,\"replies_per_s\":%.0f,\"station_cpu_s\":%.2f,\"station_cpu_us_per_reply\":%.1f,\"station_peak_rss_kib\":%d,\"redis_in_bytes_per_reply\":%.0f,\"redis_out_bytes_per_reply\":%.0f,\"swarm_rss_kib\":%d,\"swarm_kib_per_identity\":%.2f}\n",
      s, runs, wall, s / wall, cpu, cpu * 1e6 / s, peak, in_b / s, out_b / s, rss, rss / s
  }'
  stop_agents
done
