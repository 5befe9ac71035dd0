//! Planning an ingest: finding the input files, sorting them into plate-MJD units, and dividing the
//! units among MPI ranks by size.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use catalog::{layout, PlateMjd};
use rayon::prelude::*;

use crate::decode::{identify, plate_siblings, InputError, InputKind, SpAllIndex};

/// One input file of a unit.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub path: PathBuf,
    pub kind: InputKind,
    pub fiber: Option<i32>,
    pub bytes: u64,
}

/// All inputs of one plate-MJD: the unit of work and of output (one store file).
#[derive(Debug, Clone)]
pub struct Unit {
    pub pm: PlateMjd,
    pub files: Vec<InputFile>,
}

impl Unit {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// The whole plan, identical on every rank.
pub struct Plan {
    pub units: Vec<Unit>,
    pub spall: Vec<SpAllIndex>,
    pub failures: Vec<InputError>,
    pub files_found: usize,
}

/// Lists FITS files under the given paths (directories are searched recursively, in name order).
/// Paths given explicitly are taken whatever their name; a missing path is a failure.
pub fn discover(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<InputError>) {
    let mut files = Vec::new();
    let mut failures = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files, &mut failures);
        } else if input.is_file() {
            files.push(input.clone());
        } else {
            failures.push(InputError::new(input, "no such file or directory"));
        }
    }
    (files, failures)
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, failures: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return failures.push(InputError::new(dir, format!("cannot list directory: {e}")))
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(&p, files, failures);
        } else if is_fits_name(&p) {
            files.push(p);
        }
    }
}

fn is_fits_name(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let name = name.strip_suffix(".gz").unwrap_or(name);
    name.ends_with(".fits") || name.ends_with(".fit")
}

/// Sorts files into units. spAll files are indexed (PLATE, MJD, FIBERID only) and add a unit for
/// every plate-MJD already in the store that they cover.
pub fn plan(files: Vec<PathBuf>, store_dir: &Path) -> Plan {
    let files_found = files.len();
    let identified: Vec<Result<(InputFile, PlateMjd), InputError>> = files
        .par_iter()
        .filter_map(|path| {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let Some(kind) = InputKind::from_file_name(name) else {
                return Some(Err(InputError::new(
                    path,
                    "not a BOSS file name (expected spPlate-*, spec-*, spZbest-*, spZline-* or spAll*.fits)",
                )));
            };
            if kind == InputKind::SpAll {
                return None;
            }
            let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            Some(identify(path, kind).map(|(pm, fiber)| (InputFile { path: path.clone(), kind, fiber, bytes }, pm)))
        })
        .collect();
    let mut failures = Vec::new();
    let mut by_pm: BTreeMap<PlateMjd, Vec<InputFile>> = BTreeMap::new();
    for r in identified {
        match r {
            Ok((f, pm)) => by_pm.entry(pm).or_default().push(f),
            Err(e) => failures.push(e),
        }
    }
    // Companions next to an spPlate are read with it.
    for (pm, unit_files) in by_pm.iter_mut() {
        let siblings: HashSet<PathBuf> = unit_files
            .iter()
            .filter(|f| f.kind == InputKind::Plate)
            .flat_map(|f| plate_siblings(&f.path, *pm))
            .collect();
        unit_files.retain(|f| !siblings.contains(&f.path));
    }
    let spall_paths: Vec<&PathBuf> = files
        .iter()
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            InputKind::from_file_name(name) == Some(InputKind::SpAll)
        })
        .collect();
    let mut spall = Vec::new();
    for path in spall_paths {
        match SpAllIndex::read(path) {
            Ok(index) => spall.push(index),
            Err(e) => failures.push(e),
        }
    }
    let covered: BTreeSet<PlateMjd> = spall
        .iter()
        .flat_map(|s| s.rows.iter().map(|(id, _)| id.plate_mjd()))
        .collect();
    for pm in covered {
        if store_dir.join(layout::store_file_name(pm)).exists() {
            by_pm.entry(pm).or_default();
        }
    }
    let units = by_pm
        .into_iter()
        .map(|(pm, files)| Unit { pm, files })
        .collect();
    Plan {
        units,
        spall,
        failures,
        files_found,
    }
}
