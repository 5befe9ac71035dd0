"""End-to-end tests of the catalog and the columnar export:

- `boss-ingest` keeps `<STORE>/catalog.parquet` (one row per fiber) exact; `boss-ingest --rebuild-catalog`;
- `boss-query --store DIR` filters (`--cone`, `--z-min`, `--z-max`, `--class`, `--zwarning-zero`,
  `--primary`, ANDed with each other and with `--fibers`), `--list`, and the `--arrow` / `--parquet`
  exports (`--columns`), plain and under `mpirun -n 1, 2, 4`.

Everything is checked against brute force computed here from the store read with h5py, never against
the tools' own idea of the answer:

- the catalog: every column of every row (nulls included) recomputed from the plate tables with the
  documented precedence (ra = spall PLUG_RA, else spall RA, else zbest PLUG_RA, else plugmap RA; class,
  subclass, z, z_err, zwarning, specprimary, sn_median_all from spall else zbest; objtype from spall,
  zbest, plugmap; an empty string falls through to the next table, and is the value when no table has
  another), for a generated store (ingested in two runs), the real store,
  after incremental ingests (also under mpirun -n 2), an idempotent re-run (catalog untouched), a
  `kill -9` in the middle of an ingest followed by a re-run, `--rebuild-catalog`, and a store whose tables
  were edited with h5py so that every fallback level is used;
- the selections: a numpy great-circle distance (Vincenty form, written independently of the engine)
  and plain comparisons over the brute-force rows, including cones across RA 0/360 and around the pole;
- the exports: rows sorted by key, the 17 catalog columns equal to catalog.parquet, every spectral value
  bit-identical to the coadd datasets, identical bytes for any number of ranks, the same frame with and
  without catalog.parquet, and the HDF5 output of the same command holding the same fibers.
"""

from __future__ import annotations

import csv
import io
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
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from conftest import generate, mpi_env, run, sha256
from test_query import need_mpirun, output_differences, store_fibers

TIMEOUT = 120
CATALOG = "catalog.parquet"
CATALOG_COLUMNS = ["key", "plate", "mjd", "fiber", "file", "npix", "nexp", "ra", "dec", "class", "subclass",
                   "z", "z_err", "zwarning", "objtype", "specprimary", "sn_median_all"]
# Derived columns of later surveys, after the SDSS-I–IV ones (null in SDSS-I–IV rows, but "survey").
LATER_COLUMNS = ["survey", "field_id", "catalogid"]
# Exported spectral column -> coadd field of the store.
SPECTRAL = {"wave": "WAVE", "flux": "FLUX", "ivar": "IVAR", "and_mask": "AND_MASK", "or_mask": "OR_MASK",
            "wavedisp": "WAVEDISP", "sky": "SKY", "model": "MODEL"}
INT_SPECTRAL = {"and_mask", "or_mask"}
LIST_HEADER = "key,plate,mjd,fiber,ra,dec,class,z"

# Where each catalog column comes from, in order of preference (table, column).
SOURCES = {
    "ra": [("spall", "PLUG_RA"), ("spall", "RA"), ("zbest", "PLUG_RA"), ("plugmap", "RA")],
    "dec": [("spall", "PLUG_DEC"), ("spall", "DEC"), ("zbest", "PLUG_DEC"), ("plugmap", "DEC")],
    "class": [("spall", "CLASS"), ("zbest", "CLASS")],
    "subclass": [("spall", "SUBCLASS"), ("zbest", "SUBCLASS")],
    "z": [("spall", "Z"), ("zbest", "Z")],
    "z_err": [("spall", "Z_ERR"), ("zbest", "Z_ERR")],
    "zwarning": [("spall", "ZWARNING"), ("zbest", "ZWARNING")],
    "objtype": [("spall", "OBJTYPE"), ("zbest", "OBJTYPE"), ("plugmap", "OBJTYPE")],
    "specprimary": [("spall", "SPECPRIMARY"), ("zbest", "SPECPRIMARY")],
    "sn_median_all": [("spall", "SN_MEDIAN_ALL"), ("zbest", "SN_MEDIAN_ALL")],
}
STRING_COLUMNS = {"file", "class", "subclass", "objtype"}
F64_COLUMNS = {"ra", "dec"}
F32_COLUMNS = {"z", "z_err", "sn_median_all"}
INT_COLUMNS = {"key", "plate", "mjd", "fiber", "npix", "nexp", "zwarning"}

# Cones (RA, DEC, RADIUS) on the generated store: plate 5000 and 6000 straddle RA 0 at DEC -10, plate
# 5003 is around DEC +88.
CONES = {
    "ra0-straddle": "0.2,-10,1.0",
    "ra0-from-360-side": "359.8,-10,1.0",
    "ra0-wide": "0,-10,1.5",
    "ra360-wide": "360,-10,1.5",
    "pole-offset": "0,89.5,2",
    "pole-exact": "0,90,2",
    "pole-exact-other-ra": "123.4,90,2",
    "near-pole": "180,88,1.5",
    "north-hemisphere": "0,90,90",
    "whole-sky": "10,-20,180",
    "plate-5001": "47.3,3.7,0.8",
}


# ------------------------------------------------------------------------------------------------
# brute force from the store (h5py)
# ------------------------------------------------------------------------------------------------


def _text(value) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).rstrip("\0 ")


def _plain(value, column: str):
    """A table value as the catalog should hold it (None for an empty string)."""
    if column in STRING_COLUMNS:
        text = _text(value)
        return text or None
    if column == "specprimary":
        return bool(value)
    if column in INT_COLUMNS:
        return int(value)
    if column in F32_COLUMNS:
        return float(np.float32(value))
    return float(np.float64(value))


def parse_store_name(name: str):
    m = re.fullmatch(r"(\d{4,})-(\d{5})\.h5", name)
    return (int(m[1]), int(m[2])) if m else None


def brute_catalog(store: Path) -> dict[int, dict]:
    """key -> expected catalog row, computed from the store's datasets and tables."""
    rows = {}
    for path in sorted(Path(store).glob("*.h5")):
        pm = parse_store_name(path.name)
        if pm is None:
            continue
        plate, mjd = pm
        with h5py.File(path, "r") as f:
            group = f[f"{plate}/{mjd}"]
            tables = {}
            for name in ("spall", "zbest", "plugmap"):
                if name in group and isinstance(group[name], h5py.Dataset):
                    data = group[name][()]
                    if data.dtype.names and "FIBERID" in data.dtype.names:
                        first = {}
                        for i, fib in enumerate(data["FIBERID"]):
                            first.setdefault(int(fib), i)  # the first row of a fiber
                        tables[name] = (data, first)
            for member in group:
                if not member.isdigit() or not isinstance(group[member], h5py.Group):
                    continue
                fiber = int(member)
                fgroup = group[member]
                if "coadd" not in fgroup:
                    continue
                row = {"key": plate * 10**9 + mjd * 10**4 + fiber, "plate": plate, "mjd": mjd, "fiber": fiber,
                       "file": path.name, "npix": int(fgroup["coadd"].shape[0]),
                       "nexp": len(fgroup["exposures"]) if "exposures" in fgroup else 0}
                for column, order in SOURCES.items():
                    value = None
                    empty_seen = False
                    for table, field in order:
                        if table not in tables:
                            continue
                        data, first = tables[table]
                        if fiber not in first or field not in data.dtype.names:
                            continue
                        value = _plain(data[field][first[fiber]], column)
                        if value is not None:
                            break
                        empty_seen = True
                    # An empty string is the value only when no table has another.
                    row[column] = "" if value is None and empty_seen else value
                rows[row["key"]] = row
    return rows


