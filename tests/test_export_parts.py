"""Exports as directories of parts (issue 19): `--parquet out/` and `--arrow out/`, where every rank
writes its own part file, read as one table by pandas, pyarrow.dataset, DuckDB and polars, values
equal to the store; the nested form, read by nested-pandas; the Parquet codecs; and the faults: an output directory that is
not empty, an unwritable path, a rank killed in the middle — a clear message, exit 2, nothing under
the final name, no hang.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import duckdb
import nested_pandas
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from conftest import REQUIRE_SHARED, mpi_env, run
from test_catalog_export import CATALOG, EXPORT_ARGS, bq, bq_json, catalog_rows, check_export
from test_launch import big_store, kill_rank  # noqa: F401  (big_store is a fixture)

RANKS = (1, 2, 4)


@pytest.fixture(scope="module")
def single(catalog_store, query_bin, tmp_path_factory) -> pa.Table:
    """The single-file Parquet export of EXPORT_ARGS (one process): what the parts must add up to."""
    d = tmp_path_factory.mktemp("single")
    bq(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", d / "one.parquet")
    return pq.read_table(d / "one.parquet")


def part_names(d: Path, ext: str) -> list[str]:
    """The files of an export directory (each checked to be a part-RRRRR.<ext>)."""
    names = sorted(p.name for p in d.iterdir())
    assert all(n.startswith("part-") and n.endswith(f".{ext}") for n in names), names
    return names


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", RANKS)
def test_a_parquet_directory_reads_as_one_table_everywhere(catalog_store, query_bin, single, tmp_path, ranks):
    out = tmp_path / "out"
    summary = bq_json(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", f"{out}/", ranks=ranks)
    names = part_names(out, "parquet")
    assert 1 <= len(names) <= ranks and summary["export"]["parts"] == len(names), (names, summary["export"])
    assert summary["export"]["rows"] == single.num_rows
    # pyarrow.dataset, in file order: the rows in key order, the same values as the single file.
    table = ds.dataset(out, format="parquet").to_table()
    assert table.equals(single), "the parts differ from the single-file export"
    check_export(table, catalog_store, single.column("key").to_pylist(), catalog_rows(catalog_store / CATALOG),
                 f"parts (-n {ranks})")
    # pandas, one line.
    pd.testing.assert_frame_equal(pd.read_parquet(out), single.to_pandas())
    # DuckDB over the glob.
    con = duckdb.connect()
    keys = [r[0] for r in con.execute(f"SELECT key FROM read_parquet('{out}/*.parquet') ORDER BY key").fetchall()]
    assert keys == single.column("key").to_pylist()
    flux = con.execute(f"SELECT flux FROM read_parquet('{out}/*.parquet') WHERE key = {keys[-1]}").fetchone()[0]
    assert flux == single.column("flux")[single.num_rows - 1].as_py()
    # polars.
    frame = pl.read_parquet(f"{out}/*.parquet")
    assert frame["key"].to_list() == keys
    assert frame["flux"][0].to_list() == single.column("flux")[0].as_py()


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_an_arrow_directory_and_a_file_in_one_run(catalog_store, query_bin, single, tmp_path, ranks):
    """--arrow out/ (parts) beside --parquet one.parquet (rank 0's single file) in one command."""
    out = tmp_path / "arrows"
    bq(query_bin, catalog_store, *EXPORT_ARGS, "--arrow", f"{out}/", "--parquet", tmp_path / "one.parquet",
       ranks=ranks)
    assert part_names(out, "arrow")
    assert ds.dataset(out, format="arrow").to_table().equals(single)
    assert pq.read_table(tmp_path / "one.parquet").equals(single)


@pytest.mark.parametrize("codec", ["none", "snappy", "zstd"])
def test_every_codec_gives_the_same_table(catalog_store, query_bin, single, tmp_path, codec):
    path = tmp_path / f"{codec}.parquet"
    summary = bq_json(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", path, "--parquet-codec", codec)
    assert summary["export"]["codec"] == codec
    meta = pq.ParquetFile(path).metadata
    want = {"none": "UNCOMPRESSED", "snappy": "SNAPPY", "zstd": "ZSTD"}[codec]
    assert {meta.row_group(0).column(i).compression for i in range(meta.num_columns)} == {want}
    assert pq.read_table(path).equals(single)


def test_an_output_directory_that_is_not_empty_is_refused(catalog_store, query_bin, single, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    for force in ([], ["--force"]):
        p = bq(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", f"{out}/", *force, check=False)
        assert p.returncode == 2 and "not empty" in p.stderr and "notes.txt" in p.stderr, p.stderr
        assert sorted(os.listdir(out)) == ["notes.txt"]
    assert sorted(os.listdir(tmp_path)) == ["out"], "nothing written beside it"
    # An earlier export is replaced with --force only.
    parts = tmp_path / "parts"
    bq(query_bin, catalog_store, "--z-min", "1.5", "--parquet", f"{parts}/")
    p = bq(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", f"{parts}/", check=False)
    assert p.returncode == 2 and "--force" in p.stderr, p.stderr
    assert not ds.dataset(parts, format="parquet").to_table().equals(single)
    bq(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", f"{parts}/", "--force")
    assert ds.dataset(parts, format="parquet").to_table().equals(single)
    # An empty directory is fine.
    empty = tmp_path / "empty"
    empty.mkdir()
    bq(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", f"{empty}/")
    assert part_names(empty, "parquet")


def test_an_unwritable_path_is_a_clear_error(catalog_store, query_bin, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    p = bq(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", f"{blocker}/out/", check=False)
    assert p.returncode == 2 and str(blocker) in p.stderr, p.stderr
    assert "panicked" not in p.stderr
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


@pytest.mark.mpi
@pytest.mark.parametrize("victim", [0, 1])
@pytest.mark.parametrize("form", ["dir", "file", "arrow-file"])
def test_a_killed_rank_leaves_no_part_and_no_directory(query_bin, big_store, tmp_path, victim, form):  # noqa: F811
    """A directory output, and a single Parquet or Arrow file under 2 ranks (stitched from a piece per
    rank written into a staging directory the same way)."""
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    out = out_dir / {"dir": "parts", "file": "one.parquet", "arrow-file": "one.arrow"}[form]
    output = {"dir": ["--parquet", f"{out}/"], "file": ["--parquet", out], "arrow-file": ["--arrow", out]}[form]
    cmd = ["mpirun", "-n", "2", query_bin, "--store", big_store / "store", "--fibers", big_store / "all.csv",
           *output, "--parquet-codec", "zstd"]
    proc = subprocess.Popen([str(c) for c in cmd], env=mpi_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # Wait until a part is being written (the staging directory holds a temporary part).
    deadline = time.monotonic() + 60
    writing = False
    while time.monotonic() < deadline and proc.poll() is None and not writing:
        for d in out_dir.iterdir():
            if d.name.startswith(f".{out.name}.tmp-") and any(p.name.endswith(".tmp") for p in d.iterdir()):
                writing = True
        time.sleep(0.005)
    if not writing:
        proc.kill()
        pytest.fail(f"no part was being written (exit {proc.poll()}): {sorted(os.listdir(out_dir))}")
    err = kill_rank(proc, victim)
    assert not out.exists(), "nothing may appear under the final name"
    left = sorted(os.listdir(out_dir))
    assert left == [], f"left behind: {left}\n{err}"


@pytest.mark.mpi
def test_nothing_selected_gives_one_empty_part_with_the_schema(catalog_store, query_bin, single, tmp_path):
    out = tmp_path / "none"
    bq(query_bin, catalog_store, "--z-min", "99", "--parquet", f"{out}/", ranks=4)
    assert part_names(out, "parquet") == ["part-00000.parquet"]
    t = pd.read_parquet(out)
    assert len(t) == 0 and list(t.columns) == single.schema.names


@pytest.mark.mpi
@pytest.mark.parametrize("ranks", [1, 2])
def test_the_nested_form_opens_as_a_nested_frame(catalog_store, query_bin, single, tmp_path, ranks):
    out = tmp_path / "nested.parquet"
    bq(query_bin, catalog_store, *EXPORT_ARGS, "--nested", "--parquet", out, "--parquet-codec", "zstd", ranks=ranks)
    flat_names = [n for n in single.schema.names if pa.types.is_list(single.schema.field(n).type)]
    t = pq.read_table(out)
    assert t.schema.names == [n for n in single.schema.names if n not in flat_names] + ["spectrum"]
    assert [f.name for f in t.schema.field("spectrum").type] == flat_names
    nf = nested_pandas.read_parquet(out)
    assert isinstance(nf, nested_pandas.NestedFrame) and nf.nested_columns == ["spectrum"]
    assert list(nf["key"]) == single.column("key").to_pylist()
    # Row i's nested frame holds its spectrum, pixel by pixel, equal to the flat export's lists.
    for i in (0, len(nf) // 2, len(nf) - 1):
        pixels = nf["spectrum"].iloc[i]
        for name in flat_names:
            assert list(pixels[name]) == single.column(name)[i].as_py(), (i, name)
    # The flattened view: one row per pixel.
    assert len(nf["spectrum"].nest.to_flat()) == sum(len(x) for x in single.column("flux").to_pylist())


def test_nested_needs_an_export(catalog_store, query_bin, tmp_path):
    p = bq(query_bin, catalog_store, *EXPORT_ARGS, "--nested", "-o", tmp_path / "x.h5", check=False)
    assert p.returncode == 2 and "--nested" in p.stderr, p.stderr


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs. Mounting needs root with CAP_SYS_ADMIN: elsewhere (a user, a container) the test
    skips with the reason; under BOSS_REQUIRE_SHARED=1 (CI, a root VM) that is a failure, so that the
    test cannot silently disappear there."""
    d = tmp_path / "small-disk"
    d.mkdir()
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(d)], capture_output=True, text=True)
    if p.returncode != 0:
        reason = f"cannot mount a small tmpfs here (needs root with CAP_SYS_ADMIN): {p.stderr.strip()[:120]}"
        if REQUIRE_SHARED:
            pytest.fail(reason)
        pytest.skip(reason)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


@pytest.mark.mpi
@pytest.mark.parametrize("form", ["dir", "file"])
def test_a_disk_that_fills_is_exit_2_and_leaves_nothing(catalog_store, query_bin, small_disk, form):
    out = f"{small_disk}/out/" if form == "dir" else small_disk / "out.parquet"
    p = bq(query_bin, catalog_store, *EXPORT_ARGS, "--parquet", out, ranks=2, check=False)
    assert p.returncode == 2, p.stderr
    assert "No space left on device" in p.stderr and "panicked" not in p.stderr, p.stderr
    assert os.listdir(small_disk) == [], f"left behind: {os.listdir(small_disk)}"
