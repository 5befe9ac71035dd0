#!/usr/bin/env python3
"""Turns the SDSS DR19 data model into synth/src/sdss5/datamodel.json, which boss-synth embeds.

The YAML files in formats/sdss-v/ are extracts (release DR19 only) of the SDSS data model,
github.com/sdss/datamodel, datamodel/products/yaml/*.yaml, © SDSS, BSD 3-Clause License
(formats/sdss-v/LICENSE.md). This script keeps, per file kind, what a writer of such files needs:
the HDUs in order with their EXTNAME, whether each is an image (and its BITPIX), its header cards
(key, example value with its YAML type, comment) and its columns (name, FITS TFORM, TUNIT).

usage: scripts/sdss5-datamodel.py           # (re)writes synth/src/sdss5/datamodel.json
       scripts/sdss5-datamodel.py --check   # exit status 1 when the committed JSON is stale

Rules:
- Structural keywords are left out (cfitsio writes them): SIMPLE, BITPIX, NAXIS, NAXISn, EXTEND,
  XTENSION, PCOUNT, GCOUNT, TFIELDS, TTYPEn, TFORMn, TUNITn, CHECKSUM, DATASUM, and EXTNAME (kept
  as the HDU's `extname`, null when the model's HDU has none). TSCALn = 1 / TZEROn = 2^63 on an
  int64 column become `"unsigned": true` on that column (cfitsio writes them for TFORM `W`).
- Commentary cards (COMMENT, HISTORY, blank keyword) are kept with type "text".
- A column's TUNIT is the model header's TUNITn when it lists one, else the column's `unit`
  (v6_1_3's exposure HDUs carry TUNITn = the column name, the unit in the comment: kept as is).
- "specLite" is specFull without its exposure HDUs (the same file before spSpec_reformat appends
  them); specFull's exposure HDUs (MJD_EXP_<MJD>-<NN>, 8 in the example) are listed apart, under
  "exposures", as the example has them: all but the last carry TUNITn = the column name with the
  unit as comment (v6_1_3's spSpec_reformat), the last one the units themselves.
- Types: bool → L, int16 → I, int32 → J, int64 → K, float32 → E, float64 → D, char[N] → NA
  (char → 1A); a `[N]` suffix on numbers and bools is the repeat count (float32[5] → 5E).
"""

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "formats" / "sdss-v"
OUT = ROOT / "synth" / "src" / "sdss5" / "datamodel.json"
RELEASE = "DR19"

# File kind in the JSON -> YAML file.
FILES = {
    "specFull": "specFull-DR19.yaml",
    "spField": "spField-DR19.yaml",
    "spZbest": "spZbest-DR19.yaml",
    "spZline": "spZline-DR19.yaml",
    "spAll": "spAll-DR19.yaml",
    "spAllLite": "spAll-lite-DR19.yaml",
}
STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "EXTEND", "XTENSION", "PCOUNT", "GCOUNT", "TFIELDS",
              "CHECKSUM", "DATASUM", "EXTNAME"}
STRUCTURAL_RE = re.compile(r"^(NAXIS\d+|TTYPE\d+|TFORM\d+|TUNIT\d+|TSCAL\d+|TZERO\d+)$")
COMMENTARY = {"", "COMMENT", "HISTORY"}
LETTER = {"bool": "L", "int16": "I", "int32": "J", "int64": "K", "float32": "E", "float64": "D"}
EXPOSURE_NAME = re.compile(r"^MJD_EXP_\d+-\d+$")
SOURCE = ("SDSS DR19 data model (github.com/sdss/datamodel, datamodel/products/yaml), "
          "(c) SDSS, BSD 3-Clause License: formats/sdss-v/LICENSE.md; generated from "
          "formats/sdss-v/*.yaml by scripts/sdss5-datamodel.py")


def tform(ty: str) -> str:
    m = re.fullmatch(r"([a-z0-9]+)(?:\[(\d+)\])?", ty)
    if not m:
        raise ValueError(f"unknown type {ty!r}")
    base, count = m.group(1), m.group(2)
    if base == "char":
        return f"{count or 1}A"
    return f"{count or ''}{LETTER[base]}"


def card(c: dict) -> list:
    key, value, comment = c["key"], c["value"], c.get("comment") or ""
    if key in COMMENTARY:
        return [key, "text", "" if value is None else str(value), ""]
    if isinstance(value, bool):
        return [key, "bool", value, comment]
    if isinstance(value, int):
        if not -2**63 <= value < 2**63:
            raise ValueError(f"{key} = {value} does not fit a 64-bit integer")
        return [key, "int", value, comment]
    if isinstance(value, float):
        return [key, "float", value, comment]
    return [key, "str", "" if value is None else str(value), comment]


