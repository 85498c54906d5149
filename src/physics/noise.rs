//! Dose, intensity scale and Poisson counting noise (DESIGN §3).
//!
//! `n_photons` is the mean total count per pattern. The scale is
//! `s = sqrt(n_photons / mean_k Σ|Ψ_k|²)`, counts are `K ~ Poisson((s·A)²)`
//! and the stored amplitude is `X = sqrt(K) / s`.
//!
//! Sampling runs on the host with one random stream per pattern
//! ([`pattern_rng`]), so results do not depend on the device, the number of
//! threads or how patterns are batched.
use std::sync::LazyLock;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
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

/// Turns noise-free intensities `I` (patterns of `pattern_len` values, the
/// first one being pattern number `first_index`) into noisy amplitudes
/// `X = sqrt(K)/s` with `K ~ Poisson(s²·I)`, in place.
pub fn noisy_amplitude_from_intensity(
    intensity: &mut [f32],
    pattern_len: usize,
    scale: f64,
    seed: u64,
    first_index: u64,
) {
    let s2 = scale * scale;
    // sqrt(k)/s for the common small counts, bit for bit what the formula gives
    let amplitude: Vec<f32> = (0..AMPLITUDE_TABLE)
        .map(|k| ((k as f64).sqrt() / scale) as f32)
        .collect();
    intensity
        .par_chunks_mut(pattern_len)
        .enumerate()
        .for_each(|(k, pattern)| {
            let mut rng = pattern_rng(seed, first_index + k as u64);
            for v in pattern.iter_mut() {
                let counts = sample_poisson(&mut rng, s2 * *v as f64);
                *v = match amplitude.get(counts as usize) {
                    Some(&a) => a,
                    None => ((counts as f64).sqrt() / scale) as f32,
                };
            }
        });
}

/// Counts below this take their amplitude from a table.
const AMPLITUDE_TABLE: usize = 1024;

