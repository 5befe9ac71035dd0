"""DESI coadds and redrock files (issue 18): the real pair in data-samples/real/desi and files
generated after it with astropy (tests/clients/desi_files.py) ingest into one store file per coadd;
every array and table value in the store, in the HDF5 subset and in the Parquet export equals what
astropy, specutils' "DESI coadd" reader and desispec's read_spectra read from the FITS files (generated ones
also by boss-synth --flavor desi); the catalog holds DESI rows
beside SDSS rows; bad inputs are named and nothing is half-written."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import h5py
import nested_pandas
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.ipc  # noqa: F401  (pa.ipc)
import pytest
from astropy.io import fits

import desi_files
from conftest import mpi_env, run, shared_dir

REAL = desi_files.REAL
HEALPIX = {"survey": "main", "program": "dark", "pixnum": 9557}
TILE = {"tileid": 80605, "petal": 3, "night": 20210205}


def group_path(group: dict) -> str:
    if "pixnum" in group:
        return f"desi/healpix/{group['survey']}/{group['program']}/{group['pixnum']}"
    return f"desi/tiles/cumulative/{group['tileid']}/{group['night']}/{group['petal']}"


def store_name(group: dict) -> str:
    if "pixnum" in group:
        return f"desi-healpix-{group['survey']}-{group['program']}-{group['pixnum']:05}.h5"
    return f"desi-tile-{group['tileid']:06}-{group['petal']}-thru{group['night']}.h5"


def native(a):
    a = np.asarray(a)
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in ("=", "|") else a


def same_values(stored, fitscol, what):
    s, f = np.asarray(stored), native(fitscol)
    if f.dtype.kind in "SU":
        s = np.char.rstrip(s.astype("S")) if s.dtype.kind == "S" else s
        assert [x.decode() if isinstance(x, bytes) else str(x) for x in s.ravel()] == \
            [str(x).rstrip() for x in f.ravel()], what
        return
    assert s.shape == f.shape, (what, s.shape, f.shape)
    if f.dtype.kind == "f":
        # Bit for bit (NaN payloads included).
        assert np.array_equal(np.ascontiguousarray(s).view(np.uint8),
                              np.ascontiguousarray(f.astype(s.dtype)).view(np.uint8)), what
    else:
        assert np.array_equal(s.astype(np.int64) if s.dtype.kind in "iub" else s,
                              f.astype(np.int64) if f.dtype.kind in "iub" else f), what


def compare_group(g, coadd: Path, redrock: Path | None):
    """Every array and table value of store group `g` equals the FITS files' (rows in TARGETID order)."""
    with fits.open(coadd) as c:
        ids = native(c["FIBERMAP"].data["TARGETID"])
        order = np.argsort(ids, kind="stable")
        n = len(ids)
        assert list(g["coadds/TARGET_ROW"][...]) == list(range(1, n + 1))
        assert list(g["coadds/TARGETID"][...]) == list(ids[order])
        for arm in "brz":
            A = arm.upper()
            same_values(g[f"{arm}/WAVELENGTH"][...], c[f"{A}_WAVELENGTH"].data, f"{arm} wave")
            for q in ("FLUX", "IVAR", "MASK", "RESOLUTION"):
                same_values(g[f"{arm}/{q}"][...], c[f"{A}_{q}"].data[order], f"{arm} {q}")
            assert g[f"{arm}/FLUX"].attrs["BUNIT"] == c[f"{A}_FLUX"].header["BUNIT"]
        row_of = {int(t): i + 1 for i, t in enumerate(ids[order])}
        tables = [("fibermap", c["FIBERMAP"].data), ("exp_fibermap", c["EXP_FIBERMAP"].data),
                  ("scores", c["SCORES"].data)]
        if redrock is not None:
            r = fits.open(redrock)
            tables += [("redshifts", r["REDSHIFTS"].data), ("tsnr2", r["TSNR2"].data)]
        for name, data in tables:
            stored = g[name][...]
            rows = np.array([row_of[int(t)] for t in native(data["TARGETID"])])
            o = np.argsort(rows, kind="stable")
            assert list(stored["TARGET_ROW"]) == list(rows[o]), name
            for col in data.columns.names:
                same_values(stored[col], data[col][o], f"{name}.{col}")


