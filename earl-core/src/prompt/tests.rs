//! Prompt layout tests: ids built directly equal EARL's string-then-tokenize path (goldens written by
//! fixtures/gen_tok.py from tiktoken, and the tokenizer's own string path here), snapshots of a small example, and
//! the response parser (unit cases and a round-trip property).
use proptest::prelude::*;
use serde_json::Value;

use super::*;
use crate::tokenizer::tests::{tiny_both, tiny_dir};
use crate::tokenizer::visual_token;

fn tiny() -> Emu3Tokenizer {
    Emu3Tokenizer::from_dir(tiny_dir()).expect("tiny tokenizer")
}

fn grid_of(v: &Value) -> CodeGrid {
    let rows: Vec<Vec<u32>> = serde_json::from_value(v.clone()).expect("grid");
    CodeGrid::new(rows.len(), rows[0].len(), rows.concat()).expect("grid")
}

fn golden() -> Value {
    serde_json::from_str(&std::fs::read_to_string(tiny_dir().join("golden_prompts.json")).expect("read")).expect("json")
}

fn ids(v: &Value) -> Vec<i64> {
    serde_json::from_value(v.clone()).expect("ids")
}

fn as_i64(v: &[u32]) -> Vec<i64> {
    v.iter().map(|&i| i as i64).collect()
}

/// EARL's string form of an image block (`format_image_prompt` / `encode_image_tokens`).
fn image_block_string(g: &CodeGrid) -> String {
    let rows: Vec<String> = g.rows().map(|r| r.iter().map(|&c| visual_token(c)).collect()).collect();
    format!(
        "<|image start|>{}*{}<|image token|>{}<|extra_200|><|extra_201|><|image end|>",
        g.h(),
        g.w(),
        rows.join("<|extra_200|>")
    )
}

#[test]
fn edit_prompts_match_earl_string_path_goldens_in_both_formats() {
    let g = golden();
    let (src, instr) = (grid_of(&g["source"]), g["instruction"].as_str().unwrap());
    for tok in tiny_both() {
        let b = PromptBuilder::new(&tok);
        for (mode, want) in g["edit"].as_object().unwrap() {
            let prefill: Prefill = mode.parse().unwrap();
            assert_eq!(as_i64(&b.edit_prompt(&src, instr, &prefill).unwrap()), ids(want), "{mode} ({})", tok.format());
        }
    }
}

#[test]
fn sft_examples_match_earl_goldens_with_and_without_reasoning() {
    let g = golden();
    let (src, edited, instr) = (grid_of(&g["source"]), grid_of(&g["edited"]), g["instruction"].as_str().unwrap());
    for tok in tiny_both() {
        let b = PromptBuilder::new(&tok);
        for case in g["sft"].as_array().unwrap() {
            let cot: Option<Vec<(String, String)>> = serde_json::from_value(case["cot"].clone()).unwrap();
            let ex = b.sft_example(&src, instr, &edited, cot.as_deref()).unwrap();
            assert_eq!(ex.input_ids, ids(&case["input_ids"]), "{}", tok.format());
            let n = case["prompt_len"].as_u64().unwrap() as usize;
            assert_eq!(ex.prompt_len, n);
            assert!(ex.labels[..n].iter().all(|&l| l == IGNORE_INDEX));
            assert_eq!(ex.labels[n..], ex.input_ids[n..]);
            assert_eq!(*ex.input_ids.last().unwrap(), tok.special().eos as i64);
        }
    }
}

#[test]
fn image_block_equals_tokenizer_string_path() {
    let tok = tiny();
    let b = PromptBuilder::new(&tok);
    for (h, w) in [(1, 1), (2, 3), (4, 1), (3, 12)] {
        let codes = (0..h * w).map(|i| (i * 7 % 64) as u32).collect();
        let g = CodeGrid::new(h, w, codes).unwrap();
        assert_eq!(b.image_block(&g).unwrap(), tok.encode(&image_block_string(&g)).unwrap(), "{h}x{w}");
    }
}

