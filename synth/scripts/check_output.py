#!/usr/bin/env python3
"""Checks the files written by boss-synth with astropy.

usage: check_output.py OUT_DIR [--max-spec N]

Checks HDU structure, EXTNAMEs, column names and TFORMs, header keys, value ranges, that every
spec-file COADD equals its spPlate row bit for bit over the kept pixels, that loglam equals
float32(COEFF0 + COEFF1*i), and that SPALL / SPZLINE agree with spZbest / spZline.
"""
import glob
import os
import sys

import numpy as np
from astropy.io import fits

PLUGMAP = [
    ("OBJID", "5J"), ("HOLETYPE", "6A"), ("RA", "D"), ("DEC", "D"), ("MAG", "5E"), ("STARL", "E"),
    ("EXPL", "E"), ("DEVAUCL", "E"), ("OBJTYPE", "16A"), ("XFOCAL", "D"), ("YFOCAL", "D"),
    ("SPECTROGRAPHID", "J"), ("FIBERID", "J"), ("THROUGHPUT", "J"), ("PRIMTARGET", "J"),
    ("SECTARGET", "J"), ("OFFSETID", "J"), ("SCI_EXPTIME", "E"), ("SOURCETYPE", "21A"),
    ("LAMBDA_EFF", "E"), ("ZOFFSET", "E"), ("BLUEFIBER", "J"), ("BOSS_TARGET1", "K"),
    ("BOSS_TARGET2", "K"), ("ANCILLARY_TARGET1", "K"), ("ANCILLARY_TARGET2", "K"), ("RUN", "J"),
    ("RERUN", "4A"), ("CAMCOL", "J"), ("FIELD", "J"), ("ID", "J"), ("CALIBFLUX", "5E"),
    ("CALIBFLUX_IVAR", "5E"), ("CALIB_STATUS", "5J"), ("SFD_EBV", "E"),
]
ZBEST_REQUIRED = [
    ("PLATE", "J"), ("TILE", "J"), ("MJD", "J"), ("FIBERID", "J"), ("RUN2D", "12A"), ("RUN1D", "12A"),
    ("OBJTYPE", "16A"), ("PLUG_RA", "D"), ("PLUG_DEC", "D"), ("CLASS", "6A"), ("SUBCLASS", "21A"),
    ("Z", "E"), ("Z_ERR", "E"), ("RCHI2", "E"), ("DOF", "J"), ("ZWARNING", "J"),
    ("SN_MEDIAN_ALL", "E"), ("SN_MEDIAN", "5E"), ("SPECPRIMARY", "B"),
]
ZLINE_REQUIRED = [
    ("PLATE", "J"), ("MJD", "J"), ("FIBERID", "J"), ("LINENAME", "13A"), ("LINEWAVE", "D"),
    ("LINEZ", "E"), ("LINEZ_ERR", "E"), ("LINEAREA", "E"), ("LINEEW", "E"),
]
COADD = [("flux", "E"), ("loglam", "E"), ("ivar", "E"), ("and_mask", "J"), ("or_mask", "J"),
         ("wdisp", "E"), ("sky", "E"), ("model", "E")]
SPALL_REQUIRED = [
    ("PLATE", "J"), ("MJD", "J"), ("FIBERID", "J"), ("PLUG_RA", "D"), ("PLUG_DEC", "D"), ("RA", "D"),
    ("DEC", "D"), ("CLASS", "6A"), ("SUBCLASS", "21A"), ("Z", "E"), ("Z_ERR", "E"), ("ZWARNING", "J"),
    ("SPECPRIMARY", "J"), ("OBJTYPE", "16A"), ("SN_MEDIAN_ALL", "E"), ("THING_ID", "J"),
]
EXPOSURE = [("flux", "E"), ("loglam", "E"), ("ivar", "E"), ("mask", "J"), ("wdisp", "E"), ("sky", "E"),
            ("calib", "E"), ("x", "E")]

failures = []


def norm(x):
    if isinstance(x, bytes):
        x = x.decode()
    if isinstance(x, str):
        return x.rstrip()
    return x


def check(cond, msg):
    if not cond:
        failures.append(msg)
        print("FAIL:", msg)


def columns(hdu):
    return [(c.name, c.format) for c in hdu.columns]


def check_columns(hdu, expected, where, exact=False):
    got = columns(hdu)
    if exact:
        check(got == expected, f"{where}: columns {got} != {expected}")
    else:
        d = dict(got)
        for name, form in expected:
            check(d.get(name) == form, f"{where}: column {name} is {d.get(name)}, expected {form}")


