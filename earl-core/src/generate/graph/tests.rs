//! Graph engine vs eager engine. GPU run: `cargo test --release -p earl-core --lib cuda_graph` (or the built lib test
//! binary `target/release/deps/earl_core-<hash> cuda_graph --test-threads 1`, from the repository root or with
//! EARL_FIXTURES set); without CUDA the `cuda_` tests print "skipped: needs CUDA" and pass.
//!
//! The CPU tests run the whole driver (prefill, chunks, padding, blocks, host reads) with the step uncaptured, on a
//! random tiny model; the `cuda_` tests capture and replay on the fixture checkpoints.
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use tch::{Device, Kind};

use super::{plan_chunks, Chunk, GraphConfig, GraphDecoder};
use crate::generate::{
    generate_keyed, FinishReason, GeneratedSample, GenerationConfig, GenerationRequest, ImageTokens, SamplingParams,
    TopK,
};
use crate::{Emu3Config, Emu3ForCausalLM, RandomSource};

const T: ImageTokens =
    ImageTokens { img: 10, eol: 11, eof: 12, eoi: 13, eos: 2, pad: 0, first_visual: 288, num_visual: 32 };

fn cfg(sampling: SamplingParams, n: usize, seed: u64, constrain: bool) -> GenerationConfig {
    GenerationConfig {
        max_new_tokens: 20,
        samples_per_request: n,
        sampling,
        seed,
        eos_ids: vec![2],
        image_tokens: constrain.then_some(T),
        pad_id: 0,
        context_size: None,
        allow_overlong: false,
    }
}

/// Three requests of different lengths (left padding), grids of different sizes, one prefilled `img`, one
/// unconstrained row.
fn requests() -> Vec<GenerationRequest> {
    vec![
        GenerationRequest { prompt: vec![1, 40, 41, 42, 43, 10], prefill_len: 1, grid: Some((2, 3)) },
        GenerationRequest { prompt: vec![1, 77, 78], prefill_len: 0, grid: Some((2, 2)) },
        GenerationRequest { prompt: vec![1, 5, 6, 7], prefill_len: 0, grid: None },
    ]
}

fn sampled() -> SamplingParams {
    SamplingParams { temperature: 1.0, top_k: TopK::K(64), top_p: 0.95 }
}

const KEYS: [u64; 3] = [4, 0, 9];

fn graph_run(
    m: &Emu3ForCausalLM,
    g: GraphConfig,
    c: &GenerationConfig,
    captured: bool,
) -> (Vec<GeneratedSample>, Vec<(usize, usize)>) {
    let mut steps = Vec::new();
    let mut d = if captured { GraphDecoder::new(m, g).unwrap() } else { GraphDecoder::uncaptured(m, g).unwrap() };
    let out = d.generate_keyed(&requests(), &KEYS, c, &mut |s, live| steps.push((s, live))).unwrap();
    (out, steps)
}

fn eager_run(m: &Emu3ForCausalLM, c: &GenerationConfig) -> (Vec<GeneratedSample>, Vec<(usize, usize)>) {
    let mut steps = Vec::new();
    let out = generate_keyed(m, &requests(), &KEYS, c, &mut |s, live| steps.push((s, live))).unwrap();
    (out, steps)
}

/// Every engine setting that must not change a token: block lengths (including one longer than the budget),
/// buckets that pad and buckets that split the batch.
fn settings() -> Vec<GraphConfig> {
    let g = |buckets: Vec<usize>, read_every| GraphConfig { buckets, read_every };
    vec![GraphConfig::default(), g(vec![1, 2, 4, 8], 1), g(vec![4], 3), g(vec![1, 2], 7), g(vec![1], 64)]
}

fn tiny() -> Emu3ForCausalLM {
    let src = RandomSource { seed: 3, std: 0.3, kind: Kind::Float, device: Device::Cpu };
    Emu3ForCausalLM::load(&src, &Emu3Config { vocab_size: 320, ..Emu3Config::tiny() }).unwrap()
}

