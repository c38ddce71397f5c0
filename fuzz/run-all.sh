#!/usr/bin/env bash
# Run every fuzz target listed as a [[bin]] in fuzz/Cargo.toml for SECONDS
# each, one after another, and print one JSON line per target:
#   {"target":..,"seconds":..,"execs":..,"execs_per_s":..,"crashes":..}
# followed by one {"finding":..} line per crash, leak, timeout or OOM input.
# Seeds come from fuzz/corpus/<target>/ (kept small, in the repo); new
# inputs go to a scratch corpus ($FUZZ_WORK, default a temp dir) so the
# seeds stay as they are. Exit status: 0 when no target found anything.
#
#   bash fuzz/run-all.sh 60            # every target, 60 s each
#   bash fuzz/run-all.sh 60 nodeset    # only the named targets
set -euo pipefail

seconds=${1:?usage: run-all.sh SECONDS [TARGET...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
work=${FUZZ_WORK:-$(mktemp -d /tmp/muster-fuzz.XXXXXX)}
mkdir -p "$work"

if [ $# -gt 0 ]; then
  targets=("$@")
else
  # Every [[bin]] name in Cargo.toml, in file order: targets added by
  # others are picked up without touching this script.
  mapfile -t targets < <(awk '/^\[\[bin\]\]/{bin=1; next} bin && /^name *=/{gsub(/.*= *"|".*/, ""); print; bin=0}' Cargo.toml)
fi

cargo +nightly fuzz build -O >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }

found=0
for t in "${targets[@]}"; do
  corpus="$work/corpus/$t"
  artifacts="$work/artifacts/$t/"
  mkdir -p "$corpus" "$artifacts" "corpus/$t"
  log="$work/$t.log"
  set +e
  cargo +nightly fuzz run -O "$t" "$corpus" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts" -close_fd_mask=3 >"$log" 2>&1
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  if [ -z "$execs" ]; then
    execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
  fi
  execs=${execs:-0}
  crashes=$(find "$artifacts" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \) | wc -l)
  rate=$(( execs / (seconds > 0 ? seconds : 1) ))
  printf '{"target":"%s","seconds":%s,"execs":%s,"execs_per_s":%s,"crashes":%s}\n' \
    "$t" "$seconds" "$execs" "$rate" "$crashes"
  if [ "$crashes" -gt 0 ]; then
    found=1
    for f in $(find "$artifacts" -type f); do
      # The target's own stderr was closed while fuzzing; replay the input
      # once to get its panic message.
      summary=$(cargo +nightly fuzz run -O "$t" "$f" 2>&1 | grep -m1 -A1 -E "panicked at|ERROR: libFuzzer" | tr -d '"\\' | tr '\n' ' ' | cut -c1-300 || true)
      printf '{"target":"%s","finding":"%s","summary":"%s","log":"%s"}\n' "$t" "$f" "$summary" "$log"
    done
  fi
done
exit $found
