#!/usr/bin/env python3
"""compare_store — check an HDF5 store written by `boss-ingest` against its FITS inputs.

The FITS files are read with astropy (memmap=False, never modified), the store with h5py, and
every value is compared EXACTLY: float32/float64 values bit for bit (so NaN equals NaN only when
the bits are equal, and -0.0 differs from 0.0), integers and masks by value, strings after
decoding bytes and stripping trailing spaces and NULs. The layout and value rules are those of
`docs/store-layout.md` (H5Boss format v1):

    STORE/<PLATE:04>-<MJD:05>.h5
        /                       BOSS_STORE_FORMAT = "h5boss-v1", WRITER = "boss-ingest ..."
        /<PLATE>/<MJD>          primary header cards as attributes; tables plugmap, spall, zline, zbest
        /<PLATE>/<MJD>/<FIBER>/coadd, /<FIBER>/exposures/<EXPID>/<b|r>

Inputs, recognised by file name (directories are searched recursively):

* ``spec-*.fits[.gz]``    lite or full per-fiber files (BOSS lower-case or eBOSS upper-case columns,
                          HDUs found by name or, without EXTNAME, by position)      -> compare_spec_file
* ``spPlate-*.fits[.gz]`` with optional siblings spZbest-/spZline- in the same folder -> compare_spplate_file
* ``spAll*.fits[.gz]``    catalog rows matched to the fibers present in the store    -> compare_spall_file
* ``spZbest-*``/``spZline-*`` are checked through their spPlate; other names are ignored.

When an spPlate and spec files of the same plate-MJD are both inputs, the fiber's coadd is the
spPlate row (the ingest keeps the first copy of a fiber, and the attributes come from the spPlate
header); a spec file's trimmed COADD must then equal a contiguous part of that row.

Use as a module::

    from compare_store import compare
    differences = compare("store", ["data/3655", "spAll-v5_13_0.fits"])   # [] when all equal

or as a command (exit 0 when everything is equal, 1 with one line per difference, 2 on usage errors)::

    python compare_store.py STORE FITS_OR_DIR...
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np
from astropy.io import fits

# --------------------------------------------------------------------------------------------
# The layout (docs/store-layout.md)
# --------------------------------------------------------------------------------------------

FORMAT_ATTR = "BOSS_STORE_FORMAT"
FORMAT_VERSION = "h5boss-v1"
WRITER_ATTR = "WRITER"
WRITER_PREFIX = "boss-ingest"

COADD_FIELDS = [
    ("WAVE", "f4"), ("FLUX", "f4"), ("IVAR", "f4"), ("AND_MASK", "i4"), ("OR_MASK", "i4"),
    ("WAVEDISP", "f4"), ("SKY", "f4"), ("MODEL", "f4"),
]
EXPOSURE_FIELDS = [
    ("WAVE", "f4"), ("FLUX", "f4"), ("IVAR", "f4"), ("MASK", "i4"), ("WAVEDISP", "f4"),
    ("SKY", "f4"), ("X", "f4"), ("CALIB", "f4"),
]
# store field -> spec-file column (matched case-insensitively)
COADD_FROM_SPEC = {
    "FLUX": "flux", "IVAR": "ivar", "AND_MASK": "and_mask", "OR_MASK": "or_mask",
    "WAVEDISP": "wdisp", "SKY": "sky", "MODEL": "model",
}
EXPOSURE_FROM_SPEC = {
    "FLUX": "flux", "IVAR": "ivar", "MASK": "mask", "WAVEDISP": "wdisp", "SKY": "sky",
    "X": "x", "CALIB": "calib",
}
# Units of the coadd fields: attributes of the plate-MJD group, once per plate-MJD.
COADD_UNIT_ATTRS = ["COADD_WAVE_UNIT", "COADD_FLUX_UNIT", "COADD_IVAR_UNIT", "COADD_WAVEDISP_UNIT",
                    "COADD_SKY_UNIT", "COADD_MODEL_UNIT"]
# store field -> HDU index of an spPlate image
SPPLATE_IMAGE_HDUS = {"FLUX": 0, "IVAR": 1, "AND_MASK": 2, "OR_MASK": 3, "WAVEDISP": 4, "SKY": 6}
SPPLATE_PLUGMAP_HDU = 5
SPPLATE_MIN_HDUS = 7
SPEC_SPALL_NAMES = ("SPALL", "SPECOBJ")
SKIPPED_HEADER_KEYS = {"", "COMMENT", "HISTORY", "SIMPLE", "BITPIX", "EXTEND"}

FITS_SUFFIXES = (".fits", ".fits.gz", ".fit", ".fit.gz")
EXPOSURE_HDU_RE = re.compile(r"^([BR])([12])-(\d+)(?:-.*)?$", re.IGNORECASE)

# FITS TFORM code -> numpy base type (unsigned conventions handled in expected_column_type)
TFORM_TYPES = {"L": "?", "B": "u1", "I": "i2", "J": "i4", "K": "i8", "E": "f4", "D": "f8", "X": "u1"}
UNSIGNED_TZERO = {("B", -128): "i1", ("I", 1 << 15): "u2", ("J", 1 << 31): "u4", ("K", 1 << 63): "u8"}


def store_file_name(plate: int, mjd: int) -> str:
    return f"{plate:04d}-{mjd:05d}.h5"


def plate_mjd_group(plate: int, mjd: int) -> str:
    return f"/{plate}/{mjd}"


def fiber_group(plate: int, mjd: int, fiber: int) -> str:
    return f"/{plate}/{mjd}/{fiber}"


def is_temp_file_name(name: str) -> bool:
    return name.startswith(".") and ".tmp-" in name


# --------------------------------------------------------------------------------------------
# Reading the store
# --------------------------------------------------------------------------------------------


class Store:
    """Lazily opened, read-only view of a store directory (use as a context manager)."""

    def __init__(self, root):
        self.root = Path(root)
        self._files: dict[tuple[int, int], h5py.File | None] = {}
        self._tables: dict[tuple[int, int, str], np.ndarray | None] = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for f in self._files.values():
            if f is not None:
                f.close()
        self._files.clear()
        self._tables.clear()

    def path(self, plate: int, mjd: int) -> Path:
        return self.root / store_file_name(plate, mjd)

    def file(self, plate: int, mjd: int) -> h5py.File | None:
        key = (plate, mjd)
        if key not in self._files:
            p = self.path(plate, mjd)
            self._files[key] = h5py.File(p, "r") if p.is_file() else None
        return self._files[key]

    def table(self, plate: int, mjd: int, name: str) -> np.ndarray | None:
        """The whole table dataset `/<P>/<M>/<name>` as a structured array (cached), or None."""
        key = (plate, mjd, name)
        if key not in self._tables:
            f = self.file(plate, mjd)
            path = f"{plate_mjd_group(plate, mjd)}/{name}"
            self._tables[key] = f[path][()] if f is not None and path in f else None
        return self._tables[key]

    def table_attrs(self, plate: int, mjd: int, name: str) -> dict:
        f = self.file(plate, mjd)
        path = f"{plate_mjd_group(plate, mjd)}/{name}"
        return dict(f[path].attrs) if f is not None and path in f else {}

    def fibers(self, plate: int, mjd: int) -> set[int]:
        """Fiber numbers that have a group under /<P>/<M>."""
        f = self.file(plate, mjd)
        group = plate_mjd_group(plate, mjd)
        if f is None or group not in f:
            return set()
        return {int(k) for k, v in f[group].items() if k.isdigit() and isinstance(v, h5py.Group)}


# --------------------------------------------------------------------------------------------
# Exact value comparison
# --------------------------------------------------------------------------------------------


def _native(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("="))


def _text(v) -> str:
    if isinstance(v, (bytes, np.bytes_)):
        v = bytes(v).decode("latin-1")
    return str(v).rstrip(" \x00")


def _as_rows(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim == 0:
        return a.reshape(1, 1)
    return a.reshape(a.shape[0], -1)


def elementwise_equal(e: np.ndarray, a: np.ndarray, wrap_ints: bool = False) -> np.ndarray:
    """Boolean array: expected `e` equals actual `a` (same shape), exactly.

    Floats compare by bits (after widening float32 to float64 if the types differ), integers by
    value (or modulo 2**(8*size) between signed and unsigned of one size when `wrap_ints`),
    strings after decoding and rstrip of spaces/NULs."""
    ek, ak = e.dtype.kind, a.dtype.kind
    if ek in "SUO" or ak in "SUO":
        to_text = np.vectorize(_text, otypes=[object])
        return to_text(e) == to_text(a)
    if ek == "f" and ak == "f":
        if e.dtype.itemsize != a.dtype.itemsize:
            e, a = e.astype(np.float64), a.astype(np.float64)
        bits = f"u{e.dtype.itemsize}"
        return _native(e).view(bits) == _native(a).view(bits)
    if ek in "iub" and ak in "iub":
        if ek == "b" or ak == "b":
            return e.astype(np.int64) == a.astype(np.int64)
        if e.dtype.itemsize == a.dtype.itemsize and (ek == ak or wrap_ints):
            bits = f"u{e.dtype.itemsize}"
            return _native(e).view(bits) == _native(a).view(bits)
        return e.astype(object) == a.astype(object)
    # float against integer: equal only when the numbers are equal
    return e.astype(np.float64) == a.astype(np.float64)


def first_difference(expected, actual, wrap_ints: bool = False) -> str | None:
    """None when `actual` (store) equals `expected` (FITS) exactly, else a short description."""
    e, a = _as_rows(np.asarray(expected)), _as_rows(np.asarray(actual))
    if a.dtype.kind == "V" and e.dtype.kind != "V" and a.dtype.itemsize % e.dtype.itemsize == 0:
        # h5py reads nested HDF5 array types (array of arrays) as opaque bytes: the type check
        # reports that; reinterpret the bytes (HDF5 stores little-endian here) to check the values.
        a = np.ascontiguousarray(a).view(e.dtype.newbyteorder("<")).reshape(a.shape[0], -1)
    if e.shape[0] != a.shape[0]:
        return f"{a.shape[0]} values in store, {e.shape[0]} in FITS"
    if e.shape != a.shape:
        return f"{a.shape[1]} elements per value in store, {e.shape[1]} in FITS"
    eq = np.asarray(elementwise_equal(e, a, wrap_ints), dtype=bool)
    bad = np.argwhere(~eq)
    if bad.size == 0:
        return None
    i, k = (int(x) for x in bad[0])
    where = f"[{i}]" if e.shape[1] == 1 else f"[{i}][{k}]"
    return (f"{len(bad)} of {eq.size} values differ, first at {where}: "
            f"store {a[i, k]!r}, FITS {e[i, k]!r}")


# --------------------------------------------------------------------------------------------
# Column types (FITS binary table -> HDF5 compound field)
# --------------------------------------------------------------------------------------------


def _tform(col: fits.Column) -> tuple[int, str]:
    m = re.match(r"^\s*(\d*)\s*([A-Z])", str(col.format).upper())
    if not m:
        raise ValueError(f"unparsable TFORM {col.format!r}")
    return (int(m.group(1)) if m.group(1) else 1), m.group(2)


def expected_column_type(col: fits.Column, data_shape: tuple) -> tuple[np.dtype | None, list[tuple], str | None]:
    """(numpy base type, allowed element shapes, problem) the store field of `col` must have.

    `data_shape` is the per-row shape astropy gives the column (used for TDIM columns)."""
    repeat, code = _tform(col)
    bzero = col.bzero if col.bzero not in (None, 0) else None
    bscale = col.bscale if col.bscale not in (None, 1) else None
    if code in "PQ":
        return None, [], f"variable-length column (TFORM {col.format}) is not defined by the layout"
    if code in "CM":
        return None, [], f"complex column (TFORM {col.format}) is not defined by the layout"
    if code == "A":
        return np.dtype(f"S{repeat}"), [()], None
    if code == "X":
        nbytes = (repeat + 7) // 8
        return np.dtype("u1"), ([()] if nbytes == 1 else [(nbytes,)]), None
    base = TFORM_TYPES[code]
    problem = None
    if bzero is not None and bscale is None and (code, int(bzero)) in UNSIGNED_TZERO:
        base = UNSIGNED_TZERO[(code, int(bzero))]
    elif bzero is not None or bscale is not None:
        problem = f"TSCAL/TZERO scaling ({col.bscale}, {col.bzero}) is not defined by the layout"
    shapes = [()] if repeat == 1 else [(repeat,)]
    if repeat > 1 and tuple(data_shape) not in shapes:
        shapes.append(tuple(data_shape))
    return np.dtype(base), shapes, problem


def _compatible(expected: np.dtype, actual: np.dtype) -> bool:
    """Relaxed type rule for tables fed by several sources (spec HDU2 rows, spAll rows).

    Real files size their `A` columns to their own content (PROGRAMNAME is 4A in one eBOSS spec
    file, 5A in another, 27A in spAll), so the shared table's width cannot match every source:
    any fixed byte string is accepted here and truncation shows up in the value comparison."""
    ek, ak = expected.kind, actual.kind
    if ek == "S":
        return ak == "S"
    if ek == "b":
        return ak == "b"
    if ek == "f":
        return ak == "f" and actual.itemsize >= expected.itemsize
    if ek in "iu":
        return ak in "iu" and actual.itemsize >= expected.itemsize
    return expected == actual


def check_field_type(name: str, col: fits.Column, data_shape: tuple, field_dtype: np.dtype,
                     relaxed: bool) -> list[str]:
    expected, shapes, problem = expected_column_type(col, data_shape)
    if problem:
        return [f"column {name}: {problem}"]
    base, shape = field_dtype.base, field_dtype.shape
    ok_base = _compatible(expected, base) if relaxed else base.newbyteorder("=") == expected.newbyteorder("=")
    ok_shape = shape in shapes or (relaxed and int(np.prod(shape)) == int(np.prod(shapes[0] or (1,))))
    if ok_base and ok_shape:
        return []
    return [f"column {name}: store type {base.str}{list(shape) or ''}, FITS TFORM {col.format}"
            f"{' TZERO ' + str(col.bzero) if col.bzero not in (None, 0) else ''} expects "
            f"{expected.str}{list(shapes[0]) or ''}"]


def fits_column_values(data, col: fits.Column, rows=None) -> np.ndarray:
    """Physical values of a FITS column as astropy reads them; 'X' bits packed back into bytes."""
    values = np.asarray(data[col.name])
    if rows is not None:
        values = values[rows]
    _, code = _tform(col)
    if code == "X":
        values = np.packbits(values.astype(bool).reshape(values.shape[0], -1), axis=-1)
    return values


def columns_by_name(columns) -> dict[str, fits.Column]:
    """Case-insensitive column lookup: lower-case name -> Column."""
    return {c.name.lower(): c for c in columns}


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


def compare_table_dtype(where: str, columns, data, store_dtype: np.dtype, relaxed: bool) -> list[str]:
    """Field names, order and types of a store table against the FITS columns."""
    diffs = []
    names = store_dtype.names or ()
    wanted = [c.name.upper() for c in columns]
    if not relaxed and list(names) != wanted:
        missing = [n for n in wanted if n not in names]
        extra = [n for n in names if n not in wanted]
        if missing or extra:
            diffs.append(f"{where}: fields differ: missing {missing[:10]}, extra {extra[:10]}")
        else:
            first = next(i for i, (a, b) in enumerate(zip(names, wanted)) if a != b)
            diffs.append(f"{where}: field order differs from FITS at position {first}: "
                         f"store {names[first]}, FITS {wanted[first]}")
    for col in columns:
        name = col.name.upper()
        if name not in names:
            if relaxed:
                diffs.append(f"{where}: column {name} missing")
            continue
        shape = np.asarray(data[col.name]).shape[1:]
        diffs += [f"{where}: {d}" for d in check_field_type(name, col, shape, store_dtype[name], relaxed)]
    return diffs


def compare_table_rows(where: str, columns, data, fits_rows, store_rows: np.ndarray,
                       relaxed: bool = False) -> list[str]:
    """Values of FITS rows `fits_rows` (indices) against the store's structured rows, column by column."""
    diffs = []
    if len(fits_rows) != len(store_rows):
        return [f"{where}: {len(store_rows)} rows in store, {len(fits_rows)} in FITS"]
    names = store_rows.dtype.names or ()
    for col in columns:
        name = col.name.upper()
        if name not in names:
            continue  # reported by compare_table_dtype
        d = first_difference(fits_column_values(data, col, fits_rows), store_rows[name], wrap_ints=relaxed)
        if d:
            diffs.append(f"{where}: column {name}: {d}")
    return diffs


