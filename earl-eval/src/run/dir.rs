//! The run directory on disk (its layout is the contract of docs/eval.md, "The run directory"). One run at a time
//! holds it ([`earl_core::runlock`]). `manifest.json` holds the run's fingerprint: a directory made by another model
//! or config is refused, or with `force` emptied first, so two runs are never mixed. Finished samples are appended
//! to `samples.jsonl` one line each, flushed and fsynced before the next sample is started, so `kill -9` loses at
//! most the samples in flight; a torn last line (the kill hit a write) is cut off when the directory is opened
//! again. Images and `summary.json` are written atomically ([`earl_core::fsio`]).
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use earl_core::runlock::RunLock;
use earl_core::{fsio, Error, Result};
use serde_json::Value;

use super::manifest::differing_keys;
use super::record::{SampleRecord, Summary};

/// One line per finished sample.
pub const SAMPLES: &str = "samples.jsonl";
/// The aggregates and the manifest.
pub const SUMMARY: &str = "summary.json";
/// The fingerprint and manifest, written when the run starts.
pub const MANIFEST: &str = "manifest.json";
/// The PNGs: `images/ROW-original.png`, `ROW-edited.png`, `ROW-gt.png`.
pub const IMAGES: &str = "images";
/// Where `earl_eval::report` writes the HTML report.
pub const REPORT: &str = "report.html";

/// A locked run directory.
pub struct RunDir {
    path: PathBuf,
    _lock: RunLock,
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| Error::Json {
            path: path.to_path_buf(),
            line: e.line(),
            column: e.column(),
            msg: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(super::io_err(path, e)),
    }
}

impl RunDir {
    /// Locks `path` (created if needed) for a run with `fingerprint`; `manifest` is the rest of what the manifest
    /// records. A directory holding samples of another fingerprint (or samples without a manifest) is an error
    /// unless `force`, which discards its samples, images and summary first.
    pub fn open(path: &Path, fingerprint: &Value, manifest: &Value, force: bool) -> Result<Self> {
        let lock = RunLock::acquire(path)?;
        let dir = RunDir { path: path.to_path_buf(), _lock: lock };
        let old = read_json(&dir.file(MANIFEST))?;
        let has_samples = dir.file(SAMPLES).exists();
        let foreign = match &old {
            Some(m) => m.get("fingerprint") != Some(fingerprint),
            None => has_samples,
        };
        if foreign && !force {
            let differs = match &old {
                Some(m) => differing_keys(&m["fingerprint"], fingerprint).join(", "),
                None => "it has samples but no manifest".into(),
            };
            return Err(Error::Input(format!(
                "{} holds a run of another model or config (differs in: {differs}); pass --force to discard its \
                 samples and start over",
                path.display()
            )));
        }
        if foreign {
            tracing::warn!(dir = %path.display(), "--force: discarding the samples of another run");
            dir.discard()?;
        }
        let mut m = manifest.clone();
        m["fingerprint"] = fingerprint.clone();
        fsio::write_atomic(&dir.file(MANIFEST), (serde_json::to_string_pretty(&m).expect("json") + "\n").as_bytes())?;
        std::fs::create_dir_all(dir.file(IMAGES)).map_err(|e| super::io_err(dir.file(IMAGES), e))?;
        Ok(dir)
    }

    /// Locks an existing run directory (for `earl eval judge`) and returns its manifest.
    pub fn open_existing(path: &Path) -> Result<(Self, Value)> {
        if !path.join(MANIFEST).exists() {
            return Err(Error::Input(format!("{} is not a run directory (no {MANIFEST})", path.display())));
        }
        let lock = RunLock::acquire(path)?;
        let dir = RunDir { path: path.to_path_buf(), _lock: lock };
        let manifest = read_json(&dir.file(MANIFEST))?.unwrap_or(Value::Null);
        Ok((dir, manifest))
    }

