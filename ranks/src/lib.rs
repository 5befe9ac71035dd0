//! MPI plumbing shared by the binaries: start-up (works under mpirun/srun and as a plain process),
//! abort of the whole job on a panic, small gathers of summaries, and balanced partitions of work.

use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Threading;
use serde::{de::DeserializeOwned, Serialize};

/// The MPI job this process is part of. Drop every HDF5 handle before it: its drop finalises MPI.
/// A job started without a launcher by [`Job::init_if_launched`] has no MPI at all: one rank, and
/// every collective is trivial.
pub struct Job {
    world: Option<SimpleCommunicator>,
    _universe: Option<Universe>,
}

/// Environment variables set by the launchers we know (Open MPI's mpirun, PMIx, MPICH/Hydra, Slurm).
const LAUNCHER_VARS: &[&str] = &[
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "PMI_SIZE",
    "SLURM_STEP_NUM_TASKS",
];

impl Job {
    /// Initialises MPI (funneled: MPI and MPI-IO calls stay on the main thread) and makes a panic on
    /// any rank abort the whole job instead of leaving the other ranks waiting in a collective.
    pub fn init() -> Self {
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .expect("MPI is initialised once, at start-up");
        let world = universe.world();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            // SAFETY: MPI is initialised; MPI_Abort never returns.
            unsafe { mpi::ffi::MPI_Abort(mpi::ffi::RSMPI_COMM_WORLD, 101) };
        }));
        Self {
            world: Some(world),
            _universe: Some(universe),
        }
    }

    /// Initialises MPI when the process was started by a launcher (mpirun, srun, …); a plain process
    /// runs as a single rank without MPI, saving the start-up of an MPI singleton (≈1 s with Open MPI).
    pub fn init_if_launched() -> Self {
        if LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
            Self::init()
        } else {
            Self {
                world: None,
                _universe: None,
            }
        }
    }

    /// The MPI communicator of all ranks, None for a job without MPI.
    pub fn mpi_world(&self) -> Option<&SimpleCommunicator> {
        self.world.as_ref()
    }

    /// The MPI communicator of all ranks (only for jobs started with [`Job::init`]).
    pub fn world(&self) -> &SimpleCommunicator {
        self.world.as_ref().expect("this job was started with MPI")
    }

    pub fn rank(&self) -> usize {
        self.world.as_ref().map_or(0, |w| w.rank() as usize)
    }

    pub fn size(&self) -> usize {
        self.world.as_ref().map_or(1, |w| w.size() as usize)
    }

    /// Rank 0 prints the human messages.
    pub fn is_root(&self) -> bool {
        self.rank() == 0
    }

    /// Ends every rank of the job at once with this exit code.
    pub fn abort(&self, code: i32) -> ! {
        match &self.world {
            Some(w) => w.abort(code),
            None => std::process::exit(code),
        }
    }

    pub fn barrier(&self) {
        if let Some(w) = &self.world {
            w.barrier();
        }
    }

    /// Maximum of a value over all ranks, on every rank.
    pub fn max_f64(&self, value: f64) -> f64 {
        let Some(world) = &self.world else {
            return value;
        };
        let mut out = 0.0;
        world.all_reduce_into(&value, &mut out, mpi::collective::SystemOperation::max());
        out
    }

    /// Sum of a value over all ranks, on every rank.
    pub fn sum_u64(&self, value: u64) -> u64 {
        let Some(world) = &self.world else {
            return value;
        };
        let mut out = 0u64;
        world.all_reduce_into(&value, &mut out, mpi::collective::SystemOperation::sum());
        out
    }

    /// True on every rank when `flag` is true on any rank.
    pub fn any(&self, flag: bool) -> bool {
        self.sum_u64(u64::from(flag)) > 0
    }

    /// Gathers one small serialisable value per rank onto rank 0 (None on other ranks). For
    /// summaries and failure lists, not for bulk data.
    pub fn gather_to_root<T: Serialize + DeserializeOwned>(&self, value: &T) -> Option<Vec<T>> {
        let bytes = serde_json::to_vec(value).expect("summaries serialise");
        let Some(world) = &self.world else {
            return Some(vec![serde_json::from_slice(&bytes).expect("our own JSON")]);
        };
        let root = world.process_at_rank(0);
        let count = bytes.len() as i32;
        if !self.is_root() {
            root.gather_into(&count);
            root.gather_varcount_into(&bytes[..]);
            return None;
        }
        let mut counts = vec![0i32; self.size()];
        root.gather_into_root(&count, &mut counts[..]);
        let displs = displacements(&counts);
        let mut all = vec![0u8; counts.iter().sum::<i32>() as usize];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            root.gather_varcount_into_root(&bytes[..], &mut partition);
        }
        Some(
            counts
                .iter()
                .zip(&displs)
                .map(|(&c, &d)| {
                    serde_json::from_slice(&all[d as usize..(d + c) as usize])
                        .expect("our own JSON")
                })
                .collect(),
        )
    }
}