@pytest.fixture(scope="module")
def desi_real_store(ingest_bin, tmp_path_factory):
    d = tmp_path_factory.mktemp("desi-real")
    inputs = d / "in"
    inputs.mkdir()
    for f in REAL.glob("*.fits"):
        shutil.copy(f, inputs / f.name)
    run([ingest_bin, inputs, d / "store"], check=True)
    return d


def test_the_real_files_are_the_shared_ones():
    shared = shared_dir("real-desi")
    for f in REAL.glob("*.fits"):
        assert f.read_bytes() == (shared / f.name).read_bytes(), f.name


def test_real_coadd_and_redrock_are_bit_exact_in_the_store(desi_real_store):
    with h5py.File(desi_real_store / "store" / "desi-healpix-special-dark-27247.h5") as f:
        g = f["desi/healpix/special/dark/27247"]
        assert g.attrs["ROW_KEY"] == "TARGET_ROW"
        assert g.attrs["HPXPIXEL"] == 27247
        compare_group(g, REAL / "coadd-special-dark-27247.fits", REAL / "redrock-special-dark-27247.fits")


def test_specutils_desi_reader_agrees_with_store_subset_and_export(query_bin, desi_real_store, tmp_path):
    from specutils import SpectrumList
    spectra = SpectrumList.read(REAL / "coadd-special-dark-27247.fits", format="DESI coadd")
    ids = tmp_path / "ids.csv"
    ids.write_text("TARGETID\n39089837499744649\n")
    out = tmp_path / "sub.h5"
    pq = tmp_path / "sub.parquet"
    run([query_bin, "--store", desi_real_store / "store", "--ids", ids, "-o", out, "--parquet", pq], check=True)
    df = pd.read_parquet(pq)
    assert len(df) == 1 and df.survey[0] == "desi" and df.TARGETID[0] == 39089837499744649
    with h5py.File(out) as f:
        g = f["desi/healpix/special/dark/27247"]
        for arm, s in zip("brz", spectra):
            assert np.array_equal(g[f"{arm}/WAVELENGTH"][...], s.spectral_axis.value)
            assert np.array_equal(g[f"{arm}/FLUX"][0], s.flux.value[0])
            assert np.array_equal(g[f"{arm}/IVAR"][0], s.uncertainty.array[0])
            assert np.array_equal(df[f"{arm}_wave"][0], s.spectral_axis.value)
            assert np.array_equal(df[f"{arm}_flux"][0], s.flux.value[0])
            assert np.array_equal(df[f"{arm}_ivar"][0], s.uncertainty.array[0])
            assert np.array_equal(df[f"{arm}_mask"][0] != 0, s.mask[0])
        compare_group(g, REAL / "coadd-special-dark-27247.fits", REAL / "redrock-special-dark-27247.fits")


def test_catalog_maps_desi_columns_onto_the_common_ones(desi_real_store):
    cat = pd.read_parquet(desi_real_store / "store" / "catalog.parquet")
    fm = fits.getdata(REAL / "coadd-special-dark-27247.fits", "FIBERMAP")
    z = fits.getdata(REAL / "redrock-special-dark-27247.fits", "REDSHIFTS")
    row = cat.iloc[0]
    assert row.survey == "desi" and pd.isna(row.plate) and pd.isna(row.mjd)
    assert row.ra == fm["TARGET_RA"][0] and row.dec == fm["TARGET_DEC"][0]
    assert row["class"] == z["SPECTYPE"][0].strip() and row.z == np.float32(z["Z"][0])
    assert row.zwarning == z["ZWARN"][0] and row.ZERR == z["ZERR"][0]
    for col in list(fm.columns.names) + list(z.columns.names):
        if col not in ("Z", "OBJTYPE"):
            assert col in cat.columns, col


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    d = tmp_path_factory.mktemp("desi-gen") / "desi"
    hp = desi_files.write_pair(d, HEALPIX, 7, seed=1)
    tile = desi_files.write_pair(d, TILE, 4, seed=2, first_id=39_100_000_000_000_000)
    return d, hp, tile


