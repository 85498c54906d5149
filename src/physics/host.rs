//! The noise-free far field of many positions on the host CPU, fused per
//! chunk of patterns: patch extraction and the probe product in one loop,
//! libtorch's FFT, and `|·|²` written straight into the caller's buffer.
//!
//! The same physics as [`super::forward`] (extraction convention, bilinear
//! weights with zero outside the object, `I = |FFT2_ortho(Ψ·c)|²` with the
//! checkerboard `c` folded into the probe), but without the tensor path's
//! intermediate `[n, N, N]` tensors: each chunk lives in the core's cache,
//! and the elementwise steps cost a fraction of libtorch's complex kernels.
//! Chunks run on the current rayon pool, each with libtorch on one thread,
//! so no libtorch worker waits (spins) between chunks.
use num_complex::Complex32;
use rayon::prelude::*;
use tch::{Device, Kind, Tensor};

use crate::array::host_values;
use crate::error::{Error, Result};

/// Patterns per chunk: 32 patterns of 64² are 1 MiB of complex64, about a
/// core's L2 cache (measured: 16 and 128 were slower on the 2-core CPU).
const CHUNK: usize = 32;

/// An object on the host: row-major complex64, `height × width`.
#[derive(Debug, Clone, Copy)]
pub struct HostObject<'a> {
    pub values: &'a [Complex32],
    pub height: usize,
    pub width: usize,
}

impl HostObject<'_> {
    /// `O(r, c)`, zero outside the object.
    #[inline(always)]
    fn at(&self, r: i64, c: i64) -> Complex32 {
        if r >= 0 && c >= 0 && (r as usize) < self.height && (c as usize) < self.width {
            self.values[r as usize * self.width + c as usize]
        } else {
            Complex32::new(0.0, 0.0)
        }
    }
}

/// Far-field intensities `I_k = |FFT2_ortho(P · patch_k · c)|²` of every
/// position, written into `out`.
///
/// `modulated_probe` is the probe times the checkerboard `c[i, j] =
/// (−1)^(i+j)` (see [`super::forward::shift_modulation`]), so each pattern
/// comes out with zero frequency at `(N/2, N/2)`. The orthonormal scale
/// `1/N` is applied to the probe before the transform; for the power-of-two
/// sizes we support that is exact, so the result equals the tensor path's
/// ([`super::forward::far_field_intensity_modulated`] of
/// [`super::forward::extract_patches`] times the probe) up to rounding:
/// the bilinear weights and the complex products are not computed in
/// libtorch's order (the tests allow 2e-6 of the peak).
///
/// # Shapes
/// - `modulated_probe`: `N × N` row-major
/// - `positions_px`: `n` pairs `(x, y)` in object pixels
/// - `out`: `n × N × N` float32, row-major
pub fn far_field_intensities(
    object: HostObject<'_>,
    modulated_probe: &[Complex32],
    n: usize,
    positions_px: &[[f64; 2]],
    out: &mut [f32],
) -> Result<()> {
    if n == 0 || !n.is_multiple_of(2) || modulated_probe.len() != n * n {
        return Err(Error::shape(
            "probe",
            "[N, N] with N even and positive",
            format!("{} values for N = {n}", modulated_probe.len()),
        ));
    }
    if object.values.len() != object.height * object.width {
        return Err(Error::shape(
            "object",
            format!("[{}, {}]", object.height, object.width),
            format!("{} values", object.values.len()),
        ));
    }
    if out.len() != positions_px.len() * n * n {
        return Err(Error::shape(
            "intensities",
            format!("[{}, {n}, {n}]", positions_px.len()),
            format!("{} values", out.len()),
        ));
    }
    if let Some(i) = positions_px.iter().position(|p| !p[0].is_finite() || !p[1].is_finite()) {
        return Err(Error::value(
            "positions",
            format!("non-finite coordinate in position {i}"),
        ));
    }
    let scale = 1.0 / n as f32;
    let probe: Vec<Complex32> = modulated_probe.iter().map(|&p| p * scale).collect();
    crate::runtime::one_torch_thread_per_worker(|| {
        out.par_chunks_mut(CHUNK * n * n)
            .zip(positions_px.par_chunks(CHUNK))
            .try_for_each_init(Scratch::default, |scratch, (dst, positions)| {
                exit_waves(object, &probe, n, positions, scratch);
                intensities_of(&mut scratch.waves, n, positions.len(), dst)
            })
    })
}

/// A worker's buffers, reused from chunk to chunk.
#[derive(Default)]
struct Scratch {
    /// The chunk's exit waves, `[len, N, N]`.
    waves: Vec<Complex32>,
    /// One patch's rows interpolated along x, `[N + 1, N]`.
    along_x: Vec<Complex32>,
}

