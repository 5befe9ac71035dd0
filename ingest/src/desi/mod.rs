//! DESI inputs: HEALPix and cumulative tile coadds with their redrock files, recognised by name
//! and content ([`identify`]), read on rayon threads ([`decode`]), laid out as a store group of the
//! merged layout ([`group`]) and written one store file per coadd. The key is the coadd file and
//! TARGET_ROW (the target's row in TARGETID order); TARGETID is a column of every row.
//!
//! A redrock file completes its coadd's group whenever it arrives: with the coadd in one run, or
//! later, into the store file the coadd made. A coadd whose redrock file is absent ingests with
//! no redshift tables and one warning. The HEALPix zcatalogs (zpix, zall-pix) give the `zcatalog` table
//! of the groups of this run and of the store their rows are of ([`zcat`]).

pub mod decode;
pub mod group;
pub mod identify;
pub mod zcat;

use std::path::{Path, PathBuf};

use model::layout::PlateTable;
use model::{DesiGroup, GroupId};
use rayon::prelude::*;
use store::merged::MergedGroup;

pub use identify::Kind;

use crate::decode::{InputError, Problem};
use crate::plan::{Failure, InputFile, InputKind, Unit};
use crate::run::Catalogs;
use crate::survey::{Decoded, Pending, Recognised, Survey};
use crate::writer::{Conflict, ConflictRule, StoreError, StoreWriter, WriteOutcome};
use fitsread::cfitsio_guard;

/// The DESI survey.
pub struct Desi;

impl Survey for Desi {
    fn claims_name(&self, name: &str) -> bool {
        identify::parse_name(name).is_some()
    }

    fn claims_content(&self, path: &Path) -> bool {
        crate::decode::survey_of(path) == Some(crate::decode::Other::Desi)
    }

    fn identify(&self, path: &Path, _name: &str, bytes: u64) -> Recognised {
        let _guard = cfitsio_guard();
        Recognised::Mine(identify::identify(path).map(|(kind, group)| {
            (
                InputFile {
                    path: path.to_path_buf(),
                    kind: InputKind::Desi(kind),
                    row: None,
                    bytes,
                },
                GroupId::Desi(group),
            )
        }))
    }

    fn owns(&self, group: &GroupId) -> bool {
        matches!(group, GroupId::Desi(_))
    }

    fn companions(&self, _f: &InputFile, _group: &GroupId) -> Vec<PathBuf> {
        // A redrock file is an input of its own (it may come later than its coadd).
        Vec::new()
    }

    fn decode(&self, unit: &Unit, writer: &StoreWriter, catalogs: &Catalogs) -> Decoded {
        let GroupId::Desi(g) = unit.group else {
            return Decoded::default();
        };
        let store_path = writer.dir().join(unit.group.store_file_name());
        decode_unit(g, &unit.files, &store_path, catalogs.zcat)
    }
}

/// A DESI group merged with what its store file held, ready to write.
pub struct Prepared {
    pub merged: MergedGroup,
    pub changed: bool,
    pub added: usize,
}

impl Pending for Prepared {
    fn write(self: Box<Self>, writer: &StoreWriter) -> Result<WriteOutcome, StoreError> {
        if !self.changed {
            return Ok(WriteOutcome::default());
        }
        let bytes =
            crate::writer::write_merged_file(writer.dir(), writer.writer_name(), &self.merged)?;
        Ok(WriteOutcome {
            written: true,
            fibers_added: self.added,
            coadds_replaced: 0,
            bytes_written: bytes,
        })
    }
}

/// Adds the rows the first zcatalog with rows of the group's targets has; true if it did.
fn add_zcatalog_rows(
    group: DesiGroup,
    merged: &mut MergedGroup,
    zcats: &[zcat::ZcatIndex],
    d: &mut Decoded,
) -> bool {
    let ids = group::targetids(merged);
    let row_of: std::collections::HashMap<i64, i32> = ids.iter().copied().zip(1..).collect();
    let wanted: std::collections::HashSet<i64> = ids.into_iter().collect();
    for z in zcats {
        let _guard = cfitsio_guard();
        match z.read_rows(group, &wanted) {
            Ok(None) => continue,
            Ok(Some(rows)) => {
                // Rows of targets the coadd has (read_rows picked those): keyed, never absent.
                if let Ok(t) = group::keyed(&rows, &row_of) {
                    merged
                        .tables
                        .push((PlateTable::Zcatalog.name().to_string(), t));
                    return true;
                }
            }
            Err(e) => d.failures.push((&e).into()),
        }
    }
    false
}

