"""The catalog as astronomers query it, checked against independent engines:

- every column of the store's spall, zbest and plugmap tables is in catalog.parquet, named by the documented
  rule (derived columns lower case; spall columns as they are, except those a derived column holds; a name
  already taken gets its table as prefix) and equal to the tables read with h5py, for the generated and the
  real store; the real store's spall columns equal astropy's reading of the real spAll and spec files;
- `--where` selects what DuckDB selects with the same expression over the same catalog.parquet, for
  numeric, string, boolean and array columns with NULLs, in any identifier case; `--sql` results equal
  DuckDB's; an `--sql` result is a `--fibers` list;
- `--match` equals astropy's `SkyCoord.match_to_catalog_sky` (nearest) and `search_around_sky`
  (`--all-matches`) for random targets, including RA 0/360 and the pole;
- `--ids` round-trips the SPECOBJIDs astropy reads from the real spec files (unsigned) and from the real
  spAll (signed: the same bits), and THING_IDs;
- bad expressions, queries and lists exit 2 naming the column, the token or the line.
"""

from __future__ import annotations

import csv
import io
import math
import shutil
from pathlib import Path

import duckdb
import h5py
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord, search_around_sky
from astropy.io import fits

from conftest import run
from test_catalog_export import CATALOG_COLUMNS, LATER_COLUMNS, parse_store_name

TIMEOUT = 180
MERGED = {"PLATE", "CATALOGID", "MJD", "CLASS", "SUBCLASS", "Z", "Z_ERR", "ZWARNING", "OBJTYPE", "SN_MEDIAN_ALL"}
TABLES = ("spall", "zbest", "plugmap")


def bq(query_bin, store, *args, check=True):
    proc = run([query_bin, "--store", store, *map(str, args)], timeout=TIMEOUT)
    if check and proc.returncode != 0:
        pytest.fail(f"boss-query {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stderr}", pytrace=False)
    return proc


def list_frame(query_bin, store, *args) -> pd.DataFrame:
    out = bq(query_bin, store, *args, "--list").stdout
    return pd.read_csv(io.StringIO(out), dtype=str, keep_default_na=False)


def list_keys(query_bin, store, *args) -> list[int]:
    return [int(k) for k in list_frame(query_bin, store, *args)["key"]]


def duck(catalog: Path, sql: str) -> pd.DataFrame:
    con = duckdb.connect()
    con.execute(f"CREATE VIEW catalog AS SELECT * FROM read_parquet('{catalog}')")
    return con.execute(sql).df()


# ------------------------------------------------------------------------------------------------
# every column, named by the rule, equal to the tables read with h5py
# ------------------------------------------------------------------------------------------------


def store_tables(store: Path):
    """[(file name, plate, mjd, fibers, {table: structured array})] read with h5py."""
    out = []
    for path in sorted(store.glob("*.h5")):
        plate, mjd = parse_store_name(path.name)
        with h5py.File(path, "r") as f:
            g = f[f"{plate}/{mjd}"]
            fibers = sorted(int(k) for k, v in g.items() if k.isdigit() and isinstance(v, h5py.Group))
            if not fibers and "fiber" in g:  # v2 layout
                fibers = sorted(int(x) for x in g["fiber"][()])
            tables = {t: g[t][()] for t in TABLES if t in g and isinstance(g[t], h5py.Dataset)}
        out.append((path.name, plate, mjd, fibers, tables))
    return out


def expected_names(files) -> dict[tuple[str, str], str]:
    """(table, column) -> catalog name, by the documented rule, over every table of the store."""
    order = {t: [] for t in TABLES}
    for *_, tables in files:
        for t, data in tables.items():
            for c in data.dtype.names:
                if c not in order[t]:
                    order[t].append(c)
    taken = {c.lower() for c in CATALOG_COLUMNS + LATER_COLUMNS}
    names = {}
    for t in TABLES:
        for c in order[t]:
            if t == "spall" and c.upper() in MERGED:
                continue
            name = c if c.lower() not in taken else f"{t.upper()}_{c}"
            taken.add(name.lower())
            names[(t, c)] = name
    return names


