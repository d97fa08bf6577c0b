//! Tokenizer tests against the tiny fixture vocabulary (fixtures/tok-tiny, written by fixtures/gen_tok.py): ids
//! equal tiktoken's and tokenizers' goldens in both file formats, decoding round-trips, roles and visual ids.
use std::path::PathBuf;

use proptest::prelude::*;
use serde_json::Value;

use super::*;

pub(crate) fn tiny_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tok-tiny")
}

/// The tiny tokenizer in both formats: (tiktoken files, tokenizer.json).
pub(crate) fn tiny_both() -> [Emu3Tokenizer; 2] {
    let d = tiny_dir();
    [
        Emu3Tokenizer::from_tiktoken_files(d.join(TIKTOKEN_FILE), d.join(VISION_TOKENS_FILE)).expect("tiktoken"),
        Emu3Tokenizer::from_tokenizer_json(d.join(TOKENIZER_JSON)).expect("tokenizer.json"),
    ]
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("golden.json")).expect("golden")).expect("json")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

#[test]
fn encode_matches_reference_goldens_in_both_formats() {
    let g = golden();
    for tok in tiny_both() {
        for case in g["encode"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            // tokenizer.json extracts special tokens before NFC; the reference (and the tiktoken path) after.
            let key = if tok.format() == "tokenizer.json" && case.get("hf_ids").is_some() { "hf_ids" } else { "ids" };
            assert_eq!(tok.encode(text).unwrap(), ids(&case[key]), "{} on {text:?}", tok.format());
        }
    }
}

#[test]
fn decode_matches_reference_goldens_and_round_trips() {
    let g = golden();
    for tok in tiny_both() {
        for case in g["decode"].as_array().unwrap() {
            assert_eq!(tok.decode(&ids(&case["ids"])).unwrap(), case["text"].as_str().unwrap(), "{}", tok.format());
        }
        for case in g["encode"].as_array().unwrap() {
            let text = case["text"].as_str().unwrap();
            if tok.format() == "tokenizer.json" && case.get("hf_ids").is_some() {
                continue; // normalized around the special token, not as a whole: not NFC(text)
            }
            let nfc: String = text.nfc().collect();
            assert_eq!(tok.decode(&tok.encode(text).unwrap()).unwrap(), nfc, "{}", tok.format());
        }
    }
}

#[test]
fn roles_visual_range_and_vocab_agree_with_fixture() {
    let g = golden();
    for tok in tiny_both() {
        let s = tok.special();
        let r = &g["roles"];
        let got = [s.bos, s.eos, s.pad, s.img, s.boi, s.eoi, s.eol, s.eof];
        for ((name, _), id) in SpecialIds::ROLES.iter().zip(got) {
            assert_eq!(r[name].as_u64(), Some(id as u64), "{name}");
        }
        assert_eq!(tok.vocab_size() as u64, g["vocab_size"].as_u64().unwrap());
        assert_eq!(tok.first_visual_id() as u64, g["first_visual_id"].as_u64().unwrap());
        assert_eq!(tok.codebook_size() as u64, g["codebook_size"].as_u64().unwrap());
        assert_eq!(tok.visual_ids().end as usize, tok.vocab_size());
        for code in [0, 1, 63] {
            let id = tok.visual_id(code).unwrap();
            assert_eq!(tok.encode(&visual_token(code)).unwrap(), vec![id]);
            assert_eq!(tok.visual_code(id), Some(code));
            assert_eq!(tok.token_to_id(&visual_token(code)), Some(id));
        }
        assert!(tok.visual_id(64).is_err());
        assert_eq!(tok.visual_code(s.eoi), None);
        assert_eq!(tok.token_to_id("<|extra_200|>"), Some(s.eol));
        assert_eq!(tok.token_to_id("a"), Some(97));
        assert_eq!(tok.token_to_id("not one token at all"), None);
        assert!(tok.decode(&[tok.vocab_size() as u32]).is_err());
    }
}

#[test]
fn from_dir_prefers_original_files_and_falls_back_to_tokenizer_json() {
    assert_eq!(Emu3Tokenizer::from_dir(tiny_dir()).unwrap().format(), "tiktoken");
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(tiny_dir().join(TOKENIZER_JSON), tmp.path().join(TOKENIZER_JSON)).unwrap();
    assert_eq!(Emu3Tokenizer::from_dir(tmp.path()).unwrap().format(), "tokenizer.json");
    let empty = tempfile::tempdir().unwrap();
    let err = Emu3Tokenizer::from_dir(empty.path()).unwrap_err().to_string();
    assert!(err.contains("no tokenizer found"), "{err}");
}

