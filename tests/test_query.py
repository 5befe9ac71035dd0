"""End-to-end tests of `boss-query --store DIR --fibers LIST -o OUT.h5 [--io independent|collective]
[--force] [--json]`, run plain (an MPI singleton) and under `mpirun -n N`.

The output is checked VALUE FOR VALUE against the store read with h5py (not only exit codes):
every selected fiber's coadd and exposure datasets (dtype, shape, bytes, attributes), the plate-MJD
group attributes, the plugmap/spall/zline/zbest tables filtered to the selected fibers (same dtype,
same column order, rows in store order, table attributes), the root attributes, and no extra
object. Outputs of other rank counts and I/O modes must be `h5diff`-equal to the plain output.

- generated store (3 plates x 60 fibers x 800 pixels, spPlate + siblings + spec files, seed 2):
  plain and mpirun -n 1..4, independent and collective;
- real store (all of ../shared/real-sdss): plain, -n 2, -n 4;
- list formats (H5Boss text, CSV with shuffled/extra columns, comments/blank lines), duplicates,
  missing fibers, malformed/empty/absent lists, existing OUT with and without --force;
- a broken or foreign store file under mpirun -n 4: prompt non-zero exit naming the file, no output
  and no temporary file left;
- --io collective (MPI-IO write_at_all rounds): collective_writes > 0, same bytes as independent.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import run, sha256

TABLES = ("plugmap", "spall", "zline", "zbest")
FORMAT_VERSION = "h5boss-v1"
SUMMARY_KEYS = {"fibers_asked", "duplicates", "fibers_found", "fibers_missing", "missing", "datasets",
                "bytes", "ranks", "io", "record_bytes", "collective_writes", "phases", "seconds", "output"}
PHASES = {"scan", "exchange", "create", "write", "close"}
TIMEOUT = 120          # every boss-query subprocess
FAIL_TIMEOUT = 60      # the failing-rank runs
FAIL_MAX_SECONDS = 30  # "well before the timeout"

# Selection on the real store: the BOSS full spec file (14 exposure datasets), several eBOSS lite
# fibers of 3655-55240 (one listed twice) and the single fiber of 10656-58163.
REAL_SELECTION = [(3586, 55181, 500), (3655, 55240, 2), (3655, 55240, 26), (3655, 55240, 100),
                  (3655, 55240, 330), (3655, 55240, 540), (3655, 55240, 994), (10656, 58163, 366)]
REAL_DUPLICATES = [(3655, 55240, 26)]


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------


def mpirun_available() -> bool:
    return shutil.which("mpirun") is not None


def need_mpirun():
    if not mpirun_available():
        pytest.skip("mpirun not installed")


def query(query_bin, store, fibers, out, *options, ranks: int | None = None, timeout: float = TIMEOUT,
          json_summary: bool = True):
    """Runs boss-query (plain when `ranks` is None, else under mpirun -n ranks).

    Returns (CompletedProcess, parsed --json summary or None, elapsed seconds)."""
    cmd = [query_bin, "--store", store, "--fibers", fibers, "-o", out, *options]
    if json_summary:
        cmd.append("--json")
    if ranks is not None:
        need_mpirun()
        cmd = ["mpirun", "-n", str(ranks), *cmd]
    start = time.monotonic()
    proc = run(cmd, timeout=timeout)
    elapsed = time.monotonic() - start
    summary = None
    if json_summary and proc.stdout.strip():
        try:
            summary = json.loads(proc.stdout)
        except json.JSONDecodeError as exc:
            pytest.fail(f"--json output is not JSON ({exc}):\n{proc.stdout}", pytrace=False)
    return proc, summary, elapsed


def write_csv(path: Path, rows, header=("plate", "mjd", "fiber"), extra_lines=()) -> Path:
    """CSV with `header`; each row is a dict (by column) or a (plate, mjd, fiber) tuple."""
    lines = [",".join(header), *extra_lines]
    for row in rows:
        if not isinstance(row, dict):
            row = dict(zip(("plate", "mjd", "fiber"), row))
        lines.append(",".join(str(row.get(col.lower(), row.get(col, ""))) for col in header))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_h5boss(path: Path, rows) -> Path:
    """H5Boss query format: header `plates mjds fibers`, whitespace-separated triples, plus a comment
    and a blank line (both ignored)."""
    lines = ["plates mjds fibers", "# selection written by test_query.py", ""]
    for i, (p, m, f) in enumerate(rows):
        sep = "\t" if i % 3 == 0 else "  " if i % 3 == 1 else " "
        lines.append(f"{p}{sep}{m}{sep}{f}")
    path.write_text("\n".join(lines) + "\n")
    return path


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith(".") and ".tmp-" in p.name)


def assert_no_temp_files(folder: Path):
    left = temp_files(folder)
    assert not left, f"temporary files left in {folder}: {left}"


def store_name(plate: int, mjd: int) -> str:
    return f"{plate:04d}-{mjd:05d}.h5"


def store_fibers(store: Path) -> dict[tuple[int, int], list[int]]:
    """(plate, mjd) -> sorted fiber numbers present in the store."""
    result = {}
    for path in sorted(Path(store).glob("*.h5")):
        plate, mjd = (int(x) for x in path.stem.split("-"))
        with h5py.File(path, "r") as f:
            group = f[f"{plate}/{mjd}"]
            result[(plate, mjd)] = sorted(int(k) for k, v in group.items()
                                          if k.isdigit() and isinstance(v, h5py.Group))
    return result


def stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def _same_dtype(a: np.dtype, b: np.dtype) -> bool:
    """Same fields in the same order with the same types and shapes (offsets/padding not compared)."""
    if a.names is None or b.names is None:
        return a == b
    return a.names == b.names and all(a.fields[n][0] == b.fields[n][0] for n in a.names)


def _same_values(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-identical values (NaN equals NaN only with the same bits), field by field for compounds."""
    if a.shape != b.shape:
        return False
    if a.dtype.names:
        return all(np.ascontiguousarray(a[n]).tobytes() == np.ascontiguousarray(b[n]).tobytes()
                   for n in a.dtype.names)
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def attr_diffs(where: str, expected: h5py.AttributeManager, actual: h5py.AttributeManager) -> list[str]:
    """Attribute sets equal: same names, same Python/numpy type, same HDF5-read dtype, same bits."""
    diffs = []
    ek, ak = set(expected.keys()), set(actual.keys())
    if ek != ak:
        diffs.append(f"{where}: attributes missing {sorted(ek - ak)}, extra {sorted(ak - ek)}")
    for key in sorted(ek & ak):
        e, a = expected[key], actual[key]
        if isinstance(e, (str, bytes)) or isinstance(a, (str, bytes)):
            if type(e) is not type(a) or e != a:
                diffs.append(f"{where}: attribute {key}: output {a!r}, store {e!r}")
            continue
        ea, aa = np.asarray(e), np.asarray(a)
        if ea.dtype != aa.dtype or ea.shape != aa.shape or not _same_values(ea, aa):
            diffs.append(f"{where}: attribute {key}: output {a!r} ({aa.dtype}), store {e!r} ({ea.dtype})")
    return diffs


