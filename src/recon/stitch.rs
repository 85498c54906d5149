//! Stitching predicted patches into a full object: the central `M×M` crop
//! of each patch is placed (bilinear, sub-pixel) at its position on the
//! object grid, summed, and divided by the coverage (DESIGN §3).
use num_complex::Complex32;
use tch::{Kind, Tensor};

use crate::array::{host_values, host_values_mut};
use crate::error::{Error, Result};

/// Places and averages patch crops on an `[H, W]` canvas.
///
/// A patch's index `(N/2, N/2)` sits at its position `(x, y)` (DESIGN §3),
/// so crop pixel `(i, j)` lands at object pixel
/// `(y − M/2 + i, x − M/2 + j)`; fractional positions are split
/// bilinearly. Crops reaching outside the canvas are clipped.
///
/// # Shapes
/// - `patches`: `[B, N, N]` complex64; `positions_px`: `[B, 2]` f64 `(x, y)`
/// - returns the sum `[H, W]` complex64 and the coverage `[H, W]` f32
///   (divide where coverage > 0 to get the average)
pub fn accumulate(patches: &Tensor, positions_px: &Tensor, crop: i64, h: i64, w: i64) -> Result<(Tensor, Tensor)> {
    accumulate_with(patches, positions_px, crop, h, w, Scatter::Auto)
}

/// How [`accumulate_with`] adds the blocks onto the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scatter {
    /// [`Scatter::Host`] for CPU tensors, [`Scatter::Tensor`] otherwise.
    Auto,
    /// libtorch ops on the patches' device (one scatter-add each for the
    /// values and the coverage): the GPU path.
    Tensor,
    /// A loop on the host that reads the crops in place (CPU tensors only;
    /// several times faster there).
    Host,
}

/// [`accumulate`] with an explicit [`Scatter`] method (both give the same
/// result to rounding; tests run both).
pub fn accumulate_with(
    patches: &Tensor,
    positions_px: &Tensor,
    crop: i64,
    h: i64,
    w: i64,
    method: Scatter,
) -> Result<(Tensor, Tensor)> {
    let s = patches.size();
    if s.len() != 3 || s[1] != s[2] {
        return Err(Error::shape("patches", "[B, N, N]", format!("{s:?}")));
    }
    let (b, n) = (s[0], s[1]);
    if crop <= 0 || crop > n || crop % 2 != 0 {
        return Err(Error::config(
            "crop_px",
            format!("must be even and in 2..={n}, got {crop}"),
        ));
    }
    if positions_px.size() != [b, 2] {
        return Err(Error::shape(
            "positions",
            format!("[{b}, 2]"),
            format!("{:?}", positions_px.size()),
        ));
    }
    let placed = place(positions_px, crop, h, w)?;
    let device = patches.device();
    match method {
        Scatter::Auto if device == tch::Device::Cpu => scatter_on_host(patches, &placed, crop, h, w),
        Scatter::Auto | Scatter::Tensor => Ok(scatter_with_tensors(patches, &placed, crop, h, w)),
        Scatter::Host if device != tch::Device::Cpu => {
            Err(Error::value("patches", "the host scatter needs CPU tensors"))
        }
        Scatter::Host => scatter_on_host(patches, &placed, crop, h, w),
    }
}

/// Where each crop lands: a crop becomes an `(M+1)×(M+1)` block (the four
/// bilinear weights of its fractional position applied to four shifted
/// copies) whose top-left canvas pixel is `corner`; blocks that miss the
/// canvas are left out.
#[derive(Debug, Default)]
struct Placed {
    /// Index of each kept patch.
    keep: Vec<i64>,
    /// Its fractional offsets `(fx, fy)`, interleaved.
    frac: Vec<f32>,
    /// Its block's top-left canvas pixel `(row, column)`, possibly outside.
    corner: Vec<(i64, i64)>,
}

/// The [`Placed`] crops of `positions_px` (`[B, 2]`, `(x, y)`); refuses
/// positions that are not finite.
fn place(positions_px: &Tensor, crop: i64, h: i64, w: i64) -> Result<Placed> {
    let host: Vec<f64> = Vec::try_from(
        positions_px
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double)
            .contiguous()
            .view(-1),
    )?;
    let block = crop + 1;
    let mut placed = Placed::default();
    for (k, p) in host.chunks_exact(2).enumerate() {
        if !(p[0].is_finite() && p[1].is_finite()) {
            return Err(Error::value("positions", format!("position {k} is not finite")));
        }
        let (x0, y0) = (p[0].floor(), p[1].floor());
        let (r, c) = (y0 as i64 - crop / 2, x0 as i64 - crop / 2);
        if r + block <= 0 || r >= h || c + block <= 0 || c >= w {
            continue;
        }
        placed.keep.push(k as i64);
        placed.frac.extend([(p[0] - x0) as f32, (p[1] - y0) as f32]);
        placed.corner.push((r, c));
    }
    Ok(placed)
}

