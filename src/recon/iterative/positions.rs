//! Position correction: each position's shift estimated from the exit-wave
//! change the modulus projection asks for, and the per-epoch update of the
//! positions.
//!
//! A position moved by `δ = (δx, δy)` sees the exit wave
//! `ψ_k(δ) = P_k·O(r + x + δ) ≈ ψ_k + δx·P_k·∂ₓO + δy·P_k·∂ᵧO`, with the
//! object's gradient taken by central differences on the patch. Each
//! position's shift is the Gauss–Newton step of the amplitude misfit in
//! `δ` (a 2×2 system per position, [`position_shifts`]): the gradient
//! family of position corrections (as in pty-chi and tike), local: it
//! converges from errors of about a pixel or two on a sharp object, not
//! from errors as large as the scan's step (for those: the global search of
//! [`super::search`], scheduled by [`PositionConfig::search_at`]).
//!
//! The estimates of one epoch (each position's, from its own batch) are
//! applied together at the epoch's end: their mean is removed (a common
//! translation of every position is the object's translation, which the
//! data cannot see), each is limited to `max_step_px` per axis and scaled by
//! the gain, and the windows are recomputed.
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use super::batch::{Batch, Forward, sum_modes};
use crate::error::{Error, Result};

/// Settings of the position correction (`IterativeConfig::positions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PositionConfig {
    /// Correct the positions.
    pub refine: bool,
    /// First iteration (1-based) that moves positions: the object must
    /// show structure before its gradient can place a window.
    pub start_iteration: usize,
    /// Fraction of each estimated shift applied per epoch.
    pub gain: f64,
    /// Largest move of a position per epoch and axis, px.
    pub max_step_px: f64,
    /// Padding around the scan for positions to move into, px.
    pub margin_px: usize,
    /// Largest offset per axis of the first global search, px; 0: no search
    /// (gradient steps only). Searches ([`super::search`]) run at
    /// `start_iteration` and every `search_every` iterations after it, the
    /// radius shrinking by `search_shrink` each time, until one has run at
    /// a radius of 1 px.
    pub search_radius_px: usize,
    /// Iterations between searches.
    pub search_every: usize,
    /// Factor by which the radius shrinks from one search to the next.
    pub search_shrink: f64,
    /// Offsets tried per side of a search's radius (the grid's spacing is
    /// `ceil(radius / search_points)` px).
    pub search_points: usize,
}

impl Default for PositionConfig {
    fn default() -> Self {
        PositionConfig {
            refine: false,
            start_iteration: 5,
            gain: 1.0,
            max_step_px: 1.0,
            margin_px: 32,
            search_radius_px: 0,
            search_every: 5,
            search_shrink: 0.7,
            search_points: 4,
        }
    }
}

impl PositionConfig {
    /// The first iteration `ptycho reconstruct --search-radius-px` moves
    /// positions at when not told otherwise: a search before the object has
    /// formed can send the solver off (docs/measured.md, CNM 247).
    pub const SEARCH_START_ITERATION: usize = 20;

    /// The search radius and grid spacing (px) at `iteration` (1-based), or
    /// `None` where no search runs (module docs of [`super::search`]).
    pub fn search_at(&self, iteration: usize) -> Option<(i64, i64)> {
        if !self.refine || self.search_radius_px == 0 || iteration < self.start_iteration {
            return None;
        }
        let since = iteration - self.start_iteration;
        if !since.is_multiple_of(self.search_every) {
            return None;
        }
        let k = since / self.search_every;
        // the searches' radii: R, R·s, R·s², … down to (and including) the first of 1 px
        let mut radius = self.search_radius_px as f64;
        for _ in 0..k {
            if radius <= 1.0 {
                return None;
            }
            radius = (radius * self.search_shrink).max(1.0);
        }
        let radius = radius.ceil() as i64;
        let stride = (radius as f64 / self.search_points as f64).ceil() as i64;
        Some((radius, stride.max(1)))
    }