def dataset_diffs(where: str, expected: h5py.Dataset, actual: h5py.Dataset) -> list[str]:
    diffs = []
    if not _same_dtype(expected.dtype, actual.dtype):
        diffs.append(f"{where}: dtype {actual.dtype}, store {expected.dtype}")
    elif expected.shape != actual.shape:
        diffs.append(f"{where}: shape {actual.shape}, store {expected.shape}")
    elif not _same_values(expected[()], actual[()]):
        diffs.append(f"{where}: values differ from the store")
    return diffs + attr_diffs(where, expected.attrs, actual.attrs)


def tree(group: h5py.Group) -> dict[str, str]:
    """Relative path -> 'group'/'dataset' of everything under `group`."""
    items = {}
    group.visititems(lambda name, obj: items.__setitem__(
        name, "dataset" if isinstance(obj, h5py.Dataset) else "group"))
    return items


def output_differences(out: Path, store: Path, selected) -> list[str]:
    """Everything that differs between OUT and the store restricted to the `selected` (plate, mjd, fiber)
    triples (which must all be in the store)."""
    by_pm = defaultdict(set)
    for plate, mjd, fiber in selected:
        by_pm[(plate, mjd)].add(int(fiber))
    diffs = []
    with h5py.File(out, "r") as o:
        fmt = o.attrs.get("BOSS_STORE_FORMAT")
        if fmt != FORMAT_VERSION:
            diffs.append(f"{out}: root BOSS_STORE_FORMAT is {fmt!r}, expected {FORMAT_VERSION!r}")
        writer = o.attrs.get("WRITER")
        if not isinstance(writer, str) or not writer.strip():
            diffs.append(f"{out}: root WRITER attribute is {writer!r}")
        expected_top = {str(p): {str(m) for (pp, m) in by_pm if pp == p} for (p, _) in by_pm}
        actual_top = {k: set(o[k].keys()) if isinstance(o[k], h5py.Group) else None for k in o.keys()}
        if actual_top != expected_top:
            diffs.append(f"{out}: top-level plates/MJDs {actual_top}, expected {expected_top}")
        for (plate, mjd), fibers in sorted(by_pm.items()):
            gpath = f"{plate}/{mjd}"
            if gpath not in o:
                diffs.append(f"{out}: /{gpath} missing")
                continue
            og = o[gpath]
            with h5py.File(Path(store) / store_name(plate, mjd), "r") as s:
                sg = s[gpath]
                diffs += attr_diffs(f"/{gpath}", sg.attrs, og.attrs)
                expected_members = {str(f) for f in fibers}
                for table in TABLES:
                    if table not in sg:
                        continue
                    rows = sg[table][()]
                    mask = np.isin(rows["FIBERID"].astype(np.int64), sorted(fibers))
                    where = f"/{gpath}/{table}"
                    if table not in og:
                        if mask.any():
                            diffs.append(f"{where}: missing ({int(mask.sum())} rows expected)")
                        continue
                    expected_members.add(table)
                    ods = og[table]
                    if not _same_dtype(sg[table].dtype, ods.dtype):
                        diffs.append(f"{where}: dtype {ods.dtype}, store {sg[table].dtype}")
                        continue
                    got = ods[()]
                    want = rows[mask]
                    if len(got) != len(want):
                        diffs.append(f"{where}: {len(got)} rows (FIBERID {got['FIBERID'].tolist()}), "
                                     f"expected {len(want)} (FIBERID {want['FIBERID'].tolist()})")
                    elif not _same_values(want, got):
                        bad = [n for n in want.dtype.names if not _same_values(want[n], got[n])]
                        diffs.append(f"{where}: rows differ from the store rows of the selected fibers "
                                     f"(fields {bad})")
                    diffs += attr_diffs(where, sg[table].attrs, ods.attrs)
                members = set(og.keys())
                if members != expected_members:
                    diffs.append(f"/{gpath}: members extra {sorted(members - expected_members)}, "
                                 f"missing {sorted(expected_members - members)}")
                for fiber in sorted(fibers):
                    fpath = f"{gpath}/{fiber}"
                    if fpath not in o:
                        continue  # reported above
                    diffs += attr_diffs(f"/{fpath}", s[fpath].attrs, o[fpath].attrs)
                    st, ot = tree(s[fpath]), tree(o[fpath])
                    if st != ot:
                        diffs.append(f"/{fpath}: objects {sorted(ot.items())}, store {sorted(st.items())}")
                    for name, kind in sorted(st.items()):
                        if ot.get(name) != kind:
                            continue
                        where = f"/{fpath}/{name}"
                        if kind == "dataset":
                            diffs += dataset_diffs(where, s[f"{fpath}/{name}"], o[f"{fpath}/{name}"])
                        else:
                            diffs += attr_diffs(where, s[f"{fpath}/{name}"].attrs, o[f"{fpath}/{name}"].attrs)
    return diffs


