//! `boss-query`: selects fibers from the store — by list, SQL over the catalog, crossmatch with a
//! target list, object IDs, sky cone, redshift, class — and copies them
//! into one shared HDF5 file and/or exports them to Arrow/Parquet, in parallel under `mpirun`/`srun`
//! or as a plain process. This file is the command line only: arguments → [`query::job::Request`] →
//! [`query::job::run`] → messages and the exit code.

use std::path::PathBuf;
use std::process::ExitCode;

use catalog::filters::Filters;
use catalog::sky::{Angle, Cone};
use clap::Parser;
use model::message::one_line;
use query::engine::IoMode;
use query::error::QueryError;
use query::export::{ParquetCodec, SpectralColumn};
use query::job::{Keep, Request, Summary};
use query::selection::MatchRequest;
use ranks::Job;

/// Select fibers from a BOSS store and copy them (coadd, exposures, and the matching rows of plugmap,
/// spall, zline, zbest) into one HDF5 file with the store's layout, and/or export them to Arrow or
/// Parquet for pandas, with all MPI ranks working in parallel. Filters combine with each other and
/// with --fibers (AND).
///
/// Exit status: 0 success, 1 some listed fibers are not in the store, 2 the query could not run.
#[derive(Parser, Debug)]
#[command(version, max_term_width = 100)]
struct Args {
    /// The store directory written by boss-ingest.
    #[arg(long, value_name = "DIR")]
    store: PathBuf,
    /// Fiber list: CSV (or tab-separated) with a plate,mjd,fiber header (FIBERID accepted, other
    /// columns ignored), or H5Boss's space-separated format with the header `plates mjds fibers`.
    #[arg(long, value_name = "LIST")]
    fibers: Option<PathBuf>,
    /// Only fibers whose catalog row passes this SQL boolean expression, over any catalog column in
    /// any case, e.g. "sn_median_all > 5 AND (boss_target1 & 1024) != 0"; repeat to AND several.
    /// Also: in_cone(ra, dec, RA0, DEC0, RADIUS) and sky_distance(ra1, dec1, ra2, dec2), degrees.
    #[arg(long = "where", value_name = "EXPR")]
    wheres: Vec<String>,
    /// Crossmatch with a target list: CSV with ra and dec columns (degrees); each target gets the
    /// nearest fiber within --radius. Other columns are carried into --list.
    #[arg(long = "match", value_name = "TARGETS.csv")]
    match_targets: Option<PathBuf>,
    /// Crossmatch radius with its unit: 2arcsec, 0.5arcmin, 0.001deg.
    #[arg(
        long,
        value_name = "ANGLE",
        default_value = "2arcsec",
        requires = "match_targets"
    )]
    radius: Angle,
    /// With --match: every fiber within the radius of a target, not only the nearest.
    #[arg(long, requires = "match_targets")]
    all_matches: bool,
    /// Only the fibers of these objects: CSV with a SPECOBJID, THING_ID or TARGETID column.
    #[arg(long, value_name = "IDS.csv")]
    ids: Option<PathBuf>,
    /// Run a whole SQL query over the table `catalog` and print the result as CSV (or write it with
    /// --parquet), e.g. "SELECT plate, mjd, fiber, z FROM catalog WHERE class = 'QSO'". A result with
    /// plate, mjd and fiber columns is itself a --fibers list.
    #[arg(long, value_name = "QUERY")]
    sql: Option<String>,
    /// Only fibers within RADIUS degrees (great circle) of RA,DEC (degrees).
    #[arg(long, value_name = "RA,DEC,RADIUS", allow_hyphen_values = true)]
    cone: Option<Cone>,
    /// Only redshifts z >= Z.
    #[arg(long, value_name = "Z", allow_hyphen_values = true)]
    z_min: Option<f64>,
    /// Only redshifts z <= Z.
    #[arg(long, value_name = "Z", allow_hyphen_values = true)]
    z_max: Option<f64>,
    /// Only this spectral class (GALAXY, QSO, STAR); repeat for several.
    #[arg(long = "class", value_name = "CLASS")]
    classes: Vec<String>,
    /// Only good redshifts (ZWARNING = 0).
    #[arg(long)]
    zwarning_zero: bool,
    /// Only primary spectra (SPECPRIMARY).
    #[arg(long)]
    primary: bool,
    /// Print the selected fibers as CSV (key,plate,mjd,fiber,ra,dec,class,z; with --match the target
    /// columns first and separation_arcsec last) and write nothing else.
    #[arg(long)]
    list: bool,
    /// Output HDF5 file.
    #[arg(short, long, value_name = "OUT.h5")]
    output: Option<PathBuf>,
    /// Export to an Arrow IPC file (pandas.read_feather opens it), or with a path ending in / to a
    /// directory where every rank writes its part (pyarrow.dataset.dataset(DIR, format="arrow")).
    #[arg(long, value_name = "OUT.arrow|DIR/")]
    arrow: Option<PathBuf>,
    /// Export to a Parquet file, or with a path ending in / to a directory where every rank writes
    /// its part; pandas.read_parquet opens either, DuckDB reads read_parquet('DIR/*.parquet').
    #[arg(long, value_name = "OUT.parquet|DIR/")]
    parquet: Option<PathBuf>,
    /// Export in the nested form (LSDB / nested-pandas): each row's spectral arrays as one
    /// struct-of-lists column, `spectrum` for SDSS, `spectrum_b`, `spectrum_r`, `spectrum_z` for DESI's arms
    /// (nested_pandas.read_parquet opens them as nested columns).
    #[arg(long)]
    nested: bool,
    /// Compression of the Parquet export's pages.
    #[arg(long, value_enum, default_value_t = ParquetCodec::default(), value_name = "CODEC")]
    parquet_codec: ParquetCodec,
    /// Spectral columns to export (default: all).
    #[arg(long, value_enum, value_delimiter = ',', value_name = "COLUMNS")]
    columns: Vec<SpectralColumn>,
    /// How ranks write the HDF5 output's data: each its own byte ranges (independent,
    /// copy_file_range) or all together (collective MPI-IO).
    #[arg(long, value_enum, default_value = "independent")]
    io: IoMode,
    /// Layout of the HDF5 output: v1 (a group and a coadd dataset per fiber) or v2 (fiber-merged
    /// 2-D arrays per plate-MJD); default: the store's. A query between layouts converts.
    #[arg(long, value_name = "v1|v2")]
    layout: Option<model::layout::Layout>,
    /// Replace outputs that exist.
    #[arg(long)]
    force: bool,
    /// Bring the existing -o OUT.h5 up to date: it ends up holding exactly this selection (fibers
    /// it has are copied from it, new ones read from the store, the others dropped). The new file
    /// replaces the old one only when complete.
    #[arg(long, conflicts_with = "add")]
    update: bool,
    /// Add this selection to the existing -o OUT.h5 (what it has is kept).
    #[arg(long)]
    add: bool,
    /// Print a JSON summary on stdout.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn request(&self) -> Request {
        Request {
            store: self.store.clone(),
            fibers: self.fibers.clone(),
            filters: Filters {
                cone: self.cone,
                z_min: self.z_min,
                z_max: self.z_max,
                classes: self.classes.clone(),
                zwarning_zero: self.zwarning_zero,
                primary: self.primary,
                wheres: self.wheres.clone(),
            },
            ids: self.ids.clone(),
            matching: self.match_targets.as_ref().map(|t| MatchRequest {
                targets: t.clone(),
                radius: self.radius,
                all: self.all_matches,
            }),
            sql: self.sql.clone(),
            list: self.list,
            output: self.output.clone(),
            arrow: self.arrow.clone(),
            parquet: self.parquet.clone(),
            columns: self.columns.clone(),
            codec: self.parquet_codec,
            nested: self.nested,
            io: self.io,
            layout: self.layout,
            force: self.force,
            keep: match (self.update, self.add) {
                (true, _) => Some(Keep::Update),
                (_, true) => Some(Keep::Add),
                _ => None,
            },
        }
    }
}

