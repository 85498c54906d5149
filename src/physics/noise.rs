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
    intensity.par_chunks_mut(pattern_len).enumerate().for_each_init(
        PatternSampler::default,
        |sampler, (k, pattern)| {
            let mut rng = pattern_rng(seed, first_index + k as u64);
            let counts = sampler.sample(&mut rng, pattern, s2);
            amplitudes(counts, scale, pattern);
        },
    );
}

simd_dispatch! {
    /// `out[k] = sqrt(counts[k]) / scale`, computed in float64 and rounded
    /// once to float32.
    fn amplitudes(counts: &[u64], scale: f64, out: &mut [f32]) {
        for (o, &c) in out.iter_mut().zip(counts) {
            *o = ((c as f64).sqrt() / scale) as f32;
        }
    }
}

/// Draws one pattern's counts, the same draws as [`sample_poisson`] pixel
/// by pixel, in passes over reusable buffers that mostly run in SIMD lanes
/// without a branch:
/// 1. in pixel order, one uniform for each pixel of rate in (0, 10), and
///    the whole rejection sampler for rates ≥ 10 (the stream is consumed
///    exactly as pixel-by-pixel sampling consumes it);
/// 2. `e^{−rate}` for every pixel ([`exp_neg`]);
/// 3. the first block of the inversion search for every pixel of rate < 2
///    ([`first_block`]), then for the pixels that block did not settle,
///    compacted, the first block of eight terms (rate ≥ 2), and the full
///    search ([`search_with`]) for the few left.
///
/// The passes are compiled a second time for AVX2 + FMA and chosen at run
/// time; both give the same bits.
#[derive(Default)]
struct PatternSampler {
    rate: Vec<f64>,
    /// The pixel's uniform, or [`DRAWN`] where the count is already known.
    u: Vec<f64>,
    p0: Vec<f64>,
    counts: Vec<u64>,
    /// Pixels whose count the first block of four terms did not settle.
    pending: Vec<u32>,
}

/// A count still to find.
const UNSET: u64 = u64::MAX;

/// Marks a pixel whose count pass 1 already set (no uniform is ≥ 1).
const DRAWN: f64 = 2.0;

impl PatternSampler {
    fn sample(&mut self, rng: &mut Xoshiro256PlusPlus, intensity: &[f32], s2: f64) -> &[u64] {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            unsafe { self.sample_avx2(rng, intensity, s2) };
            return &self.counts;
        }
        self.sample_passes(rng, intensity, s2);
        &self.counts
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn sample_avx2(&mut self, rng: &mut Xoshiro256PlusPlus, intensity: &[f32], s2: f64) {
        self.sample_passes(rng, intensity, s2);
    }

    #[inline(always)]
    fn sample_passes(&mut self, rng: &mut Xoshiro256PlusPlus, intensity: &[f32], s2: f64) {
        // plain loops throughout: an iterator adaptor's fold that is not
        // inlined here is compiled without this function's AVX2 + FMA
        let len = intensity.len();
        self.rate.resize(len, 0.0);
        for (rate, &v) in self.rate.iter_mut().zip(intensity) {
            *rate = s2 * v as f64;
        }
        self.u.resize(len, DRAWN);
        self.p0.resize(len, 0.0);
        self.counts.resize(len, 0);
        for ((&rate, u), count) in self.rate.iter().zip(&mut self.u).zip(&mut self.counts) {
            if rate > 0.0 && rate < 10.0 {
                *u = rng.random();
            } else {
                *u = DRAWN;
                *count = if rate >= 10.0 { sample_large_rate(rng, rate) } else { 0 };
            }
        }
        for (o, &x) in self.p0.iter_mut().zip(&self.rate) {
            *o = exp_neg(x);
        }
        let t4 = BLOCK4[0];
        for (((&rate, &u), &p0), count) in self.rate.iter().zip(&self.u).zip(&self.p0).zip(&mut self.counts) {
            let first = if rate < 2.0 {
                first_block::<4>(u, rate, p0, &t4)
            } else {
                UNSET
            };
            *count = if u == DRAWN { *count } else { first };
        }
        // then the pixels of rate ≥ 2, or beyond their first block
        // (compacted without a branch: the flags follow no pattern a predictor learns)
        self.pending.resize(len, 0);
        let mut pending = 0;
        for (i, &count) in self.counts.iter().enumerate() {
            self.pending[pending] = i as u32;
            pending += (count == UNSET) as usize;
        }
        self.pending.truncate(pending);
        let t8 = BLOCK8[0];
        for &i in &self.pending {
            let i = i as usize;
            let (u, rate, p0) = (self.u[i], self.rate[i], self.p0[i]);
            let first = if rate >= 2.0 {
                first_block::<8>(u, rate, p0, &t8)
            } else {
                UNSET
            };
            self.counts[i] = if first == UNSET {
                search_with(u, rate, p0)
            } else {
                first
            };
        }
    }
}

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
/// Hörmann's transformed rejection with squeeze (PTRS, 1993) above. A rate
/// that is not positive (NaN included) gives 0 and draws nothing.
pub fn sample_poisson<R: Rng>(rng: &mut R, rate: f64) -> u64 {
    if rate.is_nan() || rate <= 0.0 {
        return 0;
    }
    if rate < 10.0 {
        let u: f64 = rng.random();
        return search_from_zero(u, rate);
    }
    sample_large_rate(rng, rate)
}