#[test]
fn reasoning_text_trims_values_and_cuts_at_1750_chars() {
    let steps = vec![("A".to_string(), "  x y \n".to_string()), ("B".to_string(), "z".to_string())];
    assert_eq!(reasoning_text(&steps), " Let's think step by step. <|start thinking|> A: x y B: z<|end thinking|>");
    assert_eq!(reasoning_text(&[]), " Let's think step by step. <|start thinking|> <|end thinking|>");
    let long = vec![("K".to_string(), "é".repeat(3000))];
    let t = reasoning_text(&long);
    let body = t.strip_prefix(THINK_PREFIX).unwrap().strip_prefix(' ').unwrap().strip_suffix(THINK_END).unwrap();
    assert_eq!(body.chars().count(), MAX_COT_CHARS);
}

#[test]
fn prefill_parses_and_displays() {
    for s in ["E", "E-legacy", "CE", "mixed", "text:<|image start|>", "text:"] {
        assert_eq!(s.parse::<Prefill>().unwrap().to_string(), s);
    }
    assert_eq!("text:abc".parse::<Prefill>().unwrap(), Prefill::Literal("abc".into()));
    let err = "e".parse::<Prefill>().unwrap_err().to_string();
    assert!(err.contains("unknown prefill `e`"), "{err}");
    assert_eq!(Prefill::E.text(2, 3), "<|image start|>2*3");
    let p: Prefill = serde_json::from_str("\"CE\"").unwrap();
    assert_eq!(p, Prefill::CE);
    assert!(serde_json::from_str::<Prefill>("\"bogus\"").is_err());
}

#[test]
fn grid_rejects_bad_shapes_and_codes() {
    assert!(CodeGrid::new(0, 3, vec![]).is_err());
    assert!(CodeGrid::new(2, 2, vec![1, 2, 3]).is_err());
    let tok = tiny();
    let g = CodeGrid::new(1, 1, vec![64]).unwrap();
    let err = PromptBuilder::new(&tok).image_block(&g).unwrap_err().to_string();
    assert!(err.contains("visual code 64 outside the codebook"), "{err}");
}

#[test]
fn snapshot_prompt_ids() {
    let tok = tiny();
    let b = PromptBuilder::new(&tok);
    let src = CodeGrid::new(2, 2, vec![0, 1, 62, 63]).unwrap();
    let edited = CodeGrid::new(2, 2, vec![5, 6, 7, 8]).unwrap();
    let fmt = |v: &[u32]| v.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(" ");
    let mut snap = String::new();
    for p in [Prefill::E, Prefill::ELegacy, Prefill::CE, Prefill::Mixed] {
        snap += &format!("{p}: {}\n", fmt(&b.edit_prompt(&src, "Make it red.", &p).unwrap()));
    }
    let steps = vec![("Step1".to_string(), "find it".to_string())];
    let ex = b.sft_example(&src, "Make it red.", &edited, Some(&steps)).unwrap();
    snap += &format!("sft prompt_len {}: {:?}\n", ex.prompt_len, ex.input_ids);
    insta::assert_snapshot!(snap);
}

fn response(tok: &Emu3Tokenizer, reasoning: &str, header: bool, g: &CodeGrid) -> Vec<u32> {
    let mut v = tok.encode(reasoning).unwrap();
    let block = PromptBuilder::new(tok).image_block(g).unwrap();
    let img_at = block.iter().position(|&t| t == tok.special().img).unwrap();
    v.extend(if header { &block[..] } else { &block[img_at..] });
    v.push(tok.special().eos);
    v
}

#[test]
fn parse_valid_responses() {
    let tok = tiny();
    let b = PromptBuilder::new(&tok);
    let g = CodeGrid::new(2, 3, vec![1, 2, 3, 4, 5, 63]).unwrap();
    // CE: reasoning, header, image, eos.
    let r = b.parse_response(&response(&tok, " Let's think. <|end thinking|>", true, &g), None);
    assert_eq!(r.reasoning, " Let's think. <|end thinking|>");
    assert_eq!(r.declared_size, Some((2, 3)));
    assert_eq!(r.image, Ok(g.clone()));
    assert!(r.eos_after_image);
    // E: header in the prompt, the response starts at img; i64 ids as they come out of tensors.
    let ids: Vec<i64> = as_i64(&response(&tok, "", false, &g));
    let r = b.parse_response(&ids, Some((2, 3)));
    assert_eq!((r.reasoning.as_str(), r.declared_size, r.image), ("", None, Ok(g.clone())));
    assert_eq!(r.image_end, Some(ids.len() - 1));
    // E-legacy: `boi` in the prompt, the response starts with the size text.
    let mut ids = tok.encode("2*3").unwrap();
    ids.extend(response(&tok, "", false, &g));
    let r = b.parse_response(&ids, None);
    assert_eq!((r.declared_size, r.image), (Some((2, 3)), Ok(g)));
}