def test_a_tree_as_desi_distributes_it_ingests_and_redrock_later_fills_redshifts(ingest_bin, generated, tmp_path):
    d, (hp_coadd, hp_rr), (tile_coadd, tile_rr) = generated
    coadds = tmp_path / "coadds"
    for f in (hp_coadd, tile_coadd):
        dst = coadds / f.relative_to(d)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(f, dst)
    store = tmp_path / "store"
    p = run([ingest_bin, coadds, store])
    assert p.returncode == 0
    warnings = [line for line in p.stderr.splitlines() if "warning" in line and "redrock" in line]
    assert len(warnings) == 2, p.stderr
    cat = pd.read_parquet(store / "catalog.parquet")
    assert len(cat) == 11 and cat.z.isna().all() and (cat.survey == "desi").all()
    # The redrock files alone, later: they complete their coadds' store files.
    p = run([ingest_bin, hp_rr, tile_rr, store], check=True)
    assert "warning" not in p.stderr
    cat = pd.read_parquet(store / "catalog.parquet")
    assert cat.z.notna().all() and set(cat["class"]) == {"QSO", "GALAXY"}
    for group, coadd, rr in ((HEALPIX, hp_coadd, hp_rr), (TILE, tile_coadd, tile_rr)):
        with h5py.File(store / store_name(group)) as f:
            compare_group(f[group_path(group)], coadd, rr)
    # Everything again: nothing changes.
    before = {f.name: f.stat().st_mtime_ns for f in store.glob("*.h5")}
    p = run([ingest_bin, d, store], check=True)
    assert "0 conflicts" in p.stderr + p.stdout
    assert before == {f.name: f.stat().st_mtime_ns for f in store.glob("*.h5")}


@pytest.mark.parametrize("ranks", [1, 2, 4])
def test_targetid_lists_and_sql_select_desi_spectra_at_any_rank_count(ingest_bin, query_bin, generated, tmp_path, ranks):
    d, (hp_coadd, _), (tile_coadd, _) = generated
    store = tmp_path / "store"
    run([ingest_bin, d, store], check=True)
    wanted = list(fits.getdata(hp_coadd, "FIBERMAP")["TARGETID"][:3]) + \
        list(fits.getdata(tile_coadd, "FIBERMAP")["TARGETID"][:1])
    ids = tmp_path / "ids.csv"
    ids.write_text("TARGETID\n" + "\n".join(str(t) for t in wanted) + "\n")
    out, pq = tmp_path / "sub.h5", tmp_path / "sub.parquet"
    cmd = ["mpirun", "-n", str(ranks), query_bin, "--store", store, "--ids", ids, "-o", out, "--parquet", pq]
    run(cmd, check=True, env=mpi_env())
    df = pd.read_parquet(pq)
    assert sorted(df.TARGETID) == sorted(int(t) for t in wanted)
    with h5py.File(out) as f:
        got = sorted(list(f[group_path(HEALPIX)]["coadds/TARGETID"][...]) +
                     list(f[group_path(TILE)]["coadds/TARGETID"][...]))
        assert got == sorted(int(t) for t in wanted)
        with fits.open(hp_coadd) as c:
            fm_ids = list(c["FIBERMAP"].data["TARGETID"])
            for i, t in enumerate(f[group_path(HEALPIX)]["coadds/TARGETID"][...]):
                j = fm_ids.index(t)
                assert np.array_equal(f[group_path(HEALPIX)]["z/FLUX"][i], c["Z_FLUX"].data[j])
                assert np.array_equal(f[group_path(HEALPIX)]["b/RESOLUTION"][i], c["B_RESOLUTION"].data[j])
                k = list(df.TARGETID).index(t)
                assert np.array_equal(df.r_flux[k], c["R_FLUX"].data[j])
    p = run([query_bin, "--store", store, "--sql",
             "SELECT survey, count(*) AS n FROM catalog WHERE z > 0 AND class = 'QSO' GROUP BY survey"], check=True)
    assert p.stdout.strip().splitlines()[1] == "desi,6"  # every other target of 7 + 4 is a QSO


