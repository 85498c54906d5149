//! Global position search: each position's misfit on the current object and
//! probe at a set of whole-pixel offsets, and the offset that fits best.
//!
//! The gradient correction ([`super::positions`]) is local: it converges
//! from errors of a pixel or two. Scan positions in measured data can be
//! wrong by as much as the scan's step (a stage that drifts, a piezo's
//! hysteresis); for those, each pattern is compared with
//! the far field of the current object at every offset `(δx, δy)` on a grid
//! of spacing `stride_px` up to `radius_px` per axis, and the position moves
//! to the offset of least amplitude misfit `Σ (A − |Ψ̂(δ)|)²` (fitted
//! pixels only). Run every few epochs with a radius that shrinks, coarse to
//! fine, between solver epochs that sharpen the object at the new
//! positions: the search family of corrections (annealing, as in
//! Maiden et al., Ultramicroscopy 120, 2012). From an object that is already
//! good it reaches errors a gradient cannot; from a flat start the object
//! the wrong positions build favours them, and it helps less
//! (docs/measured.md).
//!
//! An offset is a constant added to a window's flat indices, so one search
//! costs one forward pass over the scan per offset and gathers nothing new.
use tch::{Kind, Tensor};

use super::batch::{Batch, Forward, State};
use super::grid::ScanGrid;

/// The offsets a search tries: `(δx, δy)` on a square grid of spacing
/// `stride_px` within `radius_px` per axis, the zero offset included.
pub(crate) fn offsets(radius_px: i64, stride_px: i64) -> Vec<(i64, i64)> {
    let stride = stride_px.max(1);
    let steps = radius_px.max(0) / stride;
    let mut out = Vec::with_capacity(((2 * steps + 1) * (2 * steps + 1)) as usize);
    for iy in -steps..=steps {
        for ix in -steps..=steps {
            out.push((ix * stride, iy * stride));
        }
    }
    out
}