#[test]
fn parse_reports_precise_errors() {
    let tok = tiny();
    let b = PromptBuilder::new(&tok);
    let s = *tok.special();
    let v = |c: u32| tok.visual_id(c).unwrap();
    let ok = vec![s.img, v(1), v(2), s.eol, v(3), v(4), s.eol, s.eof, s.eoi, s.eos];
    assert!(b.parse_response(&ok, Some((2, 2))).image.is_ok());
    let err = |ids: &[u32], exp| b.parse_response(ids, exp).image.unwrap_err();
    assert_eq!(err(&tok.encode("no image here").unwrap(), None), GridError::MissingImg);
    assert_eq!(b.parse_response(&tok.encode("no image").unwrap(), None).reasoning, "no image");
    assert_eq!(err(&ok[..5], None), GridError::Truncated { pos: 5, rows: 1 });
    let mut bad = ok.clone();
    bad[4] = 97;
    assert_eq!(err(&bad, None), GridError::UnexpectedToken { pos: 4, id: 97, row: 1, col: 0 });
    let short = [s.img, v(1), v(2), s.eol, v(3), s.eol, s.eof, s.eoi];
    assert_eq!(err(&short, None), GridError::RowLength { pos: 5, row: 1, expected: 2, found: 1 });
    assert_eq!(err(&ok, Some((2, 1))), GridError::RowLength { pos: 2, row: 0, expected: 1, found: 2 });
    assert_eq!(err(&ok, Some((1, 2))), GridError::TooManyRows { pos: 4, expected: 1 });
    assert_eq!(err(&ok, Some((3, 2))), GridError::TooFewRows { pos: 7, expected: 3, found: 2 });
    let mut no_eoi = ok.clone();
    no_eoi[8] = s.eos;
    assert_eq!(err(&no_eoi, None), GridError::MissingEoi { pos: 8, found: Some(s.eos as i64) });
    assert_eq!(err(&ok[..8], None), GridError::MissingEoi { pos: 8, found: None });
    assert_eq!(err(&[s.img, s.eol], None), GridError::Empty);
    assert_eq!(err(&[s.img, s.eof, s.eoi], None), GridError::Empty);
    // An id outside the vocabulary (or negative) is reported, not a panic.
    let r = b.parse_response(&[-5i64, s.img as i64, -1], None);
    assert_eq!(r.image, Err(GridError::UnexpectedToken { pos: 2, id: -1, row: 0, col: 0 }));
    // Messages are one line.
    assert!(!GridError::Truncated { pos: 1, rows: 0 }.to_string().contains('\n'));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random grid → image block (+ reasoning, eos) → parse gives the grid back, with and without the size hint.
    #[test]
    fn block_parse_round_trip(h in 1usize..6, w in 1usize..6, seed in any::<u64>(), text in "[a-z .]{0,12}") {
        let tok = tiny();
        let mut x = seed;
        let codes = (0..h * w).map(|_| { x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (x >> 58) as u32 }).collect();
        let g = CodeGrid::new(h, w, codes).unwrap();
        let ids = response(&tok, &text, true, &g);
        let b = PromptBuilder::new(&tok);
        for exp in [None, Some((h, w))] {
            let r = b.parse_response(&ids, exp);
            prop_assert_eq!(r.image, Ok(g.clone()));
            prop_assert_eq!(r.declared_size, Some((h, w)));
            prop_assert_eq!(&r.reasoning, &text);
            prop_assert!(r.eos_after_image);
        }
    }

    /// Arbitrary id sequences never panic the parser.
    #[test]
    fn parse_never_panics(ids in proptest::collection::vec(-3i64..740, 0..60)) {
        let tok = tiny();
        let _ = PromptBuilder::new(&tok).parse_response(&ids, None);
        let _ = PromptBuilder::new(&tok).parse_response(&ids, Some((2, 2)));
    }
}