    pub fn validate(&self) -> Result<()> {
        if self.refine && self.start_iteration == 0 {
            return Err(Error::config("positions.start_iteration", "must be at least 1"));
        }
        if !(self.gain > 0.0 && self.gain <= 2.0) {
            return Err(Error::config(
                "positions.gain",
                format!("must be in (0, 2], got {}", self.gain),
            ));
        }
        if !(self.max_step_px > 0.0 && self.max_step_px <= 16.0) {
            return Err(Error::config(
                "positions.max_step_px",
                format!("must be in (0, 16], got {}", self.max_step_px),
            ));
        }
        if self.search_radius_px > self.margin_px {
            return Err(Error::config(
                "positions.search_radius_px",
                format!(
                    "must be at most margin_px ({}) so that searched windows stay on the grid, got {}",
                    self.margin_px, self.search_radius_px
                ),
            ));
        }
        if self.search_radius_px > 0 && self.search_every == 0 {
            return Err(Error::config("positions.search_every", "must be at least 1"));
        }
        if !(self.search_shrink > 0.0 && self.search_shrink < 1.0) {
            return Err(Error::config(
                "positions.search_shrink",
                format!("must be in (0, 1), got {}", self.search_shrink),
            ));
        }
        if !(1..=64).contains(&self.search_points) {
            return Err(Error::config(
                "positions.search_points",
                format!("must be in 1..=64, got {}", self.search_points),
            ));
        }
        if self.margin_px > 4096 {
            return Err(Error::config(
                "positions.margin_px",
                format!("must be at most 4096, got {}", self.margin_px),
            ));
        }
        Ok(())
    }
}

/// `∂ₓ` and `∂ᵧ` of patches `[B, N, N]` by central differences, zero on
/// the window's border (where the probe is dark).
///
/// # Shapes
/// `patches`: `[B, N, N]` complex64 → two `[B, N, N]`
fn patch_gradients(patches: &Tensor) -> (Tensor, Tensor) {
    let n = patches.size()[2];
    let diff = |axis: i64| {
        let d = (patches.roll([-1], [axis]) - patches.roll([1], [axis])) * 0.5;
        let _ = d.narrow(axis, 0, 1).zero_();
        let _ = d.narrow(axis, n - 1, 1).zero_();
        d
    };
    (diff(2), diff(1))
}

/// Each position's Gauss–Newton shift `[B, 2]` `(δx, δy)` px (f32) on
/// the amplitude misfit `Σ (A − |Ψ̂|)²` of the forward pass `fwd` (module
/// docs): with `Ψ̂_k` the modes' far fields and `â_k = FFT(P_k·∂O)`, the
/// amplitude changes by `J = Σ_k Re(conj(Ψ̂_k)·â_k)/|Ψ̂|` per unit shift, and
/// `δ` solves the 2×2 normal equations of `min Σ (A − |Ψ̂| − J·δ)²` over the
/// fitted pixels. Only magnitude changes enter (a shift of the whole exit
/// wave, which the data cannot see, does not dilute the estimate).
pub(crate) fn position_shifts(fwd: &Forward, batch: &Batch) -> Tensor {
    let (gx, gy) = patch_gradients(&fwd.patches);
    let unit = &fwd.spectrum / fwd.amplitude.clamp_min(1e-30).unsqueeze(1);
    // J = Σ_k Re(conj(u_k)·FFT(P_k·∂O)) with u_k = Ψ̂_k/|Ψ̂|
    let jacobian = |g: &Tensor| {
        let a_hat = (g.unsqueeze(1) * &fwd.probes).fft_fft2(None::<&[i64]>, [-2, -1], "ortho");
        let j = sum_modes(&(unit.view_as_real() * a_hat.view_as_real()).sum_dim_intlist(-1, false, None::<Kind>));
        batch.where_fitted(j, 0.0)
    };
    let (jx, jy) = (jacobian(&gx), jacobian(&gy));
    let residual = batch.where_fitted(&batch.amplitude - &fwd.amplitude, 0.0);
    let sum = |t: Tensor| t.sum_dim_intlist([-2, -1].as_slice(), false, None::<Kind>);
    let (axx, ayy, axy) = (sum(jx.square()), sum(jy.square()), sum(&jx * &jy));
    let (bx, by) = (sum(&jx * &residual), sum(&jy * &residual));
    // lightly damped so a flat patch (no gradient) gives no shift
    let damp = (&axx + &ayy) * 1e-3 + 1e-20;
    let (axx, ayy) = (axx + &damp, ayy + &damp);
    let det = &axx * &ayy - axy.square();
    let dx = (&ayy * &bx - &axy * &by) / &det;
    let dy = (&axx * &by - &axy * &bx) / &det;
    Tensor::stack(&[dx, dy], 1).nan_to_num(0.0, 0.0, 0.0)
}

