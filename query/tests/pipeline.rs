//! The whole pipeline in one process, without Python or mpirun: synthetic FITS → `boss-ingest`'s
//! library → a store and its catalog → `boss-query`'s library selecting by list, SQL, crossmatch
//! and ID → the HDF5 subset and a Parquet export, each checked against what the inputs hold.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, UInt64Type};
use catalog::filters::Filters;
use catalog::sky::Angle;
use model::FiberId;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use query::engine::IoMode;
use query::job::{Request, Summary};
use query::selection::MatchRequest;
use ranks::Job;

const PLATES: usize = 2;
const FIBERS: usize = 30;

fn ingest(inputs: &Path, store: &Path) {
    let cfg = ingest::job::Config {
        inputs: vec![inputs.to_path_buf()],
        store: store.to_path_buf(),
        rebuild_catalog: false,
        fail_fast: true,
        wait: true,
        layout: model::layout::Layout::V1,
    };
    let events = ingest::job::Events {
        failure: &|f| panic!("ingest failure: {f:?}"),
        conflicts: &|_| {},
        unit_done: &|_| {},
        planned: &|_| {},
        waiting: &|_| {},
    };
    let summary = ingest::job::run(&Job::single(), &cfg, &events)
        .expect("ingest runs")
        .expect("rank 0 has the summary");
    assert_eq!(summary.plate_mjds_written, PLATES as u64);
    assert_eq!(summary.catalog_rows_written, PLATES * FIBERS);
}

fn request(store: &Path) -> Request {
    Request {
        store: store.to_path_buf(),
        fibers: None,
        filters: Filters::default(),
        ids: None,
        matching: None,
        sql: None,
        list: false,
        output: None,
        arrow: None,
        parquet: None,
        columns: Vec::new(),
        codec: Default::default(),
        nested: false,
        io: IoMode::Independent,
        layout: None,
        force: false,
        keep: None,
    }
}

fn run(req: &Request) -> Summary {
    query::job::run(&Job::single(), req).expect("query runs")
}

fn read_parquet(path: &Path) -> RecordBatch {
    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap()
}

fn keys(b: &RecordBatch) -> Vec<i64> {
    b.column_by_name("key")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec()
}

fn listed_keys(csv: &str) -> Vec<i64> {
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().parse().unwrap())
        .collect()
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    store: PathBuf,
}

/// HDF5 and the tools' signal handling are process-wide: one pipeline at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let fits = root.join("fits");
    synth::generate(&synth::Config {
        out: fits.clone(),
        plates: PLATES,
        fibers: FIBERS,
        npix: 300,
        first_plate: 7000,
        seed: 9,
        spec_files: true,
        exposures: Some(3),
        flavor: synth::Flavor::Boss,
    })
    .unwrap();
    let store = root.join("store");
    ingest(&fits, &store);
    Fixture {
        _dir: dir,
        root,
        store,
    }
}