fn main() -> ExitCode {
    model::allocator::keep_freed_memory();
    model::stdout::note_closed_stdout();
    let args = Args::parse();
    // Collective MPI-IO needs MPI even for one process; otherwise a plain process runs without MPI
    // (an MPI singleton takes about a second to start) and writes with plain file I/O.
    let job = match args.io {
        IoMode::Collective => Job::init(),
        IoMode::Independent => Job::init_if_launched(),
    };
    let code = match query::job::run(&job, &args.request()) {
        Ok(summary) => report(&args, &job, &summary),
        Err(QueryError::OtherRank) => 2,
        Err(e) => {
            // Errors every rank sees alike are said once; a rank's own failure names the rank.
            let shared = matches!(
                e,
                QueryError::Invalid(_) | QueryError::List(_) | QueryError::Catalog(_)
            );
            if job.is_root() || !shared {
                let rank = if job.size() > 1 && !shared {
                    format!(" (rank {})", job.rank())
                } else {
                    String::new()
                };
                eprintln!("boss-query: error{rank}: {}", one_line(&error_chain(&e)));
            }
            2
        }
    };
    drop(job);
    ExitCode::from(code)
}

/// The error and its causes that its message does not already include.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let c_text = c.to_string();
        if !text.contains(&c_text) {
            text = format!("{text}: {c_text}");
        }
        cause = c.source();
    }
    text
}