def assert_output_equals_store(out: Path, store: Path, selected, max_lines: int = 40):
    diffs = output_differences(out, store, selected)
    if diffs:
        shown = "\n".join(diffs[:max_lines])
        more = f"\n... and {len(diffs) - max_lines} more" if len(diffs) > max_lines else ""
        pytest.fail(f"{out} differs from the store {store} ({len(diffs)} differences):\n{shown}{more}",
                    pytrace=False)


def output_counts(out: Path) -> tuple[int, int]:
    """(datasets under fiber groups, bytes of all datasets) in OUT."""
    counts = [0, 0]

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset):
            counts[1] += obj.size * obj.dtype.itemsize
            if name.split("/")[-1] not in TABLES:
                counts[0] += 1
    with h5py.File(out, "r") as f:
        f.visititems(visit)
    return counts[0], counts[1]


def store_counts(store: Path, selected) -> tuple[int, int]:
    """(fiber datasets, bytes of fiber datasets + selected table rows) the selection has in the store."""
    by_pm = defaultdict(set)
    for plate, mjd, fiber in selected:
        by_pm[(plate, mjd)].add(fiber)
    datasets = nbytes = 0
    for (plate, mjd), fibers in by_pm.items():
        with h5py.File(Path(store) / store_name(plate, mjd), "r") as s:
            g = s[f"{plate}/{mjd}"]
            for fiber in fibers:
                for name, kind in tree(g[str(fiber)]).items():
                    if kind == "dataset":
                        ds = g[f"{fiber}/{name}"]
                        datasets += 1
                        nbytes += ds.size * ds.dtype.itemsize
            for table in TABLES:
                if table in g:
                    fib = g[table]["FIBERID"].astype(np.int64)
                    nbytes += int(np.isin(fib, sorted(fibers)).sum()) * g[table].dtype.itemsize
    return datasets, nbytes


def check_summary(summary, **expected):
    assert summary is not None, "--json printed nothing on stdout"
    missing = SUMMARY_KEYS - summary.keys()
    assert not missing, f"--json summary lacks keys {sorted(missing)}: {summary}"
    assert set(summary["phases"]) >= PHASES, f"--json phases lacks {PHASES - set(summary['phases'])}"
    for key, value in expected.items():
        assert summary[key] == value, f"--json {key} is {summary[key]!r}, expected {value!r}: {summary}"