#[test]
fn ingest_then_select_by_every_means_then_write_and_export() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    let catalog = read_parquet(&fx.store.join("catalog.parquet"));
    assert_eq!(catalog.num_rows(), PLATES * FIBERS);
    // Every spall column of the spec files is in the catalog, SPECOBJID unsigned.
    for name in [
        "THING_ID",
        "SN_MEDIAN",
        "SPALL_RA",
        "BOSS_TARGET1",
        "SPECOBJID",
        "z",
        "class",
    ] {
        assert!(
            catalog.column_by_name(name).is_some(),
            "catalog column {name}"
        );
    }
    let all = keys(&catalog);

    // SQL: the rows the expression says, counted by hand over the catalog.
    let z = catalog
        .column_by_name("z")
        .unwrap()
        .as_primitive::<arrow::datatypes::Float32Type>();
    let want: Vec<i64> = (0..catalog.num_rows())
        .filter(|&i| z.is_valid(i) && z.value(i) > 0.3)
        .map(|i| all[i])
        .collect();
    assert!(!want.is_empty() && want.len() < all.len());
    let mut req = request(&fx.store);
    req.filters.wheres = vec!["Z > 0.3".into()];
    req.list = true;
    let s = run(&req);
    assert_eq!(listed_keys(s.listing.as_deref().unwrap()), want);

    // A fiber list, written to HDF5: exactly those fibers, with their coadds.
    let list = fx.root.join("list.csv");
    let picked: Vec<FiberId> = all
        .iter()
        .step_by(7)
        .map(|&k| FiberId::from_key(k))
        .collect();
    let mut text = String::from("plate,mjd,fiber\n");
    for f in &picked {
        text.push_str(&format!("{},{},{}\n", f.plate, f.mjd, f.fiber));
    }
    std::fs::write(&list, text).unwrap();
    let mut req = request(&fx.store);
    req.fibers = Some(list);
    req.output = Some(fx.root.join("subset.h5"));
    req.parquet = Some(fx.root.join("subset.parquet"));
    let s = run(&req);
    assert_eq!((s.fibers_found, s.fibers_missing), (picked.len(), 0));
    let h5 = hdf5::File::open(fx.root.join("subset.h5")).unwrap();
    for f in &picked {
        let coadd = h5
            .dataset(&format!("{}/{}/{}/coadd", f.plate, f.mjd, f.fiber))
            .unwrap();
        assert_eq!(coadd.shape(), vec![300]);
    }
    let export = read_parquet(&fx.root.join("subset.parquet"));
    assert_eq!(
        keys(&export),
        picked.iter().map(|f| f.key()).collect::<Vec<_>>()
    );
    let flux = export.column_by_name("flux").unwrap().as_list::<i32>();
    assert_eq!(flux.value(0).len(), 300);

    // Crossmatch: a target 1" from each of three fibers finds them; one far away finds nothing.
    let ra = catalog
        .column_by_name("ra")
        .unwrap()
        .as_primitive::<Float64Type>();
    let dec = catalog
        .column_by_name("dec")
        .unwrap()
        .as_primitive::<Float64Type>();
    let mut targets = String::from("name,ra,dec\n");
    for i in [0usize, 11, 40] {
        targets.push_str(&format!(
            "n{i},{},{}\n",
            ra.value(i),
            dec.value(i) + 1.0 / 3600.0
        ));
    }
    targets.push_str("far,123.0,-80.0\n");
    let tpath = fx.root.join("targets.csv");
    std::fs::write(&tpath, targets).unwrap();
    let mut req = request(&fx.store);
    req.matching = Some(MatchRequest {
        targets: tpath,
        radius: Angle::parse("2arcsec").unwrap(),
        all: false,
    });
    req.list = true;
    let s = run(&req);
    let m = s.matching.unwrap();
    assert_eq!((m.targets, m.matched_targets), (4, 3));
    let listing = s.listing.unwrap();
    let lines: Vec<&str> = listing.lines().collect();
    assert!(
        lines[0].starts_with("name,ra,dec,key,")
            || lines[0].starts_with("name,target_ra,target_dec,key,"),
        "{}",
        lines[0]
    );
    let matched: BTreeSet<i64> = lines[1..]
        .iter()
        .map(|l| l.split(',').nth(3).unwrap().parse().unwrap())
        .collect();
    assert_eq!(matched, [all[0], all[11], all[40]].into_iter().collect());

    // IDs: the SPECOBJIDs of two fibers give those fibers.
    let ids = catalog
        .column_by_name("SPECOBJID")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let ipath = fx.root.join("ids.csv");
    std::fs::write(
        &ipath,
        format!("SPECOBJID\n{}\n{}\n", ids.value(3), ids.value(50) as i64),
    )
    .unwrap();
    let mut req = request(&fx.store);
    req.ids = Some(ipath);
    req.list = true;
    let s = run(&req);
    assert_eq!(
        listed_keys(s.listing.as_deref().unwrap()),
        vec![all[3], all[50]]
    );

    // A whole query.
    let mut req = request(&fx.store);
    req.sql = Some("SELECT plate, count(*) AS n FROM catalog GROUP BY plate ORDER BY plate".into());
    let s = run(&req);
    assert_eq!(s.listing.unwrap(), "plate,n\n7000,30\n7001,30\n");
}

#[test]
fn bad_expressions_are_errors_naming_the_column() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let fx = fixture();
    let mut req = request(&fx.store);
    req.filters.wheres = vec!["no_such_column > 1".into()];
    req.list = true;
    let Err(e) = query::job::run(&Job::single(), &req) else {
        panic!("an unknown column was accepted");
    };
    let e = e.to_string();
    assert!(e.contains("no_such_column"), "{e}");
}
