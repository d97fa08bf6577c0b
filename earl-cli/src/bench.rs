//! `earl bench decode`: generation speed of an Emu3-shaped decoder with random weights created directly on the
//! device — the same work as `shared/bench/torch_decode_baseline.py` (a prompt of 1090 tokens, then 1062 sampled
//! tokens with top-k 2048, i.e. one 256×256 edit) so both can be run side by side on one card. Prints one JSON line
//! per batch size. `--engine` picks the eager path or the graph engine (decode step replayed from CUDA graphs).
use anyhow::Result;
use earl_core::device::{parse_device, parse_dtype};
use earl_core::generate::graph::{GraphConfig, GraphDecoder};
use earl_core::generate::{generate, Engine, GeneratedSample, GenerationConfig, GenerationRequest, SamplingParams};
use earl_core::{Emu3Config, Emu3ForCausalLM, ForwardArgs, RandomSource};
use tch::{Kind, Tensor};

#[derive(clap::Args)]
pub struct DecodeArgs {
    #[arg(long, num_args = 1.., default_values_t = vec![1usize, 8])]
    batch: Vec<usize>,
    #[arg(long, default_value_t = 32)]
    layers: i64,
    /// Hidden size (4096 = the real model; smaller for quick checks).
    #[arg(long, default_value_t = 4096)]
    hidden: i64,
    #[arg(long, default_value_t = 184_622)]
    vocab: i64,
    #[arg(long, default_value_t = 1090)]
    prompt: usize,
    #[arg(long, default_value_t = 1062)]
    new: usize,
    #[arg(long, default_value = "2048")]
    top_k: earl_core::generate::TopK,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value = "bf16")]
    dtype: String,
    /// eager or graph (the decode step replayed from CUDA graphs; CUDA only). Default: graph on CUDA, else eager.
    #[arg(long)]
    engine: Option<Engine>,
    /// Graph engine: decoding steps between two host reads of the sampled ids.
    #[arg(long, default_value_t = 16)]
    read_every: usize,
}