def check_plate(dirpath, path):
    with fits.open(path) as h:
        names = [x.name for x in h]
        check(names == ["PRIMARY", "IVAR", "ANDMASK", "ORMASK", "WAVEDISP", "PLUGMAP", "SKY"],
              f"{path}: HDUs {names}")
        hdr = h[0].header
        for k in ["PLATEID", "MJD", "RUN2D", "COEFF0", "COEFF1", "BUNIT", "NEXP", "EXPID01", "CRVAL1",
                  "CD1_1", "CTYPE1", "TAI", "RA", "DEC", "AIRMASS", "EXPTIME"]:
            check(k in hdr, f"{path}: header lacks {k}")
        check(hdr["RUN2D"] == "v5_7_0" and hdr["COEFF1"] == 1e-4 and hdr["CTYPE1"] == "LINEAR",
              f"{path}: header values")
        check(hdr["BUNIT"] == "1E-17 erg/cm^2/s/Ang", f"{path}: BUNIT")
        nexp = hdr["NEXP"]
        check(all(f"EXPID{i:02d}" in hdr for i in range(1, nexp + 1)), f"{path}: EXPIDnn")
        nfiber, npix = h[0].data.shape
        check(hdr["NAXIS1"] == npix and hdr["NAXIS2"] == nfiber, f"{path}: NAXIS")
        for i, (dt) in enumerate([">f4", ">f4", ">i4", ">i4", ">f4"]):
            check(h[i].data.dtype == np.dtype(dt) and h[i].data.shape == (nfiber, npix),
                  f"{path}: HDU{i} dtype {h[i].data.dtype} shape {h[i].data.shape}")
        check(h[6].data.dtype == np.dtype(">f4") and h[6].data.shape == (nfiber, npix), f"{path}: SKY")
        check_columns(h[5], PLUGMAP, f"{path} PLUGMAP", exact=True)
        check(h[5].columns["RA"].unit == "deg" and h[5].columns["DEC"].unit == "deg", f"{path}: RA/DEC units")
        pm = h[5].data
        check(len(pm) == nfiber and list(pm["FIBERID"]) == list(range(1, nfiber + 1)), f"{path}: FIBERID")
        check(((pm["RA"] >= 0) & (pm["RA"] < 360)).all(), f"{path}: RA range")
        check(((pm["DEC"] >= -90) & (pm["DEC"] <= 90)).all(), f"{path}: DEC range")
        ivar = h[1].data
        wd = h[4].data
        sky = h[6].data
        check((ivar >= 0).all() and (ivar > 0).mean() > 0.95, f"{path}: ivar")
        check(((wd >= 0.9) & (wd <= 1.6)).all(), f"{path}: wavedisp range")
        check((sky > 0).all(), f"{path}: sky positive")
        zero = ivar == 0
        check((h[2].data[zero] != 0).all() and (h[3].data[zero] != 0).all(), f"{path}: ivar=0 pixels are masked")
        stats = {
            "nfiber": nfiber, "npix": npix, "coeff0": hdr["COEFF0"], "centre": (hdr["RA"], hdr["DEC"]),
            "ra range": (float(pm["RA"].min()), float(pm["RA"].max())),
            "dec range": (float(pm["DEC"].min()), float(pm["DEC"].max())),
            "ivar0 frac": float(zero.mean()), "wdisp": (float(wd.min()), float(wd.max())),
        }
        return hdr, {k: np.array(h[i].data) for i, k in
                     [(0, "flux"), (1, "ivar"), (2, "and_mask"), (3, "or_mask"), (4, "wdisp"), (6, "sky")]}, \
            np.array(pm), stats


