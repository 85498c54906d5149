//! Losses (ptychopinn.md §3): Poisson negative log-likelihood of counts,
//! MAE on amplitudes, real-space total variation, L1 for the baseline.
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

/// Guards the logarithm of a rate.
pub const LOG_EPS: f64 = 1e-12;

/// Weights of the PINN loss terms (PtychoPINN defaults: NLL only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossWeights {
    pub poisson_nll: f64,
    pub amplitude_mae: f64,
    pub total_variation: f64,
    /// Weight of [`PinnOutput::phase_gauge`](crate::model::PinnOutput::phase_gauge)
    /// (rad⁻²): pins each patch's mean phase, which the data cannot see. Ours,
    /// not PtychoPINN's, and off by default: at 1.0 it cost the quick gs2
    /// preset on the quickstart data 0.06 of phase SSIM (0.16 vs 0.22), since
    /// neighbouring patches then disagree on their offsets.
    pub phase_gauge: f64,
}

impl Default for LossWeights {
    fn default() -> Self {
        LossWeights {
            poisson_nll: 1.0,
            amplitude_mae: 0.0,
            total_variation: 0.0,
            phase_gauge: 0.0,
        }
    }
}

/// `mean(λ − k·ln(λ + ε))`: the Poisson NLL of counts `k` under rates `λ`
/// without the constant `ln k!`.
///
/// # Shapes
/// `rates`, `counts`: same shape, float → scalar
pub fn poisson_nll(rates: &Tensor, counts: &Tensor) -> Tensor {
    (rates - counts * (rates + LOG_EPS).log()).mean(Kind::Float)
}

/// `mean|a − b|`. # Shapes: same shape → scalar.
pub fn mae(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).abs().mean(Kind::Float)
}

/// Mean squared finite differences of a complex image along x and y, real
/// and imaginary parts together.
///
/// # Shapes
/// `[B, H, W]` complex64 → scalar
pub fn total_variation(object: &Tensor) -> Tensor {
    let ri = object.view_as_real();
    let h = ri.size()[1];
    let w = ri.size()[2];
    let dy = ri.narrow(1, 1, h - 1) - ri.narrow(1, 0, h - 1);
    let dx = ri.narrow(2, 1, w - 1) - ri.narrow(2, 0, w - 1);
    dy.square().mean(Kind::Float) + dx.square().mean(Kind::Float)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn poisson_nll_is_minimal_at_the_counts_and_matches_the_formula() {
        let k = Tensor::from_slice(&[0.0f32, 3.0, 10.0]);
        let at = |l: &[f32]| poisson_nll(&Tensor::from_slice(l), &k).double_value(&[]);
        // λ − k ln λ by hand for λ = k (λ = 0 uses ε)
        let by_hand = ((0.0f64) + (3.0 - 3.0 * 3f64.ln()) + (10.0 - 10.0 * 10f64.ln())) / 3.0;
        assert!((at(&[0.0, 3.0, 10.0]) - by_hand).abs() < 1e-5);
        assert!(at(&[0.1, 3.5, 9.0]) > at(&[0.0, 3.0, 10.0]));
    }

    #[test]
    fn tv_of_a_ramp() {
        // x-ramp with step 1 in the real part: dx² = 1 everywhere, dy = 0
        let re = Tensor::arange(5, (Kind::Float, Device::Cpu))
            .view([1, 1, 5])
            .expand([1, 4, 5], false);
        let obj = Tensor::complex(&re, &re.zeros_like());
        // mean over [1, 4, 4, 2] of dx² (re: 1, im: 0) = 0.5
        assert!((total_variation(&obj).double_value(&[]) - 0.5).abs() < 1e-6);
    }
}
