#!/usr/bin/env bash
# Runs every test: Rust unit tests, then the end-to-end tests that run the binaries (also under
# mpirun) and check the results with real clients (h5py, astropy, h5diff, pandas, pyarrow).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
echo "== cargo test"
cargo test --release --workspace
echo "== benchmark smoke test (tiny scale, no timing assertions)"
bench/run --scale tiny --out target/bench-smoke
echo "== end-to-end tests (pytest)"
.venv/bin/python -m pytest tests -q
echo "== fuzz smoke run (20 s per target; crashes fail the run)"
scripts/fuzz.sh 20