def test_sdss_and_desi_in_one_store_one_query_one_parquet(ingest_bin, query_bin, synth_bin, tmp_path):
    sdss = tmp_path / "sdss"
    run([synth_bin, "--plates", "1", "--fibers", "20", "--npix", "500", "--seed", "4", "--out", sdss], check=True)
    desi = tmp_path / "desi"
    desi_files.write_pair(desi, HEALPIX, 5, seed=3)
    store = tmp_path / "store"
    run([ingest_bin, sdss, desi, store], check=True)
    cat = pd.read_parquet(store / "catalog.parquet")
    assert set(cat.survey) == {"sdss4", "desi"}
    pq, out = tmp_path / "mixed.parquet", tmp_path / "mixed.h5"
    run([query_bin, "--store", store, "--where", "z >= 0", "--parquet", pq, "-o", out], check=True)
    df = pd.read_parquet(pq)
    both = df[df.z.notna()]
    assert set(both.survey) == {"sdss4", "desi"}
    sd, de = df[df.survey == "sdss4"], df[df.survey == "desi"]
    assert sd.flux.notna().all() and sd.b_flux.isna().all()
    assert de.b_flux.notna().all() and de.flux.isna().all() and len(de) == 5
    with h5py.File(out) as f:
        assert group_path(HEALPIX) in f
        assert len(f[group_path(HEALPIX)]["coadds/TARGET_ROW"]) == 5


@pytest.mark.parametrize("how,words", [
    ("no-z-arm", ["HDU Z_FLUX is missing"]),
    ("resolution-shape", ["HDU B_RESOLUTION has shape", "[7, 11, 2741]"]),
    ("wave-length", ["HDU R_FLUX has shape"]),
])
def test_a_bad_coadd_is_named_and_writes_nothing(ingest_bin, generated, tmp_path, how, words):
    _, (hp_coadd, _), _ = generated
    bad = tmp_path / "in" / hp_coadd.name
    bad.parent.mkdir()
    desi_files.damage(hp_coadd, bad, how)
    store = tmp_path / "store"
    p = run([ingest_bin, bad, store])
    assert p.returncode == 1
    assert str(bad) in p.stderr and all(w in p.stderr for w in words), p.stderr
    assert "panicked" not in p.stderr
    assert not list(store.glob("*.h5")) and not list(store.glob("*tmp*"))


def test_a_redrock_file_that_does_not_match_its_coadd_is_refused(ingest_bin, generated, tmp_path):
    _, (hp_coadd, hp_rr), _ = generated
    store = tmp_path / "store"
    run([ingest_bin, hp_coadd, store], check=True)
    before = (store / store_name(HEALPIX)).read_bytes()
    bad = tmp_path / hp_rr.name
    desi_files.damage(hp_rr, bad, "redrock-ids")
    p = run([ingest_bin, bad, store])
    assert p.returncode == 1 and str(bad) in p.stderr and "REDSHIFTS" in p.stderr, p.stderr
    assert (store / store_name(HEALPIX)).read_bytes() == before
    # A redrock file whose coadd is nowhere.
    lone = tmp_path / "lone"
    lone.mkdir()
    _, rr = desi_files.write_pair(lone, TILE, 2, seed=9)
    p = run([ingest_bin, rr, tmp_path / "store2"])
    assert p.returncode == 1 and "without its coadd" in p.stderr, p.stderr


def test_a_name_that_disagrees_with_the_header_is_refused(ingest_bin, generated, tmp_path):
    _, (hp_coadd, _), _ = generated
    wrong = tmp_path / "coadd-main-dark-9558.fits"
    shutil.copy(hp_coadd, wrong)
    p = run([ingest_bin, wrong, tmp_path / "store"])
    assert p.returncode == 1 and "9558" in p.stderr and "9557" in p.stderr, p.stderr


def test_spectrum_lists_name_desi_targets_and_their_coadds(ingest_bin, query_bin, generated, tmp_path):
    d, (hp_coadd, _), (tile_coadd, _) = generated
    store = tmp_path / "store"
    run([ingest_bin, d, store], check=True)
    hp_id = int(fits.getdata(hp_coadd, "FIBERMAP")["TARGETID"][0])
    tile_id = int(fits.getdata(tile_coadd, "FIBERMAP")["TARGETID"][0])
    lst = tmp_path / "list.csv"
    lst.write_text("TARGETID,SURVEY,PROGRAM,TILEID,PETAL\n"
                   f"{hp_id},main,dark,,\n{tile_id},,,80605,3\n{hp_id},sv1,dark,,\n")
    p = run([query_bin, "--store", store, "--fibers", lst, "--list"])
    assert p.returncode == 1, p.stderr  # one listed spectrum is not in the store
    assert f"TARGETID {hp_id} survey sv1 program dark" in p.stderr
    got = pd.read_csv(io.StringIO(p.stdout))
    assert sorted(got.TARGETID) == sorted([hp_id, tile_id]) and set(got.survey) == {"desi"}
    bad = tmp_path / "bad.csv"
    bad.write_text("TARGETID,PETAL\n5,12\n")
    p = run([query_bin, "--store", store, "--fibers", bad, "--list"])
    assert p.returncode == 2 and "line 2" in p.stderr and "petal" in p.stderr, p.stderr