/// Each position's best whole-pixel offset `[n, 2]` `(δx, δy)` f32 among
/// `offsets`, on `state`'s object and probe, and how much its misfit fell
/// (a fraction of the misfit at zero offset, `[n]` f32). Offsets that would
/// take a window off the grid are not tried; a tie keeps the smaller move.
///
/// # Shapes
/// `amplitudes`: `[n, N, N]` f32 (−1 where masked when `masked`) →
/// (`[n, 2]` f32, `[n]` f32)
pub(crate) fn best_offsets(
    state: &State,
    grid: &ScanGrid,
    amplitudes: &Tensor,
    masked: bool,
    subpixel: bool,
    offsets: &[(i64, i64)],
) -> (Tensor, Tensor) {
    let device = grid.indices.device();
    let count = grid.indices.size()[0];
    let n = grid.n;
    // window origins on the padded grid, to keep every tried window inside
    let first = grid.indices.select(1, 0);
    let (row, col) = (
        first.divide_scalar_mode(grid.padded_w, "floor"),
        first.remainder(grid.padded_w),
    );
    let mut best_error = Tensor::full([count], f64::INFINITY, (Kind::Double, device));
    let mut zero_error = Tensor::zeros([count], (Kind::Double, device));
    let mut best = Tensor::zeros([count, 2], (Kind::Float, device));
    let mut by_distance = offsets.to_vec();
    by_distance.sort_by_key(|&(x, y)| x * x + y * y);
    for &(dx, dy) in &by_distance {
        let inside = (&row + dy).ge(0)
            * (&row + dy + n).le(grid.padded_h)
            * (&col + dx).ge(0)
            * (&col + dx + n).le(grid.padded_w);
        let shift = dy * grid.padded_w + dx;
        let mut errors = Vec::new();
        for start in (0..count).step_by(256) {
            let size = 256.min(count - start);
            let index = grid.indices.narrow(0, start, size);
            let ok = inside.narrow(0, start, size).unsqueeze(1);
            // an outside window reads its own place; its error is discarded
            let index = (&index + shift).where_self(&ok, &index);
            let batch = Batch {
                index: index.reshape([-1]),
                amplitude: amplitudes.narrow(0, start, size),
                masked,
                size,
                shifts: subpixel.then(|| grid.remainders.narrow(0, start, size)),
            };
            let fwd = Forward::new(state, &batch);
            let misfit = batch.where_fitted((&fwd.amplitude - &batch.amplitude).square(), 0.0);
            errors.push(misfit.sum_dim_intlist([-2, -1].as_slice(), false, Kind::Double));
        }
        let error = Tensor::cat(&errors, 0);
        if (dx, dy) == (0, 0) {
            zero_error = error.shallow_clone();
        }
        let error = error.where_self(&inside, &Tensor::full([1], f64::INFINITY, (Kind::Double, device)));
        let better = error.lt_tensor(&best_error);
        best_error = best_error.where_self(&better.logical_not(), &error);
        let here = Tensor::from_slice(&[dx as f32, dy as f32])
            .to_device(device)
            .view([1, 2]);
        best = best.where_self(&better.logical_not().unsqueeze(1), &here);
    }
    let gain = ((&zero_error - &best_error) / zero_error.clamp_min(1e-30)).to_kind(Kind::Float);
    (best, gain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn offsets_cover_the_square_from_the_centre_out() {
        let o = offsets(4, 2);
        assert_eq!(o.len(), 25);
        assert!(o.contains(&(0, 0)) && o.contains(&(-4, 4)) && o.contains(&(2, -2)));
        assert!(!o.contains(&(1, 0)));
        assert_eq!(offsets(0, 3), vec![(0, 0)]);
        assert_eq!(offsets(2, 5), vec![(0, 0)]);
    }

    /// Patterns measured at known positions and a solver that holds the
    /// true object but wrong positions: the search moves each position by
    /// exactly its error (whole pixels, within the radius).
    #[test]
    fn the_search_finds_whole_pixel_errors_within_its_radius() {
        let n = 16i64;
        let (h, w) = (56i64, 56i64);
        let yy = Tensor::arange(h, (Kind::Float, Device::Cpu)).view([h, 1]);
        let xx = Tensor::arange(w, (Kind::Float, Device::Cpu)).view([1, w]);
        let phase = (&xx * 0.37).sin() * 0.9 + (&yy * 0.29).cos() * 0.7 + (&xx * &yy * 0.011).sin();
        let amp = ((&yy * 0.23).sin() * (&xx * 0.19).cos() * 0.3 + 0.7).expand([h, w], false);
        let object = Tensor::polar(&amp, &phase);
        let r = (Tensor::arange(n, (Kind::Float, Device::Cpu)) - (n / 2) as f64).square();
        let gauss = (-(r.view([n, 1]) + r.view([1, n])) / 20.0).exp();
        let probe = Tensor::complex(&gauss, &gauss.zeros_like()).unsqueeze(0);
        let truth = ndarray::array![[20.0, 20.0], [28.0, 22.0], [24.0, 30.0], [33.0, 33.0]];
        let error = [(2i64, -1i64), (-3, 0), (0, 3), (1, 1)];
        let mut given = truth.clone();
        for (k, &(ex, ey)) in error.iter().enumerate() {
            given[[k, 0]] -= ex as f64;
            given[[k, 1]] -= ey as f64;
        }
        let true_grid = ScanGrid::new(&truth, n, h, w, Device::Cpu).unwrap();
        let state = State {
            object: true_grid.embed(&object, 1.0),
            probe,
        };
        let batch = Batch {
            index: true_grid.indices.reshape([-1]),
            amplitude: Tensor::zeros([4, n, n], (Kind::Float, Device::Cpu)),
            masked: false,
            size: 4,
            shifts: None,
        };
        let measured = Forward::new(&state, &batch).amplitude;
        let grid = ScanGrid::with_margin(&given, n, h, w, 0, Device::Cpu).unwrap();
        assert_eq!((grid.top, grid.left), (true_grid.top, true_grid.left));
        let (best, gain) = best_offsets(&state, &grid, &measured, false, false, &offsets(3, 1));
        let best: Vec<f32> = Vec::try_from(best.reshape([-1])).unwrap();
        let want: Vec<f32> = error.iter().flat_map(|&(x, y)| [x as f32, y as f32]).collect();
        assert_eq!(best, want);
        let gain: Vec<f32> = Vec::try_from(gain).unwrap();
        assert!(gain.iter().all(|&g| g > 0.99), "{gain:?}");
        // a radius too small to reach an error never makes a position fit worse
        let (best, gain) = best_offsets(&state, &grid, &measured, false, false, &offsets(1, 1));
        let best: Vec<f32> = Vec::try_from(best.reshape([-1])).unwrap();
        assert!(best.iter().all(|v| v.abs() <= 1.0), "{best:?}");
        let gain: Vec<f32> = Vec::try_from(gain).unwrap();
        assert!(gain.iter().all(|&g| g >= 0.0), "{gain:?}");
    }
}