def h5diff(a: Path, b: Path):
    return run(["h5diff", a, b], timeout=TIMEOUT)


def unique(rows):
    return list(dict.fromkeys(rows))


# ------------------------------------------------------------------------------------------------
# fixtures: the generated selection and its plain output
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synth_selection(synth_query_store):
    """~40 list lines over all 3 plates: fibers with exposures (multiples of 10), others, and 3
    duplicates, in a shuffled order. Returns (lines, unique triples)."""
    fibers = store_fibers(synth_query_store)
    assert len(fibers) == 3, fibers
    rng = np.random.default_rng(11)
    chosen = []
    for (plate, mjd), present in sorted(fibers.items()):
        with_exposures = [f for f in (10, 20, 30) if f in present]
        assert with_exposures, f"{plate}-{mjd}: no fiber 10/20/30 in the store"
        others = [f for f in present if f not in with_exposures]
        picked = with_exposures + sorted(rng.choice(others, size=10, replace=False).tolist())
        chosen += [(plate, mjd, int(f)) for f in picked]
    lines = chosen + [chosen[0], chosen[14], chosen[-1]]
    order = rng.permutation(len(lines))
    lines = [lines[i] for i in order]
    return lines, unique(chosen)


@pytest.fixture(scope="module")
def synth_list(synth_selection, tmp_path_factory) -> Path:
    lines, _ = synth_selection
    return write_csv(tmp_path_factory.mktemp("lists") / "fibers.csv", lines)


@pytest.fixture(scope="module")
def synth_plain(query_bin, synth_query_store, synth_list, tmp_path_factory):
    """Plain (no mpirun) independent query of the generated selection: (OUT, CompletedProcess, summary)."""
    out = tmp_path_factory.mktemp("plain") / "plain.h5"
    proc, summary, _ = query(query_bin, synth_query_store, synth_list, out)
    assert proc.returncode == 0, f"plain boss-query exited {proc.returncode}:\n{proc.stderr}"
    return out, proc, summary


# ------------------------------------------------------------------------------------------------
# 1. generated store: values, and every rank count / I/O mode gives the same file
# ------------------------------------------------------------------------------------------------


def test_synth_plain_equals_store(synth_plain, synth_query_store, synth_selection):
    out, proc, summary = synth_plain
    lines, selected = synth_selection
    assert len(lines) >= 40 and len(selected) == len(lines) - 3
    assert {(p, m) for p, m, _ in selected} == set(store_fibers(synth_query_store)), "list must touch all plates"
    datasets, nbytes = store_counts(synth_query_store, selected)
    assert datasets > len(selected), "the selection must include fibers with exposures"
    check_summary(summary, fibers_asked=len(selected), duplicates=3, fibers_found=len(selected),
                  fibers_missing=0, missing=[], ranks=1, io="independent", datasets=datasets,
                  bytes=nbytes, collective_writes=0, output=str(out))
    assert_output_equals_store(out, synth_query_store, selected)
    assert sorted(p.name for p in out.parent.iterdir()) == ["plain.h5"]


@pytest.mark.mpi
@pytest.mark.parametrize("io", ["independent", "collective"])
@pytest.mark.parametrize("ranks", [None, 1, 2, 3, 4], ids=["plain", "n1", "n2", "n3", "n4"])
def test_synth_same_output_any_ranks(query_bin, synth_query_store, synth_list, synth_selection, synth_plain,
                                     tmp_path, ranks, io):
    _, selected = synth_selection
    plain_out = synth_plain[0]
    out = tmp_path / "out.h5"
    proc, summary, _ = query(query_bin, synth_query_store, synth_list, out, "--io", io, ranks=ranks)
    assert proc.returncode == 0
    datasets, nbytes = store_counts(synth_query_store, selected)
    check_summary(summary, ranks=ranks or 1, io=io, fibers_asked=len(selected), duplicates=3,
                  fibers_found=len(selected), fibers_missing=0, missing=[], datasets=datasets,
                  bytes=nbytes, output=str(out))
    if io == "collective":
        assert summary["collective_writes"] > 0, summary
    else:
        assert summary["collective_writes"] == 0, summary
    diff = h5diff(plain_out, out)
    assert diff.returncode == 0, f"h5diff plain vs {ranks or 'plain'}/{io}:\n{diff.stdout}{diff.stderr}"
    assert_no_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


# ------------------------------------------------------------------------------------------------
# 2. real store
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_list(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("real-list") / "real.csv", REAL_SELECTION + REAL_DUPLICATES)


@pytest.fixture(scope="module")
def real_plain(query_bin, real_store, real_list, tmp_path_factory):
    out = tmp_path_factory.mktemp("real-plain") / "real.h5"
    proc, summary, _ = query(query_bin, real_store, real_list, out)
    assert proc.returncode == 0, f"plain boss-query on the real store exited {proc.returncode}:\n{proc.stderr}"
    return out, summary