def catalog_rows(path: Path) -> dict[int, dict]:
    """key -> row of a catalog (or export) file read with pyarrow (None for nulls)."""
    table = pq.read_table(path)
    return {r["key"]: r for r in table.select(CATALOG_COLUMNS).to_pylist()}


def _ulps(a: float, b: float) -> str:
    try:
        ia = np.float64(a).view(np.int64)
        ib = np.float64(b).view(np.int64)
        return f" ({abs(int(ia) - int(ib))} ulp)"
    except (TypeError, ValueError):
        return ""


def value_equal(column: str, expected, actual) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if column in F64_COLUMNS:
        return np.float64(expected).tobytes() == np.float64(actual).tobytes()
    if column in F32_COLUMNS:
        return np.float32(expected).tobytes() == np.float32(actual).tobytes()
    if column == "specprimary":
        return isinstance(actual, (bool, np.bool_)) and bool(actual) == bool(expected)
    return expected == actual


def row_diffs(expected: dict[int, dict], actual: dict[int, dict], what: str, keys=None) -> list[str]:
    """Differences between rows by key: every key of `expected` (and no other) when `keys` is None,
    else only `keys`."""
    diffs = []
    if keys is None:
        keys = sorted(expected)
        extra = sorted(set(actual) - set(expected))
        if extra:
            diffs.append(f"{what}: {len(extra)} unexpected keys, e.g. {extra[:5]}")
    missing = sorted(set(keys) - set(actual))
    if missing:
        diffs.append(f"{what}: {len(missing)} keys missing, e.g. {missing[:5]}")
    for key in sorted(keys):
        if key not in actual:
            continue
        e, a = expected[key], actual[key]
        for column in CATALOG_COLUMNS:
            if not value_equal(column, e[column], a[column]):
                hint = _ulps(e[column], a[column]) if column in F64_COLUMNS and None not in (
                    e[column], a[column]) else ""
                diffs.append(f"{what}: key {key} {column}: {a[column]!r}, expected {e[column]!r}{hint}")
    return diffs


def fail_on(diffs: list[str], title: str, max_lines: int = 30):
    if diffs:
        shown = "\n".join(diffs[:max_lines])
        more = f"\n... and {len(diffs) - max_lines} more" if len(diffs) > max_lines else ""
        ulp = sum(1 for d in diffs if d.endswith("(1 ulp)"))
        note = f"\n({ulp} of the {len(diffs)} differences are ra/dec values off by 1 ulp)" if ulp else ""
        pytest.fail(f"{title} ({len(diffs)} differences):\n{shown}{more}{note}", pytrace=False)


def assert_catalog_exact(store: Path, title: str = ""):
    """catalog.parquet of `store` holds exactly the brute-force rows (every column, nulls included)."""
    path = Path(store) / CATALOG
    assert path.is_file(), f"{path} is missing"
    check_catalog_schema(pq.read_schema(path), str(path))
    # pandas opens it too, with one row per fiber
    df = pd.read_parquet(path)
    assert list(df.columns[:len(CATALOG_COLUMNS)]) == CATALOG_COLUMNS, f"{path}: columns {list(df.columns)}"
    keys = pq.read_table(path, columns=["key"]).column("key").to_pylist()
    assert keys == sorted(set(keys)), f"{path}: keys not sorted or not unique"
    fail_on(row_diffs(brute_catalog(store), catalog_rows(path), "catalog.parquet"),
            f"{path} differs from the store's tables{' ' + title if title else ''}")


def check_catalog_schema(schema: pa.Schema, where: str):
    names = schema.names[:len(CATALOG_COLUMNS)]
    assert names == CATALOG_COLUMNS, f"{where}: first columns {names}, expected {CATALOG_COLUMNS}"
    t = {name: schema.field(name).type for name in CATALOG_COLUMNS}
    bad = []
    if t["key"] != pa.int64():
        bad.append(f"key is {t['key']}, expected int64")
    for name in INT_COLUMNS - {"key"}:
        if not pa.types.is_integer(t[name]):
            bad.append(f"{name} is {t[name]}, expected an integer type")
    for name in STRING_COLUMNS:
        if not (pa.types.is_string(t[name]) or pa.types.is_large_string(t[name])):
            bad.append(f"{name} is {t[name]}, expected a string")
    for name in F64_COLUMNS:
        if t[name] != pa.float64():
            bad.append(f"{name} is {t[name]}, expected float64")
    for name in F32_COLUMNS:
        if not pa.types.is_floating(t[name]):
            bad.append(f"{name} is {t[name]}, expected a float")
    if t["specprimary"] != pa.bool_():
        bad.append(f"specprimary is {t['specprimary']}, expected bool")
    assert not bad, f"{where}: " + "; ".join(bad)


# ---- selections ---------------------------------------------------------------------------------


def great_circle_deg(ra1, dec1, ra2, dec2):
    """Angular distance in degrees (Vincenty's formula on the sphere: accurate at all distances)."""
    l1, p1, l2, p2 = (np.radians(np.asarray(x, dtype=np.float64)) for x in (ra1, dec1, ra2, dec2))
    dl = l2 - l1
    num = np.hypot(np.cos(p2) * np.sin(dl), np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl))
    den = np.sin(p1) * np.sin(p2) + np.cos(p1) * np.cos(p2) * np.cos(dl)
    return np.degrees(np.arctan2(num, den))


def parse_filters(args: list[str]) -> dict:
    spec = {"cone": None, "z_min": None, "z_max": None, "classes": [], "zwarning_zero": False, "primary": False}
    it = iter(args)
    for a in it:
        if a == "--cone":
            spec["cone"] = tuple(float(x) for x in next(it).split(","))
        elif a == "--z-min":
            spec["z_min"] = float(next(it))
        elif a == "--z-max":
            spec["z_max"] = float(next(it))
        elif a == "--class":
            spec["classes"].append(next(it))
        elif a == "--zwarning-zero":
            spec["zwarning_zero"] = True
        elif a == "--primary":
            spec["primary"] = True
        else:
            raise ValueError(a)
    return spec


CONE_SLACK = 1e-9  # degrees: positions this close to a cone's edge may go either way


def brute_select(rows: dict[int, dict], args: list[str], fibers=None):
    """(keys surely selected, keys possibly selected): they differ only by positions within CONE_SLACK
    of a cone's boundary."""
    spec = parse_filters(args)
    sure, maybe = set(), set()
    keys = sorted(rows)
    if fibers is not None:
        wanted = {(int(p), int(m), int(f)) for p, m, f in fibers}
        keys = [k for k in keys if (rows[k]["plate"], rows[k]["mjd"], rows[k]["fiber"]) in wanted]
    for key in keys:
        r = rows[key]
        if spec["zwarning_zero"] and r["zwarning"] != 0:
            continue
        if spec["primary"] and r["specprimary"] is not True:
            continue
        if spec["z_min"] is not None and (r["z"] is None or not r["z"] >= spec["z_min"]):
            continue
        if spec["z_max"] is not None and (r["z"] is None or not r["z"] <= spec["z_max"]):
            continue
        if spec["classes"] and (r["class"] is None or r["class"].strip().upper() not in
                                {c.strip().upper() for c in spec["classes"]}):
            continue
        if spec["cone"] is not None:
            if r["ra"] is None or r["dec"] is None:
                continue
            ra0, dec0, radius = spec["cone"]
            d = float(great_circle_deg(ra0, dec0, r["ra"], r["dec"]))
            if d > radius + CONE_SLACK:
                continue
            if d >= radius - CONE_SLACK:
                maybe.add(key)
                continue
        sure.add(key)
    return sure, sure | maybe