impl Job {
    /// Every rank's items, concatenated in rank order, on every rank: the counts are exchanged
    /// first, then one `MPI_Allgatherv` moves the items as their MPI datatype (no serialisation).
    pub fn all_gather_varcount<T: Equivalence + Clone + Default>(&self, local: &[T]) -> Vec<T> {
        let Some(world) = &self.world else {
            return local.to_vec();
        };
        let count = local.len() as mpi::Count;
        let mut counts = vec![0 as mpi::Count; self.size()];
        world.all_gather_into(&count, &mut counts[..]);
        let displs = displacements(&counts);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        let mut all = vec![T::default(); total];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(local, &mut partition);
        }
        all
    }

    /// One small serialisable value per rank, on every rank (for per-plate descriptions, not records).
    pub fn all_gather_json<T: Serialize + DeserializeOwned>(&self, value: &T) -> Vec<T> {
        let bytes = serde_json::to_vec(value).expect("descriptions serialise");
        let Some(world) = &self.world else {
            return vec![serde_json::from_slice(&bytes).expect("our own JSON")];
        };
        let mut counts = vec![0 as mpi::Count; self.size()];
        world.all_gather_into(&(bytes.len() as mpi::Count), &mut counts[..]);
        let all = self.all_gather_varcount(&bytes);
        let displs = displacements(&counts);
        counts
            .iter()
            .zip(&displs)
            .map(|(&c, &d)| {
                serde_json::from_slice(&all[d as usize..(d + c) as usize]).expect("our own JSON")
            })
            .collect()
    }

    /// Rank 0's value of a u32, on every rank.
    pub fn broadcast_u32(&self, value: u32) -> u32 {
        let Some(world) = &self.world else {
            return value;
        };
        let mut v = value;
        world.process_at_rank(0).broadcast_into(&mut v);
        v
    }
}

/// Exclusive prefix sum of counts: where each rank's block starts.
pub fn displacements(counts: &[i32]) -> Vec<i32> {
    counts
        .iter()
        .scan(0, |acc, &c| {
            let d = *acc;
            *acc += c;
            Some(d)
        })
        .collect()
}

/// Assigns items to `parts` owners balancing the total weight (largest first onto the lightest
/// owner); deterministic, so every rank computes the same assignment. Returns the owner of each item.
pub fn partition_by_weight(weights: &[u64], parts: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(weights[i]), i));
    let mut load = vec![0u64; parts.max(1)];
    let mut owner = vec![0; weights.len()];
    for i in order {
        let lightest = (0..load.len()).min_by_key(|&p| (load[p], p)).unwrap_or(0);
        owner[i] = lightest;
        load[lightest] += weights[i].max(1);
    }
    owner
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_balance_weight() {
        let owner = partition_by_weight(&[10, 1, 1, 8, 2], 2);
        let load = |p| {
            owner
                .iter()
                .zip([10, 1, 1, 8, 2])
                .filter(|(&o, _)| o == p)
                .map(|(_, w)| w)
                .sum::<u64>()
        };
        assert_eq!(load(0) + load(1), 22);
        assert!(load(0).abs_diff(load(1)) <= 2);
        assert_eq!(partition_by_weight(&[5, 5], 1), vec![0, 0]);
        assert_eq!(displacements(&[3, 0, 2]), vec![0, 3, 3]);
    }
}
