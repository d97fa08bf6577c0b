//! The on-disk dataset format: JSON-lines shards plus a manifest. A dataset directory holds `manifest.json`
//! (format name and version, record kind, total count, and per shard its file name, record count, byte size and
//! SHA-256) and `shard-00000.jsonl`, `shard-00001.jsonl`, … with one record per line. Shards are written to a temporary
//! name and renamed when complete, and the manifest is rewritten atomically after each shard, so a crash loses at most
//! the shard in progress and a rerun resumes after the last listed one (records are skipped by id). Readers index
//! line offsets once and then fetch any record by seeking — nothing requires the dataset to fit in memory.
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// The `format` every manifest carries; readers reject any other.
pub const FORMAT: &str = "earl-jsonl-shards";
/// The manifest `version` this code reads and writes.
pub const VERSION: u32 = 1;
/// File name of the manifest inside a dataset directory.
pub const MANIFEST: &str = "manifest.json";

/// One finished shard as the manifest lists it; [`ShardReader::open`] checks `records` and `bytes` against the file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardInfo {
    /// File name relative to the dataset directory (`shard-00000.jsonl`, …).
    pub file: String,
    /// Lines (records) in the shard.
    pub records: u64,
    /// Size of the shard file in bytes.
    pub bytes: u64,
    /// Lower-case hex SHA-256 of the shard file.
    pub sha256: String,
}

/// Contents of `manifest.json`. `records` is the sum of the shards' counts ([`read_manifest`] checks it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// `edits` ([`super::EditRecord`]) or `sequences` ([`crate::train::Sequence`]).
    pub kind: String,
    /// Records in all shards together.
    pub records: u64,
    /// Finished shards, in order.
    pub shards: Vec<ShardInfo>,
    /// Free-form provenance (source, tool, seed, image area…).
    #[serde(default)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

fn data_err(path: &Path, msg: impl Into<String>) -> Error {
    Error::Data { path: path.to_path_buf(), msg: msg.into() }
}

/// Reads and validates `dir/manifest.json`.
pub fn read_manifest(dir: &Path) -> Result<Manifest> {
    let path = dir.join(MANIFEST);
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let m: Manifest = serde_json::from_str(&text).map_err(|e| Error::Json {
        path: path.clone(),
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })?;
    if m.format != FORMAT || m.version != VERSION {
        return Err(data_err(&path, format!("format {:?} v{} is not {FORMAT} v{VERSION}", m.format, m.version)));
    }
    let total: u64 = m.shards.iter().map(|s| s.records).sum();
    if total != m.records {
        return Err(data_err(&path, format!("shards hold {total} records but the manifest says {}", m.records)));
    }
    Ok(m)
}

/// Writes `bytes` to `path` through a temporary file, fsync and a rename ([`crate::fsio::write_atomic`]).
pub use crate::fsio::write_atomic;

struct OpenShard {
    tmp: PathBuf,
    file: std::io::BufWriter<File>,
    records: u64,
    bytes: u64,
    hash: Sha256,
}

/// Appends records to a dataset directory, shard by shard; resumable.
pub struct ShardWriter {
    dir: PathBuf,
    shard_records: u64,
    manifest: Manifest,
    current: Option<OpenShard>,
    done: HashSet<String>,
}

#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<String>,
}

impl ShardWriter {
    /// Opens `dir` for writing records of `kind`, `shard_records` per shard. An existing manifest is resumed (its
    /// kind must match); the ids it already holds are reported by [`ShardWriter::is_done`].
    pub fn create_or_resume(dir: &Path, kind: &str, shard_records: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut done = HashSet::new();
        let manifest = if dir.join(MANIFEST).exists() {
            let m = read_manifest(dir)?;
            if m.kind != kind {
                return Err(data_err(dir, format!("holds {:?} records, cannot append {kind:?}", m.kind)));
            }
            let reader = ShardReader::open(dir)?;
            for i in 0..reader.len() {
                if let Some(id) = reader.get::<IdOnly>(i)?.id {
                    done.insert(id);
                }
            }
            m
        } else {
            Manifest {
                format: FORMAT.into(),
                version: VERSION,
                kind: kind.into(),
                records: 0,
                shards: vec![],
                meta: Default::default(),
            }
        };
        Ok(ShardWriter { dir: dir.to_path_buf(), shard_records: shard_records.max(1), manifest, current: None, done })
    }