#[test]
fn chunks_fill_the_largest_bucket_then_pad_the_rest() {
    let c = |start, rows, bucket| Chunk { start, rows, bucket };
    let b = super::DEFAULT_BUCKETS;
    assert_eq!(plan_chunks(1, &b), vec![c(0, 1, 1)]);
    assert_eq!(plan_chunks(3, &b), vec![c(0, 3, 4)]);
    assert_eq!(plan_chunks(128, &b), vec![c(0, 128, 128)]);
    assert_eq!(plan_chunks(300, &b), vec![c(0, 128, 128), c(128, 128, 128), c(256, 44, 64)]);
    assert_eq!(plan_chunks(5, &[1, 2]), vec![c(0, 2, 2), c(2, 2, 2), c(4, 1, 1)]);
    let bad = |buckets: Vec<usize>, read_every| GraphConfig { buckets, read_every }.validate().is_err();
    assert!(bad(vec![], 1) && bad(vec![0, 1], 1) && bad(vec![2, 2], 1) && bad(vec![4, 2], 1) && bad(vec![1], 0));
    assert!(GraphConfig::default().validate().is_ok());
}

#[test]
fn uncaptured_graph_steps_match_the_eager_engine() {
    let m = tiny();
    for (sampling, n, constrain) in [
        (SamplingParams::greedy(), 1, true),
        (SamplingParams::greedy(), 2, false),
        (sampled(), 1, true),
        (sampled(), 2, true),
        (SamplingParams { temperature: 0.7, top_k: TopK::Off, top_p: 1.0 }, 2, false),
    ] {
        let c = cfg(sampling, n, 5, constrain);
        let (eager, eager_steps) = eager_run(&m, &c);
        // Some rows stop early (and then keep running in the graph): their extra tokens must be dropped.
        assert!(eager.iter().any(|s| s.finish == FinishReason::Stop) || !constrain, "{eager:?}");
        for g in settings() {
            let single_chunk = g.buckets.last().copied().unwrap_or(0) >= eager.len();
            let (graph, steps) = graph_run(&m, g.clone(), &c, false);
            assert_eq!(graph, eager, "{sampling:?} n={n} constrain={constrain} {g:?}");
            if single_chunk {
                assert_eq!(steps, eager_steps, "{g:?}");
            }
        }
    }
}

#[test]
fn uncaptured_graph_steps_respect_budgets_and_errors() {
    let m = tiny();
    let c = GenerationConfig { context_size: Some(9), eos_ids: vec![], ..cfg(sampled(), 2, 1, false) };
    let (eager, _) = eager_run(&m, &c);
    assert_eq!(eager.iter().map(|s| s.tokens.len()).collect::<Vec<_>>(), vec![4, 4, 7, 7, 6, 6]);
    for g in settings() {
        assert_eq!(graph_run(&m, g, &c, false).0, eager);
    }
    let mut d = GraphDecoder::uncaptured(&m, GraphConfig::default()).unwrap();
    assert!(d.generate_keyed(&requests(), &[1], &c, &mut |_, _| {}).is_err());
    assert!(d.generate_keyed(&requests(), &[1, 2, 1 << 32], &c, &mut |_, _| {}).is_err());
    assert!(d.generate_keyed(&[], &[], &c, &mut |_, _| {}).is_err());
    // One decoder reused across calls with other settings (rebuilt steps) gives the fresh results.
    let c2 = cfg(SamplingParams::greedy(), 1, 0, true);
    let again = d.generate_keyed(&requests(), &KEYS, &c2, &mut |_, _| {}).unwrap();
    assert_eq!(again, eager_run(&m, &c2).0);
    assert_eq!(d.generate_keyed(&requests(), &KEYS, &c, &mut |_, _| {}).unwrap(), eager);
    // Non-finite logits: the eager sampler's error, word for word (greedy and sampled).
    let broken = tiny();
    let _ = broken.norm.weight.shallow_clone().fill_(f64::NAN);
    for c in [c, c2] {
        let eager = generate_keyed(&broken, &requests(), &KEYS, &c, &mut |_, _| {}).unwrap_err().to_string();
        let mut d = GraphDecoder::uncaptured(&broken, GraphConfig::default()).unwrap();
        let graph = d.generate_keyed(&requests(), &KEYS, &c, &mut |_, _| {}).unwrap_err().to_string();
        assert!(
            eager.contains("non-finite logits") && eager.contains("request 4, sample 0 at decoding step 0"),
            "{eager}"
        );
        assert_eq!(graph, eager);
    }
}

