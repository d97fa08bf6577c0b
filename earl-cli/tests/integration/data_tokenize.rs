//! `earl data tokenize`: raw image pairs + JSONL → an `edits` dataset through the tiny VQ; resumable, and the
//! records carry the codes the VQ gives at the requested area.
use crate::common::{earl, root};

#[test]
fn tokenize_pairs_resume_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    for f in ["bundle-tiny/example.png", "images/photo.png", "images/gray.png"] {
        let src = root().join("fixtures").join(f);
        std::fs::copy(&src, tmp.path().join(src.file_name().unwrap())).unwrap();
    }
    let list = tmp.path().join("pairs.jsonl");
    std::fs::write(
        &list,
        "{\"id\": \"a\", \"source\": \"example.png\", \"target\": \"photo.png\", \"instruction\": \"make it a photo\"}\n\
         {\"id\": \"b\", \"source\": \"photo.png\", \"edited\": \"gray.png\", \"instruction\": \"gray\", \"CoT\": {\"Step1\": \"x\"}}\n\
         {\"source\": \"gray.png\", \"target\": \"example.png\", \"instruction\": \"colour\"}\n",
    )
    .unwrap();
    let out = tmp.path().join("ds");
    let args = [
        "data",
        "tokenize",
        list.to_str().unwrap(),
        "--vq",
        "fixtures/vq-tiny",
        "--out",
        out.to_str().unwrap(),
        "--area",
        "4096",
    ];
    let (code, stdout, err) = earl(&args);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("3 records"), "{stdout}");
    let (code, stdout, _) = earl(&args); // resume: nothing new
    assert_eq!(code, 0);
    assert!(stdout.contains("3 records"), "{stdout}");
    let (code, stdout, err) = earl(&["data", "verify", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{stdout}{err}");
    let reader = earl_core::data::ShardReader::open(&out).unwrap();
    let recs: Vec<earl_core::data::EditRecord> = (0..reader.len()).map(|i| reader.get(i).unwrap()).collect();
    let b = recs.iter().find(|r| r.id == "b").unwrap();
    assert_eq!(b.cot.get("Step1").map(String::as_str), Some("x"));
    // 96×64 at area 4096 → 78×52 pixels (no snap, as EARL) → the encoder floors: 9×6 codes.
    let a = recs.iter().find(|r| r.id == "a").unwrap();
    assert_eq!((a.source.h(), a.source.w()), (6, 9));
    assert!(recs.iter().any(|r| r.id == "00000002"));

    // A repeated id is an error naming both lines, before any image is encoded (it used to be dropped silently).
    let dup = tmp.path().join("dup.jsonl");
    std::fs::write(
        &dup,
        "{\"id\": \"a\", \"source\": \"example.png\", \"target\": \"photo.png\", \"instruction\": \"x\"}\n\
         {\"id\": \"a\", \"source\": \"photo.png\", \"target\": \"gray.png\", \"instruction\": \"y\"}\n",
    )
    .unwrap();
    let ds3 = tmp.path().join("ds3");
    let (code, _, err) =
        earl(&["data", "tokenize", dup.to_str().unwrap(), "--vq", "fixtures/vq-tiny", "--out", ds3.to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("line 2: id `a` repeats line 1") && err.trim_end().lines().count() == 1, "{err}");
    assert!(!ds3.join("manifest.json").exists(), "nothing written");

    std::fs::write(&list, "{\"source\": \"nope.png\", \"target\": \"gray.png\", \"instruction\": \"x\"}\n").unwrap();
    let (code, _, err) = earl(&[
        "data",
        "tokenize",
        list.to_str().unwrap(),
        "--vq",
        "fixtures/vq-tiny",
        "--out",
        tmp.path().join("ds2").to_str().unwrap(),
    ]);
    assert_eq!(code, 2);
    assert!(err.contains("nope.png") && err.trim_end().lines().count() == 1, "{err}");
}

fn records(dir: &std::path::Path) -> std::collections::BTreeMap<String, earl_core::data::EditRecord> {
    let reader = earl_core::data::ShardReader::open(dir).unwrap();
    (0..reader.len())
        .map(|i| reader.get::<earl_core::data::EditRecord>(i).unwrap())
        .map(|r| (r.id.clone(), r))
        .collect()
}

/// HF-style parquet (fixtures/gen_parquet.py: two train files + a test file, row groups of 2, snappy and zstd,
/// `datasets.Image` structs, one image stored by path only) tokenizes to exactly the records the JSONL path gives
/// for the same pairs, with the reference's CoT box rescaling and the split filter applied; reruns resume.
#[test]
fn tokenize_parquet_matches_the_jsonl_path_and_the_reference_cot_rescaling() {
    let tmp = tempfile::tempdir().unwrap();
    let (pq_out, jl_out) = (tmp.path().join("pq"), tmp.path().join("jl"));
    let fx = root().join("fixtures/parquet-tiny");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fx.join("expected.json")).unwrap()).unwrap();
    let area = expected["area"].as_u64().unwrap().to_string();
    let common = ["--vq", "fixtures/vq-tiny", "--area", area.as_str(), "--seed", "3"];
    let parquet_args = [
        &["data", "tokenize", "--parquet", "fixtures/parquet-tiny/data", "--split", "train"][..],
        &["--original-image-key", "src_img", "--edited-image", "edited_img", "--edit-instruction", "edit_prompt"],
        &[
            "--id-key",
            "uid",
            "--CoT-keys",
            "reasoning",
            "--meta-columns",
            "edit_type",
            "--out",
            pq_out.to_str().unwrap(),
        ],
        &common,
    ]
    .concat();
    let (code, stdout, err) = earl(&parquet_args);
    assert_eq!(code, 0, "{stdout}{err}");
    assert!(stdout.contains("8 records"), "{stdout}");
    let (code, stdout, err) = earl(&parquet_args); // resume: nothing new, nothing duplicated
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("8 records"), "{stdout}");
    let list = "fixtures/parquet-tiny/pairs/pairs.jsonl";
    let (code, stdout, err) =
        earl(&[&["data", "tokenize", list, "--out", jl_out.to_str().unwrap()][..], &common].concat());
    assert_eq!(code, 0, "{stdout}{err}");

    let (pq, jl) = (records(&pq_out), records(&jl_out));
    let rows = expected["rows"].as_object().unwrap();
    assert_eq!(pq.keys().collect::<Vec<_>>(), rows.keys().collect::<Vec<_>>(), "train rows only, ids from `uid`");
    assert_eq!(pq, jl, "parquet and JSONL inputs must give identical records");
    for (id, want) in rows {
        let r = &pq[id];
        assert_eq!(r.instruction, want["instruction"].as_str().unwrap());
        let cot: std::collections::BTreeMap<String, String> = serde_json::from_value(want["cot"].clone()).unwrap();
        assert_eq!(r.cot, cot, "row {id}: CoT after the reference's box rescaling");
        assert_eq!(r.meta["edit_type"], want["meta"]["edit_type"].as_str().unwrap());
        assert_ne!(r.source, r.edited, "row {id}: source and edited images are different pictures");
    }

    // Without an id column, ids are row indices over the sorted train files (5 + 3 rows); a wrong column name is a
    // one-line error naming the file and the columns it has.
    let no_id = tmp.path().join("noid");
    let args = [
        &["data", "tokenize", "--parquet", "fixtures/parquet-tiny/data", "--split", "train"][..],
        &["--source-column", "src_img", "--edited-column", "edited_img", "--instruction-column", "prompt_list"],
        &["--out", no_id.to_str().unwrap()],
        &common,
    ]
    .concat();
    let (code, _, err) = earl(&args);
    assert_eq!(code, 0, "{err}");
    let r = records(&no_id);
    assert_eq!(
        r.keys().map(|k| k.parse::<u32>().unwrap()).collect::<std::collections::BTreeSet<_>>(),
        (0..8).collect()
    );
    assert_eq!(r["1"].instruction, "remove the cat", "a list column gives its first element");
    assert_eq!(r["1"].source, pq["11"].source);
    let bad_out = tmp.path().join("bad");
    let bad =
        [&args[..args.len() - common.len() - 2], &["--out", bad_out.to_str().unwrap()], &["--id-key", "nope"], &common]
            .concat();
    let (code, _, err) = earl(&bad);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("no column \"nope\"") && err.contains("edit_prompt") && err.trim_end().lines().count() == 1,
        "{err}"
    );
}

#[test]
fn verify_refuses_a_label_outside_the_model_vocabulary() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("seqs");
    let mut w = earl_core::data::ShardWriter::create_or_resume(&out, "sequences", 8).unwrap();
    let s = |labels: Vec<i64>| earl_core::train::Sequence { input_ids: vec![1, 5, 6, 2], labels };
    w.push(None, &s(vec![-100, 5, 6, 2])).unwrap();
    w.push(None, &s(vec![-100, 5, 6, 400])).unwrap(); // lm-tiny-gqa has 320 tokens
    w.finish().unwrap();
    let dir = out.to_str().unwrap();
    let (code, stdout, err) = earl(&["data", "verify", dir]);
    assert_eq!(code, 0, "no model given: structure only: {stdout}{err}");
    let (code, _, err) = earl(&["data", "verify", dir, "--model", "fixtures/lm-tiny-gqa"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("shard-00000.jsonl: line 2: label 400 at position 3") && err.lines().count() == 1, "{err}");
}
