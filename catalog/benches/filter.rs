//! Selections and parquet I/O over a synthetic 4,000,000-row catalog (4,000 plate-MJDs × 1,000 fibers,
//! positions uniform over the sphere, classes GALAXY/QSO/STAR, z, zwarning, ~1% nulls).
//!
//! `cargo bench -p catalog --bench filter -- --warm-up-time 1 --measurement-time 3`
//!
//! With `CATALOG_BENCH_MEMORY=<catalog.parquet>` the binary runs no benchmark: it writes that file from the
//! synthetic catalog if it does not exist, otherwise it only reads it, and prints the peak resident memory
//! (run it under `/usr/bin/time -v` for the reading case to see what holding 4M rows costs).

use std::hint::black_box;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, StringArray,
};
use arrow::record_batch::RecordBatch;
use catalog::index::Catalog;
use catalog::select::{Cone, Selection};
use criterion::{criterion_group, Criterion};
use model::key::{FiberId, PlateMjd};
use model::layout;
use rand::{Rng, SeedableRng};

const PLATES: i32 = 4_000;
const FIBERS: i32 = 1_000;

/// The synthetic catalog, built column by column as arrow arrays then read like a record batch.
fn synthetic() -> Catalog {
    let n = (PLATES * FIBERS) as usize;
    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    let files: Vec<String> = (0..PLATES)
        .map(|p| {
            layout::store_file_name(PlateMjd {
                plate: 3000 + p,
                mjd: 55000 + p,
            })
        })
        .collect();
    let (mut key, mut plate, mut mjd, mut fiber) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let mut file: Vec<&str> = Vec::with_capacity(n);
    let (mut ra, mut dec) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut class, mut subclass, mut objtype) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut z, mut z_err, mut zwarning) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut primary, mut sn) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for p in 0..PLATES {
        for f in 1..=FIBERS {
            let id = FiberId::new(3000 + p, 55000 + p, f);
            key.push(id.key());
            plate.push(id.plate);
            mjd.push(id.mjd);
            fiber.push(f);
            file.push(files[p as usize].as_str());
            let null = rng.random_range(0..100) == 0;
            let u: f64 = rng.random_range(-1.0..1.0);
            ra.push((!null).then(|| rng.random_range(0.0..360.0)));
            dec.push((!null).then(|| u.asin().to_degrees()));
            let c: u32 = rng.random_range(0..100);
            let (cl, sub, zz): (&str, &str, f32) = if c < 60 {
                ("GALAXY", "STARFORMING", rng.random_range(0.0..1.0))
            } else if c < 85 {
                ("QSO", "BROADLINE", rng.random_range(0.1..5.0))
            } else {
                ("STAR", "K5", rng.random_range(-0.001..0.001))
            };
            class.push((!null).then_some(cl));
            subclass.push((!null && c.is_multiple_of(3)).then_some(sub));
            objtype.push(Some(if c < 85 { "GALAXY" } else { "SPECTROPHOTO_STD" }));
            z.push((!null).then_some(zz));
            z_err.push((!null).then(|| rng.random_range(1e-5..1e-3)));
            let w = rng.random_range(0..10);
            zwarning.push((!null).then_some(if w == 0 { 4 } else { 0 }));
            primary.push((!null).then_some(w != 9));
            sn.push(Some(rng.random_range(0.0f32..20.0)));
        }
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(key)),
        Arc::new(Int32Array::from(plate)),
        Arc::new(Int32Array::from(mjd)),
        Arc::new(Int32Array::from(fiber)),
        Arc::new(StringArray::from(file)),
        Arc::new(Int32Array::from(vec![4620; n])),
        Arc::new(Int32Array::from(vec![4; n])),
        Arc::new(Float64Array::from(ra)),
        Arc::new(Float64Array::from(dec)),
        Arc::new(StringArray::from(class)),
        Arc::new(StringArray::from(subclass)),
        Arc::new(Float32Array::from(z)),
        Arc::new(Float32Array::from(z_err)),
        Arc::new(Int32Array::from(zwarning)),
        Arc::new(StringArray::from(objtype)),
        Arc::new(BooleanArray::from(primary)),
        Arc::new(Float32Array::from(sn)),
    ];
    let batch = RecordBatch::try_new(Catalog::schema(), cols).unwrap();
    Catalog::from_record_batch(&batch).unwrap()
}