def assert_selection(got_keys, rows, args, fibers=None, what="selection"):
    got = set(got_keys)
    sure, maybe = brute_select(rows, args, fibers)
    missing = sorted(sure - got)
    extra = sorted(got - maybe)
    if missing or extra:
        def show(keys):
            return [(k, rows[k]["ra"], rows[k]["dec"], rows[k]["class"], rows[k]["z"], rows[k]["zwarning"],
                     rows[k]["specprimary"]) if k in rows else k for k in keys[:8]]
        pytest.fail(f"{what} for {args}: {len(got)} fibers, brute force {len(sure)}\n"
                    f"missing (key, ra, dec, class, z, zwarning, specprimary): {show(missing)}\n"
                    f"extra: {show(extra)}", pytrace=False)
    return sure


# ---- running boss-query ---------------------------------------------------------------------------


def bq(query_bin, store, *args, ranks: int | None = None, check: bool = True, timeout: float = TIMEOUT):
    cmd = [query_bin, "--store", store, *args]
    if ranks is not None:
        need_mpirun()
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    proc = run(cmd, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"boss-query exited {proc.returncode}:\n{proc.stderr}", pytrace=False)
    return proc


def bq_json(query_bin, store, *args, ranks: int | None = None) -> dict:
    proc = bq(query_bin, store, *args, "--json", ranks=ranks)
    try:
        return json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        pytest.fail(f"--json output is not JSON ({exc}):\n{proc.stdout}", pytrace=False)


def list_rows(query_bin, store, *args, ranks: int | None = None) -> list[dict]:
    """The `--list` CSV as dicts (header checked)."""
    proc = bq(query_bin, store, *args, "--list", ranks=ranks)
    lines = proc.stdout.splitlines()
    assert lines and lines[0] == LIST_HEADER, f"--list header is {lines[:1]}, expected {LIST_HEADER!r}"
    return list(csv.DictReader(io.StringIO(proc.stdout)))


def list_keys(query_bin, store, *args, ranks: int | None = None) -> list[int]:
    rows = list_rows(query_bin, store, *args, ranks=ranks)
    keys = [int(r["key"]) for r in rows]
    assert keys == sorted(set(keys)), f"--list keys are not sorted and unique: {keys[:20]}"
    return keys


def key_triple(key: int):
    return key // 10**9, (key // 10**4) % 10**5, key % 10**4


def write_fibers(path: Path, keys) -> Path:
    path.write_text("plate,mjd,fiber\n" + "".join("%d,%d,%d\n" % key_triple(k) for k in keys))
    return path


def without_catalog(store: Path, dest: Path) -> Path:
    shutil.copytree(store, dest, ignore=shutil.ignore_patterns(CATALOG))
    assert not (dest / CATALOG).exists()
    return dest


def ingest(ingest_bin, *inputs_and_store, ranks: int | None = None, expect_rc=(0,)) -> dict:
    cmd = [ingest_bin, "--json", "--quiet", *inputs_and_store]
    if ranks is not None:
        need_mpirun()
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    proc = run(cmd, timeout=300)
    assert proc.returncode in expect_rc, f"boss-ingest exited {proc.returncode}:\n{proc.stderr}"
    summary = json.loads(proc.stdout)
    for key in ("catalog_rows_written", "catalog_files_refreshed"):
        assert key in summary, f"boss-ingest --json has no {key}: {sorted(summary)}"
    return summary


def fingerprint(path: Path):
    st = os.stat(path)
    return sha256(path), st.st_mtime_ns, st.st_ino


# ---- exports ---------------------------------------------------------------------------------------


def read_arrow(path: Path) -> pa.Table:
    with pa.memory_map(str(path)) as source:
        return ipc.open_file(source).read_all()


def list_values(column: pa.ChunkedArray, i: int, dtype) -> np.ndarray:
    return np.asarray(column[i].values.to_numpy(zero_copy_only=False), dtype=dtype)


def check_export(table: pa.Table, store: Path, expected_keys, catalog: dict[int, dict], where: str,
                 columns=tuple(SPECTRAL)):
    """The export `table` holds exactly `expected_keys` (sorted), the catalog columns equal `catalog`'s
    rows, then exactly the spectral `columns` with every value bit-identical to the store's coadd."""
    check_catalog_schema(table.schema, where)
    names = table.schema.names
    catalog_names = pq.read_schema(Path(store) / CATALOG).names if (Path(store) / CATALOG).exists() else None
    spectral = names[len(names) - len(columns):]
    assert sorted(spectral) == sorted(columns), \
        f"{where}: columns {names}, expected the catalog columns then {list(columns)}"
    if catalog_names is not None:
        assert names[:len(names) - len(columns)] == catalog_names, \
            f"{where}: the catalog columns of the export are not catalog.parquet's: {names}"
    for name in columns:
        t = table.schema.field(name).type
        want = pa.int32() if name in INT_SPECTRAL else pa.float32()
        assert (pa.types.is_list(t) or pa.types.is_large_list(t)) and t.value_type == want, \
            f"{where}: column {name} is {t}, expected list<{want}>"
    keys = table.column("key").to_pylist()
    assert keys == sorted(expected_keys), \
        f"{where}: keys {keys[:10]}... ({len(keys)}), expected {sorted(expected_keys)[:10]}... ({len(expected_keys)})"
    exported = {r["key"]: r for r in table.select(CATALOG_COLUMNS).to_pylist()}
    fail_on(row_diffs(catalog, exported, where, keys=keys), f"{where}: catalog columns differ from catalog.parquet")
    diffs = []
    by_file = {}
    for i, key in enumerate(keys):
        by_file.setdefault(key_triple(key)[:2], []).append((i, key))
    cols = {name: table.column(name) for name in columns}
    for (plate, mjd), items in sorted(by_file.items()):
        with h5py.File(Path(store) / f"{plate:04d}-{mjd:05d}.h5", "r") as f:
            for i, key in items:
                coadd = f[f"{plate}/{mjd}/{key % 10**4}/coadd"][()]
                for name in columns:
                    want = np.ascontiguousarray(coadd[SPECTRAL[name]])
                    got = list_values(cols[name], i, want.dtype)
                    if got.shape != want.shape or got.tobytes() != want.tobytes():
                        diffs.append(f"{where}: key {key} {name}: {got.shape[0]} values, store {want.shape[0]}; "
                                     f"first differences at {np.flatnonzero(got[:len(want)] != want[:len(got)])[:5]}")
    fail_on(diffs, f"{where}: spectral values differ from the store")


# ------------------------------------------------------------------------------------------------
# the catalog
# ------------------------------------------------------------------------------------------------