// ---- CUDA: captured graphs on the fixture checkpoints ----

static CUDA: Mutex<()> = Mutex::new(());

/// `None` (after a skip message) without CUDA; else a lock: a capture forbids CUDA work on other threads.
fn cuda_test() -> Option<MutexGuard<'static, ()>> {
    crate::torch_cuda::load();
    if !tch::Cuda::is_available() {
        eprintln!("skipped: needs CUDA");
        return None;
    }
    Some(CUDA.lock().unwrap_or_else(|p| p.into_inner()))
}

/// `$EARL_FIXTURES`, else `fixtures/` under the working directory (the repository root), else the source tree's.
fn fixture_dir() -> PathBuf {
    match std::env::var_os("EARL_FIXTURES") {
        Some(d) => PathBuf::from(d),
        None if PathBuf::from("fixtures").is_dir() => PathBuf::from("fixtures"),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures"),
    }
}

fn fixture(name: &str) -> Emu3ForCausalLM {
    Emu3ForCausalLM::from_dir(&fixture_dir().join(name), Kind::Float, Device::Cuda(0)).unwrap()
}

const FIXTURES: [&str; 3] = ["lm-tiny-gqa", "lm-tiny-mha", "lm-tiny-orig"];

/// `c` with its visual ids moved to the last 32 ids of `m`'s vocabulary (the fixtures' vocabularies are 288, 320
/// and 352; [`T`]'s ids fit 320 only).
fn fit(m: &Emu3ForCausalLM, c: GenerationConfig) -> GenerationConfig {
    let first_visual = m.cfg.vocab_size - T.num_visual;
    GenerationConfig { image_tokens: c.image_tokens.map(|t| ImageTokens { first_visual, ..t }), ..c }
}

#[test]
fn uncaptured_steps_match_eager_on_every_fixture_on_the_cpu() {
    // The CUDA test's workload with the steps uncaptured: it checks the fixtures and their token ids on any machine.
    for name in FIXTURES {
        let m = Emu3ForCausalLM::from_dir(&fixture_dir().join(name), Kind::Float, Device::Cpu).unwrap();
        for constrain in [true, false] {
            let c = fit(&m, cfg(SamplingParams::greedy(), 1, 0, constrain));
            assert_eq!(graph_run(&m, GraphConfig::default(), &c, false), eager_run(&m, &c), "{name} {constrain}");
        }
    }
}

#[test]
fn cuda_graph_greedy_matches_eager_on_every_fixture() {
    let Some(_cuda) = cuda_test() else { return };
    for name in FIXTURES {
        let m = fixture(name);
        for constrain in [true, false] {
            let c = fit(&m, cfg(SamplingParams::greedy(), 1, 0, constrain));
            let (eager, _) = eager_run(&m, &c);
            let (graph, _) = graph_run(&m, GraphConfig::default(), &c, true);
            assert_eq!(graph, eager, "{name} constrain={constrain}");
        }
    }
}

