"""The SDSS-V part of bench/run: ingest from spField files and from spec files, beside SDSS-I–IV
spPlate and spec-file ingests of the same shape in the same run, and a query of N spectra named by
(FIELD, MJD, CATALOGID) at 1 and 2 ranks — each against the raw limit of the same bytes (read the
inputs, `dd` the output with fsync). Imported by bench/run, which passes its helpers."""

import json
import random
import shutil
import subprocess
from pathlib import Path

from export_bench import survey_export_lines, survey_exports


SCALES = {
    # field-MJDs from spField files, targets per field, pixels, field-MJDs of spec files, query size
    "tiny": dict(fields=2, targets=50, npix=600, spec_fields=1, query=40, repeat=1),
    "default": dict(fields=20, targets=1000, npix=4648, spec_fields=2, query=10000, repeat=3),
}


def sdss5_phase(scale, out, results, h, repeat=None):
    """Runs the SDSS-V benchmarks; `h` holds bench/run's helpers (run, check, mpirun, stats, raw_read,
    raw_write, fmt, BIN)."""
    cfg = SCALES.get(scale)
    if cfg is None:
        return
    cfg = dict(cfg, repeat=repeat or cfg["repeat"])
    R = cfg["repeat"]
    BIN = h["BIN"]
    r5 = {"config": cfg}

    def ingest(inputs, store, ranks=0, layout=None):
        times = []
        for _ in range(R):
            shutil.rmtree(store, ignore_errors=True)
            subprocess.run(["sync"])
            cmd = [BIN / "boss-ingest", "--quiet", "--json"]
            if layout:
                cmd += ["--layout", layout]
            p, dt = h["run"](h["mpirun"](ranks, *cmd, *inputs, store))
            h["check"](p, "boss-ingest")
            times.append(dt)
        return h["stats"](times)

    def measured(name, inputs, store, **kw):
        files = [p for i in inputs for p in (sorted(Path(i).rglob("*.fits")) if Path(i).is_dir() else [Path(i)])]
        in_bytes = sum(f.stat().st_size for f in files)
        s = ingest(inputs, store, **kw)
        out_bytes = sum(f.stat().st_size for f in store.glob("*.h5"))
        raw = h["stats"]([h["raw_read"](files) for _ in range(R)])["median"] + \
            h["stats"]([h["raw_write"](out / "dd.tmp", out_bytes) for _ in range(R)])["median"]
        r5[name] = {"seconds": s, "input_bytes": in_bytes, "store_bytes": out_bytes, "raw": raw,
                    "mb_per_s": in_bytes / 1e6 / s["median"], "share_of_raw": raw / s["median"]}
        print(f"bench: sdss5 {name}: {h['fmt'](s)} s, {r5[name]['mb_per_s']:.0f} MB/s, "
              f"{r5[name]['share_of_raw'] * 100:.0f}% of the raw limit", flush=True)

    # spField ingest, and spPlate ingest of the same shape (v1 and v2).
    fields = out / "sdss5-fields"
    p, _ = h["run"]([BIN / "boss-synth", "--flavor", "sdss5", "--plates", cfg["fields"], "--fibers", cfg["targets"],
                     "--npix", cfg["npix"], "--first-plate", 15000, "--seed", 9, "--out", fields])
    h["check"](p, "boss-synth sdss5")
    plates = out / "sdss4-plates"
    p, _ = h["run"]([BIN / "boss-synth", "--plates", cfg["fields"], "--fibers", cfg["targets"],
                     "--npix", cfg["npix"], "--seed", 9, "--out", plates])
    h["check"](p, "boss-synth")
    store5 = out / "store-sdss5"
    measured("spfield_ingest", [fields], store5)
    for layout in ("v1", "v2"):
        measured(f"spplate_ingest_{layout}", [plates], out / f"store-sdss4-{layout}", layout=layout)
        shutil.rmtree(out / f"store-sdss4-{layout}")
    shutil.rmtree(plates)

    # Spec-file ingest of both generations (spec files only).
    specs5 = out / "sdss5-specs"
    p, _ = h["run"]([BIN / "boss-synth", "--flavor", "sdss5", "--plates", cfg["spec_fields"], "--fibers",
                     cfg["targets"], "--npix", cfg["npix"], "--first-plate", 16000, "--spec-files", "--seed", 10,
                     "--out", specs5])
    h["check"](p, "boss-synth sdss5 spec files")
    measured("spec_ingest_sdss5", [specs5 / "spectra"], out / "store-spec5")
    specs4 = out / "sdss4-specs"
    p, _ = h["run"]([BIN / "boss-synth", "--plates", cfg["spec_fields"], "--fibers", cfg["targets"], "--npix",
                     cfg["npix"], "--spec-files", "--seed", 10, "--out", specs4])
    h["check"](p, "boss-synth spec files")
    spec_list = out / "sdss4-spec-files"
    spec_list.mkdir()
    for f in specs4.rglob("spec-*.fits"):
        (spec_list / f.name).symlink_to(f.resolve())
    measured("spec_ingest_sdss4", [spec_list], out / "store-spec4")
    for d in (specs5, specs4, spec_list, out / "store-spec5", out / "store-spec4"):
        shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(fields)

    # A query of N targets named by FIELD, MJD, CATALOGID.
    p, _ = h["run"]([BIN / "boss-query", "--store", store5, "--sql",
                     "SELECT field_id, mjd, catalogid FROM catalog WHERE survey = 'sdss5'"])
    h["check"](p, "boss-query --sql")
    cat = p.stdout.splitlines()[1:]
    rng = random.Random(13)
    chosen = rng.sample(cat, min(cfg["query"], len(cat)))
    lst = out / "sdss5-list.csv"
    lst.write_text("FIELD,MJD,CATALOGID\n" + "".join(f"{c}\n" for c in chosen))
    o = out / "q5.h5"
    query = {}
    for ranks in (0, 1, 2):
        runs = []
        for _ in range(R):
            if o.exists():
                o.unlink()
            subprocess.run(["sync"])
            p, dt = h["run"](h["mpirun"](ranks, BIN / "boss-query", "--store", store5, "--fibers", lst, "-o", o,
                                         "--json"))
            h["check"](p, "boss-query sdss5")
            j = json.loads(p.stdout)
            j["wall"] = dt
            runs.append(j)
        query[ranks] = {"spectra": len(chosen), "bytes": runs[0]["bytes"], "tool": h["stats"]([x["seconds"] for x in runs]),
                        "wall": h["stats"]([x["wall"] for x in runs]),
                        "phases": {k: h["stats"]([x["phases"][k] for x in runs]) for k in runs[0]["phases"]},
                        "peak_rss_mb": h["stats"]([max(x["peak_rss_mb"]) for x in runs])}
        print(f"bench: sdss5 query {len(chosen)} spectra, {ranks or 'plain'} rank(s): "
              f"tool {h['fmt'](query[ranks]['tool'])} s", flush=True)
    nbytes = query[2]["bytes"]
    rd = h["stats"]([h["raw_read"](sorted(store5.glob("*.h5")), nbytes) for _ in range(R)])
    wr = h["stats"]([h["raw_write"](out / "dd.tmp", nbytes) for _ in range(R)])
    r5["query"] = query
    r5["query_raw"] = {"bytes": nbytes, "read": rd, "write_fsync": wr, "total": rd["median"] + wr["median"]}
    if o.exists():
        o.unlink()
    r5["export"] = survey_exports(h, store5, lst, out, R)
    shutil.rmtree(store5)
    results["sdss5"] = r5


