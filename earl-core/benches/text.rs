//! Criterion benchmark of the text side on the tiny fixture vocabulary (fixtures/tok-tiny): encoding a paragraph
//! with each tokenizer format (BPE cache warm and cold), and building / parsing the image block of a 90×90 grid —
//! the size of a 720×720 image under Emu3's VQ (spatial factor 8), i.e. the prompt of every edit.
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion};
use earl_core::prompt::{Prefill, PromptBuilder};
use earl_core::tokenizer::{Emu3Tokenizer, TOKENIZER_JSON};
use earl_core::CodeGrid;

const TEXT: &str =
    "Replace the red car with a blue bicycle, keep the 2 people on the left and the café sign unchanged. \
    Let's think step by step. The car occupies [120, 340, 480, 600]; 日本語 and emoji 🚗 too.\n";

fn bench_text(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/tok-tiny");
    let tik = Emu3Tokenizer::from_dir(&dir).expect("tiktoken fixture");
    let hf = Emu3Tokenizer::from_tokenizer_json(dir.join(TOKENIZER_JSON)).expect("tokenizer.json fixture");
    let paragraph = TEXT.repeat(8);
    let mut g = c.benchmark_group("text");
    g.bench_function("encode_paragraph_tiktoken", |b| b.iter(|| tik.encode(&paragraph).unwrap()));
    g.bench_function("encode_paragraph_tokenizer_json", |b| b.iter(|| hf.encode(&paragraph).unwrap()));
    g.bench_function("load_and_encode_tiktoken_cold", |b| {
        b.iter(|| Emu3Tokenizer::from_dir(&dir).unwrap().encode(&paragraph).unwrap())
    });
    let grid = CodeGrid::new(90, 90, (0..8100).map(|i| (i * 31 % 64) as u32).collect()).unwrap();
    let pb = PromptBuilder::new(&tik);
    g.bench_function("edit_prompt_90x90", |b| b.iter(|| pb.edit_prompt(&grid, TEXT, &Prefill::E).unwrap()));
    let response = pb.image_block(&grid).unwrap();
    g.bench_function("parse_response_90x90", |b| b.iter(|| pb.parse_response(&response, Some((90, 90)))));
    g.finish();
}

criterion_group!(benches, bench_text);
criterion_main!(benches);
