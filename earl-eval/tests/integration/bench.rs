//! The benchmark adapters over `fixtures/bench-tiny` (fixtures/gen_bench.py): every benchmark opens its tiny
//! download and yields the rows, instructions, tasks, ids, image sizes and selection that the generator computed
//! with the reference's recipe; the numpy shuffle goldens; and each bad input gives its one-line error.
use std::path::{Path, PathBuf};

use earl_eval::bench::{self, shuffle, BenchmarkSource, GenericColumns};
use serde_json::Value;

fn tiny() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bench-tiny")
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(tiny().join("expected.json")).unwrap()).unwrap()
}

fn generic_columns() -> GenericColumns {
    GenericColumns {
        source: "src".into(),
        instruction: "prompt".into(),
        gt: Some("target".into()),
        task: Some("kind".into()),
        id: Some("uid".into()),
    }
}

fn open(name: &str) -> Box<dyn BenchmarkSource> {
    let cols = (name == "generic").then(generic_columns);
    bench::open(name, &tiny().join(name), cols.as_ref()).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn err(name: &str, data: &Path, cols: Option<&GenericColumns>) -> String {
    match bench::open(name, data, cols) {
        Ok(_) => panic!("{name} over {} opened", data.display()),
        Err(e) => e.to_string(),
    }
}

fn size(img: &image::RgbImage) -> Value {
    serde_json::json!([img.width(), img.height()])
}

#[test]
fn every_adapter_reads_its_fixture() {
    let exp = expected();
    for name in ["omniedit", "emuedit", "aurora", "magicbrush", "vismin", "i2ebench", "generic"] {
        let b = open(name);
        let want = &exp[name];
        let rows = want["rows"].as_array().unwrap();
        assert_eq!(b.name(), name);
        assert_eq!(b.dataset_len(), rows.len(), "{name}: rows");
        let sel: Vec<usize> = b.selection().to_vec();
        let want_sel: Vec<usize> = serde_json::from_value(want["selection"].clone()).unwrap();
        assert_eq!(sel, want_sel, "{name}: selection");
        for (i, w) in rows.iter().enumerate() {
            let r = b.read(i).unwrap_or_else(|e| panic!("{name} row {i}: {e}"));
            assert_eq!(r.row, i);
            assert_eq!(r.instruction, w["instruction"].as_str().unwrap(), "{name} row {i}: instruction");
            assert_eq!(r.task.as_deref(), w["task"].as_str(), "{name} row {i}: task");
            assert_eq!(r.source.as_deref(), w["source"].as_str(), "{name} row {i}: source");
            assert_eq!(r.native_id, w.get("id").cloned().unwrap_or(Value::Null), "{name} row {i}: id");
            assert_eq!(size(&r.source_image), w["size"], "{name} row {i}: source size");
            assert_eq!(r.ground_truth.as_ref().map(size), w.get("gt").cloned(), "{name} row {i}: gt");
        }
        // Reads in the shuffled order, across row groups and files, give the same rows as in order.
        for &i in b.selection().iter().rev() {
            assert_eq!(b.read(i).unwrap().instruction, rows[i]["instruction"].as_str().unwrap());
        }
    }
}

#[test]
fn short_shuffled_benchmarks_keep_the_whole_shuffle() {
    // EmuEdit and I2EBench keep the first 1000 of the shuffle; their fixtures have 9 and 8 rows.
    for (name, n) in [("emuedit", 9), ("i2ebench", 8)] {
        let b = open(name);
        assert_eq!(b.selection(), shuffle::permutation(n, 42).as_slice(), "{name}");
        assert_ne!(b.selection(), (0..n).collect::<Vec<_>>().as_slice(), "{name}: not shuffled");
    }
}

#[test]
fn manifest_records_files_columns_and_selection() {
    let m = open("emuedit").manifest();
    let files = m["files"].as_array().unwrap();
    let paths: Vec<&str> = files.iter().map(|f| f["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["data/test-00000-of-00002.parquet", "data/test-00001-of-00002.parquet"]);
    let first = tiny().join("emuedit/data/test-00000-of-00002.parquet");
    assert_eq!(files[0]["bytes"], std::fs::metadata(&first).unwrap().len());
    assert_eq!(files[0]["sha256"].as_str().unwrap().len(), 64);
    assert_eq!(m["columns"]["instruction"], "instruction");
    assert_eq!(m["columns"]["id"], "idx");
    assert_eq!(m["rows"], 9);
    assert_eq!(m["selection"]["rule"], "hf_shuffle_first");
    assert_eq!(m["selection"]["seed"], 42);
    assert_eq!(m["selection"]["count"], 1000);
    assert_eq!(open("vismin").manifest()["columns"]["instruction_strip"], "edit_instruction: ");
}

#[test]
fn shuffle_matches_numpy_goldens() {
    let g: Value = serde_json::from_str(&std::fs::read_to_string(tiny().join("shuffle.json")).unwrap()).unwrap();
    let (state, inc) = shuffle::Pcg64::from_seed(42).state();
    assert_eq!(
        [state.to_string(), inc.to_string()],
        [g["pcg64_state_seed42"][0].as_str().unwrap(), g["pcg64_state_seed42"][1].as_str().unwrap()]
    );
    let perms = g["permutations"].as_array().unwrap();
    assert!(perms.iter().any(|p| p["n"] == 3589 && p["seed"] == 42));
    for p in perms {
        let (seed, n) = (p["seed"].as_u64().unwrap(), p["n"].as_u64().unwrap() as usize);
        let want: Vec<usize> = serde_json::from_value(p["first"].clone()).unwrap();
        let got = shuffle::permutation(n, seed);
        assert_eq!(got.len(), n);
        assert_eq!(&got[..want.len()], want.as_slice(), "seed {seed}, n {n}");
    }
}

#[test]
fn a_renamed_column_names_the_file_the_column_and_the_columns_present() {
    let e = err("emuedit", &tiny().join("bad/emuedit-renamed"), None);
    assert!(e.contains("test-00000-of-00001.parquet"), "{e}");
    assert!(e.contains("no column \"instruction\""), "{e}");
    assert!(e.contains("columns: prompt, image, task, idx"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // The generic adapter, JSONL: a column the user named that the file lacks.
    let cols = GenericColumns { instruction: "text".into(), ..generic_columns() };
    let e = err("generic", &tiny().join("generic"), Some(&cols));
    assert!(e.contains("pairs.jsonl line 1: no column \"text\" (columns: "), "{e}");
    assert!(e.contains("prompt"), "{e}");
}

#[test]
fn an_unreadable_image_is_an_error_of_its_row() {
    let b = open_at("aurora", &tiny().join("bad/aurora-badimage"));
    assert!(b.read(0).is_ok());
    let e = b.read(1).expect_err("row 1's image is not an image").to_string();
    assert!(e.contains("test-00000-of-00001.parquet row 1, column \"input\""), "{e}");
    assert!(!e.contains('\n'), "{e}");
    // A JSONL image path that does not exist.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.jsonl"), "{\"src\": \"gone.png\", \"prompt\": \"x\"}\n").unwrap();
    let cols = GenericColumns { source: "src".into(), instruction: "prompt".into(), ..Default::default() };
    let b = bench::open("generic", dir.path(), Some(&cols)).unwrap();
    let e = b.read(0).expect_err("missing image file").to_string();
    assert!(e.contains("p.jsonl row 0, column \"src\""), "{e}");
    assert!(e.contains("gone.png"), "{e}");
}

fn open_at(name: &str, data: &Path) -> Box<dyn BenchmarkSource> {
    bench::open(name, data, None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn an_empty_benchmark_is_an_error() {
    let e = err("emuedit", &tiny().join("bad/emuedit-empty"), None);
    assert!(e.contains("emuedit: no rows in ") && e.contains("(an empty benchmark)"), "{e}");
    // No file of the split: OmniEdit reads `dev`, the AURORA fixture has only `test`.
    let e = err("omniedit", &tiny().join("aurora"), None);
    assert!(e.contains("omniedit: no *.parquet files of split \"dev\" under "), "{e}");
    // A named file that is not there.
    let e = err("magicbrush", &tiny().join("aurora"), None);
    assert!(e.contains("magicbrush: no file magicbrush-test-00000.parquet under "), "{e}");
    let e = err("aurora", &tiny().join("does-not-exist"), None);
    assert!(e.contains("no such file or directory"), "{e}");
}

#[test]
fn an_unknown_benchmark_lists_the_names() {
    let e = err("emu-edit", &tiny(), None);
    assert!(
        e.contains(
            "unknown benchmark \"emu-edit\" (known: omniedit, emuedit, aurora, magicbrush, vismin, i2ebench, generic)"
        ),
        "{e}"
    );
    let e = err("generic", &tiny().join("generic"), None);
    assert!(e.contains("generic needs its columns"), "{e}");
}