/// `scratch.waves[k] = P · patch_k` for a chunk of positions (see the
/// module doc of [`super::forward`] for the extraction convention).
fn exit_waves(object: HostObject<'_>, probe: &[Complex32], n: usize, positions: &[[f64; 2]], scratch: &mut Scratch) {
    let Scratch { waves, along_x } = scratch;
    waves.clear();
    waves.resize(positions.len() * n * n, Complex32::new(0.0, 0.0));
    along_x.resize((n + 1) * n, Complex32::new(0.0, 0.0));
    let half = (n / 2) as i64;
    for (p, wave) in positions.iter().zip(waves.chunks_exact_mut(n * n)) {
        let (x0, y0) = (p[0].floor(), p[1].floor());
        let (fx, fy) = ((p[0] - x0) as f32, (p[1] - y0) as f32);
        // saturating casts: a position far outside gives an all-zero patch
        let (top, left) = ((y0 as i64).saturating_sub(half), (x0 as i64).saturating_sub(half));
        if fx == 0.0 && fy == 0.0 {
            // the patch's columns inside the object, [j0, j1)
            let j0 = left.saturating_neg().clamp(0, n as i64) as usize;
            let j1 = (object.width as i64).saturating_sub(left).clamp(j0 as i64, n as i64) as usize;
            for (i, (row, probe_row)) in wave.chunks_exact_mut(n).zip(probe.chunks_exact(n)).enumerate() {
                let r = top.saturating_add(i as i64);
                if r < 0 || r as usize >= object.height || j0 == j1 {
                    continue; // stays zero
                }
                let start = r as usize * object.width + (left + j0 as i64) as usize;
                let src = &object.values[start..start + (j1 - j0)];
                multiply(&mut row[j0..j1], src, &probe_row[j0..j1]);
            }
            continue;
        }
        // separable bilinear weights, first along x over N + 1 rows, then along y
        for (i, row) in along_x.chunks_exact_mut(n).enumerate() {
            let r = top.saturating_add(i as i64);
            let mut a = object.at(r, left);
            for (j, v) in row.iter_mut().enumerate() {
                let b = object.at(r, left.saturating_add(j as i64 + 1));
                *v = lerp(a, b, fx);
                a = b;
            }
        }
        for (i, (row, probe_row)) in wave.chunks_exact_mut(n).zip(probe.chunks_exact(n)).enumerate() {
            let (upper, lower) = (&along_x[i * n..(i + 1) * n], &along_x[(i + 1) * n..(i + 2) * n]);
            for (((w, &a), &b), &pr) in row.iter_mut().zip(upper).zip(lower).zip(probe_row) {
                *w = lerp(a, b, fy) * pr;
            }
        }
    }
}

/// libtorch's `lerp` on the real and imaginary parts: `a + w·(b − a)` for
/// weights below one half, `b − (b − a)·(1 − w)` above.
#[inline(always)]
fn lerp(a: Complex32, b: Complex32, w: f32) -> Complex32 {
    let one = |a: f32, b: f32| {
        if w.abs() < 0.5 {
            a + w * (b - a)
        } else {
            b - (b - a) * (1.0 - w)
        }
    };
    Complex32::new(one(a.re, b.re), one(a.im, b.im))
}

/// `dst = |FFT2(waves)|²` (unnormalised transform: the scale is in the
/// probe) for `count` patterns of `N × N`.
fn intensities_of(waves: &mut [Complex32], n: usize, count: usize, dst: &mut [f32]) -> Result<()> {
    let shape = [count as i64, n as i64, n as i64];
    // SAFETY: the tensor borrows `waves` for this block only (the FFT reads
    // it and returns a new tensor); it is dropped before `waves` is touched.
    let spectrum = unsafe {
        let input = Tensor::f_from_blob(
            waves.as_mut_ptr() as *const u8,
            &shape,
            &[(n * n) as i64, n as i64, 1],
            Kind::ComplexFloat,
            Device::Cpu,
        )?;
        input.f_fft_fft2(None::<&[i64]>, [-2, -1], "backward")?.contiguous()
    };
    let len = count * n * n;
    if spectrum.numel() != len {
        return Err(Error::shape(
            "spectrum",
            format!("{shape:?} complex64"),
            format!("{:?} {:?}", spectrum.size(), spectrum.kind()),
        ));
    }
    squared_magnitudes(host_values::<Complex32>(&spectrum)?, dst);
    Ok(())
}

simd_dispatch! {
    /// `out = a · b`, elementwise.
    fn multiply(out: &mut [Complex32], a: &[Complex32], b: &[Complex32]) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = Complex32::new(x.re * y.re - x.im * y.im, x.re * y.im + x.im * y.re);
        }
    }
}

