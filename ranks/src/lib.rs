//! MPI plumbing shared by the binaries: start-up (works under mpirun/srun and as a plain process),
//! abort of the whole job on a panic or a fatal error, the exchanges the tools need (fixed-size
//! records as MPI datatypes, everything else in a binary encoding that keeps every float bit), and
//! balanced partitions of work.
//!
//! Byte buffers travel with 64-bit lengths and in blocks of at most [`BLOCK`] bytes, so no count
//! wraps past 2 GiB.

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

/// Largest block of bytes moved by one MPI call (well below `i32::MAX`).
pub const BLOCK: usize = 1 << 30;

/// Environment variables set by the launchers we know (Open MPI's mpirun, PMIx, MPICH/Hydra, Slurm).
const LAUNCHER_VARS: &[&str] = &[
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "PMI_SIZE",
    "SLURM_STEP_NUM_TASKS",
];

/// An exchange failed (a value that does not decode, or a count beyond what MPI can address).
#[derive(Debug, thiserror::Error)]
pub enum ExchangeError {
    #[error("cannot encode a value to send to the other ranks: {0}")]
    Encode(postcard::Error),
    #[error("cannot decode a value received from rank {rank}: {source}")]
    Decode {
        rank: usize,
        #[source]
        source: postcard::Error,
    },
    #[error("{what}: {count} items are more than one MPI exchange can address")]
    TooMany { what: &'static str, count: usize },
}

impl Job {
    /// Initialises MPI (funneled: MPI and MPI-IO calls stay on the main thread) and makes a panic on
    /// any rank abort the whole job instead of leaving the other ranks waiting in a collective.
    pub fn init() -> Self {
        single_node_defaults();
        let (universe, _) = mpi::initialize_with_threading(Threading::Funneled)
            .expect("MPI is initialised once, at start-up");
        let world = universe.world();
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            default_hook(info);
            model::atomic::remove_registered();
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
        if launched() {
            Self::init()
        } else {
            Self::single()
        }
    }

    /// A job of one rank without MPI (plain processes, tests).
    pub fn single() -> Self {
        Self {
            world: None,
            _universe: None,
        }
    }

