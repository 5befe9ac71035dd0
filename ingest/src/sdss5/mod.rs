//! SDSS-V (DR18 and later) inputs: spec files (full and lite), spField files with their spZbest and
//! spZline, and the spAll / spAll-lite catalogs, recognised by content ([`identify`]), decoded on
//! rayon threads ([`decode`]), merged into the field-MJD's store file ([`group`]) and written in the
//! merged layout (`store::merged`). The store key is the field-MJD coadd and TARGET_INDEX; the
//! CATALOGID is a column of every row.

pub mod decode;
pub mod group;
pub mod identify;
pub mod names;
pub mod spall;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use model::layout::PlateTable;
use model::{FieldMjd, GroupId};
use rayon::prelude::*;

pub use identify::Kind;

use crate::decode::{InputError, Problem};
use crate::plan::{Failure, InputFile, InputKind, Unit};
use crate::run::Catalogs;
use crate::survey::{Decoded, Pending, Recognised, Survey};
use crate::writer::{StoreError, StoreWriter, WriteOutcome};
use fitsread::cfitsio_guard;
use group::{Changes, Content};
use spall::SpAllIndex;

/// A field-MJD decoded and merged with what its store file held, ready to write.
pub struct Prepared {
    pub group: FieldMjd,
    pub content: Content,
    pub changes: Changes,
}

/// The SDSS-V survey.
pub struct Sdss5;

impl Survey for Sdss5 {
    fn claims_name(&self, name: &str) -> bool {
        identify::claims_name(name)
    }

    fn claims_content(&self, path: &Path) -> bool {
        crate::decode::survey_of(path) == Some(crate::decode::Other::Sdss5)
    }

    fn identify(&self, path: &Path, _name: &str, bytes: u64) -> Recognised {
        Recognised::Mine(identify::identify(path).map(|id| {
            (
                InputFile {
                    path: path.to_path_buf(),
                    kind: InputKind::Sdss5(id.kind),
                    row: id.target_index,
                    bytes,
                },
                GroupId::Field(id.group),
            )
        }))
    }

    fn owns(&self, group: &GroupId) -> bool {
        matches!(group, GroupId::Field(_))
    }

    fn companions(&self, f: &InputFile, group: &GroupId) -> Vec<PathBuf> {
        match (f.kind, group) {
            (InputKind::Sdss5(Kind::Field), GroupId::Field(g)) => {
                decode::field_siblings(&f.path, *g)
            }
            _ => Vec::new(),
        }
    }

    fn decode(&self, unit: &Unit, writer: &StoreWriter, catalogs: &Catalogs) -> Decoded {
        let GroupId::Field(g) = unit.group else {
            return Decoded::default();
        };
        let store_path = writer.dir().join(unit.group.store_file_name());
        decode_unit(g, &unit.files, &store_path, catalogs.spall5)
    }
}

impl Pending for Prepared {
    fn write(self: Box<Self>, writer: &StoreWriter) -> Result<WriteOutcome, StoreError> {
        write(*self, writer.dir(), writer.writer_name())
    }
}

fn decode_file(f: &InputFile, group: FieldMjd) -> Result<decode::Contribution, InputError> {
    let _guard = cfitsio_guard();
    match f.kind {
        InputKind::Sdss5(Kind::Spec) => {
            let target = f.row.ok_or_else(|| {
                InputError::new(
                    &f.path,
                    Problem::Sdss5("planned without its TARGET_INDEX".into()),
                )
            })?;
            decode::decode_spec(&f.path, group, target)
        }
        InputKind::Sdss5(Kind::Field) => decode::decode_field(&f.path, group),
        InputKind::Sdss5(kind) => decode::decode_companion(&f.path, kind),
        _ => Err(InputError::new(
            &f.path,
            Problem::Sdss5("not an SDSS-V input".into()),
        )),
    }
}

