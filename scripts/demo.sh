#!/usr/bin/env bash
# The main job on the bundled samples: set up, ingest data-samples/ into a store, run a parallel
# query with mpirun, and export the selection for pandas. Output goes to demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

# Open MPI refuses to run as root without these; more ranks than cores need oversubscription.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
BIN=target/release
OUT=demo-out
rm -rf "$OUT" && mkdir -p "$OUT"

echo "== ingest: data-samples/ -> $OUT/store (2 MPI ranks)"
mpirun -n 2 "$BIN/boss-ingest" data-samples/synthetic data-samples/real/spec-3586-55181-0500.fits "$OUT/store"
echo "== a bad input is named and skipped (exit 1): the real spPlate slice has HDU0 only"
"$BIN/boss-ingest" data-samples/real/spPlate-4055-55359-0020.fits "$OUT/store" || [ $? -eq 1 ]

echo "== query: data-samples/fibers.csv -> $OUT/subset.h5 (2 MPI ranks)"
mpirun -n 2 "$BIN/boss-query" --store "$OUT/store" --fibers data-samples/fibers.csv -o "$OUT/subset.h5" --json > "$OUT/query.json"
h5ls -r "$OUT/subset.h5" | head -20

echo "== export: quasars with z >= 1 -> $OUT/qso.parquet (2 MPI ranks), plotted to $OUT/spectra.png"
mpirun -n 2 "$BIN/boss-query" --store "$OUT/store" --class QSO --z-min 1 --parquet "$OUT/qso.parquet"
.venv/bin/python -c "import pandas as pd; df = pd.read_parquet('$OUT/qso.parquet'); print(df[['plate','mjd','fiber','class','z']].head()); print(len(df), 'spectra; flux of the first:', df.flux[0][:5])"
.venv/bin/python examples/plot_spectra.py "$OUT/qso.parquet" "$OUT/spectra.png"
echo "demo: done; see $OUT/"