#[test]
fn cuda_graph_sampled_tokens_match_eager_and_repeat() {
    let Some(_cuda) = cuda_test() else { return };
    let m = fixture("lm-tiny-gqa");
    // 3 rows → bucket 4 (one dummy row); 6 rows → bucket 8; buckets [1, 2] split 6 rows into three chunks.
    for (n, constrain) in [(1, true), (1, false), (2, true), (2, false)] {
        let c = cfg(sampled(), n, 7, constrain);
        let (eager, _) = eager_run(&m, &c);
        let (graph, _) = graph_run(&m, GraphConfig::default(), &c, true);
        assert_eq!(graph, eager, "n={n} constrain={constrain}");
        let (again, _) = graph_run(&m, GraphConfig::default(), &c, true);
        assert_eq!(again, graph, "rerun n={n} constrain={constrain}");
        let split = GraphConfig { buckets: vec![1, 2], read_every: 5 };
        assert_eq!(graph_run(&m, split, &c, true).0, eager, "split n={n} constrain={constrain}");
    }
    // Another seed gives other tokens (the streams are really used).
    let (other, _) = graph_run(&m, GraphConfig::default(), &cfg(sampled(), 2, 8, false), true);
    assert_ne!(other, graph_run(&m, GraphConfig::default(), &cfg(sampled(), 2, 7, false), true).0);
}

#[test]
fn cuda_graph_decoder_replays_its_graphs_across_calls() {
    let Some(_cuda) = cuda_test() else { return };
    let m = fixture("lm-tiny-mha");
    let c = fit(&m, cfg(sampled(), 2, 3, true));
    let (eager, _) = eager_run(&m, &c);
    let mut d = GraphDecoder::new(&m, GraphConfig::default()).unwrap();
    for round in 0..3 {
        let out = d.generate_keyed(&requests(), &KEYS, &c, &mut |_, _| {}).unwrap();
        assert_eq!(out, eager, "round {round}");
    }
    // Same workload under the uncaptured steps on the GPU: capture changes nothing.
    assert_eq!(graph_run(&m, GraphConfig::default(), &c, false).0, eager);
    // Another budget changes the cache capacity: the bucket is captured again into the same pool (`earl bench
    // decode`'s warm-up then run; it failed on the H200 with the allocator's `use_count > 0` assert before the pool
    // held its own reference).
    let longer = GenerationConfig { max_new_tokens: 28, ..c.clone() };
    let out = d.generate_keyed(&requests(), &KEYS, &longer, &mut |_, _| {}).unwrap();
    assert_eq!(out, eager_run(&m, &longer).0);
    assert_eq!(d.generate_keyed(&requests(), &KEYS, &c, &mut |_, _| {}).unwrap(), eager);
}

#[test]
fn cuda_graph_runs_in_bf16_repeats_and_keeps_grids_well_formed() {
    let Some(_cuda) = cuda_test() else { return };
    let dir = fixture_dir();
    let m = Emu3ForCausalLM::from_dir(&dir.join("lm-tiny-gqa"), Kind::BFloat16, Device::Cuda(0)).unwrap();
    let c = GenerationConfig { max_new_tokens: 24, ..cfg(sampled(), 2, 11, true) };
    let (graph, _) = graph_run(&m, GraphConfig::default(), &c, true);
    assert_eq!(graph_run(&m, GraphConfig::default(), &c, true).0, graph);
    let grids = [Some((2usize, 3usize)), Some((2, 2)), None];
    for s in graph.iter().filter(|s| s.finish == FinishReason::Stop) {
        let Some((h, w)) = grids[s.request] else { continue };
        let body = &s.tokens[..];
        // Request 0's prefill already holds `img`; the others write text, then `img`.
        let start = if s.request == 0 { 0 } else { body.iter().position(|&t| t == T.img).unwrap() + 1 };
        let grid = &body[start..start + h * (w + 1)];
        for row in grid.chunks(w + 1) {
            assert!(row[..w].iter().all(|&t| (288..320).contains(&t)) && row[w] == T.eol, "{s:?}");
        }
        assert_eq!(&body[start + h * (w + 1)..], &[T.eof, T.eoi, T.eos], "{s:?}");
    }
    // bf16 logits move with the batch shape: report (not require) agreement with the eager engine.
    let (eager, _) = eager_run(&m, &c);
    let same = graph.iter().zip(&eager).filter(|(g, e)| g == e).count();
    eprintln!("bf16: {same} of {} rows identical to the eager engine", graph.len());
}
