//! The gradient solver: explicit Wirtinger gradients of a data loss, stepped
//! by a least-squares line fit (LSQML-style) or by Adam.
//!
//! Gradients (with respect to `ψ*`, `ψ = P·O_b`, orthonormal FFT):
//! - amplitude loss `Σ (|Ψ̂| − A)²`: `g = ψ − IFFT(A·Ψ̂/|Ψ̂|)`;
//! - Poisson loss `Σ |Ψ̂|² − A² log |Ψ̂|²`: `g = IFFT((1 − A²/|Ψ̂|²)·Ψ̂)`, with
//!   `|Ψ̂|²` floored at 10⁻⁶ of the mean `A²`;
//!
//! then `∇_O = Σ_b conj(P)·g_b` (scatter-added) and `∇_P = Σ_b conj(O_b)·g_b`.
//!
//! `lsq` does not follow `g` itself but the per-pixel Newton target of the
//! loss in the detector plane, `χ = IFFT(Ψ̂·r) − ψ`: `r = A/|Ψ̂|` for the
//! amplitude loss (then `χ = −g`), `r = 2A²/(|Ψ̂|² + A²)` for Poisson (the
//! Newton step of `a² − A² log a²` in the amplitude `a`, bounded where `|Ψ̂|`
//! is small). Directions `D_O = Σ conj(P)·χ / ((1 − w)·S + w·max S)` and
//! `D_P = Σ conj(O_b)·χ / ((1 − w)·T + w·max T)` (as in ePIE), and the steps
//! `τ_O, τ_P` solve `min ‖χ − τ_O·P·D_O,b − τ_P·D_P·O_b‖²` over the batch
//! (a 2×2 system; Odstrčil, Menzel & Guizar-Sicairos 2018), clamped to
//! `[0, 10]` and scaled by `step_scale`.
//!
//! `adam` steps the real and imaginary parts with Adam (β = 0.9, 0.999,
//! ε = 10⁻⁸) on the true gradient; the probe's learning rate is
//! `learning_rate·max |P₀|` so it is in the probe's units.
use tch::{Kind, Tensor};

use super::auto::SolverSettings;
use super::batch::{
    Batch, Forward, State, Step, WindowSums, add_at_windows, norm_sqr, normaliser, probe_frame_power, probe_frame_sum,
    real_inner, scale_complex, scatter, shifted_probes,
};
use super::config::{GradientConfig, IterativeConfig, Loss, Optimizer};
use super::positions::position_shifts;

const MAX_STEP: f64 = 10.0;

pub(crate) struct Gradient {
    cfg: GradientConfig,
    max_weight: f64,
    step_scale: f64,
    len: i64,
    sums: WindowSums,
    /// Mean measured `A²` (0-d, on the device), for the Poisson floor.
    mean_intensity: Tensor,
    adam_object: AdamState,
    adam_probe: AdamState,
    probe_scale: f64,
}

impl Gradient {
    pub fn new(
        cfg: &IterativeConfig,
        settings: &SolverSettings,
        len: i64,
        state: &State,
        amplitudes: &Tensor,
        probe_scale: f64,
    ) -> Gradient {
        Gradient {
            cfg: cfg.gradient.clone(),
            max_weight: settings.max_weight,
            step_scale: settings.step,
            len,
            sums: WindowSums::new(len, state.object.device()),
            mean_intensity: amplitudes.clamp_min(0.0).square().mean(Kind::Float),
            adam_object: AdamState::new(&state.object),
            adam_probe: AdamState::new(&state.probe),
            probe_scale,
        }
    }

    /// One batch; returns its `Σ (|Ψ̂| − A)²` (0-d f64, on the device) and,
    /// when `positions` asks, each position's estimated shift.
    pub fn step(&mut self, state: &mut State, batch: &Batch, update_probe: bool, positions: bool) -> Step {
        let fwd = Forward::new(state, batch);
        let error = fwd.amplitude_error(batch);
        let shift = positions.then(|| position_shifts(&fwd, batch));
        match self.cfg.optimizer {
            Optimizer::Lsq => self.lsq(state, batch, &fwd, update_probe),
            Optimizer::Adam => self.adam(state, batch, &fwd, update_probe),
        }
        Step { error, shift }
    }

