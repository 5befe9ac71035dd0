"""The export part of bench/run (`bench/run --phase export`): `--arrow` and `--parquet`, as one file
(rank 0 writes) and as a directory of parts (every rank writes its own), at 1, 2 and 4 ranks, beside
the raw write limit of the same bytes (`dd` with fsync) and the naive h5py + pyarrow script
(bench/h5py_export.py) on the same subset; the Parquet encodings tried (boss-bench-parquet on the
same rows); peak RSS per rank at 10,000 and 100,000 fibers. Imported by bench/run."""

import json
import random
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "bench" / "h5py_export.py"
PY = ROOT / ".venv" / "bin" / "python"

SCALES = {
    # plates x fibers x pixels of the store, fibers exported, ranks; a second store for the RSS at
    # more fibers (plates x fibers x pixels, fibers exported), or None.
    "tiny": dict(plates=2, fibers=50, npix=500, export=80, ranks=[1, 2], repeat=1, big=None),
    "default": dict(plates=20, fibers=1000, npix=4600, export=10000, ranks=[1, 2, 4], repeat=3,
                    big=dict(plates=100, fibers=1000, npix=1000, export=100000)),
}

FORMS = [("parquet", "file"), ("arrow", "file"), ("parquet", "dir"), ("arrow", "dir")]


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.iterdir())
    return path.stat().st_size


