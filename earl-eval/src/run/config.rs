//! The settings of one evaluation, in two levels: [`RawEvalConfig`] mirrors a TOML table (an experiment chain's
//! `[eval]` stage) or the flags of `earl eval run`, every key optional; [`EvalConfig::from_raw`] validates it,
//! fills the reference's defaults (`baselines/our_eval_on_*.py`: source area 65636, judge area 65536, mode E,
//! temperature 1.0, top-k 2048, top-p 1.0, 3000 new tokens) and resolves relative paths.
use std::path::{Path, PathBuf};
use std::time::Duration;

use earl_core::generate::{SamplingParams, TopK};
use earl_core::{Error, Result};

use crate::bench::GenericColumns;
use crate::judge::{JudgeMode, VieScoreJudge, VieScoreJudgeOptions};
use crate::prompts::{PromptSet, Template};

/// Serde mirror of an evaluation's settings (keys as in the TOML table; every one optional here).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawEvalConfig {
    /// Benchmark name (`omniedit`, …, `generic`).
    pub benchmark: Option<String>,
    /// The dataset's directory (or file) as a download leaves it.
    pub data: Option<PathBuf>,
    /// Columns of the `generic` benchmark.
    pub columns: Option<GenericColumns>,
    /// Language-model checkpoint directory.
    pub model: Option<PathBuf>,
    /// Vision-tokenizer checkpoint directory.
    pub vq: Option<PathBuf>,
    /// Text-tokenizer directory (default: the model directory).
    pub tokenizer: Option<PathBuf>,
    /// `auto`, `cpu`, `cuda` or `cuda:N` (default `auto`).
    pub device: Option<String>,
    /// Language-model dtype (default bf16 on a GPU, f32 on the CPU).
    pub dtype: Option<String>,
    /// Vision-tokenizer dtype (default f32, as the reference).
    pub vq_dtype: Option<String>,
    /// Evaluate only the first N samples of the selection.
    pub limit: Option<usize>,
    /// Sampling seed (default 0; the reference sets none).
    pub seed: Option<u64>,
    /// Assistant prefill (default `E`).
    pub mode: Option<String>,
    /// Pixel area the source is resized to before encoding (default 65636, the reference's typo).
    pub area: Option<u64>,
    /// Pixel area of the judge's "original" and the saved ground truth (default 65536).
    pub judge_area: Option<u64>,
    /// New-token cap (default 3000), lowered further to what `max_position_embeddings` leaves after the prompt.
    pub max_new_tokens: Option<usize>,
    /// Samples generated together (default 1, as the reference). Each sample's stream is keyed by its row, so a
    /// batch changes only float summation order (other matmul kernels), not what is drawn.
    pub batch_size: Option<usize>,
    /// Decode path: `eager`, `graph` (CUDA graphs; CUDA only) or `auto` (default: graph on CUDA, else eager). Not
    /// in the fingerprint: both engines sample the same tokens from the same row-keyed streams.
    pub engine: Option<String>,
    /// Sampling temperature (default 1.0).
    pub temperature: Option<f64>,
    /// Top-k (default 2048; `off` or −1 turns it off).
    pub top_k: Option<TopK>,
    /// Top-p (default 1.0).
    pub top_p: Option<f64>,
    /// Chat-completions endpoint of the VIEScore judge; unset = generate only (`earl eval judge` scores later).
    pub judge_url: Option<String>,
    /// Judge model (default `gpt-4o-mini-2024-07-18`, the paper's).
    pub judge_model: Option<String>,
    /// File holding the judge's API key; unset = no `Authorization` header.
    pub judge_key_file: Option<PathBuf>,
    /// `reference` (default) or `retry`.
    pub judge_mode: Option<JudgeMode>,
    /// Directory with the paper's `viescore_sc.txt` and `viescore_pq.txt` (scripts/fetch_judge_prompts.py); unset =
    /// the project's own wording (warned, and recorded in the manifest).
    pub judge_prompts: Option<PathBuf>,
    /// Completion limit of a judge request (default 1400).
    pub judge_max_tokens: Option<u32>,
    /// Judge temperature (default: the server's).
    pub judge_temperature: Option<f64>,
    /// Judge requests in flight (default 8).
    pub judge_concurrency: Option<usize>,
    /// Whole-request timeout in seconds (default 120).
    pub judge_timeout_s: Option<f64>,
    /// `retry` mode: attempts per request (default 5).
    pub judge_max_attempts: Option<u32>,
    /// `retry` mode: rounds of asking unparsable replies again (default 5).
    pub judge_max_rounds: Option<u32>,
}

/// The judge part of a validated evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct JudgeConfig {
    /// Endpoint.
    pub url: String,
    /// Judge model.
    pub model: String,
    /// Key file (read when the judge is built).
    pub key_file: Option<PathBuf>,
    /// Failure mode.
    pub mode: JudgeMode,
    /// Prompt directory; `None` = built-in wording.
    pub prompts: Option<PathBuf>,
    /// Completion limit.
    pub max_tokens: u32,
    /// Temperature; `None` = the server's.
    pub temperature: Option<f64>,
    /// Requests in flight.
    pub concurrency: usize,
    /// Request timeout.
    pub timeout: Duration,
    /// `retry` mode attempts.
    pub max_attempts: u32,
    /// `retry` mode rounds.
    pub max_rounds: u32,
}

