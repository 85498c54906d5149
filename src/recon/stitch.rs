//! Stitching predicted patches into a full object: the central `M×M` crop
//! of each patch is placed (bilinear, sub-pixel) at its position on the
//! object grid, summed, and divided by the coverage (DESIGN §3).
use tch::{Kind, Tensor};

use crate::error::{Error, Result};
use crate::physics::translate;

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
    // crop with a one-pixel margin, shifted by the fractional part of the position
    let start = n / 2 - crop / 2;
    let block = crop + 2;
    let cropped = patches
        .narrow(1, start, crop)
        .narrow(2, start, crop)
        .constant_pad_nd([1, 1, 1, 1]);
    let mut frac = Vec::with_capacity(2 * b as usize);
    let mut rows = Vec::with_capacity(b as usize);
    let mut cols = Vec::with_capacity(b as usize);
    for p in host.chunks_exact(2) {
        let (x0, y0) = (p[0].floor(), p[1].floor());
        frac.push((p[0] - x0) as f32);
        frac.push((p[1] - y0) as f32);
        // object pixel of block index (0, 0)
        rows.push(y0 as i64 - crop / 2 - 1);
        cols.push(x0 as i64 - crop / 2 - 1);
    }
    let shifts = Tensor::from_slice(&frac).view([b, 2]).to_device(device);
    let moved = translate(&cropped, &shifts)?;
    let ones = translate(
        &Tensor::ones([b, crop, crop], (Kind::Float, device)).constant_pad_nd([1, 1, 1, 1]),
        &shifts,
    )?;
    // flat canvas indices of every block pixel; pixels outside are dropped
    let r = Tensor::from_slice(&rows).to_device(device).view([b, 1, 1])
        + Tensor::arange(block, (Kind::Int64, device)).view([1, block, 1]);
    let c = Tensor::from_slice(&cols).to_device(device).view([b, 1, 1])
        + Tensor::arange(block, (Kind::Int64, device)).view([1, 1, block]);
    let inside = r
        .ge(0)
        .logical_and(&r.lt(h))
        .logical_and(&c.ge(0))
        .logical_and(&c.lt(w))
        .view(-1);
    let idx = (r * w + c).view(-1).masked_select(&inside);
    let mut sum = Tensor::zeros([h * w, 2], (Kind::Float, device));
    let values = moved
        .view_as_real()
        .reshape([-1, 2])
        .index_select(0, &inside.nonzero().squeeze_dim(1));
    let _ = sum.index_add_(0, &idx, &values);
    let mut coverage = Tensor::zeros([h * w], (Kind::Float, device));
    let _ = coverage.index_add_(0, &idx, &ones.reshape([-1]).masked_select(&inside));
    Ok((sum.view([h, w, 2]).view_as_complex(), coverage.view([h, w])))
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
