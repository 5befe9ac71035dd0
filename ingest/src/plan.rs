//! Planning an ingest (rank 0 alone, then broadcast): finding the input files, sorting them into
//! units — one per store group (an SDSS-I–IV plate-MJD, an SDSS-V field-MJD) — and indexing spAll
//! files; every rank then takes its share of the units by size. Each file is given to the survey
//! that recognises it ([`crate::survey::identify_file`]): by its pipeline name, else by its content.
//!
//! Discovery follows symbolic links but visits each directory and each file once (a link loop is
//! walked once), takes only regular files, and keeps file names that are not UTF-8.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use model::{FieldMjd, GroupId};
use rayon::prelude::*;

pub use crate::decode::InputKind;
use crate::decode::{InputError, Problem, SpAllIndex};
use crate::sdss5;
use crate::survey::{identify_file, survey_of};

/// Serde of a path as its raw bytes (file names need not be UTF-8).
pub mod path_bytes {
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::PathBuf;

    pub fn serialize<S: serde::Serializer>(p: &std::path::Path, s: S) -> Result<S::Ok, S::Error> {
        serde::Serialize::serialize(&p.as_os_str().as_bytes().to_vec(), s)
    }

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        let bytes: Vec<u8> = serde::Deserialize::deserialize(d)?;
        Ok(PathBuf::from(std::ffi::OsString::from_vec(bytes)))
    }
}

/// One input file of a unit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    #[serde(with = "path_bytes")]
    pub path: PathBuf,
    pub kind: InputKind,
    /// The spectrum of a one-spectrum file: its fiber (SDSS-I–IV) or TARGET_INDEX (SDSS-V).
    pub row: Option<i64>,
    pub bytes: u64,
}

/// All inputs of one store group: the unit of work and of output (one store file).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Unit {
    pub group: GroupId,
    pub files: Vec<InputFile>,
}

impl Unit {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// One failure, as reported in the summary (and carried between ranks).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Failure {
    pub file: String,
    pub error: String,
}

impl From<&InputError> for Failure {
    fn from(e: &InputError) -> Self {
        Self {
            file: e.file.display().to_string(),
            error: e.problem.to_string(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.file, self.error)
    }
}

/// The whole plan, made by rank 0 and broadcast.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Plan {
    pub units: Vec<Unit>,
    /// spAll indices, cut to the plate-MJDs of the plan and of the store.
    pub spall: Vec<SpAllIndex>,
    /// SDSS-V spAll indices, cut likewise to the field-MJDs.
    pub spall5: Vec<sdss5::spall::SpAllIndex>,
    /// DESI zcatalog indices, cut likewise to the DESI coadds.
    pub zcat: Vec<crate::desi::zcat::ZcatIndex>,
    pub failures: Vec<Failure>,
    pub files_found: usize,
}

/// Lists FITS files under the given paths (directories are searched recursively, in name order).
/// Paths given explicitly are taken whatever their name; a missing path is a failure.
pub fn discover(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<InputError>) {
    let mut walk = Walk::default();
    for input in inputs {
        match std::fs::metadata(input) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => walk
                .failures
                .push(InputError::new(input, Problem::NoSuchFile)),
            Err(e) => walk.failures.push(InputError::new(input, e)),
            Ok(m) if m.is_dir() => walk.dir(input, &m),
            Ok(m) => walk.file(input, &m),
        }
    }
    (walk.files, walk.failures)
}

/// State of a discovery: what was found, and the (device, inode) of what was already visited.
#[derive(Default)]
struct Walk {
    files: Vec<PathBuf>,
    failures: Vec<InputError>,
    seen_dirs: HashSet<(u64, u64)>,
    seen_files: HashSet<(u64, u64)>,
}

impl Walk {
    fn dir(&mut self, dir: &Path, meta: &std::fs::Metadata) {
        if !self.seen_dirs.insert((meta.dev(), meta.ino())) {
            return; // a link back to a directory already walked
        }
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => return self.failures.push(InputError::new(dir, e)),
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            match std::fs::metadata(&p) {
                Ok(m) if m.is_dir() => self.dir(&p, &m),
                Ok(m) if is_fits_name(&p) => self.file(&p, &m),
                Ok(_) => {}
                Err(e) if is_fits_name(&p) => self.failures.push(InputError::new(&p, e)),
                Err(_) => {}
            }
        }
    }

    fn file(&mut self, path: &Path, meta: &std::fs::Metadata) {
        let t = meta.file_type();
        if !t.is_file() {
            let what = if t.is_fifo() {
                "a FIFO"
            } else if t.is_socket() {
                "a socket"
            } else if t.is_block_device() || t.is_char_device() {
                "a device"
            } else {
                "not a file"
            };
            return self
                .failures
                .push(InputError::new(path, Problem::NotRegular(what)));
        }
        if self.seen_files.insert((meta.dev(), meta.ino())) {
            self.files.push(path.to_path_buf());
        }
    }
}