    fn lsq(&mut self, state: &mut State, batch: &Batch, fwd: &Forward, update_probe: bool) {
        let a = &batch.amplitude;
        let ratio = match self.cfg.loss {
            Loss::Amplitude => fwd.modulus_ratio(batch),
            Loss::Poisson => {
                let i = a.square();
                batch.where_fitted((&i * 2.0) / (fwd.amplitude.square() + &i).clamp_min(1e-30), 1.0)
            }
        };
        let chi = fwd.exit_wave_change(&ratio);
        // D_O at the batch's window pixels (zero elsewhere)
        let d_object = self
            .sums
            .direction(&fwd.to_object(&chi), &fwd.probe_power(), batch, self.max_weight, 1.0);
        let u = d_object.unsqueeze(1) * &fwd.probes;
        let (a11, b1) = (norm_sqr(&u), real_inner(&chi, &u));
        if update_probe {
            let t = probe_frame_power(&fwd.patches, batch);
            let num = probe_frame_sum(&(&chi * fwd.patches.conj_physical().unsqueeze(1)), batch);
            let d_probe = scale_complex(&num, &normaliser(&t, self.max_weight).reciprocal());
            // the probe's direction as each position sees it
            let seen = match &batch.shifts {
                None => d_probe.shallow_clone(),
                Some(s) => shifted_probes(&d_probe, s),
            };
            let v = fwd.patches.unsqueeze(1) * &seen;
            let (a22, a12, b2) = (norm_sqr(&v), real_inner(&u, &v), real_inner(&chi, &v));
            // [a11 a12; a12 a22]·τ = b, lightly damped so a degenerate pair stays finite
            let damp = (&a11 + &a22) * 1e-6 + 1e-30;
            let (a11, a22) = (a11 + &damp, a22 + &damp);
            let det = &a11 * &a22 - a12.square();
            let tau_o = (&a22 * &b1 - &a12 * &b2) / &det;
            let tau_p = (&a11 * &b2 - &a12 * &b1) / &det;
            add_at_windows(state, batch, &fwd.patches, &(d_object * self.step_of(&tau_o)));
            let _ = state.probe.g_add_(&(d_probe * self.step_of(&tau_p)));
        } else {
            let tau_o = b1 / (a11 + 1e-30);
            add_at_windows(state, batch, &fwd.patches, &(d_object * self.step_of(&tau_o)));
        }
    }

    /// The clamped, scaled step as a real 0-d tensor.
    fn step_of(&self, tau: &Tensor) -> Tensor {
        tau.nan_to_num(0.0, 0.0, 0.0).clamp(0.0, MAX_STEP) * self.step_scale
    }

    fn adam(&mut self, state: &mut State, batch: &Batch, fwd: &Forward, update_probe: bool) {
        let a = &batch.amplitude;
        let factor = match self.cfg.loss {
            // g = ψ − IFFT(A·Ψ̂/|Ψ̂|) = IFFT((1 − A/|Ψ̂|)·Ψ̂)
            Loss::Amplitude => 1.0 - a / fwd.amplitude.clamp_min(1e-30),
            Loss::Poisson => {
                let floor = &self.mean_intensity * 1e-6;
                1.0 - a.square() / fwd.amplitude.square().maximum(&floor)
            }
        };
        let factor = batch.where_fitted(factor, 0.0);
        let g = scale_complex(&fwd.spectrum, &factor.unsqueeze(1)).fft_ifft2(None::<&[i64]>, [-2, -1], "ortho");
        let grad_object = scatter(&fwd.to_object(&g), batch, self.len);
        let lr = self.cfg.learning_rate;
        self.adam_object.step(&mut state.object, &grad_object, lr);
        if update_probe {
            let grad_probe = probe_frame_sum(&(&g * fwd.patches.conj_physical().unsqueeze(1)), batch);
            self.adam_probe
                .step(&mut state.probe, &grad_probe, lr * self.probe_scale);
        }
    }
}

/// Adam moments of one complex parameter (on its real view).
struct AdamState {
    m: Tensor,
    v: Tensor,
    t: i32,
}

impl AdamState {
    fn new(param: &Tensor) -> AdamState {
        let zeros = param.view_as_real().zeros_like();
        AdamState {
            m: zeros.zeros_like(),
            v: zeros,
            t: 0,
        }
    }

    fn step(&mut self, param: &mut Tensor, grad: &Tensor, lr: f64) {
        const B1: f64 = 0.9;
        const B2: f64 = 0.999;
        self.t += 1;
        let g = grad.view_as_real();
        let _ = self.m.g_mul_scalar_(B1).g_add_(&(&g * (1.0 - B1)));
        let _ = self.v.g_mul_scalar_(B2).g_add_(&(g.square() * (1.0 - B2)));
        let c1 = 1.0 - B1.powi(self.t);
        let c2 = 1.0 - B2.powi(self.t);
        let update = (&self.m / c1) / ((&self.v / c2).sqrt() + 1e-8) * lr;
        let mut real = param.view_as_real();
        let _ = real.g_sub_(&update);
    }
}
