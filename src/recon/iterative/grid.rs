//! Where each patch sits on the solver's object: whole-pixel windows on a
//! padded grid, as flat indices for batched gathers and scatter-adds.
use ndarray::Array2;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Largest side of the solver's grid (a complex64 grid of 32768² is 8 GiB).
const MAX_SIDE: i64 = 32768;

/// The solver's object grid: the output grid `[h, w]` plus whatever margin
/// the windows need, so every window lies inside (no clipping in the loop).
#[derive(Debug)]
pub(crate) struct ScanGrid {
    /// Window side N.
    pub n: i64,
    /// Output grid.
    pub h: i64,
    pub w: i64,
    /// Padded grid and the output grid's offset in it.
    pub padded_h: i64,
    pub padded_w: i64,
    pub top: i64,
    pub left: i64,
    /// Flat indices of every window pixel in the padded grid, `[n, N·N]` i64.
    pub indices: Tensor,
    /// Largest distance between a position and the whole pixel used, px.
    pub max_rounding_px: f64,
    /// Each position minus its whole pixel, `[n, 2]` f32 `(δy, δx)`.
    pub remainders: Tensor,
}

impl ScanGrid {
    /// Windows for `positions_px` (`[n, 2]`, `(x, y)`): position `(x, y)` is
    /// rounded to the nearest whole pixel and its window is
    /// `rows y − N/2 .. y + N/2`, `columns x − N/2 .. x + N/2` (docs/physics.md).
    pub fn new(positions_px: &Array2<f64>, n: i64, h: i64, w: i64, device: Device) -> Result<ScanGrid> {
        ScanGrid::with_margin(positions_px, n, h, w, 0, device)
    }

    /// [`ScanGrid::new`] with `margin_px` more padding on every side, room for
    /// positions that move (position correction: [`ScanGrid::move_to`]).
    pub fn with_margin(
        positions_px: &Array2<f64>,
        n: i64,
        h: i64,
        w: i64,
        margin_px: i64,
        device: Device,
    ) -> Result<ScanGrid> {
        if positions_px.ncols() != 2 || positions_px.nrows() == 0 {
            return Err(Error::shape(
                "positions",
                "[n, 2] with n ≥ 1",
                format!("{:?}", positions_px.shape()),
            ));
        }
        let windows = Windows::of(positions_px, n)?;
        let origins = &windows.origins;
        let min_r = origins.iter().map(|o| o.0).min().expect("non-empty");
        let min_c = origins.iter().map(|o| o.1).min().expect("non-empty");
        let max_r = origins.iter().map(|o| o.0).max().expect("non-empty");
        let max_c = origins.iter().map(|o| o.1).max().expect("non-empty");
        let top = (-min_r).max(0) + margin_px;
        let left = (-min_c).max(0) + margin_px;
        let padded_h = top + h.max(max_r + n) + margin_px;
        let padded_w = left + w.max(max_c + n) + margin_px;
        if padded_h > MAX_SIDE || padded_w > MAX_SIDE {
            return Err(Error::value(
                "positions",
                format!(
                    "they span {padded_h}×{padded_w} px with the {h}×{w} object grid, more than \
                     {MAX_SIDE} px on a side (positions must be in object pixels)"
                ),
            ));
        }
        let mut grid = ScanGrid {
            n,
            h,
            w,
            padded_h,
            padded_w,
            top,
            left,
            indices: Tensor::zeros([0], (Kind::Int64, device)),
            max_rounding_px: 0.0,
            remainders: Tensor::zeros([0], (Kind::Float, device)),
        };
        grid.place(&windows)?;
        Ok(grid)
    }

    /// The window extent along one axis: a position `p` keeps its window
    /// (and the probe's sub-pixel shift) inside the padded grid when
    /// `lo ≤ p ≤ hi`; `(x range, y range)`.
    pub fn position_range(&self) -> ([f64; 2], [f64; 2]) {
        let n = self.n;
        let range = |offset: i64, padded: i64| {
            let lo = (n / 2 - offset) as f64;
            [lo, lo + (padded - n) as f64]
        };
        (range(self.left, self.padded_w), range(self.top, self.padded_h))
    }

    /// Recomputes the windows and remainders for new positions (same
    /// count), e.g. after position correction. Errors if a window would
    /// leave the padded grid.
    pub fn move_to(&mut self, positions_px: &Array2<f64>) -> Result<()> {
        let n = self.n;
        if positions_px.ncols() != 2 {
            return Err(Error::shape(
                "positions",
                "[n, 2]",
                format!("{:?}", positions_px.shape()),
            ));
        }
        self.place(&Windows::of(positions_px, n)?)
    }