def main():
    out = sys.argv[1]
    max_spec = int(sys.argv[sys.argv.index("--max-spec") + 1]) if "--max-spec" in sys.argv else 10**9
    plates = sorted(glob.glob(os.path.join(out, "*", "spPlate-*.fits")))
    check(plates, "no spPlate files")
    for path in plates:
        d = os.path.dirname(path)
        stem = os.path.basename(path)[len("spPlate-"):-len(".fits")]
        hdr, img, pm, stats = check_plate(d, path)
        print(path, stats)
        plate, mjd = hdr["PLATEID"], hdr["MJD"]
        c0, c1 = hdr["COEFF0"], hdr["COEFF1"]
        nfiber, npix = img["flux"].shape
        with fits.open(os.path.join(d, f"spZbest-{stem}.fits")) as z:
            check([x.name for x in z] == ["PRIMARY", "ZBEST", "MODEL"], f"spZbest HDUs {[x.name for x in z]}")
            check_columns(z[1], ZBEST_REQUIRED, "spZbest")
            zb = np.array(z[1].data)
            model = np.array(z[2].data)
            check(model.dtype == np.dtype(">f4") and model.shape == (nfiber, npix), "MODEL image")
            check(len(zb) == nfiber and (zb["FIBERID"] == pm["FIBERID"]).all(), "spZbest FIBERID")
            check((zb["PLUG_RA"] == pm["RA"]).all() and (zb["PLUG_DEC"] == pm["DEC"]).all(), "spZbest positions")
            cls = [c.strip() for c in zb["CLASS"].astype(str)]
            frac = {c: cls.count(c) / len(cls) for c in ("GALAXY", "QSO", "STAR")}
            zw0 = float((zb["ZWARNING"] == 0).mean())
            zs = {c: (float(zb["Z"][np.array(cls) == c].min()), float(zb["Z"][np.array(cls) == c].max()))
                  for c in frac if frac[c] > 0}
            print("  classes", {k: round(v, 3) for k, v in frac.items()}, "zwarning=0:", round(zw0, 3),
                  "z ranges", zs, "median SN_MEDIAN_ALL", float(np.median(zb["SN_MEDIAN_ALL"])))
            check(zb.dtype["SPECPRIMARY"] == np.dtype("u1"), "SPECPRIMARY is B")
        with fits.open(os.path.join(d, f"spZline-{stem}.fits")) as z:
            check([x.name for x in z] == ["PRIMARY", "ZLINE"], "spZline HDUs")
            check_columns(z[1], ZLINE_REQUIRED, "spZline")
            zl = np.array(z[1].data)
            check(len(zl) % nfiber == 0, "spZline rows per fiber")
        specs = sorted(glob.glob(os.path.join(d, f"spec-{stem}-*.fits")))
        nspec = 0
        npix_seen = set()
        nexp_fibers = 0
        for sp in specs[:max_spec]:
            nspec += 1
            fiber = int(sp[-9:-5])
            i = fiber - 1
            with fits.open(sp) as s:
                names = [x.name for x in s]
                check(names[:4] == ["PRIMARY", "COADD", "SPALL", "SPZLINE"], f"{sp}: HDUs {names}")
                h0 = s[0].header
                check(h0["PLATEID"] == plate and h0["MJD"] == mjd and h0["FIBERID"] == fiber
                      and h0["COEFF0"] == c0 and h0["COEFF1"] == c1 and h0["RUN2D"] == "v5_7_0"
                      and h0["PLUG_RA"] == pm["RA"][i] and h0["PLUG_DEC"] == pm["DEC"][i], f"{sp}: header")
                check_columns(s[1], COADD, f"{sp} COADD", exact=True)
                co = s[1].data
                n = len(co)
                npix_seen.add(n)
                good = np.nonzero(img["ivar"][i] > 0)[0]
                first, end = good[0], good[-1] + 1
                check(n == end - first, f"{sp}: {n} pixels, spPlate good range {first}..{end}")
                check(co["ivar"][0] > 0 and co["ivar"][-1] > 0, f"{sp}: ends trimmed")
                idx = np.arange(first, end)
                check(np.array_equal(co["loglam"], np.float32(c0 + c1 * idx)), f"{sp}: loglam")
                for col in ["flux", "ivar", "and_mask", "or_mask", "wdisp", "sky"]:
                    a = np.asarray(co[col]).astype(img[col].dtype.newbyteorder("="))
                    b = img[col][i, first:end].astype(a.dtype)
                    check(a.tobytes() == b.tobytes(), f"{sp}: {col} differs from spPlate")
                check(np.asarray(co["model"]).astype("<f4").tobytes() == model[i, first:end].astype("<f4").tobytes(),
                      f"{sp}: model differs from spZbest")
                check_columns(s[2], SPALL_REQUIRED, f"{sp} SPALL")
                sa = s[2].data
                check(len(sa) == 1, f"{sp}: SPALL rows")
                for k in ["PLATE", "MJD", "FIBERID", "PLUG_RA", "PLUG_DEC", "Z", "Z_ERR", "ZWARNING",
                          "SN_MEDIAN_ALL", "CLASS", "SUBCLASS", "OBJTYPE"]:
                    check(norm(sa[k][0]) == norm(zb[k][i]), f"{sp}: SPALL {k} {sa[k][0]} != spZbest {zb[k][i]}")
                check(sa["SPECPRIMARY"][0] == zb["SPECPRIMARY"][i], f"{sp}: SPECPRIMARY")
                zrows = zl[zl["FIBERID"] == fiber]
                check(np.array_equal(np.array(s[3].data), zrows), f"{sp}: SPZLINE rows")
                exps = names[4:]
                if exps:
                    nexp_fibers += 1
                    spg = pm["SPECTROGRAPHID"][i]
                    check(len(exps) == 4, f"{sp}: {len(exps)} exposure HDUs")
                    for e in exps:
                        cam, expid, flat, arc = e.split("-")
                        check(cam in (f"B{spg}", f"R{spg}") and len(expid) == 8 and len(flat) == 8
                              and len(arc) == 8, f"{sp}: exposure name {e}")
                        check_columns(s[e], EXPOSURE, f"{sp} {e}", exact=True)
                        ll = s[e].data["loglam"]
                        if cam[0] == "B":
                            check(1990 <= len(ll) <= 2010 and abs(ll[0] - 3.5528) < 0.001, f"{sp} {e}: blue grid")
                        else:
                            check(2490 <= len(ll) <= 2510 and abs(ll[-1] - 4.02) < 0.001, f"{sp} {e}: red grid")
        if specs:
            print(f"  {nspec} spec files checked, {len(npix_seen)} distinct NPIX "
                  f"({min(npix_seen)}..{max(npix_seen)}), {nexp_fibers} with exposures")
    print("FAILURES:", len(failures))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