fn sync(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

pub fn decode(a: &DecodeArgs) -> Result<i32> {
    let device = parse_device(&a.device)?;
    let kind = parse_dtype(&a.dtype)?;
    let engine = a.engine.unwrap_or(Engine::default_for(device));
    engine.check_device(device)?;
    let mut cfg = Emu3Config::emu3_shaped(a.hidden, a.layers);
    cfg.vocab_size = a.vocab;
    cfg.pad_token_id = 0;
    cfg.bos_token_id = 1;
    cfg.max_position_embeddings = (a.prompt + a.new + 8) as i64;
    let _g = tch::no_grad_guard();
    let model = Emu3ForCausalLM::load(&RandomSource { seed: 0, std: 0.02, kind, device }, &cfg)?;
    let gpu = crate::doctor::gpu_names().first().cloned().unwrap_or_else(|| format!("{device:?}"));
    // One graph decoder for every batch size. A bucket's step is recaptured when the cache capacity changes (the
    // short warm-up, then the timed run), before the timed decoding starts.
    let mut decoder = match engine {
        Engine::Graph => {
            Some(GraphDecoder::new(&model, GraphConfig { read_every: a.read_every, ..Default::default() })?)
        }
        Engine::Eager => None,
    };
    let run = |decoder: &mut Option<GraphDecoder>,
               requests: &[GenerationRequest],
               cfg: &GenerationConfig,
               on_step: &mut dyn FnMut(usize, usize)|
     -> earl_core::Result<Vec<GeneratedSample>> {
        match decoder {
            Some(d) => d.generate_keyed(requests, &(0..requests.len() as u64).collect::<Vec<_>>(), cfg, on_step),
            None => generate(&model, requests, cfg, on_step),
        }
    };
    for &b in &a.batch {
        tch::manual_seed(b as i64);
        let text_vocab = a.vocab.min(151_000);
        let prompt = Tensor::randint_low(3, text_vocab, [b as i64, a.prompt as i64], (Kind::Int64, tch::Device::Cpu));
        // Prefill timing: one warm-up, then one timed forward into a fresh cache.
        let ids = prompt.to_device(device);
        let mut prefill_ms = 0.0;
        for _ in 0..2 {
            let mut cache = model.new_cache(b as i64, a.prompt as i64)?;
            sync(device);
            let t = std::time::Instant::now();
            let _ = model.forward(&ids, &ForwardArgs { logits_to_keep: 1, ..Default::default() }, Some(&mut cache))?;
            sync(device);
            prefill_ms = t.elapsed().as_secs_f64() * 1e3;
        }
        let requests: Vec<GenerationRequest> = (0..b)
            .map(|i| GenerationRequest {
                prompt: Vec::<i64>::try_from(prompt.get(i as i64)).unwrap_or_default(),
                prefill_len: 0,
                grid: None,
            })
            .collect();
        let gen_cfg = GenerationConfig {
            max_new_tokens: a.new,
            samples_per_request: 1,
            sampling: SamplingParams { temperature: 1.0, top_k: a.top_k, top_p: 1.0 },
            seed: 0,
            eos_ids: vec![],
            image_tokens: None,
            pad_id: 0,
            context_size: None,
            allow_overlong: false,
        };
        // Warm-up generation (kernels, allocator), then the timed one.
        let warm_up = GenerationConfig { max_new_tokens: 8, ..gen_cfg.clone() };
        let _ = run(&mut decoder, &requests, &warm_up, &mut |_, _| {})?;
        sync(device);
        // Decode time runs from the first report of sampled tokens (prefill done; the host read synchronises the
        // device) to the last: every step in between is one forward of the batch plus one sampling. The eager
        // engine reports after every step, the graph engine after every block of steps.
        let t = std::time::Instant::now();
        let mut first: Option<(usize, std::time::Instant)> = None;
        let out = run(&mut decoder, &requests, &gen_cfg, &mut |step, _| {
            if first.is_none() {
                first = Some((step, std::time::Instant::now()));
            }
        })?;
        sync(device);
        let total_s = t.elapsed().as_secs_f64();
        let steps = out.iter().map(|s| s.tokens.len()).max().unwrap_or(0);
        let (first_step, decode_s) = match first {
            Some((s, at)) => (s, at.elapsed().as_secs_f64()),
            None => (0, total_s),
        };
        let decode_s = decode_s.max(1e-9);
        let timed_steps = steps.saturating_sub(first_step).max(1);
        println!(
            "{}",
            serde_json::json!({
                "impl": match engine {
                    Engine::Eager => "earl-rs generate (tch eager, preallocated cache)",
                    Engine::Graph => "earl-rs generate (decode step in a CUDA graph per batch bucket)",
                },
                "engine": engine.as_str(), "read_every": (engine == Engine::Graph).then_some(a.read_every), "gpu": gpu, "batch": b, "layers": a.layers, "hidden": a.hidden,
                "prefill_ms": (prefill_ms * 10.0).round() / 10.0,
                "ms_per_step": (decode_s * 1e6 / timed_steps as f64).round() / 1e3,
                "tokens_per_s": ((b * timed_steps) as f64 / decode_s * 10.0).round() / 10.0,
                "total_s": (total_s * 1e3).round() / 1e3,
            })
        );
    }
    Ok(0)
}

#[derive(clap::Args)]
pub struct RlBenchArgs {
    /// Hidden size and layers of the Emu3-shaped random policy (default ≈ 120M parameters + embeddings).
    #[arg(long, default_value_t = 1024)]
    hidden: i64,
    #[arg(long, default_value_t = 8)]
    layers: i64,
    /// Source/target grid side (32 = a 256×256 image).
    #[arg(long, default_value_t = 32)]
    grid: usize,
    #[arg(long, default_value_t = 2)]
    prompts: usize,
    #[arg(long, default_value_t = 8)]
    generations: usize,
    #[arg(long, default_value_t = 8)]
    micro_batch: usize,
    #[arg(long, default_value_t = 2)]
    iterations: u64,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long, default_value = "bf16")]
    dtype: String,
}

