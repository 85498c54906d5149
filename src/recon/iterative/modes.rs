//! Mixed-state (incoherent) probe modes: starting modes and their
//! orthogonalisation.
//!
//! K modes `P_k` describe a partially coherent beam by the density
//! `ρ(r, r') = Σ_k P_k(r)·conj(P_k(r'))`; the measured intensity is
//! `Σ_k |F(P_k·O)|²`. Only `ρ` is determined by the data, so the solver
//! keeps the modes in its canonical form: orthogonal, strongest first
//! (the eigenvectors of `ρ`), found from the K×K Gram matrix
//! `G_ij = Σ_r conj(P_i(r))·P_j(r)`: if `G·v = λ·v` then `u = Σ_j v_j·P_j`
//! satisfies `ρ·u = λ·u` and `‖u‖² = λ`.
use ndarray::{Array2, Array3, Axis};
use num_complex::Complex32;
use tch::{Kind, Tensor};

use crate::error::{Error, Result};

/// The modes `[K, N, N]` as orthogonal eigenmodes of their density,
/// strongest first. `Σ_k |P_k|²` (the intensity each pixel sees) is kept.
/// Modes whose density has no eigen-decomposition (NaN/∞ from a diverging
/// step) come back unchanged: the solver's data-error check reports them.
///
/// # Shapes
/// `modes`: `[K, N, N]` complex64 → `[K, N, N]`
pub(crate) fn orthogonalize(modes: &Tensor) -> Tensor {
    let shape = modes.size();
    let k = shape[0];
    if k == 1 {
        return modes.shallow_clone();
    }
    let m = modes.reshape([k, -1]).to_kind(Kind::ComplexDouble);
    let gram = m.conj_physical().matmul(&m.transpose(0, 1));
    // Hermitian up to rounding; eigh reads the lower triangle
    let gram = (&gram + gram.transpose(0, 1).conj_physical()) * 0.5;
    let Ok((_, vectors)) = gram.f_linalg_eigh("L") else {
        return modes.shallow_clone();
    };
    // eigenvalues come ascending: flip to strongest first
    let vectors = vectors.flip([1]);
    vectors
        .transpose(0, 1)
        .matmul(&m)
        .to_kind(Kind::ComplexFloat)
        .reshape(shape.as_slice())
}

