//! GRPO math against torch: `fixtures/gen_grpo.py` computes advantages, log-probs (joint and split vocabularies),
//! entropy, the loss and its gradient w.r.t. the logits with plain torch; we recompute everything with
//! `earl_core::rl::grpo` from the same inputs and compare within the f32 bounds derived in [`Bounds`]. Also checks
//! that the loss of micro-batches, each normalised by the iteration's token count, adds up to the full-batch loss and
//! gradient.
use std::collections::HashMap;

use earl_core::rl::grpo::{group_advantages, grpo_loss, token_log_probs, GrpoLossMetrics, LogProbOptions, VocabSplit};
use earl_core::{compare, Result};
use earl_tests::{fixtures_dir, test_devices, tol};
use tch::{Device, Kind, Tensor};

/// The goldens are computed in f64 (gen_grpo.py casts the logits to double), so the bounds are our f32 error alone,
/// worst case (`earl_tests::tol`): a log-softmax over V logits of magnitude ≤ z (`V + 4` dependent roundings, scale
/// z); the per-token losses multiply a log-prob error by at most 1 + max|A| (policy term) or e^max|r| (the KL's
/// derivative, r the log-ratio to the reference), and the loss sums B·T of them. Observed on x86: ≤ 4.4e-7 relative.
struct Bounds {
    /// Max |Δ| of a log-prob.
    logp: f64,
    /// |Δ| of the scalar losses, entropy and their sums.
    scalar: f64,
    /// Relative L2 of the gradient w.r.t. the logits.
    grad: f64,
}

impl Bounds {
    fn of(g: &HashMap<String, Tensor>) -> Self {
        let s = g["logits"].size();
        let (b, t, v) = (s[0] as usize, s[1] as usize, s[2] as usize);
        let temperature = Vec::<f64>::try_from(&g["params"]).unwrap()[0];
        let z =
            g["logits"].abs().max().double_value(&[]).max(g["ref_logits"].abs().max().double_value(&[])) / temperature;
        let a = g["advantages"].abs().max().double_value(&[]);
        let r = (&g["logps_joint"] - &g["ref_logps_joint"]).abs().max().double_value(&[]);
        let chain = v + 4;
        Bounds {
            logp: tol::f32_worst(chain, z),
            scalar: tol::f32_worst(chain + b * t, z * (1.0 + a + r.exp())),
            grad: tol::f32_worst(chain, z * (1.0 + r.exp())),
        }
    }
}

fn golden() -> HashMap<String, Tensor> {
    let path = fixtures_dir().join("grpo-small").join("golden.safetensors");
    Tensor::read_safetensors(&path).expect("read golden").into_iter().collect()
}

fn rel(a: f64, b: f64) -> f64 {
    (a - b).abs() / b.abs().max(1e-12)
}

fn assert_close(what: &str, ours: &Tensor, reference: &Tensor, max_rel_l2: f64) {
    let rep = compare(ours, reference, None).expect(what);
    assert!(rep.rel_l2 <= max_rel_l2, "{what}: {rep} (bound {max_rel_l2:.2e})");
}

fn assert_abs(what: &str, ours: f64, reference: f64, bound: f64) {
    assert!((ours - reference).abs() <= bound, "{what}: {ours} vs torch {reference} (bound {bound:.2e})");
}

struct Case {
    logits: Tensor,
    ref_logits: Tensor,
    ids: Tensor,
    mask: Tensor,
    image: Tensor,
    temperature: f64,
    kl_coeff: f64,
    first_visual: i64,
}

fn case(g: &HashMap<String, Tensor>, device: Device) -> Case {
    let p = Vec::<f64>::try_from(&g["params"]).unwrap();
    Case {
        logits: g["logits"].to_device(device),
        ref_logits: g["ref_logits"].to_device(device),
        ids: g["completion_ids"].to_device(device),
        mask: g["completion_mask"].to_device(device),
        image: g["image_mask"].to_device(device),
        temperature: p[0],
        kl_coeff: p[1],
        first_visual: p[2] as i64,
    }
}

fn run(
    c: &Case,
    logits: &Tensor,
    rows: Option<(i64, i64)>,
    vocab: VocabSplit,
    adv: &Tensor,
    total: f64,
) -> Result<(Tensor, GrpoLossMetrics, Option<f64>)> {
    let pick = |t: &Tensor| match rows {
        Some((start, len)) => t.narrow(0, start, len),
        None => t.shallow_clone(),
    };
    let opts = LogProbOptions { temperature: c.temperature, vocab, compute_entropy: true };
    let (lp, lm) = token_log_probs(&pick(logits), &pick(&c.ids), &pick(&c.mask), &pick(&c.image), &opts)?;
    let (rlp, _) =
        tch::no_grad(|| token_log_probs(&pick(&c.ref_logits), &pick(&c.ids), &pick(&c.mask), &pick(&c.image), &opts))?;
    let (loss, m) = grpo_loss(&lp, &rlp, &pick(adv), &pick(&c.mask), c.kl_coeff, total)?;
    Ok((loss, m, lm.entropy))
}