#[test]
fn tokenizer_config_overrides_roles() {
    let tmp = tempfile::tempdir().unwrap();
    for f in [TIKTOKEN_FILE, VISION_TOKENS_FILE] {
        std::fs::copy(tiny_dir().join(f), tmp.path().join(f)).unwrap();
    }
    let cfg = tmp.path().join(TOKENIZER_CONFIG);
    std::fs::write(
        &cfg,
        r#"{"bos_token": "<|extra_203|>", "eos_token": {"content": "<|im_end|>"}, "pad_token": null}"#,
    )
    .unwrap();
    let tok = Emu3Tokenizer::from_dir(tmp.path()).unwrap();
    assert_eq!(tok.special().eos, tok.token_to_id("<|im_end|>").unwrap());
    assert_eq!(tok.special().bos, tok.token_to_id("<|extra_203|>").unwrap());
    std::fs::write(&cfg, r#"{"img_token": "<|no such token|>"}"#).unwrap();
    let err = Emu3Tokenizer::from_dir(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json") && err.contains("<|no such token|> (role img) is missing"), "{err}");
    std::fs::write(&cfg, "{\n  \"bos_token\": ,").unwrap();
    let err = Emu3Tokenizer::from_dir(tmp.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json:2:"), "{err}");
}

#[test]
fn tokenizer_is_shareable_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Emu3Tokenizer>();
}

#[test]
fn encode_ordinary_keeps_special_surface_forms_as_text() {
    let [tok, hf] = tiny_both();
    let ids = tok.encode_ordinary("<|image start|>").unwrap();
    assert!(ids.len() > 1 && ids.iter().all(|&i| i < 456));
    assert_eq!(tok.decode(&ids).unwrap(), "<|image start|>");
    assert!(hf.encode_ordinary("x").is_err());
}

fn write(dir: &std::path::Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn bad_files_are_one_line_errors_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let vision = tiny_dir().join(VISION_TOKENS_FILE);
    let full = std::fs::read_to_string(tiny_dir().join(TIKTOKEN_FILE)).unwrap();
    let cases = [
        ("bad_b64.tiktoken", full.replacen("YQ== 97", "@@@ 97", 1), "bad base64"),
        ("bad_rank.tiktoken", full.replacen("YQ== 97", "YQ== x", 1), "line 98: bad rank"),
        ("gap.tiktoken", full.replacen("YQ== 97\n", "", 1), "rank 97 missing"),
        ("dup.tiktoken", full.replacen("YQ== 97", "YQ== 97\nYg== 97", 1), "rank 97 given twice"),
        ("fields.tiktoken", full.replacen("YQ== 97", "YQ==", 1), "expected `base64 rank`"),
    ];
    for (name, text, want) in cases {
        let p = write(tmp.path(), name, &text);
        let err = Emu3Tokenizer::from_tiktoken_files(&p, &vision).unwrap_err().to_string();
        assert!(err.contains(want) && err.contains(name) && !err.contains('\n'), "{err}");
    }
    // Vision tokens that are not contiguous and last, or a missing role token.
    let bpe = tiny_dir().join(TIKTOKEN_FILE);
    let v = std::fs::read_to_string(&vision).unwrap();
    let shuffled = write(tmp.path(), "v1.txt", &v.replacen("<|visual token 000001|>", "<|visual token 000099|>", 1));
    let err = Emu3Tokenizer::from_tiktoken_files(&bpe, &shuffled).unwrap_err().to_string();
    assert!(err.contains("contiguous"), "{err}");
    let no_img = write(tmp.path(), "v2.txt", &v.replacen("<|image token|>\n", "", 1));
    let err = Emu3Tokenizer::from_tiktoken_files(&bpe, &no_img).unwrap_err().to_string();
    assert!(err.contains("<|image token|> (role img) is missing"), "{err}");
    let bad_json = write(tmp.path(), "tokenizer.json", "{not json");
    assert!(Emu3Tokenizer::from_tokenizer_json(&bad_json).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any text round-trips (up to NFC) and both formats agree on text without the NFC/special-token edge case.
    #[test]
    fn round_trip_and_formats_agree(s in "(\\PC|[ \\t\\n\\r]|<\\|image start\\|>|<\\|visual token 00000[0-9]\\|>){0,40}") {
        let [tik, hf] = tiny_both();
        let nfc: String = s.nfc().collect();
        let a = tik.encode(&s).unwrap();
        prop_assert_eq!(tik.decode(&a).unwrap(), nfc.clone());
        if nfc == s {
            prop_assert_eq!(a, hf.encode(&s).unwrap());
        }
    }

    /// Streaming decode, token by token, concatenates to the one-shot decode (split UTF-8 sequences included).
    #[test]
    fn stream_decode_equals_decode(ids in proptest::collection::vec(0u32..731, 0..40)) {
        let [tok, _] = tiny_both();
        let mut st = DecodeStream::new();
        let mut out = String::new();
        for &i in &ids {
            out.push_str(&st.step(&tok, i).unwrap());
        }
        out.push_str(&st.finish());
        prop_assert_eq!(out, tok.decode(&ids).unwrap());
    }
}