def test_the_crossmatch_example_puts_both_surveys_in_one_parquet(repo_root, ingest_bin, tmp_path):
    p = run([sys.executable, repo_root / "examples" / "sdss_desi_crossmatch.py", tmp_path / "work",
             tmp_path / "both.png"], check=True, timeout=600)
    df = pd.read_parquet(tmp_path / "work" / "both.parquet", dtype_backend="numpy_nullable")
    assert sorted(df.survey) == ["desi"] * 3 + ["sdss4"] * 3, p.stdout
    desi = df[df.survey == "desi"]
    fm = fits.getdata(next((tmp_path / "work" / "desi").rglob("coadd-*.fits")), "FIBERMAP")
    assert sorted(desi.TARGETID) == sorted(int(t) for t in fm["TARGETID"])  # exact 64-bit IDs
    assert (tmp_path / "both.png").stat().st_size > 10_000


def test_a_zpix_catalog_gives_redshifts_to_coadds_without_redrock_files(ingest_bin, generated, tmp_path):
    d, (hp_coadd, hp_rr), _ = generated
    store = tmp_path / "store"
    run([ingest_bin, hp_coadd, store], check=True)
    zpix = tmp_path / "zpix-main-dark.fits"
    desi_files.write_zpix(zpix, [(HEALPIX, hp_rr)])
    p = run([ingest_bin, zpix, store], check=True)
    assert "1 store files" in p.stderr, p.stderr
    zcat = fits.getdata(zpix, "ZCATALOG")
    cat = pd.read_parquet(store / "catalog.parquet", dtype_backend="numpy_nullable").sort_values("TARGETID")
    o = np.argsort(zcat["TARGETID"])
    assert list(cat.TARGETID) == list(zcat["TARGETID"][o])
    assert list(cat.z) == list(zcat["Z"][o].astype(np.float32))
    assert list(cat["class"]) == [s.strip() for s in zcat["SPECTYPE"][o]]
    assert list(cat.specprimary) == list(zcat["ZCAT_PRIMARY"][o])
    assert list(cat.ZCAT_NSPEC) == list(zcat["ZCAT_NSPEC"][o])
    with h5py.File(store / store_name(HEALPIX)) as f:
        t = f[group_path(HEALPIX)]["zcatalog"][...]
        assert list(t["TARGET_ROW"]) == list(range(1, len(zcat) + 1))
        for col in zcat.columns.names:
            same_values(t[col], zcat[col][o], f"zcatalog.{col}")
    # A coadd with a zcatalog in one run: no warning about its missing redrock file.
    p = run([ingest_bin, hp_coadd, zpix, tmp_path / "store2"], check=True)
    assert "warning" not in p.stderr, p.stderr


