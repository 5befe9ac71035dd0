"""End-to-end tests of `boss-ingest [--jobs N] [--fail-fast] [--json] <INPUT>... <STORE>`.

Every test checks the VALUES in the store with h5py/astropy through compare_store (FITS inputs read
independently of the Rust code), not only exit codes:

- real SDSS files: the BOSS full spec file and the spPlate slice shipped in data-samples/real (run
  everywhere): the spec file gzipped compares equal, the slice (HDU0 only) is refused with one stderr
  line, both serve as bad inputs; with ../shared/real-sdss (skipped without it): the whole real tree
  (BOSS full spec file, 80 eBOSS lite spec files, the spAll cut) compares equal, the real spAll columns
  re-keyed onto a generated plate exercise spAll rows for spPlate fibers;
- generated data (boss-synth): spPlates with spZbest/spZline siblings and per-fiber spec files;
- incremental ingest, idempotent re-runs, kill -9 in the middle of an ingest;
- bad inputs (truncated, corrupt, non-BOSS, missing column, missing HDUs), --fail-fast, unusable store;
- `mpirun -n 2` writes the same content as one process.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits

from conftest import (REAL_BOSS_FULL, REAL_SPPLATE_SLICE, assert_store_equals, generate, mpi_env, run,
                      sha256)

SUMMARY_KEYS = {"files_read", "files_failed", "plate_mjds_written", "fibers_added", "bytes_read",
                "bytes_written", "seconds", "ranks", "failures"}
STORE_FILE_RE = re.compile(r"^\d{4,}-\d{5}\.h5$")
LOCK_FILE = ".boss-ingest.lock"   # held by a running ingest; stays in the store (empty of meaning) after it
SLICE = "spplate-slice/spPlate-4055-55359-0020.fits"
BOSS_FULL = "boss-full/spec-3586-55181-0500.fits"
REAL_PLATE_MJDS = {"3586-55181.h5", "3655-55240.h5", "3657-55244.h5", "9367-57758.h5", "10656-58163.h5"}
# Generated set for the kill test: big enough that one ingest job takes well over a second.
SYNTH_BIG_ARGS = ["--plates", "6", "--fibers", "300", "--npix", "3000", "--seed", "2"]
KILL_DELAYS = (0.3, 0.4, 0.5)


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def ingest(ingest_bin, inputs, store, *options, env=None, timeout=300):
    """Runs boss-ingest --json --quiet; returns (CompletedProcess, parsed JSON summary or None)."""
    proc = run([ingest_bin, *options, "--json", "--quiet", *inputs, store], env=env, timeout=timeout)
    summary = None
    if proc.stdout.strip():
        try:
            summary = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            pytest.fail(f"--json output is not JSON ({exc}):\n{proc.stdout}", pytrace=False)
    return proc, summary


def check_summary(summary, **expected):
    assert summary is not None, "--json printed nothing on stdout"
    missing = SUMMARY_KEYS - summary.keys()
    assert not missing, f"--json summary lacks keys {sorted(missing)}: {summary}"
    for key, value in expected.items():
        assert summary[key] == value, f"--json {key} is {summary[key]!r}, expected {value!r}: {summary}"


def stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def store_files(store: Path) -> list[str]:
    """Names of the plate-MJD files in the store (temporary files excluded)."""
    return sorted(p.name for p in Path(store).glob("*.h5") if not p.name.startswith("."))


def temp_files(store: Path) -> list[str]:
    return sorted(p.name for p in Path(store).iterdir() if p.name.startswith(".") and ".tmp-" in p.name)


def read_everything(path: Path):
    """Opens a store file with h5py and reads every dataset and attribute (raises if unreadable)."""
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            dict(obj.attrs)
            if isinstance(obj, h5py.Dataset):
                obj[()]
        dict(f.attrs)
        f.visititems(visit)


def fiber_snapshot(store: Path, plate: int, mjd: int, fibers) -> dict:
    """Bytes of every dataset and attribute under the given fibers, plus their table rows."""
    snap = {}
    with h5py.File(Path(store) / f"{plate:04d}-{mjd:05d}.h5", "r") as f:
        for fiber in fibers:
            def visit(name, obj, fiber=fiber):
                key = f"{fiber}/{name}"
                snap[key + "@attrs"] = {k: np.asarray(v).tobytes() for k, v in obj.attrs.items()}
                if isinstance(obj, h5py.Dataset):
                    snap[key] = obj[()].tobytes()
            f[f"{plate}/{mjd}/{fiber}"].visititems(visit)
            for table in ("spall", "zline"):
                path = f"{plate}/{mjd}/{table}"
                if path in f:
                    rows = f[path][()]
                    snap[f"{table}/{fiber}"] = [r.tobytes() for r in rows[rows["FIBERID"] == fiber]]
    return snap


def spec_files(root: Path) -> list[Path]:
    return sorted(Path(root).rglob("spec-*.fits"))


def plate_dirs(root: Path) -> list[Path]:
    return sorted(p.parent for p in Path(root).rglob("spPlate-*.fits"))


def spec_identity(path: Path) -> tuple[int, int, int]:
    h = fits.getheader(path, 0)
    return int(h["PLATEID"]), int(h["MJD"]), int(h["FIBERID"])


def h5diff(a: Path, b: Path):
    return run(["h5diff", a, b])


# ------------------------------------------------------------------------------------------------
# real SDSS files
# ------------------------------------------------------------------------------------------------


def test_real_sdss_tree(ingest_bin, real_sdss, tmp_path):
    """All real files in one run: specs + spAll compare equal, the HDU0-only spPlate slice is refused."""
    store = tmp_path / "store"
    before = {p: sha256(p) for p in real_sdss.rglob("*.fits")}
    proc, summary = ingest(ingest_bin, [real_sdss], store)
    assert proc.returncode == 1, "the spPlate slice must make the run exit 1"
    lines = stderr_lines(proc)
    assert len(lines) == 1, f"expected exactly one stderr line (the slice), got {lines}"
    assert "spPlate-4055-55359-0020.fits" in lines[0]
    assert re.search(r"IVAR|HDU ?1\b", lines[0], re.IGNORECASE), f"message does not name the missing HDU: {lines[0]}"
    check_summary(summary, files_failed=1, fibers_added=81, plate_mjds_written=5)
    assert any("spPlate-4055-55359-0020.fits" in f["file"] for f in summary["failures"]), summary["failures"]
    assert set(store_files(store)) == REAL_PLATE_MJDS
    # facts about the real files, checked directly (independent of the comparator)
    with h5py.File(store / "3655-55240.h5", "r") as f:
        fibers = {int(k) for k in f["3655/55240"] if k.isdigit()}
        assert len(fibers) == 68
        spall = f["3655/55240/spall"][()]
        assert sorted(spall["FIBERID"].tolist()) == sorted(fibers), \
            "spall must hold exactly one row per ingested fiber (spAll rows of absent fibers are not added)"
        assert spall.dtype["SPECOBJID"] == np.uint64, "SPECOBJID (K with TZERO 2**63) must be uint64"
    with h5py.File(store / "3586-55181.h5", "r") as f:
        exposures = f["3586/55181/500/exposures"]
        assert sorted(exposures) == [str(e) for e in range(104927, 104934)]
        assert all(sorted(exposures[e]) == ["b", "r"] for e in exposures)
        assert len(f["3586/55181/500/coadd"]) == 4625
    assert before == {p: sha256(p) for p in real_sdss.rglob("*.fits")}, "inputs were modified"
    assert_store_equals(store, [real_sdss / "boss-full", real_sdss / "eboss-lite"])


def test_shipped_real_files_equal_shared(real_sdss):
    """The real files shipped in data-samples/real are byte for byte those of ../shared/real-sdss."""
    assert sha256(REAL_BOSS_FULL) == sha256(real_sdss / BOSS_FULL)
    assert sha256(REAL_SPPLATE_SLICE) == sha256(real_sdss / SLICE)


def test_gzipped_spec_file(ingest_bin, tmp_path):
    """A .fits.gz spec file ingests to the same values as the plain file (read by astropy)."""
    import gzip
    plain = REAL_BOSS_FULL
    gz = tmp_path / "in" / (plain.name + ".gz")
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, [gz.parent], store)
    assert proc.returncode == 0, proc.stderr
    check_summary(summary, files_failed=0, fibers_added=1)
    assert_store_equals(store, [plain])


def test_real_spplate_slice_refused(ingest_bin, tmp_path):
    path = REAL_SPPLATE_SLICE
    digest = sha256(path)
    proc, summary = ingest(ingest_bin, [path], tmp_path / "store")
    assert proc.returncode == 1
    lines = stderr_lines(proc)
    assert len(lines) == 1 and path.name in lines[0], lines
    assert re.search(r"IVAR|HDU ?1\b", lines[0], re.IGNORECASE), lines[0]
    check_summary(summary, files_failed=1, fibers_added=0)
    assert store_files(tmp_path / "store") == []
    assert sha256(path) == digest


def make_spall_for_plate(real: Path, spplate: Path, out: Path, extra: int = 5) -> tuple[int, int, list[int]]:
    """Writes `out`: the real spAll cut (all 236 real columns) re-keyed onto the fibers of a generated
    spPlate, plus `extra` rows for fibers the plate does not have. Returns (plate, mjd, fibers)."""
    header = fits.getheader(spplate, 0)
    plate, mjd = int(header["PLATEID"]), int(header["MJD"])
    fibers = sorted(int(x) for x in fits.getdata(spplate, 5)["FIBERID"])
    with fits.open(real / "eboss-lite/spAll-plate3655.fits", memmap=False) as hdul:
        table = hdul[1]
        n = len(fibers) + extra
        assert len(table.data) >= n, "the spAll cut has too few rows for this test"
        rows = fits.BinTableHDU.from_columns(table.columns, nrows=n, header=table.header)
        rows.data["PLATE"] = plate
        rows.data["MJD"] = mjd
        rows.data["FIBERID"] = fibers + [max(fibers) + 1 + i for i in range(extra)]
        fits.HDUList([fits.PrimaryHDU(), rows]).writeto(out)
    return plate, mjd, fibers


@pytest.mark.parametrize("when", ["same_run", "later_run"])
def test_spall_rows_for_spplate_fibers(ingest_bin, real_sdss, synth_small, tmp_path, when):
    """spAll rows (real columns) are added for fibers that came from an spPlate, with equal values;
    rows of fibers not in the store are not added."""
    spplate = sorted(synth_small.rglob("spPlate-*.fits"))[0]
    spall = tmp_path / "spAll-test.fits"
    plate, mjd, fibers = make_spall_for_plate(real_sdss, spplate, spall)
    store = tmp_path / "store"
    if when == "same_run":
        proc, summary = ingest(ingest_bin, [spplate, spall], store)
        assert proc.returncode == 0
    else:
        proc, summary = ingest(ingest_bin, [spplate], store)
        assert proc.returncode == 0
        proc, summary = ingest(ingest_bin, [spall], store)
        assert proc.returncode == 0
        check_summary(summary, files_failed=0, fibers_added=0)
    with h5py.File(store / f"{plate:04d}-{mjd:05d}.h5", "r") as f:
        path = f"{plate}/{mjd}/spall"
        assert path in f, "no spall table written from the spAll file"
        assert f[path]["FIBERID"].tolist() == fibers, "spall must hold one row per fiber of the plate, sorted"
    assert_store_equals(store, [spplate, spall])


# ------------------------------------------------------------------------------------------------
# generated data
# ------------------------------------------------------------------------------------------------


def test_synth_spplates_compare_equal(ingest_bin, synth_small, tmp_path):
    """spPlate files alone: their spZbest/spZline siblings are picked up from the same folder."""
    plates = sorted(synth_small.rglob("spPlate-*.fits"))
    assert len(plates) == 2
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, plates, store)
    assert proc.returncode == 0
    check_summary(summary, files_failed=0, fibers_added=80, plate_mjds_written=2)
    assert len(store_files(store)) == 2
    assert_store_equals(store, plates)


def test_synth_spec_files_compare_equal(ingest_bin, synth_small, tmp_path):
    specs = spec_files(synth_small)
    assert len(specs) == 80, f"boss-synth --spec-files wrote {len(specs)} spec files, expected 80"
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, specs, store)
    assert proc.returncode == 0
    check_summary(summary, files_failed=0, fibers_added=80, plate_mjds_written=2)
    assert_store_equals(store, specs)


def test_synth_whole_tree_compare_equal(ingest_bin, synth_small, tmp_path):
    """The generated folder as one input: spPlates, siblings and spec files together."""
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, [synth_small], store)
    assert proc.returncode == 0
    check_summary(summary, files_failed=0, plate_mjds_written=2)
    assert_store_equals(store, [synth_small])


def test_incremental_ingest(ingest_bin, synth_small, tmp_path):
    """Half of a plate's spec files, then the other half: all present, the first half unchanged."""
    specs = spec_files(plate_dirs(synth_small)[0])
    half = len(specs) // 2
    first, second = specs[:half], specs[half:]
    plate, mjd, _ = spec_identity(first[0])
    store = tmp_path / "store"

    proc, summary = ingest(ingest_bin, first, store)
    assert proc.returncode == 0
    check_summary(summary, files_failed=0, fibers_added=len(first))
    assert_store_equals(store, first)
    early = [spec_identity(p)[2] for p in first]
    before = fiber_snapshot(store, plate, mjd, early)

    proc, summary = ingest(ingest_bin, second, store)
    assert proc.returncode == 0
    check_summary(summary, files_failed=0, fibers_added=len(second))
    assert_store_equals(store, specs)
    with h5py.File(store / f"{plate:04d}-{mjd:05d}.h5", "r") as f:
        fibers = sorted(int(k) for k in f[f"{plate}/{mjd}"] if k.isdigit())
    assert fibers == sorted(spec_identity(p)[2] for p in specs)
    after = fiber_snapshot(store, plate, mjd, early)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"the second ingest changed data of earlier fibers: {changed[:10]}"


