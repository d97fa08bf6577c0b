//! Which decode path generation runs on: [`Engine::Eager`] (the reference, any device) or [`Engine::Graph`] (the
//! decode step replayed from CUDA graphs, [`super::graph`]). Both take the same inputs and give the same
//! [`GeneratedSample`]s; this is the one place that picks between them, and the place `--engine` parses to.
use tch::Device;

use super::engine::{GeneratedSample, GenerationConfig, GenerationRequest};
use crate::error::{Error, Result};
use crate::model::Emu3ForCausalLM;

/// A generation engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One eager forward per step ([`super::engine`]): the reference, on any device.
    Eager,
    /// The decode step captured in a CUDA graph per batch-size bucket and replayed ([`super::graph`]); CUDA only.
    Graph,
}

impl Engine {
    /// The default on `device`: the graph engine on CUDA (issue 14; its CUDA tests check it samples the eager
    /// engine's tokens), the eager engine elsewhere.
    pub fn default_for(device: Device) -> Engine {
        if device.is_cuda() {
            Engine::Graph
        } else {
            Engine::Eager
        }
    }

    /// An engine as configs and flags spell it: `eager`, `graph`, or `auto` ([`Engine::default_for`] `device`).
    pub fn resolve(spelling: &str, device: Device) -> Result<Engine> {
        match spelling.trim() {
            "auto" => Ok(Engine::default_for(device)),
            other => other.parse().map_err(Error::input),
        }
    }

    /// `--engine`'s spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Engine::Eager => "eager",
            Engine::Graph => "graph",
        }
    }

    /// The error of the graph engine on a device without CUDA graphs.
    pub(crate) fn needs_cuda(device: Device) -> Error {
        Error::input(format!("the graph engine needs CUDA, but the model is on {device:?}; use --engine eager"))
    }

    /// Checks the engine can run on `device` (the graph engine needs CUDA).
    pub fn check_device(&self, device: Device) -> Result<()> {
        match self {
            Engine::Graph if !device.is_cuda() => Err(Self::needs_cuda(device)),
            _ => Ok(()),
        }
    }

    /// [`super::generate`] on this engine.
    pub fn generate(
        &self,
        model: &Emu3ForCausalLM,
        requests: &[GenerationRequest],
        cfg: &GenerationConfig,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<GeneratedSample>> {
        self.generate_keyed(model, requests, &super::engine::batch_keys(requests.len()), cfg, on_step)
    }

    /// [`super::generate_keyed`] on this engine.
    pub fn generate_keyed(
        &self,
        model: &Emu3ForCausalLM,
        requests: &[GenerationRequest],
        stream_keys: &[u64],
        cfg: &GenerationConfig,
        on_step: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<GeneratedSample>> {
        self.check_device(model.device())?;
        match self {
            Engine::Eager => super::engine::generate_keyed(model, requests, stream_keys, cfg, on_step),
            Engine::Graph => super::graph::generate_keyed(model, requests, stream_keys, cfg, on_step),
        }
    }
}

/// `eager` or `graph`.
impl std::str::FromStr for Engine {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "eager" => Ok(Engine::Eager),
            "graph" => Ok(Engine::Graph),
            other => Err(format!("engine {other:?}: write eager, graph or auto")),
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::SamplingParams;
    use crate::{Emu3Config, RandomSource};
    use tch::Kind;

    #[test]
    fn engines_parse_default_by_device_and_graph_needs_cuda() {
        assert_eq!(("eager".parse(), "graph".parse()), (Ok(Engine::Eager), Ok(Engine::Graph)));
        assert!("fast".parse::<Engine>().unwrap_err().contains("eager, graph or auto"));
        assert_eq!(Engine::Graph.to_string(), "graph");
        assert_eq!(Engine::default_for(Device::Cpu), Engine::Eager);
        assert_eq!(Engine::default_for(Device::Cuda(0)), Engine::Graph);
        assert_eq!(Engine::resolve("auto", Device::Cpu).unwrap(), Engine::Eager);
        assert_eq!(Engine::resolve(" auto", Device::Cuda(1)).unwrap(), Engine::Graph);
        assert_eq!(Engine::resolve("eager", Device::Cuda(0)).unwrap(), Engine::Eager);
        let e = Engine::resolve("fast", Device::Cpu).unwrap_err().to_string();
        assert_eq!(e, "invalid input: engine \"fast\": write eager, graph or auto");
        assert!(Engine::Eager.check_device(Device::Cpu).is_ok() && Engine::Graph.check_device(Device::Cuda(1)).is_ok());
        let e = Engine::Graph.check_device(Device::Cpu).unwrap_err().to_string();
        assert_eq!(e, "invalid input: the graph engine needs CUDA, but the model is on Cpu; use --engine eager");
    }

    #[test]
    fn the_graph_engine_on_a_cpu_model_is_a_one_line_error_and_eager_runs() {
        let src = RandomSource { seed: 3, std: 0.3, kind: Kind::Float, device: Device::Cpu };
        let m = Emu3ForCausalLM::load(&src, &Emu3Config::tiny()).unwrap();
        let req = [GenerationRequest { prompt: vec![1, 2, 3], prefill_len: 0, grid: None }];
        let cfg = GenerationConfig {
            max_new_tokens: 3,
            samples_per_request: 1,
            sampling: SamplingParams::greedy(),
            seed: 0,
            eos_ids: vec![],
            image_tokens: None,
            pad_id: 0,
            context_size: None,
            allow_overlong: false,
        };
        let e = Engine::Graph.generate(&m, &req, &cfg, &mut |_, _| {}).unwrap_err().to_string();
        assert!(e.contains("needs CUDA") && !e.contains('\n'), "{e}");
        let e = super::super::graph::GraphDecoder::new(&m, Default::default()).err().unwrap().to_string();
        assert!(e.contains("needs CUDA"), "{e}");
        let eager = Engine::Eager.generate(&m, &req, &cfg, &mut |_, _| {}).unwrap();
        assert_eq!(eager, super::super::generate(&m, &req, &cfg, &mut |_, _| {}).unwrap());
    }
}
