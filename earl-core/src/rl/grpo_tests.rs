//! Hand-computed checks of the GRPO math (the torch comparison lives in tests/grpo_parity.rs).
use super::*;

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * (1.0 + b.abs())
}

#[test]
fn advantages_are_normalised_per_group_with_population_std() {
    let (adv, m) = group_advantages(&[1.0, 3.0, 5.0, 5.0, 0.0, 0.0], 2).unwrap();
    let d = 1.0 + ADVANTAGE_EPS; // group [1, 3]: mean 2, population std 1
    assert!(close(adv[0], -1.0 / d, 1e-15) && close(adv[1], 1.0 / d, 1e-15));
    assert_eq!(&adv[2..], &[0.0, 0.0, 0.0, 0.0]); // uniform groups carry no signal
    assert_eq!((m.uniform_groups, m.num_groups), (2, 3));
    assert!(close(m.reward_mean, 14.0 / 6.0, 1e-15));
    assert!(close(m.mean_group_std, 1.0 / 3.0, 1e-15));

    // A group of three [0, 0, 3]: mean 1, variance (1 + 1 + 4) / 3 = 2.
    let (adv, _) = group_advantages(&[0.0, 0.0, 3.0], 3).unwrap();
    let d = 2f64.sqrt() + ADVANTAGE_EPS;
    assert!(close(adv[0], -1.0 / d, 1e-15) && close(adv[2], 2.0 / d, 1e-15));
}

#[test]
fn advantages_reject_bad_input() {
    assert!(group_advantages(&[1.0, 2.0, 3.0], 2).is_err());
    assert!(group_advantages(&[1.0, 2.0], 0).is_err());
    assert!(group_advantages(&[], 2).is_err());
    assert!(group_advantages(&[1.0, f64::NAN], 2).is_err());
}

/// One position whose probabilities are proportional to 1, 2, 3, 4 at temperature 1.
fn one_position_logits() -> Tensor {
    Tensor::from_slice(&[1f64.ln(), 2f64.ln(), 3f64.ln(), 4f64.ln()]).view([1, 1, 4])
}

fn lp_of(id: i64, image: i64, temperature: f64, vocab: VocabSplit) -> (f64, LogProbMetrics) {
    let ids = Tensor::from_slice(&[id]).view([1, 1]);
    let mask = Tensor::from_slice(&[1i64]).view([1, 1]);
    let img = Tensor::from_slice(&[image]).view([1, 1]);
    let opts = LogProbOptions { temperature, vocab, compute_entropy: true };
    let (lp, m) = token_log_probs(&one_position_logits(), &ids, &mask, &img, &opts).unwrap();
    (lp.double_value(&[0, 0]), m)
}

#[test]
fn log_probs_match_hand_values() {
    let (lp, m) = lp_of(3, 1, 1.0, VocabSplit::Joint);
    assert!(close(lp, 0.4f64.ln(), 1e-12));
    let h: f64 = [0.1f64, 0.2, 0.3, 0.4].iter().map(|p| -p * p.ln()).sum();
    assert!(close(m.entropy.unwrap(), h, 1e-12));
    // Temperature 0.5 squares the probabilities' ratios: 1, 4, 9, 16 over 30.
    assert!(close(lp_of(3, 1, 0.5, VocabSplit::Joint).0, (16.0f64 / 30.0).ln(), 1e-12));
    // Split at id 2: text token 1 is normalised over {0, 1}, visual token 3 over {2, 3}.
    let split = VocabSplit::Separate { first_visual_id: 2 };
    assert!(close(lp_of(1, 0, 1.0, split).0, (2.0f64 / 3.0).ln(), 1e-12));
    let (lp, m) = lp_of(3, 1, 1.0, split);
    assert!(close(lp, (4.0f64 / 7.0).ln(), 1e-12));
    let h = -(3.0 / 7.0 * (3.0f64 / 7.0).ln() + 4.0 / 7.0 * (4.0f64 / 7.0).ln());
    assert!(close(m.entropy.unwrap(), h, 1e-12));
}

#[test]
fn masked_positions_are_zero_and_bad_shapes_are_errors() {
    let logits = Tensor::zeros([1, 2, 4], (Kind::Float, tch::Device::Cpu));
    let ids = Tensor::from_slice(&[1i64, 0]).view([1, 2]);
    let mask = Tensor::from_slice(&[1i64, 0]).view([1, 2]);
    let img = Tensor::zeros([1, 2], (Kind::Int64, tch::Device::Cpu));
    let opts = LogProbOptions { temperature: 1.0, vocab: VocabSplit::Joint, compute_entropy: false };
    let (lp, m) = token_log_probs(&logits, &ids, &mask, &img, &opts).unwrap();
    assert!(close(lp.double_value(&[0, 0]), 0.25f64.ln(), 1e-6));
    assert_eq!(lp.double_value(&[0, 1]), 0.0);
    assert_eq!((m.tokens, m.entropy), (1.0, None));

    let bad_ids = Tensor::from_slice(&[4i64, 0]).view([1, 2]);
    assert!(token_log_probs(&logits, &bad_ids, &mask, &img, &opts).is_err());
    assert!(token_log_probs(&logits, &ids.view([2, 1]), &mask, &img, &opts).is_err());
    let hot = LogProbOptions { temperature: 0.0, ..opts };
    assert!(token_log_probs(&logits, &ids, &mask, &img, &hot).is_err());
    let split = LogProbOptions { vocab: VocabSplit::Separate { first_visual_id: 4 }, ..opts };
    assert!(token_log_probs(&logits, &ids, &mask, &img, &split).is_err());
}

