"""DESI coadd and redrock files for the tests, written with astropy after the real pair in
data-samples/real/desi (the same HDUs, EXTNAMEs, column names, types and units; the data model is in
../shared/formats/desi/): `targets` rows with new TARGETIDs in shuffled order, random spectra,
a HEALPix or a cumulative-tile primary header. `damage` makes the bad inputs of the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

REPO = Path(__file__).resolve().parents[2]
REAL = REPO / "data-samples" / "real" / "desi"
REAL_COADD = REAL / "coadd-special-dark-27247.fits"
REAL_REDROCK = REAL / "redrock-special-dark-27247.fits"
ARMS = "BRZ"


def _rows(table: fits.FITS_rec, n: int, ids: np.ndarray, rng) -> fits.BinTableHDU:
    """A table HDU of n copies of the template's rows (cycled), TARGETID set, floats jittered."""
    t = table[np.arange(n) % len(table)].copy()
    t["TARGETID"] = ids
    for name in t.columns.names:
        col = t[name]
        if col.dtype.kind == "f" and name not in ("TARGET_RA", "TARGET_DEC"):
            t[name] = col * (1 + 0.01 * rng.standard_normal(col.shape)).astype(col.dtype)
    return fits.BinTableHDU(t)


def _header(hdr: fits.Header, group: dict) -> fits.Header:
    h = hdr.copy()
    for k in ("SPGRP", "SPGRPVAL", "HPXPIXEL", "HPXNSIDE", "HPXNEST", "SURVEY", "PROGRAM",
              "TILEID", "PETAL", "NIGHT"):
        h.remove(k, ignore_missing=True, remove_all=True)
    if "pixnum" in group:
        h["SPGRP"] = "healpix"
        h["SPGRPVAL"] = group["pixnum"]
        h["HPXPIXEL"] = group["pixnum"]
        h["HPXNSIDE"] = 64
        h["HPXNEST"] = True
        h["SURVEY"] = group["survey"]
        h["PROGRAM"] = group["program"]
    else:
        h["SPGRP"] = "cumulative"
        h["SPGRPVAL"] = group["night"]
        h["TILEID"] = group["tileid"]
        h["PETAL"] = group["petal"]
        h["NIGHT"] = group["night"]
    return h


def stem(group: dict) -> str:
    if "pixnum" in group:
        return f"{group['survey']}-{group['program']}-{group['pixnum']}"
    return f"{group['petal']}-{group['tileid']}-thru{group['night']}"


