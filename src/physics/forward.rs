//! Patch extraction, exit wave and far-field amplitude (DESIGN §3).
//!
//! Conventions: a scan position `(x, y)` in object pixels names the object
//! point that lands at patch index `(N/2, N/2)`:
//! `patch[i, j] = O(y − N/2 + i, x − N/2 + j)`, exact for integer positions,
//! bilinear with zero outside the object for fractional ones.
//! The far-field amplitude is `A = fftshift(|FFT2_ortho(Ψ)|)`, so
//! `Σ A² = Σ |Ψ|²` and zero frequency sits at `(N/2, N/2)`.
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};

/// Extracts `N×N` patches of `object` centred (in the sense above) on each
/// position.
///
/// The object is zero-padded by `N/2 + 1` once; every patch whose window lies
/// in the padded object is then one gather from a strided view of all
/// windows (`unfold`), with the bilinear weights applied to four shifted
/// slices of an `(N+1)×(N+1)` window. Positions further outside fall back to
/// a per-pixel gather with the same result.
///
/// # Shapes
/// - `object`: `[H, W]` complex64
/// - `positions_px`: `[n, 2]` float64, columns `(x, y)` in object pixels
/// - returns `[n, N, N]` complex64, on the object's device
pub fn extract_patches(object: &Tensor, positions_px: &Tensor, n: i64) -> Result<Tensor> {
    let osize = object.size();
    if osize.len() != 2 {
        return Err(Error::shape("object", "[H, W]", format!("{osize:?}")));
    }
    let psize = positions_px.size();
    if psize.len() != 2 || psize[1] != 2 {
        return Err(Error::shape("positions", "[n, 2]", format!("{psize:?}")));
    }
    if n <= 0 || n % 2 != 0 {
        return Err(Error::value(
            "patch size",
            format!("N must be even and positive, got {n}"),
        ));
    }
    let (h, w) = (osize[0], osize[1]);
    let device = object.device();
    let count = psize[0];
    let host: Vec<f64> = Vec::try_from(
        positions_px
            .to_device(Device::Cpu)
            .to_kind(Kind::Double)
            .contiguous()
            .view(-1),
    )?;
    if let Some(i) = host.iter().position(|v| !v.is_finite()) {
        return Err(Error::value(
            "positions",
            format!("non-finite coordinate in position {}", i / 2),
        ));
    }
    let pad = n / 2 + 1;
    let mut rows = Vec::with_capacity(count as usize);
    let mut cols = Vec::with_capacity(count as usize);
    let mut fy = Vec::with_capacity(count as usize);
    let mut fx = Vec::with_capacity(count as usize);
    let mut inside = true;
    for p in host.chunks_exact(2) {
        let (x0, y0) = (p[0].floor(), p[1].floor());
        // window origin in the padded object
        let (r, c) = (y0 as i64 - n / 2 + pad, x0 as i64 - n / 2 + pad);
        inside &= r >= 0 && c >= 0 && r + n < h + 2 * pad && c + n < w + 2 * pad;
        rows.push(r);
        cols.push(c);
        fy.push((p[1] - y0) as f32);
        fx.push((p[0] - x0) as f32);
    }
    if !inside {
        return Ok(extract_patches_gather(object, positions_px, n));
    }
    let padded = object.constant_pad_nd([pad, pad, pad, pad]);
    let rows = Tensor::from_slice(&rows).to_device(device);
    let cols = Tensor::from_slice(&cols).to_device(device);
    let integer = fx.iter().chain(&fy).all(|&f| f == 0.0);
    let win = if integer { n } else { n + 1 };
    // [H', W', win, win] view of every window, then one gather: [count, win, win]
    let windows = padded
        .unfold(0, win, 1)
        .unfold(1, win, 1)
        .index(&[Some(&rows), Some(&cols)]);
    if integer {
        return Ok(windows);
    }
    // separable bilinear weights on the real view [count, N+1, N+1, 2]:
    // first along x, then along y
    let fy = Tensor::from_slice(&fy).to_device(device).view([count, 1, 1, 1]);
    let fx = Tensor::from_slice(&fx).to_device(device).view([count, 1, 1, 1]);
    // (one fused lerp per axis: a + f·(b − a))
    let re = windows.view_as_real();
    let along_x = re.narrow(2, 0, n).lerp_tensor(&re.narrow(2, 1, n), &fx);
    let both = along_x.narrow(1, 0, n).lerp_tensor(&along_x.narrow(1, 1, n), &fy);
    Ok(both.view_as_complex())
}