def compare_units(where: str, columns, attrs: dict) -> list[str]:
    """TUNIT of every column must be the table attribute <COLUMN>_UNIT."""
    diffs = []
    for col in columns:
        key = f"{col.name.upper()}_UNIT"
        unit = (col.unit or "").strip()
        got = _text(attrs[key]) if key in attrs else None
        if unit and got != unit:
            diffs.append(f"{where}: attribute {key} is {got!r}, FITS TUNIT is {unit!r}")
        elif not unit and got:
            diffs.append(f"{where}: attribute {key} is {got!r}, FITS column has no TUNIT")
    return diffs


def fiberid_column(columns) -> fits.Column | None:
    return columns_by_name(columns).get("fiberid")


def compare_whole_table(src: str, store: Store, plate: int, mjd: int, table: str, hdu) -> list[str]:
    """A store table equals all rows of a FITS table HDU, stably sorted by FIBERID."""
    where = f"{src}: {plate_mjd_group(plate, mjd)}/{table}"
    rows = store.table(plate, mjd, table)
    if rows is None:
        return [f"{where}: table missing"]
    columns, data = hdu.columns, hdu.data
    fcol = fiberid_column(columns)
    order = np.arange(len(data))
    if fcol is not None:
        order = np.argsort(np.asarray(data[fcol.name]), kind="stable")
    diffs = compare_table_dtype(where, columns, data, rows.dtype, relaxed=False)
    diffs += compare_table_rows(where, columns, data, order, rows)
    diffs += compare_units(where, columns, store.table_attrs(plate, mjd, table))
    return diffs