def test_real_plain_equals_store(real_plain, real_store):
    out, summary = real_plain
    datasets, nbytes = store_counts(real_store, REAL_SELECTION)
    check_summary(summary, fibers_asked=len(REAL_SELECTION), duplicates=len(REAL_DUPLICATES),
                  fibers_found=len(REAL_SELECTION), fibers_missing=0, missing=[], ranks=1,
                  datasets=datasets, bytes=nbytes)
    assert_output_equals_store(out, real_store, REAL_SELECTION)
    with h5py.File(out, "r") as f:
        exposures = f["3586/55181/500/exposures"]
        assert sorted(exposures) == [str(e) for e in range(104927, 104934)]
        assert all(sorted(exposures[e]) == ["b", "r"] for e in exposures)
        assert len(f["3586/55181/500/coadd"]) == 4625
        assert sorted(f["3655/55240"].keys()) == sorted(
            ["2", "26", "100", "330", "540", "994", "spall", "zline"])
        assert f["3655/55240/spall"]["FIBERID"].tolist() == [2, 26, 100, 330, 540, 994]
        assert f["3655/55240/spall"].dtype["SPECOBJID"] == np.uint64
    assert_no_temp_files(out.parent)


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [2, 4])
def test_real_same_output_any_ranks(query_bin, real_store, real_list, real_plain, tmp_path, ranks):
    out = tmp_path / "real.h5"
    proc, summary, _ = query(query_bin, real_store, real_list, out, ranks=ranks)
    assert proc.returncode == 0
    check_summary(summary, ranks=ranks, fibers_found=len(REAL_SELECTION), duplicates=len(REAL_DUPLICATES),
                  missing=[])
    diff = h5diff(real_plain[0], out)
    assert diff.returncode == 0, f"h5diff plain vs -n {ranks}:\n{diff.stdout}{diff.stderr}"
    assert_no_temp_files(tmp_path)


# ------------------------------------------------------------------------------------------------
# 3. list formats and errors
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_selection(synth_query_store):
    """8 fibers over the 3 plates (some with exposures), in list order."""
    pms = sorted(store_fibers(synth_query_store))
    return [(*pms[0], 10), (*pms[0], 3), (*pms[1], 20), (*pms[1], 59), (*pms[1], 1),
            (*pms[2], 7), (*pms[2], 30), (*pms[2], 60)]


def test_h5boss_format_equals_csv(query_bin, synth_query_store, small_selection, tmp_path):
    csv = write_csv(tmp_path / "list.csv", small_selection)
    txt = write_h5boss(tmp_path / "list.txt", small_selection)
    a, b = tmp_path / "csv.h5", tmp_path / "h5boss.h5"
    pa, sa, _ = query(query_bin, synth_query_store, csv, a)
    pb, sb, _ = query(query_bin, synth_query_store, txt, b)
    assert pa.returncode == 0 and pb.returncode == 0
    check_summary(sb, fibers_asked=len(small_selection), fibers_found=len(small_selection), duplicates=0)
    assert h5diff(a, b).returncode == 0, "H5Boss list and CSV list give different outputs"
    assert_output_equals_store(b, synth_query_store, small_selection)
    assert_no_temp_files(tmp_path)


def test_csv_shuffled_and_extra_columns(query_bin, synth_query_store, small_selection, tmp_path):
    plain = write_csv(tmp_path / "plain.csv", small_selection)
    rows = [{"fiberid": f, "ra": 1.5 * i, "mjd": m, "name": f"obj{i}", "plate": p, "z": 0.25}
            for i, (p, m, f) in enumerate(reversed(small_selection))]
    shuffled = write_csv(tmp_path / "shuffled.csv", rows, header=("ra", "fiberid", "mjd", "name", "plate", "z"),
                         extra_lines=["# a comment line", ""])
    a, b = tmp_path / "plain.h5", tmp_path / "shuffled.h5"
    assert query(query_bin, synth_query_store, plain, a)[0].returncode == 0
    proc, summary, _ = query(query_bin, synth_query_store, shuffled, b)
    assert proc.returncode == 0
    check_summary(summary, fibers_asked=len(small_selection), fibers_found=len(small_selection))
    assert h5diff(a, b).returncode == 0, "CSV with shuffled/extra columns gives a different output"
    assert_output_equals_store(b, synth_query_store, small_selection)
    assert_no_temp_files(tmp_path)