def as_plain(value, dtype):
    """A table cell as pyarrow's to_pylist gives the catalog's value."""
    if dtype.kind == "S":
        return value.decode("utf-8", "replace").rstrip("\0 ")
    if dtype.shape:
        return [as_plain(v, dtype.base) for v in np.asarray(value).reshape(-1)]
    if dtype.kind == "b":
        return bool(value)
    if dtype.kind in "iu":
        return int(value)
    return float(value)


def check_every_column(store: Path):
    files = store_tables(store)
    names = expected_names(files)
    table = pq.read_table(store / "catalog.parquet")
    got = set(table.column_names)
    want = set(CATALOG_COLUMNS) | set(LATER_COLUMNS) | set(names.values())
    assert got == want, f"missing {sorted(want - got)}, unexpected {sorted(got - want)}"
    assert len({n.lower() for n in table.column_names}) == len(table.column_names), "names unique ignoring case"
    rows = {r["key"]: r for r in table.to_pylist()}
    checked = 0
    for name, plate, mjd, fibers, tables in files:
        for fiber in fibers:
            row = rows[plate * 10**9 + mjd * 10**4 + fiber]
            for t, data in tables.items():
                hits = np.nonzero(data["FIBERID"] == fiber)[0]
                for c in data.dtype.names:
                    if (t, c) not in names:
                        continue
                    actual = row[names[(t, c)]]
                    if not len(hits):
                        assert actual is None, f"{name} fiber {fiber}: {t}.{c} should be null, is {actual!r}"
                        continue
                    cell = data[c][hits[0]]
                    dt = data.dtype.fields[c][0]
                    expected = as_plain(cell, dt)
                    if c.upper() == "SPECOBJID":
                        expected = int(np.array(cell).astype(np.int64).view(np.uint64))
                    same = (expected == actual) or (
                        isinstance(expected, float) and math.isnan(expected) and isinstance(actual, float)
                        and math.isnan(actual))
                    assert same, f"{name} fiber {fiber}: {t}.{c} -> {names[(t, c)]}: {actual!r} != {expected!r}"
                    checked += 1
    assert checked > 1000, checked
    return table


def test_generated_catalog_has_every_table_column(catalog_store):
    table = check_every_column(catalog_store)
    # Arrays are fixed-size lists; the spall position columns a derived column does not hold are kept.
    assert "SN_MEDIAN" in table.column_names and str(table.schema.field("SN_MEDIAN").type).startswith("fixed_size_list")
    assert "SPALL_RA" in table.column_names and "ZBEST_Z" in table.column_names


def test_real_catalog_has_every_table_column(real_store):
    check_every_column(real_store)


def test_real_catalog_equals_astropy(real_store, real_sdss):
    """The spall columns of the real store's catalog equal astropy's reading of the real files."""
    table = pq.read_table(real_store / "catalog.parquet")
    rows = {(r["plate"], r["mjd"], r["fiber"]): r for r in table.to_pylist()}
    renamed = {"RA": "SPALL_RA", "DEC": "SPALL_DEC", "SPECPRIMARY": "SPALL_SPECPRIMARY"}
    derived = {c: c.lower() for c in MERGED}
    compared = 0
    for path in sorted(real_sdss.rglob("spec-*.fits")):
        with fits.open(path) as h:
            hdu = h[2]
            data = hdu.data
            for c in hdu.columns:
                name = renamed.get(c.name, derived.get(c.name, c.name))
                row = rows[(int(data["PLATE"][0]), int(data["MJD"][0]), int(data["FIBERID"][0]))]
                value = data[c.name][0]
                got = row[name]
                if isinstance(value, str):
                    want = value.rstrip()
                elif np.ndim(value):
                    want = [float(v) if np.asarray(value).dtype.kind == "f" else int(v) for v in np.ravel(value)]
                elif c.name == "SPECOBJID":
                    want = int(np.uint64(value))
                elif np.asarray(value).dtype.kind == "f":
                    want = float(value)
                else:
                    want = int(value)
                if c.name == "SPECPRIMARY" and name == "SPALL_SPECPRIMARY":
                    want = int(value)
                ok = got == want or (isinstance(want, float) and math.isnan(want) and math.isnan(got))
                if isinstance(want, list) and isinstance(got, list):
                    ok = all(a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b))
                             for a, b in zip(got, want)) and len(got) == len(want)
                assert ok, f"{path.name}: {c.name} -> {name}: {got!r} != {want!r}"
                compared += 1
    assert compared > 10000, compared
    # The real spAll of plate 3655: its rows for the store's fibers, every column.
    with fits.open(real_sdss / "eboss-lite" / "spAll-plate3655.fits") as h:
        data = h[1].data
        cols = h[1].columns
        matched = 0
        for i in range(len(data)):
            key = (int(data["PLATE"][i]), int(data["MJD"][i]), int(data["FIBERID"][i]))
            if key not in rows:
                continue
            matched += 1
            for c in cols:
                name = renamed.get(c.name, derived.get(c.name, c.name))
                got = rows[key][name]
                value = data[c.name][i]
                if c.name == "SPECOBJID":
                    assert got == int(np.int64(value).view(np.uint64)), f"spAll row {i}: SPECOBJID"
                elif isinstance(value, str):
                    assert got == value.rstrip(), f"spAll row {i}: {c.name}"
                elif np.ndim(value):
                    assert len(got) == np.size(value), f"spAll row {i}: {c.name}"
        assert matched >= 1, "the spAll shares fibers with the store"