def store_rows_of_fiber(rows: np.ndarray, fiber: int) -> np.ndarray:
    return rows[np.asarray(rows["FIBERID"]) == fiber]


# --------------------------------------------------------------------------------------------
# Headers -> attributes
# --------------------------------------------------------------------------------------------


def header_items(header) -> dict:
    """Primary header cards the store keeps as attributes (first occurrence of each keyword)."""
    items = {}
    for card in header.cards:
        key = card.keyword
        if key in SKIPPED_HEADER_KEYS or key.startswith("NAXIS") or key in items:
            continue
        items[key] = card.value
    return items


def _attr_kind(v) -> str:
    if isinstance(v, (bool, np.bool_)):
        return "bool"
    if isinstance(v, (int, np.integer)):
        return "int"
    if isinstance(v, (float, np.floating)):
        return "float"
    if isinstance(v, (str, bytes, np.str_, np.bytes_)):
        return "str"
    return type(v).__name__


def compare_attribute(key: str, expected, got) -> str | None:
    """None when attribute value `got` matches the FITS card value `expected` (type and value)."""
    ek = _attr_kind(expected)
    if isinstance(got, np.ndarray) and got.shape in ((), (1,)):
        got = got.reshape(()).item() if got.dtype.kind not in "SUO" else got.reshape(-1)[0]
    gk = _attr_kind(got)
    if ek != gk:
        return f"attribute {key}: store {gk} {got!r}, FITS {ek} {expected!r}"
    if ek == "int" and isinstance(got, np.integer) and got.dtype != np.int64:
        return f"attribute {key}: stored as {got.dtype}, layout says int64"
    if ek == "float" and isinstance(got, np.floating) and got.dtype != np.float64:
        return f"attribute {key}: stored as {got.dtype}, layout says float64"
    if ek == "str":
        equal = _text(got) == _text(expected)
    elif ek == "float":
        equal = float(got) == float(expected) or (math.isnan(float(got)) and math.isnan(float(expected)))
    else:
        equal = got == expected
    return None if equal else f"attribute {key}: store {got!r}, FITS {expected!r}"


