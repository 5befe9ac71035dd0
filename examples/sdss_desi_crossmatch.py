#!/usr/bin/env python3
"""SDSS and DESI spectra of the same objects, found with a crossmatch, in one Parquet file, plotted
side by side.

    examples/sdss_desi_crossmatch.py WORKDIR [OUT.png]

Builds a store holding an SDSS plate (boss-synth) and a DESI HEALPix coadd whose targets sit at the
positions of some of the plate's fibers (tests/clients/desi_files.py, after the real DESI coadd in
data-samples/real/desi), then runs, as a user would:

    boss-query --store STORE --match targets.csv --radius 1arcsec --all-matches --parquet both.parquet

and plots, for each target, the SDSS spectrum (`wave`, `flux`) and the DESI one (`b_wave`/`b_flux`,
`r_…`, `z_…`) from that one file. With real data the first steps are `boss-ingest sdss/ desi/ store/`
and a targets.csv of the objects wanted (any CSV with ra, dec columns).
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# The binaries: BOSS_BIN_DIR if set (as for the tests), else this checkout's target/release.
BIN = Path(os.environ["BOSS_BIN_DIR"]) if os.environ.get("BOSS_BIN_DIR") else ROOT / "target" / "release"
sys.path.insert(0, str(ROOT / "tests" / "clients"))
import desi_files  # noqa: E402


def run(*cmd):
    print("$", " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True)


def main():
    work = Path(sys.argv[1])
    png = Path(sys.argv[2]) if len(sys.argv) > 2 else work / "sdss_desi.png"
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    run(BIN / "boss-synth", "--plates", "1", "--fibers", "40", "--npix", "4000", "--seed", "8", "--out", work / "sdss")
    run(BIN / "boss-ingest", work / "sdss", store)
    sdss = pd.read_parquet(store / "catalog.parquet")
    picked = sdss[sdss.ra.notna()].iloc[:3]
    picked = picked.astype({"ra": float, "dec": float})
    desi_files.write_pair(work / "desi", {"survey": "main", "program": "dark", "pixnum": 9557}, len(picked),
                          seed=8, ra=picked.ra.to_numpy(), dec=picked.dec.to_numpy())
    run(BIN / "boss-ingest", work / "desi", store)
    targets = work / "targets.csv"
    picked[["ra", "dec"]].assign(name=[f"object {i + 1}" for i in range(len(picked))]).to_csv(targets, index=False)
    both = work / "both.parquet"
    run(BIN / "boss-query", "--store", store, "--match", targets, "--radius", "1arcsec", "--all-matches",
        "--parquet", both)

    # Nullable integers keep 64-bit IDs exact (TARGETID is null on SDSS rows; as float64 it would round).
    df = pd.read_parquet(both, dtype_backend="numpy_nullable")
    print(df[["survey", "key", "ra", "dec", "class", "z"]].to_string(index=False))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(len(picked), 2, figsize=(12, 2.6 * len(picked)), squeeze=False)
    for row, (_, obj) in zip(axes, picked.iterrows()):
        near = df[(np.hypot(df.ra - obj.ra, df.dec - obj.dec) < 1 / 3600).fillna(False)]
        for _, s in near[near.survey != "desi"].iterrows():
            row[0].plot(s.wave, s.flux, lw=0.5, color="k")
            row[0].set_title(f"SDSS {s.plate}-{s.mjd}-{s.fiber}  ra {s.ra:.5f} dec {s.dec:.5f}", fontsize=9)
        for _, s in near[near.survey == "desi"].iterrows():
            for arm, color in zip("brz", ("tab:blue", "tab:red", "tab:brown")):
                row[1].plot(s[f"{arm}_wave"], s[f"{arm}_flux"], lw=0.5, color=color)
            row[1].set_title(f"DESI TARGETID {s.TARGETID}  z {s.z:.3f} {s['class']}", fontsize=9)
        for ax in row:
            ax.set_xlabel("wavelength (Å)")
            ax.set_ylabel("flux (1e-17 erg/s/cm²/Å)")
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    print(f"wrote {png}")


if __name__ == "__main__":
    main()
