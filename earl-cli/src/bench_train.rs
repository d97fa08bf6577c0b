//! `earl bench train`: SFT training throughput of an Emu3-shaped model with random weights (no checkpoint needed):
//! tokens/s, peak memory and model-FLOP utilisation over timed steps after warm-up, printed as one JSON line.
//! `bench/train_baseline.py` is the same loop in PyTorch/transformers; `bench/train_compare.sh` runs both.
use anyhow::Result;
use earl_core::device::{parse_device, parse_dtype};
use earl_core::train::optim::AdamWConfig;
use earl_core::train::{collate_left, CosineSchedule, LossNorm, Recipe, Sequence, SftTrainer};
use earl_core::{Emu3Config, RandomSource};
use tch::{Device, Kind};

#[derive(clap::Args)]
pub struct BenchTrainArgs {
    /// Hidden size of the Emu3-shaped model (head_dim 128, GQA 4:1, vocab 184622, MLP 3.5×).
    #[arg(long, default_value_t = 1024)]
    pub hidden: i64,
    #[arg(long, default_value_t = 8)]
    pub layers: i64,
    /// Tokens per sequence (EARL 256² edits: ~2100 with both images).
    #[arg(long, default_value_t = 2048)]
    pub seq_len: i64,
    /// Sequences per micro-batch.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    #[arg(long, default_value_t = 1)]
    pub grad_accum: usize,
    #[arg(long, default_value_t = 3)]
    pub warmup: usize,
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Compute dtype (masters and optimizer state are always f32).
    #[arg(long, default_value = "bf16")]
    pub dtype: String,
    /// Peak dense TFLOP/s of the device for MFU (H100 SXM bf16: 989).
    #[arg(long, default_value_t = 989.0)]
    pub peak_tflops: f64,
    /// Use `Emu3Config::tiny()` (CPU smoke test).
    #[arg(long)]
    pub tiny: bool,
    /// Take the model's shape from this checkpoint directory's config.json (e.g. `models/earl-mini`, whose SFT
    /// step is what the EARL-mini grid spends its time on) instead of --hidden/--layers; weights stay random.
    #[arg(long, conflicts_with = "tiny")]
    pub config_dir: Option<std::path::PathBuf>,
    /// Activation checkpointing: recompute each layer in the backward pass (less memory, one more forward).
    #[arg(long)]
    pub gradient_checkpointing: bool,
    /// With --gradient-checkpointing: run the head and loss this many positions at a time (0 = all at once).
    #[arg(long, default_value_t = 0)]
    pub loss_chunk_tokens: i64,
}

/// Training FLOPs per token: 6 per matmul parameter (the embedding lookup excluded) + causal attention scores.
pub fn flops_per_token(cfg: &Emu3Config, seq: i64) -> f64 {
    let matmul = cfg.num_parameters() - cfg.vocab_size * cfg.hidden_size;
    6.0 * matmul as f64 + 6.0 * (cfg.num_layers * cfg.num_heads * cfg.head_dim * seq) as f64
}

/// GPU memory of this process as nvidia-smi reports it (MiB), if available.
fn gpu_used_mib() -> Option<f64> {
    let out = std::process::Command::new("nvidia-smi")
        .args(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
        .output()
        .ok()?;
    let pid = std::process::id().to_string();
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut it = l.split(',').map(str::trim);
        (it.next()? == pid).then(|| it.next()?.parse().ok()).flatten()
    })
}

pub fn run(a: &BenchTrainArgs) -> Result<i32> {
    let device = parse_device(&a.device)?;
    let kind = parse_dtype(&a.dtype)?;
    let mut cfg = match (&a.config_dir, a.tiny) {
        (Some(dir), _) => Emu3Config::from_dir(dir)?,
        (None, true) => Emu3Config::tiny(),
        (None, false) => Emu3Config::emu3_shaped(a.hidden, a.layers),
    };
    cfg.max_position_embeddings = cfg.max_position_embeddings.max(a.seq_len);
    let src = RandomSource { seed: 0, std: 0.02, kind: Kind::Float, device };
    let recipe = Recipe {
        adamw: AdamWConfig::default(),
        schedule: CosineSchedule { lr: 1e-4, min_lr: 1e-5, warmup_steps: 0, total_steps: (a.warmup + a.steps) as u64 },
        max_grad_norm: 5.0,
        loss_norm: LossNorm::GlobalTokens,
        seed: 0,
        gradient_checkpointing: a.gradient_checkpointing,
        loss_chunk_tokens: a.loss_chunk_tokens,
        nan_policy: earl_core::train::NanPolicy::Stop,
    };
    let mut trainer = SftTrainer::new(&src, &cfg, kind, recipe)?;
    // Random sequences with a quarter of each as prompt (masked), like an edit whose target is the edited image.
    let mut rng = earl_core::data::DataRng::new(1);
    let mut micro = |n: usize| -> Result<Vec<earl_core::train::Batch>> {
        (0..n)
            .map(|_| {
                let seqs: Vec<Sequence> = (0..a.batch)
                    .map(|_| {
                        let ids = (0..a.seq_len).map(|_| rng.below(cfg.vocab_size as u64) as i64).collect();
                        Sequence::with_prompt(ids, a.seq_len as usize / 4)
                    })
                    .collect();
                Ok(collate_left(&seqs, device)?)
            })
            .collect()
    };
    let sync = || {
        if let Device::Cuda(i) = device {
            tch::Cuda::synchronize(i as i64);
        }
    };
    for _ in 0..a.warmup {
        trainer.step(&micro(a.grad_accum)?)?;
    }
    sync();
    let (mut tokens, mut secs, mut peak_mib) = (0i64, 0f64, gpu_used_mib().unwrap_or(0.0));
    for _ in 0..a.steps {
        let batches = micro(a.grad_accum)?;
        let t0 = std::time::Instant::now();
        let r = trainer.step(&batches)?;
        sync();
        secs += t0.elapsed().as_secs_f64();
        tokens += r.tokens;
        peak_mib = peak_mib.max(gpu_used_mib().unwrap_or(0.0));
    }
    // Where a step's time goes: the same micro-batches through forward + backward alone (training mode, no
    // optimizer); the rest of a step is gradient accumulation, clipping, AdamW and the copy into the compute model.
    let mut fb_secs = 0f64;
    for _ in 0..a.steps {
        let batches = micro(a.grad_accum)?;
        sync();
        let t0 = std::time::Instant::now();
        for b in &batches {
            trainer.loss_and_backward(b, 1.0, true)?;
        }
        sync();
        fb_secs += t0.elapsed().as_secs_f64();
    }
    let tps = tokens as f64 / secs;
    let mfu = tps * flops_per_token(&cfg, a.seq_len) / (a.peak_tflops * 1e12);
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |p| p * 4096.0 / 1048576.0);
    let out = serde_json::json!({
        "engine": "earl-rs", "params": cfg.num_parameters(), "hidden": cfg.hidden_size, "layers": cfg.num_layers,
        "seq_len": a.seq_len, "batch": a.batch, "grad_accum": a.grad_accum, "steps": a.steps, "dtype": a.dtype,
        "device": a.device, "tokens_per_s": tps, "step_time_s": secs / a.steps as f64, "mfu": mfu,
        "fwd_bwd_time_s": fb_secs / a.steps as f64,
        "peak_gpu_mib_nvidia_smi": peak_mib, "host_rss_mib": rss, "gradient_checkpointing": a.gradient_checkpointing,
        "loss_chunk_tokens": a.loss_chunk_tokens,
    });
    println!("{out}");
    Ok(0)
}