def compare_header_attrs(where: str, header_values: dict, attrs) -> list[str]:
    diffs = []
    for key, value in header_values.items():
        if key not in attrs:
            diffs.append(f"{where}: attribute {key} missing (FITS {value!r})")
            continue
        d = compare_attribute(key, value, attrs[key])
        if d:
            diffs.append(f"{where}: {d}")
    return diffs


# --------------------------------------------------------------------------------------------
# Spectra datasets
# --------------------------------------------------------------------------------------------


def compare_compound_dtype(where: str, dtype: np.dtype, fields) -> list[str]:
    got = [(n, dtype[n].str[1:], dtype[n].shape) for n in (dtype.names or ())]
    want = [(n, np.dtype(t).str[1:], ()) for n, t in fields]
    return [] if got == want else [f"{where}: record type {got}, layout says {want}"]


def wave_from_loglam(loglam) -> np.ndarray:
    """WAVE = float32(10**loglam) computed in float64."""
    return np.power(10.0, np.asarray(loglam).astype(np.float64)).astype(np.float32)


def wave_from_coeffs(coeff0: float, coeff1: float, npix: int) -> np.ndarray:
    """WAVE = float32(10**(COEFF0 + COEFF1*i)) computed in float64."""
    return np.power(10.0, float(coeff0) + float(coeff1) * np.arange(npix, dtype=np.float64)).astype(np.float32)


def compare_record_values(where: str, records: np.ndarray, expected: dict) -> list[str]:
    """Each store field named in `expected` (field -> FITS array) equals it exactly."""
    diffs = []
    for name, values in expected.items():
        if name not in (records.dtype.names or ()):
            continue  # reported by compare_compound_dtype
        d = first_difference(values, records[name])
        if d:
            diffs.append(f"{where}: {name}: {d}")
    return diffs