    fn discard(&self) -> Result<()> {
        for name in [SAMPLES, SUMMARY, REPORT] {
            match std::fs::remove_file(self.file(name)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(super::io_err(self.file(name), e)),
                _ => {}
            }
        }
        if self.file(IMAGES).exists() {
            fsio::remove_dir_atomic(&self.file(IMAGES), "discard-images")?;
        }
        fsio::sync_dir(&self.path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The run-relative and absolute path of sample `row`'s image `kind` (`original`, `edited`, `gt`).
    pub fn image(&self, row: usize, kind: &str) -> (String, PathBuf) {
        let rel = format!("{IMAGES}/{row:06}-{kind}.png");
        let abs = self.path.join(&rel);
        (rel, abs)
    }

    /// The finished samples, in file order. A torn last line (no newline: the run was killed mid-write) is cut off
    /// the file; a line that does not parse elsewhere is an error naming it.
    pub fn load_samples(&self) -> Result<Vec<SampleRecord>> {
        let path = self.file(SAMPLES);
        let text = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(super::io_err(&path, e)),
        };
        let whole = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            tracing::warn!(file = %path.display(), bytes = text.len() - whole, "cutting off a torn last line");
            let f = OpenOptions::new().write(true).open(&path).map_err(|e| super::io_err(&path, e))?;
            f.set_len(whole as u64).and_then(|_| f.sync_all()).map_err(|e| super::io_err(&path, e))?;
        }
        let mut out = Vec::new();
        for (i, line) in text[..whole].split(|&b| b == b'\n').enumerate() {
            if line.iter().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            out.push(serde_json::from_slice(line).map_err(|e| Error::Json {
                path: path.clone(),
                line: i + 1,
                column: e.column(),
                msg: e.to_string(),
            })?);
        }
        Ok(out)
    }

    /// Appends one finished sample and waits until it is on disk.
    pub fn append(&self, rec: &SampleRecord) -> Result<()> {
        let path = self.file(SAMPLES);
        let line = serde_json::to_string(rec).expect("a record serializes") + "\n";
        let mut f = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| super::io_err(&path, e))?;
        f.write_all(line.as_bytes()).and_then(|_| f.sync_data()).map_err(|e| super::io_err(&path, e))?;
        fsio::fault_point(&format!("sample-{}", rec.row));
        Ok(())
    }

    /// Replaces `samples.jsonl` with `recs`, atomically (`earl eval judge`).
    pub fn rewrite_samples(&self, recs: &[SampleRecord]) -> Result<()> {
        fsio::write_atomic_with(&self.file(SAMPLES), |w| {
            for r in recs {
                serde_json::to_writer(&mut *w, r)?;
                w.write_all(b"\n")?;
            }
            Ok(())
        })
    }

    /// Updates the manifest's `judge` entry and the judge part of its fingerprint (`earl eval judge`).
    pub fn set_judge(&self, manifest: &mut Value, judge: &Value, judge_fingerprint: &Value) -> Result<()> {
        manifest["judge"] = judge.clone();
        manifest["fingerprint"]["judge"] = judge_fingerprint.clone();
        let text = serde_json::to_string_pretty(manifest).expect("json") + "\n";
        fsio::write_atomic(&self.file(MANIFEST), text.as_bytes())
    }

    /// Writes `summary.json` atomically.
    pub fn write_summary(&self, s: &Summary) -> Result<()> {
        let text = serde_json::to_string_pretty(s).expect("a summary serializes") + "\n";
        fsio::write_atomic(&self.file(SUMMARY), text.as_bytes())
    }
}

/// Writes `report.html` (the gallery, tables and histograms of [`crate::report`]) into the finished directory.
pub fn write_report_hook(dir: &RunDir, summary: &Summary, samples: &[SampleRecord]) -> Result<()> {
    let path = crate::report::write_report(dir.path())?;
    tracing::info!(report = %path.display(), n = summary.n, samples = samples.len(), "report written");
    Ok(())
}
