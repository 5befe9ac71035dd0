//! The survey interface. Each input format sits behind [`Survey`]: it recognises its files (by
//! name, and by content where the name does not tell), names the companion files read with a main
//! file, and decodes the files of one store group into a [`Pending`] write. The plan and the run
//! talk only to this interface; a new survey is one module implementing it and one entry in
//! [`SURVEYS`].

use std::path::{Path, PathBuf};

use model::GroupId;

use crate::decode::{InputError, InputKind, Problem};
use crate::plan::{file_name, Failure, InputFile, Unit};
use crate::run::Catalogs;
use crate::writer::{Conflict, StoreError, StoreWriter, WriteOutcome};

/// What a survey says of a file it was asked about.
pub enum Recognised {
    /// This survey's file: its place in the plan, or why it cannot be read.
    Mine(Result<(InputFile, GroupId), InputError>),
    /// Not this survey's: another survey may take it.
    NotMine,
}

/// One input format (a survey generation's files and store groups).
pub trait Survey: Sync {
    /// Whether `name` is one of this survey's pipeline file names (no I/O).
    fn claims_name(&self, name: &str) -> bool;
    /// Whether the file's content is this survey's, for a file whose name no survey claims (or
    /// whose claimant did not take it).
    fn claims_content(&self, path: &Path) -> bool;
    /// Identifies a file this survey claimed: its store group and role.
    fn identify(&self, path: &Path, name: &str, bytes: u64) -> Recognised;
    /// Whether units of `group` are this survey's.
    fn owns(&self, group: &GroupId) -> bool;
    /// The companion files read together with `f` of `group` (left out of the unit's own list).
    fn companions(&self, f: &InputFile, group: &GroupId) -> Vec<PathBuf>;
    /// Decodes one unit's files (on rayon threads) and merges them with what the store holds.
    fn decode(&self, unit: &Unit, writer: &StoreWriter, catalogs: &Catalogs) -> Decoded;
}

/// A decoded store group, written by the writer thread (HDF5 writes stay on one thread).
pub trait Pending: Send {
    fn write(self: Box<Self>, writer: &StoreWriter) -> Result<WriteOutcome, StoreError>;
}

/// What decoding one unit gave.
#[derive(Default)]
pub struct Decoded {
    /// What to write; None when the unit failed as a whole.
    pub work: Option<Box<dyn Pending>>,
    pub failures: Vec<Failure>,
    pub conflicts: Vec<Conflict>,
    pub files_read: u64,
    pub files_skipped: u64,
    pub bytes_read: u64,
}

/// Every survey, in the order they are asked about a file name.
pub static SURVEYS: &[&dyn Survey] = &[
    &crate::desi::Desi,
    &crate::sdss5::Sdss5,
    &crate::sdss4::Sdss4,
];

/// The survey whose units are of `group`.
pub fn survey_of(group: &GroupId) -> &'static dyn Survey {
    SURVEYS
        .iter()
        .copied()
        .find(|s| s.owns(group))
        .expect("every group kind has a survey")
}

/// What a file is, by the survey that recognises it: first by name, then by content. `None` for
/// catalog files (spAll, DESI zcatalogs), which the plan indexes on its own.
pub fn identify_file(path: &Path) -> Option<Result<(InputFile, GroupId), InputError>> {
    let name = file_name(path);
    if InputKind::from_file_name(&name) == Some(InputKind::SpAll)
        || crate::desi::zcat::claims_name(&name)
    {
        return None;
    }
    let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if let Some(s) = SURVEYS.iter().find(|s| s.claims_name(&name)) {
        if let Recognised::Mine(r) = s.identify(path, &name, bytes) {
            return Some(r);
        }
    }
    for s in SURVEYS {
        if s.claims_content(path) {
            if let Recognised::Mine(r) = s.identify(path, &name, bytes) {
                return Some(r);
            }
        }
    }
    Some(Err(InputError::new(path, Problem::NotBossName)))
}
