"""Real SDSS files without surprises (issue 8): each numbered finding of the issue, reproduced.

- legacy SDSS-I/II spec files (SPECOBJ, 7-column exposures in decreasing wavelength) written by
  `boss-synth --flavor legacy` ingest bit-exactly (astropy vs h5py) with no invented X field, and query;
- eBOSS lite files (no EXTNAME, upper-case columns) from `--flavor eboss` ingest exactly;
- NaN / Inf header cards round-trip as NaN / Inf attributes into the store and the query output, and
  a NaN redshift stays NaN in catalog.parquet;
- an export that cannot open its output ends every rank by the tool's own doing (no hang);
- an absurd NAXIS2 is one line and exit 1, before any allocation;
- two concurrent ingests into one store keep every fiber of both (several trials);
- a spec file cut inside an HDU header is refused (not silently half-ingested); a stale catalog
  after a kill between store rename and catalog update does not give stale answers;
- symlink loops are walked once, FIFOs and non-UTF-8 names do not hang or vanish;
- outputs cannot destroy the store or each other; temporary files do not stay behind;
- plate numbers that do not fit are errors, not wrapped numbers;
- conflicts between inputs are reported, and a store built incrementally equals a clean ingest;
- messages: a corrupt HDU is not reported as missing, HDF5 errors take one line;
- fiber lists as spreadsheets write them (BOM, CRLF, tabs, FIBERID, quotes).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from conftest import assert_store_equals, mpi_env, run, sha256

TIMEOUT = 120


def ingest(ingest_bin, inputs, store, *options, timeout=TIMEOUT):
    proc = run([ingest_bin, *options, "--json", "--quiet", *inputs, store], timeout=timeout)
    summary = json.loads(proc.stdout) if proc.stdout.strip() else None
    return proc, summary


def query(query_bin, *args, ranks=None, timeout=TIMEOUT):
    cmd = [query_bin, *args]
    if ranks is not None:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    return run(cmd, timeout=timeout)


def write_list(path: Path, fibers) -> Path:
    path.write_text("plate,mjd,fiber\n" + "".join(f"{p},{m},{f}\n" for p, m, f in fibers))
    return path


def stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".") and ".tmp-" in p.name)


def set_card(path: Path, key: str, value: str):
    """Overwrites the value of an existing primary-header card in place (as a broken writer would):
    `value` is put verbatim right-justified in columns 11-30 (astropy refuses to write NaN cards)."""
    data = bytearray(path.read_bytes())
    end = data.index(b"END" + b" " * 77)
    for i in range(0, end, 80):
        if data[i:i + 8].decode().strip() == key:
            card = f"{key:<8}= {value:>20}".ljust(80).encode()
            data[i:i + 80] = card
            path.write_bytes(bytes(data))
            return
    raise AssertionError(f"{path}: no card {key}")


@pytest.fixture(scope="module")
def legacy(synth_bin, tmp_path_factory) -> Path:
    """An SDSS-I/II plate (1500-55000): spPlate and full spec files, exposures for fibers 1-4."""
    out = tmp_path_factory.mktemp("legacy")
    run([synth_bin, "--plates", "1", "--fibers", "24", "--npix", "700", "--spec-files", "--exposures", "4",
         "--flavor", "legacy", "--first-plate", "1500", "--seed", "9", "--out", out], check=True)
    return out


# ------------------------------------------------------------------------------------------------
# 1. legacy and eBOSS spec files
# ------------------------------------------------------------------------------------------------


def test_legacy_spec_files_ingest_exactly(ingest_bin, query_bin, legacy, tmp_path):
    specs = sorted(legacy.rglob("spec-*.fits"))
    with fits.open(specs[0]) as h:
        assert h[2].name == "SPECOBJ"
        exp = h[4]
        assert exp.columns.names == ["flux", "loglam", "ivar", "mask", "wdisp", "sky", "calib"]
        assert np.all(np.diff(exp.data["loglam"]) < 0), "legacy exposures run in decreasing wavelength"
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, specs, store)   # spec files alone: their coadds are kept
    assert proc.returncode == 0, proc.stderr
    assert summary["fibers_added"] == 24 and summary["files_failed"] == 0
    assert_store_equals(store, specs)
    with h5py.File(store / "1500-55000.h5", "r") as f:
        ds = f["1500/55000/1/exposures/100000/b"]
        assert ds.dtype.names == ("WAVE", "FLUX", "IVAR", "MASK", "WAVEDISP", "SKY", "CALIB"), \
            "a missing x column is a missing X field, not invented values"
        assert np.all(np.diff(ds["WAVE"]) < 0), "pixels keep the file's order"
    # The query carries those datasets as they are.
    out = tmp_path / "q.h5"
    lst = write_list(tmp_path / "l.csv", [(1500, 55000, 1), (1500, 55000, 7)])
    proc = query(query_bin, "--store", store, "--fibers", lst, "-o", out)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(store / "1500-55000.h5", "r") as s, h5py.File(out, "r") as q:
        for path in ("1500/55000/1/exposures/100000/b", "1500/55000/1/exposures/100001/r", "1500/55000/7/coadd"):
            assert q[path].dtype == s[path].dtype, path
            assert q[path][()].tobytes() == s[path][()].tobytes(), path
            assert dict(q[path].attrs) == dict(s[path].attrs), path


def test_eboss_lite_flavor_ingests_exactly(synth_bin, ingest_bin, tmp_path):
    out = tmp_path / "in"
    run([synth_bin, "--plates", "1", "--fibers", "12", "--npix", "600", "--spec-files", "--flavor", "eboss",
         "--first-plate", "1600", "--out", out], check=True)
    specs = sorted(out.rglob("spec-*.fits"))
    with fits.open(specs[0]) as h:
        assert len(h) == 4 and all("EXTNAME" not in x.header for x in h[1:])
        assert h[1].columns.names[0] == "FLUX"
    proc, _ = ingest(ingest_bin, specs, tmp_path / "store")
    assert proc.returncode == 0, proc.stderr
    assert_store_equals(tmp_path / "store", specs)


# ------------------------------------------------------------------------------------------------
# 2. NaN and Inf in headers and tables
# ------------------------------------------------------------------------------------------------


def test_nan_and_inf_header_cards_round_trip(ingest_bin, query_bin, legacy, tmp_path):
    src = sorted(legacy.rglob("spec-1500-55000-0003.fits"))[0]
    spec = tmp_path / "in" / src.name
    spec.parent.mkdir()
    shutil.copyfile(src, spec)
    set_card(spec, "SEEING50", "NaN")
    set_card(spec, "AIRMASS", "Inf")
    set_card(spec, "HELIO_RV", "-Inf")
    store = tmp_path / "store"
    proc, _ = ingest(ingest_bin, [spec], store)
    assert proc.returncode == 0, proc.stderr
    lst = write_list(tmp_path / "l.csv", [(1500, 55000, 3)])
    for name, ranks in (("plain.h5", None), ("mpi.h5", 2)):
        out = tmp_path / name
        proc = query(query_bin, "--store", store, "--fibers", lst, "-o", out, ranks=ranks)
        assert proc.returncode == 0, proc.stderr
        for path in (store / "1500-55000.h5", out):
            with h5py.File(path, "r") as f:
                a = f["1500/55000"].attrs
                assert np.isnan(a["SEEING50"]) and a["SEEING50"].dtype == np.float64, path
                assert a["AIRMASS"] == np.inf and a["HELIO_RV"] == -np.inf, path


def test_nan_redshift_stays_nan_in_the_catalog(ingest_bin, legacy, tmp_path):
    """A spall Z of NaN (astropy writes NaN floats in tables) is NaN in catalog.parquet, not null."""
    src = sorted(legacy.rglob("spec-1500-55000-0005.fits"))[0]
    spec = tmp_path / src.name
    with fits.open(src) as h:
        h[2].data["Z"] = np.float32("nan")
        h[2].data["RA"] = np.nan
        h.writeto(spec)
    store = tmp_path / "store"
    proc, _ = ingest(ingest_bin, [spec], store)
    assert proc.returncode == 0, proc.stderr
    t = pq.read_table(store / "catalog.parquet").to_pandas()
    row = t[t["fiber"] == 5].iloc[0]
    assert np.isnan(row["z"]), row
    assert t["z"].isna().sum() == 1 and t["z"].notna().sum() == 0 or np.isnan(t["z"]).all()
    z = pq.read_table(store / "catalog.parquet").column("z")
    assert z.null_count == 0, "NaN must not become null"


# ------------------------------------------------------------------------------------------------
# 4. unchecked assumptions
# ------------------------------------------------------------------------------------------------


def test_absurd_naxis2_is_one_line_and_exit_1(ingest_bin, legacy, tmp_path):
    src = sorted(legacy.rglob("spPlate-*.fits"))[0]
    bad = tmp_path / "in" / src.name
    bad.parent.mkdir()
    shutil.copyfile(src, bad)
    set_card(bad, "NAXIS2", "999999999999")
    proc, summary = ingest(ingest_bin, [bad], tmp_path / "store")
    assert proc.returncode == 1, proc.stderr
    lines = stderr_lines(proc)
    assert len(lines) == 1 and bad.name in lines[0] and "NAXIS" in lines[0], lines
    assert summary["files_failed"] == 1


# ------------------------------------------------------------------------------------------------
# 6. two ingests at once
# ------------------------------------------------------------------------------------------------


def test_concurrent_ingests_keep_every_fiber(synth_bin, ingest_bin, tmp_path):
    src = tmp_path / "src"
    run([synth_bin, "--plates", "3", "--fibers", "100", "--npix", "600", "--spec-files", "--exposures", "0",
         "--out", src, "--seed", "5"], check=True)
    specs = sorted(src.rglob("spec-*.fits"))
    halves = [tmp_path / "a", tmp_path / "b"]
    for h in halves:
        h.mkdir()
    for i, s in enumerate(specs):
        os.symlink(s, halves[i % 2] / s.name)
    for trial in range(3):
        store = tmp_path / f"store{trial}"
        procs = [subprocess.Popen([ingest_bin, "--quiet", h, store], stderr=subprocess.PIPE, text=True,
                                  env=mpi_env()) for h in halves]
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
        assert [p.returncode for p in procs] == [0, 0], outs
        fibers = 0
        for f5 in sorted(store.glob("*.h5")):
            with h5py.File(f5, "r") as f:
                (plate,) = f.keys()
                (mjd,) = f[plate].keys()
                fibers += sum(1 for k in f[f"{plate}/{mjd}"] if k.isdigit())
        assert fibers == 300, f"trial {trial}: {fibers} of 300 fibers in the store"
        assert_store_equals(store, specs)
        t = pq.read_table(store / "catalog.parquet")
        assert t.num_rows == 300


def test_no_wait_refuses_a_busy_store(synth_bin, ingest_bin, tmp_path):
    import fcntl
    store = tmp_path / "store"
    store.mkdir()
    with open(store / ".boss-ingest.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        src = tmp_path / "src"
        run([synth_bin, "--plates", "1", "--fibers", "5", "--npix", "300", "--out", src], check=True)
        proc = run([ingest_bin, "--no-wait", src, store], timeout=30)
        assert proc.returncode == 2 and "being written by another boss-ingest" in proc.stderr, proc.stderr
        waiter = subprocess.Popen([ingest_bin, "--quiet", src, store], stderr=subprocess.PIPE, text=True)
        time.sleep(1.0)
        assert waiter.poll() is None, "the second ingest must wait for the lock"
    _, err = waiter.communicate(timeout=TIMEOUT)
    assert waiter.returncode == 0 and "waiting for the store lock" in err, err
    assert list(store.glob("*.h5"))


# ------------------------------------------------------------------------------------------------
# 7. partial input, stale catalog
# ------------------------------------------------------------------------------------------------


def hdu_offsets(path: Path) -> list[int]:
    with fits.open(path) as h:
        return [x.fileinfo()["hdrLoc"] for x in h]


def test_file_cut_inside_a_header_is_refused(ingest_bin, legacy, tmp_path):
    src = sorted(legacy.rglob("spec-1500-55000-0002.fits"))[0]   # 8 HDUs (4 exposures)
    offsets = hdu_offsets(src)
    data = src.read_bytes()
    for k in (3, 5, 7):                         # cut in the middle of HDU k's header
        cut = tmp_path / f"cut{k}" / src.name
        cut.parent.mkdir()
        cut.write_bytes(data[:offsets[k] + 1000])
        proc, summary = ingest(ingest_bin, [cut], tmp_path / f"store{k}")
        assert proc.returncode == 1, proc.stderr
        assert summary["fibers_added"] == 0, "nothing of a truncated file is ingested"
        lines = stderr_lines(proc)
        assert len(lines) == 1 and cut.name in lines[0], lines
    # The intact file then ingests whole.
    proc, _ = ingest(ingest_bin, [src], tmp_path / "store3")
    assert proc.returncode == 0
    assert_store_equals(tmp_path / "store3", [src])


def test_stale_catalog_does_not_give_stale_answers(synth_bin, ingest_bin, query_bin, tmp_path):
    """A kill between the store rename and the catalog update: simulated by putting back an old
    catalog.parquet after a second ingest. Filters must still see every fiber."""
    a, b = tmp_path / "a", tmp_path / "b"
    run([synth_bin, "--plates", "1", "--fibers", "20", "--npix", "300", "--out", a, "--seed", "1"], check=True)
    run([synth_bin, "--plates", "1", "--fibers", "60", "--npix", "300", "--out", b, "--seed", "2",
         "--first-plate", "5001"], check=True)
    store = tmp_path / "store"
    assert ingest(ingest_bin, [a], store)[0].returncode == 0
    old = (store / "catalog.parquet").read_bytes()
    assert ingest(ingest_bin, [b], store)[0].returncode == 0
    (store / "catalog.parquet").write_bytes(old)
    os.utime(store / "catalog.parquet", (1, 1))
    proc = query(query_bin, "--store", store, "--z-min", "-1", "--list")
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip().splitlines()) == 1 + 80, proc.stdout[-500:]
    assert "catalog" in proc.stderr and "older" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------------
# 8. inputs that hang or vanish
# ------------------------------------------------------------------------------------------------


def test_link_loops_fifos_and_odd_names(ingest_bin, legacy, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    specs = sorted(legacy.rglob("spec-*.fits"))[:3]
    for s in specs[:2]:
        shutil.copyfile(s, tree / s.name)
    odd = tree / os.fsdecode(b"x\xff")
    odd.mkdir()
    shutil.copyfile(specs[2], odd / specs[2].name)
    os.symlink(".", tree / "a")
    os.symlink(".", tree / "b")
    os.mkfifo(tree / "spec-1500-55000-0099.fits")
    proc, summary = ingest(ingest_bin, [tree], tmp_path / "store", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert summary["files_read"] == 3, "each file is read once, whatever the links"
    assert summary["fibers_added"] == 3
    lines = stderr_lines(proc)
    assert len(lines) == 1 and "FIFO" in lines[0], lines


# ------------------------------------------------------------------------------------------------
# 10. numbers that wrap
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("plate", ["99999999999", "-3655"])
def test_plate_numbers_out_of_range_are_errors(ingest_bin, legacy, tmp_path, plate):
    src = sorted(legacy.rglob("spec-1500-55000-0004.fits"))[0]
    bad = tmp_path / "in" / "spec-odd.fits"        # not a pipeline name: the header decides
    bad.parent.mkdir()
    shutil.copyfile(src, bad)
    set_card(bad, "PLATEID", plate)
    proc, summary = ingest(ingest_bin, [bad], tmp_path / "store")
    assert proc.returncode == 1
    lines = stderr_lines(proc)
    assert len(lines) == 1 and f"plate {plate} is out of range" in lines[0], lines
    assert not list((tmp_path / "store").glob("*.h5"))


# ------------------------------------------------------------------------------------------------
# 11. conflicts
# ------------------------------------------------------------------------------------------------


def test_incremental_equals_clean_ingest_and_conflicts_are_reported(ingest_bin, legacy, tmp_path):
    plate_dir = next(legacy.iterdir())
    specs = sorted(plate_dir.glob("spec-*.fits"))
    plate_files = sorted(plate_dir.glob("sp[PZ]*.fits"))
    only_plate = tmp_path / "plate"
    only_plate.mkdir()
    for p in plate_files:
        shutil.copyfile(p, only_plate / p.name)
    clean = tmp_path / "clean"
    proc, summary = ingest(ingest_bin, [plate_dir], clean)
    assert proc.returncode == 0, proc.stderr
    assert {c["rule"] for c in summary["conflicts"]} == {"spplate_over_spec"}
    assert len(summary["conflicts"]) == 24
    for order in (["spec", "plate"], ["plate", "spec"]):
        store = tmp_path / "-".join(order)
        for what in order:
            ingest(ingest_bin, specs if what == "spec" else [only_plate], store)
        proc = run(["h5diff", clean / "1500-55000.h5", store / "1500-55000.h5"])
        assert proc.returncode == 0, f"{order}: incremental store differs from the clean one:\n{proc.stdout[:2000]}"
    # A different version of a fiber already in the store: the store's is kept, and that is said.
    other = tmp_path / "other" / specs[0].name
    other.parent.mkdir()
    with fits.open(specs[0]) as h:
        h[1].data["flux"] = h[1].data["flux"] + 1
        h.writeto(other)
    only_specs = tmp_path / "specs"
    proc, _ = ingest(ingest_bin, specs, only_specs)
    before = sha256(only_specs / "1500-55000.h5")
    proc = run([ingest_bin, "--json", other, only_specs])
    assert proc.returncode == 0
    summary = json.loads(proc.stdout)
    assert [c["rule"] for c in summary["conflicts"]] == ["store_first"], summary["conflicts"]
    assert "conflict: fiber 1500-55000-1" in proc.stderr, proc.stderr
    assert sha256(only_specs / "1500-55000.h5") == before


# ------------------------------------------------------------------------------------------------
# 12. messages
# ------------------------------------------------------------------------------------------------


def test_corrupt_hdu_is_not_reported_as_missing(ingest_bin, legacy, tmp_path):
    src = sorted(legacy.rglob("spec-1500-55000-0006.fits"))[0]
    offsets = hdu_offsets(src)
    data = bytearray(src.read_bytes())
    data[offsets[2]:offsets[2] + 8] = b"XTENSXON"     # HDU 2's header no longer starts an extension
    bad = tmp_path / src.name
    bad.write_bytes(bytes(data))
    proc, _ = ingest(ingest_bin, [bad], tmp_path / "store")
    assert proc.returncode == 1
    (line,) = stderr_lines(proc)
    assert "missing" not in line and bad.name in line, line


# ------------------------------------------------------------------------------------------------
# Fiber lists
# ------------------------------------------------------------------------------------------------


LIST_TEXTS = {
    "bom_crlf_fiberid": "\ufeffPLATE,MJD,FIBERID\r\n1500,55000,1\r\n1500,55000,2\r\n",
    "tabs": "plate\tmjd\tfiber\n1500\t55000\t1\n1500\t55000\t2\n",
    "quoted": '"plate","mjd","fiber"\n"1500","55000","1"\n"1500", "55000", "2"\n',
}


@pytest.mark.parametrize("kind", sorted(LIST_TEXTS))
def test_fiber_lists_as_people_write_them(ingest_bin, query_bin, legacy, tmp_path, kind):
    store = tmp_path / "store"
    ingest(ingest_bin, [legacy], store)
    lst = tmp_path / "l.csv"
    lst.write_bytes(LIST_TEXTS[kind].encode("utf-8"))
    out = tmp_path / "q.h5"
    proc = query(query_bin, "--store", store, "--fibers", lst, "-o", out, "--json")
    assert proc.returncode == 0, proc.stderr
    with h5py.File(out, "r") as f:
        assert sorted(int(k) for k in f["1500/55000"] if k.isdigit()) == [1, 2]


def test_list_plate_beyond_2_31_is_named(query_bin, legacy, tmp_path):
    lst = tmp_path / "l.csv"
    lst.write_text("plate,mjd,fiber\n1500,55000,1\n2147483648,55000,2\n")
    proc = query(query_bin, "--store", tmp_path, "--fibers", lst, "--list")
    assert proc.returncode == 2
    assert "line 3" in proc.stderr and "2147483648 is out of range" in proc.stderr, proc.stderr
