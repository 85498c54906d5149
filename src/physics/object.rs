//! Test objects. Each generator returns a real map in `[0, 1]` (`[H, W]`
//! float32); [`complex_object`] turns amplitude and phase maps into the
//! object `A·e^{iφ}` with `A ∈ [a_min, 1]` and `φ ∈ [−φ_max, φ_max]`.
//! Random generators take an explicit RNG so results are fixed by the seed.
use std::f64::consts::PI;

use rand::Rng;
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

fn check_size(h: i64, w: i64) -> Result<()> {
    if h < 4 || w < 4 {
        return Err(Error::config(
            "object_size_px",
            format!("object must be at least 4×4 pixels, got {h}×{w}"),
        ));
    }
    Ok(())
}

/// Pixel-centre coordinates `(x, y)` of an `[H, W]` grid, each `[H, W]` f64.
fn grid(h: i64, w: i64, device: Device) -> (Tensor, Tensor) {
    let y = Tensor::arange(h, (Kind::Double, device))
        .view([h, 1])
        .expand([h, w], false);
    let x = Tensor::arange(w, (Kind::Double, device))
        .view([1, w])
        .expand([h, w], false);
    (x, y)
}

/// The part of `img` within `reach` of the box `lo..hi` (pixel coordinates),
/// as coordinate grids `(x, y)` (f64) and a view into `img` to add to;
/// `None` when it misses the image.
fn window(img: &Tensor, lo: (f64, f64), hi: (f64, f64), reach: f64) -> Option<(Tensor, Tensor, Tensor)> {
    let (h, w) = (img.size()[0], img.size()[1]);
    let x0 = ((lo.0 - reach).floor() as i64).max(0);
    let y0 = ((lo.1 - reach).floor() as i64).max(0);
    let x1 = ((hi.0 + reach).ceil() as i64).min(w - 1);
    let y1 = ((hi.1 + reach).ceil() as i64).min(h - 1);
    if x1 < x0 || y1 < y0 {
        return None;
    }
    let (ww, hh) = (x1 - x0 + 1, y1 - y0 + 1);
    let device = img.device();
    let y = (Tensor::arange(hh, (Kind::Double, device)) + y0 as f64)
        .view([hh, 1])
        .expand([hh, ww], false);
    let x = (Tensor::arange(ww, (Kind::Double, device)) + x0 as f64)
        .view([1, ww])
        .expand([hh, ww], false);
    Some((x, y, img.narrow(0, y0, hh).narrow(1, x0, ww)))
}

/// A Siemens star with `spokes` black/white sector pairs filling a disk of
/// radius 0.45·min(H, W) around the centre; 4×4 supersampled edges.
///
/// # Shapes
/// returns `[H, W]` float32 in `[0, 1]`
pub fn siemens_star(h: i64, w: i64, spokes: usize, device: Device) -> Result<Tensor> {
    check_size(h, w)?;
    if spokes == 0 {
        return Err(Error::config(
            "object.features",
            "a Siemens star needs at least 1 spoke",
        ));
    }
    const SS: i64 = 4;
    let (x, y) = grid(h * SS, w * SS, device);
    // supersample centres: (i + 0.5)/SS − 0.5 in original pixel units, centre at (W−1)/2
    let x = (x + 0.5) / SS as f64 - 0.5 - (w - 1) as f64 / 2.0;
    let y = (y + 0.5) / SS as f64 - 0.5 - (h - 1) as f64 / 2.0;
    let r = (x.square() + y.square()).sqrt();
    let theta = y.atan2(&x);
    let radius = 0.45 * h.min(w) as f64;
    let star = (theta * spokes as f64)
        .sin()
        .gt(0.0)
        .logical_and(&r.le(radius))
        .to_kind(Kind::Float);
    Ok(star
        .view([1, 1, h * SS, w * SS])
        .avg_pool2d([SS, SS], [SS, SS], [0, 0], false, true, None::<i64>)
        .view([h, w]))
}

