//! Seeded generation on a fixture checkpoint: sampled ids are pinned by snapshots, identical on a rerun, different
//! under another seed, and every stopped sample under the grid constraint is a well-formed grid.
use earl_core::generate::{
    generate, FinishReason, GenerationConfig, GenerationRequest, ImageTokens, SamplingParams, TopK,
};
use earl_core::Emu3ForCausalLM;
use earl_tests::fixtures_dir;
use tch::{Device, Kind};

// lm-tiny-gqa has 320 ids; pretend the last 32 are visual codes and a few low ids frame images.
const T: ImageTokens =
    ImageTokens { img: 10, eol: 11, eof: 12, eoi: 13, eos: 2, pad: 0, first_visual: 288, num_visual: 32 };

fn model() -> Emu3ForCausalLM {
    Emu3ForCausalLM::from_dir(&fixtures_dir().join("lm-tiny-gqa"), Kind::Float, Device::Cpu).unwrap()
}

fn cfg(seed: u64, n: usize, sampling: SamplingParams) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: 16,
        samples_per_request: n,
        sampling,
        seed,
        eos_ids: vec![2],
        image_tokens: Some(T),
        pad_id: 0,
        context_size: None,
        allow_overlong: false,
    }
}

fn requests() -> Vec<GenerationRequest> {
    vec![
        GenerationRequest { prompt: vec![1, 40, 41, 42, 43, 10], prefill_len: 1, grid: Some((2, 3)) },
        GenerationRequest { prompt: vec![1, 77, 78], prefill_len: 0, grid: Some((2, 2)) },
    ]
}

fn tokens(out: &[earl_core::generate::GeneratedSample]) -> Vec<(usize, usize, Vec<i64>, &'static str)> {
    out.iter().map(|s| (s.request, s.sample, s.tokens.clone(), s.finish.as_str())).collect()
}

#[test]
fn sampled_ids_are_pinned_for_fixed_seeds() {
    let m = model();
    let eval = generate(&m, &requests(), &cfg(0, 2, SamplingParams::reference_eval()), &mut |_, _| {}).unwrap();
    insta::assert_json_snapshot!("sampled_seed0_eval", tokens(&eval));
    let rl = SamplingParams { temperature: 1.0, top_k: TopK::Off, top_p: 1.0 };
    let out = generate(&m, &requests(), &cfg(1, 2, rl), &mut |_, _| {}).unwrap();
    insta::assert_json_snapshot!("sampled_seed1_rl", tokens(&out));
    let greedy = generate(&m, &requests(), &cfg(0, 1, SamplingParams::greedy()), &mut |_, _| {}).unwrap();
    insta::assert_json_snapshot!("greedy", tokens(&greedy));
}

#[test]
fn reruns_repeat_and_seeds_differ() {
    let m = model();
    let p = SamplingParams::reference_eval();
    let a = generate(&m, &requests(), &cfg(7, 3, p), &mut |_, _| {}).unwrap();
    let b = generate(&m, &requests(), &cfg(7, 3, p), &mut |_, _| {}).unwrap();
    let c = generate(&m, &requests(), &cfg(8, 3, p), &mut |_, _| {}).unwrap();
    assert_eq!(a, b);
    assert_ne!(tokens(&a), tokens(&c));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 24, ..Default::default() })]

    /// Whatever the seed, grid size and sampling setting, a sample that stops is exactly an h×w grid of visual
    /// tokens with an eol after each row, then eof, eoi, eos (the grid constraint cannot be escaped).
    #[test]
    fn every_stopped_sample_is_a_well_formed_grid(seed in 0u64..1_000, h in 1usize..4, w in 1usize..5, top_k in 0i64..40) {
        let m = model();
        let req = GenerationRequest { prompt: vec![1, 40, 41, 10], prefill_len: 1, grid: Some((h as i64, w as i64)) };
        let top_k = if top_k == 0 { TopK::Off } else { TopK::K(top_k as usize) };
        let sampling = SamplingParams { temperature: 1.0, top_k, top_p: 1.0 };
        let c = GenerationConfig { max_new_tokens: (w + 1) * h + 3, ..cfg(seed, 2, sampling) };
        for s in generate(&m, &[req], &c, &mut |_, _| {}).unwrap() {
            proptest::prop_assert_eq!(s.finish, FinishReason::Stop);
            let grid = &s.tokens[..h * (w + 1)];
            for row in grid.chunks(w + 1) {
                proptest::prop_assert!(row[..w].iter().all(|&t| (288..320).contains(&t)), "{:?}", row);
                proptest::prop_assert_eq!(row[w], T.eol);
            }
            proptest::prop_assert_eq!(&s.tokens[h * (w + 1)..], &[T.eof, T.eoi, T.eos][..]);
        }
    }
}