# ------------------------------------------------------------------------------------------------
# --where and --sql against DuckDB
# ------------------------------------------------------------------------------------------------

WHERES = [
    "z > 0.5 AND zwarning = 0",
    "Z > 0.5 and ZWARNING = 0",  # any case, as SQL users type it
    "class = 'QSO' OR class IS NULL",
    "upper(objtype) LIKE '%STD%' OR length(subclass) > 0",
    "specprimary",
    "NOT specprimary OR specprimary IS NULL",
    "SPECOBJID IS NULL OR z_err IS NULL",
    "coalesce(sn_median_all, 0) > 2",
    "SN_MEDIAN[2] > 1.5",
    "(BOSS_TARGET1 & 1024) != 0 OR BOSS_TARGET1 IS NULL",
    "ra < 1 OR ra > 359",
    "abs(dec) > 80",
    "z BETWEEN 0.1 AND 1.0 AND plate IN (5000, 6000)",
    "npix = 600 AND nexp > 0",
    "SPALL_RA > 0 AND ZBEST_Z > 0",
]


@pytest.mark.parametrize("expr", WHERES)
def test_where_equals_duckdb(catalog_store, query_bin, expr):
    got = list_keys(query_bin, catalog_store, "--where", expr)
    want = duck(catalog_store / "catalog.parquet", f"SELECT key FROM catalog WHERE {expr} ORDER BY key")["key"]
    assert got == [int(k) for k in want], f"--where {expr!r}: {len(got)} rows, DuckDB {len(want)}"


def test_where_expressions_are_not_trivial(catalog_store):
    """Each expression selects some rows and leaves some out: the comparisons above can fail."""
    n = pq.read_metadata(catalog_store / "catalog.parquet").num_rows
    for expr in WHERES:
        k = len(duck(catalog_store / "catalog.parquet", f"SELECT key FROM catalog WHERE {expr}"))
        assert 0 < k < n, f"{expr!r} selects {k} of {n}"


def test_where_combines_with_named_filters_and_fibers(catalog_store, query_bin, tmp_path):
    keys = list_keys(query_bin, catalog_store, "--where", "z > 0.2")
    fibers = tmp_path / "fibers.csv"
    fibers.write_text("plate,mjd,fiber\n" + "".join(
        f"{k // 10**9},{k // 10**4 % 10**5},{k % 10**4}\n" for k in keys[::2]))
    got = list_keys(query_bin, catalog_store, "--where", "z > 0.2", "--class", "galaxy", "--fibers", fibers,
                    "--z-max", "0.6")
    want = duck(catalog_store / "catalog.parquet",
                "SELECT key FROM catalog WHERE z > 0.2 AND upper(trim(class)) = 'GALAXY' AND z <= 0.6 ORDER BY key")
    assert got == [k for k in want["key"] if k in set(keys[::2])]
    assert got, "the combination selects something"


SQLS = [
    "SELECT class, count(*) AS n, avg(z) AS mean_z FROM catalog GROUP BY class ORDER BY class NULLS LAST",
    "SELECT plate, mjd, fiber, Z, ZWARNING FROM catalog WHERE z > 0.3 ORDER BY key",
    "SELECT plate, count(*) AS n, max(sn_median_all) AS best FROM catalog WHERE specprimary GROUP BY plate ORDER BY plate",
    "SELECT key, THING_ID FROM catalog WHERE THING_ID IS NOT NULL ORDER BY THING_ID DESC, key LIMIT 7",
]