def test_a_ztile_catalog_gives_redshifts_to_tile_coadds(ingest_bin, generated, tmp_path):
    d, (hp_coadd, _), (tile_coadd, tile_rr) = generated
    store = tmp_path / "store"
    run([ingest_bin, hp_coadd, tile_coadd, store], check=True)
    ztile = tmp_path / "ztile-main-dark-cumulative.fits"
    desi_files.write_zpix(ztile, [(TILE, tile_rr)])
    p = run([ingest_bin, ztile, store], check=True)
    assert "1 store files" in p.stderr, p.stderr  # the tile's; the HEALPix coadd has no rows there
    zcat = fits.getdata(ztile, "ZCATALOG")
    o = np.argsort(zcat["TARGETID"])
    cat = pd.read_parquet(store / "catalog.parquet", dtype_backend="numpy_nullable")
    tile = cat[cat.TARGETID.isin(zcat["TARGETID"])].sort_values("TARGETID")
    assert list(tile.TARGETID) == list(zcat["TARGETID"][o])
    assert list(tile.z) == list(zcat["Z"][o].astype(np.float32))
    assert list(tile["class"]) == [s.strip() for s in zcat["SPECTYPE"][o]]
    assert cat[~cat.TARGETID.isin(zcat["TARGETID"])].z.isna().all()
    with h5py.File(store / store_name(TILE)) as f:
        t = f[group_path(TILE)]["zcatalog"][...]
        assert list(t["TARGET_ROW"]) == list(range(1, len(zcat) + 1))
        for col in zcat.columns.names:
            same_values(t[col], zcat[col][o], f"zcatalog.{col}")
    # A per-night tile catalog (NIGHT, no LASTNIGHT) names what it lacks; nothing is written.
    pernight = tmp_path / "ztile-main-dark-pernight.fits"
    with fits.open(ztile) as f:
        cols = [c for c in f["ZCATALOG"].columns if c.name != "LASTNIGHT"]
        hdu = fits.BinTableHDU.from_columns(cols, name="ZCATALOG")
        fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(pernight)
    before = sorted((p.name, p.stat().st_mtime_ns) for p in store.glob("*.h5"))
    p = run([ingest_bin, pernight, store])
    assert p.returncode == 1, p.stderr
    assert str(pernight) in p.stderr and "LASTNIGHT" in p.stderr and "panicked" not in p.stderr, p.stderr
    assert sorted((p.name, p.stat().st_mtime_ns) for p in store.glob("*.h5")) == before


def test_a_fibermap_with_a_targetid_twice_is_refused(ingest_bin, generated, tmp_path):
    _, (hp_coadd, _), _ = generated
    bad = tmp_path / "in" / hp_coadd.name
    bad.parent.mkdir()
    desi_files.damage(hp_coadd, bad, "duplicate-targetid")
    p = run([ingest_bin, bad, tmp_path / "store"])
    assert p.returncode == 1, p.stderr
    assert str(bad) in p.stderr and "HDU FIBERMAP" in p.stderr and "rows 1 and 2" in p.stderr, p.stderr
    assert "panicked" not in p.stderr
    assert not list((tmp_path / "store").glob("*.h5"))


def test_two_differing_copies_of_a_coadd_are_one_conflict_and_the_first_is_kept(ingest_bin, generated, tmp_path):
    _, (hp_coadd, _), _ = generated
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    second.mkdir()
    shutil.copy(hp_coadd, first / hp_coadd.name)
    desi_files.damage(hp_coadd, second / hp_coadd.name, "flux-value")
    store = tmp_path / "store"
    p = run([ingest_bin, "--json", first, second, store])
    assert p.returncode == 0, p.stderr
    (c,) = json.loads(p.stdout)["conflicts"]
    assert c["rule"] == "first_input" and str(first) in c["kept"] and str(second) in c["dropped"], c
    with h5py.File(store / store_name(HEALPIX)) as f:
        compare_group(f[group_path(HEALPIX)], hp_coadd, None)
    # The same against the store: the store's copy stays, byte for byte.
    before = (store / store_name(HEALPIX)).read_bytes()
    p = run([ingest_bin, "--json", second, store])
    assert p.returncode == 0, p.stderr
    (c,) = json.loads(p.stdout)["conflicts"]
    assert c["rule"] == "store_first", c
    assert (store / store_name(HEALPIX)).read_bytes() == before


def test_a_target_in_a_healpix_and_a_tile_coadd_is_two_spectra(ingest_bin, query_bin, tmp_path):
    d = tmp_path / "desi"
    (hp_coadd, _) = desi_files.write_pair(d, HEALPIX, 3, seed=5, first_id=39_200_000_000_000_000)
    (tile_coadd, _) = desi_files.write_pair(d, TILE, 3, seed=5, first_id=39_200_000_000_000_000)
    # The same targets (same seed and first_id), spectra that differ in one value.
    changed = tmp_path / "changed.fits"
    desi_files.damage(tile_coadd, changed, "flux-value")
    shutil.move(changed, tile_coadd)
    ids = fits.getdata(hp_coadd, "FIBERMAP")["TARGETID"]
    assert list(ids) == list(fits.getdata(tile_coadd, "FIBERMAP")["TARGETID"])
    store = tmp_path / "store"
    run([ingest_bin, d, store], check=True)
    lst = tmp_path / "ids.csv"
    lst.write_text(f"TARGETID\n{int(ids[0])}\n")
    arrow = tmp_path / "both.arrow"
    run([query_bin, "--store", store, "--fibers", lst, "--arrow", arrow], check=True)
    t = pa.ipc.open_file(arrow).read_all().to_pandas()
    assert list(t.TARGETID) == [int(ids[0])] * 2
    assert all(len(w) == 2751 for w in t.b_wave)
    want = [fits.getdata(c, "B_FLUX")[0] for c in (hp_coadd, tile_coadd)]  # ids[0] is row 0 of both
    assert not np.array_equal(want[0], want[1])
    got = [np.asarray(f, dtype=np.float32) for f in t.b_flux]
    assert sorted(int(np.array_equal(g, want[1])) for g in got) == [0, 1]
    assert all(np.array_equal(g, want[0]) or np.array_equal(g, want[1]) for g in got)


