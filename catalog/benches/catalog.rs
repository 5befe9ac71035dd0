//! Catalog benches at DR17 scale: a synthetic catalog of 4,000,000 rows (4,000 plate-MJDs × 1,000
//! fibers: the 17 derived columns and 105 columns shaped like DR17's spAll, built by the catalog's
//! own code from store tables), then
//!
//! - `filter`: a `--where` with a cone, a redshift range, a class and one more column — the filter
//!   itself over the columns in memory, and the whole query read from catalog.parquet;
//! - `crossmatch`: 100,000 targets (half near a fiber, half anywhere) against every position.
//!
//! `cargo bench -p catalog --bench catalog [-- STEP]` runs each step in its own process (so that
//! its peak memory is its own) and prints one JSON line per step. `CATALOG_BENCH_DIR` (default
//! `target/catalog-bench`) keeps the generated store (catalog.parquet beside empty placeholders of
//! its store files, and targets.csv) for the next run and for `bench/run`'s whole-process timings;
//! `CATALOG_BENCH_ROWS` sets the size (a multiple of 1,000).

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Float64Type;
use catalog::build::batch_of;
use catalog::crossmatch::crossmatch;
use catalog::file::{footer, CatalogWriter};
use catalog::sky::Angle;
use catalog::sql::Engine;
use catalog::unify::{conform, union_schema};
use model::layout::{self, PlateTable};
use model::PlateMjd;
use rayon::prelude::*;
use store::reader::FiberEntry;
use store::table::{Column, ScalarKind};
use store::Table;
use synth::spall::{hash, numeric, row_class, specobjid, tform_shape, unit, DR17_COLUMNS};

const FIBERS: usize = 1000;
/// The `--where` of the filter bench: a cone, a redshift range, a class and one more column.
pub const WHERE: &str = "in_cone(ra, dec, 180.0, 30.0, 20.0) AND z BETWEEN 0.5 AND 2.5 AND class = 'QSO' AND sn_median_all > 5";

fn dir() -> PathBuf {
    std::env::var_os("CATALOG_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/catalog-bench")
        })
}