def test_catalog_generated_store_is_exact(catalog_store):
    """catalog.parquet of a store ingested in two runs: one row per fiber, every value from the tables."""
    assert_catalog_exact(catalog_store)
    rows = catalog_rows(catalog_store / CATALOG)
    fibers = store_fibers(catalog_store)
    assert sorted(rows) == sorted(p * 10**9 + m * 10**4 + f for (p, m), fs in fibers.items() for f in fs)
    # the generated data exercise what the tests below rely on
    by_plate = {p: [r for r in rows.values() if r["plate"] == p] for p in (5000, 5003, 6000)}
    ras = [r["ra"] for r in by_plate[5000]]
    assert min(ras) < 1 and max(ras) > 359, "plate 5000 should straddle RA 0/360"
    assert min(r["dec"] for r in by_plate[5003]) > 85, "plate 5003 should be near the north pole"
    assert any(r["nexp"] > 0 for r in by_plate[6000]), "plate 6000 should have exposures"
    assert {r["class"] for r in rows.values()} == {"GALAXY", "QSO", "STAR"}
    assert any(r["zwarning"] != 0 for r in rows.values()) and any(r["specprimary"] is False for r in rows.values())


def test_catalog_real_store_is_exact(real_store):
    assert_catalog_exact(real_store)
    assert len(catalog_rows(real_store / CATALOG)) == 81


def test_catalog_real_incremental(ingest_bin, real_sdss, real_store, tmp_path):
    """The real files ingested in three runs: exact after each; the same content as the one-run store."""
    store = tmp_path / "store"
    lite = real_sdss / "eboss-lite"
    steps = [[lite / "3655"],
             [lite / "3657", lite / "9367", lite / "10656", lite / "spAll-plate3655.fits"],
             [real_sdss / "boss-full"]]
    for n, inputs in enumerate(steps, 1):
        summary = ingest(ingest_bin, *inputs, store)
        assert summary["catalog_files_refreshed"] >= summary["plate_mjds_written"], summary
        assert_catalog_exact(store, f"after ingest step {n}")
    got, want = pq.read_table(store / CATALOG), pq.read_table(real_store / CATALOG)
    assert got.equals(want), "the catalog of the store ingested in 3 runs differs from the one-run store's"


def test_catalog_incremental_rerun_and_rebuild(ingest_bin, synth_catalog, tmp_path):
    """Incremental ingests (a new plate file, new fibers added to an existing file, one under mpirun -n 2),
    an idempotent re-run (catalog untouched), and --rebuild-catalog (same content)."""
    store = tmp_path / "store"
    spec_dir = synth_catalog["spec"] / "6000"
    first_specs = sorted(spec_dir.glob("spec-6000-55000-00[01]?.fits"))[:15]
    assert len(first_specs) == 15

    # 1. 15 spec files of plate 6000: spall rows only (no zbest, no plugmap), some exposures
    s = ingest(ingest_bin, *first_specs, store)
    assert s["catalog_rows_written"] == 15 and s["catalog_files_refreshed"] == 1, s
    assert_catalog_exact(store, "after the first ingest")
    first = catalog_rows(store / CATALOG)
    assert len(first) == 15 and any(r["nexp"] > 0 for r in first.values())

    # 2. the spPlate set (4 new files) under mpirun -n 2: only the new files are refreshed
    s = ingest(ingest_bin, synth_catalog["spplate"], store, ranks=2)
    assert s["plate_mjds_written"] == 4 and s["catalog_files_refreshed"] == 4, s
    assert s["catalog_rows_written"] in (320, 15 + 320), s  # the rows rebuilt, or all rows of the new file
    assert_catalog_exact(store, "after adding the spPlate set")

    # 3. the rest of plate 6000 (spPlate + siblings + the other spec files): the existing file grows
    s = ingest(ingest_bin, synth_catalog["spec"], store)
    assert s["catalog_files_refreshed"] == 1 and s["catalog_rows_written"] in (30, 350), s
    assert_catalog_exact(store, "after completing plate 6000")
    rows = catalog_rows(store / CATALOG)
    assert sum(r["plate"] == 6000 for r in rows.values()) == 30

    # 4. re-running both inputs changes nothing, not even the catalog file
    before = fingerprint(store / CATALOG)
    for inputs in (synth_catalog["spplate"], synth_catalog["spec"]):
        s = ingest(ingest_bin, inputs, store)
        assert s["catalog_files_refreshed"] == 0 and s["catalog_rows_written"] == 0, s
        assert fingerprint(store / CATALOG) == before, "an idempotent re-run rewrote catalog.parquet"
    assert_catalog_exact(store, "after the re-runs")

    # 5. --rebuild-catalog gives the same content
    incremental = pq.read_table(store / CATALOG)
    proc = run([ingest_bin, "--rebuild-catalog", "--json", "--quiet", store], timeout=120)
    assert proc.returncode == 0, proc.stderr
    s = json.loads(proc.stdout)
    assert s["catalog_files_refreshed"] == 5 and s["catalog_rows_written"] == 350, s
    assert pq.read_table(store / CATALOG).equals(incremental), "--rebuild-catalog changed the catalog content"
    assert_catalog_exact(store, "after --rebuild-catalog")

    # 6. without any catalog, --rebuild-catalog writes the same content
    (store / CATALOG).unlink()
    run([ingest_bin, "--rebuild-catalog", "--quiet", store], check=True, timeout=120)
    assert pq.read_table(store / CATALOG).equals(incremental)


def test_catalog_after_kill_and_rerun(ingest_bin, synth_bin, synth_catalog, tmp_path):
    """kill -9 in the middle of an ingest (after a new store file got its final name, before the catalog
    was updated), then the same ingest again: the catalog is exact."""
    big = generate(synth_bin, tmp_path / "big", ["--plates", "10", "--fibers", "200", "--npix", "2000",
                                                  "--seed", "5", "--first-plate", "7000"])
    store = tmp_path / "store"
    ingest(ingest_bin, synth_catalog["spplate"], store)
    before = {p.name for p in store.glob("*.h5")}
    catalog_before = sha256(store / CATALOG)
    cmd = [str(ingest_bin), "--quiet", "-j", "1", str(big), str(store)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=mpi_env())
    deadline = time.monotonic() + 60
    new = set()
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            new = {p.name for p in store.glob("*.h5")} - before
            if new:
                break
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    print(f"killed: exit {proc.returncode}, new store files {sorted(new)}, store {sorted(os.listdir(store))}")
    if proc.returncode != -signal.SIGKILL or not new:
        pytest.skip(f"could not kill the ingest in the middle (exit {proc.returncode}, new files {sorted(new)})")
    finals = {p.name for p in store.glob("*.h5")}
    assert len(finals - before) < 10, "the ingest had finished every file before the kill"
    # the catalog is the old one (complete, readable), now stale
    assert sha256(store / CATALOG) == catalog_before
    assert len(catalog_rows(store / CATALOG)) == 320

    s = ingest(ingest_bin, big, store)
    assert s["catalog_files_refreshed"] == 10, \
        f"every file of the killed ingest must be refreshed (also those renamed before the kill): {s}"
    assert s["catalog_rows_written"] in (2000, 320 + 2000), s
    assert_catalog_exact(store, "after kill -9 and a re-run")
    assert not [p.name for p in store.iterdir() if ".tmp-" in p.name], "temporary files left"
    stamp = fingerprint(store / CATALOG)
    s = ingest(ingest_bin, big, store)
    assert s["catalog_files_refreshed"] == 0 and fingerprint(store / CATALOG) == stamp