def test_duplicates_counted_once(query_bin, synth_query_store, small_selection, tmp_path):
    lines = small_selection + small_selection[:3] + [small_selection[0]]
    out = tmp_path / "dup.h5"
    proc, summary, _ = query(query_bin, synth_query_store, write_csv(tmp_path / "dup.csv", lines), out)
    assert proc.returncode == 0
    datasets, nbytes = store_counts(synth_query_store, small_selection)
    check_summary(summary, fibers_asked=len(small_selection), duplicates=4, fibers_found=len(small_selection),
                  datasets=datasets, bytes=nbytes)
    assert_output_equals_store(out, synth_query_store, small_selection)
    assert output_counts(out) == (datasets, nbytes)


@pytest.mark.parametrize("ranks", [None, 2], ids=["plain", "n2"])
def test_missing_fibers(query_bin, synth_query_store, small_selection, tmp_path, ranks):
    (p0, m0, _), (p1, m1, _) = small_selection[0], small_selection[2]
    missing = [(p0, m0, 999), (p1, m1, 61), (7777, 55555, 12)]
    lines = small_selection[:4] + [missing[0]] + small_selection[4:] + missing[1:]
    out = tmp_path / "miss.h5"
    proc, summary, _ = query(query_bin, synth_query_store, write_csv(tmp_path / "miss.csv", lines), out,
                             ranks=ranks)
    assert proc.returncode == 1, "missing fibers must make the query exit 1"
    for plate, mjd, fiber in missing:
        text = f"not in the store: plate {plate} mjd {mjd} fiber {fiber}"
        hits = [line for line in stderr_lines(proc) if text in line]
        assert len(hits) == 1, f"expected one stderr line {text!r} (printed by rank 0 only), got {hits}"
    check_summary(summary, fibers_asked=len(lines), duplicates=0, fibers_found=len(small_selection),
                  fibers_missing=len(missing))
    assert sorted(summary["missing"]) == sorted(f"{p}-{m}-{f}" for p, m, f in missing), summary["missing"]
    assert out.is_file(), "the output must hold the fibers that were found"
    assert_output_equals_store(out, synth_query_store, small_selection)
    assert_no_temp_files(tmp_path)


MALFORMED = {
    # name: (file text, line number in the message, text the message quotes)
    "non_integer": ("plate,mjd,fiber\n5000,55000,10\n5000,55000,x\n", 3, "5000,55000,x"),
    "negative": ("plate,mjd,fiber\n5000,55000,10\n\n5000,-55000,3\n", 4, "5000,-55000,3"),
    "missing_field": ("plate,mjd,fiber\n5000,55000,10\n# c\n5001,55007\n", 4, "5001,55007"),
    "bad_header": ("plate,mjd,fibre\n5000,55000,10\n", 1, "plate,mjd,fibre"),
    "h5boss_non_integer": ("plates mjds fibers\n5000 55000 10\n5000 55000 1.5\n", 3, "5000 55000 1.5"),
    "h5boss_missing_field": ("plates mjds fibers\n5000 55000\n", 2, "5000 55000"),
    "no_header": ("5000,55000,10\n5001,55007,20\n", 1, "5000,55000,10"),
}


@pytest.mark.parametrize("kind", sorted(MALFORMED))
def test_malformed_list_exits_2(query_bin, synth_query_store, tmp_path, kind):
    text, line_no, quoted = MALFORMED[kind]
    lst = tmp_path / "bad.csv"
    lst.write_text(text)
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "bad.h5"
    proc, summary, _ = query(query_bin, synth_query_store, lst, out)
    assert proc.returncode == 2
    assert re.search(rf"\bline {line_no}\b", proc.stderr), f"stderr does not name line {line_no}:\n{proc.stderr}"
    assert quoted in proc.stderr, f"stderr does not quote the line {quoted!r}:\n{proc.stderr}"
    assert list(outdir.iterdir()) == [], f"files written: {list(outdir.iterdir())}"


@pytest.mark.parametrize("text", ["", "plate,mjd,fiber\n", "# only comments\n\nplates mjds fibers\n\n"],
                         ids=["empty_file", "header_only", "comments_header_only"])
def test_empty_list_exits_2(query_bin, synth_query_store, tmp_path, text):
    lst = tmp_path / "empty.csv"
    lst.write_text(text)
    out = tmp_path / "out.h5"
    proc, _, _ = query(query_bin, synth_query_store, lst, out)
    assert proc.returncode == 2
    assert stderr_lines(proc), "exit 2 without a message"
    assert not out.exists()
    assert_no_temp_files(tmp_path)


def test_nonexistent_list_exits_2(query_bin, synth_query_store, tmp_path):
    out = tmp_path / "out.h5"
    proc, _, _ = query(query_bin, synth_query_store, tmp_path / "nope.csv", out)
    assert proc.returncode == 2
    assert "nope.csv" in proc.stderr
    assert not out.exists()
    assert_no_temp_files(tmp_path)