/// The positions a run moves, and the shifts estimated during an epoch.
pub(crate) struct PositionState {
    /// Current positions `[n, 2]` `(x, y)` px.
    pub positions_px: Array2<f64>,
    /// The epoch's estimates `[n, 2]` `(δx, δy)` f32, on the device.
    pending: Tensor,
    cfg: PositionConfig,
    /// The range each coordinate may take (windows inside the padded grid).
    x_range: [f64; 2],
    y_range: [f64; 2],
}

impl PositionState {
    pub fn new(
        positions_px: &Array2<f64>,
        cfg: &PositionConfig,
        range: ([f64; 2], [f64; 2]),
        device: tch::Device,
    ) -> Self {
        PositionState {
            positions_px: positions_px.clone(),
            pending: Tensor::zeros([positions_px.nrows() as i64, 2], (Kind::Float, device)),
            cfg: cfg.clone(),
            x_range: range.0,
            y_range: range.1,
        }
    }

    /// Records the shifts `[B, 2]` estimated for the positions `members` `[B]`.
    pub fn record(&mut self, members: &Tensor, shifts: &Tensor) {
        let _ = self.pending.index_copy_(0, members, shifts);
    }

    /// Moves every position by its search offset `[n, 2]` `(δx, δy)` (f32,
    /// [`super::search::best_offsets`]) less the offsets' mean, within the
    /// grid.
    pub fn apply_offsets(&mut self, offsets: &Tensor) -> Result<()> {
        self.move_by(offsets, 1.0, f64::INFINITY)
    }

    /// Applies the epoch's estimates (mean removed, limited, times the gain)
    /// and clears them. One copy to the host per epoch.
    pub fn apply(&mut self) -> Result<()> {
        let pending = self.pending.shallow_clone();
        self.move_by(&pending, self.cfg.gain, self.cfg.max_step_px)?;
        let _ = self.pending.zero_();
        Ok(())
    }

