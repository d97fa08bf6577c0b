//! `earl data tokenize`: raw image pairs + JSONL → an `edits` dataset through the tiny VQ; resumable, and the
//! records carry the codes the VQ gives at the requested area.
mod common;
use common::{earl, root};



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
    let args = ["data", "tokenize", list.to_str().unwrap(), "--vq", "fixtures/vq-tiny", "--out", out.to_str().unwrap(), "--area", "4096"];
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
    // 96×64 at area 4096 → 78×52 → smart_resize rounds to multiples of 8: 80×48 → 10×6 codes.
    let a = recs.iter().find(|r| r.id == "a").unwrap();
    assert_eq!((a.source.h, a.source.w), (6, 10));
    assert!(recs.iter().any(|r| r.id == "00000002"));

    std::fs::write(&list, "{\"source\": \"nope.png\", \"target\": \"gray.png\", \"instruction\": \"x\"}\n").unwrap();
    let (code, _, err) = earl(&["data", "tokenize", list.to_str().unwrap(), "--vq", "fixtures/vq-tiny", "--out", tmp.path().join("ds2").to_str().unwrap()]);
    assert_eq!(code, 2);
    assert!(err.contains("nope.png") && err.trim_end().lines().count() == 1, "{err}");
}
