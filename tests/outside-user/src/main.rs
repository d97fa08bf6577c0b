//! Loads a model with the README's library snippet, runs one forward pass and reports the device, whether CUDA was
//! available and how libtorch_cuda came into the process. Usage: `outside-user MODEL_DIR [cpu|cuda]`.
use std::path::Path;

use earl_core::{Emu3ForCausalLM, ForwardArgs};
use tch::{Device, Kind, Tensor};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let args: Vec<String> = std::env::args().collect();
    let dir = args.get(1).ok_or("usage: outside-user MODEL_DIR [cpu|cuda]")?;
    let (kind, device) = match args.get(2).map(String::as_str) {
        Some("cuda") => (Kind::BFloat16, Device::Cuda(0)),
        _ => (Kind::Float, Device::Cpu),
    };
    let (batch, max_len) = (2, 8);
    let ids = Tensor::from_slice(&[1i64, 2, 3, 4, 5, 6]).view([batch, 3]);
    let mask = Tensor::ones([batch, 3], (Kind::Int64, Device::Cpu));

    // The README's snippet, as written there.
    let model = Emu3ForCausalLM::from_dir(Path::new(dir), kind, device)?;
    let mut cache = model.new_cache(batch, max_len)?;
    let logits = model.forward(
        &ids,
        &ForwardArgs { attention_mask: Some(&mask), logits_to_keep: 1, ..Default::default() },
        Some(&mut cache),
    )?;

    println!("device: {device:?}");
    println!("logits: {:?} on {:?}", logits.size(), logits.device());
    println!("finite: {}", logits.to_kind(Kind::Float).isfinite().all().int64_value(&[]) == 1);
    println!("libtorch_cuda: {:?}", earl_core::torch_cuda::load());
    println!("cuda available: {} ({} device(s))", tch::Cuda::is_available(), tch::Cuda::device_count());
    Ok(())
}