/// Random straight lines with a Gaussian cross-section (σ = `width_px`),
/// random positions, orientations and lengths (0.1–0.6 of the object size);
/// crossings saturate at 1. The usual synthetic "lines" object.
///
/// # Shapes
/// returns `[H, W]` float32 in `[0, 1]`
pub fn random_lines<R: Rng>(
    h: i64,
    w: i64,
    count: usize,
    width_px: f64,
    rng: &mut R,
    device: Device,
) -> Result<Tensor> {
    check_size(h, w)?;
    if !(width_px.is_finite() && width_px > 0.0) {
        return Err(Error::config("object.line_width_px", "must be positive"));
    }
    let img = Tensor::zeros([h, w], (Kind::Float, device));
    let size = h.min(w) as f64;
    for _ in 0..count {
        let cx = rng.random_range(0.0..w as f64);
        let cy = rng.random_range(0.0..h as f64);
        let angle = rng.random_range(0.0..PI);
        let half = 0.5 * size * rng.random_range(0.1..0.6);
        let (dx, dy) = (half * angle.cos(), half * angle.sin());
        let (ax, ay) = (cx - dx, cy - dy);
        let len2 = 4.0 * half * half;
        // only pixels within 6σ of the segment get a visible contribution
        let reach = 6.0 * width_px;
        let Some((x, y, mut view)) = window(
            &img,
            (ax.min(cx + dx), ay.min(cy + dy)),
            (ax.max(cx + dx), ay.max(cy + dy)),
            reach,
        ) else {
            continue;
        };
        // projection of each pixel on the segment a → a + 2d, clamped to it
        let t = (((&x - ax) * (2.0 * dx) + (&y - ay) * (2.0 * dy)) / len2).clamp(0.0, 1.0);
        let ex = &x - ax - &t * (2.0 * dx);
        let ey = &y - ay - &t * (2.0 * dy);
        let d2 = ex.square() + ey.square();
        view += (d2 / (-2.0 * width_px * width_px)).exp().to_kind(Kind::Float);
    }
    Ok(img.clamp(0.0, 1.0))
}

/// PtychoPINN's synthetic "lines" texture: `count` one-pixel lines between
/// uniformly random points of a canvas twice the object's size, then
/// `G₁ + 2·G₅ + 5·G₁₀` (`G_σ`: Gaussian blur of σ px), the central `H×W`
/// cut out and scaled to `[0, 1]`. Unlike [`random_lines`] it has structure
/// at every scale (fine lines on broad ridges), so no region is flat.
///
/// # Shapes
/// returns `[H, W]` float32 in `[0, 1]`
pub fn multiscale_lines<R: Rng>(h: i64, w: i64, count: usize, rng: &mut R, device: Device) -> Result<Tensor> {
    check_size(h, w)?;
    if count == 0 {
        return Err(Error::config("object.features", "lines need at least 1 line"));
    }
    let (ch, cw) = (2 * h, 2 * w);
    let mut canvas = vec![0f32; (ch * cw) as usize];
    for _ in 0..count {
        let y0 = rng.random_range(0..ch) as f64;
        let x0 = rng.random_range(0..cw) as f64;
        let y1 = rng.random_range(0..ch) as f64;
        let x1 = rng.random_range(0..cw) as f64;
        // half-pixel steps along the longer axis reach every pixel of the line
        let steps = (2.0 * (y1 - y0).abs().max((x1 - x0).abs())).ceil().max(1.0) as usize;
        for k in 0..=steps {
            let t = k as f64 / steps as f64;
            let y = (y0 + t * (y1 - y0)).round() as i64;
            let x = (x0 + t * (x1 - x0)).round() as i64;
            canvas[(y * cw + x) as usize] = 1.0;
        }
    }
    let img = Tensor::from_slice(&canvas).view([1, 1, ch, cw]).to_device(device);
    let map = multiscale_blur(&img).squeeze().narrow(0, h / 2, h).narrow(1, w / 2, w);
    let (lo, hi) = (map.min().double_value(&[]), map.max().double_value(&[]));
    if hi <= lo {
        return Ok(map.zeros_like());
    }
    Ok((map - lo) / (hi - lo))
}

