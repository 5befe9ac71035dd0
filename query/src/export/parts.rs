//! Directory outputs (`--parquet out/`, `--arrow out/`): every rank writes its own part file,
//! `part-RRRRR.parquet` (or `.arrow`), into a staging directory beside the output, and rank 0 renames
//! the staging directory into place once every part is complete — readers never see a partial
//! directory under the final name. Ranks own contiguous runs of store groups, so the parts in name
//! order hold the rows in key order (what `pandas.read_parquet(dir)`, `pyarrow.dataset`, DuckDB's
//! `read_parquet('out/*.parquet')` and polars read as one table).

use std::fs::{File, OpenOptions};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use model::atomic::{hostname, temp_path, AtomicFile, TempDir};
use ranks::Job;

use super::stitch::{copy_range, Move};
use crate::error::{QueryError, Result};

/// How every part's file name begins.
const PART_PREFIX: &str = "part-";

/// The temporary name, in the staging directory, of a single file stitched from the parts
/// (module [`super::stitch`]).
const STITCHED_TEMP: &str = ".stitched.tmp";

/// The file name of rank `rank`'s part with extension `ext`.
pub fn part_name(rank: usize, ext: &str) -> String {
    format!("{PART_PREFIX}{rank:05}.{ext}")
}

/// True when `path` names a directory output: it ends with `/` or is an existing directory.
pub fn is_directory_form(path: &Path) -> bool {
    path.as_os_str().as_encoded_bytes().ends_with(b"/") || path.is_dir()
}

/// True for the files an export directory holds (what `--force` may replace).
fn is_part_file(name: &str) -> bool {
    name.starts_with(PART_PREFIX) && (name.ends_with(".parquet") || name.ends_with(".arrow"))
}

/// Checks a directory output before any work: a new path, an empty directory, or (with `force`) a
/// directory of part files only; anything else is refused, so an export never mixes with or
/// deletes other files.
pub fn check_directory_output(path: &Path, force: bool) -> std::result::Result<(), String> {
    if path.exists() && !path.is_dir() {
        return Err(format!(
            "{}: is a file; a directory output (ending in /) needs a directory or a new path",
            path.display()
        ));
    }
    let Ok(entries) = std::fs::read_dir(path) else {
        return Ok(());
    };
    let names: Vec<String> = entries
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    if names.is_empty() {
        return Ok(());
    }
    if force && names.iter().all(|n| is_part_file(n)) {
        return Ok(());
    }
    let shown: Vec<&str> = names.iter().take(3).map(String::as_str).collect();
    Err(format!(
        "{}: the output directory exists and is not empty ({}{}){}",
        path.display(),
        shown.join(", "),
        if names.len() > 3 { ", …" } else { "" },
        if force {
            "; --force replaces only a directory of part-*.parquet / part-*.arrow files"
        } else {
            "; give a new or empty directory, or --force to replace an earlier export"
        }
    ))
}

/// One directory output being written: its final path, its staging directory, the extension of
/// its parts.
struct Staged {
    dest: PathBuf,
    staging: TempDir,
    ext: &'static str,
}

/// The directory outputs of one export.
pub(crate) struct PartDirs {
    dirs: Vec<Staged>,
}

/// The path without a trailing `/` (`out/` → `out`), so that siblings can be named.
fn trimmed(path: &Path) -> PathBuf {
    let s = path.as_os_str().as_encoded_bytes();
    let n = s.len() - s.iter().rev().take_while(|&&b| b == b'/').count();
    if n == 0 {
        return path.to_path_buf();
    }
    PathBuf::from(std::ffi::OsStr::from_bytes(&s[..n]))
}

/// Rank `rank`'s part in `staging`: its final name there and the temporary name it is written
/// under (fixed, so that every rank can register every rank's files for removal).
fn part_paths(staging: &Path, rank: usize, ext: &str) -> (PathBuf, PathBuf) {
    let name = part_name(rank, ext);
    (staging.join(&name), staging.join(format!(".{name}.tmp")))
}

