//! Criterion benchmark of the Emu3 forward pass on CPU: a full forward (prefill) of a batch and one cached decode
//! step, on the tiny preset and on a small Emu3-shaped model with random weights. GPU decode speed is measured by
//! `earl bench` against the PyTorch baseline (later issue); this bench tracks CPU regressions.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use earl_core::{Emu3Config, Emu3ForCausalLM, ForwardArgs, RandomSource};
use tch::{Device, Kind, Tensor};

fn model(cfg: &Emu3Config) -> Emu3ForCausalLM {
    let src = RandomSource { seed: 0, std: 0.02, kind: Kind::Float, device: Device::Cpu };
    Emu3ForCausalLM::load(&src, cfg).expect("random model")
}

fn bench_forward(c: &mut Criterion) {
    let _guard = tch::no_grad_guard();
    let configs = [
        ("tiny", Emu3Config::tiny()),
        (
            "h256-l4-v8k",
            Emu3Config { vocab_size: 8192, pad_token_id: 0, bos_token_id: 1, ..Emu3Config::emu3_shaped(256, 4) },
        ),
    ];
    let mut g = c.benchmark_group("emu3_forward_cpu");
    g.sample_size(10);
    for (name, cfg) in configs {
        let m = model(&cfg);
        let (b, t) = (4i64, 64i64);
        let ids = Tensor::randint(cfg.vocab_size, [b, t], (Kind::Int64, Device::Cpu));
        g.bench_with_input(BenchmarkId::new("prefill_b4_t64", name), &ids, |bench, ids| {
            bench.iter(|| m.forward(ids, &ForwardArgs { logits_to_keep: 1, ..Default::default() }, None).unwrap())
        });
        let step = ids.narrow(1, 0, 1);
        g.bench_with_input(BenchmarkId::new("decode_step_b4_ctx64", name), &step, |bench, step| {
            bench.iter_batched(
                || {
                    let mut cache = m.new_cache(b, t + 1).unwrap();
                    let _ = m.forward(&ids, &ForwardArgs { logits_to_keep: 1, ..Default::default() }, Some(&mut cache));
                    cache
                },
                |mut cache| m.forward(step, &ForwardArgs::default(), Some(&mut cache)).unwrap(),
                criterion::BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, bench_forward);
criterion_main!(benches);