/// The general path of [`extract_patches`]: a per-pixel gather of the four
/// bilinear neighbours, any position.
fn extract_patches_gather(object: &Tensor, positions_px: &Tensor, n: i64) -> Tensor {
    let (h, w) = (object.size()[0], object.size()[1]);
    let device = object.device();
    let count = positions_px.size()[0];
    let pos = positions_px.to_device(device).to_kind(Kind::Double);
    let x = pos.select(1, 0);
    let y = pos.select(1, 1);
    let x0 = x.floor();
    let y0 = y.floor();
    let fx = (&x - &x0).to_kind(Kind::Float).view([count, 1, 1]);
    let fy = (&y - &y0).to_kind(Kind::Float).view([count, 1, 1]);
    let offsets = Tensor::arange(n, (Kind::Int64, device)) - n / 2;
    let rows = y0.to_kind(Kind::Int64).view([count, 1]) + offsets.view([1, n]);
    let cols = x0.to_kind(Kind::Int64).view([count, 1]) + offsets.view([1, n]);
    let flat = object.reshape([-1]);
    let gather = |dr: i64, dc: i64| -> Tensor {
        let r = &rows + dr;
        let c = &cols + dc;
        let ok = r
            .ge(0)
            .logical_and(&r.lt(h))
            .view([count, n, 1])
            .logical_and(&c.ge(0).logical_and(&c.lt(w)).view([count, 1, n]));
        let idx = r.clamp(0, h - 1).view([count, n, 1]) * w + c.clamp(0, w - 1).view([count, 1, n]);
        flat.index_select(0, &idx.view([-1])).view([count, n, n]) * ok.to_kind(Kind::Float)
    };
    let (gy, gx) = (1.0 - &fy, 1.0 - &fx);
    gather(0, 0) * (&gy * &gx) + gather(0, 1) * (&gy * &fx) + gather(1, 0) * (&fy * &gx) + gather(1, 1) * (&fy * &fx)
}

/// Exit waves `Ψ = P · patch`.
///
/// # Shapes
/// - `probe`: `[N, N]` complex64; `patches`: `[n, N, N]` complex64 → `[n, N, N]` complex64
pub fn exit_waves(probe: &Tensor, patches: &Tensor) -> Result<Tensor> {
    check_exit_wave_shapes(probe, patches)?;
    Ok(patches * probe.unsqueeze(0))
}

/// Exit waves in place: `patches *= P`, with the checks of [`exit_waves`].
///
/// # Shapes
/// - `probe`: `[N, N]` complex64; `patches`: `[n, N, N]` complex64
pub fn exit_waves_in_place(probe: &Tensor, patches: &mut Tensor) -> Result<()> {
    check_exit_wave_shapes(probe, patches)?;
    let _ = patches.f_mul_(&probe.unsqueeze(0))?;
    Ok(())
}

fn check_exit_wave_shapes(probe: &Tensor, patches: &Tensor) -> Result<()> {
    let p = probe.size();
    let s = patches.size();
    if p.len() != 2 || s.len() != 3 || s[1..] != p[..] {
        return Err(Error::shape(
            "probe × patches",
            format!("probe [N, N] and patches [n, N, N] with the same N (probe {p:?})"),
            format!("patches {s:?}"),
        ));
    }
    Ok(())
}

/// Far-field intensity `I = fftshift(|FFT2(Ψ)|² / N²)` over the last two
/// axes (orthonormal FFT: `Σ I = Σ |Ψ|²`, zero frequency at `(N/2, N/2)`).
///
/// For even N the shift is folded into the transform: `fftshift(FFT(Ψ))`
/// equals `FFT(Ψ·c)` with the checkerboard `c[i, j] = (−1)^(i+j)`
/// ([`shift_modulation`]), which saves a copy of every pattern.
///
/// # Shapes
/// - `exit_waves`: `[..., N, N]` complex64 → `[..., N, N]` float32
pub fn far_field_intensity(exit_waves: &Tensor) -> Tensor {
    let size = exit_waves.size();
    let (h, w) = (size[size.len() - 2], size[size.len() - 1]);
    if h % 2 == 0 && w % 2 == 0 {
        far_field_intensity_modulated(&(exit_waves * shift_modulation(h, w, exit_waves.device())))
    } else {
        intensity(
            &exit_waves
                .fft_fft2(None::<&[i64]>, [-2, -1], "ortho")
                .fft_fftshift(Some([-2i64, -1].as_slice())),
        )
    }
}

/// [`far_field_intensity`] of exit waves that already carry the
/// checkerboard `c` (e.g. through a probe multiplied by
/// [`shift_modulation`] once): `I = |FFT2_ortho(Ψ·c)|²`. Even N only.
///
/// # Shapes
/// - `modulated_exit_waves`: `[..., N, N]` complex64 → `[..., N, N]` float32
pub fn far_field_intensity_modulated(modulated_exit_waves: &Tensor) -> Tensor {
    intensity(&modulated_exit_waves.fft_fft2(None::<&[i64]>, [-2, -1], "ortho"))
}

/// `re² + im²` in two passes over the real view (libtorch's complex `abs`
/// and a sum over the last axis of size 2 are several times slower).
fn intensity(spectrum: &Tensor) -> Tensor {
    let ri = spectrum.view_as_real();
    let im = ri.select(-1, 1);
    let mut out = ri.select(-1, 0).square();
    let _ = out.addcmul_(&im, &im);
    out
}