def test_idempotent_rerun(ingest_bin, synth_small, tmp_path):
    """A second run of the same input adds nothing and leaves every file byte- (or content-) identical."""
    store, first_copy = tmp_path / "store", tmp_path / "first"
    proc, summary = ingest(ingest_bin, [synth_small], store)
    assert proc.returncode == 0
    shutil.copytree(store, first_copy)
    first = {name: sha256(store / name) for name in store_files(store)}
    assert first

    proc, summary = ingest(ingest_bin, [synth_small], store)
    assert proc.returncode == 0
    check_summary(summary, files_failed=0, fibers_added=0)
    second = {name: sha256(store / name) for name in store_files(store)}
    assert sorted(second) == sorted(first)
    for name in first:
        if first[name] != second[name]:  # byte-identical is best; content-identical is required
            assert h5diff(first_copy / name, store / name).returncode == 0, f"{name} changed on re-run"
    assert_store_equals(store, [synth_small])


# ------------------------------------------------------------------------------------------------
# kill -9
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def synth_big(synth_bin, tmp_path_factory) -> Path:
    return generate(synth_bin, tmp_path_factory.mktemp("synth-big"), SYNTH_BIG_ARGS)


@pytest.mark.slow
def test_kill_9_leaves_store_readable(ingest_bin, synth_big, tmp_path):
    store = tmp_path / "store"
    cmd = [str(ingest_bin), "--jobs", "1", "--quiet", str(synth_big), str(store)]
    kills = 0
    for delay in KILL_DELAYS:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=mpi_env())
        time.sleep(delay)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        out, err = proc.communicate(timeout=120)
        print(f"delay {delay}s: exit {proc.returncode}; store {sorted(os.listdir(store)) if store.exists() else []}")
        for name in os.listdir(store) if store.exists() else []:
            assert STORE_FILE_RE.match(name) or name in ("catalog.parquet", LOCK_FILE) \
                or (name.startswith(".") and ".tmp-" in name), \
                f"unexpected file {name} in the store after kill -9"
        for name in store_files(store):
            try:
                read_everything(store / name)
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"{name} unreadable by h5py after kill -9 at {delay}s: {exc}", pytrace=False)
    assert kills > 0, "boss-ingest finished before every kill: the data set is too small for this test"

    proc, summary = ingest(ingest_bin, [synth_big], store, "--jobs", "1")
    assert proc.returncode == 0
    check_summary(summary, files_failed=0)
    assert temp_files(store) == [], "temporary files of killed runs were left behind"
    assert len(store_files(store)) == len(plate_dirs(synth_big))
    assert_store_equals(store, [synth_big])


