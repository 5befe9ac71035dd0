"""boss-synth's SDSS-V (DR19) files follow the SDSS data model exactly — checked against the data
model's own YAML (formats/sdss-v/*.yaml) with astropy, and read with specutils' "SDSS-V spec"
loader — and their values are consistent with each other: spec COADD = the spField/spZbest rows,
SPALL = the spAll row, ZLINE = the spZline rows, SPECOBJID = (SDSS_ID, FIELD, MJD, coadd, tag), in
the trees of the daily, epoch and all-epoch coadds."""

import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from astropy.io import fits

from conftest import REPO_ROOT, run

MODELS = REPO_ROOT / "formats" / "sdss-v"
# FITS TFORM letters of the data model's types.
TFORM = {"bool": "L", "int16": "I", "int32": "J", "int64": "K", "float32": "E", "float64": "D",
         "char": "A"}
STRUCTURAL = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "XTENSION", "PCOUNT",
              "GCOUNT", "TFIELDS", "EXTNAME", "CHECKSUM", "DATASUM", "COMMENT", "HISTORY", ""}
STRUCTURAL_RE = re.compile(r"^(TTYPE|TFORM|TUNIT|TSCAL|TZERO)\d+$")
NAME = re.compile(r"^spec-(\d{6}|allepoch_apo)-(\d{5})-(\d+)\.fits$")
NEXP = 2          # exposures per field-MJD
EXPOSED = 3       # --exposures: targets 1..3 of full files carry the exposure HDUs
TARGETS = 4
SPALL_ROWS = 20
COADD_ID = {"daily": "00", "epoch": "01", "allepoch": "03"}


def load_model(name: str) -> list:
    hdus = yaml.safe_load((MODELS / name).read_text())["releases"]["DR19"]["hdus"]
    return list(hdus.values())


@pytest.fixture(scope="module")
def models():
    return {kind: load_model(f"{kind}-DR19.yaml")
            for kind in ("specFull", "spField", "spZbest", "spZline", "spAll", "spAll-lite")}


def expected_tform(ty: str) -> str:
    base, _, count = ty.partition("[")
    count = count.rstrip("]")
    letter = TFORM[base]
    if letter == "A":
        return f"{count or 1}A"
    return f"{count}{letter}" if count else letter


def applies(key: str) -> bool:
    """The model's cards that enumerate exposures, for the NEXP exposures that exist."""
    m = re.fullmatch(r"EXPID(\d\d)", key)
    if m:
        return 1 <= int(m.group(1)) <= 2 * NEXP
    m = re.fullmatch(r"(SNC\d\d|SN2_\d)[GRI](\d\d)", key)
    if m:
        return int(m.group(2)) < NEXP
    return True


def exposure_model(model: list, e: int) -> dict:
    """The model's HDU of exposure e: the example's HDU of that number, the last one its last."""
    exposures = model[5:]
    return exposures[-1] if e == NEXP - 1 else exposures[min(e, len(exposures) - 2)]


def check_hdu(hdu, m: dict, where: str, char_at_least: bool = False):
    """An HDU follows the model's HDU: kind, EXTNAME, header keys, columns, TFORMs, TUNITs."""
    assert hdu.is_image == m["is_image"], where
    want_name = m["name"] or ""
    if want_name and want_name != "PRIMARY" and not want_name.startswith("MJD_EXP_"):
        assert hdu.header.get("EXTNAME") == want_name, where
    if not want_name:
        assert "EXTNAME" not in hdu.header, where
    keys = {c["key"] for c in m["header"]} - STRUCTURAL
    keys = {k for k in keys if not STRUCTURAL_RE.match(k) and applies(k)}
    missing = sorted(k for k in keys if k not in hdu.header)
    assert not missing, f"{where} lacks {missing[:10]}"
    if m["is_image"]:
        return
    cols = list(m["columns"].values())
    assert hdu.columns.names == [c["name"] for c in cols], where
    units = {c["key"]: c["value"] for c in m["header"] if re.match(r"^TUNIT\d+$", c["key"])}
    for n, (col, want) in enumerate(zip(hdu.columns, cols), start=1):
        tform = expected_tform(want["type"])
        if char_at_least and tform.endswith("A"):
            assert col.format.endswith("A") and int(col.format[:-1]) >= int(tform[:-1]), \
                (where, col.name)
        else:
            assert col.format == tform, (where, col.name, col.format, tform)
        unit = units.get(f"TUNIT{n}", want.get("unit") or "")
        assert (col.unit or "") == unit, (where, col.name, col.unit, unit)