fn rows() -> usize {
    std::env::var("CATALOG_BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4_000_000)
}

fn pm_of(p: usize) -> PlateMjd {
    PlateMjd {
        plate: 3000 + p as i32,
        mjd: 55000 + p as i32,
    }
}

/// The store spall table of plate `p`, shaped like DR17's spAll.
fn spall_table(p: usize) -> Table {
    let columns: Vec<Column> = DR17_COLUMNS
        .iter()
        .map(|(name, tform)| {
            let (code, _, count) = tform_shape(tform);
            let kind = match code {
                'A' => ScalarKind::Str(count),
                'B' | 'L' => ScalarKind::U8,
                'I' => ScalarKind::I16,
                'J' => ScalarKind::I32,
                'K' => ScalarKind::I64,
                'E' => ScalarKind::F32,
                _ => ScalarKind::F64,
            };
            let dims = if code != 'A' && count > 1 {
                vec![count]
            } else {
                vec![]
            };
            Column {
                name: name.to_string(),
                kind,
                dims,
                unit: None,
            }
        })
        .collect();
    let mut t = Table::new(columns);
    let pm = pm_of(p);
    let mut row = Vec::new();
    for f in 0..FIBERS {
        let r = (p * FIBERS + f) as u64;
        let pmf = (pm.plate, pm.mjd, f as i32 + 1);
        row.clear();
        for (c, (name, tform)) in DR17_COLUMNS.iter().enumerate() {
            let (code, _, count) = tform_shape(tform);
            if code == 'A' {
                let mut b = match *name {
                    "CLASS" => row_class(r).to_string(),
                    _ => format!("{}", hash(r, c as u64) % 1_000_000),
                }
                .into_bytes();
                b.resize(count, b' ');
                row.extend_from_slice(&b);
                continue;
            }
            for k in 0..count {
                let v = numeric(name, r, k, c as u64, pmf);
                match code {
                    'B' | 'L' => row.push(v as u8),
                    'I' => row.extend((v as i16).to_ne_bytes()),
                    'J' => row.extend((v as i32).to_ne_bytes()),
                    'K' if *name == "SPECOBJID" => {
                        row.extend(specobjid(pmf.0, pmf.1, pmf.2).to_ne_bytes())
                    }
                    'K' => row.extend(((hash(r, c as u64) >> 4) as i64).to_ne_bytes()),
                    'E' => row.extend((v as f32).to_ne_bytes()),
                    _ => row.extend(v.to_ne_bytes()),
                }
            }
        }
        t.push_row(&row);
    }
    t
}

fn plate_batch(p: usize) -> RecordBatch {
    let entries: Vec<FiberEntry> = (1..=FIBERS as i32)
        .map(|fiber| FiberEntry {
            fiber,
            npix: 4600,
            nexp: 4,
        })
        .collect();
    batch_of(
        pm_of(p),
        &entries,
        vec![(PlateTable::Spall, spall_table(p))],
    )
    .expect("batch")
}

/// Writes the store (if it is not there with the right size): placeholders first, then the
/// catalog, so that the catalog is newer than every store file.
fn generate(store: &Path, rows: usize) -> serde_json::Value {
    let catalog = store.join(layout::CATALOG_FILE);
    if footer(&catalog).is_ok_and(|f| f.rows == rows) {
        return serde_json::json!({"step": "generate", "rows": rows, "reused": true});
    }
    let start = Instant::now();
    std::fs::create_dir_all(store).unwrap();
    let plates = rows / FIBERS;
    for p in 0..plates {
        std::fs::write(store.join(layout::store_file_name(pm_of(p))), b"").unwrap();
    }
    let schema = union_schema([plate_batch(0).schema_ref().as_ref()]).unwrap();
    let mut w = CatalogWriter::create(&catalog, &schema).unwrap();
    for chunk in (0..plates).collect::<Vec<_>>().chunks(64) {
        let batches: Vec<RecordBatch> = chunk.par_iter().map(|&p| plate_batch(p)).collect();
        for b in batches {
            w.write(&conform(&b, &schema).unwrap()).unwrap();
        }
    }
    w.finish().unwrap();
    // The targets of the crossmatch, for bench/run's whole-process timing too.
    write_targets(&store.join("../targets.csv"), rows);
    serde_json::json!({
        "step": "generate",
        "rows": rows,
        "columns": schema.fields().len(),
        "seconds": start.elapsed().as_secs_f64(),
        "catalog_bytes": std::fs::metadata(&catalog).unwrap().len(),
    })
}

/// 100,000 targets: even ones within 1 arcsec of a catalog row, odd ones anywhere on the sky.
fn targets(rows: usize) -> Vec<(f64, f64)> {
    (0..100_000u64)
        .map(|t| {
            if t % 2 == 0 {
                let r = hash(t, 99) % rows as u64;
                let ra = 360.0 * unit(hash(r, 7));
                let dec = (2.0 * unit(hash(r, 8)) - 1.0).asin().to_degrees();
                let d = (unit(hash(t, 5)) - 0.5) / 3600.0;
                ((ra + d).rem_euclid(360.0), (dec + d).clamp(-90.0, 90.0))
            } else {
                (
                    360.0 * unit(hash(t, 3)),
                    (2.0 * unit(hash(t, 4)) - 1.0).asin().to_degrees(),
                )
            }
        })
        .collect()
}

fn write_targets(path: &Path, rows: usize) {
    let mut text = String::from("name,ra,dec\n");
    for (i, (ra, dec)) in targets(rows).into_iter().enumerate() {
        text.push_str(&format!("t{i},{ra:.9},{dec:.9}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn peak_rss_mb() -> f64 {
    ranks::peak_rss_kib() as f64 / 1024.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn filter(store: &Path) -> serde_json::Value {
    let catalog = store.join(layout::CATALOG_FILE);
    // The whole query from the file, as boss-query runs it (cold engine each time).
    let mut from_file = Vec::new();
    let mut matched = 0;
    for _ in 0..3 {
        let start = Instant::now();
        let engine = Engine::over_file(&catalog).unwrap();
        let keys = engine
            .select(&[WHERE.to_string()], Vec::new(), Some(&["key"]))
            .unwrap();
        from_file.push(start.elapsed().as_secs_f64());
        matched = keys.num_rows();
    }
    // The filter itself: the columns it reads, in memory.
    let engine = Engine::over_file(&catalog).unwrap();
    let start = Instant::now();
    let cols = engine
        .select(
            &[],
            Vec::new(),
            Some(&["key", "ra", "dec", "z", "class", "sn_median_all"]),
        )
        .unwrap();
    let read = start.elapsed().as_secs_f64();
    let memory = Engine::over_batches(cols.schema(), vec![cols.clone()]).unwrap();
    let mut filter_s = Vec::new();
    for _ in 0..7 {
        let start = Instant::now();
        let keys = memory
            .select(&[WHERE.to_string()], Vec::new(), Some(&["key"]))
            .unwrap();
        filter_s.push(start.elapsed().as_secs_f64());
        assert_eq!(keys.num_rows(), matched, "memory and file agree");
    }
    // The same selection by hand, to be sure the engine selects what the expression says.
    let cone = catalog::sky::Cone::new(180.0, 30.0, 20.0)
        .unwrap()
        .matcher();
    let (ra, dec) = (
        cols.column(1).as_primitive::<Float64Type>(),
        cols.column(2).as_primitive::<Float64Type>(),
    );
    let z = cols
        .column(3)
        .as_primitive::<arrow::datatypes::Float32Type>();
    let class = cols.column(4).as_string::<i32>();
    let sn = cols
        .column(5)
        .as_primitive::<arrow::datatypes::Float32Type>();
    let by_hand = (0..cols.num_rows())
        .filter(|&i| {
            ra.is_valid(i)
                && cone.contains(ra.value(i), dec.value(i))
                && (0.5..=2.5).contains(&(z.value(i) as f64))
                && class.value(i) == "QSO"
                && sn.value(i) > 5.0
        })
        .count();
    assert_eq!(
        by_hand, matched,
        "the engine's selection is the expression's"
    );
    serde_json::json!({
        "step": "filter",
        "where": WHERE,
        "rows": cols.num_rows(),
        "matched": matched,
        "filter_ms": median(filter_s) * 1e3,
        "query_from_file_ms": median(from_file) * 1e3,
        "read_columns_ms": read * 1e3,
        "threads": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "peak_rss_mb": peak_rss_mb(),
    })
}

fn crossmatch_step(store: &Path, rows: usize) -> serde_json::Value {
    let catalog = store.join(layout::CATALOG_FILE);
    let start = Instant::now();
    let engine = Engine::over_file(&catalog).unwrap();
    let cols = engine
        .select(&[], Vec::new(), Some(&["key", "ra", "dec"]))
        .unwrap();
    let (ra, dec) = (
        cols.column(1).as_primitive::<Float64Type>(),
        cols.column(2).as_primitive::<Float64Type>(),
    );
    let positions: Vec<(f64, f64)> = (0..cols.num_rows())
        .map(|i| (ra.value(i), dec.value(i)))
        .collect();
    let read = start.elapsed().as_secs_f64();
    let t = targets(rows);
    let start = Instant::now();
    let found = crossmatch(&positions, &t, Angle::parse("2arcsec").unwrap(), false).unwrap();
    let matching = start.elapsed().as_secs_f64();
    let near = t.len().div_ceil(2);
    assert!(
        found.len() >= near,
        "every near target matches: {} of {near}",
        found.len()
    );
    serde_json::json!({
        "step": "crossmatch",
        "rows": positions.len(),
        "targets": t.len(),
        "matched": found.len(),
        "read_positions_s": read,
        "index_and_match_s": matching,
        "total_s": read + matching,
        "peak_rss_mb": peak_rss_mb(),
    })
}

fn main() {
    let step = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with("--"))
        .unwrap_or_else(|| "all".into());
    let (dir, rows) = (dir(), rows());
    let store = dir.join("store");
    let out = match step.as_str() {
        "generate" => generate(&store, rows),
        "filter" => filter(&store),
        "crossmatch" => crossmatch_step(&store, rows),
        "all" => {
            for s in ["generate", "filter", "crossmatch"] {
                let status = std::process::Command::new(std::env::current_exe().unwrap())
                    .arg(s)
                    .status()
                    .unwrap();
                assert!(status.success(), "step {s} failed");
            }
            return;
        }
        other => panic!("unknown step {other} (generate, filter, crossmatch, all)"),
    };
    println!("{out}");
}