/// `earl bench rl`: GRPO iterations of an Emu3-shaped random model (the tiny bundle's tokenizer, random `grid`²
/// sources) with an offline reward; prints the per-phase time split of each iteration as JSON lines.
pub fn rl(a: &RlBenchArgs) -> Result<i32> {
    use earl_core::data::{DataRng, EditRecord, ShardWriter};
    use earl_core::rl::run::{RlOptions, RlRunner};
    use earl_core::train::checkpoint::{hf_config_json, write_safetensors};
    use earl_core::CodeGrid;
    let device = parse_device(&a.device)?;
    let kind = parse_dtype(&a.dtype)?;
    let root = std::env::current_dir()?;
    let tok_dir = root.join("fixtures/bundle-tiny");
    let tok = earl_core::Emu3Tokenizer::from_dir(&tok_dir)?;
    let tmp = std::env::temp_dir().join(format!("earl-bench-rl-{}", std::process::id()));
    let (model_dir, data_dir) = (tmp.join("model"), tmp.join("data"));
    std::fs::create_dir_all(&model_dir)?;
    let mut cfg = Emu3Config::emu3_shaped(a.hidden, a.layers);
    let s = tok.special();
    cfg.vocab_size = tok.vocab_size() as i64;
    (cfg.pad_token_id, cfg.bos_token_id, cfg.eos_token_ids) = (s.pad as i64, s.bos as i64, vec![s.eos as i64]);
    let model =
        Emu3ForCausalLM::load(&RandomSource { seed: 1, std: 0.02, kind: Kind::Float, device: tch::Device::Cpu }, &cfg)?;
    write_safetensors(&model_dir.join("model.safetensors"), &model.named_parameters(), Kind::Float)?;
    std::fs::write(model_dir.join("config.json"), serde_json::to_string_pretty(&hf_config_json(&cfg, Kind::Float))?)?;
    drop(model);
    let mut w = ShardWriter::create_or_resume(&data_dir, "edits", 1024)?;
    let mut rng = DataRng::new(5);
    let n = a.grid * a.grid;
    let k = tok.codebook_size() as u64;
    for i in 0..(a.prompts * 4) {
        let src: Vec<u32> = (0..n).map(|_| rng.below(k) as u32).collect();
        let rec = EditRecord {
            id: format!("bench-{i}"),
            instruction: "Paint everything red.".into(),
            source: CodeGrid::new(a.grid, a.grid, src)?,
            edited: CodeGrid::new(a.grid, a.grid, vec![5; n])?,
            cot: Default::default(),
            meta: Default::default(),
        };
        w.push(Some(&rec.id), &rec)?;
    }
    w.finish()?;
    let toml_path = tmp.join("bench.toml");
    std::fs::write(
        &toml_path,
        format!(
            "train_paths_file = [{data:?}]\nbase_exp_dir = {out:?}\nrandom_seed = 1\nmodel_path = {model:?}\n\
             tokenizer_path = {tok:?}\nassistant_prefill = \"<|image start|>{{h}}*{{w}}<|image token|>\"\n\
             learning_rate = 3e-6\nnum_iterations = {it}\nkl_coeff = 0.0003\ntemperature = 1.0\n\
             per_device_batch_size = {mb}\nepisodes_per_iteration = {eps}\ngenerations_per_sample = {g}\n\
             max_response_tokens = {max_new}\ntop_p = 1.0\ntop_k = -1\nmodel_context_size = 4096\n\
             emu3_use_logit_processor = true\nseparate_language_and_vision_vocabs = true\n\
             reward_compute_viescore = false\nreward_compute_ground_score = false\n\
             reward_compute_token_agreement = true\nreward_final_reward = \"token_agreement\"\n\
             log_episodes_every_n_iterations = 0\nsave_checkpoints_every_n_iterations = 0\n",
            data = data_dir.display().to_string(),
            out = tmp.join("runs").display().to_string(),
            model = model_dir.display().to_string(),
            tok = tok_dir.display().to_string(),
            it = a.iterations,
            mb = a.micro_batch,
            eps = a.prompts * a.generations,
            g = a.generations,
            max_new = (a.grid + 1) * a.grid + 8,
        ),
    )?;
    let exp = earl_eval::RlExperiment::load_with_env(&toml_path, &|_| None)?;
    let rewards = earl_eval::reward_set(&exp.rl.reward, &exp.verifier)?;
    let rl_cfg = exp.rl;
    let opts = RlOptions {
        device,
        kind,
        vq_dir: None,
        vq_kind: Kind::Float,
        out_dir: Some(tmp.join("runs")),
        max_iterations: None,
        engine: earl_core::generate::Engine::default_for(device),
    };
    let mut runner = RlRunner::new(rl_cfg, rewards, &opts)?;
    let gpu = crate::doctor::gpu_names().first().cloned().unwrap_or_else(|| format!("{device:?}"));
    let params = cfg.num_parameters();
    runner.run(&mut |r| {
        println!(
            "{}",
            serde_json::json!({
                "impl": "earl-rs GRPO iteration", "gpu": gpu, "params": params, "iteration": r.iteration,
                "prompts": a.prompts, "generations_per_prompt": a.generations, "completion_tokens": r.completion_tokens,
                "generation_s": r.time_generation_s, "rewards_s": r.time_rewards_s,
                "reference_logprobs_s": r.time_reference_s, "training_s": r.time_training_s,
            })
        );
    })?;
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(0)
}