    /// Sets the flat window indices and remainders of `windows`, checking
    /// that every window lies inside the padded grid.
    fn place(&mut self, windows: &Windows) -> Result<()> {
        let n = self.n;
        let mut starts = Vec::with_capacity(windows.origins.len());
        for (k, &(r, c)) in windows.origins.iter().enumerate() {
            let (r, c) = (r + self.top, c + self.left);
            if r < 0 || c < 0 || r + n > self.padded_h || c + n > self.padded_w {
                return Err(Error::value(
                    "positions",
                    format!("position {k} moved its window off the solver's grid"),
                ));
            }
            starts.push(r * self.padded_w + c);
        }
        let device = self.indices.device();
        let offsets = Tensor::arange(n, (Kind::Int64, device));
        let window = (offsets.view([n, 1]) * self.padded_w + offsets.view([1, n])).view([1, n * n]);
        self.indices = Tensor::from_slice(&starts).to_device(device).view([-1, 1]) + window;
        self.max_rounding_px = windows.max_rounding_px;
        self.remainders = Tensor::from_slice(&windows.remainders).view([-1, 2]).to_device(device);
        Ok(())
    }

    /// Number of padded pixels.
    pub fn len(&self) -> i64 {
        self.padded_h * self.padded_w
    }

    /// A flat padded image `[padded_h·padded_w]` holding `image` (`[h, w]`,
    /// the output grid) and `fill` in the margin.
    pub fn embed(&self, image: &Tensor, fill: f64) -> Tensor {
        let padded = Tensor::full([self.padded_h, self.padded_w], fill, (image.kind(), image.device()));
        padded
            .narrow(0, self.top, self.h)
            .narrow(1, self.left, self.w)
            .copy_(image);
        padded.view([-1])
    }

    /// The output grid `[h, w]` of a flat padded image `[padded_h·padded_w]`.
    pub fn crop(&self, flat: &Tensor) -> Tensor {
        flat.view([self.padded_h, self.padded_w])
            .narrow(0, self.top, self.h)
            .narrow(1, self.left, self.w)
    }
}

/// Where each position's window sits: its origin `(row, column)` on the
/// output grid (the position rounded to the nearest pixel, minus N/2), the
/// remainders `(δy, δx)` of the rounding, and the largest of them.
struct Windows {
    origins: Vec<(i64, i64)>,
    remainders: Vec<f32>,
    max_rounding_px: f64,
}

impl Windows {
    fn of(positions_px: &Array2<f64>, n: i64) -> Result<Windows> {
        let mut w = Windows {
            origins: Vec::with_capacity(positions_px.nrows()),
            remainders: Vec::with_capacity(2 * positions_px.nrows()),
            max_rounding_px: 0.0,
        };
        for p in positions_px.outer_iter() {
            let (x, y) = (p[0], p[1]);
            if !(x.is_finite() && y.is_finite()) || x.abs() > 1e7 || y.abs() > 1e7 {
                return Err(Error::value("positions", format!("position ({x}, {y}) is not usable")));
            }
            let (rx, ry) = (x.round(), y.round());
            w.max_rounding_px = w.max_rounding_px.max((x - rx).abs()).max((y - ry).abs());
            w.remainders.extend([(y - ry) as f32, (x - rx) as f32]);
            w.origins.push((ry as i64 - n / 2, rx as i64 - n / 2));
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_follow_the_position_convention_and_pad_what_sticks_out() {
        // N = 4: (x, y) = (2, 3) → rows 1..5, columns 0..4; (0, 0) needs a margin of 2
        let pos = ndarray::array![[2.0, 3.0], [0.4, -0.2]];
        let g = ScanGrid::new(&pos, 4, 6, 5, Device::Cpu).unwrap();
        assert_eq!((g.top, g.left, g.padded_h, g.padded_w), (2, 2, 8, 7));
        assert!((g.max_rounding_px - 0.4).abs() < 1e-12);
        let r: Vec<f32> = Vec::try_from(g.remainders.reshape([-1])).unwrap();
        assert_eq!(r.len(), 4);
        assert!((r[2] + 0.2).abs() < 1e-6 && (r[3] - 0.4).abs() < 1e-6, "{r:?}");
        let first: Vec<i64> = Vec::try_from(g.indices.get(0)).unwrap();
        // row 1 + 2, column 0 + 2 in a 7-wide grid
        assert_eq!(first[0], 3 * 7 + 2);
        assert_eq!(first[5], 4 * 7 + 3);
        let flat = Tensor::arange(g.len(), (Kind::Int64, Device::Cpu));
        assert_eq!(g.crop(&flat).int64_value(&[0, 0]), 2 * 7 + 2);
        // embed puts the output grid back where crop takes it from
        let image = Tensor::arange(30, (Kind::Float, Device::Cpu)).view([6, 5]);
        let padded = g.embed(&image, -1.0);
        assert_eq!(padded.size(), [g.len()]);
        assert!(g.crop(&padded).equal(&image));
        assert_eq!(padded.double_value(&[0]), -1.0);
        assert_eq!(padded.sum(Kind::Double).double_value(&[]), 435.0 - (56.0 - 30.0));
    }
}
