#!/usr/bin/env bash
# Runs the libFuzzer targets of fuzz/ (the FITS reader, the fiber-list parser) for SECONDS each
# (default 20: the CI smoke run; issue 8 asks for at least 600 per target once). Crashes are written
# to fuzz/artifacts/<target>/ and make this script fail.
#
# The targets are built with plain cargo and the instrumentation flags cargo-fuzz passes for
# `--sanitizer none` (all stable -C flags), so nothing has to be installed first: installing
# cargo-fuzz from source took minutes of every fresh CI run. `cargo fuzz run --sanitizer none
# TARGET` in fuzz/ does the same, for those who have it.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_PER_TARGET="${1:-20}"
TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export CARGO_TARGET_DIR="$PWD/fuzz/target"
# Only the fuzz targets' own code and its dependencies get these flags (--target keeps them off
# build scripts and proc macros), as with cargo-fuzz.
export RUSTFLAGS="--cfg fuzzing -Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cdebug-assertions -Coverflow-checks"
echo "fuzz: building the targets"
cargo build --quiet --release --manifest-path fuzz/Cargo.toml --target "$TRIPLE" --bins
for target in fits_reader fiber_list; do
  corpus="target/fuzz-corpus/$target"
  artifacts="fuzz/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  if [ "$target" = fits_reader ]; then
    cp -n data-samples/real/*.fits fuzz/regressions/fits_reader-* "$corpus/" 2>/dev/null || true
    find data-samples/synthetic -name '*.fits' -size -2M -exec cp -n {} "$corpus/" \; 2>/dev/null || true
  else
    cp -n data-samples/fibers.csv "$corpus/" 2>/dev/null || true
  fi
  echo "fuzz: $target for ${SECONDS_PER_TARGET} s"
  log="target/fuzz-$target.log"
  if ! "fuzz/target/$TRIPLE/release/$target" "$corpus" -artifact_prefix="$artifacts/" \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -max_len=1048576 \
      -print_final_stats=1 >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz: $target failed (crash inputs, if any, in $artifacts/)" >&2
    exit 1
  fi
  grep -E "^(Done|stat::number_of_executed_units|stat::peak_rss_mb)" "$log" || tail -3 "$log"
done
