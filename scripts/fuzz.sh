#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (the FITS reader, the fiber-list parser) for SECONDS each
# (default 20: the CI smoke run; issue 8 asks for at least 600 per target once). Installs cargo-fuzz
# if it is missing. Uses the stable toolchain with RUSTC_BOOTSTRAP=1 (cargo-fuzz passes nightly flags).
# Crashes are written to fuzz/artifacts/<target>/ and make this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-20}"
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || cargo install --quiet --locked cargo-fuzz
for target in fits_reader fiber_list; do
  corpus="target/fuzz-corpus/$target"
  mkdir -p "$corpus"
  if [ "$target" = fits_reader ]; then
    cp -n data-samples/real/*.fits fuzz/regressions/fits_reader-* "$corpus/" 2>/dev/null || true
    find data-samples/synthetic -name '*.fits' -size -2M -exec cp -n {} "$corpus/" \; 2>/dev/null || true
  else
    cp -n data-samples/fibers.csv "$corpus/" 2>/dev/null || true
  fi
  echo "fuzz: $target for ${SECONDS_PER_TARGET} s"
  log="target/fuzz-$target.log"
  if ! (cd fuzz && cargo fuzz run --sanitizer none "$target" "../$corpus" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=1048576 -print_final_stats=1) >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $target failed (crash inputs, if any, in fuzz/artifacts/$target/)" >&2
    exit 1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || tail -3 "$log"
done
