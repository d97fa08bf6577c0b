//! SFT parity with transformers 5.17.0 / torch 2.11.0 (fixtures/gen_sft.py): the loss and every parameter gradient
//! of a left-padded batch (worst-case f32 bounds, [`loss_and_grad_bounds`]), and the first ten optimizer steps of the paper's recipe — AdamW with
//! the Trainer's parameter groups, warm-up + cosine-to-min schedule, clipping, accumulation — whose losses must match
//! torch's within 1e-4, for both loss normalisations.
use earl_core::train::optim::{decays, AdamWConfig};
use earl_core::train::{Batch, CosineSchedule, LossNorm, Recipe, SftTrainer};
use earl_core::{Emu3Config, SafetensorsStore};
use earl_tests::fixtures_dir;
use tch::{Device, Kind, Tensor};

fn trainer(norm: LossNorm, recipe_json: &serde_json::Value) -> SftTrainer {
    // The reference ran with dropout off.
    trainer_on(norm, recipe_json, Device::Cpu, 0.0, false)
}

fn trainer_on(norm: LossNorm, recipe_json: &serde_json::Value, device: Device, dropout: f64, ckpt: bool) -> SftTrainer {
    trainer_kind(norm, recipe_json, device, dropout, ckpt, Kind::Float)
}

fn trainer_kind(
    norm: LossNorm,
    json: &serde_json::Value,
    device: Device,
    dropout: f64,
    ckpt: bool,
    kind: Kind,
) -> SftTrainer {
    let recipe_json = json;
    let dir = fixtures_dir().join("lm-tiny-gqa");
    let mut cfg = Emu3Config::from_dir(&dir).unwrap();
    cfg.attention_dropout = dropout;
    let store = SafetensorsStore::open(&dir, Kind::Float, device).unwrap();
    let f = |k: &str| recipe_json[k].as_f64().unwrap();
    let recipe = Recipe {
        adamw: AdamWConfig { beta1: f("beta1"), beta2: f("beta2"), eps: f("eps"), weight_decay: f("weight_decay") },
        schedule: CosineSchedule {
            lr: f("lr"),
            min_lr: f("min_lr"),
            warmup_steps: f("warmup_steps") as u64,
            total_steps: f("total_steps") as u64,
        },
        max_grad_norm: f("max_grad_norm"),
        loss_norm: norm,
        seed: 0,
        gradient_checkpointing: ckpt,
        loss_chunk_tokens: 0,
        nan_policy: earl_core::train::NanPolicy::Stop,
    };
    SftTrainer::new(&store, &cfg, kind, recipe).unwrap()
}

fn recipe_json() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures_dir().join("sft-tiny/recipe.json")).unwrap()).unwrap()
}

fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let d = (a.to_kind(Kind::Double) - b.to_kind(Kind::Double)).norm().double_value(&[]);
    d / b.to_kind(Kind::Double).norm().double_value(&[]).max(1e-30)
}

/// Worst-case f32 bounds (`earl_tests::tol`) for two evaluations of the loss and gradients of the golden batch by the
/// same maths in another summation order (transformers on another CPU, or our chunked head): the forward's chain
/// through lm-tiny-gqa (2 layers, hidden 64, MLP 96, vocabulary 320) over the batch's positions, then the mean over
/// its targets. The cross-entropy terms are positive, so the loss's own magnitude is the scale (a relative bound);
/// gradients go back through the same reductions and sum over every position of the batch. Observed: ≤ 6.3e-7.
fn loss_and_grad_bounds(batch: &Batch, targets: f64) -> (f64, f64) {
    let (b, t) = (batch.input_ids.size()[0] as usize, batch.input_ids.size()[1] as usize);
    let chain = earl_tests::tol::lm_chain(2, 64, 96, t, 320) + targets as usize;
    (earl_tests::tol::f32_worst(chain, 1.0), earl_tests::tol::f32_worst(2 * chain + b * t, 1.0))
}