def test_a_mixed_nested_export_has_a_nested_column_per_arm(ingest_bin, query_bin, synth_bin, tmp_path):
    sdss = tmp_path / "sdss"
    run([synth_bin, "--plates", "1", "--fibers", "10", "--npix", "500", "--seed", "4", "--out", sdss], check=True)
    desi = tmp_path / "desi"
    coadd, _ = desi_files.write_pair(desi, HEALPIX, 4, seed=3)
    store = tmp_path / "store"
    run([ingest_bin, sdss, desi, store], check=True)
    out = tmp_path / "nested"
    run(["mpirun", "-n", "2", query_bin, "--store", store, "--where", "z >= 0", "--nested", "--parquet", f"{out}/"],
        check=True, env=mpi_env())
    nf = nested_pandas.read_parquet(out)
    assert nf.nested_columns == ["spectrum", "spectrum_b", "spectrum_r", "spectrum_z"]
    de = nf[nf.survey == "desi"]
    assert len(de) == 4 and de["spectrum"].isna().all() and nf[nf.survey == "sdss4"]["spectrum_b"].isna().all()
    # SDSS-I–IV spectra have no wresl: NaN in the nested form (a nested column has one length per row).
    sd = nf[nf.survey == "sdss4"]
    assert len(sd) == 10 and all(np.isnan(s["wresl"].to_numpy()).all() and len(s) == 500 for s in sd["spectrum"])
    fm = list(fits.getdata(coadd, "FIBERMAP")["TARGETID"])
    for _, row in de.iterrows():
        j = fm.index(row.TARGETID)
        for arm in ("b", "r", "z"):
            pixels = row[f"spectrum_{arm}"]
            assert np.array_equal(pixels["flux"].to_numpy(np.float32), fits.getdata(coadd, f"{arm.upper()}_FLUX")[j])
            assert np.array_equal(pixels["wave"].to_numpy(), fits.getdata(coadd, f"{arm.upper()}_WAVELENGTH"))


@pytest.fixture(scope="module")
def synth_desi(synth_bin, ingest_bin, tmp_path_factory):
    """Two HEALPix coadds of 40 targets with their redrock files, written by boss-synth, and their store."""
    d = tmp_path_factory.mktemp("synth-desi")
    run([synth_bin, "--flavor", "desi", "--plates", "2", "--fibers", "40", "--seed", "3", "--out", d / "in"],
        check=True)
    run([ingest_bin, d / "in", d / "store"], check=True)
    return d


def synth_pairs(d: Path):
    coadds = sorted((d / "in").rglob("coadd-*.fits"))
    return [(c, c.with_name(c.name.replace("coadd-", "redrock-"))) for c in coadds]