def test_nonexistent_store_exits_2(query_bin, small_selection, tmp_path):
    out = tmp_path / "out.h5"
    proc, _, _ = query(query_bin, tmp_path / "no-store", write_csv(tmp_path / "l.csv", small_selection), out)
    assert proc.returncode == 2
    assert "no-store" in proc.stderr
    assert not out.exists()
    assert_no_temp_files(tmp_path)


def test_existing_output_needs_force(query_bin, synth_query_store, small_selection, tmp_path):
    out = tmp_path / "out.h5"
    first = write_csv(tmp_path / "first.csv", small_selection[:2])
    second = write_csv(tmp_path / "second.csv", small_selection[2:])
    assert query(query_bin, synth_query_store, first, out)[0].returncode == 0
    digest = sha256(out)
    proc, _, _ = query(query_bin, synth_query_store, second, out)
    assert proc.returncode == 2, "an existing OUT must be refused without --force"
    assert out.name in proc.stderr
    assert sha256(out) == digest, "OUT was modified without --force"
    assert_no_temp_files(tmp_path)
    proc, summary, _ = query(query_bin, synth_query_store, second, out, "--force")
    assert proc.returncode == 0
    check_summary(summary, fibers_found=len(small_selection) - 2)
    assert_output_equals_store(out, synth_query_store, small_selection[2:])
    assert_no_temp_files(tmp_path)


def test_non_store_file_not_requested_is_ignored(query_bin, synth_query_store, small_selection, tmp_path):
    """A foreign/corrupt *.h5 in the store whose plate-MJD is not requested does not matter."""
    store = tmp_path / "store"
    shutil.copytree(synth_query_store, store)
    (store / "1234-56789.h5").write_bytes(np.random.default_rng(3).integers(0, 256, 4096, np.uint8).tobytes())
    with h5py.File(store / "4321-56789.h5", "w") as f:
        f["x"] = np.arange(3)
    out = tmp_path / "out.h5"
    proc, _, _ = query(query_bin, store, write_csv(tmp_path / "l.csv", small_selection), out)
    assert proc.returncode == 0
    assert_output_equals_store(out, synth_query_store, small_selection)


# ------------------------------------------------------------------------------------------------
# 4. a failing rank: broken or foreign store file under mpirun -n 4
# ------------------------------------------------------------------------------------------------


def break_random(path: Path):
    size = path.stat().st_size
    path.write_bytes(np.random.default_rng(5).integers(0, 256, size, dtype=np.uint8).tobytes())


def break_foreign(path: Path):
    path.unlink()
    with h5py.File(path, "w") as f:
        f.create_dataset("5000/55000/1/coadd", data=np.zeros(10, dtype=np.float32))
        f.attrs["SOMETHING"] = "else"


@pytest.mark.mpi
@pytest.mark.parametrize("which", [0, 1, 2], ids=["first", "second", "third"])
@pytest.mark.parametrize("kind", ["random_bytes", "foreign_hdf5"])
def test_broken_store_file_fails_fast(query_bin, synth_query_store, synth_selection, tmp_path, kind, which):
    need_mpirun()
    lines, _ = synth_selection
    store = tmp_path / "store"
    shutil.copytree(synth_query_store, store)
    victim = sorted(store.glob("*.h5"))[which]
    (break_random if kind == "random_bytes" else break_foreign)(victim)
    lst = write_csv(tmp_path / "all.csv", lines)
    outdir = tmp_path / "out"
    outdir.mkdir()
    out = outdir / "out.h5"
    proc, summary, elapsed = query(query_bin, store, lst, out, ranks=4, timeout=FAIL_TIMEOUT)
    assert elapsed < FAIL_MAX_SECONDS, f"took {elapsed:.1f} s (hang?)"
    assert proc.returncode != 0
    assert victim.name in proc.stderr, f"stderr does not name {victim.name}:\n{proc.stderr}"
    assert not out.exists(), "OUT written although a store file is broken"
    assert list(outdir.iterdir()) == [], f"left behind: {[p.name for p in outdir.iterdir()]}"


@pytest.mark.mpi
def test_broken_store_file_keeps_existing_output(query_bin, synth_query_store, synth_selection, small_selection,
                                                 tmp_path):
    """With --force and a failing run, the existing OUT is left as it was (rename only on success)."""
    need_mpirun()
    lines, _ = synth_selection
    store = tmp_path / "store"
    shutil.copytree(synth_query_store, store)
    out = tmp_path / "out.h5"
    assert query(query_bin, store, write_csv(tmp_path / "small.csv", small_selection), out)[0].returncode == 0
    digest = sha256(out)
    victim = sorted(store.glob("*.h5"))[-1]
    break_random(victim)
    proc, _, elapsed = query(query_bin, store, write_csv(tmp_path / "all.csv", lines), out, "--force", ranks=4,
                             timeout=FAIL_TIMEOUT)
    assert elapsed < FAIL_MAX_SECONDS
    assert proc.returncode != 0
    assert victim.name in proc.stderr
    assert sha256(out) == digest, "the existing OUT was changed by a failed run"
    assert_no_temp_files(tmp_path)


