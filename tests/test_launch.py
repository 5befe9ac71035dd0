"""How a query ends, whatever happens to its ranks, and how it is launched (issue 9):

- one rank killed (SIGKILL) in the middle of a query under mpirun: the job ends by itself, nothing
  appears under the output name, no temporary file is left;
- the same query launched by a real Slurm (`srun -n 2`, slurmctld + slurmd on this machine, started
  by tests/slurm/start-slurm.sh) gives an output h5diff-identical to `mpirun -n 2`;
- --json reports each rank's peak memory.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conftest import REPO_ROOT, mpi_env, run

START_SLURM = REPO_ROOT / "tests" / "slurm" / "start-slurm.sh"


@pytest.fixture(scope="module")
def synth_list(synth_query_store, tmp_path_factory) -> Path:
    """Every fiber of the generated query store, the spectra and exposures of 3 plate-MJDs."""
    lines = ["plate,mjd,fiber"]
    for path in sorted(synth_query_store.glob("*.h5")):
        plate, mjd = (int(x) for x in path.stem.split("-"))
        lines += [f"{plate},{mjd},{f}" for f in range(1, 61)]
    out = tmp_path_factory.mktemp("launch-lists") / "all.csv"
    out.write_text("\n".join(lines) + "\n")
    return out


@pytest.fixture(scope="module")
def big_store(synth_bin, ingest_bin, tmp_path_factory) -> Path:
    """6 plates x 500 fibers x 4600 pixels: a query of all of it writes ~440 MB (long enough to kill
    a rank in the middle)."""
    root = tmp_path_factory.mktemp("big")
    run([synth_bin, "--plates", "6", "--fibers", "500", "--npix", "4600", "--seed", "3", "--out",
         root / "fits"], check=True, timeout=600)
    run([ingest_bin, "--quiet", root / "fits", root / "store"], check=True, timeout=600)
    lst = root / "all.csv"
    lst.write_text("plate,mjd,fiber\n" + "".join(
        f"{5000 + i},{55000 + 7 * i},{f}\n" for i in range(6) for f in range(1, 501)))
    return root


def rank_pids(parent: int) -> dict[int, int]:
    """rank -> pid of the boss-query processes started by the mpirun `parent`."""
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if "boss-query" not in stat:
            continue
        for item in env:
            if item.startswith(b"OMPI_COMM_WORLD_RANK="):
                out[int(item.split(b"=", 1)[1])] = int(pid)
    return out


def kill_rank(proc: subprocess.Popen, victim: int) -> str:
    """SIGKILLs rank `victim` of the running `mpirun` `proc`; checks that the job then ends by itself,
    soon, and unsuccessfully; returns its stderr."""
    pids = rank_pids(proc.pid)
    assert victim in pids, f"no rank {victim} found: {pids}"
    os.kill(pids[victim], signal.SIGKILL)
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - start
    assert proc.returncode != 0, "a job with a killed rank must not succeed"
    assert took < 30, f"the job took {took:.1f} s to end after the kill"
    return err


@pytest.mark.mpi
@pytest.mark.parametrize("victim", [0, 1])
def test_killed_rank_leaves_nothing(query_bin, big_store, tmp_path, victim):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "q.h5"
    cmd = ["mpirun", "-n", "2", query_bin, "--store", big_store / "store", "--fibers", big_store / "all.csv",
           "-o", out]
    proc = subprocess.Popen([str(c) for c in cmd], env=mpi_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    # Wait until rank 0 has created the output under its temporary name: the write phase follows.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith(".q.h5.tmp-") for p in out_dir.iterdir()):
        time.sleep(0.005)
    err = kill_rank(proc, victim)
    assert not out.exists(), "nothing may appear under the final name"
    left = [p.name for p in out_dir.iterdir()]
    assert left == [], f"left behind: {left}\n{err}"


@pytest.fixture(scope="module")
def slurm():
    """A running single-node Slurm (started here if needed; installs slurm-wlm and munge)."""
    if os.geteuid() != 0:
        pytest.fail("the Slurm test starts slurmctld/slurmd and needs root")
    proc = run(["bash", START_SLURM], timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"could not start Slurm: {proc.stderr.strip().splitlines()[-1:]}")
    return True


@pytest.mark.mpi
def test_srun_gives_the_mpirun_output(slurm, query_bin, synth_query_store, synth_list, tmp_path):
    by_mpirun = tmp_path / "mpirun.h5"
    by_srun = tmp_path / "srun.h5"
    run(["mpirun", "-n", "2", query_bin, "--store", synth_query_store, "--fibers", synth_list,
         "-o", by_mpirun], check=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMPI_")}
    proc = run(["srun", "-n", "2", "--mpi=pmix", query_bin, "--store", synth_query_store, "--fibers",
                synth_list, "-o", by_srun, "--json"], env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["ranks"] == 2, "srun must start one job of 2 ranks, not 2 singletons"
    diff = run(["h5diff", by_mpirun, by_srun])
    assert diff.returncode == 0, diff.stdout


def test_json_reports_peak_memory_per_rank(query_bin, synth_query_store, synth_list, tmp_path):
    proc = run(["mpirun", "-n", "2", query_bin, "--store", synth_query_store, "--fibers", synth_list,
                "-o", tmp_path / "q.h5", "--json"], check=True)
    rss = json.loads(proc.stdout)["peak_rss_mb"]
    assert len(rss) == 2 and all(5 < r < 2000 for r in rss), rss