def sdss5_report(r, fmt):
    """The SDSS-V tables of the report (empty when the phase did not run)."""
    s = r.get("sdss5")
    if not s:
        return []
    c = s["config"]
    lines = ["", "#### SDSS-V (DR19 data model; boss-synth --flavor sdss5)", "",
             f"{c['fields']} field-MJDs × {c['targets']} targets × {c['npix']} pixels from spField files; "
             f"{c['spec_fields']} field-MJDs of full spec files; beside them SDSS-I–IV files of the same shape, "
             "same run.", "",
             "| ingest | input MB | store MB | seconds | MB/s of input | raw read + write s | share of the raw limit |",
             "|---|---|---|---|---|---|---|"]
    names = {"spfield_ingest": "SDSS-V spField (+spZbest, spZline)", "spplate_ingest_v1": "SDSS-I–IV spPlate, v1",
             "spplate_ingest_v2": "SDSS-I–IV spPlate, v2", "spec_ingest_sdss5": "SDSS-V spec files (full)",
             "spec_ingest_sdss4": "SDSS-I–IV spec files (full), v1"}
    for k, label in names.items():
        v = s.get(k)
        if v:
            lines.append(f"| {label} | {v['input_bytes'] / 1e6:.0f} | {v['store_bytes'] / 1e6:.0f} | {fmt(v['seconds'])} | "
                         f"{v['mb_per_s']:.0f} | {v['raw']:.2f} | {v['share_of_raw'] * 100:.0f}% |")
    raw = s["query_raw"]
    lines += ["", "| query (FIELD, MJD, CATALOGID list) | spectra | MB | ranks | tool s | wall s | × raw | scan | exchange | create | write | close | peak RSS MB/rank |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for ranks, q in s["query"].items():
        ph = q["phases"]
        lines.append(f"| SDSS-V | {q['spectra']} | {q['bytes'] / 1e6:.0f} | {ranks or 'plain'} | {fmt(q['tool'])} | "
                     f"{fmt(q['wall'])} | {q['tool']['median'] / raw['total']:.2f} | "
                     + " | ".join(f"{ph[k]['median']:.2f}" for k in ("scan", "exchange", "create", "write", "close"))
                     + f" | {q['peak_rss_mb']['median']:.0f} |")
    lines.append(f"Raw limit of the query's {raw['bytes'] / 1e6:.0f} MB: read {fmt(raw['read'])} s + `dd` with fsync "
                 f"{fmt(raw['write_fsync'])} s = {raw['total']:.2f} s.")
    if "export" in s:
        lines += survey_export_lines(s["export"], fmt, "SDSS-V, FIELD, MJD, CATALOGID list")
    return lines
