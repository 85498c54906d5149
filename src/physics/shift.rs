//! Sub-pixel translation of images, differentiable and batched (the
//! building block of the overlap constraint and of stitching).
//!
//! Convention (matches PtychoPINN's `Translation`): shifting by `(dx, dy)`
//! moves content by `+d`: `out(x, y) = in(x − dx, y − dy)`, bilinear, zero
//! outside the image. x is the column (width) axis.
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Translates each image by its own shift.
///
/// # Shapes
/// - `images`: `[B, H, W]` complex64 or float32
/// - `shifts_px`: `[B, 2]` float, columns `(dx, dy)` in pixels
/// - returns `[B, H, W]`, same kind and device as `images`
pub fn translate(images: &Tensor, shifts_px: &Tensor) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 3 {
        return Err(Error::shape("images", "[B, H, W]", format!("{s:?}")));
    }
    if images.is_complex() {
        // channels = (re, im)
        let ri = images.view_as_real().permute([0, 3, 1, 2]);
        let out = translate_channels(&ri, shifts_px)?;
        Ok(out.permute([0, 2, 3, 1]).contiguous().view_as_complex())
    } else {
        Ok(translate_channels(&images.to_kind(Kind::Float).unsqueeze(1), shifts_px)?.squeeze_dim(1))
    }
}

/// [`translate`] for real images with several channels, all of image `b`
/// moved by `shifts_px[b]` in one sampling pass.
///
/// # Shapes
/// - `images`: `[B, K, H, W]` float32
/// - `shifts_px`: `[B, 2]` float, columns `(dx, dy)` in pixels
/// - returns `[B, K, H, W]` float32
pub fn translate_channels(images: &Tensor, shifts_px: &Tensor) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 4 {
        return Err(Error::shape("images", "[B, K, H, W]", format!("{s:?}")));
    }
    let (b, h, w) = (s[0], s[2], s[3]);
    if shifts_px.size() != [b, 2] {
        return Err(Error::shape(
            "shifts",
            format!("[{b}, 2]"),
            format!("{:?}", shifts_px.size()),
        ));
    }
    if h < 2 || w < 2 {
        return Err(Error::shape("images", "at least 2×2", format!("{s:?}")));
    }
    let shifts = shifts_px.to_device(images.device()).to_kind(Kind::Float);
    Ok(sample_shifted(images, &shifts.unsqueeze(1), (0, 0), (h, w)))
}

/// [`translate_channels`] computed from integer pixel indices and their
/// fractional weights (separable gathers) instead of a sampling grid: a
/// whole-pixel shift moves every value exactly, with exactly zero weight on
/// its neighbours. The grid's normalised coordinates carry a rounding error
/// of a few 1e-6 px, harmless for an average but not for PtychoPINN's
/// reassembly, which divides by `coverage + 0.001`: a 1e-6 leak of a
/// neighbour's coverage there is a 0.1 % change.
///
/// # Shapes
/// - `images`: `[B, K, H, W]` float32; `shifts_px`: `[B, 2]` `(dx, dy)`
/// - returns `[B, K, H, W]` float32
pub fn translate_channels_exact(images: &Tensor, shifts_px: &Tensor) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 4 {
        return Err(Error::shape("images", "[B, K, H, W]", format!("{s:?}")));
    }
    let (b, k, h, w) = (s[0], s[1], s[2], s[3]);
    if shifts_px.size() != [b, 2] {
        return Err(Error::shape(
            "shifts",
            format!("[{b}, 2]"),
            format!("{:?}", shifts_px.size()),
        ));
    }
    let device = images.device();
    let shifts = shifts_px.to_device(device).to_kind(Kind::Float);
    // along one axis of length `len`: source index floor(i − d), its
    // weight, the weight of the next index, each zero outside the image
    let axis = |len: i64, d: &Tensor| {
        let src = Tensor::arange(len, (Kind::Float, device)).view([1, len]) - d.view([-1, 1]);
        let lo = src.floor();
        let frac = &src - &lo;
        let lo = lo.to_kind(Kind::Int64);
        let hi = &lo + 1;
        let inside = |i: &Tensor| i.ge(0).logical_and(&i.lt(len)).to_kind(Kind::Float);
        let w_lo = (1.0 - &frac) * inside(&lo);
        let w_hi = frac * inside(&hi);
        (lo.clamp(0, len - 1), hi.clamp(0, len - 1), w_lo, w_hi)
    };
    let (x0, x1, wx0, wx1) = axis(w, &shifts.select(1, 0));
    let (y0, y1, wy0, wy1) = axis(h, &shifts.select(1, 1));
    // columns: [B, W] indices → [B, K, H, W]
    let cols = |i: &Tensor| i.view([b, 1, 1, w]).expand([b, k, h, w], false);
    let cw = |v: &Tensor| v.view([b, 1, 1, w]);
    let along_x = images.gather(3, &cols(&x0), false) * cw(&wx0) + images.gather(3, &cols(&x1), false) * cw(&wx1);
    let rows = |i: &Tensor| i.view([b, 1, h, 1]).expand([b, k, h, w], false);
    let rw = |v: &Tensor| v.view([b, 1, h, 1]);
    Ok(along_x.gather(2, &rows(&y0), false) * rw(&wy0) + along_x.gather(2, &rows(&y1), false) * rw(&wy1))
}

