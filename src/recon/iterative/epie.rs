//! Batched ePIE / rPIE.
//!
//! For a mini-batch B of positions, all computed from the same object `O`
//! and probe `P`:
//! 1. `Ψ̂_b = FFT(P·O_b)`, replaced by `A_b·Ψ̂_b/|Ψ̂_b|` (the modulus
//!    projection), giving the exit-wave change `Δ_b`;
//! 2. `O ← O + α·Σ_b conj(P)·Δ_b / ((1 − w)·S + w·max S)`, with
//!    `S = Σ_b |P|²` placed at each window (the sums are scatter-adds);
//! 3. when refining, `P ← P + β·Σ_b conj(O_b)·Δ_b / ((1 − w)·T + w·max T)`,
//!    `T = Σ_b |O_b|²`, with the object patches of step 1.
//!
//! With batches of one and `w = 1` this is ePIE (Maiden & Rodenburg 2009);
//! `w < 1` is rPIE's normaliser (Maiden, Johnson & Li 2017). Summing over a
//! batch (a "simultaneous" update) lets one FFT call serve many positions;
//! positions that overlap within a batch share the normaliser `S`, so their
//! updates are averaged where they overlap rather than added.
use tch::{Device, Tensor};

use super::batch::{Batch, Forward, State, WindowSums, add_at_windows, modulus, normaliser, scale_complex};
use super::config::IterativeConfig;

pub(crate) struct Epie {
    alpha: f64,
    beta: f64,
    max_weight: f64,
    sums: WindowSums,
}

impl Epie {
    pub fn new(cfg: &IterativeConfig, len: i64, device: Device) -> Epie {
        Epie {
            alpha: cfg.epie.alpha,
            beta: cfg.epie.beta,
            max_weight: cfg.max_weight,
            sums: WindowSums::new(len, device),
        }
    }

    /// One batch; returns its `Σ (|Ψ̂| − A)²` (0-d f64, on the device).
    pub fn step(&mut self, state: &mut State, batch: &Batch, update_probe: bool) -> Tensor {
        let fwd = Forward::new(state, batch);
        let error = fwd.amplitude_error(batch);
        let ratio = &batch.amplitude / fwd.amplitude.clamp_min(1e-30);
        let delta = fwd.exit_wave_change(&ratio);
        let step = self.sums.direction(
            &(&delta * state.probe.conj_physical()),
            &state.probe,
            batch,
            self.max_weight,
            self.alpha,
        );
        add_at_windows(state, batch, &fwd.patches, &step);
        if update_probe {
            let t = modulus(&fwd.patches).square().sum_dim_intlist(0, false, None);
            let num = (&delta * fwd.patches.conj_physical()).sum_dim_intlist(0, false, None);
            let step = scale_complex(&num, &(normaliser(&t, self.max_weight).reciprocal() * self.beta));
            let _ = state.probe.g_add_(&step);
        }
        error
    }
}