/// `G₁ + 2·G₅ + 5·G₁₀` of an image: separable Gaussian blurs with kernels
/// normalised to sum 1, truncated at 4σ, zero outside the image.
///
/// # Shapes
/// `[1, 1, H, W]` float32 → `[1, 1, H, W]`
fn multiscale_blur(img: &Tensor) -> Tensor {
    [(1.0, 1.0), (2.0, 5.0), (5.0, 10.0)]
        .iter()
        .map(|&(weight, sigma)| gaussian_blur(img, sigma) * weight)
        .reduce(|a, b| a + b)
        .expect("three terms")
}

/// Separable Gaussian blur, σ in pixels, kernel radius `ceil(4σ)`.
///
/// # Shapes
/// `[1, 1, H, W]` float32 → `[1, 1, H, W]`
fn gaussian_blur(img: &Tensor, sigma: f64) -> Tensor {
    let r = (4.0 * sigma).ceil() as i64;
    let taps: Vec<f32> = (-r..=r)
        .map(|i| (-(i * i) as f64 / (2.0 * sigma * sigma)).exp() as f32)
        .collect();
    let sum: f32 = taps.iter().sum();
    let k = Tensor::from_slice(&taps).to_device(img.device()) / sum as f64;
    let along_x = img.conv2d(&k.view([1, 1, 1, 2 * r + 1]), None::<Tensor>, [1, 1], [0, r], [1, 1], 1);
    along_x.conv2d(&k.view([1, 1, 2 * r + 1, 1]), None::<Tensor>, [1, 1], [r, 0], [1, 1], 1)
}

/// Random Gaussian blobs (σ between 2 % and 8 % of the object size, random
/// heights), normalised to a maximum of 1.
///
/// # Shapes
/// returns `[H, W]` float32 in `[0, 1]`
pub fn random_blobs<R: Rng>(h: i64, w: i64, count: usize, rng: &mut R, device: Device) -> Result<Tensor> {
    check_size(h, w)?;
    if count == 0 {
        return Err(Error::config("object.features", "blobs need at least 1 blob"));
    }
    let img = Tensor::zeros([h, w], (Kind::Float, device));
    let size = h.min(w) as f64;
    for _ in 0..count {
        let cx = rng.random_range(0.0..w as f64);
        let cy = rng.random_range(0.0..h as f64);
        let sigma = size * rng.random_range(0.02..0.08);
        let height = rng.random_range(0.3..1.0);
        let Some((x, y, mut view)) = window(&img, (cx, cy), (cx, cy), 6.0 * sigma) else {
            continue;
        };
        let d2 = (&x - cx).square() + (&y - cy).square();
        view += ((d2 / (-2.0 * sigma * sigma)).exp() * height).to_kind(Kind::Float);
    }
    let peak = img.max().double_value(&[]);
    Ok(img / peak)
}