def compare_spectrum_table(where: str, ds: h5py.Dataset, hdu, fields, from_spec: dict,
                           optional: bool = False) -> list[str]:
    """A coadd or exposure dataset against a FITS per-pixel table (WAVE from its loglam).

    With `optional` (exposures) a field whose column the HDU lacks must be absent from the dataset
    too (SDSS-I/II exposures have no x): no invented values."""
    cols = columns_by_name(hdu.columns)
    if optional:
        fields = [(n, t) for n, t in fields if n == "WAVE" or from_spec.get(n) in cols]
        from_spec = {k: v for k, v in from_spec.items() if v in cols}
    diffs = compare_compound_dtype(where, ds.dtype, fields)
    data = hdu.data
    expected = {}
    if "loglam" in cols:
        expected["WAVE"] = wave_from_loglam(data[cols["loglam"].name])
    else:
        diffs.append(f"{where}: FITS table has no loglam column")
    for field, colname in from_spec.items():
        if colname in cols:
            expected[field] = np.asarray(data[cols[colname].name])
        else:
            diffs.append(f"{where}: FITS table has no {colname} column")
    records = ds[()]
    if len(records) != len(data):
        return diffs + [f"{where}: {len(records)} records in store, {len(data)} rows in FITS"]
    return diffs + compare_record_values(where, records, expected)


def compare_coadd_units(where: str, group: h5py.Group) -> list[str]:
    missing = [a for a in COADD_UNIT_ATTRS if a not in group.attrs]
    return [f"{where}: unit attributes missing: {missing}"] if missing else []


# --------------------------------------------------------------------------------------------
# spec-PPPP-MMMMM-FFFF.fits
# --------------------------------------------------------------------------------------------


def find_hdu(hdul, position: int, names=()):
    """The HDU named one of `names`, else the HDU at `position` (files without EXTNAME)."""
    for hdu in hdul[1:]:
        if hdu.name.upper() in names:
            return hdu
    return hdul[position] if len(hdul) > position else None


def spec_identity(header) -> tuple[int, int, int] | None:
    try:
        return int(header["PLATEID"]), int(header["MJD"]), int(header["FIBERID"])
    except KeyError:
        return None


def exposure_target(hdu_name: str) -> tuple[int, str, int] | None:
    """`B1-00104927-00104934-00104935` -> (104927, 'b', 1)."""
    m = EXPOSURE_HDU_RE.match(hdu_name.strip())
    if not m:
        return None
    return int(m.group(3)), m.group(1).lower(), int(m.group(2))


def compare_spec_exposures(src: str, f: h5py.File, group: str, hdul) -> list[str]:
    diffs = []
    wanted = set()
    for index in range(4, len(hdul)):
        hdu = hdul[index]
        target = exposure_target(hdu.name)
        if target is None:
            diffs.append(f"{src}: HDU {index} ({hdu.name!r}) is not a camera-exposure name")
            continue
        expid, arm, spectrograph = target
        path = f"{group}/exposures/{expid}/{arm}"
        wanted.add(f"{expid}/{arm}")
        where = f"{src}: {path}"
        if path not in f:
            diffs.append(f"{where}: missing (HDU {index} {hdu.name})")
            continue
        ds = f[path]
        diffs += compare_spectrum_table(where, ds, hdu, EXPOSURE_FIELDS, EXPOSURE_FROM_SPEC, optional=True)
        d = compare_attribute("SPECTROGRAPH", spectrograph, ds.attrs.get("SPECTROGRAPH"))
        if d:
            diffs.append(f"{where}: {d}")
        d = compare_attribute("EXTNAME", hdu.name, ds.attrs.get("EXTNAME"))
        if d:
            diffs.append(f"{where}: {d}")
    exp_group = f"{group}/exposures"
    if exp_group in f:
        stored = {f"{e}/{a}" for e, g in f[exp_group].items() for a in g}
        extra = sorted(stored - wanted)
        if extra:
            diffs.append(f"{src}: {exp_group}: exposures not in the file: {extra[:10]}")
    return diffs


def compare_spec_spall(src: str, store: Store, plate: int, mjd: int, fiber: int, hdu) -> list[str]:
    where = f"{src}: {plate_mjd_group(plate, mjd)}/spall"
    rows = store.table(plate, mjd, "spall")
    if rows is None:
        return [f"{where}: table missing"]
    if "FIBERID" not in (rows.dtype.names or ()):
        return [f"{where}: no FIBERID field"]
    mine = store_rows_of_fiber(rows, fiber)
    if len(mine) != len(hdu.data):
        return [f"{where}: {len(mine)} rows with FIBERID {fiber}, FITS HDU2 has {len(hdu.data)}"]
    # The spall table of a plate-MJD is shared by all its spec files (and spAll rows): names and
    # types must follow the layout, the field order only has to match for a single source kind.
    diffs = compare_table_dtype(where, hdu.columns, hdu.data, rows.dtype, relaxed=True)
    diffs += compare_table_rows(where, hdu.columns, hdu.data, np.arange(len(hdu.data)), mine)
    return diffs


def compare_spec_zline(src: str, store: Store, plate: int, mjd: int, fiber: int, hdu) -> list[str]:
    where = f"{src}: {plate_mjd_group(plate, mjd)}/zline"
    rows = store.table(plate, mjd, "zline")
    if rows is None:
        return [] if len(hdu.data) == 0 else [f"{where}: table missing"]
    if "FIBERID" not in (rows.dtype.names or ()):
        return [f"{where}: no FIBERID field"]
    mine = store_rows_of_fiber(rows, fiber)
    diffs = compare_table_dtype(where, hdu.columns, hdu.data, rows.dtype, relaxed=False)
    diffs += compare_table_rows(where, hdu.columns, hdu.data, np.arange(len(hdu.data)), mine)
    return diffs


