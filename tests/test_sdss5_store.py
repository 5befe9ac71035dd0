"""SDSS-V (DR19) spectra through the whole engine: boss-synth's SDSS-V files (which follow the data
model, test_sdss5_files.py) ingest bit-exactly, as SDSS distributes them, beside SDSS-I–IV; they are
selected by field, MJD and CATALOGID, by SQL, by CATALOGID lists, at any rank count; the HDF5 subset
and the Parquet export hold the same values as the FITS files read with astropy (and specutils)."""

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from conftest import run

ARGS = ["--flavor", "sdss5", "--plates", "2", "--fibers", "6", "--npix", "4648", "--first-plate", "15000",
        "--spec-files", "--exposures", "3", "--spall-rows", "14", "--seed", "5"]
FIELDS = [(15000, 60000), (15001, 60007)]
PIXEL_COLUMNS = {"FLUX": "FLUX", "IVAR": "IVAR", "AND_MASK": "AND_MASK", "OR_MASK": "OR_MASK",
                 "WDISP": "WAVEDISP", "SKY": "SKY", "MODEL": "MODEL", "WRESL": "WRESL"}
EXPOSURE_COLUMNS = {"FLUX": "FLUX", "IVAR": "IVAR", "AND_MASK": "AND_MASK", "OR_MASK": "OR_MASK",
                    "WDISP": "WAVEDISP", "SKY": "SKY", "WRESL": "WRESL"}