/// A validated evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalConfig {
    /// Benchmark name.
    pub benchmark: String,
    /// Dataset directory or file.
    pub data: PathBuf,
    /// Columns of the `generic` benchmark.
    pub columns: Option<GenericColumns>,
    /// Language model.
    pub model: PathBuf,
    /// Vision tokenizer.
    pub vq: PathBuf,
    /// Text tokenizer.
    pub tokenizer: PathBuf,
    /// Device name, as given.
    pub device: String,
    /// Language-model dtype name; `None` = the device's default.
    pub dtype: Option<String>,
    /// Vision-tokenizer dtype name.
    pub vq_dtype: String,
    /// First N samples of the selection.
    pub limit: Option<usize>,
    /// Sampling seed.
    pub seed: u64,
    /// Prefill name.
    pub mode: String,
    /// Source area before encoding.
    pub area: u64,
    /// Judge / saved-image area.
    pub judge_area: u64,
    /// New-token cap.
    pub max_new_tokens: usize,
    /// Samples generated together.
    pub batch_size: usize,
    /// Decode engine as spelled (`auto` until the device is known).
    pub engine: String,
    /// Sampling parameters (validated).
    pub sampling: SamplingParams,
    /// The judge; `None` = generate only.
    pub judge: Option<JudgeConfig>,
}

fn resolve(base: &Path, p: PathBuf) -> PathBuf {
    if p.is_relative() {
        base.join(p)
    } else {
        p
    }
}

fn required<T>(v: Option<T>, key: &str) -> Result<T> {
    v.ok_or_else(|| Error::Input(format!("eval: `{key}` is required")))
}

fn check(ok: bool, msg: impl FnOnce() -> String) -> Result<()> {
    if ok {
        Ok(())
    } else {
        Err(Error::Input(format!("eval: {}", msg())))
    }
}

impl JudgeConfig {
    /// The VIEScore judge of these settings: reads the key file (trimmed; empty = no key) and the prompt files
    /// `viescore_sc.txt` and `viescore_pq.txt` of the prompt directory (built-in wording without one).
    pub fn build(&self) -> Result<VieScoreJudge> {
        let api_key = match &self.key_file {
            Some(f) => std::fs::read_to_string(f).map_err(|e| super::io_err(f, e))?.trim().to_string(),
            None => String::new(),
        };
        let mut prompts = PromptSet::default();
        if let Some(d) = &self.prompts {
            prompts.semantic_consistency = Template::from_file(&d.join("viescore_sc.txt"))?;
            prompts.perceptual_quality = Template::from_file(&d.join("viescore_pq.txt"))?;
        }
        let mut o = VieScoreJudgeOptions::new(self.url.clone(), self.model.clone());
        (o.api_key, o.mode, o.prompts, o.max_tokens, o.temperature) =
            (api_key, self.mode, prompts, self.max_tokens, self.temperature);
        (o.max_concurrency, o.timeout, o.max_attempts, o.max_rounds) =
            (self.concurrency, self.timeout, self.max_attempts, self.max_rounds);
        Ok(VieScoreJudge::new(o))
    }

    /// Validates the judge keys of `raw` (`None` without `judge_url`).
    pub fn from_raw(raw: &RawEvalConfig, base: &Path) -> Result<Option<Self>> {
        let Some(url) = raw.judge_url.clone() else { return Ok(None) };
        check(url.starts_with("http://") || url.starts_with("https://"), || {
            format!("`judge_url` must be an http(s) URL, got {url:?}")
        })?;
        let timeout_s = raw.judge_timeout_s.unwrap_or(120.0);
        check(timeout_s.is_finite() && timeout_s > 0.0, || "`judge_timeout_s` must be > 0".into())?;
        let j = JudgeConfig {
            url,
            model: raw.judge_model.clone().unwrap_or_else(|| "gpt-4o-mini-2024-07-18".into()),
            key_file: raw.judge_key_file.clone().map(|p| resolve(base, p)),
            mode: raw.judge_mode.unwrap_or_default(),
            prompts: raw.judge_prompts.clone().map(|p| resolve(base, p)),
            max_tokens: raw.judge_max_tokens.unwrap_or(1400),
            temperature: raw.judge_temperature,
            concurrency: raw.judge_concurrency.unwrap_or(8),
            timeout: Duration::from_secs_f64(timeout_s),
            max_attempts: raw.judge_max_attempts.unwrap_or(5),
            max_rounds: raw.judge_max_rounds.unwrap_or(5),
        };
        check(j.max_tokens >= 1, || "`judge_max_tokens` must be >= 1".into())?;
        check(j.concurrency >= 1, || "`judge_concurrency` must be >= 1".into())?;
        check(j.max_attempts >= 1 && j.max_rounds >= 1, || {
            "`judge_max_attempts`, `judge_max_rounds` must be >= 1".into()
        })?;
        Ok(Some(j))
    }
}