def test_boss_synth_writes_desi_files_shaped_as_the_real_ones(synth_desi):
    pairs = synth_pairs(synth_desi)
    assert [c.relative_to(synth_desi / "in").as_posix() for c, _ in pairs] == [
        "healpix/main/dark/90/9000/coadd-main-dark-9000.fits", "healpix/main/dark/90/9001/coadd-main-dark-9001.fits"]
    made = [(p, REAL / f"{kind}-special-dark-27247.fits") for pair in pairs
            for p, kind in zip(pair, ("coadd", "redrock"))]
    for path, template in made:
        with fits.open(path, checksum=True) as g, fits.open(template) as t:
            assert [h.name for h in g] == [h.name for h in t]
            for a, b in zip(t, g):
                # The same cards in the same order (values of sizes and the group's keywords aside).
                assert list(a.header) == list(b.header), a.name
                if "CHECKSUM" in a.header:
                    assert b.verify_checksum() == 1 and b.verify_datasum() == 1, f"{b.name}: checksums"
                if isinstance(a, fits.BinTableHDU):
                    assert (a.columns.names, a.columns.formats, a.columns.units) == \
                        (b.columns.names, b.columns.formats, b.columns.units), a.name
                    assert len(b.data) == 40 * (2 if b.name == "EXP_FIBERMAP" else 1), b.name
                elif a.name.endswith("WAVELENGTH"):
                    assert np.array_equal(a.data, b.data) and b.data.dtype == a.data.dtype
                elif a.data is not None:
                    assert b.data.shape == (40,) + a.data.shape[1:] and b.data.dtype == a.data.dtype, a.name
            assert g[0].header["HPXPIXEL"] == int(path.parent.name) and g[0].header["SURVEY"] == "main"
    with fits.open(pairs[0][0]) as c, fits.open(pairs[0][1]) as r:
        ids = c["FIBERMAP"].data["TARGETID"]
        assert len(set(ids)) == 40 and list(ids) != sorted(ids), "distinct TARGETIDs in DESI's unsorted order"
        assert list(r["REDSHIFTS"].data["TARGETID"]) == list(ids)
        assert set(r["REDSHIFTS"].data["SPECTYPE"]) == {"QSO", "GALAXY"}


def test_boss_synth_desi_files_ingest_bit_exact_and_read_with_desispec(synth_desi):
    import desispec.io as desispec_io  # installed by scripts/setup.sh
    for coadd, redrock in synth_pairs(synth_desi):
        pix = coadd.parent.name
        group = {"survey": "main", "program": "dark", "pixnum": int(pix)}
        with h5py.File(synth_desi / "store" / store_name(group)) as f:
            g = f[group_path(group)]
            compare_group(g, coadd, redrock)
            s = desispec_io.read_spectra(str(coadd))
            order = np.argsort(np.asarray(s.fibermap["TARGETID"]), kind="stable")
            for arm in "brz":
                assert np.array_equal(g[f"{arm}/WAVELENGTH"][...], s.wave[arm])
                assert np.array_equal(g[f"{arm}/FLUX"][...], s.flux[arm][order])
                assert np.array_equal(g[f"{arm}/IVAR"][...], s.ivar[arm][order])
                assert np.array_equal(g[f"{arm}/MASK"][...].astype(np.int64), s.mask[arm][order].astype(np.int64))
                assert np.array_equal(g[f"{arm}/RESOLUTION"][...], s.resolution_data[arm][order])


def test_desispec_reader_agrees_with_store_subset_and_export(query_bin, desi_real_store, tmp_path):
    import desispec.io as desispec_io  # installed by scripts/setup.sh
    s = desispec_io.read_spectra(str(REAL / "coadd-special-dark-27247.fits"))
    ids = tmp_path / "ids.csv"
    ids.write_text("TARGETID\n39089837499744649\n")
    out, pq = tmp_path / "sub.h5", tmp_path / "sub.parquet"
    run([query_bin, "--store", desi_real_store / "store", "--ids", ids, "-o", out, "--parquet", pq], check=True)
    df = pd.read_parquet(pq)
    assert list(df.TARGETID) == list(s.fibermap["TARGETID"])
    with h5py.File(out) as f:
        g = f["desi/healpix/special/dark/27247"]
        for arm in "brz":
            for q, want in (("WAVELENGTH", s.wave[arm]), ("FLUX", s.flux[arm][0]), ("IVAR", s.ivar[arm][0]),
                            ("RESOLUTION", s.resolution_data[arm][0])):
                got = g[f"{arm}/{q}"][...] if q == "WAVELENGTH" else g[f"{arm}/{q}"][0]
                assert np.array_equal(got, want), (arm, q)
            assert np.array_equal(g[f"{arm}/MASK"][0].astype(np.int64), s.mask[arm][0].astype(np.int64))
            assert np.array_equal(df[f"{arm}_wave"][0], s.wave[arm])
            assert np.array_equal(df[f"{arm}_flux"][0], s.flux[arm][0])
            assert np.array_equal(df[f"{arm}_ivar"][0], s.ivar[arm][0])
            assert np.array_equal(df[f"{arm}_mask"][0].astype(np.int64), s.mask[arm][0].astype(np.int64))