# ---- a store whose tables were edited so that every fallback level is used -------------------------


def _rewrite(group: h5py.Group, name: str, change):
    old = group[name]
    data, attrs = old[()], dict(old.attrs)
    new = change(data)
    del group[name]
    ds = group.create_dataset(name, data=new)
    for k, v in attrs.items():
        ds.attrs[k] = v


def _drop_fields(a: np.ndarray, names) -> np.ndarray:
    keep = [n for n in a.dtype.names if n not in names]
    out = np.empty(a.shape, dtype=[(n, a.dtype.fields[n][0]) for n in keep])
    for n in keep:
        out[n] = a[n]
    return out


def _drop_fibers(a: np.ndarray, fibers) -> np.ndarray:
    return a[~np.isin(a["FIBERID"], list(fibers))]


def _retype(a: np.ndarray, name: str, dtype) -> np.ndarray:
    out = np.empty(a.shape, dtype=[(n, dtype if n == name else a.dtype.fields[n][0]) for n in a.dtype.names])
    for n in a.dtype.names:
        out[n] = a[n] if n != name else a[n].astype(dtype)
    return out


def K(plate: int, mjd: int, fiber: int) -> int:
    return plate * 10**9 + mjd * 10**4 + fiber


# Edited fibers (key -> what): used by the tests below.
SPALL_RA = K(6000, 55000, 1)        # spall without PLUG_RA/PLUG_DEC: ra from spall RA (shifted)
ZBEST_FALLBACK = K(6000, 55000, 2)  # no spall row: everything from zbest
PLUGMAP_ONLY = K(6000, 55000, 3)    # no spall, no zbest row: ra/dec/objtype from plugmap, the rest null
NO_ROWS = K(6000, 55000, 4)         # in no table: everything null
EMPTY_CLASS = K(6000, 55000, 6)     # spall CLASS is empty, zbest has one
SPALL_WINS = K(6000, 55000, 7)      # spall Z/CLASS differ from zbest: spall wins
BOOL_PLATE = 5001                   # zbest SPECPRIMARY stored as HDF5 bool (FITS L), fibers 1, 2 no zbest row
NO_ZBEST_RADEC = 5002               # zbest without PLUG_RA/PLUG_DEC: ra/dec from plugmap


def edit_store(store: Path):
    with h5py.File(store / "6000-55000.h5", "r+") as f:
        g = f["6000/55000"]

        def spall(a):
            a = _drop_fields(a, ["PLUG_RA", "PLUG_DEC"])
            a["RA"] = (a["RA"] + 0.5) % 360.0
            a["DEC"] = a["DEC"] + 0.25
            i = np.flatnonzero(a["FIBERID"] == EMPTY_CLASS % 10**4)[0]
            a["CLASS"][i] = b""
            i = np.flatnonzero(a["FIBERID"] == SPALL_WINS % 10**4)[0]
            a["Z"][i] = 2.5
            a["CLASS"][i] = b"QSO" if a["CLASS"][i].strip() != b"QSO" else b"STAR"
            return _drop_fibers(a, [2, 3, 4, 5])
        _rewrite(g, "spall", spall)
        _rewrite(g, "zbest", lambda a: _drop_fibers(a, [3, 4]))
        _rewrite(g, "plugmap", lambda a: _drop_fibers(a, [4]))
    with h5py.File(store / "5001-55007.h5", "r+") as f:
        g = f["5001/55007"]

        def zbest(a):
            a = a.copy()
            a["SPECPRIMARY"] = (a["FIBERID"] % 3 != 0)
            return _drop_fibers(_retype(a, "SPECPRIMARY", np.bool_), [1, 2])
        _rewrite(g, "zbest", zbest)
    with h5py.File(store / "5002-55014.h5", "r+") as f:
        _rewrite(f["5002/55014"], "zbest", lambda a: _drop_fields(a, ["PLUG_RA", "PLUG_DEC"]))


@pytest.fixture(scope="module")
def edited_store(catalog_store, ingest_bin, tmp_path_factory) -> Path:
    """A copy of `catalog_store` with edited tables; its catalog refreshed by an ingest of nothing
    (the edited files are newer than the catalog) and kept as `catalog.incremental.parquet`, then
    rebuilt with --rebuild-catalog."""
    store = tmp_path_factory.mktemp("edited") / "store"
    shutil.copytree(catalog_store, store)
    time.sleep(0.05)  # the edits are strictly newer than the catalog, whatever the clock granularity
    edit_store(store)
    empty = store.parent / "no-inputs"
    empty.mkdir()
    s = ingest(ingest_bin, empty, store)
    print("ingest of nothing after the edits:", s)
    shutil.copy2(store / CATALOG, store.parent / "catalog.incremental.parquet")
    run([ingest_bin, "--rebuild-catalog", "--quiet", store], check=True, timeout=120)
    return store


def test_catalog_edited_tables_use_each_fallback(edited_store):
    """Every precedence level: spall PLUG_RA absent -> spall RA; no spall row -> zbest; no zbest row ->
    plugmap; no row anywhere -> nulls; spall values win over zbest. (The empty-string and bool cases
    have tests of their own and are left out here.)"""
    expected = brute_catalog(edited_store)
    own_tests = {EMPTY_CLASS} | {k for k, r in expected.items() if r["plate"] == BOOL_PLATE}
    keys = [k for k in expected if k not in own_tests]
    for path in (edited_store / CATALOG, edited_store.parent / "catalog.incremental.parquet"):
        fail_on(row_diffs(expected, catalog_rows(path), path.name, keys=keys),
                f"{path.name} of the edited store differs from its tables")
    # the brute force itself follows the intended levels
    with h5py.File(edited_store / "6000-55000.h5", "r") as f:
        spall = f["6000/55000/spall"][()]
        zbest = f["6000/55000/zbest"][()]
        plug = f["6000/55000/plugmap"][()]

    def row(a, key):
        return a[a["FIBERID"] == key % 10**4][0]
    e = expected
    assert e[SPALL_RA]["ra"] == row(spall, SPALL_RA)["RA"] and e[SPALL_RA]["dec"] == row(spall, SPALL_RA)["DEC"]
    assert e[ZBEST_FALLBACK]["ra"] == row(zbest, ZBEST_FALLBACK)["PLUG_RA"]
    assert e[ZBEST_FALLBACK]["class"] == _text(row(zbest, ZBEST_FALLBACK)["CLASS"])
    assert e[PLUGMAP_ONLY]["ra"] == row(plug, PLUGMAP_ONLY)["RA"]
    assert e[PLUGMAP_ONLY]["objtype"] == _text(row(plug, PLUGMAP_ONLY)["OBJTYPE"])
    assert all(e[PLUGMAP_ONLY][c] is None for c in ("class", "subclass", "z", "z_err", "zwarning", "specprimary",
                                                     "sn_median_all"))
    assert all(e[NO_ROWS][c] is None for c in SOURCES)
    assert e[SPALL_WINS]["z"] == 2.5
    ra_5002 = [r for r in e.values() if r["plate"] == NO_ZBEST_RADEC]
    with h5py.File(edited_store / "5002-55014.h5", "r") as f:
        plug = f["5002/55014/plugmap"][()]
    assert [r["ra"] for r in sorted(ra_5002, key=lambda r: r["fiber"])] == \
        [float(x) for x in plug["RA"][np.argsort(plug["FIBERID"], kind="stable")]]


