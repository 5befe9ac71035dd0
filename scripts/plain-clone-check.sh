#!/usr/bin/env bash
# Runs the end-to-end tests from a plain clone of this repository's HEAD, in a temporary folder with
# nothing beside it (no ../shared), as a newcomer would: tests that need data outside the repository
# skip with a one-line reason naming it (listed at the end), and everything else must pass. The clone uses the binaries and
# the venv already built here (BOSS_BIN_DIR), so nothing is compiled twice. Run after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
git clone -q "$root" "$tmp/clone"
cd "$tmp/clone"
[ ! -e ../shared ] || { echo "plain-clone-check: $tmp/shared exists" >&2; exit 1; }
echo "== end-to-end tests from a plain clone ($tmp/clone, no ../shared)"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
env -u BOSS_SHARED -u BOSS_REQUIRE_SHARED BOSS_BIN_DIR="$root/target/release" \
  "$root/.venv/bin/python" -m pytest tests -q -rfEs -p no:cacheprovider "$@"
