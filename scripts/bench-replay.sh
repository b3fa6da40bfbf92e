#!/usr/bin/env bash
# The replay benchmark: a generated price CSV (default 2,000,000 rows, one a second: 555
# hours of a mean-reverting random walk around 150, seeded) replayed through
# `kyzlo paper --prices`, reporting the wall time and the bytes the process wrote (write
# calls: journal, paper wallet and log), with the run's summary.
#
#   scripts/bench-replay.sh [ROWS] [DURATION]      e.g. scripts/bench-replay.sh 2000000 72h
#
# REPLAY_BIN picks another build of the binary (to compare two versions on the same file).
set -euo pipefail
cd "$(dirname "$0")/.."

rows=${1:-2000000}
duration=${2:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

awk -v n="$rows" 'BEGIN {
  srand(42); p = 150; print "ts_ms,price"
  for (i = 0; i < n; i++) {
    u1 = rand(); u2 = rand(); if (u1 < 1e-12) u1 = 1e-12
    z = sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2)
    p *= exp(0.0008 * z + 0.0005 * log(150 / p))
    printf "%.0f,%.6f\n", 1700000000000 + i * 1000, p
  }
}' > "$work/prices.csv"

if [ -z "${REPLAY_BIN:-}" ]; then
  cargo build --release -p kyzlo-app --bin kyzlo --locked >&2
  REPLAY_BIN=$PWD/target/release/kyzlo
fi
printf '[api]\nlisten = ""\n' > "$work/kyzlo.toml"

args=(paper --config kyzlo.toml --prices prices.csv)
[ -n "$duration" ] && args+=(--duration "$duration")
start=$(date +%s.%N)
(cd "$work" && exec "$REPLAY_BIN" "${args[@]}" > out.txt 2> err.txt) &
pid=$!
written=0
while kill -0 "$pid" 2> /dev/null; do
  written=$(awk '/^wchar:/ { print $2 }' "/proc/$pid/io" 2> /dev/null || echo "$written")
  sleep 0.1
done
status=0
wait "$pid" || status=$?
end=$(date +%s.%N)
cat "$work/out.txt"
[ "$status" -eq 0 ] || tail -5 "$work/err.txt" >&2
awk -v s="$start" -v e="$end" -v w="$written" -v r="$rows" -v st="$status" 'BEGIN {
  printf "replay of %d rows: %.1f s wall, %.1f MB written, exit %d\n", r, e - s, w / 1e6, st
}'
exit "$status"