/// `count` modes from `given` (`[K₀, N, N]`): the first `count` of them
/// when there are enough, else the given ones followed by new modes, each
/// the first mode times a low-order polynomial `x`, `y`, `x·y`, `x² − y²`,
/// … of the position relative to the first mode's centre (in units of
/// its RMS width), made orthogonal to the others (Gram–Schmidt) and given
/// `new_power` of the total power; the total power `Σ_k ‖P_k‖²` is kept.
/// Returns the modes and how many were added.
pub fn probe_modes(given: &Array3<Complex32>, count: usize, new_power: f64) -> Result<(Array3<Complex32>, usize)> {
    let k0 = given.shape()[0];
    if count == 0 || count > 16 {
        return Err(Error::config("probe_modes", format!("must be in 1..=16, got {count}")));
    }
    if !(new_power > 0.0 && new_power < 1.0 / count as f64) {
        return Err(Error::config(
            "new_mode_power",
            format!("must be in (0, 1/K) for K = {count} modes, got {new_power}"),
        ));
    }
    if count <= k0 {
        return Ok((given.slice(ndarray::s![..count, .., ..]).to_owned(), 0));
    }
    let first = given.index_axis(Axis(0), 0);
    let n = first.nrows();
    let weight = first.mapv(|c| c.norm_sqr() as f64);
    let total_first: f64 = weight.sum();
    if total_first.is_nan() || total_first <= 0.0 {
        return Err(Error::value("probe", "its first mode is zero: no modes to add"));
    }
    let (mut cx, mut cy) = (0.0, 0.0);
    for ((i, j), &w) in weight.indexed_iter() {
        cy += w * i as f64;
        cx += w * j as f64;
    }
    let (cx, cy) = (cx / total_first, cy / total_first);
    let mut var = 0.0;
    for ((i, j), &w) in weight.indexed_iter() {
        var += w * ((i as f64 - cy).powi(2) + (j as f64 - cx).powi(2));
    }
    let sigma = (var / total_first / 2.0).sqrt().max(1.0);
    let polynomials: [fn(f64, f64) -> f64; 9] = [
        |x, _| x,
        |_, y| y,
        |x, y| x * y,
        |x, y| x * x - y * y,
        |x, y| x * x + y * y - 1.0,
        |x, y| x * (x * x - 3.0 * y * y),
        |x, y| y * (3.0 * x * x - y * y),
        |x, y| x * (x * x + y * y - 2.0),
        |x, y| y * (x * x + y * y - 2.0),
    ];
    let total: f64 = given.iter().map(|c| c.norm_sqr() as f64).sum();
    let mut modes: Vec<Array2<num_complex::Complex64>> = given
        .outer_iter()
        .map(|m| m.mapv(|c| num_complex::Complex64::new(c.re as f64, c.im as f64)))
        .collect();
    let mut added = 0;
    for poly in polynomials.iter().cycle().take(4 * count) {
        if modes.len() == count {
            break;
        }
        let mut candidate = Array2::from_shape_fn((n, n), |(i, j)| {
            let (x, y) = ((j as f64 - cx) / sigma, (i as f64 - cy) / sigma);
            let c = first[(i, j)];
            num_complex::Complex64::new(c.re as f64, c.im as f64) * poly(x, y)
        });
        for m in &modes {
            let dot: num_complex::Complex64 = m.iter().zip(candidate.iter()).map(|(a, b)| a.conj() * b).sum();
            let norm: f64 = m.iter().map(|c| c.norm_sqr()).sum();
            if norm > 0.0 {
                candidate.zip_mut_with(m, |c, &a| *c -= a * (dot / norm));
            }
        }
        let norm: f64 = candidate.iter().map(|c| c.norm_sqr()).sum();
        if norm > 1e-12 * total_first {
            candidate.mapv_inplace(|c| c * (new_power * total / norm).sqrt());
            modes.push(candidate);
            added += 1;
        }
    }
    if modes.len() < count {
        return Err(Error::value(
            "probe",
            format!("could not build {count} independent modes from it"),
        ));
    }
    // keep the total power: the new modes' share comes out of the given ones
    let keep = (1.0 - new_power * added as f64).sqrt();
    let mut out = Array3::zeros((count, n, n));
    for (k, m) in modes.iter().enumerate() {
        let factor = if k < k0 { keep } else { 1.0 };
        out.index_axis_mut(Axis(0), k)
            .assign(&m.mapv(|c| Complex32::new((c.re * factor) as f32, (c.im * factor) as f32)));
    }
    Ok((out, added))
}