impl EvalConfig {
    /// Validates `raw`; relative paths are resolved against `base_dir`.
    pub fn from_raw(raw: RawEvalConfig, base_dir: &Path) -> Result<Self> {
        let judge = JudgeConfig::from_raw(&raw, base_dir)?;
        let model = resolve(base_dir, required(raw.model, "model")?);
        let sampling = SamplingParams {
            temperature: raw.temperature.unwrap_or(1.0),
            top_k: raw.top_k.unwrap_or(TopK::K(2048)),
            top_p: raw.top_p.unwrap_or(1.0),
        };
        sampling.validate().map_err(|e| Error::Input(format!("eval: {e}")))?;
        let cfg = EvalConfig {
            benchmark: required(raw.benchmark, "benchmark")?,
            data: resolve(base_dir, required(raw.data, "data")?),
            columns: raw.columns,
            vq: resolve(base_dir, required(raw.vq, "vq")?),
            tokenizer: raw.tokenizer.map(|p| resolve(base_dir, p)).unwrap_or_else(|| model.clone()),
            model,
            device: raw.device.unwrap_or_else(|| "auto".into()),
            dtype: raw.dtype,
            vq_dtype: raw.vq_dtype.unwrap_or_else(|| "f32".into()),
            limit: raw.limit,
            seed: raw.seed.unwrap_or(0),
            mode: raw.mode.unwrap_or_else(|| "E".into()),
            area: raw.area.unwrap_or(65636),
            judge_area: raw.judge_area.unwrap_or(65536),
            max_new_tokens: raw.max_new_tokens.unwrap_or(earl_core::edit::DEFAULT_MAX_NEW_TOKENS),
            batch_size: raw.batch_size.unwrap_or(1),
            engine: raw.engine.unwrap_or_else(|| "auto".into()),
            sampling,
            judge,
        };
        check(cfg.limit != Some(0), || "`limit` must be >= 1".into())?;
        check(cfg.area > 0 && cfg.judge_area > 0, || "`area` and `judge_area` must be > 0".into())?;
        check(cfg.max_new_tokens >= 1, || "`max_new_tokens` must be >= 1".into())?;
        check(cfg.batch_size >= 1, || "`batch_size` must be >= 1".into())?;
        // The spelling is checked here, before any sample runs; the device decides `auto` later.
        earl_core::generate::Engine::resolve(&cfg.engine, tch::Device::Cpu)
            .map_err(|e| Error::Input(format!("`engine`: {e}")))?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_references_and_paths_resolve_against_the_base() {
        let raw: RawEvalConfig = toml::from_str(
            "benchmark = \"aurora\"\ndata = \"d\"\nmodel = \"m\"\nvq = \"/abs/vq\"\njudge_url = \"http://h:1\"\n",
        )
        .unwrap();
        let c = EvalConfig::from_raw(raw, Path::new("/base")).unwrap();
        assert_eq!(
            (c.data, c.model.clone(), c.vq, c.tokenizer),
            ("/base/d".into(), "/base/m".into(), "/abs/vq".into(), c.model)
        );
        assert_eq!((c.area, c.judge_area, c.max_new_tokens, c.seed, c.mode.as_str()), (65636, 65536, 3000, 0, "E"));
        assert_eq!(c.sampling, SamplingParams::reference_eval());
        let j = c.judge.unwrap();
        assert_eq!(
            (j.model.as_str(), j.mode, j.max_tokens, j.temperature),
            ("gpt-4o-mini-2024-07-18", JudgeMode::Reference, 1400, None)
        );
    }

    #[test]
    fn bad_settings_are_one_line_errors() {
        let base = RawEvalConfig {
            benchmark: Some("aurora".into()),
            data: Some("d".into()),
            model: Some("m".into()),
            vq: Some("v".into()),
            ..Default::default()
        };
        let err = |r: RawEvalConfig| EvalConfig::from_raw(r, Path::new(".")).unwrap_err().to_string();
        assert!(err(RawEvalConfig { model: None, ..base.clone() }).contains("`model` is required"));
        assert!(err(RawEvalConfig { limit: Some(0), ..base.clone() }).contains("limit"));
        assert!(err(RawEvalConfig { judge_url: Some("ftp://x".into()), ..base.clone() }).contains("judge_url"));
        assert!(err(RawEvalConfig { top_p: Some(0.0), ..base.clone() }).contains("eval:"));
        let e = err(RawEvalConfig { engine: Some("fast".into()), ..base.clone() });
        assert!(e.contains("`engine`") && e.contains("write eager, graph or auto") && !e.contains('\n'), "{e}");
        assert!(toml::from_str::<RawEvalConfig>("benchmark = \"a\"\nbogus = 1\n").is_err());
        assert!(EvalConfig::from_raw(base, Path::new(".")).unwrap().judge.is_none());
    }
}
