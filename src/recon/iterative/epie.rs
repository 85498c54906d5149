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
//! Positions between pixels see the probe Fourier-shifted by their
//! remainder (`batch::shifted_probes`); the probe's update takes each term
//! back to the probe's frame.
//!
//! With batches of one and `w = 1` this is ePIE (Maiden & Rodenburg 2009);
//! `w < 1` is rPIE's normaliser (Maiden, Johnson & Li 2017). Summing over a
//! batch (a "simultaneous" update) lets one FFT call serve many positions;
//! positions that overlap within a batch share the normaliser `S`, so their
//! updates are averaged where they overlap rather than added.
use tch::Device;

use super::auto::SolverSettings;
use super::batch::{
    Batch, Forward, State, Step, WindowSums, add_at_windows, normaliser, probe_frame_power, probe_frame_sum,
    scale_complex,
};
use super::config::IterativeConfig;
use super::positions::position_shifts;

pub(crate) struct Epie {
    alpha: f64,
    beta: f64,
    max_weight: f64,
    sums: WindowSums,
}

impl Epie {
    pub fn new(cfg: &IterativeConfig, settings: &SolverSettings, len: i64, device: Device) -> Epie {
        Epie {
            alpha: settings.step,
            beta: cfg.epie.beta,
            max_weight: settings.max_weight,
            sums: WindowSums::new(len, device),
        }
    }

    /// One batch; returns its `Σ (|Ψ̂| − A)²` (0-d f64, on the device) and,
    /// when `positions` asks, each position's estimated shift.
    pub fn step(&mut self, state: &mut State, batch: &Batch, update_probe: bool, positions: bool) -> Step {
        let fwd = Forward::new(state, batch);
        let error = fwd.amplitude_error(batch);
        let ratio = fwd.modulus_ratio(batch);
        let delta = fwd.exit_wave_change(&ratio);
        let shift = positions.then(|| position_shifts(&fwd, batch));
        let step = self.sums.direction(
            &fwd.to_object(&delta),
            &fwd.probe_power(),
            batch,
            self.max_weight,
            self.alpha,
        );
        add_at_windows(state, batch, &fwd.patches, &step);
        if update_probe {
            // each position's term in the probe's own frame (shifted back)
            let t = probe_frame_power(&fwd.patches, batch);
            let num = probe_frame_sum(&(&delta * fwd.patches.conj_physical().unsqueeze(1)), batch);
            let step = scale_complex(&num, &(normaliser(&t, self.max_weight).reciprocal() * self.beta));
            let _ = state.probe.g_add_(&step);
        }
        Step { error, shift }
    }
}