def compare_spec_coadd_within_plate(where: str, f: h5py.File, ds: h5py.Dataset, hdu, group_attrs) -> list[str]:
    """A spec file whose spPlate was ingested too: the store's coadd is the spPlate row (the first copy
    of a fiber wins), and the spec file's COADD (trimmed of ivar = 0 ends) must be a contiguous part of
    it, at pixel offset round((loglam[0] - COEFF0) / COEFF1). WAVE differs by construction: not compared."""
    diffs = compare_compound_dtype(where, ds.dtype, COADD_FIELDS)
    cols = columns_by_name(hdu.columns)
    data = hdu.data
    if "loglam" not in cols or "COEFF0" not in group_attrs or "COEFF1" not in group_attrs:
        return diffs + [f"{where}: cannot place the spec pixels (no loglam column or COEFF0/COEFF1 attribute)"]
    loglam0 = float(np.asarray(data[cols["loglam"].name])[0]) if len(data) else 0.0
    offset = int(round((loglam0 - float(group_attrs["COEFF0"])) / float(group_attrs["COEFF1"])))
    records = ds[()]
    if offset < 0 or offset + len(data) > len(records):
        return diffs + [f"{where}: spec pixels {offset}..{offset + len(data)} outside the stored {len(records)}"]
    part = records[offset:offset + len(data)]
    expected = {field: np.asarray(data[cols[c].name]) for field, c in COADD_FROM_SPEC.items() if c in cols}
    return diffs + compare_record_values(f"{where}[{offset}:{offset + len(data)}]", part, expected)


def compare_spec_file(store: Store, path, plate_ingested: bool = False) -> list[str]:
    """coadd, exposures, spall row and zline rows of one spec file.

    With `plate_ingested` (the spPlate of this plate-MJD is among the inputs) the coadd is checked
    as a part of the spPlate row by compare_spec_coadd_within_plate."""
    src = str(path)
    with fits.open(path, memmap=False) as hdul:
        ident = spec_identity(hdul[0].header)
        if ident is None:
            return [f"{src}: primary header lacks PLATEID/MJD/FIBERID"]
        plate, mjd, fiber = ident
        f = store.file(plate, mjd)
        if f is None:
            return [f"{src}: store file {store.path(plate, mjd)} missing"]
        group = fiber_group(plate, mjd, fiber)
        if group not in f:
            return [f"{src}: {group} missing"]
        diffs = []
        coadd = find_hdu(hdul, 1, ("COADD",))
        where = f"{src}: {group}/coadd"
        if f"{group}/coadd" not in f:
            diffs.append(f"{where}: missing")
        elif plate_ingested:
            diffs += compare_spec_coadd_within_plate(where, f, f[f"{group}/coadd"], coadd,
                                                     f[plate_mjd_group(plate, mjd)].attrs)
        else:
            diffs += compare_spectrum_table(where, f[f"{group}/coadd"], coadd, COADD_FIELDS, COADD_FROM_SPEC)
            diffs += compare_coadd_units(where, f[plate_mjd_group(plate, mjd)])
        spall = find_hdu(hdul, 2, SPEC_SPALL_NAMES)
        if spall is not None:
            diffs += compare_spec_spall(src, store, plate, mjd, fiber, spall)
        zline = find_hdu(hdul, 3, ("SPZLINE",))
        if zline is not None:
            diffs += compare_spec_zline(src, store, plate, mjd, fiber, zline)
        diffs += compare_spec_exposures(src, f, group, hdul)
    return diffs


# --------------------------------------------------------------------------------------------
# spPlate-PPPP-MMMMM.fits (+ spZbest / spZline siblings)
# --------------------------------------------------------------------------------------------


def sibling(path: Path, prefix: str, plate: int, mjd: int) -> Path | None:
    for suffix in (".fits", ".fits.gz"):
        p = path.parent / f"{prefix}-{plate:04d}-{mjd:05d}{suffix}"
        if p.is_file():
            return p
    return None


def compare_spplate_fibers(src: str, f: h5py.File, plate: int, mjd: int, hdul, model) -> list[str]:
    header = hdul[0].header
    images = {name: hdul[i].data for name, i in SPPLATE_IMAGE_HDUS.items()}
    nfiber, npix = images["FLUX"].shape
    wave = wave_from_coeffs(header["COEFF0"], header["COEFF1"], npix)
    plug = hdul[SPPLATE_PLUGMAP_HDU]
    fibers = np.asarray(plug.data[fiberid_column(plug.columns).name])
    if len(fibers) != nfiber:
        return [f"{src}: PLUGMAP has {len(fibers)} rows, images have {nfiber}"]
    diffs = []
    for i, fiber in enumerate(fibers.tolist()):
        path = f"{fiber_group(plate, mjd, fiber)}/coadd"
        where = f"{src}: {path}"
        if path not in f:
            diffs.append(f"{where}: missing (fiber {fiber}, row {i})")
            continue
        ds = f[path]
        diffs += compare_compound_dtype(where, ds.dtype, COADD_FIELDS)
        expected = {"WAVE": wave, "MODEL": model[i]}
        expected.update({name: images[name][i] for name in images})
        records = ds[()]
        if len(records) != npix:
            diffs.append(f"{where}: {len(records)} records in store, NPIX {npix} in FITS")
            continue
        diffs += compare_record_values(where, records, expected)
    diffs += compare_coadd_units(f"{src}: {plate_mjd_group(plate, mjd)}", f[plate_mjd_group(plate, mjd)])
    return diffs