/// The sampling both translations share: image `b` read (bilinear, zero
/// outside) at `(left + j − dx, top + i − dy)` for every window pixel
/// `(i, j)` and every shift `(dx, dy)` of `shifts[b]`, all in one pass.
///
/// # Shapes
/// - `images`: `[B, K, H, W]` float32; `shifts`: `[B, C, 2]` float32 on the
///   images' device
/// - returns `[B, K, C·rows, cols]` float32
fn sample_shifted(images: &Tensor, shifts: &Tensor, (top, left): (i64, i64), (rows, cols): (i64, i64)) -> Tensor {
    let s = images.size();
    let (h, w) = (s[2], s[3]);
    let c = shifts.size()[1];
    let device = images.device();
    let xs = Tensor::arange_start(left, left + cols, (Kind::Float, device)).view([1, 1, 1, cols]);
    let ys = Tensor::arange_start(top, top + rows, (Kind::Float, device)).view([1, 1, rows, 1]);
    let dx = shifts.select(2, 0).unsqueeze(-1).unsqueeze(-1);
    let dy = shifts.select(2, 1).unsqueeze(-1).unsqueeze(-1);
    // normalised for align_corners = true
    let gx = (xs - dx) * (2.0 / (w - 1) as f64) - 1.0;
    let gy = (ys - dy) * (2.0 / (h - 1) as f64) - 1.0;
    // [B, C·rows, cols, 2] (−1 for the batch axis keeps a traced graph valid
    // for any batch size)
    let grid = Tensor::stack(
        &[
            gx.expand([-1, c, rows, cols], false),
            gy.expand([-1, c, rows, cols], false),
        ],
        -1,
    )
    .reshape([-1, c * rows, cols, 2]);
    const BILINEAR: i64 = 0;
    const ZEROS: i64 = 0;
    images.contiguous().grid_sampler_2d(&grid, BILINEAR, ZEROS, true)
}