def test_catalog_empty_spall_string_falls_back_to_zbest(edited_store):
    """An empty spall CLASS is unknown (null), so the class comes from zbest ("else zbest")."""
    expected = brute_catalog(edited_store)[EMPTY_CLASS]
    assert expected["class"] is not None
    got = catalog_rows(edited_store / CATALOG)[EMPTY_CLASS]
    assert got["class"] == expected["class"], \
        f"key {EMPTY_CLASS}: spall CLASS is '' and zbest CLASS is {expected['class']!r}; catalog class {got['class']!r}"


def test_catalog_bool_specprimary(edited_store, query_bin):
    """SPECPRIMARY stored as an HDF5 bool (what the store makes of a FITS `L` column) is read."""
    expected = brute_catalog(edited_store)
    got = catalog_rows(edited_store / CATALOG)
    keys = sorted(k for k, r in expected.items() if r["plate"] == BOOL_PLATE)
    fail_on(row_diffs(expected, got, "catalog.parquet", keys=keys),
            f"plate {BOOL_PLATE} (zbest SPECPRIMARY as HDF5 bool) differs from its zbest table")
    assert_selection(list_keys(query_bin, edited_store, "--primary"), expected, ["--primary"])


@pytest.mark.parametrize("args", [["--z-min", "-1"], ["--cone", "0,0,180"], ["--class", "GALAXY", "--class", "QSO",
                                  "--class", "STAR"], ["--zwarning-zero"], ["--primary", "--z-max", "1"],
                                  ["--cone", "0.2,-10,1.5", "--class", "qso"]],
                         ids=["z", "whole-sky", "classes", "zwarning", "primary-z", "cone-class"])
def test_filters_skip_nulls_edited_store(edited_store, query_bin, tmp_path, args):
    """Rows with null values never match a filter on them; the store scan (no catalog.parquet) agrees."""
    rows = brute_catalog(edited_store)
    keys = list_keys(query_bin, edited_store, *args)
    # leave the two cases with tests of their own out of the comparison
    doubtful = {EMPTY_CLASS} | {k for k, r in rows.items() if r["plate"] == BOOL_PLATE}
    want_sure, want_maybe = brute_select(rows, args)
    got = set(keys) - doubtful
    assert want_sure - doubtful <= got <= want_maybe, \
        f"{args}: missing {sorted(want_sure - doubtful - got)[:8]}, extra {sorted(got - want_maybe)[:8]}"
    assert NO_ROWS not in keys
    scan = without_catalog(edited_store, tmp_path / "scan")
    assert list_keys(query_bin, scan, *args) == keys


# ------------------------------------------------------------------------------------------------
# selections
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store_rows(catalog_store) -> dict[int, dict]:
    return brute_catalog(catalog_store)


FILTER_CASES = {
    **{f"cone-{name}": ["--cone", cone] for name, cone in CONES.items()},
    "z-min": ["--z-min", "1"],
    "z-max": ["--z-max", "0.5"],
    "z-range": ["--z-min", "0.1", "--z-max", "0.3"],
    "z-negative": ["--z-max", "0"],
    "class-qso-lower": ["--class", "qso"],
    "class-two": ["--class", "GALAXY", "--class", "Star"],
    "class-none-such": ["--class", "BLAZAR"],
    "zwarning-zero": ["--zwarning-zero"],
    "primary": ["--primary"],
    "cone-class": ["--cone", "0.2,-10,1.0", "--class", "QSO"],
    "pole-z": ["--cone", "0,89.5,2", "--z-min", "0.5"],
    "all": ["--cone", "0,-10,2", "--z-min", "0.05", "--z-max", "3", "--class", "galaxy", "--class", "QSO",
            "--zwarning-zero", "--primary"],
    "flags": ["--zwarning-zero", "--primary", "--class", "STAR"],
}


@pytest.mark.parametrize("args", list(FILTER_CASES.values()), ids=list(FILTER_CASES))
def test_filter_selects_brute_force(catalog_store, query_bin, store_rows, args):
    """`--list` lists exactly the fibers the brute force over the store's tables selects, with the
    catalog's ra, dec, class and z."""
    rows = list_rows(query_bin, catalog_store, *args)
    keys = [int(r["key"]) for r in rows]
    assert keys == sorted(set(keys)), "--list is not sorted by key"
    assert_selection(keys, store_rows, args, what="--list")
    catalog = catalog_rows(catalog_store / CATALOG)
    bad = []
    for r in rows:
        c = catalog[int(r["key"])]
        if (int(r["plate"]), int(r["mjd"]), int(r["fiber"])) != (c["plate"], c["mjd"], c["fiber"]):
            bad.append(f"{r}: plate/mjd/fiber differ from the key")
        for col in ("ra", "dec"):
            if (r[col] == "") != (c[col] is None) or (r[col] and float(r[col]) != c[col]):
                bad.append(f"key {r['key']}: {col} {r[col]!r}, catalog {c[col]!r}")
        if (r["class"] or None) != c["class"]:
            bad.append(f"key {r['key']}: class {r['class']!r}, catalog {c['class']!r}")
        if (r["z"] == "") != (c["z"] is None) or (r["z"] and np.float32(r["z"]) != np.float32(c["z"])):
            bad.append(f"key {r['key']}: z {r['z']!r}, catalog {c['z']!r}")
    fail_on(bad, "--list values differ from catalog.parquet")


def test_filter_cases_are_not_trivial(store_rows):
    """The cases above select something, but not everything (except the whole-sky cone)."""
    n = len(store_rows)
    for name, args in FILTER_CASES.items():
        sure, _ = brute_select(store_rows, args)
        if name in ("class-none-such",):
            assert not sure
        elif name == "cone-whole-sky":
            assert len(sure) == n
        else:
            assert 0 < len(sure) < n, f"{name}: {len(sure)} of {n}"
    # the RA 0 cone really takes fibers from both sides, the pole cones fibers at all RAs
    sure, _ = brute_select(store_rows, ["--cone", CONES["ra0-straddle"]])
    ras = [store_rows[k]["ra"] for k in sure]
    assert min(ras) < 1 and max(ras) > 359
    sure, _ = brute_select(store_rows, ["--cone", CONES["pole-offset"]])
    assert max(store_rows[k]["ra"] for k in sure) - min(store_rows[k]["ra"] for k in sure) > 60


def test_cone_equivalences(catalog_store, query_bin):
    """RA 0 and 360 are the same meridian; at DEC 90 the RA of the centre does not matter."""
    assert list_keys(query_bin, catalog_store, "--cone", CONES["ra0-wide"]) == \
        list_keys(query_bin, catalog_store, "--cone", CONES["ra360-wide"])
    assert list_keys(query_bin, catalog_store, "--cone", CONES["pole-exact"]) == \
        list_keys(query_bin, catalog_store, "--cone", CONES["pole-exact-other-ra"])