@pytest.mark.parametrize("sql", SQLS)
def test_sql_equals_duckdb(catalog_store, query_bin, sql):
    out = bq(query_bin, catalog_store, "--sql", sql).stdout
    got = pd.read_csv(io.StringIO(out))
    want = duck(catalog_store / "catalog.parquet", sql)
    assert [c.lower() for c in got.columns] == [c.lower() for c in want.columns]
    assert len(got) == len(want) and len(got) > 0, f"{len(got)} rows, DuckDB {len(want)}"
    for a, b in zip(got.columns, want.columns):
        x, y = got[a].to_numpy(), want[b].to_numpy()
        if want[b].dtype.kind == "f":
            np.testing.assert_allclose(x.astype(float), y.astype(float), rtol=1e-6, equal_nan=True, err_msg=a)
        else:
            assert [str(v) for v in x] == [str(v) for v in y], a


def test_sql_parquet_keeps_arrays_and_spelling(catalog_store, query_bin, tmp_path):
    out = tmp_path / "r.parquet"
    sql = "SELECT key, SN_MEDIAN, Z FROM catalog WHERE SN_MEDIAN IS NOT NULL ORDER BY key"
    bq(query_bin, catalog_store, "--sql", sql, "--parquet", out)
    got = pq.read_table(out)
    assert got.column_names == ["key", "SN_MEDIAN", "z"], "catalog spelling comes back"
    want = duck(catalog_store / "catalog.parquet", sql)
    assert got.column("key").to_pylist() == list(want["key"])
    assert [list(v) for v in got.column("SN_MEDIAN").to_pylist()] == [list(v) for v in want["SN_MEDIAN"]]


def test_sql_result_is_a_fiber_list(catalog_store, query_bin, tmp_path):
    out = bq(query_bin, catalog_store, "--sql",
             "SELECT plate, mjd, fiber, z FROM catalog WHERE class = 'QSO' ORDER BY z DESC").stdout
    lst = tmp_path / "qso.csv"
    lst.write_text(out)
    got = list_keys(query_bin, catalog_store, "--fibers", lst)
    want = list_keys(query_bin, catalog_store, "--where", "class = 'QSO'")
    assert got == want and got


@pytest.mark.parametrize("args,words", [
    (["--where", "nosuch_column > 1"], "nosuch_column"),
    (["--where", "z >"], "--where"),
    (["--where", "z > 'abc' +"], "--where"),
    (["--sql", "SELECT nosuch FROM catalog"], "nosuch"),
    (["--sql", "CREATE TABLE x AS SELECT 1"], "--sql"),
    (["--sql", "COPY (SELECT 1) TO '/tmp/x.csv'"], "--sql"),
    (["--sql", "SELECT 1", "--where", "z > 1"], "whole query"),
])
def test_bad_sql_exits_2_naming_the_problem(catalog_store, query_bin, args, words):
    proc = bq(query_bin, catalog_store, *args, "--list" if args[0] == "--where" else "--json", check=False)
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr


# ------------------------------------------------------------------------------------------------
# --match against astropy
# ------------------------------------------------------------------------------------------------


def catalog_positions(catalog: Path):
    t = pq.read_table(catalog, columns=["key", "ra", "dec"]).to_pandas()
    return t.dropna().reset_index(drop=True)


def random_targets(cat: pd.DataFrame, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(cat), 300)
    # Offsets up to 3 arcsec in each coordinate (some within 2", some not), near RA 0/360 and the pole too.
    ra = (cat["ra"].to_numpy()[picks] + rng.uniform(-3, 3, 300) / 3600 / np.maximum(
        np.cos(np.radians(cat["dec"].to_numpy()[picks])), 0.05)) % 360
    dec = np.clip(cat["dec"].to_numpy()[picks] + rng.uniform(-3, 3, 300) / 3600, -90, 90)
    extra_ra = np.array([0.0, 359.9999, 0.00005, 180.0, 12.0])
    extra_dec = np.array([-10.0, -10.0, -10.0, 90.0, 89.99])
    ra, dec = np.concatenate([ra, extra_ra]), np.concatenate([dec, extra_dec])
    return pd.DataFrame({"name": [f"t{i}" for i in range(len(ra))], "ra": ra, "dec": dec,
                         "mag": rng.uniform(17, 22, len(ra)).round(2)})