def remove(path: Path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def survey_exports(h, store, lst, out, repeat, ranks=2):
    """Exports the spectra of `lst` (any spectrum list) to an Arrow and a Parquet directory at
    `ranks` ranks — the form that scales — `repeat` times each, beside `dd` of the larger output's
    bytes with fsync (for the SDSS-V and DESI phases)."""
    runs = {}
    for fmt_name in ("arrow", "parquet"):
        es = []
        for _ in range(repeat):
            e, path = export_once(h, store, lst, fmt_name, "dir", ranks, out)
            es.append(e)
            remove(path)
        runs[fmt_name] = {"rows": es[0]["rows"], "file_bytes": es[0]["file_bytes"], "ranks": ranks,
                          "seconds": h["stats"]([e["seconds"] for e in es]),
                          "peak_rss_mb": max(e["peak_rss_mb"] for e in es)}
        print(f"bench: export {es[0]['rows']} spectra, {fmt_name} dir, {ranks} rank(s): "
              f"{h['fmt'](runs[fmt_name]['seconds'])} s", flush=True)
    nbytes = max(v["file_bytes"] for v in runs.values())
    raw = h["stats"]([h["raw_write"](out / "dd.tmp", nbytes) for _ in range(repeat)])
    return {"runs": runs, "raw_bytes": nbytes, "raw_write_fsync": raw}


def survey_export_lines(x, fmt, what):
    """The report's table of survey_exports' result."""
    raw = x["raw_write_fsync"]["median"]
    lines = ["", f"| export ({what}) | rows | ranks | MB | seconds | share of `dd` of the same bytes | peak RSS MB/rank |",
             "|---|---|---|---|---|---|---|"]
    for name, v in x["runs"].items():
        share = raw * v["file_bytes"] / x["raw_bytes"] / v["seconds"]["median"]
        lines.append(f"| {name} directory | {v['rows']} | {v['ranks']} | {v['file_bytes'] / 1e6:.0f} | "
                     f"{fmt(v['seconds'])} | {share * 100:.0f}% | {v['peak_rss_mb']:.0f} |")
    lines.append(f"`dd` of {x['raw_bytes'] / 1e6:.0f} MB with fsync: {fmt(x['raw_write_fsync'])} s.")
    return lines


def make_store(h, out, name, plates, fibers, npix, seed):
    fits, store = out / f"{name}-fits", out / f"{name}-store"
    p, _ = h["run"]([h["BIN"] / "boss-synth", "--plates", plates, "--fibers", fibers, "--npix", npix,
                     "--out", fits, "--seed", seed])
    h["check"](p, "boss-synth")
    p, _ = h["run"]([h["BIN"] / "boss-ingest", "--quiet", fits, store])
    h["check"](p, "boss-ingest")
    shutil.rmtree(fits)
    return store


def fiber_list(store: Path, per_plate: int, n: int, path: Path) -> Path:
    """n fibers drawn from the whole store (seeded), sorted: a list as a user gives it."""
    fibers = []
    for f in sorted(store.glob("*.h5")):
        plate, mjd = f.stem.split("-")
        fibers += [(int(plate), int(mjd), i) for i in range(1, per_plate + 1)]
    random.seed(11)
    chosen = sorted(random.sample(fibers, min(n, len(fibers))))
    path.write_text("plate,mjd,fiber\n" + "".join(f"{p},{m},{f}\n" for p, m, f in chosen))
    return path


def export_once(h, store, lst, fmt_name, form, ranks, out):
    path = out / (f"export.{fmt_name}" if form == "file" else "export-parts")
    remove(path)
    subprocess.run(["sync"])
    # A directory output is named by a trailing / (which pathlib drops: the argument is a string).
    arg = f"{path}/" if form == "dir" else path
    p, wall = h["run"](h["mpirun"](ranks, h["BIN"] / "boss-query", "--store", store, "--fibers", lst,
                                   f"--{fmt_name}", arg, "--json"))
    h["check"](p, "boss-query export")
    j = json.loads(p.stdout)
    assert path.is_dir() == (form == "dir"), f"{path}: expected a {form}"
    e = dict(j["export"], wall=wall, file_bytes=size_of(path), peak_rss_mb=max(j["peak_rss_mb"]))
    return e, path


def export_phase(scale, out, results, h, repeat=None):
    cfg = SCALES.get(scale)
    if cfg is None:
        return
    R = repeat or cfg["repeat"]
    r = {"config": dict(cfg, repeat=R), "runs": {}}
    store = make_store(h, out, "export", cfg["plates"], cfg["fibers"], cfg["npix"], 7)
    lst = fiber_list(store, cfg["fibers"], cfg["export"], out / "export-list.csv")
    keep = None
    for ranks in cfg["ranks"]:
        for fmt_name, form in FORMS:
            runs = []
            for _ in range(R):
                e, path = export_once(h, store, lst, fmt_name, form, ranks, out)
                runs.append(e)
                if (fmt_name, form, ranks) == ("arrow", "file", 1) and keep is None:
                    keep = out / "kept.arrow"
                    shutil.move(path, keep)
                else:
                    remove(path)
            key = f"{fmt_name}/{form}/{ranks}"
            r["runs"][key] = {"format": fmt_name, "form": form, "ranks": ranks, "rows": runs[0]["rows"],
                              "spectra_bytes": runs[0]["spectra_bytes"], "file_bytes": runs[0]["file_bytes"],
                              "parts": runs[0]["parts"], "codec": runs[0]["codec"],
                              "seconds": h["stats"]([e["seconds"] for e in runs]),
                              "wall": h["stats"]([e["wall"] for e in runs]),
                              "peak_rss_mb": max(e["peak_rss_mb"] for e in runs)}
            print(f"bench: export {cfg['export']} fibers, {fmt_name} {form}, {ranks} rank(s): "
                  f"{h['fmt'](r['runs'][key]['seconds'])} s", flush=True)
    nbytes = max(v["file_bytes"] for v in r["runs"].values())
    r["raw_bytes"] = nbytes
    r["raw_write_fsync"] = h["stats"]([h["raw_write"](out / "dd.tmp", nbytes) for _ in range(R)])
    # The naive script, on the HDF5 subset of the same fibers.
    sub = out / "export-subset.h5"
    p, _ = h["run"](h["mpirun"](2, h["BIN"] / "boss-query", "--store", store, "--fibers", lst, "-o", sub))
    h["check"](p, "boss-query -o")
    r["python"] = {}
    for fmt_name in ("parquet", "arrow"):
        times = []
        for _ in range(R):
            dst = out / f"py.{fmt_name}"
            subprocess.run(["sync"])
            p, _ = h["run"]([PY, SCRIPT, sub, dst])
            h["check"](p, "h5py_export.py")
            times.append(float(p.stdout.strip()))
            r["python"][fmt_name] = {"file_bytes": dst.stat().st_size}
            dst.unlink()
        r["python"][fmt_name]["seconds"] = h["stats"](times)
        print(f"bench: h5py + pyarrow script to {fmt_name}: {h['fmt'](r['python'][fmt_name]['seconds'])} s", flush=True)
    sub.unlink()
    # The Parquet encodings, on the same rows.
    p, _ = h["run"]([h["BIN"] / "boss-bench-parquet", keep, "--out", out / "enc", "--repeat", R])
    h["check"](p, "boss-bench-parquet")
    r["encodings"] = json.loads(p.stdout)
    keep.unlink()
    shutil.rmtree(store)
    # Peak RSS at more fibers.
    big = cfg["big"]
    if big:
        store = make_store(h, out, "export-big", big["plates"], big["fibers"], big["npix"], 8)
        lst = fiber_list(store, big["fibers"], big["export"], out / "export-big.csv")
        r["big"] = {}
        for fmt_name, form in (("parquet", "file"), ("parquet", "dir")):
            e, path = export_once(h, store, lst, fmt_name, form, 2, out)
            remove(path)
            r["big"][f"{fmt_name}/{form}"] = e
            print(f"bench: export {e['rows']} fibers, {fmt_name} {form}, 2 ranks: {e['seconds']:.1f} s, "
                  f"peak RSS {e['peak_rss_mb']:.0f} MB/rank", flush=True)
        shutil.rmtree(store)
    results["export"] = r


def export_report(results, fmt):
    r = results.get("export")
    if not r or "runs" not in r:
        return []
    c = r["config"]
    raw_mbps = r["raw_bytes"] / 1e6 / r["raw_write_fsync"]["median"]
    lines = ["", f"#### Export ({c['export']} fibers of a v1 store of {c['plates']} plates × {c['fibers']} fibers × "
             f"{c['npix']} pixels; default codec)", "",
             f"Raw write limit: `dd` {r['raw_bytes'] / 1e6:.0f} MB with fsync in {fmt(r['raw_write_fsync'])} s "
             f"= {raw_mbps:.0f} MB/s. \"share\" is the export's file MB/s over that.", "",
             "| format | form | ranks | rows | file MB | parts | seconds | file MB/s | share of raw write | peak RSS MB/rank |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for v in r["runs"].values():
        mbps = v["file_bytes"] / 1e6 / v["seconds"]["median"]
        lines.append(f"| {v['format']} | {v['form']} | {v['ranks']} | {v['rows']} | {v['file_bytes'] / 1e6:.0f} | "
                     f"{v['parts'] or 1} | {fmt(v['seconds'])} | {mbps:.0f} | {mbps / raw_mbps * 100:.0f}% | "
                     f"{v['peak_rss_mb']:.0f} |")
    lines += ["", "The h5py + pyarrow script (bench/h5py_export.py) on the HDF5 subset of the same fibers, and "
              "ours at 2 ranks:", "", "| format | script s | ours, one file, 2 ranks s | ours, directory, 2 ranks s | "
              "speed-up (file, directory) |", "|---|---|---|---|---|"]
    for fmt_name, v in r["python"].items():
        f2 = r["runs"].get(f"{fmt_name}/file/2")
        d2 = r["runs"].get(f"{fmt_name}/dir/2")
        if not f2 or not d2:
            continue
        s = v["seconds"]["median"]
        lines.append(f"| {fmt_name} | {fmt(v['seconds'])} | {fmt(f2['seconds'])} | {fmt(d2['seconds'])} | "
                     f"{s / f2['seconds']['median']:.1f}×, {s / d2['seconds']['median']:.1f}× |")
    lines += ["", "Parquet encodings on the same rows (boss-bench-parquet: one process, file fsynced; read = "
              "parquet-rs reading it back):", "", "| encoding | file MB | write s | write MB/s | read s |",
              "|---|---|---|---|---|"]
    for e in r["encodings"]:
        lines.append(f"| {e['name']} | {e['file_bytes'] / 1e6:.0f} | {e['write_seconds']:.2f} | "
                     f"{e['file_bytes'] / 1e6 / e['write_seconds']:.0f} | {e['read_seconds']:.2f} |")
    if r.get("big"):
        lines += ["", "Peak RSS per rank at more fibers (2 ranks):", "", "| export | rows | file MB | seconds | "
                  "peak RSS MB/rank |", "|---|---|---|---|---|"]
        for k, e in r["big"].items():
            lines.append(f"| {k} | {e['rows']} | {e['file_bytes'] / 1e6:.0f} | {e['seconds']:.1f} | "
                         f"{e['peak_rss_mb']:.0f} |")
        small = r["runs"].get("parquet/file/2")
        if small:
            lines.append(f"At {small['rows']} fibers: {small['peak_rss_mb']:.0f} MB/rank (parquet, one file).")
    return lines
