//! Microbenchmark of the exchange step at scale (run under mpirun): our compact fixed-size records
//! gathered with one Allgatherv, against the H5Boss way of exchanging the same information as a
//! serialised map (path → (dtype, shape, file), encoded with serde, gathered, decoded, merged).

use std::collections::HashMap;
use std::time::Instant;

use clap::Parser;
use model::{layout, FiberId, PlateMjd};
use query::records::DatasetRecord;
use ranks::Job;
use serde::Serialize;

/// Time the record exchange of N records spread over all ranks, both ways.
#[derive(Parser)]
struct Args {
    /// Total number of records (fibers) over all ranks.
    #[arg(long, default_value_t = 1_600_000)]
    records: usize,
    /// Repetitions (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeat: usize,
}

#[derive(Serialize)]
struct Report {
    ranks: usize,
    records: usize,
    compact_seconds: Vec<f64>,
    serialised_seconds: Vec<f64>,
    compact_bytes_per_record: usize,
    serialised_bytes_per_record: f64,
    speedup_median: f64,
    max_rss_kib: u64,
}

/// The H5Boss-style value: dtype name, shape and source file of one dataset path.
type MapValue = (String, Vec<u64>, String);

fn local_records(job: &Job, total: usize) -> Vec<DatasetRecord> {
    let per_rank = total.div_ceil(job.size());
    let start = job.rank() * per_rank;
    (start..(start + per_rank).min(total))
        .map(|i| {
            let id = FiberId::new(
                3000 + (i / 1000) as i32,
                55000 + (i / 1000) as i32,
                (i % 1000) as i32 + 1,
            );
            DatasetRecord {
                plate: id.plate,
                mjd: id.mjd,
                fiber: id.fiber,
                len: 4600 + (i % 50) as u64,
                src_offset: 4096 + 147_200 * (i % 1000) as u64,
                source: (i / 1000) as u32,
                ..Default::default()
            }
        })
        .collect()
}

fn compact(job: &Job, local: &[DatasetRecord]) -> (f64, usize) {
    job.barrier();
    let t = Instant::now();
    let mut all = job
        .all_gather_varcount(local)
        .expect("records fit one exchange");
    all.sort_by_key(DatasetRecord::sort_key);
    let secs = job.max_f64(t.elapsed().as_secs_f64());
    (secs, all.len())
}

fn serialised(job: &Job, local: &[DatasetRecord]) -> (f64, usize, usize) {
    job.barrier();
    let t = Instant::now();
    let map: HashMap<String, MapValue> = local
        .iter()
        .map(|r| {
            let pm = PlateMjd {
                plate: r.plate,
                mjd: r.mjd,
            };
            let path = layout::coadd_path(pm, r.fiber);
            (
                path,
                (
                    "CoaddRecord".to_string(),
                    vec![r.len],
                    layout::store_file_name(pm),
                ),
            )
        })
        .collect();
    let bytes = serde_json::to_vec(&map).expect("serialises");
    let parts = job.all_gather_bytes(&bytes);
    let mut merged: HashMap<String, MapValue> = HashMap::with_capacity(local.len() * job.size());
    for part in &parts {
        let part: HashMap<String, MapValue> = serde_json::from_slice(part).expect("decodes");
        merged.extend(part);
    }
    let all_len: usize = parts.iter().map(Vec::len).sum();
    let secs = job.max_f64(t.elapsed().as_secs_f64());
    (secs, merged.len(), all_len)
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn main() {
    let args = Args::parse();
    let job = Job::init();
    let local = local_records(&job, args.records);
    let (mut compact_s, mut serial_s) = (Vec::new(), Vec::new());
    let mut serial_bytes = 0;
    for _ in 0..args.repeat {
        let (s, n) = compact(&job, &local);
        assert_eq!(n, args.records, "every rank holds the whole list");
        compact_s.push(s);
        let (s, n, b) = serialised(&job, &local);
        assert_eq!(n, args.records, "every rank holds the whole map");
        serial_s.push(s);
        serial_bytes = b;
    }
    let rss = job.max_f64(ranks::peak_rss_kib() as f64) as u64;
    if job.is_root() {
        let report = Report {
            ranks: job.size(),
            records: args.records,
            speedup_median: median(&serial_s) / median(&compact_s),
            compact_seconds: compact_s,
            serialised_seconds: serial_s,
            compact_bytes_per_record: std::mem::size_of::<DatasetRecord>(),
            serialised_bytes_per_record: serial_bytes as f64 / args.records as f64,
            max_rss_kib: rss,
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialises")
        );
    }
}