def compare_spplate_file(store: Store, path) -> list[str]:
    """Every fiber's coadd, the plugmap/zbest/zline tables and the plate-MJD attributes."""
    path = Path(path)
    src = str(path)
    with fits.open(path, memmap=False) as hdul:
        if len(hdul) < SPPLATE_MIN_HDUS:
            return [f"{src}: spPlate has {len(hdul)} HDUs, needs {SPPLATE_MIN_HDUS} (cannot be ingested)"]
        header = hdul[0].header
        plate, mjd = int(header["PLATEID"]), int(header["MJD"])
        f = store.file(plate, mjd)
        if f is None:
            return [f"{src}: store file {store.path(plate, mjd)} missing"]
        group = plate_mjd_group(plate, mjd)
        if group not in f:
            return [f"{src}: {group} missing"]
        diffs = compare_header_attrs(f"{src}: {group}", header_items(header), f[group].attrs)
        zbest_path = sibling(path, "spZbest", plate, mjd)
        zline_path = sibling(path, "spZline", plate, mjd)
        nfiber, npix = hdul[0].data.shape
        model = np.zeros((nfiber, npix), dtype=np.float32)
        if zbest_path is not None:
            with fits.open(zbest_path, memmap=False) as zb:
                model = np.asarray(zb[2].data)
                diffs += compare_whole_table(str(zbest_path), store, plate, mjd, "zbest", zb[1])
        if zline_path is not None:
            with fits.open(zline_path, memmap=False) as zl:
                diffs += compare_whole_table(str(zline_path), store, plate, mjd, "zline", zl[1])
        if model.shape != (nfiber, npix):
            diffs.append(f"{zbest_path}: MODEL image shape {model.shape}, spPlate {(nfiber, npix)}")
            model = np.zeros((nfiber, npix), dtype=np.float32)
        diffs += compare_whole_table(src, store, plate, mjd, "plugmap", hdul[SPPLATE_PLUGMAP_HDU])
        diffs += compare_spplate_fibers(src, f, plate, mjd, hdul, model)
    return diffs


# --------------------------------------------------------------------------------------------
# spAll*.fits
# --------------------------------------------------------------------------------------------


def first_table_hdu(hdul):
    for hdu in hdul[1:]:
        if isinstance(hdu, fits.BinTableHDU):
            return hdu
    return None


def compare_spall_file(store: Store, path, spec_fibers: set = frozenset()) -> list[str]:
    """Rows of an spAll file whose (PLATE, MJD, FIBERID) is a fiber in the store are in its spall.

    Fibers in `spec_fibers` got their spall row from their spec file: only their row count is checked."""
    src = str(path)
    with fits.open(path, memmap=False) as hdul:
        hdu = first_table_hdu(hdul)
        if hdu is None:
            return [f"{src}: no binary table"]
        cols = columns_by_name(hdu.columns)
        if not {"plate", "mjd", "fiberid"} <= cols.keys():
            return [f"{src}: no PLATE/MJD/FIBERID columns"]
        data = hdu.data
        plates = np.asarray(data[cols["plate"].name]).astype(np.int64)
        mjds = np.asarray(data[cols["mjd"].name]).astype(np.int64)
        fibs = np.asarray(data[cols["fiberid"].name]).astype(np.int64)
        by_pm = defaultdict(list)
        for i, key in enumerate(zip(plates.tolist(), mjds.tolist())):
            by_pm[key].append(i)
        diffs = []
        for (plate, mjd), idx in sorted(by_pm.items()):
            present = store.fibers(plate, mjd)
            idx = [i for i in idx if int(fibs[i]) in present]
            if not idx:
                continue
            where = f"{src}: {plate_mjd_group(plate, mjd)}/spall"
            rows = store.table(plate, mjd, "spall")
            if rows is None:
                diffs.append(f"{where}: table missing ({len(idx)} matching rows)")
                continue
            diffs += compare_table_dtype(where, hdu.columns, data, rows.dtype, relaxed=True)
            for i in idx:
                fiber = int(fibs[i])
                mine = store_rows_of_fiber(rows, fiber)
                if len(mine) != 1:
                    diffs.append(f"{where}: {len(mine)} rows with FIBERID {fiber}, expected 1")
                elif (plate, mjd, fiber) not in spec_fibers:
                    diffs += compare_table_rows(f"{where} FIBERID {fiber}", hdu.columns, data,
                                                np.array([i]), mine, relaxed=True)
    return diffs


# --------------------------------------------------------------------------------------------
# Whole-store checks
# --------------------------------------------------------------------------------------------


def check_store_file(store: Store, plate: int, mjd: int) -> list[str]:
    """Invariants of one store file: format attributes, tables sorted by FIBERID, one spall row per fiber."""
    f = store.file(plate, mjd)
    where = str(store.path(plate, mjd))
    if f is None:
        return []
    diffs = []
    fmt = _text(f.attrs[FORMAT_ATTR]) if FORMAT_ATTR in f.attrs else None
    if fmt != FORMAT_VERSION:
        diffs.append(f"{where}: root attribute {FORMAT_ATTR} is {fmt!r}, expected {FORMAT_VERSION!r}")
    writer = _text(f.attrs[WRITER_ATTR]) if WRITER_ATTR in f.attrs else ""
    if not writer.startswith(WRITER_PREFIX):
        diffs.append(f"{where}: root attribute {WRITER_ATTR} is {writer!r}")
    group = plate_mjd_group(plate, mjd)
    if group not in f:
        return diffs + [f"{where}: group {group} missing"]
    for name, obj in f[group].items():
        if isinstance(obj, h5py.Group) and not (name.isdigit() and str(int(name)) == name):
            diffs.append(f"{where}: {group}/{name}: fiber group name is not a plain decimal")
    for table in ("plugmap", "spall", "zline", "zbest"):
        rows = store.table(plate, mjd, table)
        if rows is None:
            continue
        if "FIBERID" not in (rows.dtype.names or ()):
            diffs.append(f"{where}: {group}/{table}: no FIBERID field")
            continue
        fib = np.asarray(rows["FIBERID"]).astype(np.int64)
        if np.any(np.diff(fib) < 0):
            diffs.append(f"{where}: {group}/{table}: rows not sorted by FIBERID")
        if table == "spall" and len(np.unique(fib)) != len(fib):
            diffs.append(f"{where}: {group}/spall: several rows for one FIBERID")
    return diffs