# ------------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------------

GOOD_REAL = ["eboss-lite/9367/spec-9367-57758-0345.fits", "eboss-lite/9367/spec-9367-57758-0386.fits",
             "eboss-lite/3657/spec-3657-55244-0552.fits"]
GOOD_SYNTH = 3  # generated spec files put beside each bad input


def make_truncated(folder: Path) -> Path:
    data = REAL_BOSS_FULL.read_bytes()
    path = folder / REAL_BOSS_FULL.name
    path.write_bytes(data[: len(data) // 2])
    return path


def make_corrupt(folder: Path) -> Path:
    path = folder / "spec-x.fits"
    path.write_bytes(np.random.default_rng(7).integers(0, 256, 200_000, dtype=np.uint8).tobytes())
    return path


def make_non_boss(folder: Path) -> Path:
    path = folder / "other.fits"
    fits.PrimaryHDU(np.arange(100, dtype=np.float32).reshape(10, 10)).writeto(path)
    return path


def make_missing_column(folder: Path) -> Path:
    path = folder / REAL_BOSS_FULL.name
    with fits.open(REAL_BOSS_FULL, memmap=False) as hdul:
        coadd = hdul[1]
        kept = [c for c in coadd.columns if c.name.lower() != "loglam"]
        hdus = [fits.PrimaryHDU(header=hdul[0].header),
                fits.BinTableHDU.from_columns(kept, name="COADD")]
        hdus += [h.copy() for h in hdul[2:]]
        fits.HDUList(hdus).writeto(path)
    return path


def make_spplate_slice(folder: Path) -> Path:
    path = folder / REAL_SPPLATE_SLICE.name
    shutil.copyfile(REAL_SPPLATE_SLICE, path)
    return path


BAD_INPUTS = {
    "truncated": (make_truncated, "3586-55181.h5"),
    "corrupt": (make_corrupt, None),
    "non_boss": (make_non_boss, None),
    "missing_column": (make_missing_column, "3586-55181.h5"),
    "spplate_missing_hdus": (make_spplate_slice, "4055-55359.h5"),
}


def bad_input_folder(real: Path | None, tmp_path: Path, kind: str, synth: Path | None = None):
    """tmp_path/in with good spec files (generated ones when `synth` is given, else the real eBOSS ones
    of `real`, ../shared/real-sdss) and the bad input `kind` (made from the real files shipped in
    data-samples/real when it needs one)."""
    folder = tmp_path / "in"
    folder.mkdir()
    sources = spec_files(synth)[:GOOD_SYNTH] if synth is not None else [real / rel for rel in GOOD_REAL]
    good = []
    for src in sources:
        dest = folder / src.name
        shutil.copyfile(src, dest)
        good.append(dest)
    bad = BAD_INPUTS[kind][0](folder)
    return folder, good, bad


@pytest.mark.parametrize("kind", sorted(BAD_INPUTS))
def test_bad_input_is_skipped(ingest_bin, synth_small, tmp_path, kind):
    """One bad file among good ones: exit 1, one stderr line naming it, the rest ingested and equal."""
    folder, good, bad = bad_input_folder(None, tmp_path, kind, synth_small)
    digest = sha256(bad)
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, [folder], store)
    assert proc.returncode == 1
    lines = stderr_lines(proc)
    assert len(lines) == 1, f"expected exactly one stderr line naming {bad.name}, got {lines}"
    assert bad.name in lines[0], lines[0]
    check_summary(summary, files_failed=1, fibers_added=len(good))
    assert len(summary["failures"]) == 1 and bad.name in summary["failures"][0]["file"], summary["failures"]
    assert_store_equals(store, good)
    not_written = BAD_INPUTS[kind][1]
    if not_written:
        assert not (store / not_written).exists(), f"{not_written} written from the bad input {bad.name}"
    assert sha256(bad) == digest, f"{bad.name} was modified"


def test_fail_fast_stops(ingest_bin, real_sdss, tmp_path):
    """--fail-fast: non-zero exit naming the bad file (the run without it ingests the rest: see above)."""
    folder, good, bad = bad_input_folder(real_sdss, tmp_path, "corrupt")
    digest = sha256(bad)
    proc, summary = ingest(ingest_bin, [folder], tmp_path / "store", "--fail-fast", "--jobs", "1")
    assert proc.returncode != 0
    assert any(bad.name in line for line in stderr_lines(proc)), proc.stderr
    if summary is not None:
        assert summary["files_failed"] >= 1, summary
    assert sha256(bad) == digest


def test_unwritable_store_exits_2(ingest_bin, real_sdss, tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory\n")
    good = real_sdss / GOOD_REAL[0]
    digest = sha256(good)
    proc, _ = ingest(ingest_bin, [good], blocker / "store")
    assert proc.returncode == 2
    assert stderr_lines(proc), "exit 2 without a message"
    assert blocker.read_text() == "not a directory\n"
    assert sha256(good) == digest


# ------------------------------------------------------------------------------------------------
# MPI
# ------------------------------------------------------------------------------------------------


@pytest.mark.mpi
def test_mpirun_two_ranks_same_content(ingest_bin, synth_small, tmp_path):
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun not installed")
    one, two = tmp_path / "one", tmp_path / "two"
    proc, summary = ingest(ingest_bin, [synth_small], one)
    assert proc.returncode == 0
    proc = run(["mpirun", "-n", "2", ingest_bin, "--json", "--quiet", synth_small, two], timeout=300)
    assert proc.returncode == 0
    summary = json.loads(proc.stdout)
    check_summary(summary, files_failed=0, ranks=2)
    assert store_files(two) == store_files(one)
    for name in store_files(one):
        assert h5diff(one / name, two / name).returncode == 0, f"{name} differs between 1 and 2 ranks"
    assert_store_equals(two, [synth_small])
