"""No wrong answer with exit 0, whatever happens to the store meanwhile (issue 15): each numbered
finding of the issue, reproduced.

1. a v2 store file replaced by rename (as an ingest does) while queries run: at least 300 plain
   queries and more under `mpirun -n 2`, each either exit 0 with an output equal to the reference or
   exit 2 with a message (and no output) -- never exit 0 with other data;
2. a store file some of whose fibers cannot be read: `--where ... --parquet` exits 2 naming it (no
   output), `--rebuild-catalog` does not succeed with fewer rows;
3. `--where` cannot escape the other filters (`1=1) OR (1=1`);
4. table rows that disagree (the same spec file twice, another SPALL Z) are a conflict, in one run and
   against the store;
5. hostile input does not crash: OR chains and `1+1+...` of thousands of terms (plain and under
   mpirun), a reader that closes the pipe, a full or closed standard output;
6. messages stay short and safe: a 20 MB one-line fiber list, an ESC byte in a FITS keyword;
minor: `--sql "SELECT *"` with array columns prints CSV; an SDSS-V file is named as not supported.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path

import duckdb
import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from astropy.io import fits

from conftest import generate, mpi_env, run, sha256

TIMEOUT = 120
PLAIN_QUERIES = 300       # queries at 1 rank while the store file is being replaced
MPI_QUERIES = 60          # queries under mpirun -n 2 meanwhile
MAX_REPORTED = 5          # a stress loop stops after this many bad outcomes (enough to show them)
CRASH_CODES = {101, 134, 139, -6, -11}   # Rust panic, abort, segfault (as mpirun or Python sees them)


def stderr_lines(proc) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def assert_no_crash(proc, what: str):
    assert "panicked" not in proc.stderr, f"{what}: a panic:\n{proc.stderr[-2000:]}"
    assert "stack overflow" not in proc.stderr, f"{what}: a stack overflow:\n{proc.stderr[-2000:]}"
    assert proc.returncode not in CRASH_CODES, f"{what}: exit {proc.returncode}:\n{proc.stderr[-2000:]}"


def ingest(ingest_bin, inputs, store, *options, ok=(0,)):
    proc = run([ingest_bin, "--json", *options, *inputs, store], timeout=TIMEOUT)
    assert proc.returncode in ok, proc.stderr
    return proc, (json.loads(proc.stdout) if proc.stdout.strip() else None)


def write_list(path: Path, fibers) -> Path:
    path.write_text("plate,mjd,fiber\n" + "".join(f"{p},{m},{f}\n" for p, m, f in fibers))
    return path


def spec_id(path: Path) -> tuple[int, int, int]:
    """(plate, mjd, fiber) of a pipeline spec file name spec-PPPP-MMMMM-FFFF.fits."""
    _, plate, mjd, fiber = path.stem.split("-")
    return int(plate), int(mjd), int(fiber)


def catalog_rows(store: Path) -> int:
    return pq.read_metadata(store / "catalog.parquet").num_rows


# ------------------------------------------------------------------------------------------------
# 1. a v2 store file replaced while queries read it
# ------------------------------------------------------------------------------------------------

QUERIED_FIBERS = (1, 2, 7, 10, 20, 25)   # with and without exposures (multiples of 10)
# Small plate-MJD files (about 1 MB each), so that the swapping thread copies them quickly.
SWAP_SET_ARGS = ["--plates", "2", "--fibers", "30", "--npix", "400", "--spec-files", "--seed", "7"]


def data_places(ds: h5py.Dataset):
    """Where the dataset's bytes are in its file: the data offset (contiguous), or each chunk's."""
    offset = ds.id.get_offset()
    if offset is not None:
        return (offset,)
    if ds.chunks is None:
        return ("compact",)
    return tuple(ds.id.get_chunk_info(i).byte_offset for i in range(ds.id.get_num_chunks()))


def planned_places(path: Path, fibers) -> dict:
    """{(array, fiber): (where the array's data is, the fiber's row)} for the v2 coadd arrays, the
    exposure arrays and the tables: what a query plans its byte ranges on."""
    out = {}
    with h5py.File(path, "r") as f:
        (plate,) = [k for k in f if k.isdigit()]
        (mjd,) = list(f[plate])
        g = f[f"{plate}/{mjd}"]
        arrays = [("coadds", g["coadds"])]
        if "exposures" in g:
            arrays += [(f"exposures/{e}/{arm}", g[f"exposures/{e}/{arm}"])
                       for e in g["exposures"] for arm in g[f"exposures/{e}"]]
        for name, grp in arrays:
            ids = [int(x) for x in grp["FIBERID"][()]]
            for field in ("FLUX", "WAVE"):
                if field in grp:
                    for fiber in fibers:
                        if fiber in ids:
                            out[(f"{name}/{field}", fiber)] = (data_places(grp[field]), ids.index(fiber))
        for t in ("spall", "zline", "zbest", "plugmap"):
            if t in g:
                ids = [int(x) for x in g[t]["FIBERID"]]
                for fiber in fibers:
                    if fiber in ids:
                        out[(t, fiber)] = (data_places(g[t]), ids.index(fiber))
    return out


def h5_content(path: Path) -> dict:
    """Every object of an HDF5 file: datasets as (dtype, shape, bytes, attributes), groups as their
    attributes (outputs are compared this way)."""
    def attrs(obj):
        return sorted((k, np.asarray(v).dtype.str, np.asarray(v).tobytes() if np.asarray(v).dtype.kind != "O"
                       else repr(v)) for k, v in obj.attrs.items())
    out = {}
    with h5py.File(path, "r") as f:
        out["/"] = ("G", attrs(f))

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                data = np.asarray(obj[()])
                body = repr(data.tolist()) if data.dtype.hasobject else data.tobytes()
                out[name] = ("D", str(obj.dtype), obj.shape, body, attrs(obj))
            else:
                out[name] = ("G", attrs(obj))
        f.visititems(visit)
    return out


class Swapper(threading.Thread):
    """Replaces each store file by rename with a fresh copy of version A, then B, then A...: a copy
    written beside it under a temporary name, then os.replace, in a tight loop (what an ingest does)."""

    def __init__(self, live: Path, versions: list[Path]):
        super().__init__(daemon=True)
        self.live = live
        self.versions = versions
        self.names = sorted(p.name for p in versions[0].glob("*.h5"))
        self.halt = threading.Event()
        self.swaps = 0
        self.error: BaseException | None = None

    def run(self):
        try:
            k = 0
            while not self.halt.is_set():
                src = self.versions[k % len(self.versions)]
                for i, name in enumerate(self.names):
                    tmp = self.live / f".swap.{i}.tmp"
                    shutil.copyfile(src / name, tmp)
                    os.replace(tmp, self.live / name)
                self.swaps += 1
                k += 1
        except BaseException as e:  # noqa: BLE001 (reported by the test)
            self.error = e

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.halt.set()
        self.join(timeout=60)


@pytest.fixture(scope="module")
def v2_versions(ingest_bin, query_bin, synth_bin, tmp_path_factory) -> dict:
    """Two versions of the same two v2 plate-MJD files, with the same content for the queried fibers
    at other places: A ingested in one run from the spec files of each plate but every third one
    (the queried fibers are all in A), B the same and then, in a second run, the rest -- what an
    ingest adding fibers to a file does. (The whole set in one run and the same set in two runs give
    files with every array at the same place: v2 files are rewritten whole, rows sorted by fiber.)
    The reference output is the query of A; the query of B equals it."""
    root = tmp_path_factory.mktemp("v2-versions")
    specs = sorted(generate(synth_bin, root / "fits", SWAP_SET_ARGS).rglob("spec-*.fits"))
    assert len(specs) == 60
    later = [s for s in specs if spec_id(s)[2] % 3 == 0 and spec_id(s)[2] not in QUERIED_FIBERS]
    first = [s for s in specs if s not in later]
    a, b = root / "a", root / "b"
    ingest(ingest_bin, first, a, "--layout", "v2", "--quiet")
    ingest(ingest_bin, first, b, "--layout", "v2", "--quiet")
    ingest(ingest_bin, later, b, "--layout", "v2", "--quiet")
    names = sorted(p.name for p in a.glob("*.h5"))
    assert names == sorted(p.name for p in b.glob("*.h5")) and len(names) == 2
    pms = sorted({spec_id(s)[:2] for s in specs})
    lst = write_list(root / "list.csv", [(p, m, f) for p, m in pms for f in QUERIED_FIBERS])

    # The two versions must put the queried rows at different places, or the test proves nothing.
    moved = []
    for name in names:
        pa, pb = planned_places(a / name, QUERIED_FIBERS), planned_places(b / name, QUERIED_FIBERS)
        assert pa.keys() == pb.keys()
        moved += [(name, k) for k in pa if pa[k] != pb[k]]
        assert any(k[0] == "coadds/FLUX" for n, k in moved if n == name), \
            f"{name}: versions A and B hold the queried coadd rows at the same places"
    print(f"{len(moved)} (array, fiber) places differ between A and B")

    refs = {}
    for version in (a, b):
        out = root / f"ref-{version.name}.h5"
        proc = run([query_bin, "--store", version, "--fibers", lst, "-o", out], timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        refs[version.name] = out
    # Outputs are compared object by object: their bytes also hold the second they were written at
    # (HDF5 object times), so equal outputs are byte-identical only within the same second.
    reference = h5_content(refs["a"])
    assert h5_content(refs["b"]) == reference, \
        "the queries of versions A and B differ: they do not hold the same content for the queried fibers"
    return {"a": a, "b": b, "list": lst, "ref": refs["a"], "ref_sha": sha256(refs["a"]), "content": reference}


def stress(query_bin, versions: dict, work: Path, count: int, ranks: int | None):
    live = work / "store"
    shutil.copytree(versions["a"], live)
    out = work / "q.h5"
    cmd = [str(query_bin), "--store", str(live), "--fibers", str(versions["list"]), "-o", str(out), "--force"]
    if ranks:
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", *cmd]
    outcomes: Counter = Counter()
    refusals: Counter = Counter()   # the messages of exit 2, shown with the outcome
    bad: list[str] = []
    with Swapper(live, [versions["a"], versions["b"]]) as swapper:
        for k in range(count):
            if out.exists():
                out.unlink()
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, env=mpi_env())
            outcomes[proc.returncode] += 1
            if proc.returncode == 0:
                same = sha256(out) == versions["ref_sha"] or h5_content(out) == versions["content"]
                if not same:
                    kept = work / f"wrong-{k}.h5"
                    shutil.copyfile(out, kept)
                    bad.append(f"query {k}: exit 0 with an output that differs from the reference ({kept})")
            elif proc.returncode == 2:
                refusals[proc.stderr.strip().split(str(live))[-1][:200]] += 1
                if not proc.stderr.strip():
                    bad.append(f"query {k}: exit 2 without a message")
                if out.exists():
                    bad.append(f"query {k}: exit 2 but {out.name} exists")
            else:
                bad.append(f"query {k}: exit {proc.returncode}:\n{proc.stderr[-1500:]}")
            if len(bad) >= MAX_REPORTED:
                break
            if swapper.error:
                break
    assert swapper.error is None, f"the swapping thread failed: {swapper.error!r}"
    done = sum(outcomes.values())
    print(f"{done} queries at {ranks or 1} rank(s): exit codes {dict(outcomes)}; {swapper.swaps} swaps of "
          f"the store files")
    for message, n in refusals.most_common(3):
        print(f"  exit 2 x{n}: ...{message}")
    assert not bad, f"{len(bad)} bad outcomes in {done} queries (exit codes {dict(outcomes)}):\n" + "\n".join(bad)
    assert done == count
    assert swapper.swaps >= 20, f"the store files were replaced only {swapper.swaps} times during the queries"
    # A query that reads the file it planned on has no reason to fail: most must answer.
    assert outcomes[0] >= count // 2, f"only {outcomes[0]} of {count} queries answered: {dict(outcomes)}"


def test_v2_file_replaced_during_plain_queries(query_bin, v2_versions, tmp_path):
    stress(query_bin, v2_versions, tmp_path, PLAIN_QUERIES, None)


def test_v2_file_replaced_during_mpi_queries(query_bin, v2_versions, tmp_path):
    if shutil.which("mpirun") is None:
        pytest.skip("mpirun not installed")
    stress(query_bin, v2_versions, tmp_path, MPI_QUERIES, 2)


# ------------------------------------------------------------------------------------------------
# 2. a store file that cannot be read is an error, not a smaller answer
# ------------------------------------------------------------------------------------------------


def test_unreadable_fibers_are_an_error_not_a_smaller_answer(catalog_store, ingest_bin, query_bin, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(catalog_store, store)
    rows = catalog_rows(store)
    damaged = store / "5000-55000.h5"
    with h5py.File(damaged, "r") as f:
        g = f["5000/55000"]
        fibers = sorted(int(k) for k in g if k.isdigit())
        assert len(fibers) == 80
        hit = fibers[::10]
        addrs = [h5py.h5o.get_info(g[f"{fiber}/coadd"].id).addr for fiber in hit]
    with open(damaged, "r+b") as f:          # in place: 16 bytes over each object header
        for addr in addrs:
            f.seek(addr)
            f.write(b"\xa5\x5a" * 8)
    # The file still opens and lists every fiber; the damaged coadds cannot be opened.
    with h5py.File(damaged, "r") as f:
        g = f["5000/55000"]
        assert sorted(int(k) for k in g if k.isdigit()) == fibers
        for fiber in hit:
            with pytest.raises(Exception):
                g[f"{fiber}/coadd"]
        g[f"{fibers[1]}/coadd"][()]

    out = tmp_path / "p.parquet"
    proc = run([query_bin, "--store", store, "--where", "plate = 5000", "--parquet", out], timeout=TIMEOUT)
    assert_no_crash(proc, "--parquet")
    assert proc.returncode == 2, f"exit {proc.returncode} (expected 2):\n{proc.stderr}"
    assert damaged.name in proc.stderr, proc.stderr
    assert not out.exists(), "no (partial) output under the final name"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store"], "nothing else left behind"

    h5 = tmp_path / "q.h5"
    proc = run([query_bin, "--store", store, "--where", "plate = 5000", "-o", h5], timeout=TIMEOUT)
    assert proc.returncode == 2 and damaged.name in proc.stderr, proc.stderr
    assert not h5.exists()

    proc = run([ingest_bin, "--rebuild-catalog", store], timeout=TIMEOUT)
    assert_no_crash(proc, "--rebuild-catalog")
    if proc.returncode == 0:
        assert catalog_rows(store) == rows, \
            f"--rebuild-catalog exited 0 with {catalog_rows(store)} of {rows} rows"
    else:
        assert damaged.name in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------------
# 3. filters cannot be escaped
# ------------------------------------------------------------------------------------------------


ESCAPES = ("1=1) OR (1=1", "true) OR (true", "z > 0) OR (z <= 0 OR z IS NULL")
NAMED = (["--z-min", "100"], ["--class", "QSO"], ["--z-min", "100", "--class", "QSO"])
# Parentheses that balance inside one expression are fine and select what DuckDB selects.
BALANCED = ("z > 0.5", "(z > 0.5) OR (z < 0.1)", "((z > 0.2)) AND (class = 'QSO' OR z > 1)")


def test_where_cannot_escape_the_other_filters(catalog_store, query_bin):
    for named in NAMED:
        for escape in ESCAPES:
            proc = run([query_bin, "--store", catalog_store, *named, "--where", escape, "--list"], timeout=TIMEOUT)
            assert_no_crash(proc, escape)
            assert proc.returncode == 2, f"--where {escape!r} with {named}: exit {proc.returncode}, " \
                                         f"{len(proc.stdout.splitlines())} lines printed"
            assert proc.stdout == "", "no rows printed"
            assert len(stderr_lines(proc)) == 1 and "--where" in proc.stderr, proc.stderr
    catalog = catalog_store / "catalog.parquet"
    con = duckdb.connect()
    for expr in BALANCED:
        proc = run([query_bin, "--store", catalog_store, "--where", expr, "--list"], timeout=TIMEOUT)
        assert proc.returncode == 0, proc.stderr
        got = [int(r["key"]) for r in csv.DictReader(io.StringIO(proc.stdout))]
        want = [int(k) for (k,) in con.execute(
            f"SELECT key FROM read_parquet('{catalog}') WHERE {expr} ORDER BY key").fetchall()]
        assert got == want and 0 < len(want) < catalog_rows(catalog_store), (expr, len(got), len(want))
    t = pq.read_table(catalog, columns=["key", "z"]).to_pandas()
    proc = run([query_bin, "--store", catalog_store, "--where", "z > 0.5", "--list"], timeout=TIMEOUT)
    got = [int(r["key"]) for r in csv.DictReader(io.StringIO(proc.stdout))]
    assert got == sorted(int(k) for k in t.loc[t["z"] > 0.5, "key"]), "pyarrow agrees"


# ------------------------------------------------------------------------------------------------
# 4. table rows that disagree are a conflict
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def spall_twins(synth_small, tmp_path):
    """The same spec file in two folders, the second with another SPALL Z (written by astropy)."""
    src = sorted(synth_small.rglob("spec-*.fits"))[2]
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    shutil.copyfile(src, first / src.name)
    with fits.open(src) as h:
        assert h[2].name == "SPALL"
        z = float(h[2].data["Z"][0])
        h[2].data["Z"] = h[2].data["Z"] + np.float32(0.25)
        h.writeto(second / src.name)
    with fits.open(second / src.name) as h:
        assert float(h[2].data["Z"][0]) != z
    plate, mjd, fiber = spec_id(src)
    return first / src.name, second / src.name, f"{plate}-{mjd}-{fiber}", z


def check_spall_conflict(proc, summary, fiber_id, rule, kept, dropped):
    conflicts = summary["conflicts"]
    assert len(conflicts) == 1, conflicts
    (c,) = conflicts
    assert c["table"] == "spall", c
    assert c["fiber"] == fiber_id and c["rule"] == rule, c
    assert kept in c["kept"] and dropped in c["dropped"], c
    lines = [line for line in proc.stderr.splitlines() if f"conflict: fiber {fiber_id}" in line]
    assert len(lines) == 1 and "spall" in lines[0], proc.stderr


def test_spall_conflict_in_one_run(ingest_bin, spall_twins, tmp_path):
    first, second, fiber_id, z = spall_twins
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, [first.parent, second.parent], store)
    check_spall_conflict(proc, summary, fiber_id, "first_input", str(first.parent), str(second.parent))
    (name,) = [p.name for p in store.glob("*.h5")]
    plate, mjd, fiber = fiber_id.split("-")
    with h5py.File(store / name, "r") as f:
        (row,) = [r for r in f[f"{plate}/{mjd}/spall"][()] if int(r["FIBERID"]) == int(fiber)]
        assert float(row["Z"]) == z, "the first input's row is kept"


def test_spall_conflict_against_the_store(ingest_bin, spall_twins, tmp_path):
    first, second, fiber_id, z = spall_twins
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, [first], store)
    assert summary["conflicts"] == []
    proc, summary = ingest(ingest_bin, [second], store)
    check_spall_conflict(proc, summary, fiber_id, "store_first", store.name, str(second.parent))


# ------------------------------------------------------------------------------------------------
# 5. no crash on user input
# ------------------------------------------------------------------------------------------------

LONG_EXPRESSIONS = {
    "or-chain-4000": " OR ".join(["z > 0"] * 4000),
    "sum-5000": "+".join(["1"] * 5000) + " > 0",
}


@pytest.mark.parametrize("ranks", [None, 2], ids=["plain", "mpirun-2"])
@pytest.mark.parametrize("kind", sorted(LONG_EXPRESSIONS))
def test_long_expressions_are_refused_not_crashed(catalog_store, query_bin, kind, ranks):
    cmd = [query_bin, "--store", catalog_store, "--where", LONG_EXPRESSIONS[kind], "--list"]
    if ranks:
        if shutil.which("mpirun") is None:
            pytest.skip("mpirun not installed")
        cmd = ["mpirun", "-n", str(ranks), "--oversubscribe", *cmd]
    proc = run(cmd, timeout=TIMEOUT)
    assert_no_crash(proc, kind)
    assert proc.returncode == 2, f"exit {proc.returncode}:\n{proc.stderr[-2000:]}"
    assert proc.stdout == ""
    ours = [line for line in stderr_lines(proc) if line.startswith("boss-query")]
    assert len(ours) == 1 and "--where" in ours[0] and len(ours[0]) < 500, ours
    if not ranks:
        assert len(stderr_lines(proc)) == 1, proc.stderr


def test_list_into_a_closed_pipe_ends_quietly(catalog_store, query_bin):
    # The reader is gone before boss-query writes: the write fails with EPIPE.
    p = subprocess.Popen([query_bin, "--store", catalog_store, "--z-min", "-10", "--list"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=mpi_env())
    p.stdout.close()
    err = p.stderr.read().decode(errors="replace")
    p.wait(timeout=TIMEOUT)
    print(f"[exit {p.returncode}]\n{err}")
    assert "panicked" not in err and p.returncode not in CRASH_CODES, err
    assert p.returncode == 0 and "error" not in err, err


def test_big_output_into_head_ends_quietly(catalog_store, query_bin, tmp_path):
    """`| head -1` reads one line of a 2 MB result and closes the pipe."""
    sql = "SELECT a.key AS k1, b.key AS k2 FROM catalog a CROSS JOIN catalog b"
    script = (f"'{query_bin}' --store '{catalog_store}' --sql \"{sql}\" 2>'{tmp_path / 'err'}' | head -1; "
              "echo \"status=${PIPESTATUS[0]}\"")
    proc = run(["bash", "-c", script], timeout=TIMEOUT)
    err = (tmp_path / "err").read_text(errors="replace")
    print(err)
    first, status = proc.stdout.splitlines()
    assert first.lower() == "k1,k2", first
    code = int(status.removeprefix("status="))
    assert "panicked" not in err and code not in CRASH_CODES, f"exit {code}:\n{err}"
    assert code == 0 and "error" not in err, f"exit {code}:\n{err}"


def test_list_into_a_full_device_is_an_error(catalog_store, query_bin):
    with open("/dev/full", "wb") as full:
        proc = subprocess.run([query_bin, "--store", catalog_store, "--z-min", "-10", "--list"], stdout=full,
                              stderr=subprocess.PIPE, text=True, timeout=TIMEOUT, env=mpi_env())
    print(f"[exit {proc.returncode}]\n{proc.stderr}")
    assert_no_crash(proc, "/dev/full")
    assert proc.returncode == 2, proc.stderr
    assert "standard output" in proc.stderr and len(stderr_lines(proc)) == 1, proc.stderr


def test_sql_with_stdout_closed_is_an_error(catalog_store, query_bin):
    script = f"'{query_bin}' --store '{catalog_store}' --sql 'SELECT plate FROM catalog' >&-"
    proc = run(["bash", "-c", script], timeout=TIMEOUT)
    assert_no_crash(proc, ">&-")
    assert proc.returncode == 2, f"exit {proc.returncode} with standard output closed:\n{proc.stderr}"
    assert "standard output" in proc.stderr, proc.stderr


# ------------------------------------------------------------------------------------------------
# 6. messages stay short and safe
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["one-line", "after-header"])
def test_huge_list_line_gives_a_short_message(catalog_store, query_bin, tmp_path, shape):
    big = tmp_path / "big.csv"
    line = "5000,55000," + "7" * (20 * 1024 * 1024)
    big.write_text(line if shape == "one-line" else "plate,mjd,fiber\n" + line + "\n")
    assert big.stat().st_size > 20_000_000
    proc = subprocess.run([query_bin, "--store", catalog_store, "--fibers", big, "-o", tmp_path / "q.h5"],
                          capture_output=True, timeout=TIMEOUT, env=mpi_env())
    print(f"[exit {proc.returncode}] {len(proc.stderr)} bytes of stderr:\n{proc.stderr[:3000]!r}")
    assert proc.returncode == 2
    assert 0 < len(proc.stderr) < 2000, f"{len(proc.stderr)} bytes of stderr"
    assert big.name.encode() in proc.stderr
    assert not (tmp_path / "q.h5").exists()


def replace_keyword(data: bytearray, old: bytes, new: bytes) -> bytearray:
    """Renames a card of the primary header in place (the 8-byte keyword field)."""
    end = data.index(b"END" + b" " * 77)
    for i in range(0, end, 80):
        if data[i:i + 8] == old.ljust(8):
            data[i:i + 8] = new.ljust(8)
            return data
    raise AssertionError(f"no card {old!r}")


def test_control_bytes_in_a_keyword_are_refused_and_escaped(ingest_bin, synth_small, tmp_path):
    src = sorted(synth_small.rglob("spec-*.fits"))[0]
    bad = tmp_path / "in" / src.name
    bad.parent.mkdir()
    bad.write_bytes(bytes(replace_keyword(bytearray(src.read_bytes()), b"AIRMASS", b"AB\x1bCD")))
    store = tmp_path / "store"
    proc, summary = ingest(ingest_bin, [bad], store, "--quiet", ok=(0, 1, 2))
    assert_no_crash(proc, "ESC keyword")
    assert "\x1b" not in proc.stderr and "\x1b" not in proc.stdout, "the raw ESC byte reaches the terminal"
    assert proc.returncode == 1, proc.stderr
    assert summary["files_failed"] == 1 and summary["fibers_added"] == 0, summary
    lines = stderr_lines(proc)
    assert len(lines) == 1 and bad.name in lines[0], lines
    for f5 in store.glob("*.h5"):
        with h5py.File(f5, "r") as f:
            names = []
            f.visititems(lambda n, o: names.extend(o.attrs.keys()))
            assert not any("\x1b" in n for n in names + list(f.attrs.keys()))


# ------------------------------------------------------------------------------------------------
# minor
# ------------------------------------------------------------------------------------------------


def test_sql_select_star_with_array_columns_prints_csv(catalog_store, query_bin):
    proc = run([query_bin, "--store", catalog_store, "--sql", "SELECT * FROM catalog"], timeout=TIMEOUT)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(io.StringIO(proc.stdout)))
    schema = pq.read_schema(catalog_store / "catalog.parquet")
    assert any(str(t).startswith(("list", "fixed_size_list", "large_list")) for t in schema.types), \
        "the catalog has array columns"
    assert [c.lower() for c in rows[0]] == [c.lower() for c in schema.names]
    assert len(rows) == 1 + catalog_rows(catalog_store)
    assert all(len(r) == len(schema.names) for r in rows)
    keys = sorted(int(r[rows[0].index("key")]) for r in rows[1:])
    assert keys == sorted(pq.read_table(catalog_store / "catalog.parquet", columns=["key"])["key"].to_pylist())


def test_sdss5_file_without_its_columns_is_named(ingest_bin, synth_small, tmp_path):
    """A file that looks like SDSS-V (FIELDID, RUN2D v6) but lacks what an SDSS-V spec file must
    have: one message naming the file, the HDU and the column (no longer "PLATEID is missing")."""
    src = sorted(synth_small.rglob("spec-*.fits"))[0]
    bad = tmp_path / "in" / "spec-015000-59000-27021597.fits"
    bad.parent.mkdir()
    with fits.open(src) as h:
        h[0].header["FIELDID"] = 15000
        h[0].header["RUN2D"] = "v6_1_3"
        h.writeto(bad)
    proc, summary = ingest(ingest_bin, [bad], tmp_path / "store", "--quiet", ok=(0, 1, 2))
    assert proc.returncode == 1, proc.stderr
    lines = stderr_lines(proc)
    assert len(lines) == 1 and bad.name in lines[0], lines
    assert "SPALL" in lines[0] and "FIELD" in lines[0], lines
    assert summary["files_failed"] == 1 and summary["fibers_added"] == 0