/// Hörmann's PTRS for `rate ≥ 10`.
#[inline(always)]
fn sample_large_rate<R: Rng>(rng: &mut R, rate: f64) -> u64 {
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
    search_with(u, rate, exp_neg(rate))
}

/// [`search_from_zero`] given `p0 = e^{−rate}`.
#[inline]
fn search_with(u: f64, rate: f64, p0: f64) -> u64 {
    if rate < 2.0 {
        search_in_blocks::<4>(u, rate, p0, &BLOCK4)
    } else {
        search_in_blocks::<8>(u, rate, p0, &BLOCK8)
    }
}

/// [`search_from_zero`] `B` terms at a time: `P(k0 + j) = P(k0) · rate^j ·
/// k0!/(k0 + j)!` from powers and a table, the partial sums compared with
/// `u` at once and the comparisons counted. A block costs one well-predicted branch instead of
/// one mispredicted branch per term; four-term blocks suit rates below 2
/// (one block covers 86 % of draws at rate 2), eight-term blocks the rest.
#[inline]
fn search_in_blocks<const B: usize>(u: f64, rate: f64, p0: f64, table: &[[f64; 9]]) -> u64 {
    let mut powers = [1.0; 9];
    for j in 1..=B {
        powers[j] = powers[j - 1] * rate;
    }
    let mut p = p0; // P(k0)
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

/// `e^{−x}` for `x` in `[0, EXP_NEG_MAX]` (clamped there; NaN counts as
/// 0), within 2 ulp of libm: `x = k·ln 2 + r`,
/// `|r| ≤ ln 2 / 2`, Taylor terms to `r¹³` by Horner's rule, and `2^k`
/// through the exponent bits. Branch-free, so a loop over it runs in SIMD
/// lanes; the Horner steps are fused multiply-adds (`mul_add`, exactly
/// rounded everywhere), so every machine gives the same bits.
#[inline(always)]
fn exp_neg(x: f64) -> f64 {
    // round-to-nearest by adding 1.5·2⁵²: k sits in the low bits of `t`
    const ROUND: f64 = 6_755_399_441_055_744.0;
    // ln 2 = LN2_HI + LN2_LO, with k·LN2_HI exact for |k| < 2¹¹
    const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
    const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
    // not `clamp`, which keeps a NaN
    #[allow(clippy::manual_clamp)]
    let x = -x.max(0.0).min(EXP_NEG_MAX);
    let t = x * std::f64::consts::LOG2_E + ROUND;
    let k = t - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = EXP_TAYLOR[13];
    for j in (0..13).rev() {
        p = p.mul_add(r, EXP_TAYLOR[j]);
    }
    let two_k = f64::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(1023) << 52);
    p * two_k
}

/// Where [`exp_neg`] clamps its argument: its callers need `e^{−rate}`
/// only below rate 10.
const EXP_NEG_MAX: f64 = 16.0;

/// `1/j!` for `j = 0..=13`.
const EXP_TAYLOR: [f64; 14] = {
    let mut c = [1.0; 14];
    let mut j = 1;
    while j < 14 {
        c[j] = c[j - 1] / j as f64;
        j += 1;
    }
    c
};

