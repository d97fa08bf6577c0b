//! `earl`: the command-line front of EARL-rs. Thin by design: argument parsing, logging set-up and printing; every
//! numerical step lives in earl-core.
mod bench;
mod bench_train;
mod choice;
mod data;
mod default_model;
mod doctor;
mod edit_cmd;
mod eval_cmd;
mod eval_report_cmd;
mod experiment_cmd;
mod mini_build_cmd;
mod mini_cmd;
mod parity;
mod rl_cmd;
mod sft;
mod train_tok_cmd;
mod vq_cmd;
mod vq_parity;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use earl_core::device::dtype_name;
use earl_core::{Emu3ForCausalLM, ForwardArgs};
use tch::{Kind, Tensor};

#[derive(Parser)]
#[command(name = "earl", version, about = "EARL: RL for autoregressive image editing with Emu3, in Rust")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Let cuDNN convolutions (the vision tokenizer on a GPU) round f32 to TF32. Off by default: f32 means f32.
    #[arg(long, global = true)]
    allow_tf32: bool,
    /// Check every loaded weight for NaN and Inf (one reduction per tensor); `earl parity` always does.
    #[arg(long, global = true)]
    check_weights: bool,
    /// Deterministic algorithms only (`torch.use_deterministic_algorithms(True)`, cuDNN deterministic, no cuDNN
    /// benchmark): an op without a deterministic kernel fails with its name instead of varying across reruns.
    /// Sets `CUBLAS_WORKSPACE_CONFIG=:4096:8` when unset, as cuBLAS requires (docs/generation.md, "Determinism").
    #[arg(long, global = true)]
    deterministic: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Report libtorch, CUDA/cuDNN, GPUs and where models are looked for.
    Doctor,
    /// Edit an image from a text instruction (EARL prompt, grid-constrained seeded sampling).
    Edit(edit_cmd::EditArgs),
    /// Run one forward pass of an Emu3 checkpoint and print the top next-token predictions.
    Forward {
        /// Checkpoint directory (config.json + safetensors).
        #[arg(long, default_value = "fixtures/lm-tiny-gqa")]
        model: PathBuf,
        /// Comma-separated prompt token ids.
        #[arg(long, default_value = "1,17,42,99,5")]
        ids: String,
        /// auto (cuda when available, else cpu), cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Default: bf16 on CUDA, f32 on CPU.
        #[arg(long)]
        dtype: Option<String>,
    },
    /// Compare this engine with reference outputs computed by the Python model (see fixtures/make_fixtures.py).
    Parity(parity::ParityArgs),
    /// Encode an image to a grid of vision-tokenizer codes (codes.json).
    Encode(vq_cmd::EncodeArgs),
    /// Decode a grid of codes (codes.json) to an image.
    Decode(vq_cmd::DecodeArgs),
    /// GRPO reinforcement learning from a TOML experiment (see docs/rl.md); resumes from the newest checkpoint.
    Rl(rl_cmd::RlArgs),
    /// Supervised fine-tuning from a TOML experiment (see docs/sft.md); resumes from the newest checkpoint.
    Sft(sft::SftArgs),
    /// Experiment chains: run SFT → RL → eval from one file, compare chains in the paper's table.
    #[command(subcommand)]
    Experiment(experiment_cmd::ExperimentCommand),
    /// Evaluation: generate and judge a benchmark (`run`), re-score (`judge`), the paper's table, HTML reports and
    /// comparisons (see docs/eval.md).
    #[command(subcommand)]
    Eval(eval_cmd::EvalCommand),
    /// Dataset tools: import EARL's tokenized data, verify a dataset.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// The EARL-mini world: write samples of a split, score an edited image with the exact verifier.
    #[command(subcommand)]
    Mini(mini_cmd::MiniCommand),
    /// Speed benchmarks on random-weight models (run next to shared/bench/torch_decode_baseline.py).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Vision-tokenizer training.
    #[command(subcommand)]
    Vq(train_tok_cmd::VqCommand),
    /// Text-tokenizer training.
    #[command(subcommand)]
    Tokenizer(train_tok_cmd::TokenizerCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Generation speed: prefill + sampled decoding, JSON lines like the PyTorch baseline.
    Decode(bench::DecodeArgs),
    /// SFT training throughput (tokens/s, peak memory, MFU) of an Emu3-shaped random model.
    Train(bench_train::BenchTrainArgs),
    /// VQ encode and decode throughput on random weights (compare with bench/vq_baseline.py).
    Vq(vq_cmd::BenchArgs),
    /// Time split of GRPO iterations (generation / rewards / reference log-probs / training) on a random model.
    Rl(bench::RlBenchArgs),
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("EARL_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    quiet_panics();
    let cli = parse_args();
    if cli.deterministic {
        if let Err(e) = deterministic() {
            eprintln!("error: --deterministic: {e}");
            std::process::exit(2);
        }
    }
    earl_core::device::set_allow_tf32(cli.allow_tf32);
    earl_core::weights::set_check_weights(cli.check_weights || matches!(cli.command, Command::Parity(_)));
    let code = match std::panic::catch_unwind(|| run(cli)) {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {}", one_line(&e));
            if backtrace_wanted() {
                for detail in details(&e) {
                    eprintln!("{detail}");
                }
            }
            2
        }
        Err(payload) => {
            let msg = payload.downcast_ref::<String>().map(String::as_str).or(payload.downcast_ref::<&str>().copied());
            let first = msg.map(earl_core::error::headline).unwrap_or_else(|| "panic without message".into());
            eprintln!("error: internal error: {first} (RUST_BACKTRACE=1 shows the rest)");
            2
        }
    };
    std::process::exit(code);
}