def write_targets(path: Path, targets: pd.DataFrame) -> Path:
    targets.to_csv(path, index=False, float_format="%.12f")
    return path


@pytest.mark.parametrize("seed", [1, 2])
def test_crossmatch_nearest_equals_astropy(catalog_store, query_bin, tmp_path, seed):
    cat = catalog_positions(catalog_store / "catalog.parquet")
    targets = random_targets(cat, seed)
    path = write_targets(tmp_path / "targets.csv", targets)
    got = list_frame(query_bin, catalog_store, "--match", path, "--radius", "2arcsec")
    t = pd.read_csv(path)
    tc = SkyCoord(t["ra"].to_numpy() * u.deg, t["dec"].to_numpy() * u.deg)
    cc = SkyCoord(cat["ra"].to_numpy() * u.deg, cat["dec"].to_numpy() * u.deg)
    idx, sep, _ = tc.match_to_catalog_sky(cc)
    within = sep.arcsec <= 2.0
    want = {t["name"][i]: (int(cat["key"][idx[i]]), sep.arcsec[i]) for i in np.nonzero(within)[0]}
    assert 20 < len(want) < len(t), "some targets match, some do not"
    # The target's ra/dec are printed as target_ra/target_dec beside the fiber's ra/dec.
    assert list(got.columns[:4]) == ["name", "target_ra", "target_dec", "mag"], list(got.columns)
    assert got.columns[-1] == "separation_arcsec" and {"ra", "dec"} <= set(got.columns)
    have = {r["name"]: (int(r["key"]), float(r["separation_arcsec"])) for _, r in got.iterrows()}
    assert set(have) == set(want), f"only ours {sorted(set(have) - set(want))}, only astropy's {sorted(set(want) - set(have))}"
    for name, (key, s) in want.items():
        assert have[name][0] == key, name
        assert abs(have[name][1] - s) < 1e-6, (name, have[name][1], s)
    # Target columns are carried as written.
    assert got.set_index("name").loc[list(want)[0], "mag"] == t.set_index("name").loc[list(want)[0], "mag"].astype(str) \
        or float(got.set_index("name").loc[list(want)[0], "mag"]) == t.set_index("name").loc[list(want)[0], "mag"]


def test_crossmatch_all_matches_equals_astropy(catalog_store, query_bin, tmp_path):
    cat = catalog_positions(catalog_store / "catalog.parquet")
    targets = random_targets(cat, 5)
    path = write_targets(tmp_path / "targets.csv", targets)
    got = list_frame(query_bin, catalog_store, "--match", path, "--radius", "0.5arcmin", "--all-matches")
    t = pd.read_csv(path)
    tc = SkyCoord(t["ra"].to_numpy() * u.deg, t["dec"].to_numpy() * u.deg)
    cc = SkyCoord(cat["ra"].to_numpy() * u.deg, cat["dec"].to_numpy() * u.deg)
    it, ic, sep, _ = search_around_sky(tc, cc, 30 * u.arcsec)
    want = sorted((t["name"][a], int(cat["key"][b])) for a, b in zip(it, ic))
    have = sorted((r["name"], int(r["key"])) for _, r in got.iterrows())
    assert have == want and len(want) > len(set(n for n, _ in want)), "several fibers per target somewhere"


def test_crossmatch_feeds_the_exports(catalog_store, query_bin, tmp_path):
    cat = catalog_positions(catalog_store / "catalog.parquet")
    path = write_targets(tmp_path / "targets.csv", random_targets(cat, 3))
    listed = set(int(k) for k in list_frame(query_bin, catalog_store, "--match", path)["key"])
    out = tmp_path / "m.parquet"
    bq(query_bin, catalog_store, "--match", path, "--parquet", out)
    exported = pq.read_table(out, columns=["key"]).column("key").to_pylist()
    assert exported == sorted(listed) and exported


