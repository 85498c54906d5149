//! Stitching predicted patches into a full object: the central `M×M` crop
//! of each patch is placed (bilinear, sub-pixel) at its position on the
//! object grid, summed, and divided by the coverage (DESIGN §3).
use tch::{Kind, Tensor};

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
    /// A loop on the host (CPU tensors only; several times faster there).
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
    let device = patches.device();
    let host: Vec<f64> = Vec::try_from(
        positions_px
            .to_device(tch::Device::Cpu)
            .to_kind(Kind::Double)
            .contiguous()
            .view(-1),
    )?;
    // Each crop becomes a (M+1)×(M+1) block: the four bilinear weights of
    // its fractional position applied to four shifted copies. Blocks that
    // miss the canvas are dropped; the canvas is padded by one block so the
    // rest need no per-pixel bounds test; then one scatter-add each for the
    // values and the coverage.
    let block = crop + 1;
    let (ph, pw) = (h + 2 * block, w + 2 * block);
    let (mut keep, mut frac, mut origin) = (Vec::new(), Vec::new(), Vec::new());
    for (k, p) in host.chunks_exact(2).enumerate() {
        if !(p[0].is_finite() && p[1].is_finite()) {
            return Err(Error::value("positions", format!("position {k} is not finite")));
        }
        let (x0, y0) = (p[0].floor(), p[1].floor());
        let (r, c) = (y0 as i64 - crop / 2, x0 as i64 - crop / 2);
        if r + block <= 0 || r >= h || c + block <= 0 || c >= w {
            continue;
        }
        keep.push(k as i64);
        frac.extend([(p[0] - x0) as f32, (p[1] - y0) as f32]);
        origin.push((r + block) * pw + (c + block));
    }
    let trim = |t: Tensor| t.narrow(0, block, h).narrow(1, block, w).contiguous();
    let on_host = match method {
        Scatter::Auto => device == tch::Device::Cpu,
        Scatter::Tensor => false,
        Scatter::Host if device != tch::Device::Cpu => {
            return Err(Error::value("patches", "the host scatter needs CPU tensors"));
        }
        Scatter::Host => true,
    };
    if on_host {
        let start = n / 2 - crop / 2;
        let cropped: Vec<f32> = Vec::try_from(
            patches
                .narrow(1, start, crop)
                .narrow(2, start, crop)
                .view_as_real()
                .contiguous()
                .view(-1),
        )?;
        let (sum, coverage) = accumulate_host(
            &cropped,
            &keep,
            &frac,
            &origin,
            crop as usize,
            (ph * pw) as usize,
            pw as usize,
        );
        let sum = trim(Tensor::from_slice(&sum).view([ph, pw, 2])).view_as_complex();
        return Ok((sum, trim(Tensor::from_slice(&coverage).view([ph, pw]))));
    }
    let mut sum = Tensor::zeros([ph * pw, 2], (Kind::Float, device));
    let mut coverage = Tensor::zeros([ph * pw], (Kind::Float, device));
    if !keep.is_empty() {
        let count = keep.len() as i64;
        let keep = Tensor::from_slice(&keep).to_device(device);
        let start = n / 2 - crop / 2;
        let cropped = patches.narrow(1, start, crop).narrow(2, start, crop);
        let cropped = if count == b {
            cropped
        } else {
            cropped.index_select(0, &keep)
        };
        let f = Tensor::from_slice(&frac).to_device(device).view([count, 2, 1, 1]);
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
        let offsets = Tensor::arange(block, (Kind::Int64, device));
        let idx = Tensor::from_slice(&origin).to_device(device).view([count, 1, 1])
            + (offsets.view([1, block, 1]) * pw + offsets.view([1, 1, block]));
        let idx = idx.view(-1);
        let _ = sum.index_add_(0, &idx, &values.view_as_real().reshape([-1, 2]));
        let _ = coverage.index_add_(0, &idx, &ones.reshape([-1]));
    }
    let sum = trim(sum.view([ph, pw, 2])).view_as_complex();
    Ok((sum, trim(coverage.view([ph, pw]))))
}

/// The scatter of [`accumulate`] as a loop on the host: crop `keep[j]`
/// (interleaved re/im in `cropped`, `[B, M, M, 2]`) with fractional offset
/// `frac[2j..2j+2]` adds its four bilinear copies at flat canvas index
/// `origin[j]` of a padded canvas `pw` wide. Returns the interleaved sum and
/// the coverage, `len` pixels each.
fn accumulate_host(
    cropped: &[f32],
    keep: &[i64],
    frac: &[f32],
    origin: &[i64],
    crop: usize,
    len: usize,
    pw: usize,
) -> (Vec<f32>, Vec<f32>) {
    let mut sum = vec![0f32; 2 * len];
    let mut coverage = vec![0f32; len];
    for (j, &k) in keep.iter().enumerate() {
        let (fx, fy) = (frac[2 * j], frac[2 * j + 1]);
        let src = &cropped[k as usize * crop * crop * 2..(k as usize + 1) * crop * crop * 2];
        let o = origin[j] as usize;
        for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
            for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
                let weight = wy * wx;
                for i in 0..crop {
                    let row = o + (i + dy) * pw + dx;
                    let dst = &mut sum[2 * row..2 * (row + crop)];
                    for (d, v) in dst.iter_mut().zip(&src[2 * i * crop..2 * (i + 1) * crop]) {
                        *d += weight * v;
                    }
                    for c in &mut coverage[row..row + crop] {
                        *c += weight;
                    }
                }
            }
        }
    }
    (sum, coverage)
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