/// Decodes the files of one field-MJD (in parallel) and merges them, and the spAll rows of its
/// targets, with what the store file at `store_path` holds.
pub fn decode_unit(
    group: FieldMjd,
    files: &[InputFile],
    store_path: &Path,
    spall: &[SpAllIndex],
) -> Decoded {
    let mut d = Decoded::default();
    let mut stored = if store_path.exists() {
        match store::merged::read(store_path, GroupId::Field(group))
            .map_err(|e| e.to_string())
            .and_then(|g| Content::from_merged(g, store_path))
        {
            Ok(c) => c,
            Err(e) => {
                d.failures.push(Failure {
                    file: store_path.display().to_string(),
                    error: format!("cannot read the store file: {e}"),
                });
                return d;
            }
        }
    } else {
        Content::default()
    };
    let results: Vec<Result<decode::Contribution, InputError>> =
        files.par_iter().map(|f| decode_file(f, group)).collect();
    let mut batch = Content::default();
    for (f, r) in files.iter().zip(results) {
        let added = r.and_then(|c| {
            batch
                .add(group, &f.path, c, &mut d.conflicts)
                .map_err(|e| InputError::new(&f.path, e))
        });
        match added {
            Ok(()) => {
                d.files_read += 1;
                d.bytes_read += f.bytes;
            }
            Err(e) => d.failures.push((&e).into()),
        }
    }
    add_spall_rows(group, &stored, &mut batch, spall, &mut d);
    match stored.merge(group, store_path, batch, &mut d.conflicts) {
        Ok(changes) => {
            d.work = Some(Box::new(Prepared {
                group,
                content: stored,
                changes,
            }))
        }
        Err(e) => d.failures.push(Failure {
            file: store_path.display().to_string(),
            error: e.to_string(),
        }),
    }
    d
}

/// Adds the spAll rows of the targets (in the store or this run) that have no spall row yet.
fn add_spall_rows(
    group: FieldMjd,
    stored: &Content,
    batch: &mut Content,
    spall: &[SpAllIndex],
    d: &mut Decoded,
) {
    let mut have: HashSet<i64> = stored
        .table_keys(PlateTable::Spall)
        .into_iter()
        .chain(batch.table_keys(PlateTable::Spall))
        .collect();
    let targets: Vec<i64> = stored
        .coadds
        .keys()
        .chain(batch.coadds.keys())
        .copied()
        .collect();
    for index in spall {
        let wanted: HashSet<(FieldMjd, i64)> = targets
            .iter()
            .filter(|t| !have.contains(t))
            .map(|&t| (group, t))
            .collect();
        if wanted.is_empty()
            || !index
                .rows
                .iter()
                .any(|(g, t, _)| wanted.contains(&(*g, *t)))
        {
            continue;
        }
        let _guard = cfitsio_guard();
        let result = index.read_rows(&wanted).and_then(|rows| {
            have.extend(
                rows.key_values(names::col::TARGET_INDEX)
                    .unwrap_or_default(),
            );
            let c = decode::Contribution {
                tables: vec![(PlateTable::Spall, rows)],
                ..Default::default()
            };
            batch
                .add(group, &index.path, c, &mut d.conflicts)
                .map_err(|e| InputError::new(&index.path, e))
        });
        if let Err(e) = result {
            d.failures.push((&e).into());
        }
    }
}

/// Writes a prepared field-MJD to its store file (a new file, renamed into place when complete);
/// nothing when nothing changed.
pub fn write(p: Prepared, dir: &Path, writer: &str) -> Result<WriteOutcome, StoreError> {
    if !p.changes.changed {
        return Ok(WriteOutcome::default());
    }
    let merged = p.content.to_merged(p.group);
    let bytes = crate::writer::write_merged_file(dir, writer, &merged)?;
    Ok(WriteOutcome {
        written: true,
        fibers_added: p.changes.added,
        coadds_replaced: p.changes.replaced,
        bytes_written: bytes,
    })
}
