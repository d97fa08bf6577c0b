//! The tiny Emu3 bundle (LM + tokenizer sharing one vocabulary): EARL prompts built by earl-core equal the
//! reference's string-path ids, and greedy grid-constrained generation reproduces transformers `generate` (with the
//! same rule as a `prefix_allowed_tokens_fn`, fixtures/gen_bundle.py) token for token — alone and batched.
use earl_core::generate::{generate, GenerationConfig, GenerationRequest, ImageTokens, SamplingParams};
use earl_core::prompt::{Prefill, PromptBuilder};
use earl_core::tokenizer::Emu3Tokenizer;
use earl_core::CodeGrid;
use earl_core::Emu3ForCausalLM;
use earl_tests::fixtures_dir;
use serde_json::Value;
use tch::{Device, Kind};

struct Case {
    name: String,
    request: GenerationRequest,
    max_new: usize,
    generated: Vec<i64>,
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().unwrap().iter().map(|x| x.as_i64().unwrap()).collect()
}

fn cases(tok: &Emu3Tokenizer) -> Vec<Case> {
    let dir = fixtures_dir().join("bundle-tiny");
    let g: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("golden_generate.json")).unwrap()).unwrap();
    let source: Vec<Vec<u32>> = serde_json::from_value(g["source"].clone()).unwrap();
    let (h, w) = (source.len(), source[0].len());
    let grid = CodeGrid::new(h, w, source.concat()).unwrap();
    let pb = PromptBuilder::new(tok);
    g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap().to_string();
            let prefill = match name.as_str() {
                "E" => Prefill::E,
                "CE" => Prefill::CE,
                _ => Prefill::Literal(c["prefill"].as_str().unwrap().to_string()),
            };
            let prompt: Vec<i64> = pb
                .edit_prompt(&grid, c["instruction"].as_str().unwrap(), &prefill)
                .unwrap()
                .into_iter()
                .map(i64::from)
                .collect();
            assert_eq!(prompt, ints(&c["prompt"]), "{name}: prompt ids differ from the reference string path");
            let prefill_len = c["prefill_len"].as_u64().unwrap() as usize;
            Case {
                name,
                request: GenerationRequest { prompt, prefill_len, grid: Some((h as i64, w as i64)) },
                max_new: c["max_new_tokens"].as_u64().unwrap() as usize,
                generated: ints(&c["generated"]),
            }
        })
        .collect()
}

#[test]
fn greedy_generation_matches_transformers_token_for_token() {
    let dir = fixtures_dir().join("bundle-tiny");
    let tok = Emu3Tokenizer::from_dir(&dir).unwrap();
    let model = Emu3ForCausalLM::from_dir(&dir, Kind::Float, Device::Cpu).unwrap();
    assert_eq!(model.cfg.vocab_size, tok.vocab_size() as i64);
    let cases = cases(&tok);
    let cfg = |max_new| GenerationConfig {
        max_new_tokens: max_new,
        samples_per_request: 1,
        sampling: SamplingParams::greedy(),
        seed: 0,
        eos_ids: vec![tok.special().eos as i64],
        image_tokens: Some(ImageTokens::from_tokenizer(&tok)),
        pad_id: tok.special().pad as i64,
        context_size: None,
        allow_overlong: false,
    };
    for c in &cases {
        let out = generate(&model, std::slice::from_ref(&c.request), &cfg(c.max_new), &mut |_, _| {}).unwrap();
        assert_eq!(out[0].tokens, c.generated, "case {}", c.name);
    }
    // All cases in one left-padded batch: each row still matches its reference continuation.
    let max_new = cases.iter().map(|c| c.max_new).max().unwrap();
    let reqs: Vec<GenerationRequest> = cases.iter().map(|c| c.request.clone()).collect();
    let out = generate(&model, &reqs, &cfg(max_new), &mut |_, _| {}).unwrap();
    for (c, o) in cases.iter().zip(&out) {
        assert_eq!(&o.tokens[..c.generated.len()], &c.generated[..], "case {} in a batch", c.name);
    }
}