def test_bounds_are_inclusive(catalog_store, query_bin):
    """--z-min/--z-max equal to a fiber's z keep it; a tiny cone centred on a fiber keeps it."""
    catalog = catalog_rows(catalog_store / CATALOG)
    key = sorted(k for k, r in catalog.items() if r["class"] == "QSO")[3]
    z = repr(float(catalog[key]["z"]))  # the float32 value, exactly
    keys = list_keys(query_bin, catalog_store, "--z-min", z, "--z-max", z)
    assert key in keys and all(np.float32(catalog[k]["z"]) == np.float32(catalog[key]["z"]) for k in keys)
    assert key in list_keys(query_bin, catalog_store, "--z-min", z, "--class", "QSO")
    assert key in list_keys(query_bin, catalog_store, "--z-max", z, "--class", "QSO")
    ra, dec = catalog[key]["ra"], catalog[key]["dec"]
    assert list_keys(query_bin, catalog_store, "--cone", f"{ra!r},{dec!r},1e-7") == [key]


def test_filters_and_with_fibers(catalog_store, query_bin, store_rows, tmp_path):
    """--fibers LIST and filters: the intersection."""
    keys = sorted(store_rows)
    listed = keys[::3] + keys[1:40:5]  # about a third of the store, from every plate
    fibers = write_fibers(tmp_path / "fibers.csv", listed)
    triples = [key_triple(k) for k in listed]
    for args in (["--class", "QSO"], ["--cone", CONES["ra0-straddle"]], ["--z-min", "0.2", "--primary"],
                 ["--cone", CONES["pole-offset"], "--zwarning-zero"]):
        got = list_keys(query_bin, catalog_store, "--fibers", fibers, *args)
        sure = assert_selection(got, store_rows, args, fibers=triples, what="--fibers + filters")
        assert sure and set(got) <= set(listed)
    # the fiber list alone
    assert list_keys(query_bin, catalog_store, "--fibers", fibers) == sorted(set(listed))


def test_list_feeds_fibers(catalog_store, query_bin, tmp_path):
    """--list output is a valid --fibers list giving the same subset (h5diff-equal HDF5, same export);
    --list writes nothing, prints once under mpirun."""
    args = ["--cone", CONES["ra0-wide"], "--class", "QSO", "--class", "GALAXY", "--zwarning-zero"]
    listing = bq(query_bin, catalog_store, *args, "--list").stdout
    listed = tmp_path / "listed.csv"
    listed.write_text(listing)
    bq(query_bin, catalog_store, *args, "-o", tmp_path / "a.h5", "--parquet", tmp_path / "a.parquet")
    bq(query_bin, catalog_store, "--fibers", listed, "-o", tmp_path / "b.h5", "--parquet", tmp_path / "b.parquet")
    if shutil.which("h5diff"):
        proc = run(["h5diff", tmp_path / "a.h5", tmp_path / "b.h5"])
        assert proc.returncode == 0, f"h5diff: {proc.stdout}{proc.stderr}"
    a, b = pq.read_table(tmp_path / "a.parquet"), pq.read_table(tmp_path / "b.parquet")
    assert a.equals(b)
    assert sha256(tmp_path / "a.parquet") == sha256(tmp_path / "b.parquet")
    n = len(listing.splitlines()) - 1
    assert a.num_rows == n > 0
    # --list writes nothing else, whatever else is asked
    proc = bq(query_bin, catalog_store, *args, "--list", "--parquet", tmp_path / "c.parquet",
              "--arrow", tmp_path / "c.arrow", "-o", tmp_path / "c.h5", check=False)
    assert not any((tmp_path / f"c.{ext}").exists() for ext in ("parquet", "arrow", "h5")), \
        f"--list wrote a file (exit {proc.returncode})"
    # printed by rank 0 only
    mpi = bq(query_bin, catalog_store, *args, "--list", ranks=2).stdout
    assert mpi == listing


def test_store_scan_gives_the_same_selection(catalog_store, query_bin, tmp_path):
    scan = without_catalog(catalog_store, tmp_path / "scan")
    for args in (["--cone", CONES["pole-offset"]], ["--class", "qso", "--z-min", "1"], ["--primary"]):
        assert bq(query_bin, scan, *args, "--list").stdout == bq(query_bin, catalog_store, *args, "--list").stdout
        assert bq(query_bin, scan, *args, "--list", ranks=2).stdout == \
            bq(query_bin, catalog_store, *args, "--list").stdout
    assert not (scan / CATALOG).exists(), "boss-query must not write the store's catalog"


def test_real_store_filters(real_store, query_bin):
    rows = brute_catalog(real_store)
    for args in (["--class", "QSO", "--z-min", "2"], ["--cone", "110.5,39.5,0.5"], ["--class", "star"],
                 ["--primary", "--zwarning-zero"], ["--cone", "6.7,0,0.1"], ["--z-max", "0.9", "--z-min", "0.5"]):
        assert_selection(list_keys(query_bin, real_store, *args), rows, args)


# ------------------------------------------------------------------------------------------------
# exports
# ------------------------------------------------------------------------------------------------

EXPORT_ARGS = ["--class", "GALAXY", "--class", "QSO", "--z-min", "0.3"]  # from every plate file
RANKS = (1, 2, 4)


@pytest.fixture(scope="module")
def exports(catalog_store, query_bin, tmp_path_factory) -> dict:
    """rank count -> (folder with out.parquet, out.arrow, out.h5; --json summary)."""
    need_mpirun()
    result = {}
    for n in RANKS:
        d = tmp_path_factory.mktemp(f"export-{n}")
        summary = bq_json(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", d / "out.parquet",
                          "--arrow", d / "out.arrow", "-o", d / "out.h5", ranks=n)
        result[n] = (d, summary)
    return result


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", RANKS)
def test_export_parquet_and_arrow(exports, catalog_store, store_rows, ranks):
    d, summary = exports[ranks]
    catalog = catalog_rows(catalog_store / CATALOG)
    expected = sorted(assert_selection(list(catalog_rows(d / "out.parquet")), store_rows, EXPORT_ARGS,
                                       what="--parquet"))
    assert {r["plate"] for k, r in store_rows.items() if k in set(expected)} == {5000, 5001, 5002, 5003, 6000}
    table = pq.read_table(d / "out.parquet")
    check_export(table, catalog_store, expected, catalog, f"out.parquet (-n {ranks})")
    arrow = read_arrow(d / "out.arrow")
    check_export(arrow, catalog_store, expected, catalog, f"out.arrow (-n {ranks})")
    assert arrow.equals(table), "the Arrow and Parquet exports differ"
    # pandas opens both
    df = pd.read_parquet(d / "out.parquet")
    assert list(df["key"]) == expected and len(df["flux"].iloc[0]) == df["npix"].iloc[0]
    assert pd.read_feather(d / "out.arrow")["key"].tolist() == expected
    # summary
    assert summary["selected"] == len(expected) and summary["catalog"] == "catalog_file", summary
    exp = summary["export"]
    assert exp["rows"] == len(expected) and exp["seconds"] >= 0, summary
    assert exp["spectra_bytes"] == sum(catalog[k]["npix"] for k in expected) * 4 * len(SPECTRAL), summary


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", RANKS)
def test_export_with_h5_output(exports, catalog_store, ranks):
    """-o OUT.h5 in the same command holds the same fibers, value for value."""
    d, _ = exports[ranks]
    keys = pq.read_table(d / "out.parquet", columns=["key"]).column("key").to_pylist()
    with h5py.File(d / "out.h5", "r") as f:
        got = sorted(p * 10**9 + m * 10**4 + int(fib) for p in map(int, f) for m in map(int, f[str(p)])
                     for fib in f[f"{p}/{m}"] if fib.isdigit())
    assert got == keys
    assert output_differences(d / "out.h5", catalog_store, [key_triple(k) for k in keys]) == []


