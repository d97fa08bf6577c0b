//! One run per directory. A training run (SFT or GRPO) holds an exclusive advisory lock (`flock`) on
//! `RUN_DIR/.lock` for as long as it runs; the file records the holder's pid, host and start time, so a second run
//! there fails at once with an error naming the holder instead of interleaving its metrics and checkpoints with the
//! first. The kernel drops the lock when the holder exits, however it exits, so a killed run never leaves a stale
//! lock behind; the file itself stays (emptied on a clean release).
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::{Error, Result};

/// The lock file inside a run directory.
pub const LOCK_FILE: &str = ".lock";

/// An exclusive lock on a run directory, released on drop.
#[derive(Debug)]
pub struct RunLock {
    dir: PathBuf,
    file: File,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Holder {
    pid: u32,
    host: String,
    started_unix: u64,
}

fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown host".into(), |s| s.trim().to_string())
}

/// "pid N on HOST (started S s ago)", from the lock file's record (it may be empty for the instant between the
/// holder taking the lock and writing it).
fn describe(text: &str) -> String {
    match serde_json::from_str::<Holder>(text) {
        Ok(h) => format!("pid {} on {} (started {} s ago)", h.pid, h.host, now_unix().saturating_sub(h.started_unix)),
        Err(_) => "another process (it has not recorded its pid yet)".into(),
    }
}

impl RunLock {
    /// Creates `dir` if needed and locks it, or fails with [`Error::Busy`] naming the run that holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // SAFETY: flock(2) on a descriptor we own; no memory is shared with the kernel.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(Error::io(&path, err));
            }
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(Error::Busy { path: dir.to_path_buf(), holder: describe(&text) });
        }
        let me = Holder { pid: std::process::id(), host: host_name(), started_unix: now_unix() };
        let record = serde_json::to_string(&me).expect("json") + "\n";
        file.set_len(0)
            .and_then(|_| file.write_all(record.as_bytes()))
            .and_then(|_| file.sync_all())
            .map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { dir: dir.to_path_buf(), file })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Still locked here, so no other holder can have written the file; closing it releases the lock.
        let _ = self.file.set_len(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_holder_and_succeeds_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        let held = RunLock::acquire(&run).unwrap();
        // flock locks belong to the open file, so a second open in this very process conflicts like another process.
        let err = RunLock::acquire(&run).unwrap_err().to_string();
        assert!(err.contains(&format!("is in use by pid {} on", std::process::id())), "{err}");
        assert!(err.contains(&run.display().to_string()) && err.lines().count() == 1, "{err}");
        drop(held);
        assert_eq!(std::fs::read_to_string(run.join(LOCK_FILE)).unwrap(), "", "released cleanly");
        let again = RunLock::acquire(&run).unwrap();
        assert_eq!(again.dir(), run);
    }
}
