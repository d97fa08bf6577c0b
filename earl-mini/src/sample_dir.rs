//! A sample on disk, as `earl mini sample` writes it and `earl mini score` reads it: `source.png`, `target.png`,
//! `instruction.txt`, `cot.txt` (EARL's `key: text` lines) and `scene.json` (the [`Sample`]: split, seed, index,
//! instruction, edit, source and target scene graphs, freedom and CoT dictionary). Files are written atomically
//! (earl-core's `fsio`), so an interrupted run never leaves a half-written file.
use std::path::Path;

use earl_core::{Error, Result};

use crate::render::render;
use crate::splits::Sample;

/// Writes `sample` into directory `dir` (created if missing).
pub fn write(sample: &Sample, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::Io { path: dir.to_path_buf(), source: e })?;
    earl_core::imageproc::save(&render(&sample.source), &dir.join("source.png"))?;
    earl_core::imageproc::save(&render(&sample.target), &dir.join("target.png"))?;
    let write = |name: &str, text: &str| earl_core::fsio::write_atomic(&dir.join(name), text.as_bytes());
    write("instruction.txt", &format!("{}\n", sample.instruction))?;
    write("cot.txt", &sample.cot_text())?;
    let json = serde_json::to_string_pretty(sample).map_err(|e| Error::Input(format!("serialising a sample: {e}")))?;
    write("scene.json", &(json + "\n"))
}

/// Reads the sample of directory `dir` (its `scene.json`).
pub fn read(dir: &Path) -> Result<Sample> {
    let path = dir.join("scene.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Io { path: path.clone(), source: e })?;
    serde_json::from_str(&text).map_err(|e| Error::Json {
        path,
        line: e.line(),
        column: e.column(),
        msg: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::splits::Split;

    #[test]
    fn a_written_sample_reads_back_and_missing_files_name_the_path() {
        let tmp = std::env::temp_dir().join(format!("earl-mini-sample-{}", std::process::id()));
        let s = Sample::generate(Split::STest, 1, 0);
        write(&s, &tmp).unwrap();
        assert_eq!(read(&tmp).unwrap(), s);
        assert_eq!(std::fs::read_to_string(tmp.join("instruction.txt")).unwrap().trim(), s.instruction);
        std::fs::remove_dir_all(&tmp).unwrap();
        let e = read(&tmp).unwrap_err().to_string();
        assert!(e.contains("scene.json"), "{e}");
    }
}
