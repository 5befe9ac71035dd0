"""The fiber-merged (H5Boss v2) layout end to end (issue 10), checked with h5py and h5diff:

- `boss-ingest --layout v2`: every row of every coadds/* array equals the v1 store's coadd of the same
  fiber, pixel for pixel at its offset PIX0, and the padding is as documented (0; masks NODATA; WAVE
  the grid's wavelength); exposure rows likewise (padding 0 / NODATA, PIX0 0), SPECTROGRAPH/EXTNAME per
  row; for generated plates (spPlate + spec files + exposures) and every real file in ../shared;
- one store holds one layout; an off-grid spec file is refused in v2; incremental v2 = clean v2;
- boss-query between layouts: v1->v2->v1 equals the direct v1 query; v2->v2 equals v1->v2; v2 queries
  are h5diff-identical plain and under mpirun -n 1/2/4, both --io modes;
- export and --list from a v2 store equal those from the v1 store;
- --update/--add equal a fresh query of the same selection; a kill -9 during --update leaves the old
  subset unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest

from conftest import mpi_env, run, sha256

NODATA = 1 << 24
COADD_FIELDS = ["WAVE", "FLUX", "IVAR", "AND_MASK", "OR_MASK", "WAVEDISP", "SKY", "MODEL"]
MASKS = {"AND_MASK", "OR_MASK", "MASK"}


def ingest(ingest_bin, inputs, store, *options, ok=(0,)):
    proc = run([ingest_bin, "--quiet", "--json", *options, *inputs, store], timeout=300)
    assert proc.returncode in ok, proc.stderr
    return proc


def query(query_bin, store, fibers, out, *options, ranks=None, ok=(0,)):
    cmd = [query_bin, "--store", store, "--fibers", fibers, "-o", out, *options]
    if ranks:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    proc = run(cmd, timeout=300)
    assert proc.returncode in ok, proc.stderr
    return proc


def h5diff_ok(a, b):
    proc = run(["h5diff", a, b])
    assert proc.returncode == 0, f"h5diff {a} {b}:\n{proc.stdout[:3000]}"


def plate_groups(path):
    with h5py.File(path, "r") as f:
        return [(int(p), int(m)) for p in f if p.isdigit() for m in f[p]]


def grid_wave(i):
    return np.float32(10.0 ** (np.float64(i) * 1e-4))


def check_v2_against_v1(v2_path: Path, v1_path: Path):
    """Every v2 row equals its v1 dataset at its offset; padding as documented."""
    with h5py.File(v2_path, "r") as a, h5py.File(v1_path, "r") as b:
        assert a.attrs["BOSS_STORE_FORMAT"] == "h5boss-v2" and b.attrs["BOSS_STORE_FORMAT"] == "h5boss-v1"
        for plate, mjd in plate_groups(v2_path):
            g1 = b[f"{plate}/{mjd}"]
            g2 = a[f"{plate}/{mjd}"]
            assert dict(g1.attrs).keys() == dict(g2.attrs).keys()
            c = g2["coadds"]
            fibers = c["FIBERID"][()]
            assert list(fibers) == sorted(fibers), "rows sorted by FIBERID"
            assert sorted(int(k) for k in g1 if k.isdigit()) == list(fibers)
            index0 = int(round(c.attrs["LOGLAM0"] / 1e-4))
            assert c.attrs["COEFF1"] == 1e-4
            width = c["FLUX"].shape[1]
            for r, fiber in enumerate(fibers):
                v1 = g1[f"{fiber}/coadd"][()]
                p0, n = int(c["PIX0"][r]), int(c["NPIX"][r])
                assert n == len(v1)
                for name in COADD_FIELDS:
                    row = c[name][r]
                    assert row[p0:p0 + n].tobytes() == v1[name].tobytes(), f"{plate}-{mjd}-{fiber} {name}"
                    pad = np.concatenate([row[:p0], row[p0 + n:]])
                    if name in MASKS:
                        assert np.all(pad == NODATA), f"{name} padding"
                    elif name == "WAVE":
                        cols = list(range(p0)) + list(range(p0 + n, width))
                        assert pad.tobytes() == np.array([grid_wave(index0 + j) for j in cols],
                                                         dtype=np.float32).tobytes()
                    else:
                        assert np.all(pad == 0), f"{name} padding"
            # Exposures: each v1 exposure dataset is one row of its camera-exposure group.
            v1_exposures = {(fiber, int(e), arm) for fiber in fibers if f"{fiber}/exposures" in g1
                            for e in g1[f"{fiber}/exposures"] for arm in g1[f"{fiber}/exposures/{e}"]}
            seen = set()
            for e in g2.get("exposures", {}):
                for arm in g2[f"exposures/{e}"]:
                    x = g2[f"exposures/{e}/{arm}"]
                    for r, fiber in enumerate(x["FIBERID"][()]):
                        ds = g1[f"{fiber}/exposures/{e}/{arm}"]
                        v1 = ds[()]
                        n = int(x["NPIX"][r])
                        assert n == len(v1) and x["PIX0"][r] == 0
                        assert x["SPECTROGRAPH"][r] == ds.attrs["SPECTROGRAPH"]
                        assert x["EXTNAME"][r].decode() == ds.attrs["EXTNAME"]
                        for name in v1.dtype.names:
                            row = x[name][r]
                            assert row[:n].tobytes() == v1[name].tobytes(), f"{fiber}/{e}/{arm} {name}"
                            assert np.all(row[n:] == (NODATA if name in MASKS else 0))
                        assert set(v1.dtype.names) == {k for k in x if k in
                                                        {"WAVE", "FLUX", "IVAR", "MASK", "WAVEDISP", "SKY", "X", "CALIB"}}
                        seen.add((int(fiber), int(e), arm))
            assert seen == v1_exposures
            for t in ("plugmap", "spall", "zline", "zbest"):
                assert (t in g1) == (t in g2)
                if t in g1:
                    assert g1[t][()].tobytes() == g2[t][()].tobytes() and g1[t].dtype == g2[t].dtype


@pytest.fixture(scope="module")
def stores(ingest_bin, synth_query, tmp_path_factory):
    """The generated query set ingested in both layouts."""
    root = tmp_path_factory.mktemp("v2-stores")
    ingest(ingest_bin, [synth_query], root / "v1")
    ingest(ingest_bin, [synth_query], root / "v2", "--layout", "v2")
    return root / "v1", root / "v2"


@pytest.fixture(scope="module")
def selection(stores, tmp_path_factory):
    """Fibers of all 3 plate-MJDs, with and without exposures (multiples of 10), and one missing (61)."""
    v1, _ = stores
    rows = []
    for plate, mjd in sorted(pm for f in v1.glob("*.h5") for pm in plate_groups(f)):
        rows += [(plate, mjd, f) for f in (1, 2, 7, 10, 20, 33, 61)]
    path = tmp_path_factory.mktemp("v2-lists") / "sel.csv"
    path.write_text("plate,mjd,fiber\n" + "".join(f"{p},{m},{f}\n" for p, m, f in rows))
    return path


def test_v2_store_rows_equal_v1_coadds(stores):
    v1, v2 = stores
    names = sorted(p.name for p in v1.glob("*.h5"))
    assert names == sorted(p.name for p in v2.glob("*.h5"))
    for name in names:
        check_v2_against_v1(v2 / name, v1 / name)


def test_real_files_in_v2_equal_v1(ingest_bin, real_sdss, real_store, tmp_path):
    """Every real file (BOSS full with 14 exposures, 80 eBOSS lite files, the spAll cut) sits on the
    grid and gives v2 rows equal to its v1 coadd; the spPlate slice is refused as in v1."""
    store = tmp_path / "v2"
    proc = ingest(ingest_bin, [real_sdss], store, "--layout", "v2", ok=(1,))
    assert "spPlate-4055-55359-0020.fits" in proc.stderr
    assert json.loads(proc.stdout)["files_failed"] == 1
    for f in sorted(real_store.glob("*.h5")):
        check_v2_against_v1(store / f.name, f)


def test_one_store_one_layout(ingest_bin, synth_query, stores, tmp_path):
    v1, _ = stores
    copy = tmp_path / "store"
    shutil.copytree(v1, copy)
    before = {p.name: sha256(p) for p in copy.glob("*.h5")}
    proc = run([ingest_bin, "--layout", "v2", synth_query, copy])
    assert proc.returncode == 2 and "v1 layout" in proc.stderr and "one store holds one layout" in proc.stderr
    assert before == {p.name: sha256(p) for p in copy.glob("*.h5")}


def test_off_grid_spec_file_is_refused_in_v2(ingest_bin, synth_query, tmp_path):
    from astropy.io import fits
    src = sorted(synth_query.rglob("spec-*.fits"))[0]
    bad = tmp_path / "in" / src.name
    bad.parent.mkdir()
    with fits.open(src) as h:
        h[1].data["loglam"] = h[1].data["loglam"] + np.float32(3e-5)
        h.writeto(bad)
    proc = run([ingest_bin, "--layout", "v2", "--quiet", bad, tmp_path / "store"])
    assert proc.returncode == 1
    assert bad.name in proc.stderr and "not on the 1e-4 log-lambda grid" in proc.stderr, proc.stderr
    proc = run([ingest_bin, "--layout", "v1", "--quiet", bad, tmp_path / "store1"])
    assert proc.returncode == 0, "v1 keeps any wavelengths"


def test_incremental_v2_equals_clean_and_rerun_changes_nothing(ingest_bin, synth_query, stores, tmp_path):
    _, clean = stores
    specs = sorted(synth_query.rglob("spec-*.fits"))
    plates = sorted(p for p in synth_query.rglob("sp[PZ]*.fits"))
    store = tmp_path / "inc"
    ingest(ingest_bin, specs[::2], store, "--layout", "v2")
    ingest(ingest_bin, specs[1::2], store, "--layout", "v2")
    ingest(ingest_bin, plates, store, "--layout", "v2")
    for f in sorted(clean.glob("*.h5")):
        h5diff_ok(f, store / f.name)
    before = {p.name: sha256(p) for p in store.glob("*.h5")}
    proc = ingest(ingest_bin, [synth_query], store, "--layout", "v2")
    assert json.loads(proc.stdout)["plate_mjds_written"] == 0
    assert before == {p.name: sha256(p) for p in store.glob("*.h5")}


def test_queries_between_layouts(query_bin, stores, selection, tmp_path):
    v1, v2 = stores
    direct_v1 = tmp_path / "v1.h5"
    query(query_bin, v1, selection, direct_v1, ok=(1,))
    v1_to_v2 = tmp_path / "v1-v2.h5"
    query(query_bin, v1, selection, v1_to_v2, "--layout", "v2", ok=(1,))
    v2_to_v2 = tmp_path / "v2-v2.h5"
    query(query_bin, v2, selection, v2_to_v2, ok=(1,))
    h5diff_ok(v1_to_v2, v2_to_v2)
    check_v2_against_v1(v2_to_v2, direct_v1)
    # Round trip: v1 -> v2 -> v1 equals the direct v1 query.
    sub = tmp_path / "sub"
    sub.mkdir()
    for plate, mjd in plate_groups(v1_to_v2):
        with h5py.File(v1_to_v2, "r") as f, h5py.File(sub / f"{plate:04d}-{mjd:05d}.h5", "w") as g:
            for k, v in f.attrs.items():
                g.attrs[k] = v
            f.copy(f[str(plate)], g, name=str(plate))
    back = tmp_path / "back.h5"
    query(query_bin, sub, selection, back, "--layout", "v1", ok=(1,))
    h5diff_ok(direct_v1, back)
    v2_to_v1 = tmp_path / "v2-v1.h5"
    query(query_bin, v2, selection, v2_to_v1, "--layout", "v1", ok=(1,))
    h5diff_ok(direct_v1, v2_to_v1)


@pytest.mark.mpi
@pytest.mark.parametrize("io", ["independent", "collective"])
@pytest.mark.parametrize("ranks", [None, 1, 2, 4], ids=["plain", "n1", "n2", "n4"])
@pytest.mark.parametrize("src", ["v1", "v2"])
def test_v2_output_same_for_any_ranks(query_bin, stores, selection, tmp_path, io, ranks, src):
    v1, v2 = stores
    plain = tmp_path / "plain.h5"
    query(query_bin, v2, selection, plain, ok=(1,))
    out = tmp_path / "out.h5"
    store = v1 if src == "v1" else v2
    proc = query(query_bin, store, selection, out, "--layout", "v2", "--io", io, "--json", ranks=ranks, ok=(1,))
    summary = json.loads(proc.stdout)
    assert summary["fibers_missing"] == 3, "fiber 61 of each plate is not in the store"
    h5diff_ok(plain, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5", "plain.h5"]


def test_export_and_list_from_v2_equal_v1(query_bin, stores, selection, tmp_path):
    v1, v2 = stores
    tables = []
    for store in (v1, v2):
        out = tmp_path / f"{store.name}.parquet"
        run([query_bin, "--store", store, "--fibers", selection, "--parquet", out], timeout=120)
        tables.append(pd.read_parquet(out))
        listing = run([query_bin, "--store", store, "--z-min", "-10", "--list"], timeout=120)
        tables.append(listing.stdout)
    a, la, b, lb = tables
    assert la == lb
    assert list(a.columns) == list(b.columns) and len(a) == len(b) > 0
    for col in a.columns:
        for x, y in zip(a[col], b[col]):
            if isinstance(x, np.ndarray):
                assert x.tobytes() == y.tobytes(), col
            else:
                assert x == y or (x != x and y != y), col


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_update_and_add_equal_fresh_queries(query_bin, stores, tmp_path, layout):
    v1, v2 = stores
    store = v2 if layout == "v2" else v1
    pms = sorted(pm for f in store.glob("*.h5") for pm in plate_groups(f))
    def lst(name, fibers):
        p = tmp_path / name
        p.write_text("plate,mjd,fiber\n" + "".join(f"{a},{b},{c}\n" for a, b, c in fibers))
        return p
    first = lst("first.csv", [(p, m, f) for p, m in pms[:2] for f in (1, 10, 11, 20)])
    second = lst("second.csv", [(p, m, f) for p, m in pms[1:] for f in (10, 12, 20, 30)])
    union = lst("union.csv", [(p, m, f) for p, m in pms[:2] for f in (1, 10, 11, 20)]
                + [(p, m, f) for p, m in pms[1:] for f in (10, 12, 20, 30)])
    for mode, want_list in (("--update", second), ("--add", union)):
        sub = tmp_path / f"sub{mode}.h5"
        query(query_bin, store, first, sub)
        proc = query(query_bin, store, second, sub, mode, "--json")
        s = json.loads(proc.stdout)
        assert s["kept"] == 2 and s["added"] == 6, s
        assert s["dropped"] == (6 if mode == "--update" else 0), s
        fresh = tmp_path / f"fresh{mode}.h5"
        query(query_bin, store, want_list, fresh)
        h5diff_ok(fresh, sub)
    # An old subset of the other layout converts.
    other = tmp_path / "other.h5"
    query(query_bin, store, first, other, "--layout", "v1" if layout == "v2" else "v2")
    query(query_bin, store, second, other, "--update", "--layout", layout)
    h5diff_ok(tmp_path / "fresh--update.h5", other)


def test_update_needs_an_existing_subset(query_bin, stores, selection, tmp_path):
    v1, _ = stores
    proc = run([query_bin, "--store", v1, "--fibers", selection, "-o", tmp_path / "none.h5", "--update"])
    assert proc.returncode == 2 and "need an existing output" in proc.stderr


def test_kill_during_update_keeps_the_old_subset(query_bin, ingest_bin, synth_bin, tmp_path):
    """A bigger store, so that the update runs long enough to be killed in the middle."""
    fits_dir = tmp_path / "fits"
    run([synth_bin, "--plates", "4", "--fibers", "400", "--npix", "4600", "--seed", "8", "--out", fits_dir],
        check=True, timeout=600)
    store = tmp_path / "store"
    ingest(ingest_bin, [fits_dir], store)
    rows = [(5000 + i, 55000 + 7 * i, f) for i in range(4) for f in range(1, 401)]
    small = tmp_path / "small.csv"
    small.write_text("plate,mjd,fiber\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows[::50]))
    big = tmp_path / "big.csv"
    big.write_text("plate,mjd,fiber\n" + "".join(f"{a},{b},{c}\n" for a, b, c in rows))
    sub = tmp_path / "out" / "sub.h5"
    sub.parent.mkdir()
    query(query_bin, store, small, sub)
    before = sha256(sub)
    # The whole new subset, for a kill that lands after the rename (then the update is complete).
    ref = tmp_path / "ref" / "sub.h5"
    ref.parent.mkdir()
    shutil.copy(sub, ref)
    query(query_bin, store, big, ref, "--update")
    for delay in (0.05, 0.15, 0.3):
        p = subprocess.Popen([str(query_bin), "--store", str(store), "--fibers", str(big), "-o", str(sub),
                              "--update"], env=mpi_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        if p.returncode == 0:
            # Finished before the kill: the subset is the new one; make it the small one again.
            query(query_bin, store, small, sub, "--update")
            before = sha256(sub)
            continue
        if sha256(sub) != before:
            # Killed after the new subset was renamed into place: it must be the whole new one.
            diff = run(["h5diff", ref, sub])
            assert diff.returncode == 0, f"delay {delay}: the subset is neither the old nor the new one: {diff.stdout}"
            query(query_bin, store, small, sub, "--update")
            before = sha256(sub)
            continue
        with h5py.File(sub, "r") as f:
            f.visit(lambda _: None)
    # A killed process cannot remove its temporary file; the next run on this host does.
    query(query_bin, store, small, sub, "--update")
    assert sorted(p.name for p in sub.parent.iterdir()) == ["sub.h5"]
