#!/usr/bin/env python3
"""The naive Python way to the same Parquet file, timed beside boss-query's export in bench/run:
read an HDF5 subset (v1 layout, `boss-query -o SUBSET.h5`) with h5py, one coadd per fiber, and write
one row per fiber with a list column per coadd field with pyarrow, as a user would write it.

    bench/h5py_export.py SUBSET.h5 OUT.parquet|OUT.arrow

Prints the seconds it took (the file is fsynced, as ours is).
"""

import os
import sys
import time

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

FIELDS = ["WAVE", "FLUX", "IVAR", "AND_MASK", "OR_MASK", "WAVEDISP", "SKY", "MODEL"]


def main():
    src, dst = sys.argv[1], sys.argv[2]
    start = time.perf_counter()
    keys, columns = [], {f: [] for f in FIELDS}
    with h5py.File(src, "r") as f:
        for plate in sorted(f, key=int):
            for mjd in sorted(f[plate], key=int):
                group = f[plate][mjd]
                for fiber in sorted((k for k in group if k.isdigit()), key=int):
                    coadd = group[fiber]["coadd"][()]
                    keys.append((int(plate), int(mjd), int(fiber)))
                    for name in FIELDS:
                        columns[name].append(coadd[name])
    table = pa.table({
        "plate": pa.array([k[0] for k in keys], pa.int32()),
        "mjd": pa.array([k[1] for k in keys], pa.int32()),
        "fiber": pa.array([k[2] for k in keys], pa.int32()),
        **{name.lower(): pa.array(values, pa.list_(pa.from_numpy_dtype(np.asarray(values[0]).dtype)))
           for name, values in columns.items()},
    })
    if dst.endswith(".arrow"):
        feather.write_feather(table, dst, compression="uncompressed")
    else:
        pq.write_table(table, dst)
    fd = os.open(dst, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    print(f"{time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