/// The first block (`k0 = 0`) of [`search_in_blocks`]: the same operations
/// in the same order, so the same count, without a branch; [`UNSET`] when
/// `u` lies beyond the block.
#[inline(always)]
fn first_block<const B: usize>(u: f64, rate: f64, p0: f64, t: &[f64; 9]) -> u64 {
    let mut power = 1.0;
    let mut sum = 0.0;
    let mut passed = 0;
    for (j, &t) in t.iter().enumerate().take(B) {
        sum += p0 * power * t;
        if j + 1 < B {
            passed += (u > sum) as u64;
        }
        power *= rate;
    }
    if u <= sum { passed } else { UNSET }
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
    use rand::RngCore;

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
    fn amplitudes_are_the_formula_bit_for_bit() {
        // counts from zero to beyond 2^53 (where float64 rounds them), in
        // both the vectorised loop and its tail
        let mut counts: Vec<u64> = (0..4099u64).map(|i| i * i * 7919 % 100_003).collect();
        counts.extend([1u64 << 40, (1 << 53) + 1, u64::MAX, 3]);
        let scale = 17.3;
        let mut out = vec![0f32; counts.len()];
        amplitudes(&counts, scale, &mut out);
        for (&c, &x) in counts.iter().zip(&out) {
            assert_eq!(x, ((c as f64).sqrt() / scale) as f32, "{c}");
        }
        // and through the public function: every amplitude is sqrt(k)/s of an integer k
        let clean: Vec<f32> = (0..4096)
            .map(|i| (i as f32 * 0.011).sin().powi(2) * (i % 97) as f32)
            .collect();
        let mut noisy = clean.clone();
        noisy_amplitude_from_intensity(&mut noisy, 1024, scale, 3, 0);
        for x in &noisy {
            let k = ((scale * *x as f64).powi(2)).round();
            assert_eq!(*x, (k.sqrt() / scale) as f32);
        }
    }

    /// A pattern with every kind of pixel: zero rate (no draw), the fast
    /// first block (< 2), the eight-term block (2..10), beyond both, and
    /// the rejection sampler (≥ 10), in an order that mixes them.
    fn mixed_pattern(len: usize) -> Vec<f32> {
        (0..len)
            .map(|i| match i % 11 {
                0 => 0.0,
                1..=4 => (i as f32 * 0.013).sin().abs() * 2.0,
                5 | 6 => 2.0 + (i as f32 * 0.07).cos().abs() * 8.0,
                7 => 1.999_999,
                8 => 9.999_999,
                _ => 10.0 + (i % 1000) as f32 * 3.7,
            })
            .collect()
    }

    #[test]
    fn the_pattern_sampler_draws_what_pixel_by_pixel_sampling_draws() {
        let pattern = mixed_pattern(8192);
        for s2 in [0.05, 1.0, 3.0] {
            let mut rng = pattern_rng(21, 4);
            let mut sampler = PatternSampler::default();
            let counts = sampler.sample(&mut rng, &pattern, s2).to_vec();
            let mut rng = pattern_rng(21, 4);
            let expected: Vec<u64> = pattern
                .iter()
                .map(|&v| sample_poisson(&mut rng, s2 * v as f64))
                .collect();
            assert_eq!(counts, expected, "s² = {s2}");
            // both streams are at the same place afterwards
            let mut rng_again = pattern_rng(21, 4);
            sampler.sample(&mut rng_again, &pattern, s2);
            assert_eq!(rng_again.next_u64(), rng.next_u64());
            // the portable passes give the same bits as the dispatched ones
            let mut rng = pattern_rng(21, 4);
            let mut plain = PatternSampler::default();
            plain.sample_passes(&mut rng, &pattern, s2);
            assert_eq!(plain.counts, counts);
        }
    }

    #[test]
    fn exp_neg_is_within_two_ulp_of_libm_and_clamps() {
        let mut rng = pattern_rng(1, 2);
        let mut worst = 0.0f64;
        for i in 0..200_000 {
            let x: f64 = if i < 1000 {
                i as f64 * 0.016
            } else {
                rng.random::<f64>() * EXP_NEG_MAX
            };
            let exact = (-x).exp();
            let ulp = f64::EPSILON * exact;
            worst = worst.max((exp_neg(x) - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_neg(0.0), 1.0);
        assert_eq!(exp_neg(-3.0), 1.0);
        assert_eq!(exp_neg(1e6), exp_neg(EXP_NEG_MAX));
        assert_eq!(exp_neg(f64::NAN), 1.0);
    }

    #[test]
    fn the_first_block_is_the_block_search_or_unset() {
        let mut rng = pattern_rng(8, 8);
        let mut unset = [0; 2];
        for _ in 0..100_000 {
            let u: f64 = rng.random();
            let small = rng.random::<f64>() * 2.0;
            let large = 2.0 + rng.random::<f64>() * 8.0;
            for (b, (rate, got)) in [
                (small, first_block::<4>(u, small, exp_neg(small), &BLOCK4[0])),
                (large, first_block::<8>(u, large, exp_neg(large), &BLOCK8[0])),
            ]
            .into_iter()
            .enumerate()
            {
                let full = search_with(u, rate, exp_neg(rate));
                if got == UNSET {
                    unset[b] += 1;
                    assert!(full >= [4, 8][b], "rate {rate}, u {u}: unset but the count is {full}");
                } else {
                    assert_eq!(got, full, "rate {rate}, u {u}");
                }
            }
        }
        // both outcomes occur
        assert!(unset[0] > 0 && unset[1] > 0, "{unset:?}");
    }
}