/// The golden-gradient file, its batch and the batch's target count.
fn golden_batch() -> (SafetensorsStore, Batch, f64) {
    let gold =
        SafetensorsStore::open(&fixtures_dir().join("sft-tiny/golden_grads.safetensors"), Kind::Float, Device::Cpu)
            .unwrap();
    let batch = Batch {
        input_ids: gold.tensor_any("input_ids").unwrap(),
        attention_mask: gold.tensor_any("attention_mask").unwrap(),
        labels: gold.tensor_any("labels").unwrap(),
    };
    let targets = earl_core::train::loss::count_targets(&batch.labels) as f64;
    (gold, batch, targets)
}

#[test]
fn loss_and_every_gradient_match_transformers() {
    let (gold, batch, targets) = golden_batch();
    let (loss_bound, grad_bound) = loss_and_grad_bounds(&batch, targets);
    // Activation checkpointing must not change the numbers: every path against the same goldens (plain, recomputed,
    // recomputed with the head and loss run 3 positions at a time).
    for (ckpt, chunk) in [(false, 0), (true, 0), (true, 3)] {
        let mut t = trainer_on(LossNorm::GlobalTokens, &recipe_json(), Device::Cpu, 0.0, ckpt);
        t.recipe.loss_chunk_tokens = chunk;
        let (loss, _) = t.loss_and_backward(&batch, targets, false).unwrap();
        let ref_loss = gold.tensor_any("loss").unwrap().double_value(&[0]);
        assert!(
            ((loss - ref_loss) / ref_loss).abs() <= loss_bound,
            "checkpointing {ckpt}, chunk {chunk}: loss {loss} vs {ref_loss}"
        );
        let grads = t.gradients();
        assert_eq!(grads.len() + 4, gold.names().len(), "one golden gradient per parameter");
        for (name, g) in grads {
            let r = gold.tensor_any(&format!("grad.{name}")).unwrap();
            let err = rel_l2(&g, &r);
            assert!(err <= grad_bound, "checkpointing {ckpt}, chunk {chunk}: grad of {name}: rel L2 {err:.3e}");
        }
    }
}

#[test]
fn checkpointing_redraws_the_dropout_masks_of_the_forward_pass() {
    // Dropout draws from libtorch's process-global generator: no other test may use it meanwhile.
    let _rng = earl_tests::TORCH_RNG.lock().unwrap_or_else(|e| e.into_inner());
    let (_, batch, targets) = golden_batch();
    let (loss_bound, grad_bound) = loss_and_grad_bounds(&batch, targets);
    for device in earl_tests::test_devices() {
        let run = |dropout: f64, ckpt: bool, chunk: i64, train: bool| {
            let mut t = trainer_on(LossNorm::GlobalTokens, &recipe_json(), device, dropout, ckpt);
            t.recipe.loss_chunk_tokens = chunk;
            let (loss, _) = t.loss_and_backward(&batch, targets, train).unwrap();
            (loss, t.gradients())
        };
        let (plain_loss, plain) = run(0.3, false, 0, true);
        let (ckpt_loss, ckpt) = run(0.3, true, 0, true);
        // The chunked head sums the loss in another order: equal to rounding.
        let (chunk_loss, chunked) = run(0.3, true, 4, true);
        assert!(
            (plain_loss - chunk_loss).abs() <= loss_bound * plain_loss.abs(),
            "{device:?}: chunked loss {chunk_loss} vs {plain_loss}"
        );
        for ((name, a), (_, b)) in plain.iter().zip(&chunked) {
            let err = rel_l2(b, a);
            assert!(err <= grad_bound, "{device:?}: grad of {name} differs with a chunked head: rel L2 {err:.3e}");
        }
        let (eval_loss, _) = run(0.3, false, 0, false);
        assert_ne!(plain_loss, eval_loss, "{device:?}: dropout must be active in training mode");
        // The recompute runs the same kernels on the same shapes: bitwise equal on the CPU (same path, same thread
        // count). CUDA may pick other kernels (atomics in some backward reductions), so there: the reorder bounds.
        let (lb, gb) = if device.is_cuda() { (loss_bound, grad_bound) } else { (0.0, 0.0) };
        assert!(
            (plain_loss - ckpt_loss).abs() <= lb * plain_loss.abs(),
            "{device:?}: loss {plain_loss} vs {ckpt_loss}"
        );
        for ((name, a), (_, b)) in plain.iter().zip(&ckpt) {
            let err = rel_l2(b, a);
            assert!(err <= gb, "{device:?}: grad of {name} differs under checkpointing: rel L2 {err:.3e}");
        }
    }
}

