#!/usr/bin/env bash
# Installs what the project needs on Debian 12 (system packages, a Python venv with the test
# clients) and builds the release binaries. Safe to run again: it only installs what is missing.
# The venv is installed while cargo builds (pip waits on the network, cargo on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(libhdf5-openmpi-dev libopenmpi-dev openmpi-bin libcfitsio-dev libclang-dev clang pkg-config hdf5-tools time)
PY_PACKAGES=(h5py astropy numpy scipy pandas pyarrow duckdb polars nested-pandas matplotlib pytest specutils desispec)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

venv_pid=""
venv_log="$(mktemp)"
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import h5py, astropy, scipy, pandas, pyarrow, duckdb, polars, nested_pandas, matplotlib, pytest, specutils, desispec" 2>/dev/null; then
  echo "setup: creating the Python venv .venv (${PY_PACKAGES[*]}), while cargo builds"
  (python3 -m venv .venv && .venv/bin/pip install -q --upgrade pip && .venv/bin/pip install -q "${PY_PACKAGES[@]}") \
    >"$venv_log" 2>&1 &
  venv_pid=$!
fi

echo "setup: building (cargo build --release)"
cargo build --release --workspace --quiet

if [ -n "$venv_pid" ] && ! wait "$venv_pid"; then
  cat "$venv_log" >&2
  echo "setup: installing the Python venv failed" >&2
  exit 1
fi
rm -f "$venv_log"