#[test]
fn advantages_match_torch() {
    let g = golden();
    let rewards = Vec::<f64>::try_from(&g["rewards"]).unwrap();
    let group = Vec::<f64>::try_from(&g["params"]).unwrap()[3] as usize;
    let (adv, m) = group_advantages(&rewards, group).unwrap();
    // Both sides in f64 over groups of 4: a mean, a std and a division, ~16 roundings of u64 = 1.1e-16.
    assert_close("advantages", &Tensor::from_slice(&adv), &g["advantages"], 16.0 * f64::EPSILON);
    assert_eq!((m.num_groups, m.uniform_groups), (2, 1));
}

#[test]
fn log_probs_loss_and_gradients_match_torch() {
    let g = golden();
    let bound = Bounds::of(&g);
    for device in test_devices() {
        let c = case(&g, device);
        let adv = g["advantages"].to_kind(Kind::Float).to_device(device);
        let total = c.mask.sum(Kind::Double).double_value(&[]);
        for (mode, vocab) in
            [("joint", VocabSplit::Joint), ("split", VocabSplit::Separate { first_visual_id: c.first_visual })]
        {
            let logits = c.logits.copy().set_requires_grad(true);
            let (loss, m, entropy) = run(&c, &logits, None, vocab, &adv, total).unwrap();
            loss.backward();
            let at = format!("{mode} on {device:?}");
            let lp = token_log_probs(
                &c.logits,
                &c.ids,
                &c.mask,
                &c.image,
                &LogProbOptions { temperature: c.temperature, vocab, compute_entropy: false },
            )
            .unwrap()
            .0;
            let rep = compare(&lp, &g[&format!("logps_{mode}")], None).unwrap();
            assert!(rep.max_abs <= bound.logp, "logps {at}: {rep} (bound {:.2e})", bound.logp);
            assert_abs(
                &format!("loss {at}"),
                loss.double_value(&[]),
                g[&format!("loss_{mode}")].double_value(&[]),
                bound.scalar,
            );
            assert_close(&format!("grad {at}"), &logits.grad(), &g[&format!("grad_{mode}")], bound.grad);
            for (name, ours) in
                [("policy_loss", m.policy_loss), ("kl_penalty", m.kl_penalty), ("entropy", entropy.unwrap())]
            {
                let want = g[&format!("{name}_{mode}")].double_value(&[]);
                assert_abs(&format!("{name} {at}"), ours, want, bound.scalar);
            }
            assert_eq!(m.tokens, total);
        }
    }
}

#[test]
fn micro_batches_add_up_to_the_iteration() {
    let g = golden();
    let bound = Bounds::of(&g);
    let c = case(&g, Device::Cpu);
    let adv = g["advantages"].to_kind(Kind::Float);
    let total = c.mask.sum(Kind::Double).double_value(&[]);
    let vocab = VocabSplit::Separate { first_visual_id: c.first_visual };
    let logits = c.logits.copy().set_requires_grad(true);
    let (mut sum_loss, mut sum_m) = (0.0, GrpoLossMetrics::default());
    for (start, len) in [(0, 3), (3, 3), (6, 2)] {
        let (loss, m, _) = run(&c, &logits, Some((start, len)), vocab, &adv, total).unwrap();
        loss.backward(); // gradients accumulate in logits.grad, as micro-batches do in training
        sum_loss += loss.double_value(&[]);
        sum_m.add(&m);
    }
    assert_abs("summed loss", sum_loss, g["loss_split"].double_value(&[]), bound.scalar);
    assert_abs("summed kl", sum_m.kl_penalty, g["kl_penalty_split"].double_value(&[]), bound.scalar);
    assert_eq!(sum_m.tokens, total);
    assert_close("accumulated grad", &logits.grad(), &g["grad_split"], bound.grad);
    // Group 1 has uniform rewards, so its tokens are exactly the near-zero-advantage share: a ratio of token counts
    // summed in f64, exact up to the one division.
    let group1 = c.mask.narrow(0, 4, 4).sum(Kind::Double).double_value(&[]);
    assert!(rel(sum_m.near_zero_advantage_share, group1 / total) <= 1e-12);
}