/// [`Scatter::Host`]: the blocks added by [`accumulate_host`], reading the
/// crops in place and writing straight into the returned tensors.
fn scatter_on_host(patches: &Tensor, placed: &Placed, crop: i64, h: i64, w: i64) -> Result<(Tensor, Tensor)> {
    let patches = patches.to_kind(Kind::ComplexFloat).contiguous();
    let crops = Crops {
        values: host_values(&patches)?,
        n: patches.size()[1] as usize,
        crop: crop as usize,
    };
    let mut sum = Tensor::zeros([h, w], (Kind::ComplexFloat, tch::Device::Cpu));
    let mut coverage = Tensor::zeros([h, w], (Kind::Float, tch::Device::Cpu));
    // SAFETY: both tensors were just created here and share their storage
    // with nothing.
    let (sum_values, coverage_values) = unsafe { (host_values_mut(&mut sum)?, host_values_mut(&mut coverage)?) };
    accumulate_host(&crops, placed, Canvas { h, w }, sum_values, coverage_values);
    Ok((sum, coverage))
}

/// [`Scatter::Tensor`]: the blocks built with tensor ops on the patches'
/// device, then one scatter-add each for the values and the coverage onto a
/// canvas padded by one block (so no per-pixel bounds test), trimmed.
fn scatter_with_tensors(patches: &Tensor, placed: &Placed, crop: i64, h: i64, w: i64) -> (Tensor, Tensor) {
    let device = patches.device();
    let s = patches.size();
    let (b, n) = (s[0], s[1]);
    let block = crop + 1;
    let (ph, pw) = (h + 2 * block, w + 2 * block);
    let mut sum = Tensor::zeros([ph * pw, 2], (Kind::Float, device));
    let mut coverage = Tensor::zeros([ph * pw], (Kind::Float, device));
    if !placed.keep.is_empty() {
        let count = placed.keep.len() as i64;
        let keep = Tensor::from_slice(&placed.keep).to_device(device);
        let start = n / 2 - crop / 2;
        let cropped = patches.narrow(1, start, crop).narrow(2, start, crop);
        let cropped = if count == b {
            cropped
        } else {
            cropped.index_select(0, &keep)
        };
        let f = Tensor::from_slice(&placed.frac)
            .to_device(device)
            .view([count, 2, 1, 1]);
        let (fx, fy) = (f.select(1, 0), f.select(1, 1));
        let (gx, gy) = (1.0 - &fx, 1.0 - &fy);
        let values = Tensor::zeros([count, block, block], (Kind::ComplexFloat, device));
        for (dy, dx, weight) in [
            (0, 0, &gy * &gx),
            (0, 1, &gy * &fx),
            (1, 0, &fy * &gx),
            (1, 1, &fy * &fx),
        ] {
            let mut dst = values.narrow(1, dy, crop).narrow(2, dx, crop);
            dst += &cropped * weight;
        }
        // coverage of a block: outer product of its row and column weights
        let edges = |g: &Tensor, f: &Tensor| {
            Tensor::cat(
                &[
                    g.view([count, 1]),
                    Tensor::ones([count, crop - 1], (Kind::Float, device)),
                    f.view([count, 1]),
                ],
                1,
            )
        };
        let ones = edges(&gy, &fy).unsqueeze(2) * edges(&gx, &fx).unsqueeze(1);
        let origin: Vec<i64> = placed
            .corner
            .iter()
            .map(|&(r, c)| (r + block) * pw + (c + block))
            .collect();
        let offsets = Tensor::arange(block, (Kind::Int64, device));
        let idx = Tensor::from_slice(&origin).to_device(device).view([count, 1, 1])
            + (offsets.view([1, block, 1]) * pw + offsets.view([1, 1, block]));
        let idx = idx.view(-1);
        let _ = sum.index_add_(0, &idx, &values.view_as_real().reshape([-1, 2]));
        let _ = coverage.index_add_(0, &idx, &ones.reshape([-1]));
    }
    let trim = |t: Tensor| t.narrow(0, block, h).narrow(1, block, w).contiguous();
    let sum = trim(sum.view([ph, pw, 2])).view_as_complex();
    (sum, trim(coverage.view([ph, pw])))
}