def hdu_entry(h: dict, where: str) -> dict:
    header = h.get("header") or []
    keys = {c["key"]: c["value"] for c in header}
    entry = {"extname": h.get("name") or None, "image": bool(h.get("is_image"))}
    if h.get("description"):
        entry["description"] = h["description"]
    if entry["image"]:
        entry["bitpix"] = int(keys.get("BITPIX", 8))
        entry["naxis"] = int(keys.get("NAXIS", 0))
    entry["cards"] = [card(c) for c in header
                      if c["key"] not in STRUCTURAL and not STRUCTURAL_RE.match(c["key"])]
    columns = []
    for n, col in enumerate((h.get("columns") or {}).values(), start=1):
        item = {"name": col["name"], "tform": tform(col["type"])}
        unit = keys.get(f"TUNIT{n}", col.get("unit") or "")
        if unit:
            item["unit"] = str(unit)
        if keys.get(f"TZERO{n}") == 2**63:
            if item["tform"] != "K" or keys.get(f"TSCAL{n}", 1) != 1:
                raise ValueError(f"{where}: TZERO{n} on {col['name']} ({item['tform']})")
            item["unsigned"] = True
        columns.append(item)
    if columns:
        entry["columns"] = columns
    check_tdims(entry, where)
    return entry


def check_tdims(entry: dict, where: str):
    """Every TDIMn of the model matches the repeat count of column n."""
    for key, _, value, _ in entry["cards"]:
        m = re.fullmatch(r"TDIM(\d+)", key)
        if not m:
            continue
        col = entry["columns"][int(m.group(1)) - 1]
        dims = [int(x) for x in value.strip("() ").split(",")]
        size = 1
        for d in dims:
            size *= d
        count = int(re.match(r"\d*", col["tform"]).group(0) or 1)
        if size != count:
            raise ValueError(f"{where}: {key} {value} does not match {col['name']} {col['tform']}")


def load(name: str) -> dict:
    doc = yaml.safe_load((MODEL_DIR / name).read_text())
    release = doc["releases"][RELEASE]
    hdus = [hdu_entry(h, f"{name} {k}") for k, h in release["hdus"].items()]
    return {"template": release["template"], "example": release["example"], "hdus": hdus}


def build() -> dict:
    files = {kind: load(name) for kind, name in FILES.items()}
    full = files["specFull"]
    fixed = [h for h in full["hdus"] if not EXPOSURE_NAME.match(h["extname"] or "")]
    exposures = [h for h in full["hdus"] if EXPOSURE_NAME.match(h["extname"] or "")]
    if not exposures or full["hdus"][:len(fixed)] != fixed:
        raise ValueError("specFull: expected the fixed HDUs, then the exposure HDUs")
    full["hdus"] = fixed
    full["exposures"] = exposures
    files["specLite"] = {
        "template": full["template"].replace("/spectra/full/", "/spectra/lite/"),
        "example": full["example"].replace("/spectra/full/", "/spectra/lite/"),
        "hdus": fixed,
    }
    return {"source": SOURCE, "release": RELEASE, "files": files}


def render(model: dict) -> str:
    """Compact JSON with one header card or column per line, so that diffs stay readable."""
    def dump(value, indent: str, key: str = "") -> str:
        one = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
        if key in ("cards", "columns") and isinstance(value, list):
            inner = indent + " "
            return "[\n" + ",\n".join(inner + json.dumps(v, ensure_ascii=True, separators=(",", ":"))
                                      for v in value) + "\n" + indent + "]"
        if isinstance(value, dict) and len(one) > 100:
            inner = indent + " "
            items = [f"{inner}{json.dumps(k)}:{dump(v, inner, k)}" for k, v in value.items()]
            return "{\n" + ",\n".join(items) + "\n" + indent + "}"
        if isinstance(value, list) and len(one) > 100:
            inner = indent + " "
            return "[\n" + ",\n".join(inner + dump(v, inner) for v in value) + "\n" + indent + "]"
        return one
    return dump(model, "") + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only compare with the committed JSON (exit 1 when it differs)")
    args = parser.parse_args()
    text = render(build())
    if json.loads(text) != build():
        raise SystemExit("internal error: the rendered JSON does not read back")
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT.relative_to(ROOT)} is stale: run scripts/sdss5-datamodel.py", file=sys.stderr)
            return 1
        print(f"{OUT.relative_to(ROOT)} is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