@pytest.mark.parametrize("text,words", [
    ("name,ra\nq,1\n", "needs ra and dec"),
    ("ra,dec\n1,x\n", "line 2"),
    ("ra,dec\n1,95\n", "line 2"),
])
def test_bad_target_list_exits_2(catalog_store, query_bin, tmp_path, text, words):
    p = tmp_path / "t.csv"
    p.write_text(text)
    proc = bq(query_bin, catalog_store, "--match", p, "--list", check=False)
    assert proc.returncode == 2 and words in proc.stderr and str(p) in proc.stderr, proc.stderr


def test_radius_needs_a_unit(catalog_store, query_bin, tmp_path):
    p = write_targets(tmp_path / "t.csv", pd.DataFrame({"ra": [1.0], "dec": [2.0]}))
    proc = bq(query_bin, catalog_store, "--match", p, "--radius", "2", "--list", check=False)
    assert proc.returncode == 2 and "unit" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------------
# --ids against the real files
# ------------------------------------------------------------------------------------------------


def real_spec_ids(real_sdss: Path):
    ids = {}
    for path in sorted(real_sdss.rglob("spec-*.fits")):
        with fits.open(path) as h:
            d = h[2].data
            ids[(int(d["PLATE"][0]), int(d["MJD"][0]), int(d["FIBERID"][0]))] = (int(d["SPECOBJID"][0]), int(d["THING_ID"][0]))
    return ids


def test_ids_round_trip_real_specobjids(real_store, real_sdss, query_bin, tmp_path):
    ids = real_spec_ids(real_sdss)
    assert any(s > 2**63 for s, _ in ids.values()), "an unsigned SPECOBJID above 2^63 is in the set"
    p = tmp_path / "ids.csv"
    p.write_text("SPECOBJID\n" + "".join(f"{s}\n" for s, _ in ids.values()))
    got = list_frame(query_bin, real_store, "--ids", p)
    assert sorted((int(r.plate), int(r.mjd), int(r.fiber)) for r in got.itertuples()) == sorted(ids)
    assert sorted(int(x) for x in got["SPECOBJID"]) == sorted(s for s, _ in ids.values())
    # The signed values of spAll name the same spectra.
    signed = tmp_path / "signed.csv"
    signed.write_text("specobjid\n" + "".join(f"{np.uint64(s).astype(np.int64)}\n" for s, _ in ids.values()))
    assert sorted(list_keys(query_bin, real_store, "--ids", signed)) == sorted(int(k) for k in got["key"])


def test_ids_by_thing_id(real_store, real_sdss, query_bin, tmp_path):
    ids = real_spec_ids(real_sdss)
    some = sorted({t for _, t in ids.values() if t > 0})[:5]
    p = tmp_path / "things.csv"
    p.write_text("name,THING_ID\n" + "".join(f"x{i},{t}\n" for i, t in enumerate(some)))
    got = list_frame(query_bin, real_store, "--ids", p)
    want = sorted(k for k, (_, t) in ids.items() if t in set(some))
    assert sorted((int(r.plate), int(r.mjd), int(r.fiber)) for r in got.itertuples()) == want and want


def test_bad_id_list_exits_2(real_store, query_bin, tmp_path):
    p = tmp_path / "ids.csv"
    p.write_text("SPECOBJID\n123\nabc\n")
    proc = bq(query_bin, real_store, "--ids", p, "--list", check=False)
    assert proc.returncode == 2 and "line 3" in proc.stderr, proc.stderr
    p.write_text("TARGETID\n5\n")
    proc = bq(query_bin, real_store, "--ids", p, "--list", check=False)
    assert proc.returncode == 2 and "TARGETID" in proc.stderr, proc.stderr


def test_old_catalog_format_is_rebuilt(catalog_store, synth_catalog, ingest_bin, query_bin, tmp_path):
    """A catalog.parquet of the first version (17 columns, no origins) is read around, then rewritten."""
    store = tmp_path / "store"
    shutil.copytree(catalog_store, store)
    old = pq.read_table(store / "catalog.parquet").select(CATALOG_COLUMNS)
    pq.write_table(old.replace_schema_metadata(None), store / "catalog.parquet")
    proc = bq(query_bin, store, "--where", "SN_MEDIAN[1] > 0", "--list")
    assert "rebuild" in proc.stderr and len(proc.stdout.splitlines()) > 1, proc.stderr
    proc = run([ingest_bin, "--quiet", synth_catalog["spec"], store], timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    assert "SN_MEDIAN" in pq.read_schema(store / "catalog.parquet").names