fn catalog() -> &'static Catalog {
    static CAT: OnceLock<Catalog> = OnceLock::new();
    CAT.get_or_init(|| {
        let t = Instant::now();
        let cat = synthetic();
        eprintln!(
            "synthetic catalog: {} rows built in {:.2?}; columns hold {:.1} MiB ({:.1} B/row); {}",
            cat.len(),
            t.elapsed(),
            cat.heap_bytes() as f64 / (1 << 20) as f64,
            cat.heap_bytes() as f64 / cat.len() as f64,
            memory_status()
        );
        cat
    })
}

/// Current and peak resident memory of this process (Linux).
fn memory_status() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .map(|l| l[k.len()..].trim().to_string())
            .unwrap_or_else(|| "?".into())
    };
    format!("VmRSS {} VmHWM {}", get("VmRSS:"), get("VmHWM:"))
}

fn cone_z_class() -> Selection {
    Selection {
        cone: Some(Cone::parse("150,20,10").unwrap()),
        z_min: Some(0.3),
        z_max: Some(2.0),
        classes: vec!["galaxy".into(), "QSO".into()],
        ..Default::default()
    }
}

fn bench_filters(c: &mut Criterion) {
    let cat = catalog();
    let cases: Vec<(&str, Selection)> = vec![
        ("filter/4M_cone_z_class", cone_z_class()),
        (
            "filter/4M_z",
            Selection {
                z_min: Some(0.5),
                z_max: Some(1.0),
                ..Default::default()
            },
        ),
        (
            "filter/4M_cone_1deg",
            Selection {
                cone: Some(Cone::parse("210.5,-3.25,1").unwrap()),
                ..Default::default()
            },
        ),
        (
            "filter/4M_cone_60deg_pole",
            Selection {
                cone: Some(Cone::parse("0,90,60").unwrap()),
                ..Default::default()
            },
        ),
        (
            "filter/4M_primary_zwarning_class",
            Selection {
                classes: vec!["qso".into()],
                zwarning_zero: true,
                primary: true,
                ..Default::default()
            },
        ),
    ];
    for (id, sel) in cases {
        eprintln!("{id}: selects {} rows", sel.select(cat).len());
        c.bench_function(id, |b| b.iter(|| black_box(sel.select(black_box(cat)))));
    }
}

fn bench_parquet(c: &mut Criterion) {
    let cat = catalog();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(layout::CATALOG_FILE);
    let mut g = c.benchmark_group("parquet");
    g.sample_size(10);
    g.bench_function("4M_write", |b| b.iter(|| cat.write_parquet(&path).unwrap()));
    eprintln!(
        "parquet file: {:.1} MiB",
        std::fs::metadata(&path).unwrap().len() as f64 / (1 << 20) as f64
    );
    g.bench_function("4M_read", |b| {
        b.iter(|| {
            let back = Catalog::read_parquet(&path).unwrap();
            assert_eq!(back.len(), cat.len());
            back
        })
    });
    g.finish();
    eprintln!("after the parquet benchmarks: {}", memory_status());
}

criterion_group!(benches, bench_filters, bench_parquet);

fn main() {
    if let Ok(path) = std::env::var("CATALOG_BENCH_MEMORY") {
        let path = std::path::Path::new(&path);
        if path.exists() {
            let t = Instant::now();
            let cat = Catalog::read_parquet(path).unwrap();
            eprintln!(
                "read {} rows in {:.2?}; columns hold {:.1} MiB; {}",
                cat.len(),
                t.elapsed(),
                cat.heap_bytes() as f64 / (1 << 20) as f64,
                memory_status()
            );
            let t = Instant::now();
            let n = cone_z_class().select(&cat).len();
            eprintln!(
                "cone+z+class selects {n} rows in {:.2?}; {}",
                t.elapsed(),
                memory_status()
            );
        } else {
            let cat = catalog();
            let t = Instant::now();
            cat.write_parquet(path).unwrap();
            eprintln!(
                "wrote {} in {:.2?}; {}",
                path.display(),
                t.elapsed(),
                memory_status()
            );
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