/// The average of stitched crops: `sum / coverage` where the coverage
/// exceeds `1e-6`, zero elsewhere (pixels no crop reached).
///
/// # Shapes
/// - `sum`: `[H, W]` complex64, `coverage`: `[H, W]` f32, as from
///   [`accumulate`] (summed over batches); returns `[H, W]` complex64
pub fn average(sum: &Tensor, coverage: &Tensor) -> Result<Tensor> {
    if sum.size() != coverage.size() || sum.dim() != 2 {
        return Err(Error::shape(
            "coverage",
            format!("{:?} (the sum's shape)", sum.size()),
            format!("{:?}", coverage.size()),
        ));
    }
    if sum.device() != tch::Device::Cpu {
        return Ok(sum / coverage.clamp_min(f64::from(COVERED)) * coverage.gt(f64::from(COVERED)).to_kind(Kind::Float));
    }
    let sum = sum.to_kind(Kind::ComplexFloat).contiguous();
    let coverage = coverage.to_kind(Kind::Float).contiguous();
    let mut out = Tensor::empty(sum.size(), (Kind::ComplexFloat, tch::Device::Cpu));
    // SAFETY: `out` was just created here and shares its storage with nothing.
    let o = unsafe { host_values_mut::<Complex32>(&mut out)? };
    for ((o, &s), &c) in o
        .iter_mut()
        .zip(host_values::<Complex32>(&sum)?)
        .zip(host_values::<f32>(&coverage)?)
    {
        *o = if c > COVERED { s / c } else { Complex32::default() };
    }
    Ok(out)
}

/// Coverage below which [`average`] leaves a pixel at zero.
const COVERED: f32 = 1e-6;

/// Contiguous complex64 patches `[B, N, N]` and the side `M` of the
/// central crop that [`accumulate_host`] reads from each.
struct Crops<'a> {
    values: &'a [Complex32],
    n: usize,
    crop: usize,
}

/// The canvas size `[H, W]` of [`accumulate_host`].
#[derive(Clone, Copy)]
struct Canvas {
    h: i64,
    w: i64,
}

/// The scatter of [`accumulate`] as a loop on the host: each [`Placed`]
/// crop adds its `(M+1)²` block of bilinear weights to `sum` and its
/// weights to `coverage` (`[H, W]` row-major), clipped to the canvas. The
/// crops are read in place from the patches; each block row is formed in a
/// line buffer and added to the canvas once.
fn accumulate_host(crops: &Crops, placed: &Placed, canvas: Canvas, sum: &mut [Complex32], coverage: &mut [f32]) {
    let (n, m) = (crops.n, crops.crop);
    let start = n / 2 - m / 2;
    let (h, w) = (canvas.h, canvas.w);
    // block row t mixes crop rows t (weight 1 − fy) and t − 1 (weight fy);
    // `rows` holds that mix, `line` the same mixed along the columns
    let mut rows = vec![Complex32::default(); m];
    let mut line = vec![Complex32::default(); m + 1];
    let mut column_weights = vec![0f32; m + 1];
    let crop_start = |k: i64| k as usize * n * n + start * n + start;
    let Placed { keep, frac, corner } = placed;
    for (j, ((&k, f), &(r, c))) in keep.iter().zip(frac.chunks_exact(2)).zip(corner).enumerate() {
        // the rows of a crop lie N apart in its patch, and the patches far
        // apart: reading them is the loop's cost, so the rows of the crop
        // AHEAD places on are fetched while this one is added
        let ahead = keep.get(j + AHEAD).map(|&k| crop_start(k));
        let fetch_row = |i: usize| {
            if let Some(first) = ahead {
                let row = &crops.values[first + i * n..][..m];
                for line_start in (0..m).step_by(CACHE_LINE / std::mem::size_of::<Complex32>()) {
                    prefetch(&row[line_start]);
                }
                prefetch(&row[m - 1]);
            }
        };
        let (fx, fy) = (f[0], f[1]);
        let (gx, gy) = (1.0 - fx, 1.0 - fy);
        // columns u of the block that land inside the canvas
        let u0 = (-c).clamp(0, m as i64 + 1) as usize;
        let u1 = (w - c).clamp(0, m as i64 + 1) as usize;
        if u0 >= u1 {
            continue;
        }
        // column weights of the block: gx, 1, …, 1, fx
        column_weights.fill(1.0);
        column_weights[0] = gx;
        column_weights[m] = fx;
        let crop_row = |i: usize| &crops.values[crop_start(k) + i * n..][..m];
        for t in 0..=m {
            if t < m {
                fetch_row(t);
            }
            let row = r + t as i64;
            if row < 0 || row >= h {
                continue;
            }
            let row_weight = match t {
                0 => gy,
                t if t == m => fy,
                _ => 1.0,
            };
            match t {
                0 => rows.iter_mut().zip(crop_row(0)).for_each(|(d, v)| *d = v * gy),
                t if t == m => rows.iter_mut().zip(crop_row(m - 1)).for_each(|(d, v)| *d = v * fy),
                t => {
                    let (below, above) = (crop_row(t), crop_row(t - 1));
                    for ((d, b), a) in rows.iter_mut().zip(below).zip(above) {
                        *d = b * gy + a * fy;
                    }
                }
            }
            line[0] = rows[0] * gx;
            for u in 1..m {
                line[u] = rows[u] * gx + rows[u - 1] * fx;
            }
            line[m] = rows[m - 1] * fx;
            // c + u0 ≥ 0, so `at` is a canvas index
            let at = (row * w + c + u0 as i64) as usize;
            let len = u1 - u0;
            for (d, v) in sum[at..at + len].iter_mut().zip(&line[u0..u1]) {
                *d += v;
            }
            for (d, v) in coverage[at..at + len].iter_mut().zip(&column_weights[u0..u1]) {
                *d += v * row_weight;
            }
        }
    }
}