/// The random stream of pattern `index`: Xoshiro256++ seeded with
/// `splitmix64(splitmix64(seed) ^ index)`.
pub fn pattern_rng(seed: u64, index: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(splitmix64(splitmix64(seed) ^ index))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One draw from Poisson(`rate`). Inversion (a blocked search from zero) below 10,
/// Hörmann's transformed rejection with squeeze (PTRS, 1993) above.
pub fn sample_poisson<R: Rng>(rng: &mut R, rate: f64) -> u64 {
    if rate <= 0.0 {
        return 0;
    }
    if rate < 10.0 {
        let u: f64 = rng.random();
        // e^{−λ} ≥ 1 − λ: most draws at small rates are 0 without an exp
        // (only below 0.25: above, the branch goes either way too often to pay)
        if rate < 0.25 && u <= 1.0 - rate {
            return 0;
        }
        return search_from_zero(u, rate);
    }
    let slam = rate.sqrt();
    let b = 0.931 + 2.53 * slam;
    let a = -0.059 + 0.02483 * b;
    let vr = 0.9277 - 3.6224 / (b - 2.0);
    loop {
        // two 32-bit uniforms from one draw
        let bits = rng.next_u64();
        let u = (bits >> 32) as f64 * TWO_POW_M32 - 0.5;
        let v = ((bits & 0xFFFF_FFFF) as f64 + 0.5) * TWO_POW_M32;
        let us = 0.5 - u.abs();
        let k = ((2.0 * a / us + b) * u + rate + 0.43).floor();
        // quick acceptance (most draws end here)
        if us >= 0.07 && v <= vr {
            return k as u64;
        }
        if k < 0.0 || (us < 0.013 && v > us) {
            continue;
        }
        // ln v + ln(1/α) − ln(a/us² + b) as one logarithm
        let inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
        if (v * inv_alpha / (a / (us * us) + b)).ln() <= -rate + k * rate.ln() - ln_factorial(k as u64) {
            return k as u64;
        }
    }
}

/// The smallest `k` with `u ≤ P(K ≤ k)` for `K ~ Poisson(rate)`, `rate < 10`
/// ([`search_in_blocks`] of four terms below rate 2, of eight above).
#[inline]
fn search_from_zero(u: f64, rate: f64) -> u64 {
    if rate < 2.0 {
        search_in_blocks::<4>(u, rate, &BLOCK4)
    } else {
        search_in_blocks::<8>(u, rate, &BLOCK8)
    }
}

/// [`search_from_zero`] `B` terms at a time: `P(k0 + j) = P(k0) · rate^j ·
/// k0!/(k0 + j)!` from powers and a table, the partial sums compared with
/// `u` at once and the comparisons counted. A block costs one well-predicted branch instead of
/// one mispredicted branch per term; four-term blocks suit rates below 2
/// (one block covers 86 % of draws at rate 2), eight-term blocks the rest.
#[inline]
fn search_in_blocks<const B: usize>(u: f64, rate: f64, table: &[[f64; 9]]) -> u64 {
    let mut powers = [1.0; 9];
    for j in 1..=B {
        powers[j] = powers[j - 1] * rate;
    }
    let mut p = (-rate).exp(); // P(k0)
    let mut cdf = [0.0; B];
    let mut below = 0.0; // P(K < k0)
    let mut k0 = 0usize;
    loop {
        let t = &table[k0 / B];
        let mut sum = below;
        for j in 0..B {
            sum += p * powers[j] * t[j];
            cdf[j] = sum;
        }
        if u <= sum || k0 + B >= SEARCH_LIMIT {
            let passed: usize = cdf[..B - 1].iter().map(|&c| (u > c) as usize).sum();
            return (k0 + passed) as u64;
        }
        below = sum;
        p *= powers[B] * t[B];
        k0 += B;
    }
}

/// Where the search gives up (the tail beyond it is below 1e-100 at rate 10).
const SEARCH_LIMIT: usize = 200;

/// `k0!/(k0 + j)!` for `j = 0..=B` (zero-padded to 9), one row per block
/// start `k0 = 0, B, 2B, …`.
fn block_table<const B: usize>() -> Vec<[f64; 9]> {
    (0..SEARCH_LIMIT / B)
        .map(|b| {
            let mut row = [0.0; 9];
            row[0] = 1.0;
            for j in 1..=B {
                row[j] = row[j - 1] / (B * b + j) as f64;
            }
            row
        })
        .collect()
}

static BLOCK4: LazyLock<Vec<[f64; 9]>> = LazyLock::new(block_table::<4>);
static BLOCK8: LazyLock<Vec<[f64; 9]>> = LazyLock::new(block_table::<8>);

const TWO_POW_M32: f64 = 1.0 / 4_294_967_296.0;

/// `ln(k!)` for `k < 256`.
static LN_FACTORIAL: LazyLock<[f64; 256]> = LazyLock::new(|| {
    let mut t = [0.0; 256];
    for k in 2..256 {
        t[k] = t[k - 1] + (k as f64).ln();
    }
    t
});

/// `ln(k!)`: a table below 256, Stirling's series (error < 1e-15) above.
pub fn ln_factorial(k: u64) -> f64 {
    if k < 256 {
        return LN_FACTORIAL[k as usize];
    }
    let n = k as f64 + 1.0; // ln Γ(n)
    (n - 0.5) * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI).ln() + 1.0 / (12.0 * n) - 1.0 / (360.0 * n.powi(3))
        + 1.0 / (1260.0 * n.powi(5))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn moments(rate: f64, draws: usize) -> (f64, f64) {
        let mut rng = pattern_rng(7, 0);
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
        let mut rng = pattern_rng(3, 1);
        let n = 100_000;
        let zeros = (0..n).filter(|_| sample_poisson(&mut rng, 1.5) == 0).count();
        let p = zeros as f64 / n as f64;
        assert!((p - (-1.5f64).exp()).abs() < 0.005, "P(0) = {p}");
    }

    #[test]
    fn ln_factorial_matches_direct_sum_across_the_switch() {
        for k in [0u64, 1, 5, 19, 20, 21, 50, 170, 255, 256, 257, 1000] {
            let direct: f64 = (2..=k).map(|i| (i as f64).ln()).sum();
            assert!((ln_factorial(k) - direct).abs() < 1e-9 * direct.max(1.0), "k = {k}");
        }
    }

    #[test]
    fn noise_is_independent_of_batching() {
        let clean: Vec<f32> = (0..64).map(|i| (i as f32 * 0.37).sin().powi(2)).collect();
        let mut whole = clean.clone();
        noisy_amplitude_from_intensity(&mut whole, 16, 30.0, 11, 0);
        let mut parts = clean.clone();
        let (a, b) = parts.split_at_mut(32);
        noisy_amplitude_from_intensity(a, 16, 30.0, 11, 0);
        noisy_amplitude_from_intensity(b, 16, 30.0, 11, 2);
        assert_eq!(whole, parts);
        // (s·X)² are integers
        for x in &whole {
            let k = (30.0 * *x as f64).powi(2);
            assert!((k - k.round()).abs() < 1e-3 * k.max(1.0), "{k}");
        }
    }

    /// The plain sequential search the block search replaced: the
    /// reference it must agree with.
    fn sequential_search(u: f64, rate: f64) -> u64 {
        let mut p = (-rate).exp();
        let mut cdf = p;
        let mut k = 0u64;
        while u > cdf && k < 200 {
            k += 1;
            p *= rate / k as f64;
            cdf += p;
        }
        k
    }

    #[test]
    fn block_search_agrees_with_the_sequential_search_on_both_block_sizes() {
        let mut rng = pattern_rng(5, 9);
        let mut checked = 0;
        for rate in [0.26f64, 0.9, 1.5, 1.999, 2.0, 3.7, 7.0, 9.999] {
            for i in 0..20_000usize {
                // uniform u, plus u right at the CDF steps of k = 0..12
                let u: f64 = if i < 19_000 {
                    rng.random()
                } else {
                    let k = ((i - 19_000) % 13) as u64;
                    let cdf: f64 = (0..=k)
                        .map(|j| (-rate + j as f64 * rate.ln() - ln_factorial(j)).exp())
                        .sum();
                    cdf * (1.0 + [-1e-9, 1e-9][i % 2])
                };
                if u >= 1.0 {
                    continue;
                }
                assert_eq!(
                    search_from_zero(u, rate),
                    sequential_search(u, rate),
                    "rate {rate}, u {u}"
                );
                checked += 1;
            }
        }
        assert!(checked > 150_000);
    }

    #[test]
    fn the_amplitude_table_gives_the_formula_bit_for_bit() {
        // counts both below and above the table's end
        let clean: Vec<f32> = (0..4096)
            .map(|i| (i as f32 * 0.011).sin().powi(2) * (i % 97) as f32)
            .collect();
        let scale = 17.3;
        let mut noisy = clean.clone();
        noisy_amplitude_from_intensity(&mut noisy, 1024, scale, 3, 0);
        let mut big = 0;
        for x in &noisy {
            let k = ((scale * *x as f64).powi(2)).round();
            assert_eq!(*x, (k.sqrt() / scale) as f32);
            big += (k >= AMPLITUDE_TABLE as f64) as usize;
        }
        assert!(big > 0, "some counts must pass the table");
    }
}