/// Writes results to standard output: a reader that closed the pipe ends the output quietly; any
/// other write error is said and gives exit code 2.
fn to_stdout(text: &str) -> Result<(), u8> {
    match model::stdout::write(text) {
        Ok(_) => Ok(()),
        Err(e) => {
            eprintln!("boss-query: error: cannot write the results to standard output: {e}");
            Err(2)
        }
    }
}

/// Prints the outcome on rank 0; returns the exit code.
fn report(args: &Args, job: &Job, s: &Summary) -> u8 {
    let code = u8::from(!s.missing_ids.is_empty());
    if !job.is_root() {
        return code;
    }
    if let Some(listing) = &s.listing {
        if let Err(code) = to_stdout(listing) {
            return code;
        }
    }
    for w in &s.warnings {
        eprintln!("boss-query: warning: {}", one_line(w));
    }
    for m in &s.missing_ids {
        eprintln!("boss-query: not in the store: {m}");
    }
    if args.json && s.listing.is_none() {
        let json = serde_json::to_string_pretty(s).expect("summary serialises");
        if let Err(code) = to_stdout(&format!("{json}\n")) {
            return code;
        }
    }
    if let (Some(p), Some(output)) = (&s.phases, &args.output) {
        eprintln!(
            "boss-query: {} of {} fibers ({} datasets, {:.1} MB) into {} in {:.2} s on {} rank(s) \
             [scan {:.2} exchange {:.2} create {:.2} write {:.2} close {:.2}]",
            s.fibers_found,
            s.selected,
            s.datasets,
            s.bytes as f64 / 1e6,
            output.display(),
            s.seconds,
            s.ranks,
            p.scan,
            p.exchange,
            p.create,
            p.write,
            p.close
        );
    }
    if let Some(m) = &s.matching {
        eprintln!(
            "boss-query: {} of {} targets matched within {} arcsec ({} fibers)",
            m.matched_targets, m.targets, m.radius_arcsec, s.selected
        );
    }
    if let Some(i) = &s.ids {
        eprintln!(
            "boss-query: {} {} IDs: {} fibers, {} IDs not in the store",
            i.ids, i.column, s.selected, i.not_found
        );
    }
    if let Some(e) = &s.export {
        eprintln!(
            "boss-query: exported {} spectra ({:.1} MB of spectra) in {:.2} s ({:.0} MB/s)",
            e.rows,
            e.spectra_bytes as f64 / 1e6,
            e.seconds,
            e.spectra_bytes as f64 / 1e6 / e.seconds.max(1e-9)
        );
    }
    code
}