enum Read {
    Coadd(decode::CoaddFile),
    Redrock(decode::RedrockFile),
}

fn read_file(f: &InputFile) -> Result<Read, InputError> {
    let _guard = cfitsio_guard();
    match f.kind {
        InputKind::Desi(Kind::Coadd) => decode::decode_coadd(&f.path).map(Read::Coadd),
        InputKind::Desi(Kind::Redrock) => decode::decode_redrock(&f.path).map(Read::Redrock),
        _ => Err(InputError::new(
            &f.path,
            Problem::Desi("not a DESI input".into()),
        )),
    }
}

/// Decodes the files of one DESI group (in parallel) and merges them with its store file: the
/// store's coadd (else the first in path order) is kept, a differing one reported as a conflict;
/// redrock tables are added when the group has none, compared when it has; a group without a
/// `zcatalog` table gets the rows the zcatalogs have of its targets.
pub fn decode_unit(
    group: DesiGroup,
    files: &[InputFile],
    store_path: &Path,
    zcats: &[zcat::ZcatIndex],
) -> Decoded {
    let mut d = Decoded::default();
    let gid = GroupId::Desi(group);
    let mut base: Option<(MergedGroup, String)> = None;
    if store_path.exists() {
        match store::merged::read(store_path, gid) {
            Ok(g) => base = Some((g, "the store".into())),
            Err(e) => {
                d.failures.push(Failure {
                    file: store_path.display().to_string(),
                    error: format!("cannot read the store file: {e}"),
                });
                return d;
            }
        }
    }
    let from_store = base.is_some();
    let results: Vec<Result<Read, InputError>> = files.par_iter().map(read_file).collect();
    let mut changed = false;
    let mut added = 0;
    let mut coadd_in_run = None;
    let mut redrocks = Vec::new();
    for (f, r) in files.iter().zip(results) {
        let read = match r {
            Ok(read) => read,
            Err(e) => {
                d.failures.push((&e).into());
                continue;
            }
        };
        d.files_read += 1;
        d.bytes_read += f.bytes;
        match read {
            Read::Redrock(r) => redrocks.push((f, r)),
            Read::Coadd(c) => {
                coadd_in_run.get_or_insert(f.path.clone());
                let targets = c.targetids.len();
                let m = group::coadd_group(group, c);
                match &base {
                    None => {
                        added = targets;
                        changed = true;
                        base = Some((m, f.path.display().to_string()));
                    }
                    Some((b, kept)) if !group::same_coadd(b, &m) => d.conflicts.push(Conflict {
                        fiber: gid.to_string(),
                        kept: kept.clone(),
                        dropped: f.path.display().to_string(),
                        rule: if from_store {
                            ConflictRule::StoreFirst
                        } else {
                            ConflictRule::FirstInput
                        },
                        table: None,
                    }),
                    Some(_) => {}
                }
            }
        }
    }
    let Some((mut merged, _)) = base else {
        for (f, _) in redrocks {
            d.failures.push(Failure {
                file: f.path.display().to_string(),
                error: format!(
                    "a redrock file without its coadd: {} is neither among the inputs nor in the store",
                    group.coadd_file_name()
                ),
            });
        }
        return d;
    };
    for (f, r) in redrocks {
        let tables = match group::redrock_tables(&f.path, &merged, &r) {
            Ok(t) => t,
            Err(e) => {
                d.failures.push(Failure {
                    file: f.path.display().to_string(),
                    error: e,
                });
                continue;
            }
        };
        for (name, t) in tables {
            match merged.table(&name) {
                None => {
                    merged.tables.push((name, t));
                    changed = true;
                }
                Some(old) if old.bytes() != t.bytes() => d.conflicts.push(Conflict {
                    fiber: gid.to_string(),
                    kept: "the store".into(),
                    dropped: f.path.display().to_string(),
                    rule: ConflictRule::StoreFirst,
                    table: Some(name),
                }),
                Some(_) => {}
            }
        }
    }
    if merged.table(PlateTable::Zcatalog.name()).is_none() {
        changed |= add_zcatalog_rows(group, &mut merged, zcats, &mut d);
    }
    if let Some(coadd) = coadd_in_run {
        if merged.table(PlateTable::Redshifts.name()).is_none()
            && merged.table(PlateTable::Zcatalog.name()).is_none()
        {
            eprintln!(
                "boss-ingest: warning: {}: no redrock file ({}); its redshift columns stay empty until one is ingested",
                coadd.display(),
                group.redrock_file_name()
            );
        }
    }
    d.work = Some(Box::new(Prepared {
        merged,
        changed,
        added,
    }));
    d
}
