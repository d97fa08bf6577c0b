//! The reward interface of GRPO and its composition. A [`Reward`] scores a batch of completions — each given as
//! instruction, source image, predicted image (or none when the completion held no decodable image), and the
//! ground-truth edit as image and codes — returning a score plus named components. [`RewardSet`] runs the
//! configured rewards, prefixes their components with the reward's name (`viescore__overall`, as EARL's
//! `rl/reward.py` logs them), and forms the final reward with one of EARL's formulas; completions that did not stop
//! get 0. Offline rewards live in [`super::offline`]; the verifier rewards (network) live in `earl-eval`.
use std::collections::BTreeMap;

use image::RgbImage;

use crate::error::{Error, Result};

use crate::grid::CodeGrid;

/// One completion to score.
#[derive(Debug, Clone, Copy)]
pub struct RewardInput<'a> {
    /// The edit instruction of the prompt.
    pub instruction: &'a str,
    /// The image to be edited.
    pub source: &'a RgbImage,
    /// The edited image decoded from the completion; `None` when the completion held no decodable image (every
    /// reward then scores 0 everywhere, as EARL does).
    pub predicted: Option<&'a RgbImage>,
    /// The dataset's edited image, when the dataset has one (offline rewards need it).
    pub ground_truth: Option<&'a RgbImage>,
    /// The visual codes of the completion's image, when it held one.
    pub predicted_codes: Option<&'a CodeGrid>,
    /// The visual codes of the ground-truth edit, when the dataset has them.
    pub ground_truth_codes: Option<&'a CodeGrid>,
}

/// A reward's verdict on one completion: the score and named components (the score is usually `overall`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RewardOutput {
    /// The scalar verdict; the final reward of a [`RewardSet`] combines these into the training reward.
    pub score: f64,
    /// Named parts of the verdict, logged as metrics.
    pub components: BTreeMap<String, f64>,
}

impl RewardOutput {
    /// An output whose score is `components["overall"]`.
    pub fn from_components(components: impl IntoIterator<Item = (&'static str, f64)>) -> Self {
        let components: BTreeMap<String, f64> = components.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        Self { score: components.get("overall").copied().unwrap_or(0.0), components }
    }

    /// Every named component set to 0 (the verdict on an undecodable image).
    pub fn zeros(names: &[&'static str]) -> Self {
        Self::from_components(names.iter().map(|n| (*n, 0.0)))
    }
}

/// The mean of every component over the outputs that have it. A component can be missing from some outputs (a
/// VIEScore reply with a single score has no second sub-score); averaging over all outputs would count it as 0.
pub fn component_means(outputs: &[RewardOutput]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for o in outputs {
        for (k, v) in &o.components {
            let e = sums.entry(k.clone()).or_default();
            *e = (e.0 + v, e.1 + 1);
        }
    }
    sums.into_iter().map(|(k, (sum, n))| (k, sum / n as f64)).collect()
}

/// A reward function. Implementations are blocking and may parallelise a batch internally (the verifier does).
pub trait Reward: Send + Sync {
    /// Short name; prefixes the components in logs (`viescore` → `viescore__overall`).
    fn name(&self) -> &str;
    /// One output per input, in order. An error means the batch could not be scored at all (e.g. the verifier is
    /// unreachable after its retries), never a low score.
    fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>>;
    /// What a run manifest should record about this reward beyond its name, e.g. where a verifier's prompts came
    /// from (their files and SHA-256), since they decide what the reward measures. `Null` when nothing.
    fn manifest(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}

/// How the final (trained-on) reward is formed from the components (EARL `reward_final_reward`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum FinalReward {
    /// The `overall` of the named reward: `"viescore"`, `"ground_score"`, `"token_agreement"`, ….
    Overall(String),
    /// `sqrt(viescore__perceptual_quality · ground_score__overall)`.
    SqrtViescorePqTimesGroundScore,
}

impl FinalReward {
    /// Parses EARL's names. The product formula is accepted as `sqrt(viescore_pq*ground_score)` and in the two
    /// spellings the reference uses (`sqrt(viescore_pqxground_score)` in code, `sqrt(viescore_pxground_score)` in
    /// its config comments).
    pub fn parse(s: &str) -> Result<Self> {
        let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        match compact.as_str() {
            "sqrt(viescore_pq*ground_score)" | "sqrt(viescore_pqxground_score)" | "sqrt(viescore_pxground_score)" => {
                Ok(Self::SqrtViescorePqTimesGroundScore)
            }
            name if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
                Ok(Self::Overall(name.to_string()))
            }
            _ => Err(Error::input(format!(
                "unknown final reward formula {s:?} (expected a reward name such as \"viescore\" or \
                 \"sqrt(viescore_pq*ground_score)\")"
            ))),
        }
    }

    /// The rewards this formula reads.
    pub fn needs(&self) -> Vec<&str> {
        match self {
            Self::Overall(name) => vec![name.as_str()],
            Self::SqrtViescorePqTimesGroundScore => vec!["viescore", "ground_score"],
        }
    }

    fn apply(&self, components: &BTreeMap<String, f64>) -> Result<f64> {
        let get = |key: &str| {
            components.get(key).copied().ok_or_else(|| Error::Reward {
                reward: "final reward".into(),
                msg: format!("component {key} is missing"),
            })
        };
        match self {
            Self::Overall(name) => get(&format!("{name}__overall")),
            Self::SqrtViescorePqTimesGroundScore => {
                Ok((get("viescore__perceptual_quality")? * get("ground_score__overall")?).max(0.0).sqrt())
            }
        }
    }
}

/// The configured rewards plus the final formula.
pub struct RewardSet {
    rewards: Vec<Box<dyn Reward>>,
    final_reward: FinalReward,
}

impl std::fmt::Debug for RewardSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.rewards.iter().map(|r| r.name()).collect();
        f.debug_struct("RewardSet").field("rewards", &names).field("final_reward", &self.final_reward).finish()
    }
}