/// Far-field amplitude `A = sqrt(far_field_intensity(Ψ))`.
///
/// # Shapes
/// - `exit_waves`: `[..., N, N]` complex64 → `[..., N, N]` float32
pub fn far_field_amplitude(exit_waves: &Tensor) -> Tensor {
    far_field_intensity(exit_waves).sqrt()
}

/// The checkerboard `c[i, j] = (−1)^(i+j)` on an `[H, W]` grid (float32):
/// for even sizes `FFT(Ψ·c) = fftshift(FFT(Ψ))`.
pub fn shift_modulation(h: i64, w: i64, device: Device) -> Tensor {
    let sign =
        |n: i64| -> Tensor { 1.0 - (Tensor::arange(n, (Kind::Int64, device)).remainder(2) * 2).to_kind(Kind::Float) };
    sign(h).view([h, 1]) * sign(w).view([1, w])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp_object(h: i64, w: i64) -> Tensor {
        let re = Tensor::arange(h * w, (Kind::Float, Device::Cpu)).view([h, w]);
        Tensor::complex(&re, &(-&re * 0.5))
    }

    #[test]
    fn integer_position_patch_is_exact_slice() {
        let obj = ramp_object(16, 20);
        let pos = Tensor::from_slice(&[7.0f64, 9.0]).view([1, 2]);
        let p = extract_patches(&obj, &pos, 4).unwrap();
        // patch[i, j] = O(y - 2 + i, x - 2 + j) with x = 7, y = 9
        let expected = obj.narrow(0, 7, 4).narrow(1, 5, 4);
        assert!(bool::try_from(p.squeeze_dim(0).eq_tensor(&expected).all()).unwrap());
    }

    #[test]
    fn half_pixel_shift_averages_neighbours() {
        let obj = ramp_object(8, 8);
        let pos = Tensor::from_slice(&[4.5f64, 4.0]).view([1, 2]);
        let p = extract_patches(&obj, &pos, 2).unwrap();
        // patch[0, 0] = mean of O(3, 3) and O(3, 4): real 27.5
        assert!((p.real().double_value(&[0, 0, 0]) - 27.5).abs() < 1e-5);
    }

    #[test]
    fn outside_the_object_is_zero() {
        let obj = ramp_object(4, 4);
        let pos = Tensor::from_slice(&[0.0f64, 0.0]).view([1, 2]);
        let p = extract_patches(&obj, &pos, 2).unwrap();
        assert_eq!(p.abs().double_value(&[0, 0, 0]), 0.0);
        assert_eq!(p.abs().double_value(&[0, 1, 1]), 0.0); // O(0, 0) = 0 too
        assert_eq!(p.real().double_value(&[0, 1, 1]), 0.0);
    }

    #[test]
    fn fast_and_gather_paths_agree() {
        tch::manual_seed(1);
        let obj = Tensor::randn([40, 50], (Kind::ComplexFloat, Device::Cpu));
        let pos = Tensor::from_slice(&[10.0f64, 12.0, 20.25, 30.5, 3.0, 4.7, 47.9, 38.1]).view([4, 2]);
        let fast = extract_patches(&obj, &pos, 8).unwrap();
        let slow = extract_patches_gather(&obj, &pos, 8);
        let d = (&fast - &slow).abs().max().double_value(&[]);
        assert!(d < 1e-6, "{d}");
        // far outside the padded object: the gather path is used, and gives zeros
        let far = Tensor::from_slice(&[-100.0f64, 5.0]).view([1, 2]);
        let z = extract_patches(&obj, &far, 8).unwrap();
        assert_eq!(z.abs().max().double_value(&[]), 0.0);
    }

    #[test]
    fn folded_shift_equals_an_explicit_fftshift() {
        tch::manual_seed(2);
        let psi = Tensor::randn([3, 16, 16], (Kind::ComplexFloat, Device::Cpu));
        let explicit = psi
            .fft_fft2(None::<&[i64]>, [-2, -1], "ortho")
            .abs()
            .square()
            .fft_fftshift(Some([-2i64, -1].as_slice()));
        let d = (far_field_intensity(&psi) - &explicit).abs().max().double_value(&[]);
        assert!(d < 1e-5 * explicit.max().double_value(&[]), "{d}");
    }

    #[test]
    fn exit_waves_in_place_equal_the_allocating_form() {
        tch::manual_seed(4);
        let psi = Tensor::randn([3, 8, 8], (Kind::ComplexFloat, Device::Cpu));
        let mut patches = psi.copy();
        let probe = Tensor::randn([8, 8], (Kind::ComplexFloat, Device::Cpu));
        exit_waves_in_place(&probe, &mut patches).unwrap();
        let expected_waves = exit_waves(&probe, &psi).unwrap();
        assert!(bool::try_from(patches.eq_tensor(&expected_waves).all()).unwrap());
        assert!(exit_waves_in_place(&probe, &mut Tensor::zeros([3, 4, 4], (Kind::ComplexFloat, Device::Cpu))).is_err());
    }
}