simd_dispatch! {
    /// `out[k] = |z_k|²`.
    fn squared_magnitudes(z: &[Complex32], out: &mut [f32]) {
        for (o, z) in out.iter_mut().zip(z) {
            *o = z.re * z.re + z.im * z.im;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lerp_follows_libtorch_on_both_sides_of_one_half() {
        let (a, b) = (Complex32::new(1.0, -2.0), Complex32::new(3.0, 6.0));
        for w in [0.0f32, 0.25, 0.49, 0.5, 0.75, 1.0] {
            let t = Tensor::from_slice(&[a.re, a.im]).lerp(&Tensor::from_slice(&[b.re, b.im]), w as f64);
            let expected: Vec<f32> = Vec::try_from(t).unwrap();
            let got = lerp(a, b, w);
            assert!(
                (got.re - expected[0]).abs() <= 1e-6 && (got.im - expected[1]).abs() <= 1e-6,
                "{w}"
            );
        }
        assert_eq!(lerp(a, b, 0.0), a);
        assert_eq!(lerp(a, b, 1.0), b);
    }

    fn host(t: &Tensor) -> Vec<Complex32> {
        crate::array::tensor_to_c64(t).unwrap().iter().copied().collect()
    }

    /// The tensor path: extract, multiply, orthonormal FFT, |·|².
    fn tensor_path(object: &Tensor, probe: &Tensor, positions: &[[f64; 2]], n: i64) -> Vec<f32> {
        let flat: Vec<f64> = positions.iter().flatten().copied().collect();
        let pos = Tensor::from_slice(&flat).view([-1, 2]);
        let patches = crate::physics::extract_patches(object, &pos, n).unwrap();
        let waves = crate::physics::exit_waves(probe, &patches).unwrap();
        let i = crate::physics::forward::far_field_intensity_modulated(&waves);
        Vec::try_from(i.contiguous().view(-1)).unwrap()
    }

    fn intensities(object: &Tensor, probe: &Tensor, positions: &[[f64; 2]], n: usize) -> Vec<f32> {
        let (values, h, w) = (host(object), object.size()[0] as usize, object.size()[1] as usize);
        intensities_on_host(&values, h, w, &host(probe), positions, n)
    }

    fn intensities_on_host(
        values: &[Complex32],
        h: usize,
        w: usize,
        probe: &[Complex32],
        positions: &[[f64; 2]],
        n: usize,
    ) -> Vec<f32> {
        let mut out = vec![f32::NAN; positions.len() * n * n];
        let obj = HostObject {
            values,
            height: h,
            width: w,
        };
        far_field_intensities(obj, probe, n, positions, &mut out).unwrap();
        out
    }

    #[test]
    fn the_host_path_gives_the_tensor_path_for_every_kind_of_position() {
        tch::manual_seed(5);
        let _threads = crate::runtime::SingleTorchThread::enter();
        let object = Tensor::randn([37, 45], (Kind::ComplexFloat, Device::Cpu));
        let probe = Tensor::randn([16, 16], (Kind::ComplexFloat, Device::Cpu));
        // integer and fractional, inside, across every edge, beyond the
        // padded object (the tensor path's gather), and more than one chunk
        let mut positions = vec![
            [20.0, 18.0],
            [3.0, 2.0],
            [44.0, 36.0],
            [0.25, 40.5],
            [21.7, 0.1],
            [-30.0, 10.0],
            [10.5, 90.0],
        ];
        positions.extend((0..70).map(|k| [(k as f64 * 0.61) % 45.0, (k as f64 * 1.37) % 37.0]));
        let expected = tensor_path(&object, &probe, &positions, 16);
        let got = intensities(&object, &probe, &positions, 16);
        let peak = expected.iter().fold(0f32, |m, &v| m.max(v));
        for (k, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert!(
                (g - e).abs() <= 2e-6 * peak,
                "value {k} (position {}): {g} vs {e}",
                k / 256
            );
        }
        // far outside: an all-zero pattern
        assert!(got[5 * 256..6 * 256].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn the_result_does_not_depend_on_the_thread_count() {
        tch::manual_seed(6);
        let object = Tensor::randn([70, 70], (Kind::ComplexFloat, Device::Cpu));
        let probe = Tensor::randn([8, 8], (Kind::ComplexFloat, Device::Cpu));
        let positions: Vec<[f64; 2]> = (0..100)
            .map(|k| [5.0 + (k % 60) as f64, 5.0 + (k as f64 * 0.37) % 60.0])
            .collect();
        let (values, probe) = (host(&object), host(&probe));
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| intensities_on_host(&values, 70, 70, &probe, &positions, 8))
        };
        let before = tch::get_num_threads();
        assert_eq!(run(1), run(3));
        assert_eq!(tch::get_num_threads(), before, "libtorch's thread count is restored");
    }

    #[test]
    fn bad_input_is_refused() {
        let values = vec![Complex32::new(1.0, 0.0); 12];
        let obj = HostObject {
            values: &values,
            height: 3,
            width: 4,
        };
        let probe = vec![Complex32::new(1.0, 0.0); 4];
        let mut out = vec![0f32; 4];
        assert!(far_field_intensities(obj, &probe, 2, &[[1.0, 1.0]], &mut out).is_ok());
        assert!(
            far_field_intensities(obj, &probe, 3, &[[1.0, 1.0]], &mut out).is_err(),
            "odd N"
        );
        assert!(
            far_field_intensities(obj, &probe, 2, &[[1.0, 1.0], [1.0, 1.0]], &mut out).is_err(),
            "short output"
        );
        assert!(
            far_field_intensities(obj, &probe, 2, &[[f64::NAN, 1.0]], &mut out).is_err(),
            "NaN position"
        );
        let short = HostObject { height: 4, ..obj };
        assert!(
            far_field_intensities(short, &probe, 2, &[[1.0, 1.0]], &mut out).is_err(),
            "object size"
        );
    }
}