/// Bytes in a cache line of the CPUs we tune for.
const CACHE_LINE: usize = 64;

/// How many crops ahead [`accumulate_host`] fetches, one row per block row.
const AHEAD: usize = 2;

/// A hint to load the cache line holding `value` (no effect on other CPUs).
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing and cannot fault; the address is a
    // valid reference anyway.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(value as *const T as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn crops_of_a_constant_field_average_to_that_field() {
        // patches cut from one object at integer positions stitch back to it
        tch::manual_seed(3);
        let obj = Tensor::randn([40, 48], (Kind::ComplexFloat, Device::Cpu));
        let pos: Vec<f64> = vec![16.0, 16.0, 20.0, 18.0, 28.0, 24.0];
        let pos_t = Tensor::from_slice(&pos).view([3, 2]);
        let patches = crate::physics::extract_patches(&obj, &pos_t, 16).unwrap();
        let (sum, cov) = accumulate(&patches, &pos_t, 8, 40, 48).unwrap();
        let avg = &sum / cov.clamp_min(1e-6);
        // object pixel (y, x) = (16, 16) is covered by the first crop
        let d = (avg.get(16).get(16) - obj.get(16).get(16)).abs().double_value(&[]);
        assert!(d < 1e-5, "{d}");
        // (12, 12) only in the first crop, (16, 16) also in the second
        assert!((cov.double_value(&[12, 12]) - 1.0).abs() < 1e-5);
        assert!((cov.double_value(&[16, 16]) - 2.0).abs() < 1e-5);
        // covered area: crop 8 around (16, 16) spans rows 12..19
        assert_eq!(cov.double_value(&[11, 16]), 0.0);
        assert!(cov.double_value(&[12, 16]) > 0.99);
        let err = ((&avg - &obj).abs() * cov.gt(0.5)).max().double_value(&[]);
        assert!(err < 1e-5, "{err}");
    }

    #[test]
    fn a_half_pixel_position_splits_coverage() {
        let patches = Tensor::ones([1, 8, 8], (Kind::ComplexFloat, Device::Cpu));
        let pos = Tensor::from_slice(&[10.5f64, 10.0]).view([1, 2]);
        let (_, cov) = accumulate(&patches, &pos, 4, 20, 20).unwrap();
        // crop columns x − 2 .. x + 1 with x = 10.5: edge columns half covered
        assert!((cov.double_value(&[10, 8]) - 0.5).abs() < 1e-5);
        assert!((cov.double_value(&[10, 9]) - 1.0).abs() < 1e-5);
        assert!((cov.double_value(&[10, 12]) - 0.5).abs() < 1e-5);
        assert!((cov.sum(Kind::Double).double_value(&[]) - 16.0).abs() < 1e-4);
    }
}