/// `A·e^{iφ}` with `A = a_min + (1 − a_min)·amplitude_map` and
/// `φ = φ_max·(2·phase_map − 1)`.
///
/// # Shapes
/// - `amplitude_map`, `phase_map`: `[H, W]` real in `[0, 1]` → `[H, W]` complex64
pub fn complex_object(
    amplitude_map: &Tensor,
    phase_map: &Tensor,
    amplitude_min: f64,
    phase_max_rad: f64,
) -> Result<Tensor> {
    if amplitude_map.size() != phase_map.size() || amplitude_map.dim() != 2 {
        return Err(Error::shape(
            "amplitude and phase maps",
            format!("two equal [H, W] maps (amplitude {:?})", amplitude_map.size()),
            format!("phase {:?}", phase_map.size()),
        ));
    }
    if !(0.0..=1.0).contains(&amplitude_min) {
        return Err(Error::config(
            "object.amplitude_min",
            format!("must be in [0, 1], got {amplitude_min}"),
        ));
    }
    if !(0.0..=PI).contains(&phase_max_rad) {
        return Err(Error::config(
            "object.phase_max_rad",
            format!("must be in [0, π], got {phase_max_rad}"),
        ));
    }
    let a = amplitude_map.to_kind(Kind::Float) * (1.0 - amplitude_min) + amplitude_min;
    let phi = (phase_map.to_kind(Kind::Float) * 2.0 - 1.0) * phase_max_rad;
    Ok(Tensor::polar(&a, &phi))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn multiscale_blur_of_a_long_line_has_the_weighted_gaussian_profile() {
        // a vertical line: away from its ends each row is the sum of the
        // three normalised 1-D kernels, 1·g₁ + 2·g₅ + 5·g₁₀
        let img = Tensor::zeros([1, 1, 200, 101], (Kind::Float, Device::Cpu));
        let _ = img.narrow(3, 50, 1).fill_(1.0);
        let row = multiscale_blur(&img).squeeze().get(100);
        let g = |sigma: f64, d: f64| {
            let r = (4.0 * sigma).ceil() as i64;
            let norm: f64 = (-r..=r)
                .map(|i| (-((i * i) as f64) / (2.0 * sigma * sigma)).exp())
                .sum();
            if d.abs() > r as f64 {
                0.0
            } else {
                (-(d * d) / (2.0 * sigma * sigma)).exp() / norm
            }
        };
        for x in [0i64, 30, 45, 49, 50, 51, 58, 70, 95] {
            let d = (x - 50) as f64;
            let expect = g(1.0, d) + 2.0 * g(5.0, d) + 5.0 * g(10.0, d);
            let got = row.double_value(&[x]);
            assert!((got - expect).abs() < 1e-6, "x = {x}: {got} vs {expect}");
        }
    }

    #[test]
    fn multiscale_lines_fill_the_unit_range_and_follow_the_seed() {
        let make = |seed| multiscale_lines(96, 64, 100, &mut ChaCha8Rng::seed_from_u64(seed), Device::Cpu).unwrap();
        let a = make(3);
        assert_eq!(a.size(), [96, 64]);
        assert_eq!(a.min().double_value(&[]), 0.0);
        assert_eq!(a.max().double_value(&[]), 1.0);
        assert!(a.equal(&make(3)));
        assert!(!a.equal(&make(4)));
        // structure everywhere: no 11×11 window is flat
        let local_std = a
            .view([1, 1, 96, 64])
            .unfold(2, 11, 11)
            .unfold(3, 11, 11)
            .reshape([-1, 121])
            .std_dim(1, false, false);
        assert!(local_std.min().double_value(&[]) > 1e-3);
        assert!(multiscale_lines(64, 64, 0, &mut ChaCha8Rng::seed_from_u64(1), Device::Cpu).is_err());
    }

    #[test]
    fn star_has_half_coverage_inside_its_disk() {
        let s = siemens_star(128, 128, 16, Device::Cpu).unwrap();
        let inner = s
            .narrow(0, 44, 40)
            .narrow(1, 44, 40)
            .mean(Kind::Double)
            .double_value(&[]);
        assert!((inner - 0.5).abs() < 0.03, "{inner}");
        assert_eq!(s.double_value(&[0, 0]), 0.0); // corner is outside the disk
    }

    #[test]
    fn random_objects_are_fixed_by_the_seed() {
        let a = random_lines(64, 64, 20, 1.0, &mut ChaCha8Rng::seed_from_u64(5), Device::Cpu).unwrap();
        let b = random_lines(64, 64, 20, 1.0, &mut ChaCha8Rng::seed_from_u64(5), Device::Cpu).unwrap();
        let c = random_lines(64, 64, 20, 1.0, &mut ChaCha8Rng::seed_from_u64(6), Device::Cpu).unwrap();
        assert!(a.equal(&b));
        assert!(!a.equal(&c));
        assert!(a.max().double_value(&[]) <= 1.0 && a.min().double_value(&[]) >= 0.0);
    }

    #[test]
    fn complex_object_respects_ranges() {
        let m = Tensor::from_slice(&[0.0f32, 0.5, 1.0, 0.25]).view([2, 2]);
        let o = complex_object(&m, &m, 0.3, 1.0).unwrap();
        let amp = o.abs();
        assert!((amp.double_value(&[0, 0]) - 0.3).abs() < 1e-6);
        assert!((amp.double_value(&[1, 0]) - 1.0).abs() < 1e-6);
        assert!((o.angle().double_value(&[0, 0]) + 1.0).abs() < 1e-6);
        assert!((o.angle().double_value(&[1, 0]) - 1.0).abs() < 1e-6);
    }
}