impl PartDirs {
    /// Collective: rank 0 creates a staging directory beside each output (`.NAME.tmp-HOST-PID`) and
    /// every rank learns their names and registers them, with every rank's part files, for removal
    /// if the job fails or is killed. A failure on rank 0 is an error on every rank.
    pub(crate) fn open(job: &Job, arrow: Option<&Path>, parquet: Option<&Path>) -> Result<Self> {
        let wanted: Vec<(PathBuf, &'static str)> = [(arrow, "arrow"), (parquet, "parquet")]
            .into_iter()
            .filter_map(|(p, ext)| p.map(|p| (trimmed(p), ext)))
            .collect();
        Self::open_staged(job, wanted)
    }

    /// Collective: the staging directories of the single files `arrow` and `parquet`, whose parts
    /// (pieces) every rank writes and rank 0 then stitches into each file ([`PartDirs::stitch`]).
    pub(crate) fn open_pieces(
        job: &Job,
        arrow: Option<&Path>,
        parquet: Option<&Path>,
    ) -> Result<Self> {
        let wanted = [(arrow, "arrow"), (parquet, "parquet")]
            .into_iter()
            .filter_map(|(p, ext)| p.map(|p| (p.to_path_buf(), ext)))
            .collect();
        Self::open_staged(job, wanted)
    }

    fn open_staged(job: &Job, wanted: Vec<(PathBuf, &'static str)>) -> Result<Self> {
        let files = |staging: &Path, ext: &str| -> Vec<PathBuf> {
            (0..job.size())
                .flat_map(|r| {
                    let (part, temp) = part_paths(staging, r, ext);
                    [part, temp]
                })
                .chain([staging.join(STITCHED_TEMP)])
                .collect()
        };
        let mut created = Vec::new();
        let mut failure = None;
        if job.is_root() {
            for (dest, ext) in &wanted {
                let staging = temp_path(dest, &hostname(), std::process::id());
                let _ = std::fs::remove_dir_all(&staging);
                match TempDir::new(&staging, files(&staging, ext), true) {
                    Ok(d) => created.push(d),
                    Err(e) => {
                        failure = Some(format!(
                            "{}: cannot create the staging directory {}: {e}",
                            dest.display(),
                            staging.display()
                        ));
                        break;
                    }
                }
            }
        }
        let names: Vec<String> = created
            .iter()
            .map(|d| d.path().display().to_string())
            .collect();
        let shared: std::result::Result<Vec<String>, String> = job.broadcast(
            job.is_root()
                .then(|| match &failure {
                    Some(m) => Err(m.clone()),
                    None => Ok(names),
                })
                .as_ref(),
        )?;
        let staging: Vec<TempDir> = match shared {
            Err(m) if job.is_root() => return Err(QueryError::Invalid(m)),
            Err(_) => return Err(QueryError::OtherRank),
            Ok(_) if job.is_root() => created,
            Ok(names) => names
                .iter()
                .zip(&wanted)
                .map(|(n, (_, ext))| {
                    let dir = PathBuf::from(n);
                    let f = files(&dir, ext);
                    TempDir::new(&dir, f, false).map_err(|e| {
                        QueryError::io(&dir, "cannot register the staging directory", e)
                    })
                })
                .collect::<Result<_>>()?,
        };
        Ok(Self {
            dirs: wanted
                .into_iter()
                .zip(staging)
                .map(|((dest, ext), staging)| Staged { dest, staging, ext })
                .collect(),
        })
    }

    /// The files this rank writes its Arrow and Parquet parts to (None for a format not exported
    /// to a directory).
    pub(crate) fn part_files(&self, rank: usize) -> (Option<AtomicFile>, Option<AtomicFile>) {
        let file = |ext: &str| {
            self.dirs.iter().find(|d| d.ext == ext).map(|d| {
                let (part, temp) = part_paths(d.staging.path(), rank, ext);
                AtomicFile::with_temp(&part, temp)
            })
        };
        (file("arrow"), file("parquet"))
    }

    /// Collective, after every rank committed its parts: rank 0 puts each staging directory under
    /// its final name (replacing an empty directory, or with `--force` one of part files). An error
    /// on rank 0 is an error on every rank; the staging directories are then removed.
    pub(crate) fn commit(self, job: &Job) -> Result<()> {
        job.barrier();
        let mut result = Ok(());
        let mut left = Vec::new();
        for d in self.dirs {
            if !job.is_root() || result.is_err() {
                left.push(d.staging);
                continue;
            }
            let io = |e| QueryError::io(&d.dest, "cannot put the export directory into place", e);
            let step = (|| {
                if d.dest.is_dir() {
                    // Checked before any work to hold an earlier export's parts only; only those go
                    // (anything added since makes remove_dir fail, and nothing else is deleted).
                    for e in std::fs::read_dir(&d.dest).map_err(io)?.flatten() {
                        if is_part_file(&e.file_name().to_string_lossy()) {
                            std::fs::remove_file(e.path()).map_err(io)?;
                        }
                    }
                    std::fs::remove_dir(&d.dest).map_err(io)?;
                }
                d.staging.commit(&d.dest).map_err(io)
            })();
            result = step;
        }
        let failed = job.any(result.is_err());
        if !failed {
            // Rank 0 committed them: the other ranks forget theirs.
            left.into_iter().for_each(TempDir::disarm);
        }
        match result {
            Err(e) => Err(e),
            Ok(()) if failed => Err(QueryError::OtherRank),
            Ok(()) => Ok(()),
        }
    }

    /// Collective, after every rank committed its pieces: each staging directory's pieces are
    /// joined, in rank order, into its single file, Arrow IPC or Parquet ([`super::stitch`]). Rank 0
    /// plans the join from the pieces' footers, turns its own piece into the file (a temporary name
    /// in the staging directory) and writes the footer; every other rank copies its own rows into
    /// the file at their offset, all at once; rank 0 then renames the file into place, and the
    /// staging directories with their pieces are removed. An error on any rank is an error on every
    /// rank; nothing appears under a final name.
    pub(crate) fn stitch(self, job: &Job) -> Result<()> {
        job.barrier();
        let mut result = Ok(());
        for d in &self.dirs {
            // Collective, with the same outcome on every rank: all ranks stop together.
            result = d.join_pieces(job);
            if result.is_err() {
                break;
            }
        }
        // Dropped, the staging directories go with their pieces (on every rank: whichever is
        // first removes them, the others find nothing left).
        drop(self);
        result
    }
}

/// Collective: this rank's outcome, or [`QueryError::OtherRank`] when it succeeded and another
/// rank failed.
fn together(job: &Job, result: Result<()>) -> Result<()> {
    let failed = job.any(result.is_err());
    result?;
    if failed {
        return Err(QueryError::OtherRank);
    }
    Ok(())
}

impl Staged {
    /// The single file's temporary name, in the staging directory.
    fn joined_temp(&self) -> PathBuf {
        self.staging.path().join(STITCHED_TEMP)
    }

    /// Collective: joins this output's pieces into its single file (see [`PartDirs::stitch`]).
    fn join_pieces(&self, job: &Job) -> Result<()> {
        let mut root_error = None;
        let plan = job.is_root().then(|| {
            self.start_joined_file(job.size()).map_err(|e| {
                let m = e.to_string();
                root_error = Some(e);
                m
            })
        });
        let moves: Vec<(usize, Move)> = match job.broadcast(plan.as_ref())? {
            Ok(moves) => moves,
            Err(_) => return Err(root_error.unwrap_or(QueryError::OtherRank)),
        };
        let mine: Vec<Move> = moves
            .iter()
            .filter(|(rank, _)| *rank == job.rank())
            .map(|(_, m)| *m)
            .collect();
        together(job, self.copy_rows(job.rank(), &mine))?;
        let committed = if job.is_root() {
            AtomicFile::with_temp(&self.dest, self.joined_temp())
                .commit()
                .map_err(|e| QueryError::io(&self.dest, "cannot put the export into place", e))
        } else {
            Ok(())
        };
        together(job, committed)
    }

    /// Rank 0: plans the join and starts the file — rank 0's own piece renamed and cut after its
    /// rows (or, if rank 0 wrote none, a new file with the first piece's header), the footer at its
    /// offset. Returns the copies the ranks still have to make, with the rank that makes each.
    fn start_joined_file(&self, ranks: usize) -> Result<Vec<(usize, Move)>> {
        let pieces: Vec<(usize, PathBuf)> = (0..ranks)
            .map(|r| (r, part_paths(self.staging.path(), r, self.ext).0))
            .filter(|(_, p)| p.exists())
            .collect();
        let refs: Vec<&Path> = pieces.iter().map(|(_, p)| p.as_path()).collect();
        let joint = super::stitch::plan(self.ext, &refs, &self.dest)?;
        let io = |e| QueryError::io(&self.dest, "cannot write the export", e);
        let temp = self.joined_temp();
        let mut moves: Vec<(usize, Move)> = pieces
            .iter()
            .map(|(r, _)| *r)
            .zip(joint.moves.iter().copied())
            .collect();
        let file = if let Some((0, first)) = pieces.first() {
            std::fs::rename(first, &temp).map_err(io)?;
            let file = OpenOptions::new().write(true).open(&temp).map_err(io)?;
            let own = moves.remove(0).1;
            file.set_len(own.to + own.len).map_err(io)?;
            file
        } else {
            let file = File::create(&temp).map_err(io)?;
            let header = Move {
                from: 0,
                len: joint.header,
                to: 0,
            };
            copy_range(&File::open(refs[0]).map_err(io)?, &file, header).map_err(io)?;
            file
        };
        file.write_all_at(&joint.tail, joint.rows_end())
            .map_err(io)?;
        Ok(moves)
    }

    /// Copies this rank's rows (`moves`, from its piece) into the file and makes them durable.
    fn copy_rows(&self, rank: usize, moves: &[Move]) -> Result<()> {
        if moves.is_empty() {
            return Ok(());
        }
        let io = |e| {
            QueryError::io(
                &self.dest,
                "cannot copy this rank's rows into the export",
                e,
            )
        };
        let piece = File::open(part_paths(self.staging.path(), rank, self.ext).0).map_err(io)?;
        let file = OpenOptions::new()
            .write(true)
            .open(self.joined_temp())
            .map_err(io)?;
        for m in moves {
            copy_range(&piece, &file, *m).map_err(io)?;
        }
        file.sync_data().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_outputs_are_named_by_a_trailing_slash() {
        assert!(is_directory_form(Path::new("out/")));
        assert!(!is_directory_form(Path::new("no-such-out.parquet")));
        assert_eq!(trimmed(Path::new("a/out//")), PathBuf::from("a/out"));
        assert_eq!(trimmed(Path::new("/")), PathBuf::from("/"));
        assert_eq!(part_name(3, "parquet"), "part-00003.parquet");
    }

    #[test]
    fn only_new_empty_or_part_directories_are_accepted() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        assert!(check_directory_output(&out, false).is_ok());
        std::fs::create_dir(&out).unwrap();
        assert!(check_directory_output(&out, false).is_ok());
        std::fs::write(out.join("part-00000.parquet"), b"x").unwrap();
        let e = check_directory_output(&out, false).unwrap_err();
        assert!(
            e.contains("not empty") && e.contains("part-00000.parquet"),
            "{e}"
        );
        assert!(check_directory_output(&out, true).is_ok());
        std::fs::write(out.join("notes.txt"), b"x").unwrap();
        assert!(check_directory_output(&out, true).is_err());
        std::fs::write(d.path().join("file"), b"x").unwrap();
        assert!(check_directory_output(&d.path().join("file"), false).is_err());
    }
}