#[test]
fn loss_and_gradient_match_hand_values() {
    // Two positions, the second masked: logp = ln 0.5, ref = ln 0.25, A = 2, β = 0.1, 2 tokens in the iteration.
    let logp = Tensor::from_slice(&[0.5f64.ln(), -3.0]).view([1, 2]).set_requires_grad(true);
    let refs = Tensor::from_slice(&[0.25f64.ln(), -1.0]).view([1, 2]);
    let adv = Tensor::from_slice(&[2.0f64]);
    let mask = Tensor::from_slice(&[1i64, 0]).view([1, 2]);
    let (loss, m) = grpo_loss(&logp, &refs, &adv, &mask, 0.1, 2.0).unwrap();
    let kl = 0.5 - 0.5f64.ln() - 1.0; // exp(ref − logp) − (ref − logp) − 1 with ref − logp = ln 0.5
    let expected = (-(0.5f64.ln()) * 2.0 + 0.1 * kl) / 2.0;
    assert!(close(loss.double_value(&[]), expected, 1e-12));
    assert!(close(m.policy_loss, -(0.5f64.ln()) * 2.0 / 2.0, 1e-12));
    assert!(close(m.kl_penalty, kl / 2.0, 1e-12));
    assert!(close(m.kl_logratio, (0.5f64.ln() - 0.25f64.ln()) / 2.0, 1e-12));
    assert_eq!((m.tokens, m.near_zero_advantage_share), (1.0, 0.0));
    loss.backward();
    // d/dlogp [−logp·A + β(e^{ref−logp} − (ref − logp) − 1)] / N = (−A + β(1 − e^{ref−logp})) / N
    let g = logp.grad();
    assert!(close(g.double_value(&[0, 0]), (-2.0 + 0.1 * (1.0 - 0.5)) / 2.0, 1e-12));
    assert_eq!(g.double_value(&[0, 1]), 0.0);
}

#[test]
fn loss_counts_near_zero_advantages_and_rejects_bad_input() {
    let logp = Tensor::from_slice(&[-1.0f64, -1.0, -1.0, -1.0]).view([2, 2]);
    let adv = Tensor::from_slice(&[0.0f64, -0.5]);
    let mask = Tensor::from_slice(&[1i64, 1, 1, 0]).view([2, 2]);
    let (_, m) = grpo_loss(&logp, &logp, &adv, &mask, 0.0, 3.0).unwrap();
    // Two of three tokens belong to the zero-advantage completion; the negative one is not "near zero".
    assert!(close(m.near_zero_advantage_share, 2.0 / 3.0, 1e-12));
    assert_eq!(m.kl_penalty, 0.0);
    assert!(grpo_loss(&logp, &logp, &adv, &mask, 0.1, 0.0).is_err());
    assert!(grpo_loss(&logp, &logp, &adv, &mask, -0.1, 3.0).is_err());
    assert!(grpo_loss(&logp, &logp, &Tensor::from_slice(&[0.0f64; 3]), &mask, 0.1, 3.0).is_err());
}

#[test]
fn token_schedules_follow_the_reference_cycles() {
    let mask = Tensor::from_slice(&[1i64, 1, 1, 0]).view([1, 4]);
    let image = Tensor::from_slice(&[0i64, 1, 1, 1]).view([1, 4]);
    let row = |t: &Tensor| Vec::<i64>::try_from(t.view([-1])).unwrap();
    let text = TokenSchedule {
        train_text_tokens_only: true,
        text_only_cycle_steps: 10,
        text_only_steps: 7,
        ..Default::default()
    };
    let (m, mm) = training_token_mask(&mask, &image, &text, 13).unwrap(); // 13 % 10 = 3 < 7: text
    assert_eq!(
        (row(&m), mm.phase, mm.active_before, mm.active_after),
        (vec![1, 0, 0, 0], TokenPhase::TextOnly, 3.0, 1.0)
    );
    let (m, mm) = training_token_mask(&mask, &image, &text, 8).unwrap(); // 8 >= 7: visual tokens
    assert_eq!((row(&m), mm.phase), (vec![0, 1, 1, 0], TokenPhase::VisionOnly));
    let vision = TokenSchedule {
        train_vision_tokens_only: true,
        vision_only_cycle_steps: 4,
        vision_only_steps: 1,
        ..Default::default()
    };
    let (m, mm) = training_token_mask(&mask, &image, &vision, 4).unwrap();
    assert_eq!((row(&m), mm.phase), (vec![0, 1, 1, 0], TokenPhase::VisionOnly));
    let (m, mm) = training_token_mask(&mask, &image, &vision, 5).unwrap(); // rest of the cycle: every token
    assert_eq!((row(&m), mm.phase), (vec![1, 1, 1, 0], TokenPhase::All));
    let (m, _) = training_token_mask(&mask, &image, &TokenSchedule::default(), 0).unwrap();
    assert_eq!(row(&m), vec![1, 1, 1, 0]);
    let broken = TokenSchedule { train_text_tokens_only: true, ..Default::default() };
    assert!(training_token_mask(&mask, &image, &broken, 0).is_err());
}

#[test]
fn visual_mask_marks_the_code_range() {
    let ids = Tensor::from_slice(&[5i64, 9, 10, 13, 14]);
    assert_eq!(Vec::<i64>::try_from(visual_token_mask(&ids, 10, 4)).unwrap(), vec![0, 0, 1, 1, 0]);
}