def compare_spec_plate_attrs(store: Store, plate: int, mjd: int, headers: dict[int, tuple]) -> list[str]:
    """Attributes of a plate-MJD written from spec files: the header of the spec file they came from.

    `headers` maps fiber -> (path, header items) of the spec inputs of this plate-MJD. The group's
    FIBERID attribute names the spec file whose header was used; if that file is not among the
    inputs, only cards equal in every input header are compared."""
    f = store.file(plate, mjd)
    group = plate_mjd_group(plate, mjd)
    if f is None or group not in f:
        return []
    attrs = f[group].attrs
    if "FIBERID" not in attrs:
        return []  # written from an spPlate: compared by compare_spplate_file when it is an input
    fiber = int(np.asarray(attrs["FIBERID"]).reshape(()))
    if fiber in headers:
        src, items = headers[fiber]
        return compare_header_attrs(f"{src}: {group}", items, attrs)
    all_items = [items for _, items in headers.values()]
    common = {k: v for k, v in all_items[0].items()
              if all(k in other and repr(other[k]) == repr(v) for other in all_items[1:])}
    return compare_header_attrs(f"{store.path(plate, mjd)}: {group}", common, attrs)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def input_kind(path: Path) -> str | None:
    name = path.name
    if not name.lower().endswith(FITS_SUFFIXES):
        return None
    for prefix, kind in (("spec-", "spec"), ("spPlate-", "spplate"), ("spZbest-", "spzbest"),
                         ("spZline-", "spzline"), ("spAll", "spall")):
        if name.startswith(prefix):
            return kind
    return None


def expand_inputs(inputs) -> list[Path]:
    """Files named directly, plus every FITS file found recursively under directories (sorted)."""
    files = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            files += sorted(q for q in p.rglob("*") if q.is_file() and q.name.lower().endswith(FITS_SUFFIXES))
        else:
            files.append(p)
    return files


def compare(store_dir, inputs, log=None) -> list[str]:
    """All differences between the store at `store_dir` and the FITS `inputs` (files or directories)."""
    files = expand_inputs(inputs)
    kinds = defaultdict(list)
    diffs = []
    for p in files:
        kind = input_kind(p)
        if kind is None:
            if log:
                log(f"ignored (not a BOSS input name): {p}")
            continue
        kinds[kind].append(p)
    touched: set[tuple[int, int]] = set()
    spec_headers: dict[tuple[int, int], dict[int, tuple]] = defaultdict(dict)
    plate_mjds_with_spplate = set()
    for p in kinds["spplate"]:
        try:
            header = fits.getheader(p, 0)
            plate_mjds_with_spplate.add((int(header["PLATEID"]), int(header["MJD"])))
        except Exception:  # noqa: BLE001 - reported when the spPlate itself is compared
            pass
    with Store(store_dir) as store:
        for p in kinds["spec"]:
            try:
                header = fits.getheader(p, 0)
                ident = spec_identity(header)
                if ident is not None:
                    touched.add(ident[:2])
                    spec_headers[ident[:2]][ident[2]] = (str(p), header_items(header))
                diffs += compare_spec_file(store, p, ident is not None and ident[:2] in plate_mjds_with_spplate)
            except Exception as exc:  # noqa: BLE001 - an unreadable input is a difference
                diffs.append(f"{p}: cannot compare: {type(exc).__name__}: {exc}")
        for p in kinds["spplate"]:
            try:
                header = fits.getheader(p, 0)
                touched.add((int(header["PLATEID"]), int(header["MJD"])))
                diffs += compare_spplate_file(store, p)
            except Exception as exc:  # noqa: BLE001
                diffs.append(f"{p}: cannot compare: {type(exc).__name__}: {exc}")
        spec_fibers = {(pl, mj, fi) for (pl, mj), h in spec_headers.items() for fi in h}
        for p in kinds["spall"]:
            try:
                diffs += compare_spall_file(store, p, spec_fibers)
            except Exception as exc:  # noqa: BLE001
                diffs.append(f"{p}: cannot compare: {type(exc).__name__}: {exc}")
        for (plate, mjd), headers in sorted(spec_headers.items()):
            diffs += compare_spec_plate_attrs(store, plate, mjd, headers)
        for plate, mjd in sorted(touched):
            diffs += check_store_file(store, plate, mjd)
    return diffs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", help="store directory written by boss-ingest")
    parser.add_argument("inputs", nargs="+", help="FITS files or directories (searched recursively)")
    parser.add_argument("-v", "--verbose", action="store_true", help="report ignored files on stderr")
    args = parser.parse_args(argv)
    if not Path(args.store).is_dir():
        print(f"{args.store}: not a directory", file=sys.stderr)
        return 2
    log = (lambda m: print(m, file=sys.stderr)) if args.verbose else None
    diffs = compare(args.store, args.inputs, log=log)
    for d in diffs:
        print(d)
    return 1 if diffs else 0


if __name__ == "__main__":
    sys.exit(main())