/// Each mode's share of the total power, strongest mode first as stored.
pub fn mode_powers(modes: &Array3<Complex32>) -> Vec<f64> {
    let powers: Vec<f64> = modes
        .outer_iter()
        .map(|m| m.iter().map(|c| c.norm_sqr() as f64).sum())
        .collect();
    let total: f64 = powers.iter().sum();
    powers.iter().map(|p| p / total.max(f64::MIN_POSITIVE)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::array::{c64_to_tensor, tensor_to_c64};
    use tch::Device;

    fn random_modes(k: usize, n: usize, seed: u64) -> Array3<Complex32> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        Array3::from_shape_fn((k, n, n), |_| {
            Complex32::new(rng.random::<f32>() - 0.5, rng.random::<f32>() - 0.5)
        })
    }

    #[test]
    fn modes_with_nan_come_back_unchanged_instead_of_panicking() {
        let modes = Tensor::full([2, 4, 4], f64::NAN, (Kind::ComplexFloat, tch::Device::Cpu));
        let out = orthogonalize(&modes);
        assert_eq!(out.size(), [2, 4, 4]);
        assert!(out.isnan().all().int64_value(&[]) == 1);
    }

    #[test]
    fn orthogonal_modes_keep_the_density_and_come_strongest_first() {
        let modes = random_modes(3, 8, 1);
        let t = c64_to_tensor(&modes.clone().into_dyn(), Device::Cpu);
        let q = orthogonalize(&t);
        let out: Array3<Complex32> = tensor_to_c64(&q).unwrap().into_dimensionality().unwrap();
        // the density ρ = Σ_k P_k P_kᴴ is unchanged (checked on every pixel pair)
        let density = |m: &Array3<Complex32>| {
            let flat = m.to_shape((3, 64)).unwrap().to_owned();
            Array2::from_shape_fn((64, 64), |(r, s)| {
                (0..3)
                    .map(|k| {
                        let (a, b) = (flat[(k, r)], flat[(k, s)]);
                        num_complex::Complex64::new(a.re as f64, a.im as f64)
                            * num_complex::Complex64::new(b.re as f64, -b.im as f64)
                    })
                    .sum::<num_complex::Complex64>()
            })
        };
        let (a, b) = (density(&modes), density(&out));
        let worst = a.iter().zip(b.iter()).map(|(x, y)| (x - y).norm()).fold(0.0, f64::max);
        assert!(worst < 1e-5, "density changed by {worst}");
        // orthogonal, powers descending
        for i in 0..3 {
            for j in 0..i {
                let dot: num_complex::Complex64 = out
                    .index_axis(Axis(0), i)
                    .iter()
                    .zip(out.index_axis(Axis(0), j).iter())
                    .map(|(x, y)| {
                        num_complex::Complex64::new(x.re as f64, -x.im as f64)
                            * num_complex::Complex64::new(y.re as f64, y.im as f64)
                    })
                    .sum();
                assert!(dot.norm() < 1e-4, "modes {i}, {j}: {dot}");
            }
        }
        let p = mode_powers(&out);
        assert!(p[0] >= p[1] && p[1] >= p[2], "{p:?}");
    }

    #[test]
    fn added_modes_are_orthogonal_with_the_asked_power_and_the_total_kept() {
        let n = 16;
        let first = Array3::from_shape_fn((1, n, n), |(_, i, j)| {
            let r2 = ((i as f64 - 7.5).powi(2) + (j as f64 - 8.0).powi(2)) / 9.0;
            Complex32::new((-r2).exp() as f32, 0.0)
        });
        let (modes, added) = probe_modes(&first, 3, 0.05).unwrap();
        assert_eq!((modes.shape(), added), (&[3, n, n][..], 2));
        let p = mode_powers(&modes);
        assert!((p[1] - 0.05).abs() < 1e-4 && (p[2] - 0.05).abs() < 1e-4, "{p:?}");
        let total = |m: &Array3<Complex32>| m.iter().map(|c| c.norm_sqr() as f64).sum::<f64>();
        assert!((total(&modes) / total(&first) - 1.0).abs() < 1e-5);
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            let dot: num_complex::Complex64 = modes
                .index_axis(Axis(0), i)
                .iter()
                .zip(modes.index_axis(Axis(0), j).iter())
                .map(|(a, b)| {
                    let c = a.conj() * b;
                    num_complex::Complex64::new(c.re as f64, c.im as f64)
                })
                .sum();
            assert!(dot.norm() < 1e-5 * total(&modes), "modes {i}, {j}: {dot}");
        }
        // fewer modes than given: the first ones
        let (two, none) = probe_modes(&modes, 2, 0.05).unwrap();
        assert_eq!((two.shape()[0], none), (2, 0));
        assert!(probe_modes(&first, 0, 0.05).is_err());
        assert!(probe_modes(&first, 3, 0.5).is_err());
    }
}