/// The file name of a path, lossily as text (empty for none).
pub(crate) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn is_fits_name(p: &Path) -> bool {
    let name = file_name(p);
    let name = name.strip_suffix(".gz").unwrap_or(&name);
    name.ends_with(".fits") || name.ends_with(".fit")
}

/// Sorts files into units. spAll files are indexed (the key columns only) and add a unit for
/// every group already in the store that they cover.
pub fn plan(files: Vec<PathBuf>, store_dir: &Path) -> Plan {
    let files_found = files.len();
    let identified: Vec<Result<(InputFile, GroupId), InputError>> =
        files.par_iter().filter_map(|p| identify_file(p)).collect();
    let mut failures: Vec<Failure> = Vec::new();
    let mut by_group: BTreeMap<GroupId, Vec<InputFile>> = BTreeMap::new();
    for r in identified {
        match r {
            Ok((f, g)) => by_group.entry(g).or_default().push(f),
            Err(e) => failures.push((&e).into()),
        }
    }
    // Companions next to an spPlate or spField are read with it.
    for (group, unit_files) in by_group.iter_mut() {
        let survey = survey_of(group);
        let siblings: HashSet<PathBuf> = unit_files
            .iter()
            .flat_map(|f| survey.companions(f, group))
            .collect();
        unit_files.retain(|f| !siblings.contains(&f.path));
    }
    let mut spall = Vec::new();
    let mut spall5 = Vec::new();
    for path in files
        .iter()
        .filter(|p| InputKind::from_file_name(&file_name(p)) == Some(InputKind::SpAll))
    {
        if sdss5::spall::SpAllIndex::is_sdss5(path) {
            match sdss5::spall::SpAllIndex::read(path) {
                Ok(index) => spall5.push(index),
                Err(e) => failures.push((&e).into()),
            }
            continue;
        }
        match SpAllIndex::read(path) {
            Ok(index) => spall.push(index),
            Err(e) => failures.push((&e).into()),
        }
    }
    let mut zcat = Vec::new();
    for path in files
        .iter()
        .filter(|p| crate::desi::zcat::claims_name(&file_name(p)))
    {
        match crate::desi::zcat::ZcatIndex::read(path) {
            Ok(index) => zcat.push(index),
            Err(e) => failures.push((&e).into()),
        }
    }
    let covered: BTreeSet<GroupId> = spall
        .iter()
        .flat_map(|s| s.rows.iter().map(|(id, _)| GroupId::Plate(id.plate_mjd())))
        .chain(
            spall5
                .iter()
                .flat_map(|s| s.groups().into_iter().map(GroupId::Field)),
        )
        .chain(
            zcat.iter()
                .flat_map(|z| z.groups().into_iter().map(GroupId::Desi)),
        )
        .collect();
    for g in covered {
        if store_dir.join(g.store_file_name()).exists() {
            by_group.entry(g).or_default();
        }
    }
    let planned_plates: BTreeSet<model::PlateMjd> =
        by_group.keys().filter_map(|g| g.plate_mjd()).collect();
    let planned_fields: BTreeSet<FieldMjd> = by_group
        .keys()
        .filter_map(|g| match g {
            GroupId::Field(f) => Some(*f),
            _ => None,
        })
        .collect();
    for index in &mut spall {
        index.retain_plate_mjds(&planned_plates);
    }
    for index in &mut spall5 {
        index.retain_groups(&planned_fields);
    }
    let planned_desi: BTreeSet<model::DesiGroup> = by_group
        .keys()
        .filter_map(|g| match g {
            GroupId::Desi(d) => Some(*d),
            _ => None,
        })
        .collect();
    for index in &mut zcat {
        index.retain_groups(&planned_desi);
    }
    let units = by_group
        .into_iter()
        .map(|(group, files)| Unit { group, files })
        .collect();
    Plan {
        units,
        spall,
        spall5,
        zcat,
        failures,
        files_found,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_loops_fifos_and_odd_names() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("spec-3655-55240-0002.fits"), b"x").unwrap();
        std::os::unix::fs::symlink(".", d.join("a")).unwrap();
        std::os::unix::fs::symlink(".", d.join("b")).unwrap();
        std::os::unix::fs::symlink("spec-3655-55240-0002.fits", d.join("spec-link.fits")).unwrap();
        let odd = d.join(std::ffi::OsStr::from_bytes(
            b"spec-3655-55240-0003-\xff.fits",
        ));
        std::fs::write(&odd, b"x").unwrap();
        let fifo = d.join("spec-3655-55240-0004.fits");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (files, failures) = discover(&[d.to_path_buf()]);
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(files.contains(&odd));
        assert_eq!(failures.len(), 1);
        assert!(failures[0].to_string().contains("FIFO"), "{}", failures[0]);
        let (_, missing) = discover(&[d.join("nope")]);
        assert!(missing[0].to_string().contains("no such file"));
    }
}