/// `--deterministic`: cuBLAS reads its workspace setting when a handle is first made, so it is set here, before
/// any tensor work and while the process has one thread; then libtorch's global switch.
fn deterministic() -> Result<()> {
    if std::env::var_os("CUBLAS_WORKSPACE_CONFIG").is_none() {
        std::env::set_var("CUBLAS_WORKSPACE_CONFIG", ":4096:8");
    }
    earl_torch_sys::set_deterministic(true)?;
    Ok(())
}

/// Arguments as clap parses them, except that every command takes negative numbers as values (`--temperature -1`
/// reaches the validation that explains it instead of "unexpected argument '-1'").
fn parse_args() -> Cli {
    fn negatives(cmd: clap::Command) -> clap::Command {
        cmd.allow_negative_numbers(true).mut_subcommands(negatives)
    }
    let matches = negatives(Cli::command()).get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// libtorch failures inside tch panic; earl-core catches them (`guard`) and returns one-line errors, but the default
/// hook would still print the panic message, a backtrace and kilobytes of C++ stack first. Only with
/// `RUST_BACKTRACE` set does the hook speak.
fn quiet_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if backtrace_wanted() {
            default(info);
        }
    }));
}

/// `RUST_BACKTRACE` set (and not 0): the user asks for the whole story, libtorch's C++ backtrace included.
fn backtrace_wanted() -> bool {
    std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0")
}

/// The full texts that [`one_line`] shortened: libtorch's messages with their C++ backtraces.
fn details(e: &anyhow::Error) -> Vec<String> {
    e.chain()
        .filter_map(|cause| match cause.downcast_ref::<earl_core::Error>() {
            Some(core) => core.detail().map(str::to_string),
            None => Some(cause.to_string()).filter(|t| t.trim().lines().count() > 1),
        })
        .collect()
}

/// An error and its causes on one line, each cause once: a cause whose text the line already holds (an OS error
/// that a library error already quotes) is not repeated, and a multi-line cause (libtorch's, with its C++
/// backtrace) is cut to its first statement.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = earl_core::error::headline(&cause.to_string());
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Doctor => doctor::run(),
        Command::Edit(args) => edit_cmd::run(&args),
        Command::Forward { model, ids, device, dtype } => forward(&model, &ids, &device, dtype.as_deref()),
        Command::Parity(args) => parity::run(&args),
        Command::Bench(BenchCommand::Decode(args)) => bench::decode(&args),
        Command::Sft(args) => sft::run(&args),
        Command::Rl(args) => rl_cmd::run(&args),
        Command::Data(cmd) => data::run(&cmd),
        Command::Mini(cmd) => mini_cmd::run(&cmd),
        Command::Experiment(cmd) => experiment_cmd::run(&cmd),
        Command::Eval(cmd) => eval_cmd::run(cmd),
        Command::Bench(BenchCommand::Train(args)) => bench_train::run(&args),
        Command::Encode(args) => vq_cmd::encode(&args),
        Command::Decode(args) => vq_cmd::decode(&args),
        Command::Bench(BenchCommand::Vq(args)) => vq_cmd::bench(&args),
        Command::Bench(BenchCommand::Rl(args)) => bench::rl(&args),
        Command::Vq(train_tok_cmd::VqCommand::Train(args)) => train_tok_cmd::vq_train(&args),
        Command::Tokenizer(train_tok_cmd::TokenizerCommand::Train(args)) => train_tok_cmd::tokenizer_train(&args),
    }
}

fn forward(model_dir: &Path, ids: &str, device: &str, dtype: Option<&str>) -> Result<i32> {
    let (device, kind) = choice::device_and_dtype(device, dtype)?;
    let ids: Vec<i64> = ids
        .split(',')
        .map(|s| s.trim().parse::<i64>().with_context(|| format!("--ids: {s:?} is not an integer")))
        .collect::<Result<_>>()?;
    let model = Emu3ForCausalLM::from_dir(model_dir, kind, device)
        .with_context(|| format!("loading {}", model_dir.display()))?;
    choice::announce("forward", device, Some(kind), None);
    let input = Tensor::from_slice(&ids).unsqueeze(0);
    let t0 = std::time::Instant::now();
    let logits = model.forward(&input, &ForwardArgs { logits_to_keep: 1, ..Default::default() }, None)?;
    let elapsed = t0.elapsed();
    let probs = logits.squeeze_dim(0).squeeze_dim(0).to_kind(Kind::Float).softmax(-1, Kind::Float);
    let (p, idx) = probs.topk(5, -1, true, true);
    let p = Vec::<f32>::try_from(p.to_device(tch::Device::Cpu))?;
    let idx = Vec::<i64>::try_from(idx.to_device(tch::Device::Cpu))?;
    println!(
        "model {} ({} params, {} on {:?}), prompt of {} tokens, forward in {:.1} ms",
        model_dir.display(),
        model.cfg.num_parameters(),
        dtype_name(kind),
        device,
        ids.len(),
        elapsed.as_secs_f64() * 1e3
    );
    println!("top-5 next tokens:");
    for (i, (id, pr)) in idx.iter().zip(&p).enumerate() {
        println!("  {}. id {id:>6}  p = {pr:.4}", i + 1);
    }
    Ok(0)
}