    /// Whether a record of this id is already in a finished shard.
    pub fn is_done(&self, id: &str) -> bool {
        self.done.contains(id)
    }

    /// Records already present when the writer was opened plus those finished since.
    pub fn records(&self) -> u64 {
        self.manifest.records + self.current.as_ref().map_or(0, |c| c.records)
    }

    /// The manifest's free-form `meta` map, written with the manifest after each shard and by [`Self::finish`].
    pub fn meta_mut(&mut self) -> &mut serde_json::Map<String, serde_json::Value> {
        &mut self.manifest.meta
    }

    /// Appends one record (its id, when it has one, is remembered for resumption).
    pub fn push<T: Serialize>(&mut self, id: Option<&str>, record: &T) -> Result<()> {
        if self.current.is_none() {
            let tmp = self.dir.join(format!("shard-{:05}.jsonl.partial", self.manifest.shards.len()));
            let f = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
            self.current =
                Some(OpenShard { tmp, file: std::io::BufWriter::new(f), records: 0, bytes: 0, hash: Sha256::new() });
        }
        let cur = self.current.as_mut().expect("just opened");
        // A record that cannot be written (e.g. a code beyond the shard format's 16 bits) is named by its id.
        let mut line = serde_json::to_vec(record).map_err(|e| match id {
            Some(id) => data_err(&cur.tmp, format!("record `{id}`: {e}")),
            None => data_err(&cur.tmp, e.to_string()),
        })?;
        line.push(b'\n');
        cur.file.write_all(&line).map_err(|e| Error::io(&cur.tmp, e))?;
        cur.hash.update(&line);
        cur.bytes += line.len() as u64;
        cur.records += 1;
        if let Some(id) = id {
            self.done.insert(id.to_string());
        }
        if cur.records >= self.shard_records {
            self.close_shard()?;
        }
        Ok(())
    }

    fn close_shard(&mut self) -> Result<()> {
        let Some(cur) = self.current.take() else { return Ok(()) };
        let file = cur.file.into_inner().map_err(|e| Error::io(&cur.tmp, e.into_error()))?;
        file.sync_all().map_err(|e| Error::io(&cur.tmp, e))?;
        let name = format!("shard-{:05}.jsonl", self.manifest.shards.len());
        std::fs::rename(&cur.tmp, self.dir.join(&name)).map_err(|e| Error::io(&cur.tmp, e))?;
        self.manifest.shards.push(ShardInfo {
            file: name,
            records: cur.records,
            bytes: cur.bytes,
            sha256: format!("{:x}", cur.hash.finalize()),
        });
        self.manifest.records += cur.records;
        self.write_manifest()
    }

    fn write_manifest(&self) -> Result<()> {
        let text = serde_json::to_string_pretty(&self.manifest).map_err(|e| data_err(&self.dir, e.to_string()))?;
        write_atomic(&self.dir.join(MANIFEST), (text + "\n").as_bytes())
    }

    /// Closes the open shard and writes the manifest.
    pub fn finish(mut self) -> Result<Manifest> {
        self.close_shard()?;
        self.write_manifest()?;
        Ok(self.manifest)
    }
}

/// Random access to the records of a dataset directory.
pub struct ShardReader {
    dir: PathBuf,
    /// The validated manifest; the record index was built from it, so treat it as read-only.
    pub manifest: Manifest,
    /// (shard, byte offset, byte length without the newline) per record.
    index: Vec<(u32, u64, u32)>,
}

