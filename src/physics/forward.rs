//! Patch extraction, exit wave and far-field amplitude (DESIGN §3).
//!
//! Conventions: a scan position `(x, y)` in object pixels names the object
//! point that lands at patch index `(N/2, N/2)`:
//! `patch[i, j] = O(y − N/2 + i, x − N/2 + j)`, exact for integer positions,
//! bilinear with zero outside the object for fractional ones.
//! The far-field amplitude is `A = fftshift(|FFT2_ortho(Ψ)|)`, so
//! `Σ A² = Σ |Ψ|²` and zero frequency sits at `(N/2, N/2)`.
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// Extracts `N×N` patches of `object` centred (in the sense above) on each
/// position.
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
    let pos = positions_px.to_device(device).to_kind(Kind::Double);
    let x = pos.select(1, 0);
    let y = pos.select(1, 1);
    let x0 = x.floor();
    let y0 = y.floor();
    let fx = (&x - &x0).to_kind(Kind::Float).view([count, 1, 1]);
    let fy = (&y - &y0).to_kind(Kind::Float).view([count, 1, 1]);
    let offsets = Tensor::arange(n, (Kind::Int64, device)) - n / 2;
    // [count, N] first row / column index of each corner-(0, 0) sample
    let rows = y0.to_kind(Kind::Int64).view([count, 1]) + offsets.view([1, n]);
    let cols = x0.to_kind(Kind::Int64).view([count, 1]) + offsets.view([1, n]);
    let flat = object.reshape([-1]);

    let all_integer = bool::try_from(fx.eq(0.0).all().logical_and(&fy.eq(0.0).all()))?;
    let gather = |dr: i64, dc: i64| -> Tensor {
        let r = &rows + dr;
        let c = &cols + dc;
        let r_ok = r.ge(0).logical_and(&r.lt(h));
        let c_ok = c.ge(0).logical_and(&c.lt(w));
        let ok = r_ok.view([count, n, 1]).logical_and(&c_ok.view([count, 1, n]));
        let idx = r.clamp(0, h - 1).view([count, n, 1]) * w + c.clamp(0, w - 1).view([count, 1, n]);
        let vals = flat.index_select(0, &idx.view([-1])).view([count, n, n]);
        vals * ok.to_kind(Kind::Float)
    };
    if all_integer {
        return Ok(gather(0, 0));
    }
    let one = 1.0f64;
    let w00 = (one - &fy) * (one - &fx);
    let w01 = (one - &fy) * &fx;
    let w10 = &fy * (one - &fx);
    let w11 = &fy * &fx;
    Ok(gather(0, 0) * w00 + gather(0, 1) * w01 + gather(1, 0) * w10 + gather(1, 1) * w11)
}

/// Exit waves `Ψ = P · patch`.
///
/// # Shapes
/// - `probe`: `[N, N]` complex64; `patches`: `[n, N, N]` complex64 → `[n, N, N]` complex64
pub fn exit_waves(probe: &Tensor, patches: &Tensor) -> Result<Tensor> {
    let p = probe.size();
    let s = patches.size();
    if p.len() != 2 || s.len() != 3 || s[1..] != p[..] {
        return Err(Error::shape(
            "probe × patches",
            format!("probe [N, N] and patches [n, N, N] with the same N (probe {p:?})"),
            format!("patches {s:?}"),
        ));
    }
    Ok(patches * probe.unsqueeze(0))
}

/// Far-field amplitude `A = fftshift(|FFT2(Ψ)| / N)` over the last two axes.
///
/// # Shapes
/// - `exit_waves`: `[..., N, N]` complex64 → `[..., N, N]` float32
pub fn far_field_amplitude(exit_waves: &Tensor) -> Tensor {
    exit_waves
        .fft_fft2(None::<&[i64]>, [-2, -1], "ortho")
        .abs()
        .fft_fftshift(Some([-2i64, -1].as_slice()))
}

/// Total energy `Σ |Ψ|²` per pattern.
///
/// # Shapes
/// - `exit_waves`: `[n, N, N]` complex64 → `[n]` float64
pub fn energy_per_pattern(exit_waves: &Tensor) -> Tensor {
    exit_waves
        .abs()
        .to_kind(Kind::Double)
        .square()
        .sum_dim_intlist([-2i64, -1].as_slice(), false, Kind::Double)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

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
}
