//! Language-model parity with transformers 5.17.0 on the tiny fixture checkpoints (all three config/weight
//! dialects): full forward of a left-padded batch and cached token-by-token decoding, f32 on every device within
//! ‖Δ‖/‖ref‖ ≤ 1e-5 and max |Δ| ≤ 1e-4, and bf16 on a GPU when one is present, within 2e-2.
//!
//! Bounds: the f32 forward of a tiny fixture is a chain of n ≈ 700–1000 dependent roundings (`earl_tests::tol::
//! lm_chain`); in practice two orders of summation differ by ~√n·u ≈ 1.9e-6 relative, and 1e-5 (≈ 5× that, the
//! `earl parity` default) has held on every x86 CPU and on the H200 (observed ≤ 1.3e-7 on CPUs, 4.4e-7 on CUDA).
//! The worst case n·u ≈ 6e-5 would hide nothing a wrong norm or rotary does (a 1% norm change moves logits by
//! 1e-2). bf16 rounds weights and every activation to 8 significant bits (u = 3.9e-3): observed 9.4e-3 … 1.1e-2,
//! bound 2e-2 ≈ 5 u_bf16.
use earl_core::parity::check_lm_reference;
use earl_core::{Emu3ForCausalLM, ForwardArgs, SafetensorsStore};
use earl_tests::{fixtures_dir, test_devices, LM_FIXTURES};
use tch::{Device, Kind, Tensor};

fn reference(name: &str) -> SafetensorsStore {
    SafetensorsStore::open(&fixtures_dir().join(name).join("reference.safetensors"), Kind::Float, Device::Cpu)
        .expect("reference file")
}

#[test]
fn every_fixture_matches_the_reference_on_every_device() {
    for device in test_devices() {
        let mut runs = vec![(Kind::Float, 1e-5, 1e-4)];
        if device.is_cuda() {
            runs.push((Kind::BFloat16, 2e-2, f64::INFINITY));
        }
        for (kind, rel, abs) in runs {
            for name in LM_FIXTURES {
                let model = Emu3ForCausalLM::from_dir(&fixtures_dir().join(name), kind, device).expect(name);
                let checks = check_lm_reference(&model, &reference(name)).expect(name);
                assert_eq!(checks.len(), 2, "{name}: full forward and cached decode");
                for c in checks {
                    eprintln!("{name} {} {kind:?} on {device:?}: {}", c.name, c.report);
                    assert!(c.report.within(rel, abs), "{name} {} {kind:?} on {device:?}: {}", c.name, c.report);
                }
            }
        }
    }
}

#[test]
fn a_perturbed_norm_breaks_parity() {
    // Guards against a comparison that cannot fail: scaling one RMSNorm weight must be detected.
    let name = "lm-tiny-gqa";
    let mut model = Emu3ForCausalLM::from_dir(&fixtures_dir().join(name), Kind::Float, Device::Cpu).unwrap();
    model.layers[1].post_attention_layernorm.weight = &model.layers[1].post_attention_layernorm.weight * 1.01;
    let checks = check_lm_reference(&model, &reference(name)).unwrap();
    assert!(checks.iter().all(|c| !c.report.within(1e-5, 1e-4)), "{checks:?}");
}

#[test]
fn cached_decoding_equals_the_full_forward() {
    let name = "lm-tiny-mha";
    let model = Emu3ForCausalLM::from_dir(&fixtures_dir().join(name), Kind::Float, Device::Cpu).unwrap();
    let r = reference(name);
    let (ids, mask) = (r.tensor_any("input_ids").unwrap(), r.tensor_any("attention_mask").unwrap());
    let full = model.forward(&ids, &ForwardArgs { attention_mask: Some(&mask), ..Default::default() }, None).unwrap();
    // Prefill 7 columns, then 5 more one by one.
    let t = ids.size()[1];
    let mut cache = model.new_cache(ids.size()[0], t).unwrap();
    let mut parts = Vec::new();
    for (start, len) in std::iter::once((0, 7)).chain((7..t).map(|s| (s, 1))) {
        let m = mask.narrow(1, start, len);
        let args = ForwardArgs { attention_mask: Some(&m), ..Default::default() };
        parts.push(model.forward(&ids.narrow(1, start, len), &args, Some(&mut cache)).unwrap());
    }
    let inc = Tensor::cat(&parts, 1);
    let rep = earl_core::compare(&inc, &full, Some(&mask)).unwrap();
    assert!(rep.within(1e-5, 1e-4), "{rep}");
    assert_eq!(cache.len(), t);
}

#[test]
fn logits_to_keep_returns_the_last_positions() {
    let model = Emu3ForCausalLM::from_dir(&fixtures_dir().join("lm-tiny-orig"), Kind::Float, Device::Cpu).unwrap();
    let r = reference("lm-tiny-orig");
    let (ids, mask) = (r.tensor_any("input_ids").unwrap(), r.tensor_any("attention_mask").unwrap());
    let all = model.forward(&ids, &ForwardArgs { attention_mask: Some(&mask), ..Default::default() }, None).unwrap();
    let args = ForwardArgs { attention_mask: Some(&mask), logits_to_keep: 3, ..Default::default() };
    let last = model.forward(&ids, &args, None).unwrap();
    assert_eq!(last.size(), vec![3, 3, model.cfg.vocab_size]);
    let t = ids.size()[1];
    let rep = earl_core::compare(&last, &all.narrow(1, t - 3, 3), None).unwrap();
    // Only the head's matmul differs (3 positions instead of all: BLAS may block the 64-term dot products
    // differently): worst case 64·u relative, and 64·u·max|logit| absolute.
    let bound = earl_tests::tol::f32_worst(64, 1.0);
    let max_logit = all.abs().max().double_value(&[]);
    assert!(rep.within(bound, earl_tests::tol::f32_worst(64, max_logit)), "{rep}");
}

#[test]
fn rows_do_not_influence_each_other() {
    // A row's logits do not depend on the other rows of the batch or on its amount of left padding.
    let model = Emu3ForCausalLM::from_dir(&fixtures_dir().join("lm-tiny-gqa"), Kind::Float, Device::Cpu).unwrap();
    let r = reference("lm-tiny-gqa");
    let (ids, mask) = (r.tensor_any("input_ids").unwrap(), r.tensor_any("attention_mask").unwrap());
    let batch = model.forward(&ids, &ForwardArgs { attention_mask: Some(&mask), ..Default::default() }, None).unwrap();
    let n = mask.get(2).sum(Kind::Int64).int64_value(&[]);
    let t = ids.size()[1];
    let alone_ids = ids.get(2).narrow(0, t - n, n).unsqueeze(0);
    let alone = model.forward(&alone_ids, &ForwardArgs::default(), None).unwrap();
    let rep = earl_core::compare(&alone, &batch.get(2).narrow(0, t - n, n).unsqueeze(0), None).unwrap();
    // Other shapes (batch 1, no padding) may change BLAS blocking and attention reductions: the f32 bound above.
    assert!(rep.within(1e-5, 1e-4), "{rep}");
}