    /// Moves every position by its shift `[n, 2]` `(δx, δy)` less the
    /// shifts' mean, times `gain`, at most `limit_px` per axis, within the grid.
    fn move_by(&mut self, shifts: &Tensor, gain: f64, limit_px: f64) -> Result<()> {
        let shifts: Vec<f32> = Vec::try_from(shifts.to_device(tch::Device::Cpu).reshape([-1]))
            .map_err(|e: tch::TchError| Error::value("position shifts", e.to_string()))?;
        let count = self.positions_px.nrows();
        let mean = |axis: usize| shifts.iter().skip(axis).step_by(2).map(|&v| v as f64).sum::<f64>() / count as f64;
        let (mx, my) = (mean(0), mean(1));
        for (k, mut p) in self.positions_px.outer_iter_mut().enumerate() {
            let dx = ((shifts[2 * k] as f64 - mx) * gain).clamp(-limit_px, limit_px);
            let dy = ((shifts[2 * k + 1] as f64 - my) * gain).clamp(-limit_px, limit_px);
            p[0] = (p[0] + dx).clamp(self.x_range[0], self.x_range[1]);
            p[1] = (p[1] + dy).clamp(self.y_range[0], self.y_range[1]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recon::iterative::batch::State;
    use tch::Device;

    #[test]
    fn searches_shrink_from_the_radius_to_one_pixel_then_stop() {
        let cfg = PositionConfig {
            refine: true,
            start_iteration: 3,
            search_radius_px: 10,
            search_every: 2,
            search_shrink: 0.5,
            search_points: 2,
            ..PositionConfig::default()
        };
        let runs: Vec<(usize, (i64, i64))> = (1..30).filter_map(|i| cfg.search_at(i).map(|s| (i, s))).collect();
        // radius 10 (spacing 5), 5 (3), 2.5 → 3 (2), 1.25 → 2 (1), 1 (1)
        assert_eq!(
            runs,
            vec![(3, (10, 5)), (5, (5, 3)), (7, (3, 2)), (9, (2, 1)), (11, (1, 1))]
        );
        let off = PositionConfig {
            search_radius_px: 0,
            ..cfg.clone()
        };
        assert!((1..30).all(|i| off.search_at(i).is_none()));
        let bad = PositionConfig {
            search_radius_px: 40,
            margin_px: 32,
            ..cfg
        };
        assert!(bad.validate().is_err());
    }

    /// A smooth random object; the exit-wave change of moving one window by
    /// a known sub-pixel shift is what `position_shifts` must read back.
    #[test]
    fn the_estimated_shift_recovers_a_small_known_move() {
        let n = 32i64;
        let (h, w) = (64i64, 64i64);
        let yy = Tensor::arange(h, (Kind::Float, Device::Cpu)).view([h, 1]);
        let xx = Tensor::arange(w, (Kind::Float, Device::Cpu)).view([1, w]);
        let phase = (&xx * 0.21).sin() * 0.8 + (&yy * 0.17).cos() * 0.6 + (&xx * &yy * 0.003).sin();
        let object = Tensor::polar(&((&yy * 0.13).sin() * 0.2 + 0.8).expand([h, w], false), &phase);
        let r = (Tensor::arange(n, (Kind::Float, Device::Cpu)) - (n / 2) as f64).square();
        let gauss = (-(r.view([n, 1]) + r.view([1, n])) / 50.0).exp();
        let probe = Tensor::complex(&gauss, &gauss.zeros_like()).unsqueeze(0);
        let (x0, y0) = (20i64, 18i64);
        let window = |dx: f64, dy: f64| {
            // O(r + x + δ) by bilinear interpolation of the analytic object
            let (ox, oy) = (x0 as f64 + dx, y0 as f64 + dy);
            let xs = Tensor::arange(n, (Kind::Double, Device::Cpu)) + ox;
            let ys = Tensor::arange(n, (Kind::Double, Device::Cpu)) + oy;
            let re = object.real().to_kind(Kind::Double);
            let im = object.imag().to_kind(Kind::Double);
            let interp = |img: &Tensor| -> Tensor {
                let (fx, fy) = (xs.floor(), ys.floor());
                let (tx, ty) = ((&xs - &fx).view([1, n]), (&ys - &fy).view([n, 1]));
                let (ix, iy) = (fx.to_kind(Kind::Int64), fy.to_kind(Kind::Int64));
                let pick = |r: &Tensor, c: &Tensor| img.index_select(0, r).index_select(1, c);
                let (ix1, iy1) = (&ix + 1, &iy + 1);
                pick(&iy, &ix) * (1.0 - &tx) * (1.0 - &ty)
                    + pick(&iy, &ix1) * &tx * (1.0 - &ty)
                    + pick(&iy1, &ix) * (1.0 - &tx) * &ty
                    + pick(&iy1, &ix1) * &tx * &ty
            };
            Tensor::complex(&interp(&re).to_kind(Kind::Float), &interp(&im).to_kind(Kind::Float))
        };
        let (dx, dy) = (0.3, -0.2);
        // the measured amplitudes: the window moved by (dx, dy)
        let measured = (window(dx, dy) * probe.squeeze_dim(0))
            .fft_fft2(None::<&[i64]>, [-2, -1], "ortho")
            .abs()
            .unsqueeze(0);
        let state = State {
            object: window(0.0, 0.0).reshape([-1]),
            probe: probe.shallow_clone(),
        };
        let batch = Batch {
            index: Tensor::arange(n * n, (Kind::Int64, Device::Cpu)),
            amplitude: measured,
            masked: false,
            size: 1,
            shifts: None,
        };
        let fwd = Forward::new(&state, &batch);
        let got: Vec<f32> = Vec::try_from(position_shifts(&fwd, &batch).reshape([-1])).unwrap();
        assert!((got[0] as f64 - dx).abs() < 0.03, "{got:?}");
        assert!((got[1] as f64 - dy).abs() < 0.03, "{got:?}");
    }
}
