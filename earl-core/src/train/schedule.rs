//! Learning-rate schedule of EARL's SFT (`--lr_scheduler_type cosine_with_min_lr --warmup_steps 30
//! --min_learning_rate 1e-5`): transformers' `get_cosine_with_min_lr_schedule_with_warmup` with one half cosine.
//! The factor at optimizer step `s` (0-based, the step about to be taken) is `s / warmup` during warm-up — so the very
//! first update runs at lr 0, exactly as `LambdaLR` does — then `min_rate + (1 − min_rate)·½(1 + cos(π·progress))`.

/// Parameters of the warm-up + cosine-to-minimum schedule.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CosineSchedule {
    /// Peak learning rate (`learning_rate`).
    pub lr: f64,
    /// Floor reached at the last step (`min_learning_rate`).
    pub min_lr: f64,
    /// Steps of linear warm-up from 0 (`warmup_steps`).
    pub warmup_steps: u64,
    /// Total optimizer steps of the run.
    pub total_steps: u64,
}

/// Where the schedule is at a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleMetrics {
    /// Multiplier of the peak lr (transformers' lambda value).
    pub factor: f64,
    /// Whether the step is in the warm-up.
    pub warmup: bool,
}

impl CosineSchedule {
    /// The learning rate for optimizer step `step` (0-based) and how it was obtained.
    ///
    /// ```
    /// use earl_core::train::CosineSchedule;
    ///
    /// let s = CosineSchedule { lr: 1e-4, min_lr: 1e-5, warmup_steps: 30, total_steps: 130 };
    /// assert_eq!(s.lr_at(0).0, 0.0); // the first update runs at lr 0, as LambdaLR does
    /// assert!(s.lr_at(29).1.warmup && !s.lr_at(30).1.warmup);
    /// assert!((s.lr_at(30).0 - 1e-4).abs() < 1e-18); // the peak right after warm-up
    /// assert!((s.lr_at(130).0 - 1e-5).abs() < 1e-15); // the floor at the last step
    /// ```
    pub fn lr_at(&self, step: u64) -> (f64, ScheduleMetrics) {
        if step < self.warmup_steps {
            let factor = step as f64 / self.warmup_steps.max(1) as f64;
            return (self.lr * factor, ScheduleMetrics { factor, warmup: true });
        }
        let span = self.total_steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = (step - self.warmup_steps) as f64 / span;
        let min_rate = if self.lr > 0.0 { self.min_lr / self.lr } else { 0.0 };
        let cosine = 0.5 * (1.0 + (std::f64::consts::PI * progress).cos());
        let factor = (cosine * (1.0 - min_rate) + min_rate).max(0.0);
        (self.lr * factor, ScheduleMetrics { factor, warmup: false })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_then_cosine_to_the_minimum() {
        let s = CosineSchedule { lr: 1e-4, min_lr: 1e-5, warmup_steps: 30, total_steps: 130 };
        assert_eq!(s.lr_at(0).0, 0.0);
        assert!((s.lr_at(15).0 - 5e-5).abs() < 1e-18);
        assert!(s.lr_at(29).1.warmup && !s.lr_at(30).1.warmup);
        assert!((s.lr_at(30).0 - 1e-4).abs() < 1e-18);
        // Half-way through the cosine: min + (max − min)/2.
        assert!((s.lr_at(80).0 - 5.5e-5).abs() < 1e-15);
        assert!((s.lr_at(130).0 - 1e-5).abs() < 1e-15);
        // Monotone decreasing after warm-up.
        assert!((31..130).all(|k| s.lr_at(k).0 < s.lr_at(k - 1).0));
    }

    #[test]
    fn zero_warmup_starts_at_the_peak() {
        let s = CosineSchedule { lr: 2.0, min_lr: 0.0, warmup_steps: 0, total_steps: 4 };
        let lrs: Vec<f64> = (0..=4).map(|k| s.lr_at(k).0).collect();
        let expect = [2.0, 1.0 + 0.5f64.sqrt(), 1.0, 1.0 - 0.5f64.sqrt(), 0.0];
        for (a, b) in lrs.iter().zip(expect) {
            assert!((a - b).abs() < 1e-12, "{lrs:?}");
        }
    }
}
