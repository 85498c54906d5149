//! The dynamic loss scale of float16 training.
//!
//! float16 gradients below about 6e-8 flush to zero, so the loss is
//! multiplied by a large scale before the backward pass and the gradients
//! are divided by it before the optimiser step. When a scaled gradient
//! overflows (inf or NaN), the step is skipped and the scale halved; after
//! [`GROWTH_INTERVAL`] good steps in a row it doubles. These are PyTorch's
//! `GradScaler` defaults. Checking the gradients costs one host sync per
//! step, as PyTorch's does with a non-fused optimiser.
use serde::{Deserialize, Serialize};

/// The first scale, 2¹⁶.
pub const INITIAL_SCALE: f64 = 65536.0;
/// Good steps in a row before the scale doubles.
pub const GROWTH_INTERVAL: u32 = 2000;
/// The scale never goes below this (a run whose gradients overflow at
/// scale 1 has a real problem, which the loss check reports).
pub const MIN_SCALE: f64 = 1.0;

/// The current scale and the good steps since it last changed (saved in
/// checkpoints, so a resumed run continues with the same scale).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    pub scale: f64,
    pub good_steps: u32,
    /// Steps skipped so far because a gradient overflowed.
    pub skipped_steps: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: INITIAL_SCALE,
            good_steps: 0,
            skipped_steps: 0,
        }
    }
}

impl LossScaler {
    /// After a step whose unscaled gradients were all `finite` (taken) or not
    /// (skipped): doubles the scale after [`GROWTH_INTERVAL`] good steps,
    /// halves it after an overflow.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.good_steps += 1;
            if self.good_steps >= GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale * 0.5).max(MIN_SCALE);
            self.good_steps = 0;
            self.skipped_steps += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_on_overflow_and_doubles_after_the_growth_interval() {
        let mut s = LossScaler::default();
        s.update(false);
        assert_eq!((s.scale, s.good_steps, s.skipped_steps), (INITIAL_SCALE / 2.0, 0, 1));
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(true);
        }
        assert_eq!(s.scale, INITIAL_SCALE / 2.0);
        s.update(true);
        assert_eq!((s.scale, s.good_steps), (INITIAL_SCALE, 0));
        // an overflow resets the run of good steps
        for _ in 0..10 {
            s.update(true);
        }
        s.update(false);
        assert_eq!((s.scale, s.good_steps, s.skipped_steps), (INITIAL_SCALE / 2.0, 0, 2));
        for _ in 0..40 {
            s.update(false);
        }
        assert_eq!(s.scale, MIN_SCALE);
    }
}
