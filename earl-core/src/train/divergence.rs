//! What a training run does when its numbers stop being numbers. A NaN or infinite loss or gradient norm is caught
//! every step, before the optimizer touches the weights (issue "NaN passes silently": a diverging run used to keep
//! training, log `null` and save NaN checkpoints). [`NanPolicy::Stop`], the default, ends the run with an error: the
//! last checkpoint on disk is the last good state. [`NanPolicy::SkipStep`] leaves weights and optimizer moments as
//! they were, advances the step count, and goes on. Either way no metric is ever written as JSON `null`: a
//! non-finite value is logged as the text `"NaN"`, `"inf"` or `"-inf"` ([`finite_or_text`]).

/// The `nan_policy` of an SFT or GRPO config.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NanPolicy {
    /// Stop with an error before the update; the last checkpoint stays intact.
    #[default]
    Stop,
    /// Drop the step's update (weights and moments unchanged), count the step, go on.
    SkipStep,
}

impl std::str::FromStr for NanPolicy {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "stop" => Ok(NanPolicy::Stop),
            "skip_step" => Ok(NanPolicy::SkipStep),
            other => Err(format!("nan_policy must be \"stop\" or \"skip_step\", got {other:?}")),
        }
    }
}

/// Why an optimizer step did not update the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// Every label of the global batch was −100: no loss to learn from.
    AllLabelsMasked,
    /// The loss or the gradient norm was NaN or infinite (under [`NanPolicy::SkipStep`]).
    NonFinite,
}

/// Serialises a metric as a JSON number when finite and as the text `"NaN"`, `"inf"` or `"-inf"` otherwise
/// (serde_json writes non-finite floats as `null`, which reads as "missing" rather than "diverged").
pub fn finite_or_text<S: serde::Serializer>(v: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("NaN")
    } else {
        s.serialize_str(if *v > 0.0 { "inf" } else { "-inf" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize)]
    struct M(#[serde(serialize_with = "finite_or_text")] f64);

    #[test]
    fn non_finite_metrics_are_text_never_null() {
        let j = |v: f64| serde_json::to_string(&M(v)).unwrap();
        assert_eq!(
            (j(1.5), j(f64::NAN), j(f64::INFINITY), j(f64::NEG_INFINITY)),
            ("1.5".into(), "\"NaN\"".into(), "\"inf\"".into(), "\"-inf\"".into())
        );
    }

    #[test]
    fn policies_parse_from_their_config_spelling() {
        assert_eq!("skip_step".parse::<NanPolicy>(), Ok(NanPolicy::SkipStep));
        assert_eq!(NanPolicy::default(), NanPolicy::Stop);
        assert!("ignore".parse::<NanPolicy>().unwrap_err().contains("\"stop\" or \"skip_step\""));
    }
}