/// `C` translated copies of each image, each cropped to a `size × size`
/// window at `(top_left, top_left)`: `out[b, c] = crop(translate(images[b],
/// shifts_px[b, c]))`. Only the window is sampled, and the image is not
/// repeated per copy, so this costs `size²/(H·W)` of translating whole
/// copies and cropping them.
///
/// # Shapes
/// - `images`: `[B, K, H, W]` float32
/// - `shifts_px`: `[B, C, 2]` float, columns `(dx, dy)` in pixels
/// - returns `[B, C, K, size, size]` float32
pub fn translate_crops(images: &Tensor, shifts_px: &Tensor, top_left: i64, size: i64) -> Result<Tensor> {
    let s = images.size();
    if s.len() != 4 {
        return Err(Error::shape("images", "[B, K, H, W]", format!("{s:?}")));
    }
    let (b, k, h, w) = (s[0], s[1], s[2], s[3]);
    let t = shifts_px.size();
    if t.len() != 3 || t[0] != b || t[2] != 2 {
        return Err(Error::shape("shifts", format!("[{b}, C, 2]"), format!("{t:?}")));
    }
    if h < 2 || w < 2 || top_left < 0 || top_left + size > h.min(w) {
        return Err(Error::shape(
            "images",
            format!("at least 2×2 and holding the window {top_left}..{}", top_left + size),
            format!("{s:?}"),
        ));
    }
    let c = t[1];
    let shifts = shifts_px.to_device(images.device()).to_kind(Kind::Float);
    let out = sample_shifted(images, &shifts, (top_left, top_left), (size, size));
    Ok(out.view([-1, k, c, size, size]).permute([0, 2, 1, 3, 4]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn exact_translation_moves_whole_pixels_exactly_and_agrees_with_the_grid_elsewhere() {
        tch::manual_seed(4);
        let images = Tensor::rand([3, 2, 9, 11], (Kind::Float, Device::Cpu)) + 0.5;
        // whole pixels: every value moved exactly, zero where nothing lands
        let shifts = Tensor::from_slice(&[2.0f32, -1.0, -3.0, 4.0, 0.0, 0.0]).view([3, 2]);
        let moved = translate_channels_exact(&images, &shifts).unwrap();
        for (b, (dx, dy)) in [(2i64, -1i64), (-3, 4), (0, 0)].into_iter().enumerate() {
            let b = b as i64;
            for y in 0..9i64 {
                for x in 0..11i64 {
                    let (sy, sx) = (y - dy, x - dx);
                    for k in 0..2 {
                        let got = moved.double_value(&[b, k, y, x]);
                        let want = if (0..9).contains(&sy) && (0..11).contains(&sx) {
                            images.double_value(&[b, k, sy, sx])
                        } else {
                            0.0
                        };
                        assert_eq!(got.to_bits(), want.to_bits(), "b {b} k {k} ({y}, {x})");
                    }
                }
            }
        }
        // fractional shifts: the same bilinear translation as the grid's
        let shifts = Tensor::from_slice(&[0.3f32, -1.7, 2.5, 0.25, -0.6, 3.1]).view([3, 2]);
        let a = translate_channels_exact(&images, &shifts).unwrap();
        let b = translate_channels(&images, &shifts).unwrap();
        assert!((a - b).abs().max().double_value(&[]) < 1e-5);
    }

    fn one_pixel(h: i64, w: i64, y: i64, x: i64) -> Tensor {
        let t = Tensor::zeros([1, h, w], (Kind::Float, Device::Cpu));
        let _ = t.get(0).get(y).get(x).fill_(1.0);
        t
    }

    fn argmax_yx(t: &Tensor) -> (i64, i64) {
        let w = t.size()[2];
        let i = t.abs().view([-1]).argmax(0, false).int64_value(&[]);
        (i / w, i % w)
    }

    #[test]
    fn integer_shift_moves_content_by_plus_d() {
        let img = one_pixel(16, 20, 5, 7);
        let out = translate(&img, &Tensor::from_slice(&[2.0f32, 1.0]).view([1, 2])).unwrap();
        assert_eq!(argmax_yx(&out), (6, 9)); // y + dy, x + dx
        assert!((out.double_value(&[0, 6, 9]) - 1.0).abs() < 1e-5);
        assert!((out.sum(Kind::Double).double_value(&[]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn half_pixel_shift_splits_a_pixel_and_complex_matches_real() {
        let img = one_pixel(8, 8, 3, 3);
        let out = translate(&img, &Tensor::from_slice(&[0.5f32, 0.0]).view([1, 2])).unwrap();
        assert!((out.double_value(&[0, 3, 3]) - 0.5).abs() < 1e-5);
        assert!((out.double_value(&[0, 3, 4]) - 0.5).abs() < 1e-5);
        let c = Tensor::complex(&img, &(&img * -2.0));
        let oc = translate(&c, &Tensor::from_slice(&[0.5f32, 0.0]).view([1, 2])).unwrap();
        assert!((oc.imag().double_value(&[0, 3, 4]) + 1.0).abs() < 1e-5);
    }

    #[test]
    fn content_shifted_out_of_the_image_is_lost_and_zeros_come_in() {
        let img = Tensor::ones([1, 6, 6], (Kind::Float, Device::Cpu));
        let out = translate(&img, &Tensor::from_slice(&[2.0f32, 0.0]).view([1, 2])).unwrap();
        assert!(out.double_value(&[0, 0, 1]).abs() < 1e-6);
        assert!((out.double_value(&[0, 0, 2]) - 1.0).abs() < 1e-5);
    }

    #[test]
    fn translated_crops_equal_translating_whole_copies_and_cropping() {
        tch::manual_seed(2);
        let images = Tensor::randn([2, 3, 20, 20], (Kind::Float, Device::Cpu));
        let shifts = (Tensor::rand([2, 4, 2], (Kind::Float, Device::Cpu)) - 0.5) * 9.0;
        let crops = translate_crops(&images, &shifts, 5, 10).unwrap();
        assert_eq!(crops.size(), [2, 4, 3, 10, 10]);
        for b in 0..2 {
            for c in 0..4 {
                let whole = translate_channels(&images.narrow(0, b, 1), &shifts.get(b).narrow(0, c, 1)).unwrap();
                let expected = whole.get(0).narrow(1, 5, 10).narrow(2, 5, 10);
                let d = (crops.get(b).get(c) - expected).abs().max().double_value(&[]);
                assert!(d < 1e-5, "b {b} c {c}: {d}");
            }
        }
        assert!(
            translate_crops(&images, &shifts, 12, 10).is_err(),
            "window past the edge"
        );
    }
}
