//! Dose, intensity scale and Poisson counting noise (DESIGN §3).
//!
//! `n_photons` is the mean total count per pattern. The scale is
//! `s = sqrt(n_photons / mean_k Σ|Ψ_k|²)`, counts are `K ~ Poisson((s·A)²)`
//! and the stored amplitude is `X = sqrt(K) / s`.
//!
//! Sampling runs on the host with one ChaCha8 stream per pattern
//! (`seed`, stream = pattern index), so results do not depend on the device,
//! the number of threads or how patterns are batched.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::error::{Error, Result};

/// `s = sqrt(dose_photons / mean_energy)`, where `mean_energy` is the mean
/// of `Σ|Ψ|²` over the dataset's patterns.
pub fn intensity_scale(dose_photons: f64, mean_energy: f64) -> Result<f64> {
    if !(dose_photons.is_finite() && dose_photons > 0.0) {
        return Err(Error::value(
            "dose",
            format!("must be a positive number of photons, got {dose_photons}"),
        ));
    }
    if !(mean_energy.is_finite() && mean_energy > 0.0) {
        return Err(Error::value(
            "exit-wave energy",
            format!("must be positive and finite (is the probe or object zero?), got {mean_energy}"),
        ));
    }
    Ok((dose_photons / mean_energy).sqrt())
}

/// Replaces noise-free amplitudes `A` (patterns of `pattern_len` values,
/// the first one being pattern number `first_index`) by `sqrt(K)/s` with
/// `K ~ Poisson((s·A)²)`, in place.
pub fn apply_poisson_noise(amplitude: &mut [f32], pattern_len: usize, scale: f64, seed: u64, first_index: u64) {
    amplitude
        .par_chunks_mut(pattern_len)
        .enumerate()
        .for_each(|(k, pattern)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            rng.set_stream(first_index + k as u64);
            for a in pattern.iter_mut() {
                let rate = (scale * *a as f64).powi(2);
                let counts = sample_poisson(&mut rng, rate);
                *a = ((counts as f64).sqrt() / scale) as f32;
            }
        });
}

/// One draw from Poisson(`rate`). Inversion by sequential search below 10,
/// Hörmann's transformed rejection with squeeze (PTRS, 1993) above.
pub fn sample_poisson<R: Rng>(rng: &mut R, rate: f64) -> u64 {
    if rate <= 0.0 {
        return 0;
    }
    if rate < 10.0 {
        let mut p = (-rate).exp();
        let mut cdf = p;
        let u: f64 = rng.random();
        let mut k = 0u64;
        while u > cdf && k < 200 {
            k += 1;
            p *= rate / k as f64;
            cdf += p;
        }
        return k;
    }
    let slam = rate.sqrt();
    let loglam = rate.ln();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        let u: f64 = rng.random::<f64>() - 0.5;
        let v: f64 = rng.random();
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + rate + 0.43).floor();
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        if v.ln() + inv_alpha.ln() - (a / (us * us) + b).ln() <= -rate + k * loglam - ln_factorial(k as u64) {
            return k as u64;
        }
    }
}

/// `ln(k!)`: exact sum below 20, Stirling's series (error < 1e-12) above.
pub fn ln_factorial(k: u64) -> f64 {
    if k < 20 {
        return (2..=k).map(|i| (i as f64).ln()).sum();
    }
    let n = k as f64 + 1.0; // ln Γ(n)
    (n - 0.5) * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * n) - 1.0 / (360.0 * n.powi(3))
        + 1.0 / (1260.0 * n.powi(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(rate: f64, draws: usize) -> (f64, f64) {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let xs: Vec<f64> = (0..draws).map(|_| sample_poisson(&mut rng, rate) as f64).collect();
        let mean = xs.iter().sum::<f64>() / draws as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (draws - 1) as f64;
        (mean, var)
    }

    #[test]
    fn poisson_mean_and_variance_match_the_rate() {
        for &rate in &[0.05, 0.7, 3.0, 9.9, 10.0, 42.0, 1234.5, 1e6] {
            let draws = 200_000;
            let (mean, var) = moments(rate, draws);
            // standard error of the mean: sqrt(rate / draws); of the variance ~ rate·sqrt(2/draws)
            let tol_mean = 5.0 * (rate / draws as f64).sqrt();
            let tol_var = 6.0 * rate * (2.0 / draws as f64).sqrt() + 5.0 * (rate / draws as f64).sqrt();
            assert!((mean - rate).abs() < tol_mean, "rate {rate}: mean {mean}");
            assert!((var - rate).abs() < tol_var, "rate {rate}: var {var}");
        }
    }

    #[test]
    fn poisson_probability_of_zero_matches_exp_minus_rate() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 100_000;
        let zeros = (0..n).filter(|_| sample_poisson(&mut rng, 1.5) == 0).count();
        let p = zeros as f64 / n as f64;
        assert!((p - (-1.5f64).exp()).abs() < 0.005, "P(0) = {p}");
    }

    #[test]
    fn ln_factorial_matches_direct_sum_across_the_switch() {
        for k in [0u64, 1, 5, 19, 20, 21, 50, 170] {
            let direct: f64 = (2..=k).map(|i| (i as f64).ln()).sum();
            assert!((ln_factorial(k) - direct).abs() < 1e-9 * direct.max(1.0), "k = {k}");
        }
    }

    #[test]
    fn noise_is_independent_of_batching() {
        let clean: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin().abs()).collect();
        let mut whole = clean.clone();
        apply_poisson_noise(&mut whole, 16, 30.0, 11, 0);
        let mut parts = clean.clone();
        let (a, b) = parts.split_at_mut(32);
        apply_poisson_noise(a, 16, 30.0, 11, 0);
        apply_poisson_noise(b, 16, 30.0, 11, 2);
        assert_eq!(whole, parts);
        // (s·X)² are integers
        for x in &whole {
            let k = (30.0 * *x as f64).powi(2);
            assert!((k - k.round()).abs() < 1e-3 * k.max(1.0), "{k}");
        }
    }
}
