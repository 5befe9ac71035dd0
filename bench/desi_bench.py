"""The DESI part of bench/run: ingest of HEALPix coadds with their redrock files (written by
`boss-synth --flavor desi` after the real DESI pair: its HDUs, headers and columns, the real grid
lengths 2751/2326/2881 and 11-diagonal resolution) at 1 and 2 ranks, and a query of N targets named by TARGETID at 1 and 2
ranks — each against the raw limit of the same bytes (read the inputs, `dd` the output with fsync)
— and the peak RSS per rank at two sizes of the input. Imported by bench/run."""

import json
import random
import re
import shutil
import subprocess
from pathlib import Path

from export_bench import survey_export_lines, survey_exports


SCALES = {
    # coadd files, targets per file, query size
    "tiny": dict(files=2, targets=20, query=30, repeat=1),
    "default": dict(files=4, targets=2500, query=10000, repeat=3),
}


def rss_mb(stderr):
    """The peak RSS in MB of each rank, from GNU time's `RSS <KiB>` lines. The ranks write to one
    stderr, so their lines can run together (`46344RSS 47012`): match the pattern, not whole lines."""
    return [int(kib) / 1024 for kib in re.findall(r"RSS (\d+)", stderr)]


def desi_phase(scale, out, results, h, repeat=None):
    """Runs the DESI benchmarks; `h` holds bench/run's helpers."""
    cfg = SCALES.get(scale)
    if cfg is None:
        return
    cfg = dict(cfg, repeat=repeat or cfg["repeat"])
    R = cfg["repeat"]
    BIN = h["BIN"]
    r = {"config": cfg}
    inputs = out / "desi-in"
    p, dt = h["run"]([BIN / "boss-synth", "--flavor", "desi", "--plates", cfg["files"], "--fibers", cfg["targets"],
                      "--seed", 5, "--out", inputs])
    h["check"](p, "boss-synth --flavor desi")
    print(f"bench: desi generated {cfg['files']} coadds x {cfg['targets']} targets in {dt:.0f} s", flush=True)
    files = sorted(inputs.rglob("*.fits"))
    in_bytes = sum(f.stat().st_size for f in files)
    store = out / "store-desi"
    r["ingest"] = {}
    for ranks in (0, 2):
        times, rss = [], []
        for _ in range(R):
            shutil.rmtree(store, ignore_errors=True)
            subprocess.run(["sync"])
            p, dt = h["run"](h["mpirun"](ranks, "/usr/bin/env", "time", "-f", "RSS %M",
                                         BIN / "boss-ingest", "--quiet", "--json", inputs, store))
            h["check"](p, "boss-ingest desi")
            times.append(dt)
            rss += rss_mb(p.stderr)
        out_bytes = sum(f.stat().st_size for f in store.glob("*.h5"))
        raw = h["stats"]([h["raw_read"](files) for _ in range(R)])["median"] + \
            h["stats"]([h["raw_write"](out / "dd.tmp", out_bytes) for _ in range(R)])["median"]
        s = h["stats"](times)
        r["ingest"][ranks] = {"seconds": s, "input_bytes": in_bytes, "store_bytes": out_bytes, "raw": raw,
                              "mb_per_s": in_bytes / 1e6 / s["median"], "share_of_raw": raw / s["median"],
                              "peak_rss_mb": max(rss) if rss else None}
        print(f"bench: desi ingest, {ranks or 'plain'} rank(s): {h['fmt'](s)} s, "
              f"{r['ingest'][ranks]['share_of_raw'] * 100:.0f}% of the raw limit", flush=True)
    # Peak RSS with half the files: flat in the number of targets if it does not change.
    half = out / "desi-half"
    half.mkdir()
    coadds = sorted(inputs.rglob("coadd-*.fits"))
    for f in coadds[: max(1, len(coadds) // 2)]:
        for g in (f, f.with_name(f.name.replace("coadd-", "redrock-"))):
            (half / g.name).symlink_to(g.resolve())
    shutil.rmtree(out / "store-half", ignore_errors=True)
    p, _ = h["run"](h["mpirun"](2, "/usr/bin/env", "time", "-f", "RSS %M", BIN / "boss-ingest", "--quiet", half,
                                out / "store-half"))
    h["check"](p, "boss-ingest desi half")
    r["ingest_half_peak_rss_mb"] = max(rss_mb(p.stderr))
    shutil.rmtree(out / "store-half")
    shutil.rmtree(half)

    # A query of N targets named by TARGETID.
    p, _ = h["run"]([BIN / "boss-query", "--store", store, "--sql", "SELECT TARGETID FROM catalog"])
    h["check"](p, "boss-query --sql")
    ids = p.stdout.splitlines()[1:]
    chosen = random.Random(13).sample(ids, min(cfg["query"], len(ids)))
    lst = out / "desi-ids.csv"
    lst.write_text("TARGETID\n" + "".join(f"{c}\n" for c in chosen))
    o = out / "qdesi.h5"
    query = {}
    for ranks in (0, 2):
        runs = []
        for _ in range(R):
            if o.exists():
                o.unlink()
            subprocess.run(["sync"])
            p, dt = h["run"](h["mpirun"](ranks, BIN / "boss-query", "--store", store, "--fibers", lst, "-o", o,
                                         "--json"))
            h["check"](p, "boss-query desi")
            j = json.loads(p.stdout)
            j["wall"] = dt
            runs.append(j)
        query[ranks] = {"spectra": len(chosen), "bytes": runs[0]["bytes"],
                        "tool": h["stats"]([x["seconds"] for x in runs]),
                        "wall": h["stats"]([x["wall"] for x in runs]),
                        "peak_rss_mb": h["stats"]([max(x["peak_rss_mb"]) for x in runs])}
        print(f"bench: desi query {len(chosen)} targets, {ranks or 'plain'} rank(s): "
              f"tool {h['fmt'](query[ranks]['tool'])} s", flush=True)
    nbytes = query[2]["bytes"]
    rd = h["stats"]([h["raw_read"](sorted(store.glob("*.h5")), nbytes) for _ in range(R)])
    wr = h["stats"]([h["raw_write"](out / "dd.tmp", nbytes) for _ in range(R)])
    r["query"] = query
    r["query_raw"] = {"bytes": nbytes, "read": rd, "write_fsync": wr, "total": rd["median"] + wr["median"]}
    if o.exists():
        o.unlink()
    r["export"] = survey_exports(h, store, lst, out, R)
    shutil.rmtree(store)
    shutil.rmtree(inputs)
    results["desi"] = r


def desi_report(r, fmt):
    """The DESI tables of the report (empty when the phase did not run)."""
    s = r.get("desi")
    if not s:
        return []
    c = s["config"]
    lines = ["", "#### DESI (coadd + redrock files after the real DESI pair; boss-synth --flavor desi)", "",
             f"{c['files']} HEALPix coadds × {c['targets']} targets (B/R/Z 2751/2326/2881 pixels, RESOLUTION "
             "11 diagonals) with their redrock files.", "",
             "| ingest | ranks | input MB | store MB | seconds | MB/s of input | raw read + write s | share of the raw limit | peak RSS MB/rank |",
             "|---|---|---|---|---|---|---|---|---|"]
    for ranks, v in s["ingest"].items():
        lines.append(f"| coadd + redrock | {ranks if str(ranks) != '0' else 'plain'} | {v['input_bytes'] / 1e6:.0f} | "
                     f"{v['store_bytes'] / 1e6:.0f} | {fmt(v['seconds'])} | {v['mb_per_s']:.0f} | {v['raw']:.2f} | "
                     f"{v['share_of_raw'] * 100:.0f}% | {v['peak_rss_mb'] or 0:.0f} |")
    lines.append(f"Peak RSS per rank at 2 ranks with half the files: {s['ingest_half_peak_rss_mb']:.0f} MB.")
    raw = s["query_raw"]
    lines += ["", "| query (TARGETID list) | spectra | MB | ranks | tool s | wall s | × raw | peak RSS MB/rank |",
              "|---|---|---|---|---|---|---|---|"]
    for ranks, q in s["query"].items():
        lines.append(f"| DESI | {q['spectra']} | {q['bytes'] / 1e6:.0f} | {ranks if str(ranks) != '0' else 'plain'} | "
                     f"{fmt(q['tool'])} | {fmt(q['wall'])} | {q['tool']['median'] / raw['total']:.2f} | "
                     f"{q['peak_rss_mb']['median']:.0f} |")
    lines.append(f"Raw limit of the query's {raw['bytes'] / 1e6:.0f} MB: read {fmt(raw['read'])} s + `dd` with fsync "
                 f"{fmt(raw['write_fsync'])} s = {raw['total']:.2f} s.")
    if "export" in s:
        lines += survey_export_lines(s["export"], fmt, "DESI, TARGETID list; per-arm list columns")
    return lines
