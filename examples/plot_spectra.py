#!/usr/bin/env python3
"""Plot a few spectra from a boss-query Parquet export.

    python examples/plot_spectra.py OUT.parquet [out.png] [N]

Opens the export with pandas (one row per fiber: the catalog columns plate, mjd, fiber, class, z, ...
and one array per spectral column: wave, flux, ivar, ...), takes the N spectra (default 4) with the best
median S/N, and draws flux against wavelength, smoothed, with the usual emission lines at each
redshift, into a PNG (default spectra.png). Needs pandas, pyarrow, numpy and matplotlib.
"""

import sys

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

# Rest-frame vacuum wavelengths (Å) of a few strong lines.
LINES = {"Lyα": 1215.67, "Si IV": 1396.76, "C IV": 1549.06, "C III]": 1908.73, "Mg II": 2799.12, "[O II]": 3728.48,
         "Hβ": 4862.68, "[O III]": 5008.24, "Hα": 6564.61}


def smooth(flux, ivar, width=9):
    """Inverse-variance weighted boxcar; pixels with ivar = 0 (masked) carry no weight."""
    kernel = np.ones(width)
    w = np.convolve(ivar, kernel, mode="same")
    fw = np.convolve(flux * ivar, kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(w > 0, fw / w, np.nan)


def main(path, out="spectra.png", n=4):
    df = pd.read_parquet(path)
    missing = {"wave", "flux", "ivar"} - set(df.columns)
    if missing:
        sys.exit(f"{path} has no column(s) {sorted(missing)}: export them (--columns wave,flux,ivar)")
    if df.empty:
        sys.exit(f"{path} holds no spectra")
    df = df.sort_values("sn_median_all", ascending=False, na_position="last").head(n)

    fig, axes = plt.subplots(len(df), 1, figsize=(10, 2.6 * len(df)), squeeze=False)
    for ax, (_, row) in zip(axes[:, 0], df.iterrows()):
        wave = np.asarray(row["wave"], dtype=float)
        flux = np.asarray(row["flux"], dtype=float)
        ivar = np.asarray(row["ivar"], dtype=float)
        good = ivar > 0
        ax.plot(wave, np.where(good, flux, np.nan), color="0.75", lw=0.5)
        smoothed = smooth(flux, ivar)
        ax.plot(wave, smoothed, color="C0", lw=0.9)
        if good.any():  # room for the line labels above the highest smoothed peak
            lo, hi = np.nanpercentile(flux[good], 1), np.nanmax(smoothed)
            ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.2 * (hi - lo))
        ax.set_xlim(wave.min(), wave.max())
        z = row["z"]
        if pd.notna(z):
            for name, rest in LINES.items():
                obs = rest * (1 + z)
                if wave.min() < obs < wave.max():
                    ax.axvline(obs, color="C3", lw=0.6, ls=":")
                    ax.text(obs, 0.97, name, color="C3", fontsize=7, ha="center", va="top",
                            transform=ax.get_xaxis_transform(),
                            bbox=dict(facecolor="white", edgecolor="none", pad=1))
        cls = row["class"] if pd.notna(row["class"]) else "?"
        ztxt = f"z = {z:.3f}" if pd.notna(z) else "z unknown"
        ax.set_title(f"{row['plate']}-{row['mjd']}-{row['fiber']:04d}   {cls}   {ztxt}", fontsize=10, loc="left")
        ax.set_ylabel("flux\n[1e-17 erg/s/cm²/Å]", fontsize=8)
    axes[-1, 0].set_xlabel("observed wavelength [Å]")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"{out}: {len(df)} spectra from {path}")


if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    main(sys.argv[1], *(sys.argv[2:3] or []), *([int(sys.argv[3])] if len(sys.argv) > 3 else []))