    /// The MPI communicator of all ranks, None for a job without MPI.
    pub fn mpi_world(&self) -> Option<&SimpleCommunicator> {
        self.world.as_ref()
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

    /// Ends every rank of the job at once with this exit code, after removing this process's
    /// temporary files (the other ranks remove theirs when the launcher signals them).
    pub fn abort(&self, code: i32) -> ! {
        model::atomic::remove_registered();
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

    /// A barrier that waits without spinning: ranks that arrive early sleep (1 ms steps) instead of
    /// busy-polling in MPI, so they do not take a core from the rank still working (with more
    /// ranks than cores, Open MPI's polling would slow that rank down).
    pub fn quiet_barrier(&self) {
        let Some(w) = &self.world else { return };
        let mut req = w.immediate_barrier();
        loop {
            match req.test() {
                Ok(_) => return,
                Err(r) => {
                    req = r;
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
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

    /// Maximum of a value over all ranks, on every rank.
    pub fn max_u64(&self, value: u64) -> u64 {
        let Some(world) = &self.world else {
            return value;
        };
        let mut out = 0u64;
        world.all_reduce_into(&value, &mut out, mpi::collective::SystemOperation::max());
        out
    }

    /// Bitwise OR of a value over all ranks, on every rank.
    pub fn or_u32(&self, value: u32) -> u32 {
        let Some(world) = &self.world else {
            return value;
        };
        let mut out = 0u32;
        world.all_reduce_into(
            &value,
            &mut out,
            mpi::collective::SystemOperation::bitwise_or(),
        );
        out
    }

    /// True on every rank when `flag` is true on any rank.
    pub fn any(&self, flag: bool) -> bool {
        self.sum_u64(u64::from(flag)) > 0
    }

    /// Every rank's items, concatenated in rank order, on every rank: the counts are exchanged
    /// first, then one `MPI_Allgatherv` moves the items as their MPI datatype (no serialisation).
    pub fn all_gather_varcount<T: Equivalence + Clone + Default>(
        &self,
        local: &[T],
    ) -> Result<Vec<T>, ExchangeError> {
        let Some(world) = &self.world else {
            return Ok(local.to_vec());
        };
        let count = mpi_count(local.len(), "records")?;
        let mut counts = vec![0 as mpi::Count; self.size()];
        world.all_gather_into(&count, &mut counts[..]);
        let total: usize = counts.iter().map(|&c| c as usize).sum();
        mpi_count(total, "records of all ranks")?;
        let displs = displacements(&counts);
        let mut all = vec![T::default(); total];
        {
            let mut partition = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(local, &mut partition);
        }
        Ok(all)
    }

    /// Rank 0's items, on every rank (`MPI_Bcast` of the count, then of the items in blocks).
    pub fn broadcast_items<T: Equivalence + Clone + Default>(&self, root_items: Vec<T>) -> Vec<T> {
        let Some(world) = &self.world else {
            return root_items;
        };
        let root = world.process_at_rank(0);
        let mut n = root_items.len() as u64;
        root.broadcast_into(&mut n);
        let mut items = if self.is_root() {
            root_items
        } else {
            vec![T::default(); n as usize]
        };
        let per_block = (BLOCK / std::mem::size_of::<T>().max(1)).max(1);
        for chunk in items.chunks_mut(per_block) {
            root.broadcast_into(chunk);
        }
        items
    }

    /// Rank 0's bytes, on every rank.
    pub fn broadcast_bytes(&self, root_bytes: Vec<u8>) -> Vec<u8> {
        self.broadcast_items(root_bytes)
    }

    /// Rank 0's value, on every rank (encoded with postcard, a binary format that keeps floats
    /// bit for bit). Other ranks pass `None`.
    pub fn broadcast<T: Serialize + DeserializeOwned>(
        &self,
        root_value: Option<&T>,
    ) -> Result<T, ExchangeError> {
        let bytes = match root_value {
            Some(v) if self.is_root() => encode(v)?,
            _ => Vec::new(),
        };
        let bytes = self.broadcast_bytes(bytes);
        decode(&bytes, 0)
    }

    /// Every rank's bytes on rank 0, in rank order (None on the other ranks). Lengths are 64-bit;
    /// buffers move in blocks of at most [`BLOCK`] bytes.
    pub fn gather_bytes_to_root(&self, local: &[u8]) -> Option<Vec<Vec<u8>>> {
        let Some(world) = &self.world else {
            return Some(vec![local.to_vec()]);
        };
        let lens = self.all_gather_lens(local.len());
        let root = world.process_at_rank(0);
        let mut out: Vec<Vec<u8>> = lens.iter().map(|&n| Vec::with_capacity(n)).collect();
        let rounds = lens.iter().map(|&n| n.div_ceil(BLOCK)).max().unwrap_or(0);
        for round in 0..rounds {
            let block = |n: usize| n.saturating_sub(round * BLOCK).min(BLOCK);
            let mine = &local[(round * BLOCK).min(local.len())..][..block(local.len())];
            if self.is_root() {
                let counts: Vec<mpi::Count> =
                    lens.iter().map(|&n| block(n) as mpi::Count).collect();
                let displs = displacements(&counts);
                let mut buf = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
                {
                    let mut p = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
                    root.gather_varcount_into_root(mine, &mut p);
                }
                for ((o, &c), &d) in out.iter_mut().zip(&counts).zip(&displs) {
                    o.extend_from_slice(&buf[d as usize..(d + c) as usize]);
                }
            } else {
                root.gather_varcount_into(mine);
            }
        }
        self.is_root().then_some(out)
    }

    /// Sends bytes to one rank (64-bit length first, then blocks of at most [`BLOCK`] bytes).
    /// Without MPI there is no other rank: nothing to do.
    pub fn send_bytes(&self, dest: usize, bytes: &[u8]) {
        let Some(world) = &self.world else { return };
        let p = world.process_at_rank(dest as i32);
        p.send(&(bytes.len() as u64));
        for chunk in bytes.chunks(BLOCK) {
            p.send(chunk);
        }
    }

    /// Receives the bytes [`Job::send_bytes`] sent from rank `src`.
    pub fn receive_bytes(&self, src: usize) -> Vec<u8> {
        let Some(world) = &self.world else {
            return Vec::new();
        };
        let p = world.process_at_rank(src as i32);
        let (len, _) = p.receive::<u64>();
        let mut out = Vec::with_capacity(len as usize);
        while (out.len() as u64) < len {
            let (chunk, _) = p.receive_vec::<u8>();
            out.extend_from_slice(&chunk);
        }
        out
    }

    /// Every rank's bytes on every rank, in rank order.
    pub fn all_gather_bytes(&self, local: &[u8]) -> Vec<Vec<u8>> {
        let Some(world) = &self.world else {
            return vec![local.to_vec()];
        };
        let lens = self.all_gather_lens(local.len());
        let mut out: Vec<Vec<u8>> = lens.iter().map(|&n| Vec::with_capacity(n)).collect();
        let rounds = lens.iter().map(|&n| n.div_ceil(BLOCK)).max().unwrap_or(0);
        for round in 0..rounds {
            let block = |n: usize| n.saturating_sub(round * BLOCK).min(BLOCK);
            let mine = &local[(round * BLOCK).min(local.len())..][..block(local.len())];
            let counts: Vec<mpi::Count> = lens.iter().map(|&n| block(n) as mpi::Count).collect();
            let displs = displacements(&counts);
            let mut buf = vec![0u8; counts.iter().map(|&c| c as usize).sum()];
            {
                let mut p = PartitionMut::new(&mut buf[..], &counts[..], &displs[..]);
                world.all_gather_varcount_into(mine, &mut p);
            }
            for ((o, &c), &d) in out.iter_mut().zip(&counts).zip(&displs) {
                o.extend_from_slice(&buf[d as usize..(d + c) as usize]);
            }
        }
        out
    }

    fn all_gather_lens(&self, len: usize) -> Vec<usize> {
        let Some(world) = &self.world else {
            return vec![len];
        };
        let mut lens = vec![0u64; self.size()];
        world.all_gather_into(&(len as u64), &mut lens[..]);
        lens.into_iter().map(|n| n as usize).collect()
    }

    /// One value per rank, on rank 0 (None on the other ranks), binary encoded.
    pub fn gather_to_root<T: Serialize + DeserializeOwned>(
        &self,
        value: &T,
    ) -> Result<Option<Vec<T>>, ExchangeError> {
        let bytes = encode(value)?;
        match self.gather_bytes_to_root(&bytes) {
            None => Ok(None),
            Some(all) => all
                .iter()
                .enumerate()
                .map(|(rank, b)| decode(b, rank))
                .collect::<Result<Vec<T>, _>>()
                .map(Some),
        }
    }

    /// One value per rank, on every rank, binary encoded.
    pub fn all_gather<T: Serialize + DeserializeOwned>(
        &self,
        value: &T,
    ) -> Result<Vec<T>, ExchangeError> {
        let bytes = encode(value)?;
        self.all_gather_bytes(&bytes)
            .iter()
            .enumerate()
            .map(|(rank, b)| decode(b, rank))
            .collect()
    }
}

/// On a job whose ranks all run on one node, Open MPI's default choice of message layer probes UCX
/// and other network layers first, which costs about 0.2 s at start-up here; the shared-memory
/// path (`ob1` with `vader`) is what such a job uses anyway. So unless the user chose a layer
/// (`OMPI_MCA_pml`), a one-node job asks for `ob1`. Multi-node jobs keep Open MPI's defaults.
fn single_node_defaults() {
    let var = |k: &str| std::env::var(k).ok();
    let one_node = match (
        var("OMPI_COMM_WORLD_SIZE"),
        var("OMPI_COMM_WORLD_LOCAL_SIZE"),
    ) {
        (Some(size), Some(local)) => size == local,
        _ => {
            var("SLURM_STEP_NUM_NODES")
                .or_else(|| var("SLURM_NNODES"))
                .as_deref()
                == Some("1")
        }
    };
    if one_node && std::env::var_os("OMPI_MCA_pml").is_none() {
        // Before MPI_Init, while this process has a single thread.
        std::env::set_var("OMPI_MCA_pml", "ob1");
    }
}

/// Peak resident memory of this process so far (VmHWM), in KiB; 0 where /proc cannot tell.
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

/// True when this process was started by a launcher (mpirun, srun, …).
pub fn launched() -> bool {
    LAUNCHER_VARS.iter().any(|v| std::env::var_os(v).is_some())
}

fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ExchangeError> {
    postcard::to_stdvec(value).map_err(ExchangeError::Encode)
}

fn decode<T: DeserializeOwned>(bytes: &[u8], rank: usize) -> Result<T, ExchangeError> {
    postcard::from_bytes(bytes).map_err(|source| ExchangeError::Decode { rank, source })
}

fn mpi_count(n: usize, what: &'static str) -> Result<mpi::Count, ExchangeError> {
    mpi::Count::try_from(n).map_err(|_| ExchangeError::TooMany { what, count: n })
}

/// Exclusive prefix sum of counts: where each rank's block starts.
pub fn displacements(counts: &[mpi::Count]) -> Vec<mpi::Count> {
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

/// The owner of each item when `parts` ranks take contiguous runs of items of about equal total
/// weight (rank 0 the first run): what keeps directory outputs in key order across their parts.
pub fn partition_contiguous(weights: &[u64], parts: usize) -> Vec<usize> {
    let parts = parts.max(1) as u128;
    let total: u128 = weights.iter().map(|&w| u128::from(w.max(1))).sum();
    let mut before = 0u128;
    weights
        .iter()
        .map(|&w| {
            let w = u128::from(w.max(1));
            // The part holding this item's middle.
            let owner = ((2 * before + w) * parts / (2 * total)).min(parts - 1);
            before += w;
            owner as usize
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_partitions_are_ordered_and_balanced() {
        assert_eq!(partition_contiguous(&[1, 1, 1, 1], 2), vec![0, 0, 1, 1]);
        assert_eq!(partition_contiguous(&[5, 5], 1), vec![0, 0]);
        assert_eq!(partition_contiguous(&[10, 1, 1, 1], 2), vec![0, 1, 1, 1]);
        assert_eq!(partition_contiguous(&[], 3), Vec::<usize>::new());
        let owner = partition_contiguous(&[3; 100], 4);
        assert!(owner.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(owner.iter().filter(|&&o| o == 3).count(), 25);
        assert_eq!(partition_contiguous(&[1], 4), vec![2]); // the part holding its middle
    }

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

    #[test]
    fn binary_exchange_keeps_every_float_bit() {
        let job = Job::single();
        let values = vec![f64::NAN, f64::INFINITY, -0.0, f64::NEG_INFINITY, 1e-310];
        let back: Vec<Vec<f64>> = job.all_gather(&values).unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&back[0]), bits(&values));
        let root: Vec<f64> = job.broadcast(Some(&values)).unwrap();
        assert_eq!(bits(&root), bits(&values));
        let gathered = job.gather_to_root(&values).unwrap().unwrap();
        assert_eq!(bits(&gathered[0]), bits(&values));
    }
}