impl ShardReader {
    /// Opens a dataset: validates the manifest and each shard's size, and indexes line offsets.
    pub fn open(dir: &Path) -> Result<Self> {
        let manifest = read_manifest(dir)?;
        let mut index = Vec::with_capacity(manifest.records as usize);
        for (s, info) in manifest.shards.iter().enumerate() {
            let path = dir.join(&info.file);
            let f = File::open(&path).map_err(|e| Error::io(&path, e))?;
            let len = f.metadata().map_err(|e| Error::io(&path, e))?.len();
            if len != info.bytes {
                return Err(data_err(&path, format!("{len} bytes, the manifest says {}", info.bytes)));
            }
            let (mut off, mut n, mut line) = (0u64, 0u64, Vec::new());
            let mut r = BufReader::new(f);
            loop {
                line.clear();
                let got = r.read_until(b'\n', &mut line).map_err(|e| Error::io(&path, e))?;
                if got == 0 {
                    break;
                }
                let body = if line.last() == Some(&b'\n') { got - 1 } else { got };
                index.push((s as u32, off, body as u32));
                off += got as u64;
                n += 1;
            }
            if n != info.records {
                return Err(data_err(&path, format!("{n} records, the manifest says {}", info.records)));
            }
        }
        Ok(ShardReader { dir: dir.to_path_buf(), manifest, index })
    }

    /// Records in the dataset.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the dataset holds no record.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Record `i`, deserialised.
    pub fn get<T: DeserializeOwned>(&self, i: usize) -> Result<T> {
        let &(s, off, len) = self
            .index
            .get(i)
            .ok_or_else(|| data_err(&self.dir, format!("record {i} is out of range ({} records)", self.index.len())))?;
        let path = self.dir.join(&self.manifest.shards[s as usize].file);
        let mut f = File::open(&path).map_err(|e| Error::io(&path, e))?;
        f.seek(SeekFrom::Start(off)).map_err(|e| Error::io(&path, e))?;
        let mut buf = vec![0u8; len as usize];
        f.read_exact(&mut buf).map_err(|e| Error::io(&path, e))?;
        serde_json::from_slice(&buf).map_err(|e| self.record_error(i, e))
    }

    /// An error about record `i` that names its shard file and line (what a user opens to look at it).
    pub fn record_error(&self, i: usize, msg: impl std::fmt::Display) -> Error {
        let Some(&(s, _, _)) = self.index.get(i) else {
            return data_err(&self.dir, format!("record {i}: {msg}"));
        };
        let path = self.dir.join(&self.manifest.shards[s as usize].file);
        let line = self.index[..i].iter().filter(|x| x.0 == s).count() + 1;
        data_err(&path, format!("line {line}: {msg}"))
    }

    /// Recomputes every shard's SHA-256 and compares it with the manifest.
    pub fn verify(&self) -> Result<()> {
        for info in &self.manifest.shards {
            let path = self.dir.join(&info.file);
            let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
            let got = format!("{:x}", Sha256::digest(&bytes));
            if got != info.sha256 {
                return Err(data_err(&path, format!("SHA-256 {got} does not match the manifest ({})", info.sha256)));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Rec {
        id: String,
        x: u32,
    }

    #[test]
    fn write_read_resume_verify() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ShardWriter::create_or_resume(dir.path(), "edits", 2).unwrap();
        for x in 0..3 {
            w.push(Some(&format!("r{x}")), &Rec { id: format!("r{x}"), x }).unwrap();
        }
        assert_eq!(w.finish().unwrap().shards.len(), 2);
        let mut w = ShardWriter::create_or_resume(dir.path(), "edits", 2).unwrap();
        assert!(w.is_done("r2") && !w.is_done("r3"));
        w.push(Some("r3"), &Rec { id: "r3".into(), x: 3 }).unwrap();
        w.finish().unwrap();
        let r = ShardReader::open(dir.path()).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r.get::<Rec>(3).unwrap(), Rec { id: "r3".into(), x: 3 });
        r.verify().unwrap();
        assert!(ShardWriter::create_or_resume(dir.path(), "sequences", 2).is_err());
        // Corruption is caught: a flipped byte by the checksum, a truncated shard on open.
        let shard = dir.path().join("shard-00000.jsonl");
        let mut bytes = std::fs::read(&shard).unwrap();
        bytes[8] ^= 1;
        std::fs::write(&shard, &bytes).unwrap();
        assert!(ShardReader::open(dir.path()).unwrap().verify().unwrap_err().to_string().contains("SHA-256"));
        std::fs::write(&shard, &bytes[..5]).unwrap();
        assert!(ShardReader::open(dir.path()).is_err());
    }
}