def synth(synth_bin, out, flavor, coadd="daily", plates=2, extra=()):
    run([synth_bin, "--flavor", flavor, "--coadd", coadd, "--plates", str(plates), "--fibers",
         str(TARGETS), "--npix", "4648", "--first-plate", "15000", "--seed", "3", "--spec-files",
         "--exposures", str(EXPOSED) if flavor == "sdss5" else "0", "--spall-rows",
         str(SPALL_ROWS), "--out", out, *extra], check=True, timeout=300)


@pytest.fixture(scope="module", params=["sdss5", "sdss5-lite"])
def sdss5_files(request, synth_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    synth(synth_bin, out, request.param)
    files = sorted(out.rglob("spec-*.fits"))
    assert len(files) == 2 * TARGETS, files
    return request.param, out, files


@pytest.fixture(scope="module", params=["epoch", "allepoch"])
def coadd_files(request, synth_bin, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    synth(synth_bin, out, "sdss5", coadd=request.param)
    return request.param, out


def group_files(out, field: str, mjd: int, epoch: bool = False):
    base = out / field / "epoch" if epoch else out / field
    return (base / f"spField-{field}-{mjd}.fits", base / "v6_1_3" / f"spZbest-{field}-{mjd}.fits",
            base / "v6_1_3" / f"spZline-{field}-{mjd}.fits")


def decode_specobjid(s: str) -> dict:
    """idlspec2d's specobjid.decode_V."""
    return {"sdss_id": int(s[:-20]), "field": int(s[-20:-13]), "mjd": int(s[-13:-8]),
            "coadd": s[-8:-6], "tag": s[-6:]}


def test_datamodel_json_is_generated_from_the_yaml():
    proc = subprocess.run([sys.executable, REPO_ROOT / "scripts" / "sdss5-datamodel.py", "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_files_are_named_and_placed_as_sdss_distributes_them(sdss5_files):
    flavor, out, files = sdss5_files
    kind = "lite" if flavor.endswith("lite") else "full"
    for f in files:
        m = NAME.match(f.name)
        assert m, f.name
        field, mjd, _ = m.groups()
        assert f.parent == out / "spectra" / kind / field / mjd
    assert {NAME.match(f.name).group(1) for f in files} == {"015000", "015001"}
    for field, mjd in (("015000", 60000), ("015001", 60007)):
        for path in group_files(out, field, mjd):
            assert path.is_file(), path
    assert (out / "spAll-v6_1_3.fits").is_file() and (out / "spAll-lite-v6_1_3.fits").is_file()


def test_hdus_columns_types_and_units_follow_the_data_model(sdss5_files, models):
    flavor, _, files = sdss5_files
    model = models["specFull"]
    for path in files:
        with fits.open(path) as h:
            mjd = h[0].header["MJD"]
            target_index = h["SPALL"].data["TARGET_INDEX"][0]
            names = [x.name for x in h]
            fixed = [m["name"] for m in model[:5]]
            exposed = not flavor.endswith("lite") and target_index <= EXPOSED
            exposures = [f"MJD_EXP_{mjd}-{e:02d}" for e in range(NEXP)] if exposed else []
            assert names == fixed + exposures, path
            for i, hdu in enumerate(h):
                m = model[i] if i < 5 else exposure_model(model, i - 5)
                check_hdu(hdu, m, f"{path.name}[{hdu.name}]")


def test_field_files_follow_the_data_model(sdss5_files, models):
    _, out, _ = sdss5_files
    for field, mjd in (("015000", 60000), ("015001", 60007)):
        for path, kind in zip(group_files(out, field, mjd), ("spField", "spZbest", "spZline")):
            with fits.open(path) as h:
                model = models[kind]
                assert len(h) == len(model), path
                for hdu, m in zip(h, model):
                    check_hdu(hdu, m, f"{path.name}[{hdu.name}]")
                    if m["is_image"] and hdu.data is not None:
                        assert hdu.data.shape == (TARGETS, 4648)
                assert h[0].header["FIELDID"] == str(int(field)) and h[0].header["MJD"] == mjd
    for name, kind in (("spAll-v6_1_3.fits", "spAll"), ("spAll-lite-v6_1_3.fits", "spAll-lite")):
        with fits.open(out / name) as h:
            assert len(h) == 2
            for hdu, m in zip(h, models[kind]):
                check_hdu(hdu, m, f"{name}[{hdu.name}]")
            assert len(h[1].data) == SPALL_ROWS


def test_values_are_consistent(sdss5_files):
    flavor, _, files = sdss5_files
    catalogids = set()
    for path in files:
        field, mjd, catalogid = (int(x) for x in NAME.match(path.name).groups())
        with fits.open(path) as h:
            p = h[0].header
            assert (int(p["FIELDID"]), p["MJD"]) == (field, mjd)
            assert p["RUN2D"] == "v6_1_3" and p["VERS2D"] == "v6_1_3"
            assert p["NEXP"] == NEXP and p["EXPID04"].startswith("r1-") and "EXPID05" not in p
            coadd = h["COADD"].data
            n = len(coadd)
            assert n == 4648
            want = (p["COEFF0"] + p["COEFF1"] * np.arange(n)).astype(np.float32)
            np.testing.assert_array_equal(coadd["LOGLAM"], want)
            assert np.all(coadd["WRESL"] > 0) and np.all(coadd["IVAR"] >= 0)
            spall = h["SPALL"].data
            assert len(spall) == 1
            assert h["SPALL"].columns["CATALOGID"].format == "K"
            assert (spall["FIELD"][0], spall["MJD"][0], spall["CATALOGID"][0]) == (field, mjd, catalogid)
            assert spall["SPEC_FILE"][0] == path.name
            assert catalogid > 2**53, "CATALOGIDs are 64-bit (beyond a float64's integers)"
            assert (p["PLUG_RA"], p["PLUG_DEC"]) == (spall["PLUG_RA"][0], spall["PLUG_DEC"][0])
            ti = spall["TARGET_INDEX"][0]
            for t in ("ZALL", "ZLINE"):
                d = h[t].data
                assert len(d) > 0
                assert set(d["CATALOGID"]) == {catalogid} and set(d["FIELD"]) == {field}
                assert set(d["TARGET_INDEX"]) == {ti} and set(d["SDSS_ID"]) == {spall["SDSS_ID"][0]}
            zall = h["ZALL"].data
            assert len(zall) == 3
            assert spall["Z"][0] == zall["Z"][0] and spall["CLASS"][0] == zall["CLASS"][0]
            assert np.all(np.diff(zall["RCHI2"]) >= 0), "ZALL lists the best fit first"
            assert len(h["ZLINE"].data) == 32
            sid = decode_specobjid(spall["SPECOBJID"][0])
            assert sid == {"sdss_id": spall["SDSS_ID"][0], "field": field, "mjd": mjd,
                           "coadd": "00", "tag": "060103"}
            for e, x in enumerate(h[5:]):
                assert x.header["MJD"] == mjd and len(x.data) == n
                assert x.header["EXPOSURE"] == int(p[f"EXPID{e + 1:02d}"].split("-")[1])
                np.testing.assert_array_equal(x.data["LOGLAM"], want)
                assert not np.array_equal(x.data["FLUX"], coadd["FLUX"])
            catalogids.add(catalogid)
    assert len(catalogids) == len(files)


def test_spec_files_equal_the_field_files(sdss5_files):
    """COADD = the spField/spZbest image rows bit for bit; SPALL = the spAll row; ZLINE = the
    spZline rows; spZbest and the plug map agree with SPALL."""
    _, out, files = sdss5_files
    with fits.open(out / "spAll-v6_1_3.fits") as a, fits.open(out / "spAll-lite-v6_1_3.fits") as lite:
        spall_all = a[1].data.copy()
        spall_lite = lite[1].data.copy()
    for path in files:
        field, mjd, catalogid = NAME.match(path.name).groups()
        spfield, spzbest, spzline = group_files(out, field, int(mjd))
        with fits.open(path) as s, fits.open(spfield) as f, fits.open(spzbest) as z, \
                fits.open(spzline) as zl:
            spall = s["SPALL"].data
            ti = spall["TARGET_INDEX"][0]
            r = ti - 1
            coadd = s["COADD"].data
            for col, hdu in (("FLUX", 0), ("IVAR", "IVAR"), ("AND_MASK", "ANDMASK"),
                             ("OR_MASK", "ORMASK"), ("WDISP", "WAVEDISP"), ("SKY", "SKY"),
                             ("WRESL", "SPECRESL")):
                np.testing.assert_array_equal(coadd[col], f[hdu].data[r], err_msg=col)
            np.testing.assert_array_equal(coadd["MODEL"], z[2].data[r])
            plug = f["PLUGMAP"].data
            assert plug["TARGET_INDEX"][r] == ti and plug["CATALOGID"][r] == catalogid
            assert plug["ICATALOGID"][r] == int(catalogid)
            assert plug["SDSS_ID"][r] == spall["SDSS_ID"][0]
            assert abs(plug["RA"][r] - spall["FIBER_RA"][0]) < 1e-9
            zb = z[1].data
            assert zb["TARGET_INDEX"][r] == ti and zb["CATALOGID"][r] == int(catalogid)
            for col in ("FIELD", "MJD", "Z", "Z_ERR", "CLASS", "ZWARNING", "SDSS_ID", "RCHI2"):
                assert zb[col][r] == spall[col][0], col
            assert z[1].columns["SPECOBJID"].bzero == 2**63
            assert (int(zb["SPECOBJID"][r]) >> 50) == int(field)
            lines = zl[1].data[zl[1].data["TARGET_INDEX"] == ti]
            zline = s["ZLINE"].data
            assert len(lines) == len(zline) == 32
            for col in zline.columns.names:
                np.testing.assert_array_equal(zline[col], lines[col], err_msg=col)
            row = spall_all[(spall_all["CATALOGID"] == int(catalogid))]
            assert len(row) == 1
            for col in spall.columns.names:
                a, b = spall[col][0], row[col][0]
                if col == "SDSS5_TARGET_FLAGS":
                    assert list(a) == list(b[:len(a)]) and not any(b[len(a):])
                elif isinstance(a, str):
                    assert a.strip() == b.strip(), col
                else:
                    np.testing.assert_array_equal(a, b, err_msg=col)
            lrow = spall_lite[(spall_lite["CATALOGID"] == int(catalogid))]
            assert len(lrow) == 1
            for col in ("FIELD", "MJD", "TARGET_INDEX", "SDSS_ID", "Z", "CLASS", "SPECOBJID",
                        "SPEC_FILE", "FIBER_RA"):
                assert lrow[col][0] == spall[col][0], col
            assert lrow["ASSIGNED"][0] == 1 and lrow["MOON_DIST"][0] > 0


def test_spall_lists_the_targets_first_then_other_field_mjds(sdss5_files):
    _, out, files = sdss5_files
    for name in ("spAll-v6_1_3.fits", "spAll-lite-v6_1_3.fits"):
        with fits.open(out / name) as h:
            d = h[1].data
            assert len(d) == SPALL_ROWS
            assert list(d["FIELD"][:8]) == [15000] * 4 + [15001] * 4
            assert list(d["TARGET_INDEX"][:8]) == [1, 2, 3, 4] * 2
            assert set(d["SPEC_FILE"][:8]) == {f.name for f in files}
            assert all(d["FIELD"][8:] > 15001) and all(d["MJD"][8:] > 60007)
            assert len(set(d["CATALOGID"])) == SPALL_ROWS and len(set(d["SPECOBJID"])) == SPALL_ROWS
            assert set(d["CLASS"]) <= {"GALAXY", "QSO", "STAR"}
            assert np.all(np.abs(d["FIBER_DEC"]) <= 90) and np.all((d["FIBER_RA"] >= 0) & (d["FIBER_RA"] < 360))


def test_targets_look_real(sdss5_files):
    """Positions within ~1.5 deg of the field centre; classes with plausible redshifts."""
    _, out, _ = sdss5_files
    with fits.open(out / "015000" / "spField-015000-60000.fits") as f:
        ra0, dec0 = f[0].header["RA"], f[0].header["DEC"]
        plug = f["PLUGMAP"].data
        dra = (plug["RA"] - ra0 + 180) % 360 - 180
        sep = np.hypot(dra * np.cos(np.radians(dec0)), plug["DEC"] - dec0)
        assert np.all(sep < 1.6)
    with fits.open(out / "spAll-v6_1_3.fits") as h:
        d = h[1].data
        for cls, z in zip(d["CLASS"], d["Z"]):
            assert {"GALAXY": 0 <= z < 1.0, "QSO": 0.4 < z < 4.5, "STAR": abs(z) < 0.01}[cls]


def test_epoch_and_allepoch_trees_and_names(coadd_files, models):
    coadd, out = coadd_files
    if coadd == "epoch":
        field_strs, fields, epoch = ["015000", "015001"], [15000, 15001], True
        spec_root = out / "epoch" / "spectra" / "full"
    else:
        field_strs, fields, epoch = ["allepoch_apo"] * 2, [0, 0], False
        spec_root = out / "spectra" / "full"
    for field_str, field, mjd in zip(field_strs, fields, (60000, 60007)):
        for path in group_files(out, field_str, mjd, epoch=epoch):
            assert path.is_file(), path
            with fits.open(path) as h:
                assert h[0].header["FIELDID"] == (field_str if field == 0 else str(field))
                assert h[0].header["MJD"] == mjd
        specs = sorted((spec_root / field_str / str(mjd)).glob(f"spec-{field_str}-{mjd}-*.fits"))
        assert len(specs) == TARGETS, specs
        for path in specs:
            with fits.open(path) as h:
                spall = h["SPALL"].data
                assert spall["FIELD"][0] == field and spall["MJD"][0] == mjd
                assert spall["SPEC_FILE"][0] == path.name
                assert set(h["ZLINE"].data["FIELD"]) == {field}
                sid = decode_specobjid(spall["SPECOBJID"][0])
                assert (sid["field"], sid["mjd"], sid["coadd"]) == (field, mjd, COADD_ID[coadd])
                for i, hdu in enumerate(h[:5]):
                    check_hdu(hdu, models["specFull"][i], f"{path.name}[{hdu.name}]",
                              char_at_least=True)
    with fits.open(out / "spAll-v6_1_3.fits") as h:
        d = h[1].data
        assert len(d) == SPALL_ROWS
        if coadd == "allepoch":
            assert set(d["FIELD"]) == {0}
        assert {decode_specobjid(s)["coadd"] for s in d["SPECOBJID"]} == {COADD_ID[coadd]}


def test_the_same_seed_writes_the_same_bytes(synth_bin, tmp_path):
    for name in ("a", "b"):
        run([synth_bin, "--flavor", "sdss5", "--plates", "1", "--fibers", "3", "--npix", "500",
             "--spec-files", "--exposures", "1", "--spall-rows", "5", "--out", tmp_path / name],
            check=True)
    a = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.fits"))
    b = sorted(p.relative_to(tmp_path / "b") for p in (tmp_path / "b").rglob("*.fits"))
    assert a == b and len(a) == 3 + 3 + 2
    for rel in a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel


@pytest.mark.parametrize("args, message", [
    (["--flavor", "boss", "--plates", "1", "--coadd", "epoch"], "--coadd is only for"),
    (["--flavor", "sdss5", "--first-plate", "999999", "--plates", "2"], "at most 6 digits"),
    (["--flavor", "sdss5-lite", "--plates", "1", "--spec-files", "--exposures", "2"],
     "no --exposures"),
    (["--flavor", "sdss5", "--plates", "1", "--fibers", "10000"], "--fibers must be in 1..=9999"),
    (["--flavor", "sdss5", "--plates", "0"], "--plates must be at least 1"),
    (["--flavor", "sdss5", "--plates", "1", "--coadd", "weekly"], "invalid value"),
])
def test_bad_arguments_are_errors_not_panics(synth_bin, tmp_path, args, message):
    base = ["--npix", "200", "--out", tmp_path / "o"]
    proc = run([synth_bin, *base, *args])
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr


def test_specutils_sdss5_loader_reads_them(sdss5_files):
    import specutils
    spectrum_cls = getattr(specutils, "Spectrum", None) or specutils.Spectrum1D
    _, _, files = sdss5_files
    for path in files:
        with fits.open(path) as h:
            coadd = h["COADD"].data
            s = spectrum_cls.read(path, format="SDSS-V spec", hdu=1)
            np.testing.assert_array_equal(s.flux.value, coadd["FLUX"])
            np.testing.assert_allclose(s.spectral_axis.to_value("Angstrom"),
                                       10.0 ** coadd["LOGLAM"].astype(np.float64), rtol=1e-6)
            np.testing.assert_array_equal(s.uncertainty.array, coadd["IVAR"])
            listed = specutils.SpectrumList.read(path, format="SDSS-V spec")
            assert len(listed) == 1 + (len(h) - 5)