@pytest.mark.parametrize("kind", ["random_bytes", "foreign_hdf5"])
def test_broken_store_file_plain_exits_2(query_bin, synth_query_store, synth_selection, tmp_path, kind):
    """The same without mpirun: exit 2 (the documented status), the file named, nothing written."""
    lines, _ = synth_selection
    store = tmp_path / "store"
    shutil.copytree(synth_query_store, store)
    victim = sorted(store.glob("*.h5"))[1]
    (break_random if kind == "random_bytes" else break_foreign)(victim)
    outdir = tmp_path / "out"
    outdir.mkdir()
    proc, _, elapsed = query(query_bin, store, write_csv(tmp_path / "all.csv", lines), outdir / "out.h5",
                             timeout=FAIL_TIMEOUT)
    assert proc.returncode == 2
    assert victim.name in proc.stderr, f"stderr does not name {victim.name}:\n{proc.stderr}"
    assert list(outdir.iterdir()) == [], f"left behind: {[p.name for p in outdir.iterdir()]}"


# Objects of an otherwise valid store file whose object header is damaged (h5py cannot open them:
# "incorrect metadata checksum"). The file opens and carries BOSS_STORE_FORMAT; the damaged object is
# one the query must copy, so the output cannot hold "exactly the selected fibers" and the run must
# fail like for a corrupt store file (exit 2, the file named, no output), not skip the object silently
# or call the fiber "not in the store".
DAMAGED_OBJECTS = {
    "exposure_dataset": "exposures/{e}/b",
    "coadd_dataset": "coadd",
    "fiber_group": "",
    "zline_table": None,
}


def damage_object_header(path: Path, obj: str):
    with h5py.File(path, "r") as f:
        addr = h5py.h5o.get_info(f[obj].id).addr
    with open(path, "r+b") as raw:
        raw.seek(addr + 8)
        raw.write(b"\xff" * 40)
    with h5py.File(path, "r") as f:
        with pytest.raises(Exception):
            f[obj]  # the damage is real: h5py cannot open the object any more


@pytest.mark.mpi
@pytest.mark.parametrize("what", sorted(DAMAGED_OBJECTS))
def test_unreadable_store_object_is_an_error(query_bin, synth_query_store, synth_selection, tmp_path, what):
    lines, selected = synth_selection
    store = tmp_path / "store"
    shutil.copytree(synth_query_store, store)
    plate, mjd, fiber = next(t for t in selected if t[2] % 10 == 0)  # a selected fiber with exposures
    victim = store / store_name(plate, mjd)
    sub = DAMAGED_OBJECTS[what]
    with h5py.File(victim, "r") as f:
        expid = sorted(f[f"{plate}/{mjd}/{fiber}/exposures"])[0]
    obj = f"{plate}/{mjd}/zline" if sub is None else f"{plate}/{mjd}/{fiber}/{sub.format(e=expid)}".rstrip("/")
    damage_object_header(victim, obj)
    outdir = tmp_path / "out"
    outdir.mkdir()
    proc, _, elapsed = query(query_bin, store, write_csv(tmp_path / "all.csv", lines), outdir / "out.h5",
                             ranks=2, timeout=FAIL_TIMEOUT)
    assert elapsed < FAIL_MAX_SECONDS, f"took {elapsed:.1f} s (hang?)"
    assert proc.returncode == 2, (f"/{obj} cannot be read from {victim.name}, but boss-query exited "
                                  f"{proc.returncode}:\n{proc.stderr}")
    assert victim.name in proc.stderr, f"stderr does not name {victim.name}:\n{proc.stderr}"
    assert list(outdir.iterdir()) == [], f"left behind: {[p.name for p in outdir.iterdir()]}"


# ------------------------------------------------------------------------------------------------
# 5. collective I/O accounting
# ------------------------------------------------------------------------------------------------


@pytest.mark.mpi
@pytest.mark.parametrize("which", ["synth", "real"])
def test_collective_writes(query_bin, request, tmp_path, which):
    if which == "synth":
        store = request.getfixturevalue("synth_query_store")
        lst = request.getfixturevalue("synth_list")
        plain = request.getfixturevalue("synth_plain")[0]
    else:
        store = request.getfixturevalue("real_store")
        lst = request.getfixturevalue("real_list")
        plain = request.getfixturevalue("real_plain")[0]
    out = tmp_path / "coll.h5"
    proc, summary, _ = query(query_bin, store, lst, out, "--io", "collective", ranks=2)
    assert proc.returncode == 0
    check_summary(summary, ranks=2, io="collective")
    assert summary["collective_writes"] > 0, summary
    assert h5diff(plain, out).returncode == 0
    assert_no_temp_files(tmp_path)