@pytest.fixture(scope="module")
def tree(synth_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp("sdss5-tree")
    run([synth_bin, *ARGS, "--out", out], check=True, timeout=600)
    return out


@pytest.fixture(scope="module")
def full_store(ingest_bin, tree, tmp_path_factory):
    """Everything as distributed: spField + spZbest + spZline, spec files, spAll and spAll-lite."""
    store = tmp_path_factory.mktemp("sdss5-store") / "store"
    proc = run([ingest_bin, "--json", "--quiet", tree, store], check=True, timeout=600)
    return store, json.loads(proc.stdout)


def spec_files(tree, kind="full"):
    files = sorted((tree / "spectra" / kind).rglob("spec-*.fits"))
    assert files, f"no {kind} spec files under {tree}"
    return files


def group(f, field, mjd, coadd="daily"):
    return f[f"sdss5/{coadd}/{field}/{mjd}"]


def store_file(store, field, mjd, coadd="daily"):
    return store / f"sdss5-{coadd}-{field:06d}-{mjd:05d}.h5"


def row_of(block, target):
    rows = np.flatnonzero(block["TARGET_INDEX"][()] == target)
    assert len(rows) == 1, f"TARGET_INDEX {target}: {len(rows)} rows in {block.name}"
    return int(rows[0])


def real(block, name, r):
    p0, n = int(block["PIX0"][r]), int(block["NPIX"][r])
    return block[name][r, p0:p0 + n]


def bits(a):
    a = np.ascontiguousarray(a)
    return a.view(np.uint32) if a.dtype.itemsize == 4 else a


def identity(h):
    s = h["SPALL"].data
    return int(s["FIELD"][0]), int(s["MJD"][0]), int(s["TARGET_INDEX"][0]), int(s["CATALOGID"][0])


def check_coadd(block, r, coadd):
    """A store row equals a FITS COADD table: bit for bit, WAVE = float32(10**loglam) in float64."""
    for fits_name, store_name in PIXEL_COLUMNS.items():
        if fits_name in coadd.columns.names:
            want = np.asarray(coadd[fits_name]).astype(coadd[fits_name].dtype.newbyteorder("="))
            np.testing.assert_array_equal(bits(real(block, store_name, r)), bits(want), err_msg=store_name)
    # WAVE is float32(10**loglam) in float64: from the spec file's float32 LOGLAM, or (when the
    # spField's copy was kept) from COEFF0 + COEFF1 * i, the grid point; both sit on the same grid.
    from_spec = (10.0 ** np.asarray(coadd["LOGLAM"], dtype=np.float64)).astype(np.float32)
    i0 = round(block.attrs["LOGLAM0"] / 1e-4) + int(block["PIX0"][r])
    from_grid = (10.0 ** ((i0 + np.arange(len(from_spec))) * 1e-4)).astype(np.float32)
    got = real(block, "WAVE", r)
    assert np.array_equal(got, from_spec) or np.array_equal(got, from_grid)
    np.testing.assert_allclose(got, from_spec, rtol=1e-6)


def test_spec_files_ingest_bit_exact_with_exposures_and_tables(ingest_bin, tree, tmp_path):
    store = tmp_path / "store"
    run([ingest_bin, "--quiet", tree / "spectra" / "full", store], check=True, timeout=600)
    names = sorted(p.name for p in store.glob("*.h5"))
    assert names == [store_file(store, *fm).name for fm in FIELDS]
    checked_exposures = 0
    for path in spec_files(tree):
        with fits.open(path) as h:
            field, mjd, target, catalogid = identity(h)
            with h5py.File(store_file(store, field, mjd)) as f:
                g = group(f, field, mjd)
                c = g["coadds"]
                r = row_of(c, target)
                assert int(c["CATALOGID"][r]) == catalogid
                check_coadd(c, r, h["COADD"].data)
                spall = g["spall"][()]
                mine = spall[spall["TARGET_INDEX"] == target]
                assert len(mine) == 1
                for name in h["SPALL"].columns.names:
                    want, got = h["SPALL"].data[name][0], mine[name][0]
                    if isinstance(want, str):
                        assert got.decode().rstrip() == want.rstrip(), name
                    else:
                        np.testing.assert_array_equal(np.asarray(got), np.asarray(want), err_msg=name)
                for table in ("ZALL", "ZLINE"):
                    rows = g[table.lower()][()]
                    assert (rows["TARGET_INDEX"] == target).sum() == len(h[table].data), table
                for hdu in h[5:]:
                    e = g[f"exposures/{hdu.header['EXPOSURE']}"]
                    er = row_of(e, target)
                    assert e["EXTNAME"][er].decode() == hdu.name
                    for fits_name, store_name in EXPOSURE_COLUMNS.items():
                        want = np.asarray(hdu.data[fits_name])
                        want = want.astype(want.dtype.newbyteorder("="))
                        np.testing.assert_array_equal(bits(real(e, store_name, er)), bits(want))
                    checked_exposures += 1
    assert checked_exposures > 0, "the generated full files carry exposures"


def test_lite_files_have_no_exposures(ingest_bin, synth_bin, tmp_path):
    out = tmp_path / "lite"
    args = [a if a != "sdss5" else "sdss5-lite" for a in ARGS]
    i = args.index("--exposures")
    del args[i:i + 2]
    run([synth_bin, *args, "--out", out], check=True, timeout=600)
    store = tmp_path / "store"
    run([ingest_bin, "--quiet", out / "spectra" / "lite", store], check=True, timeout=600)
    for path in spec_files(out, "lite"):
        with fits.open(path) as h:
            field, mjd, target, _ = identity(h)
            with h5py.File(store_file(store, field, mjd)) as f:
                g = group(f, field, mjd)
                assert "exposures" not in g
                check_coadd(g["coadds"], row_of(g["coadds"], target), h["COADD"].data)


def test_spfield_files_give_the_spec_files_values(ingest_bin, tree, tmp_path):
    """spField + spZbest + spZline alone: every target, the same pixels as its spec file."""
    fields_only = tmp_path / "fields"
    for d in tree.iterdir():
        if d.is_dir() and d.name.isdigit():
            shutil.copytree(d, fields_only / d.name)
    store = tmp_path / "store"
    proc = run([ingest_bin, "--json", "--quiet", fields_only, store], check=True, timeout=600)
    summary = json.loads(proc.stdout)
    assert summary["files_read"] == 2 and summary["fibers_added"] == 12, summary
    for path in spec_files(tree):
        with fits.open(path) as h:
            field, mjd, target, catalogid = identity(h)
            with h5py.File(store_file(store, field, mjd)) as f:
                g = group(f, field, mjd)
                assert g.attrs["HEADER_SOURCE"] == "spField"
                r = row_of(g["coadds"], target)
                assert int(g["coadds/CATALOGID"][r]) == catalogid
                check_coadd(g["coadds"], r, h["COADD"].data)
                for t in ("plugmap", "zbest", "zline"):
                    assert target in set(g[t]["TARGET_INDEX"]), t


def test_a_tree_as_sdss_distributes_it_ingests_without_conflicts(full_store, tree):
    store, summary = full_store
    assert summary["failures"] == [] and summary["conflicts"] == [], summary
    assert summary["plate_mjds_written"] == 2
    cat = pq.read_table(store / "catalog.parquet").to_pandas()
    assert len(cat) == 12
    assert set(cat["survey"]) == {"sdss5"}
    assert cat["plate"].isna().all() and cat["fiber"].isna().all()
    for path in spec_files(tree):
        with fits.open(path) as h:
            field, mjd, target, catalogid = identity(h)
            row = cat[(cat["field_id"] == field) & (cat["mjd"] == mjd) & (cat["catalogid"] == catalogid)]
            assert len(row) == 1
            s = h["SPALL"].data
            assert row["z"].iloc[0] == np.float32(s["Z"][0])
            assert row["class"].iloc[0] == s["CLASS"][0].strip()
            assert row["SDSS_ID"].iloc[0] == s["SDSS_ID"][0]
            assert row["ra"].iloc[0] == s["PLUG_RA"][0]
            assert row["file"].iloc[0] == f"sdss5-daily-{field:06d}-{mjd:05d}.h5"
    # Ingesting the same tree again changes nothing.


def test_the_same_tree_again_is_unchanged(ingest_bin, tree, full_store, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(full_store[0], store)
    before = {p.name: p.stat().st_mtime_ns for p in store.glob("*.h5")}
    proc = run([ingest_bin, "--json", "--quiet", tree, store], check=True, timeout=600)
    summary = json.loads(proc.stdout)
    assert summary["plate_mjds_written"] == 0 and summary["conflicts"] == [], summary
    assert {p.name: p.stat().st_mtime_ns for p in store.glob("*.h5")} == before


def targets_list(tree, n, path):
    rows = []
    for spec in spec_files(tree)[:n]:
        with fits.open(spec) as h:
            field, mjd, target, catalogid = identity(h)
            rows.append((field, mjd, catalogid, target, spec))
    path.write_text("FIELD,MJD,CATALOGID\n" + "".join(f"{f},{m},{c}\n" for f, m, c, _, _ in rows))
    return rows


@pytest.mark.parametrize("ranks", [None, 1, 2, 4])
def test_a_list_of_catalogids_gives_their_spectra_at_any_rank_count(query_bin, full_store, tree, tmp_path, ranks):
    store, _ = full_store
    wanted = targets_list(tree, 4, tmp_path / "targets.csv")
    out = tmp_path / "out.h5"
    cmd = [query_bin, "--store", store, "--fibers", tmp_path / "targets.csv", "-o", out, "--json"]
    if ranks:
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    proc = run(cmd, check=True, timeout=600)
    summary = json.loads(proc.stdout)
    assert summary["fibers_found"] == 4 and summary["fibers_missing"] == 0, summary
    with h5py.File(out) as f:
        seen = 0
        for field, mjd, catalogid, target, spec in wanted:
            g = group(f, field, mjd)
            with fits.open(spec) as h:
                r = row_of(g["coadds"], target)
                assert int(g["coadds/CATALOGID"][r]) == catalogid
                check_coadd(g["coadds"], r, h["COADD"].data)
                for hdu in h[5:]:
                    e = g[f"exposures/{hdu.header['EXPOSURE']}"]
                    np.testing.assert_array_equal(real(e, "FLUX", row_of(e, target)), hdu.data["FLUX"])
            seen += 1
        total = sum(len(f[f"sdss5/daily/{fi}/{m}/coadds/TARGET_INDEX"]) for fi, m in FIELDS
                    if f"sdss5/daily/{fi}/{m}" in f)
        assert total == 4 == seen
        for fi, m in FIELDS:
            if f"sdss5/daily/{fi}/{m}" in f:
                g = group(f, fi, m)
                assert set(g["spall"]["TARGET_INDEX"]) == set(g["coadds/TARGET_INDEX"][()])


def test_parquet_export_holds_the_fits_values(query_bin, full_store, tree, tmp_path):
    store, _ = full_store
    out = tmp_path / "s5.parquet"
    run([query_bin, "--store", store, "--where", "survey = 'sdss5'", "--parquet", out], check=True, timeout=600)
    df = pd.read_parquet(out)
    assert len(df) == 12
    by_id = {int(c): i for i, c in enumerate(df["catalogid"])}
    for spec in spec_files(tree):
        with fits.open(spec) as h:
            _, _, _, catalogid = identity(h)
            row = df.iloc[by_id[catalogid]]
            coadd = h["COADD"].data
            np.testing.assert_array_equal(row["flux"], coadd["FLUX"])
            np.testing.assert_array_equal(row["wresl"], coadd["WRESL"])
            np.testing.assert_array_equal(row["and_mask"], coadd["AND_MASK"])
            # WAVE of the kept copy: the spField's (grid point) — see check_coadd.
            np.testing.assert_allclose(
                row["wave"], (10.0 ** coadd["LOGLAM"].astype(np.float64)).astype(np.float32), rtol=1e-6)
            assert row["SDSS_ID"] == h["SPALL"].data["SDSS_ID"][0]


def test_specutils_sdss5_reader_agrees_with_the_store(full_store, tree):
    specutils = pytest.importorskip("specutils")
    spectrum_cls = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    store, _ = full_store
    for spec in spec_files(tree)[:3]:
        s = spectrum_cls.read(spec, format="SDSS-V spec", hdu=1)
        with fits.open(spec) as h:
            field, mjd, target, _ = identity(h)
        with h5py.File(store_file(store, field, mjd)) as f:
            c = group(f, field, mjd)["coadds"]
            r = row_of(c, target)
            np.testing.assert_array_equal(real(c, "FLUX", r), s.flux.value)
            np.testing.assert_allclose(real(c, "WAVE", r), s.spectral_axis.to_value("Angstrom"), rtol=1e-6)


def test_one_store_holds_both_generations(ingest_bin, query_bin, synth_small, tree, tmp_path):
    store = tmp_path / "store"
    # Both generations in one run.
    run([ingest_bin, "--quiet", synth_small, tree, store], check=True, timeout=600)
    # Nullable integers stay integers (sdss4 rows have no CATALOGID).
    cat = pq.read_table(store / "catalog.parquet").to_pandas(integer_object_nulls=True)
    assert set(cat["survey"]) == {"sdss4", "sdss5"}
    duckdb = pytest.importorskip("duckdb")
    want = set(duckdb.sql(
        f"SELECT key FROM read_parquet('{store / 'catalog.parquet'}') WHERE z > 0.5 AND class = 'QSO'"
    ).fetchnumpy()["key"].tolist())
    proc = run([query_bin, "--store", store, "--where", "z > 0.5 AND class = 'QSO'", "--list"],
               check=True, timeout=300)
    listed = pd.read_csv(__import__("io").StringIO(proc.stdout))
    assert set(listed["key"]) == want and want
    if "sdss5" in set(cat[cat["key"].isin(want)]["survey"]):
        assert {"survey", "field_id", "catalogid"} <= set(listed.columns)
    # --cone and --match find rows of both generations.
    pick = pd.concat([cat[cat["survey"] == g].head(1) for g in ("sdss4", "sdss5")])
    for _, row in pick.iterrows():
        proc = run([query_bin, "--store", store, "--cone", f"{row['ra']},{row['dec']},0.0001", "--list"],
                   check=True, timeout=300)
        assert row["key"] in set(pd.read_csv(__import__("io").StringIO(proc.stdout))["key"])
    targets = tmp_path / "targets.csv"
    pick[["ra", "dec"]].to_csv(targets, index=False)
    proc = run([query_bin, "--store", store, "--match", targets, "--radius", "1arcsec", "--list"],
               check=True, timeout=300)
    assert set(pd.read_csv(__import__("io").StringIO(proc.stdout))["key"]) == set(pick["key"])
    # --ids with CATALOGID.
    s5 = cat[cat["survey"] == "sdss5"].head(3)
    ids = tmp_path / "ids.csv"
    ids.write_text("CATALOGID\n" + "".join(f"{c}\n" for c in s5["catalogid"]))
    proc = run([query_bin, "--store", store, "--ids", ids, "--list"], check=True, timeout=300)
    listed = pd.read_csv(__import__("io").StringIO(proc.stdout))
    assert set(listed["key"]) == set(s5["key"])
    # --ids with SDSS_ID.
    sid = next(c for c in cat.columns if c.lower() == "sdss_id")
    ids.write_text("SDSS_ID\n" + "".join(f"{c}\n" for c in s5[sid]))
    proc = run([query_bin, "--store", store, "--ids", ids, "--list"], check=True, timeout=300)
    listed = pd.read_csv(__import__("io").StringIO(proc.stdout))
    assert set(listed["key"]) >= set(s5["key"])
    # Both generations in one HDF5 subset.
    mixed = tmp_path / "mixed.csv"
    out = tmp_path / "mixed.h5"
    keys = list(cat[cat["survey"] == "sdss4"]["key"].head(2)) + list(s5["key"])
    run([query_bin, "--store", store, "--where", f"key IN ({','.join(map(str, keys))})", "-o", out],
        check=True, timeout=300)
    with h5py.File(out) as f:
        assert "sdss5" in f and any(k.isdigit() for k in f)


@pytest.mark.parametrize("coadd", ["epoch", "allepoch"])
def test_epoch_and_allepoch_coadds_have_their_own_groups(ingest_bin, synth_bin, tmp_path, coadd):
    out = tmp_path / coadd
    run([synth_bin, *ARGS, "--coadd", coadd, "--out", out], check=True, timeout=600)
    store = tmp_path / "store"
    proc = run([ingest_bin, "--json", "--quiet", out, store], check=True, timeout=600)
    summary = json.loads(proc.stdout)
    assert summary["failures"] == [] and summary["conflicts"] == [], summary
    kind = "epoch" if coadd == "epoch" else "allepoch_apo"
    names = sorted(p.name for p in store.glob("*.h5"))
    assert names and all(n.startswith(f"sdss5-{kind}-") for n in names), names
    cat = pq.read_table(store / "catalog.parquet").to_pandas()
    assert len(cat) == 12 and (cat["key"] >= 3 * 10**18).all()
    if coadd == "allepoch":
        assert (cat["field_id"] == 0).all()


# ------------------------------------------------------------------------------------------------
# Bad input: one clear message naming the file (or list line), nothing written under a final name
# ------------------------------------------------------------------------------------------------

def stderr_lines(proc):
    return [line for line in proc.stderr.splitlines() if line.strip()]


def test_a_spec_file_without_its_spall_hdu_is_named(ingest_bin, tree, tmp_path):
    src = spec_files(tree)[0]
    bad = tmp_path / "in" / src.name
    bad.parent.mkdir()
    with fits.open(src) as h:
        del h["SPALL"]
        h.writeto(bad)
    proc = run([ingest_bin, "--json", "--quiet", bad, tmp_path / "store"])
    assert proc.returncode == 1
    lines = stderr_lines(proc)
    assert len(lines) == 1 and bad.name in lines[0] and "SPALL" in lines[0], lines
    assert not list((tmp_path / "store").glob("sdss5-*.h5"))


def test_a_file_name_that_disagrees_with_its_content_is_refused(ingest_bin, tree, tmp_path):
    src = spec_files(tree)[0]
    wrong = tmp_path / "in" / "spec-015000-60000-1234567.fits"
    wrong.parent.mkdir()
    shutil.copy(src, wrong)
    proc = run([ingest_bin, "--quiet", wrong, tmp_path / "store"])
    assert proc.returncode == 1
    lines = stderr_lines(proc)
    assert len(lines) == 1 and wrong.name in lines[0] and "says" in lines[0], lines


def test_two_different_copies_of_a_target_are_a_conflict(ingest_bin, tree, tmp_path):
    src = spec_files(tree)[0]
    a, b = tmp_path / "a" / src.name, tmp_path / "b" / src.name
    a.parent.mkdir()
    b.parent.mkdir()
    shutil.copy(src, a)
    with fits.open(src) as h:
        h["COADD"].data["FLUX"][10] += 1
        h.writeto(b)
    proc = run([ingest_bin, "--json", a.parent, b.parent, tmp_path / "store"])
    summary = json.loads(proc.stdout)
    assert len(summary["conflicts"]) == 1, summary
    c = summary["conflicts"][0]
    assert c["fiber"].startswith("field 015000-60000 TARGET_INDEX") and c["rule"] == "first_input", c
    assert "conflict: field 015000-60000 TARGET_INDEX" in proc.stderr


@pytest.mark.parametrize("text,words", [
    ("FIELD,MJD,TARGET\n15000,60000,1\n", "line 1"),
    ("FIELD,MJD,CATALOGID\n15000,60000,99999999999999999999\n", "line 2"),
    ("FIELD,MJD,CATALOGID\n1500000,60000,5\n", "out of range"),
])
def test_bad_spectrum_lists_name_the_line(query_bin, full_store, tmp_path, text, words):
    store, _ = full_store
    lst = tmp_path / "list.csv"
    lst.write_text(text)
    proc = run([query_bin, "--store", store, "--fibers", lst, "-o", tmp_path / "o.h5"])
    assert proc.returncode == 2
    assert words in proc.stderr and "list.csv" in proc.stderr, proc.stderr
    assert not (tmp_path / "o.h5").exists()


def test_a_target_the_store_lacks_is_reported(query_bin, full_store, tree, tmp_path):
    store, _ = full_store
    targets_list(tree, 1, tmp_path / "t.csv")
    with open(tmp_path / "t.csv", "a") as f:
        f.write("15000,60000,42\n")
    proc = run([query_bin, "--store", store, "--fibers", tmp_path / "t.csv", "-o", tmp_path / "o.h5",
                "--json"])
    assert proc.returncode == 1
    assert "not in the store: field 15000 mjd 60000 catalogid 42" in proc.stderr
    assert json.loads(proc.stdout)["fibers_found"] == 1