impl RewardSet {
    /// Checks that names are unique and that the formula's rewards are present.
    pub fn new(rewards: Vec<Box<dyn Reward>>, final_reward: FinalReward) -> Result<Self> {
        let names: Vec<&str> = rewards.iter().map(|r| r.name()).collect();
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(Error::input(format!("reward {n:?} is configured twice")));
            }
        }
        for need in final_reward.needs() {
            if !names.contains(&need) {
                return Err(Error::input(format!(
                    "final reward {final_reward:?} needs the {need:?} reward, which is not enabled (enabled: {names:?})"
                )));
            }
        }
        Ok(Self { rewards, final_reward })
    }

    /// Names of the enabled rewards, in scoring order.
    pub fn names(&self) -> Vec<&str> {
        self.rewards.iter().map(|r| r.name()).collect()
    }

    /// For a run manifest: every reward's [`Reward::manifest`], by name.
    pub fn manifest(&self) -> serde_json::Value {
        serde_json::Value::Object(self.rewards.iter().map(|r| (r.name().to_string(), r.manifest())).collect())
    }

    /// Scores a batch with every reward (concurrently, one thread per reward) and forms the final reward;
    /// `stopped[i]` is false when completion `i` hit the length limit instead of stopping, which earns 0 (EARL).
    /// Output components are prefixed `<reward>__<component>`; `score` is the final reward.
    pub fn score(&self, inputs: &[RewardInput<'_>], stopped: &[bool]) -> Result<Vec<RewardOutput>> {
        if stopped.len() != inputs.len() {
            return Err(Error::input(format!("{} completions but {} stop flags", inputs.len(), stopped.len())));
        }
        let per_reward: Vec<Result<Vec<RewardOutput>>> = std::thread::scope(|s| {
            let handles: Vec<_> = self.rewards.iter().map(|r| s.spawn(move || r.score_batch(inputs))).collect();
            handles
                .into_iter()
                .zip(&self.rewards)
                .map(|(h, r)| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::Reward { reward: r.name().to_string(), msg: "panicked while scoring".into() })
                    })
                })
                .collect()
        });
        let mut out = vec![RewardOutput::default(); inputs.len()];
        for (reward, scored) in self.rewards.iter().zip(per_reward) {
            let scored = scored?;
            if scored.len() != inputs.len() {
                return Err(Error::Reward {
                    reward: reward.name().to_string(),
                    msg: format!("returned {} scores for {} completions", scored.len(), inputs.len()),
                });
            }
            for (o, s) in out.iter_mut().zip(scored) {
                for (k, v) in s.components {
                    o.components.insert(format!("{}__{k}", reward.name()), v);
                }
            }
        }
        for (o, &stop) in out.iter_mut().zip(stopped) {
            o.score = if stop { self.final_reward.apply(&o.components)? } else { 0.0 };
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static str, Vec<(&'static str, f64)>);

    impl Reward for Fixed {
        fn name(&self) -> &str {
            self.0
        }
        fn score_batch(&self, inputs: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
            Ok(inputs.iter().map(|_| RewardOutput::from_components(self.1.clone())).collect())
        }
    }

    fn input(img: &RgbImage) -> RewardInput<'_> {
        RewardInput {
            instruction: "x",
            source: img,
            predicted: Some(img),
            ground_truth: None,
            predicted_codes: None,
            ground_truth_codes: None,
        }
    }

    #[test]
    fn formulas_parse_in_every_reference_spelling() {
        assert_eq!(FinalReward::parse("viescore").unwrap(), FinalReward::Overall("viescore".into()));
        for s in ["sqrt(viescore_pq*ground_score)", "sqrt(viescore_pqxground_score)", "sqrt( viescore_pxground_score )"]
        {
            assert_eq!(FinalReward::parse(s).unwrap(), FinalReward::SqrtViescorePqTimesGroundScore);
        }
        assert!(FinalReward::parse("sqrt(a*b)").is_err());
        assert!(FinalReward::parse("").is_err());
    }

    #[test]
    fn final_reward_combines_prefixed_components_and_zeroes_unstopped() {
        let vie = Fixed("viescore", vec![("overall", 6.0), ("perceptual_quality", 4.0)]);
        let gs = Fixed("ground_score", vec![("overall", 9.0)]);
        let set =
            RewardSet::new(vec![Box::new(vie), Box::new(gs)], FinalReward::SqrtViescorePqTimesGroundScore).unwrap();
        let img = RgbImage::new(1, 1);
        let out = set.score(&[input(&img), input(&img)], &[true, false]).unwrap();
        assert_eq!(out[0].score, 6.0); // sqrt(4 · 9)
        assert_eq!(out[1].score, 0.0); // hit the length limit
        assert_eq!(out[1].components["viescore__overall"], 6.0); // components are still logged
        assert_eq!(out[0].components["ground_score__overall"], 9.0);
        assert!(set.score(&[input(&img)], &[]).is_err());
    }

    #[test]
    fn component_means_skip_outputs_without_the_component() {
        let a = RewardOutput::from_components([("overall", 4.0), ("overedit", 6.0)]);
        let b = RewardOutput::from_components([("overall", 2.0)]);
        let m = component_means(&[a, b]);
        // Exact in binary floating point: (4 + 2) / 2 and 6 / 1.
        assert_eq!((m["overall"], m["overedit"]), (3.0, 6.0));
        assert!(component_means(&[]).is_empty());
    }

    #[test]
    fn missing_or_duplicate_rewards_are_config_errors() {
        let vie = || Box::new(Fixed("viescore", vec![("overall", 1.0)])) as Box<dyn Reward>;
        assert!(RewardSet::new(vec![vie()], FinalReward::Overall("ground_score".into())).is_err());
        assert!(RewardSet::new(vec![vie(), vie()], FinalReward::Overall("viescore".into())).is_err());
    }

    struct Described;

    impl Reward for Described {
        fn name(&self) -> &str {
            "judge"
        }
        fn score_batch(&self, _: &[RewardInput<'_>]) -> Result<Vec<RewardOutput>> {
            Ok(Vec::new())
        }
        fn manifest(&self) -> serde_json::Value {
            serde_json::json!({ "judge_prompts": "files" })
        }
    }

    #[test]
    fn the_manifest_records_each_reward_by_name() {
        let plain = Fixed("token_agreement", vec![]);
        let set =
            RewardSet::new(vec![Box::new(Described), Box::new(plain)], FinalReward::Overall("judge".into())).unwrap();
        assert_eq!(
            set.manifest(),
            serde_json::json!({ "judge": { "judge_prompts": "files" }, "token_agreement": null })
        );
    }
}
