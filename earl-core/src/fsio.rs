//! Crash-safe output. Every file a run or a command produces (images, code grids, sidecars, manifests, rewritten
//! metrics) is written to a hidden sibling `.NAME.tmp-PID` in the same directory, flushed and fsynced, renamed over
//! the destination and the directory fsynced: a full disk or a kill mid-write leaves the previous file whole (and at
//! worst a stray temporary), never a truncated one. Directories are removed the same way — renamed to a trash name
//! first, so a half-deleted directory never sits under its real name.
//!
//! For tests, `EARL_FAULT=<point>` kills the process (SIGKILL, as `kill -9` would) when execution reaches that
//! point, so crash recovery can be exercised end to end. The points: `write:<file name>` (the temporary of that
//! file is written, the rename not done), `prune` (an old checkpoint is renamed to its trash name, not yet deleted)
//! and `step-<N>` (the metrics line of SFT step N is written, its checkpoint not). Nothing else reads the variable.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};

/// Kills the process if `EARL_FAULT` names `point` (test-only fault injection; see the module header).
pub fn fault_point(point: &str) {
    static ARMED: OnceLock<Option<String>> = OnceLock::new();
    if ARMED.get_or_init(|| std::env::var("EARL_FAULT").ok()).as_deref() == Some(point) {
        tracing::error!(point, "EARL_FAULT: killing the process");
        // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
        unsafe {
            libc::kill(libc::getpid(), libc::SIGKILL);
        }
        std::process::abort();
    }
}

/// The temporary sibling `path` is written through: `.NAME.tmp-PID` in the same directory (a rename is only atomic
/// within one filesystem; the pid keeps two writers apart).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map_or_else(|| "out".into(), |n| n.to_string_lossy().into_owned());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Whether `name` is one of our temporaries (left behind by a killed writer).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.')
        && name.rsplit_once(".tmp-").is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Fsyncs a directory, making a rename or removal inside it durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))
}

/// Writes `bytes` to `path` atomically (temporary, fsync, rename, directory fsync).
///
/// ```
/// use earl_core::fsio::{is_temp_name, write_atomic};
///
/// let dir = std::env::temp_dir().join(format!("earl-fsio-doctest-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("out.json");
/// write_atomic(&path, b"{\"old\": 1}")?;
/// write_atomic(&path, b"{\"new\": 2}")?; // replaces the file whole
/// assert_eq!(std::fs::read(&path).unwrap(), b"{\"new\": 2}");
/// // No temporary is left behind.
/// let names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
/// assert_eq!(names, ["out.json"]);
/// assert!(is_temp_name(".out.json.tmp-123") && !is_temp_name("out.json"));
/// std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), earl_core::Error>(())
/// ```
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Streams a file into place atomically: `write` fills the temporary, which replaces `path` only once it is complete
/// and on disk. On failure the temporary is removed and `path` is untouched.
pub fn write_atomic_with(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut w = BufWriter::new(File::create(&tmp)?);
        write(&mut w)?;
        let f = w.into_inner().map_err(|e| e.into_error())?;
        fault_point(&format!("write:{}", path.file_name().unwrap_or_default().to_string_lossy()));
        f.sync_all()
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    sync_dir(path.parent().unwrap_or(Path::new(".")))
}

/// The trash name of `dir`: `.trash-NAME` beside it.
pub fn trash_path(dir: &Path) -> PathBuf {
    let name = dir.file_name().map_or_else(|| "dir".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!(".trash-{name}"))
}

/// Removes a directory without ever leaving it half-deleted under its own name: rename to [`trash_path`], fsync
/// the parent, then delete. `fault` names the [`fault_point`] between the two.
pub fn remove_dir_atomic(dir: &Path, fault: &str) -> Result<()> {
    let trash = trash_path(dir);
    if trash.exists() {
        std::fs::remove_dir_all(&trash).map_err(|e| Error::io(&trash, e))?;
    }
    std::fs::rename(dir, &trash).map_err(|e| Error::io(dir, e))?;
    sync_dir(dir.parent().unwrap_or(Path::new(".")))?;
    fault_point(fault);
    std::fs::remove_dir_all(&trash).map_err(|e| Error::io(&trash, e))
}

/// Deletes what killed writers left in `dir`: trash directories and temporaries (files, or checkpoint directories
/// being assembled). Only call it on a directory this
/// process owns (under its run lock): a live writer's temporary looks the same.
pub fn remove_leftovers(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let path = e.path();
        if !(name.starts_with(".trash-") || is_temp_name(&name)) {
            continue;
        }
        let r = if path.is_dir() { std::fs::remove_dir_all(&path) } else { std::fs::remove_file(&path) };
        tracing::info!(path = %path.display(), "removed the leftover of an interrupted run");
        r.map_err(|e| Error::io(&path, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_and_a_failed_write_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("codes.json");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"second");
        let err = write_atomic_with(&p, |w| {
            w.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("codes.json") && err.to_string().contains("disk full"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"second", "the failed write left the old file alone");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("codes.json")], "no temporary left behind");
    }

    #[test]
    fn temp_names_are_recognised_and_leftovers_removed() {
        assert!(is_temp_name(&temp_path(Path::new("/r/metrics.jsonl")).file_name().unwrap().to_string_lossy()));
        assert!(!is_temp_name("metrics.jsonl") && !is_temp_name(".x.tmp-") && !is_temp_name(".x.tmp-1a"));
        let dir = tempfile::tempdir().unwrap();
        let keep = dir.path().join("checkpoint-2");
        std::fs::create_dir(&keep).unwrap();
        std::fs::write(keep.join("f"), b"x").unwrap();
        std::fs::create_dir_all(dir.path().join(".trash-checkpoint-1/sub")).unwrap();
        std::fs::write(dir.path().join(".metrics.jsonl.tmp-77"), b"x").unwrap();
        std::fs::create_dir(dir.path().join(".checkpoint-4.tmp-77")).unwrap();
        remove_leftovers(dir.path()).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("checkpoint-2")]);
        remove_dir_atomic(&keep, "test").unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