@pytest.mark.mpi
def test_export_identical_bytes_for_any_rank_count(exports):
    for name in ("out.parquet", "out.arrow"):
        digests = {n: sha256(exports[n][0] / name) for n in RANKS}
        assert len(set(digests.values())) == 1, f"{name} differs between rank counts: {digests}"
    if shutil.which("h5diff"):
        for n in RANKS[1:]:
            proc = run(["h5diff", exports[1][0] / "out.h5", exports[n][0] / "out.h5"])
            assert proc.returncode == 0, f"h5diff -n 1 / -n {n}: {proc.stdout}"


@pytest.mark.mpi
def test_export_tiny_selections(catalog_store, query_bin, store_rows, tmp_path):
    """One row and no row under mpirun -n 4 (ranks without any row): right rows, the same bytes as -n 1."""
    catalog = catalog_rows(catalog_store / CATALOG)
    key = sorted(k for k, r in catalog.items() if r["plate"] == 6000 and r["nexp"] > 0)[0]
    one = ["--cone", f"{catalog[key]['ra']!r},{catalog[key]['dec']!r},1e-6"]
    for name, args, expected in (("one", one, [key]), ("none", ["--z-min", "99"], [])):
        outs = {}
        for n in (1, 4):
            out = tmp_path / f"{name}-{n}"
            summary = bq_json(query_bin, catalog_store, *args, "--parquet", f"{out}.parquet", "--arrow",
                              f"{out}.arrow", ranks=n)
            assert summary["selected"] == len(expected) and summary["export"]["rows"] == len(expected), summary
            check_export(pq.read_table(f"{out}.parquet"), catalog_store, expected, catalog, f"{name} -n {n}")
            check_export(read_arrow(Path(f"{out}.arrow")), catalog_store, expected, catalog, f"{name} -n {n} arrow")
            outs[n] = (sha256(f"{out}.parquet"), sha256(f"{out}.arrow"))
        assert outs[1] == outs[4], f"{name}: -n 1 and -n 4 exports differ"


@pytest.mark.mpi
@pytest.mark.parametrize("columns,names", [("flux,ivar", ["flux", "ivar"]),
                                           ("and-mask,or-mask,wave", ["and_mask", "or_mask", "wave"]),
                                           ("model", ["model"])])
def test_export_columns(catalog_store, query_bin, store_rows, tmp_path, columns, names):
    args = ["--cone", CONES["pole-offset"]]
    summary = bq_json(query_bin, catalog_store, *args, "--columns", columns, "--parquet", tmp_path / "o.parquet",
                      "--arrow", tmp_path / "o.arrow", ranks=2)
    expected = sorted(brute_select(store_rows, args)[0])
    catalog = catalog_rows(catalog_store / CATALOG)
    for path, table in ((tmp_path / "o.parquet", pq.read_table(tmp_path / "o.parquet")),
                        (tmp_path / "o.arrow", read_arrow(tmp_path / "o.arrow"))):
        check_export(table, catalog_store, expected, catalog, f"{path.name} --columns {columns}", columns=names)
    assert summary["export"]["spectra_bytes"] == sum(catalog[k]["npix"] for k in expected) * 4 * len(names)


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [None, 2])
def test_export_without_catalog_file(catalog_store, query_bin, exports, tmp_path, ranks):
    """No catalog.parquet: the rows are built from the HDF5 files; the same frame, the same selection."""
    scan = without_catalog(catalog_store, tmp_path / "scan")
    summary = bq_json(query_bin, scan, *EXPORT_ARGS, "--parquet", tmp_path / "o.parquet",
                      "--arrow", tmp_path / "o.arrow", ranks=ranks)
    assert summary["catalog"] == "store_scan", summary
    with_catalog = exports[1][0]
    a = pq.read_table(tmp_path / "o.parquet")
    b = pq.read_table(with_catalog / "out.parquet")
    assert a.equals(b), "the export without catalog.parquet differs from the one with it"
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "o.parquet"), pd.read_parquet(with_catalog / "out.parquet"))
    assert read_arrow(tmp_path / "o.arrow").equals(read_arrow(with_catalog / "out.arrow"))
    assert not (scan / CATALOG).exists()


@pytest.mark.mpi
def test_export_real_store(real_store, query_bin, tmp_path):
    """Real spectra of different lengths, one with exposures, under mpirun -n 2."""
    rows = brute_catalog(real_store)
    args = ["--cone", "6.7,0,0.1"]
    fibers = write_fibers(tmp_path / "f.csv", [K(3655, 55240, f) for f in (2, 26, 100, 994)] + [K(9367, 57758, 386)])
    keys1 = sorted(brute_select(rows, ["--class", "QSO", "--z-min", "2.4"])[0])
    keys2 = sorted(brute_select(rows, args)[0])
    assert keys2 == [K(3586, 55181, 500)]
    catalog = catalog_rows(real_store / CATALOG)
    for n, (sel, expected) in enumerate(((["--class", "QSO", "--z-min", "2.4"], keys1), (args, keys2),
                                         (["--fibers", fibers], [K(3655, 55240, f) for f in (2, 26, 100, 994)] +
                                          [K(9367, 57758, 386)]))):
        out = tmp_path / f"r{n}.parquet"
        bq(query_bin, real_store, *sel, "--parquet", out, ranks=2)
        check_export(pq.read_table(out), real_store, expected, catalog, f"real {sel}")


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------

BAD = {
    "cone-bad-dec": (["--cone", "10,95,1", "--list"], ["95"]),
    "cone-not-numbers": (["--cone", "abc", "--list"], ["cone"]),
    "cone-two-numbers": (["--cone", "1,2", "--parquet", "{out}"], ["cone"]),
    "cone-zero-radius": (["--cone", "1,2,0", "--list"], ["radius"]),
    "no-selection-h5": (["-o", "{out}"], ["--fibers"]),
    "no-selection-parquet": (["--parquet", "{out}"], ["--fibers"]),
    "nothing-to-do": (["--class", "QSO"], ["--parquet"]),
    "unknown-column": (["--class", "QSO", "--columns", "flux,bogus", "--parquet", "{out}"], ["bogus"]),
}


@pytest.mark.parametrize("args,words", list(BAD.values()), ids=list(BAD))
def test_bad_input_exits_2(catalog_store, query_bin, tmp_path, args, words):
    out = tmp_path / "out.file"
    args = [a.replace("{out}", str(out)) for a in args]
    proc = bq(query_bin, catalog_store, *args, check=False)
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2"
    assert proc.stderr.strip(), "no message on stderr"
    for word in words:
        assert word.lower() in proc.stderr.lower(), f"stderr does not mention {word!r}: {proc.stderr}"
    assert not proc.stdout.strip() or "key," not in proc.stdout
    assert not out.exists() and not list(tmp_path.iterdir()), f"files written: {list(tmp_path.iterdir())}"