def subdir(group: dict) -> Path:
    """Where DESI puts the files: healpix/<survey>/<program>/<pixgroup>/<pixnum>/ or
    tiles/cumulative/<tileid>/<night>/."""
    if "pixnum" in group:
        return Path("healpix", group["survey"], group["program"], str(group["pixnum"] // 100),
                    str(group["pixnum"]))
    return Path("tiles", "cumulative", str(group["tileid"]), str(group["night"]))


def write_pair(out: Path, group: dict, targets: int, seed: int, first_id: int = 39_000_000_000_000_000,
               ra=None, dec=None, redrock: bool = True):
    """Writes coadd-<stem>.fits (and redrock-<stem>.fits) under out/<subdir>; returns their paths."""
    rng = np.random.default_rng(seed)
    ids = first_id + rng.choice(10**6, size=targets, replace=False).astype(np.int64)
    d = out / subdir(group)
    d.mkdir(parents=True, exist_ok=True)
    with fits.open(REAL_COADD) as c:
        hdus = [fits.PrimaryHDU(header=_header(c[0].header, group))]
        fm = _rows(c["FIBERMAP"].data, targets, ids, rng)
        if ra is not None:
            # One position for all (spread by 1e-4 deg), or one per target.
            ra, dec = np.broadcast_to(ra, targets), np.broadcast_to(dec, targets)
            spread = 1e-4 * np.arange(targets) if np.ndim(ra) == 0 or np.all(ra == ra[0]) else 0
            fm.data["TARGET_RA"] = ra + spread
            fm.data["TARGET_DEC"] = dec
        fm.header.update({k: c["FIBERMAP"].header[k] for k in c["FIBERMAP"].header if k.startswith("TUNIT")})
        fm.name = "FIBERMAP"
        hdus.append(fm)
        exp = c["EXP_FIBERMAP"].data
        e = _rows(exp, 2 * targets, np.repeat(ids, 2), rng)
        e.name = "EXP_FIBERMAP"
        hdus.append(e)
        for arm in ARMS:
            wave = c[f"{arm}_WAVELENGTH"]
            npix = wave.data.shape[0]
            hdus.append(fits.ImageHDU(wave.data, header=wave.header, name=f"{arm}_WAVELENGTH"))
            flux = rng.standard_normal((targets, npix)).astype(np.float32)
            hdus.append(fits.ImageHDU(flux, header=c[f"{arm}_FLUX"].header, name=f"{arm}_FLUX"))
            ivar = rng.uniform(0, 2, (targets, npix)).astype(np.float32)
            hdus.append(fits.ImageHDU(ivar, header=c[f"{arm}_IVAR"].header, name=f"{arm}_IVAR"))
            mask = rng.integers(0, 2**20, (targets, npix)).astype(np.int32)
            hdus.append(fits.ImageHDU(mask, header=c[f"{arm}_MASK"].header, name=f"{arm}_MASK"))
            res = rng.uniform(0, 1, (targets, 11, npix)).astype(np.float32)
            hdus.append(fits.ImageHDU(res, header=c[f"{arm}_RESOLUTION"].header, name=f"{arm}_RESOLUTION"))
        s = _rows(c["SCORES"].data, targets, ids, rng)
        s.name = "SCORES"
        hdus.append(s)
        coadd = d / f"coadd-{stem(group)}.fits"
        fits.HDUList(hdus).writeto(coadd, overwrite=True)
    if not redrock:
        return coadd, None
    with fits.open(REAL_REDROCK) as r:
        hdus = [fits.PrimaryHDU(header=_header(r[0].header, group))]
        z = _rows(r["REDSHIFTS"].data, targets, ids, rng)
        z.data["Z"] = rng.uniform(0, 3, targets)
        z.data["SPECTYPE"] = np.where(np.arange(targets) % 2 == 0, "QSO", "GALAXY")
        z.data["ZWARN"] = 0
        z.name = "REDSHIFTS"
        hdus.append(z)
        for name in ("FIBERMAP", "EXP_FIBERMAP"):
            h = fits.open(coadd)[name].copy()
            hdus.append(h)
        t = _rows(r["TSNR2"].data, targets, ids, rng)
        t.name = "TSNR2"
        hdus.append(t)
        redrock = d / f"redrock-{stem(group)}.fits"
        fits.HDUList(hdus).writeto(redrock, overwrite=True)
    return coadd, redrock


def damage(src: Path, dst: Path, how: str):
    """A copy of a coadd or redrock file with one defect: `no-z-arm` (Z_FLUX removed),
    `resolution-shape` (B_RESOLUTION of 10 pixels too few), `wave-length` (R_WAVELENGTH one pixel
    short), `redrock-ids` (a TARGETID the coadd lacks), `duplicate-targetid` (FIBERMAP row 2 with row 1's
    TARGETID), `flux-value` (one B_FLUX value changed: a differing copy of the same coadd)."""
    with fits.open(src) as f:
        hdus = [h.copy() for h in f]
    if how == "no-z-arm":
        hdus = [h for h in hdus if h.name != "Z_FLUX"]
    elif how == "resolution-shape":
        for h in hdus:
            if h.name == "B_RESOLUTION":
                h.data = np.ascontiguousarray(h.data[:, :, :-10])
    elif how == "wave-length":
        for h in hdus:
            if h.name == "R_WAVELENGTH":
                h.data = h.data[:-1]
    elif how == "redrock-ids":
        for h in hdus:
            if h.name == "REDSHIFTS":
                h.data["TARGETID"][0] += 1
    elif how == "duplicate-targetid":
        for h in hdus:
            if h.name == "FIBERMAP":
                h.data["TARGETID"][1] = h.data["TARGETID"][0]
    elif how == "flux-value":
        for h in hdus:
            if h.name == "B_FLUX":
                h.data[0, 100] += np.float32(1)
    else:
        raise ValueError(how)
    fits.HDUList(hdus).writeto(dst, overwrite=True)


def main(argv=None):
    """`desi_files.py OUT --files N --targets T [--seed S]`: N HEALPix coadds (main/dark, pixels
    from 9000) of T targets each with their redrock files, in DESI's tree under OUT (for bench/)."""
    import argparse
    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("out", type=Path)
    ap.add_argument("--files", type=int, default=1)
    ap.add_argument("--targets", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    for i in range(a.files):
        group = {"survey": "main", "program": "dark", "pixnum": 9000 + i}
        write_pair(a.out, group, a.targets, seed=a.seed + i, first_id=39_000_000_000_000_000 + i * 10**7)


if __name__ == "__main__":
    main()


def write_zpix(path: Path, pairs):
    """A zpix file (HDU ZCATALOG: the REDSHIFTS rows of the redrock files joined with their FIBERMAP,
    plus SURVEY, PROGRAM, HEALPIX, ZCAT_NSPEC, ZCAT_PRIMARY) of HEALPix (group, redrock) pairs; with
    cumulative tile groups, a ztile file instead (TILEID, PETAL_LOC, LASTNIGHT in place of SURVEY,
    PROGRAM, HEALPIX), as desi_zcatalog writes ztile-<SURVEY>-<PROGRAM>-cumulative.fits."""
    from astropy.table import Table, hstack, vstack
    parts = []
    for group, redrock in pairs:
        z = Table(fits.getdata(redrock, "REDSHIFTS"))
        fm = Table(fits.getdata(redrock, "FIBERMAP"))
        fm.remove_column("TARGETID")
        t = hstack([z, fm])
        n = len(t)
        if "pixnum" in group:
            t["SURVEY"] = [group["survey"]] * n
            t["PROGRAM"] = [group["program"]] * n
            t["HEALPIX"] = np.full(n, group["pixnum"], dtype=np.int32)
        else:
            t["TILEID"] = np.full(n, group["tileid"], dtype=np.int32)
            t["PETAL_LOC"] = np.full(n, group["petal"], dtype=np.int16)
            t["LASTNIGHT"] = np.full(n, group["night"], dtype=np.int32)
        t["ZCAT_NSPEC"] = np.ones(n, dtype=np.int16)
        t["ZCAT_PRIMARY"] = np.arange(n) % 3 != 0
        parts.append(t)
    hdu = fits.BinTableHDU(vstack(parts), name="ZCATALOG")
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path, overwrite=True)