#[test]
fn decay_groups_match_the_trainer() {
    let json = recipe_json();
    let reference: Vec<&str> =
        json["decay_parameters"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let t = trainer(LossNorm::GlobalTokens, &json);
    let ours: Vec<&str> = t.opt.params.iter().filter(|p| decays(&p.name)).map(|p| p.name.as_str()).collect();
    let mut ours = ours;
    ours.sort();
    assert_eq!(ours, reference);
}

#[test]
fn first_ten_steps_match_a_torch_run_of_the_recipe() {
    let json = recipe_json();
    let gold =
        SafetensorsStore::open(&fixtures_dir().join("sft-tiny/golden_steps.safetensors"), Kind::Float, Device::Cpu)
            .unwrap();
    let ids = gold.tensor_any("input_ids").unwrap(); // [S, A, B, T]
    let mask = gold.tensor_any("attention_mask").unwrap();
    let labels = gold.tensor_any("labels").unwrap();
    let lrs = Vec::<f64>::try_from(gold.tensor_any("lr").unwrap().to_kind(Kind::Double)).unwrap();
    let (steps, accum) = (ids.size()[0], ids.size()[1]);
    for (norm, key) in [(LossNorm::GlobalTokens, "global_tokens"), (LossNorm::MicroBatchMean, "micro_batch_mean")] {
        let losses =
            Vec::<f64>::try_from(gold.tensor_any(&format!("loss_{key}")).unwrap().to_kind(Kind::Double)).unwrap();
        let norms =
            Vec::<f64>::try_from(gold.tensor_any(&format!("grad_norm_{key}")).unwrap().to_kind(Kind::Double)).unwrap();
        let mut t = trainer(norm, &json);
        // bf16 compute with fp32 masters: gradients accumulate over the micro-batches in f32, so the run stays
        // within bf16 rounding of torch's f32 run: every layer's activations round to bf16 (u = 3.9e-3) and the
        // loss averages those roundings over its targets, so 1e-2 ≈ 2.5 u_bf16 bounds the worst step.
        // The f32 run over ten AdamW steps: worst-case bounds compound through Adam's normalised updates (a gradient
        // element near zero can flip its update's sign), so these follow the practical √n·u per step instead, times
        // the steps, with a safety factor: loss ≈ 5.8 → 10 · √960 · u · 5.8 ≈ 1.1e-4 (bound 1e-4 absolute, observed
        // ≤ 4.8e-7); grad norm 10 · √2000 · u ≈ 2.7e-5 (bound 1e-4 relative, observed ≤ 1.9e-7). The learning rate is
        // computed in f64 and stored in f32 by the golden: |Δ| ≤ u · lr (bound 1e-7 relative).
        let mut half = trainer_kind(norm, &json, Device::Cpu, 0.0, false, Kind::BFloat16);
        let mut worst = 0f64;
        let mut worst_bf16 = 0f64;
        for s in 0..steps {
            let micro: Vec<Batch> = (0..accum)
                .map(|a| Batch {
                    input_ids: ids.get(s).get(a),
                    attention_mask: mask.get(s).get(a),
                    labels: labels.get(s).get(a),
                })
                .collect();
            let r = t.step(&micro).unwrap();
            let h = half.step(&micro).unwrap();
            let s = s as usize;
            let rel = ((h.loss - losses[s]) / losses[s]).abs().max(((h.grad_norm - norms[s]) / norms[s]).abs());
            worst_bf16 = worst_bf16.max(rel);
            assert!(
                rel <= 1e-2,
                "{key} step {s}: bf16 compute loss {} / grad norm {} vs torch f32 {} / {}",
                h.loss,
                h.grad_norm,
                losses[s],
                norms[s]
            );
            worst = worst.max((r.loss - losses[s]).abs());
            assert!((r.loss - losses[s]).abs() <= 1e-4, "{key} step {s}: loss {} vs torch {}", r.loss, losses[s]);
            assert!((r.lr - lrs[s]).abs() <= 1e-7 * lrs[s].max(1e-3), "{key} step {s}: lr {} vs {}", r.lr, lrs[s]);
            assert!(
                (r.grad_norm - norms[s]).abs() / norms[s] <= 1e-4,
                "{key} step {s}: grad norm {} vs {}",
                r.grad_norm,
                norms[s]
            );
        }
        eprintln!("{key}: max |Δloss| over {steps} steps = {worst:.2e}; bf16 compute: max relative Δ {worst_bf16:.2e}");
    }
}

#[test]
fn an_all_masked_global_batch_is_skipped_not_trained() {
    // With every label −100 there is no loss, yet an AdamW step would still decay the weights (weight_decay > 0 in
    // the recipe): the step is reported as skipped, the weights stay bit for bit, and the step count advances.
    let (_, mut batch, _) = golden_batch();
    batch.labels = batch.labels.full_like(-100);
    let mut json = recipe_json();
    json["weight_decay"] = serde_json::json!(0.1);
    let mut t = trainer(LossNorm::GlobalTokens, &json);
    let before: Vec<Tensor> = t.opt.params.iter().map(|p| p.master.copy()).collect();
    let report = t.step(std::slice::from_ref(&batch)).unwrap();
    assert!(
        report.skipped == Some(earl_core::train::SkipReason::AllLabelsMasked) && report.target_tokens == 0,
        "{report:?}"
    );
    assert_eq!(t.step_count(), 1);
    for (p, b) in t.opt.params.iter().zip(&before) {
        assert!(p.master.equal(b), "{} moved on a skipped step", p.name);
    }
    // A batch with targets trains as before.
    let (_, batch, _) = golden_batch();
    assert_eq!(t.step(&[batch]).unwrap().skipped, None);
}

#[test]
fn a_non_finite_step_stops_or_is_skipped_never_trained() {
    // One NaN in the embedding of a token of the batch makes the loss and every gradient NaN.
    let (_, batch, _) = golden_batch();
    let poison = |t: &SftTrainer| {
        let tok = batch.input_ids.get(0).get(-1).int64_value(&[]);
        let p = t.opt.params.iter().find(|p| p.name.ends_with("embed_tokens.weight")).unwrap();
        let _ = tch::no_grad(|| p.master.get(tok).get(0).fill_(f64::NAN));
    };
    let snapshot = |t: &SftTrainer| -> Vec<Tensor> { t.opt.params.iter().map(|p| p.master.copy()).collect() };
    let unchanged = |t: &SftTrainer, before: &[Tensor]| {
        // NaN != NaN, so compare bit patterns through a NaN-preserving equality.
        t.opt.params.iter().zip(before).all(|(p, b)| {
            p.master.isnan().equal(&b.isnan())
                && p.master.nan_to_num(0.0, None, None).equal(&b.nan_to_num(0.0, None, None))
        })
    };
    let mut t = trainer(LossNorm::GlobalTokens, &recipe_json());
    poison(&t);
    let before = snapshot(&t);
    let e = t.step(std::slice::from_ref(&batch)).unwrap_err().to_string();
    assert!(e.contains("training diverged: non-finite") && e.contains("step 1") && e.contains("skip_step"), "{e}");
    assert!(unchanged(&t, &before) && t.step_count() == 0);

    let mut t = trainer(LossNorm::GlobalTokens, &recipe_json());
    t.recipe.nan_policy = earl_core::train::NanPolicy::SkipStep;
    poison(&t);
    let before = snapshot(&t);
    let report = t.step(std::slice::from_ref(&batch)).unwrap();
    assert_eq!(report.skipped, Some(earl_core::train::SkipReason::NonFinite));
    assert!(unchanged(&t, &before) && t.step_count() == 1);
    // The metrics line says NaN in words, never `null`.
    let line = serde_json::to_string(&report).unwrap();
    assert!(
        line.contains("\"loss\":\"NaN\"") && line.contains("\"skipped\":\"non_finite\"") && !line.contains("null"),
        "{line}"
    );
}
