"""Shared fixtures for the end-to-end tests of the release binaries (boss-ingest, boss-synth, boss-query).

The values written by the binaries are checked with real clients (h5py, astropy) through
`tests/clients/compare_store.py`.

- `repo_root`, `release_dir`, `ingest_bin` / `synth_bin` / `query_bin`: the binaries in target/release
  (a test that needs a missing binary fails, telling to run `cargo build --release`);
- `REAL_BOSS_FULL`, `REAL_SPPLATE_SLICE`: the two MIT/BSD real files shipped in data-samples/real/ (a BOSS
  full spec file and an HDU0-only spPlate slice; byte for byte the files of the same names under
  ../shared/real-sdss): tests that need no other real file use these and run everywhere;
- `shared_dir(name)`: a folder of the shared data beside the project (default ../shared/NAME), or a skip
  naming what is missing (a failure under BOSS_REQUIRE_SHARED=1, see below);
- `real_sdss`: `shared_dir("real-sdss")`, every real SDSS file, including the GPL eBOSS lite spec files and
  the spAll cut that are not shipped in the repository;
- `synth_small`: a small generated set (2 plates x 40 fibers x 600 pixels, spPlate + siblings + spec files);
- `synth_query` / `synth_query_store`: a generated set (3 plates x 60 fibers x 800 pixels, seed 2) and its
  store, ingested once per session (for the boss-query tests; copy the store before damaging it);
- `real_store`: a store ingested once per session from all of ../shared/real-sdss;
- `synth_catalog` / `catalog_store`: a generated set for the catalog/export tests (4 spPlate-only plates
  x 80 fibers x 600 pixels, seed 3, plate 5000 at RA 0 and 5003 near the north pole, plus plate 6000
  with spec files) and its store, ingested in two runs (read-only: copy it before changing it);
- `run(cmd, ...)`: runs a command, prints command/stdout/stderr (shown by pytest when a test fails);
- `mpi_env()`: the environment mpirun needs in containers (root, oversubscription).

Environment variables:

- `BOSS_BIN_DIR=DIR`: where the binaries under test are (default: target/release of this checkout);
- `BOSS_SHARED=DIR`: where the shared data lives (default: `../shared`, the folder beside the repository);
- `BOSS_REQUIRE_SHARED=1`: a missing shared folder is a failure, not a skip (CI sets it, so that the
  real-data tests cannot silently disappear there). Without it, a plain clone with nothing beside it
  skips those tests with a one-line reason naming what is missing.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CLIENTS = REPO_ROOT / "tests" / "clients"
if str(CLIENTS) not in sys.path:
    sys.path.insert(0, str(CLIENTS))

import compare_store  # noqa: E402  (needs the sys.path entry above)

# The binaries under test: BOSS_BIN_DIR (scripts/plain-clone-check.sh points a clone at the binaries
# already built), else target/release of this checkout.
RELEASE_DIR = (Path(os.environ["BOSS_BIN_DIR"]) if os.environ.get("BOSS_BIN_DIR")
               else REPO_ROOT / "target" / "release")

# Real files shipped in the repository (MIT / BSD-3-Clause, see data-samples/README.md).
REAL_SAMPLES = REPO_ROOT / "data-samples" / "real"
REAL_BOSS_FULL = REAL_SAMPLES / "spec-3586-55181-0500.fits"
REAL_SPPLATE_SLICE = REAL_SAMPLES / "spPlate-4055-55359-0020.fits"

# Data outside the repository: BOSS_SHARED, else ../shared beside it.
SHARED = (Path(os.environ["BOSS_SHARED"]).expanduser() if os.environ.get("BOSS_SHARED")
          else REPO_ROOT.parent / "shared")
REQUIRE_SHARED = os.environ.get("BOSS_REQUIRE_SHARED") == "1"
# What each shared folder holds that the repository does not (named in the skip reason).
SHARED_CONTENTS = {
    "real-sdss": "real eBOSS lite files and spAll cut, GPL, not shipped in the repository",
    "real-desi": "the real DESI coadd/redrock pair, also shipped in data-samples/real/desi",
}

MPI_ENV = {
    "OMPI_ALLOW_RUN_AS_ROOT": "1",
    "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
    "OMPI_MCA_rmaps_base_oversubscribe": "1",
}

# The small synthetic set every generated-data test shares.
SYNTH_SMALL_ARGS = ["--plates", "2", "--fibers", "40", "--npix", "600", "--spec-files", "--seed", "1"]


def mpi_env(extra: dict | None = None) -> dict:
    """os.environ plus the Open MPI settings for running as root with more ranks than cores."""
    env = dict(os.environ)
    env.update(MPI_ENV)
    env.update(extra or {})
    return env


def run(cmd, *, check: bool = False, timeout: float = 300, env: dict | None = None, **kwargs):
    """Runs `cmd` (list of str/Path), returns the CompletedProcess with text stdout/stderr.

    The command, exit status and both streams are printed (pytest shows them for failing tests);
    with `check=True` a non-zero exit status fails the test with that output."""
    cmd = [str(c) for c in cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env=env if env is not None else mpi_env(), **kwargs)
    print(f"$ {shlex.join(cmd)}\n[exit {proc.returncode}]")
    if proc.stdout:
        print(f"--- stdout ---\n{proc.stdout.rstrip()}")
    if proc.stderr:
        print(f"--- stderr ---\n{proc.stderr.rstrip()}")
    if check and proc.returncode != 0:
        pytest.fail(f"{shlex.join(cmd)} exited {proc.returncode}\n"
                    f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}", pytrace=False)
    return proc


def sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def assert_store_equals(store, inputs, max_lines: int = 40):
    """compare_store.compare finds no difference between `store` and the FITS `inputs`."""
    diffs = compare_store.compare(store, [str(i) for i in inputs])
    if diffs:
        shown = "\n".join(diffs[:max_lines])
        more = f"\n... and {len(diffs) - max_lines} more" if len(diffs) > max_lines else ""
        pytest.fail(f"store {store} differs from its inputs ({len(diffs)} differences):\n{shown}{more}",
                    pytrace=False)


def _binary(name: str) -> Path:
    path = RELEASE_DIR / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"{path} is missing: build it first with `cargo build --release` "
                    f"(in {REPO_ROOT})", pytrace=False)
    return path


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def release_dir() -> Path:
    return RELEASE_DIR


@pytest.fixture(scope="session")
def ingest_bin() -> Path:
    return _binary("boss-ingest")


@pytest.fixture(scope="session")
def synth_bin() -> Path:
    return _binary("boss-synth")


@pytest.fixture(scope="session")
def query_bin() -> Path:
    return _binary("boss-query")


def shared_dir(name: str) -> Path:
    """SHARED/name if it is a folder; otherwise skips the test with a one-line reason naming what is
    missing, or fails it with the same message when BOSS_REQUIRE_SHARED=1 (CI)."""
    path = SHARED / name
    if path.is_dir():
        return path
    where = str(path) if os.environ.get("BOSS_SHARED") else f"../shared/{name}"
    what = SHARED_CONTENTS.get(name, "not shipped in the repository")
    message = f"needs {where} ({what})"
    if REQUIRE_SHARED:
        pytest.fail(f"{message}; BOSS_REQUIRE_SHARED=1 makes its absence a failure", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def real_sdss() -> Path:
    """../shared/real-sdss (or BOSS_SHARED/real-sdss): every real SDSS file; skips when absent."""
    return shared_dir("real-sdss")


def generate(synth_bin: Path, out: Path, args) -> Path:
    """Runs boss-synth into `out` and checks that it wrote spPlate files."""
    run([synth_bin, *args, "--out", out], check=True, timeout=600)
    if not list(out.rglob("spPlate-*.fits")):
        pytest.fail(f"boss-synth wrote no spPlate-*.fits under {out}", pytrace=False)
    return out


@pytest.fixture(scope="session")
def synth_small(synth_bin, tmp_path_factory) -> Path:
    """DIR/<PLATE>/{spPlate,spZbest,spZline,spec}-*.fits for 2 plates x 40 fibers x 600 pixels (seed 1)."""
    return generate(synth_bin, tmp_path_factory.mktemp("synth-small"), SYNTH_SMALL_ARGS)


@pytest.fixture
def run_cmd():
    """The `run` helper as a fixture (tests may also import it from conftest)."""
    return run


# ------------------------------------------------------------------------------------------------
# Stores for the boss-query tests (each ingested once per session)
# ------------------------------------------------------------------------------------------------

# Generated set for the query tests: 3 plates x 60 fibers x 800 pixels, spPlate + siblings + spec files
# (spec files of fibers divisible by 10 carry per-exposure HDUs).
SYNTH_QUERY_ARGS = ["--plates", "3", "--fibers", "60", "--npix", "800", "--spec-files", "--seed", "2"]


@pytest.fixture(scope="session")
def synth_query(synth_bin, tmp_path_factory) -> Path:
    """DIR/<PLATE>/{spPlate,spZbest,spZline,spec}-*.fits for 3 plates x 60 fibers x 800 pixels (seed 2)."""
    return generate(synth_bin, tmp_path_factory.mktemp("synth-query"), SYNTH_QUERY_ARGS)


@pytest.fixture(scope="session")
def synth_query_store(ingest_bin, synth_query, tmp_path_factory) -> Path:
    """A store ingested (one process) from `synth_query`: 3 plate-MJD files of 60 fibers each.

    Tests must not modify it: copy it first (shutil.copytree) to damage a file."""
    store = tmp_path_factory.mktemp("synth-query-store") / "store"
    run([ingest_bin, "--json", "--quiet", synth_query, store], check=True, timeout=300)
    if len(list(store.glob("*.h5"))) != 3:
        pytest.fail(f"expected 3 store files in {store}, got {sorted(p.name for p in store.iterdir())}",
                    pytrace=False)
    return store


@pytest.fixture(scope="session")
def real_store(ingest_bin, real_sdss, tmp_path_factory) -> Path:
    """A store ingested from all of ../shared/real-sdss (5 plate-MJD files, 81 fibers); skips (through
    `real_sdss`) when that folder is absent.

    The HDU0-only spPlate slice makes that ingest exit 1 (expected); anything else fails the fixture."""
    store = tmp_path_factory.mktemp("real-store") / "store"
    proc = run([ingest_bin, "--json", "--quiet", real_sdss, store], timeout=300)
    if proc.returncode != 1 or "spPlate-4055-55359-0020.fits" not in proc.stderr:
        pytest.fail(f"ingest of {real_sdss} exited {proc.returncode} (expected 1, for the spPlate slice "
                    f"only):\n{proc.stderr}", pytrace=False)
    names = sorted(p.name for p in store.glob("*.h5"))
    expected = ["10656-58163.h5", "3586-55181.h5", "3655-55240.h5", "3657-55244.h5", "9367-57758.h5"]
    if names != expected:
        pytest.fail(f"real store holds {names}, expected {expected}", pytrace=False)
    return store


# ------------------------------------------------------------------------------------------------
# Stores for the catalog / columnar export tests (tests/test_catalog_export.py)
# ------------------------------------------------------------------------------------------------

# spPlate + spZbest + spZline only (no spec files, so no spall table): 4 plates x 80 fibers x 600 pixels.
# Plate 5000 is centred at RA 0 (its fibers straddle RA 0/360), plate 5003 at DEC +88 (near the pole).
CATALOG_SPPLATE_ARGS = ["--plates", "4", "--fibers", "80", "--npix", "600", "--seed", "3"]
# One plate with spec files (spall table, exposures for fibers divisible by 10) beside its spPlate:
# plate 6000, 30 fibers, also centred at RA 0 (the generator places plates by their index).
CATALOG_SPEC_ARGS = ["--plates", "1", "--fibers", "30", "--npix", "600", "--spec-files", "--seed", "4",
                     "--first-plate", "6000"]


@pytest.fixture(scope="session")
def synth_catalog(synth_bin, tmp_path_factory) -> dict:
    """{"spplate": DIR (plates 5000-5003, spPlate + siblings), "spec": DIR (plate 6000 with spec files)}."""
    root = tmp_path_factory.mktemp("synth-catalog")
    return {"spplate": generate(synth_bin, root / "spplate", CATALOG_SPPLATE_ARGS),
            "spec": generate(synth_bin, root / "spec", CATALOG_SPEC_ARGS)}


@pytest.fixture(scope="session")
def catalog_store(ingest_bin, synth_catalog, tmp_path_factory) -> Path:
    """A store ingested in two runs (the spPlate set, then the spec-file plate), so that its
    catalog.parquet was written once and then updated: 5 plate-MJD files, 350 fibers.

    Tests must not modify it: copy it first (shutil.copytree)."""
    store = tmp_path_factory.mktemp("catalog-store") / "store"
    run([ingest_bin, "--json", "--quiet", synth_catalog["spplate"], store], check=True, timeout=300)
    run([ingest_bin, "--json", "--quiet", synth_catalog["spec"], store], check=True, timeout=300)
    names = sorted(p.name for p in store.iterdir() if p.name != ".boss-ingest.lock")
    expected = ["5000-55000.h5", "5001-55007.h5", "5002-55014.h5", "5003-55021.h5", "6000-55000.h5",
                "catalog.parquet"]
    if names != expected:
        pytest.fail(f"catalog store holds {names}, expected {expected}", pytrace=False)
    return store
