//! Half-set FRC: against numpy/scipy (tests/fixtures/frc_halves/
//! make_frc_halves.py), analytic cases (identical halves, independent
//! noise, a band-limited object in noise), registration of a shifted,
//! phase-ramped half, interleaved halves of a simulated scan, and the CLI.
mod common;

use std::f64::consts::PI;

use common::{TestResult, ptycho};
use ndarray::Array2;
use num_complex::{Complex32, Complex64};
use ptycho_workbench::data::npy::{self, NpyData};
use ptycho_workbench::metrics::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

fn fixture() -> std::path::PathBuf {
    common::fixture("frc_halves/frc_halves.npz")
}

fn member(key: &str) -> npy::NpyArray {
    common::npz_member(&fixture(), key)
}

fn c64(key: &str) -> Array2<Complex64> {
    let a = member(key);
    Array2::from_shape_vec((a.shape[0], a.shape[1]), common::complex(&a))
        .expect("2-D")
        .mapv(|v| Complex64::new(v.re as f64, v.im as f64))
}

fn counts(key: &str) -> Vec<usize> {
    common::f64s(&member(key)).iter().map(|&v| v as usize).collect()
}

fn scalar(key: &str) -> f64 {
    common::f64s(&member(key))[0]
}

/// Largest |got − want| over rings, NaN only where both are.
fn max_abs_diff(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "ring counts");
    got.iter().zip(want).fold(0.0, |m, (g, w)| {
        if g.is_nan() && w.is_nan() {
            m
        } else {
            assert!(g.is_finite() && w.is_finite(), "got {g}, want {w}");
            m.max((g - w).abs())
        }
    })
}

#[test]
fn frc_and_half_bit_match_numpy() -> TestResult {
    let (a, b) = (c64("a"), c64("b"));
    let plain = frc_complex(a.view(), b.view())?;
    let e = max_abs_diff(&plain.frc, &common::f64s(&member("frc_plain")));
    assert!(e < 1e-5, "plain FRC differs from numpy by {e:e}");
    assert_eq!(plain.n_pixels, counts("n_pixels_plain"));
    let e = max_abs_diff(&plain.half_bit(), &common::f64s(&member("half_bit_plain")));
    assert!(e < 1e-12, "half-bit threshold differs by {e:e}");

    let m = member("mask");
    let mask = match m.data {
        NpyData::Bool(v) => Array2::from_shape_vec((m.shape[0], m.shape[1]), v)?,
        other => panic!("mask is {}", other.dtype_name()),
    };
    let taper = scalar("taper_px");
    let w = edge_taper(mask.view(), taper);
    let e = max_abs_diff(w.as_slice().expect("contiguous"), &common::f64s(&member("window")));
    assert!(e < 1e-12, "window differs from scipy's distance transform by {e:e}");

    let curve = apodised_frc(a.view(), b.view(), mask.view(), taper)?;
    assert!(curve.frc[0].is_nan());
    let e = max_abs_diff(&curve.frc, &common::f64s(&member("frc_apodised")));
    assert!(e < 1e-5, "apodised FRC differs from numpy by {e:e}");
    assert_eq!(curve.n_pixels, counts("n_pixels_apodised"));
    let hb = curve.half_bit();
    let got = curve.crossing_of(&hb, 1).expect("crosses");
    assert!(
        (got - scalar("crossing_half_bit")).abs() < 1e-5,
        "half-bit crossing {got}"
    );
    let got = curve.crossing_of(&vec![FRC_ONE_SEVENTH; hb.len()], 1).expect("crosses");
    assert!(
        (got - scalar("crossing_one_seventh")).abs() < 1e-5,
        "1/7 crossing {got}"
    );
    Ok(())
}

fn rng(seed: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(seed)
}

fn normal(r: &mut ChaCha8Rng) -> f64 {
    StandardNormal.sample(r)
}

/// `σ·(N(0,1) + i·N(0,1))` per pixel.
fn noise(shape: (usize, usize), sigma: f64, seed: u64) -> Array2<Complex64> {
    let mut r = rng(seed);
    Array2::from_shape_fn(shape, |_| Complex64::new(normal(&mut r), normal(&mut r)) * sigma)
}

/// A band-limited complex field, unit RMS: random complex amplitudes on
/// every whole-cycle frequency `(u/H, v/W)` with radius `|k| < band` cycles/px
/// (so it is periodic on the grid and a Fourier shift moves it exactly).
fn band_limited(shape: (usize, usize), band: f64, seed: u64) -> Array2<Complex64> {
    let (h, w) = shape;
    let mut r = rng(seed);
    let freq = |k: usize, n: usize| if k <= n / 2 { k as f64 } else { k as f64 - n as f64 } / n as f64;
    let mut waves = Vec::new();
    for u in 0..h {
        for v in 0..w {
            let (ky, kx) = (freq(u, h), freq(v, w));
            if ky.hypot(kx) < band && (u, v) != (0, 0) {
                waves.push((ky, kx, Complex64::new(normal(&mut r), normal(&mut r))));
            }
        }
    }
    let mut out = Array2::from_shape_fn(shape, |(y, x)| {
        waves
            .iter()
            .map(|&(ky, kx, c)| c * Complex64::from_polar(1.0, 2.0 * PI * (ky * y as f64 + kx * x as f64)))
            .sum::<Complex64>()
    });
    let rms = (out.iter().map(|v| v.norm_sqr()).sum::<f64>() / out.len() as f64).sqrt();
    out.mapv_inplace(|v| v / rms);
    out
}

fn to_c32(a: &Array2<Complex64>) -> Array2<Complex32> {
    a.mapv(|v| Complex32::new(v.re as f32, v.im as f32))
}

/// A coverage plateau: 0 within `edge` px of the border, rising linearly
/// over `ramp` px to 1, sampled at `(y − dy, x − dx)`.
fn coverage(shape: (usize, usize), edge: f64, ramp: f64, shift: [f64; 2]) -> Array2<f32> {
    let (h, w) = shape;
    let f =
        |t: f64, n: usize| ((t - edge) / ramp).clamp(0.0, 1.0) * (((n - 1) as f64 - edge - t) / ramp).clamp(0.0, 1.0);
    Array2::from_shape_fn(shape, |(y, x)| {
        (f(y as f64 - shift[0], h) * f(x as f64 - shift[1], w)) as f32
    })
}

#[test]
fn identical_halves_never_cross() -> TestResult {
    let shape = (80, 72);
    let o = band_limited(shape, 0.3, 1).mapv(|v| Complex64::new(1.0, 0.0) + v * 0.3) + noise(shape, 0.1, 2);
    let o = to_c32(&o);
    let cov = coverage(shape, 6.0, 8.0, [0.0, 0.0]);
    let r = half_set_frc(
        o.view(),
        Some(cov.view()),
        o.view(),
        Some(cov.view()),
        &HalfSetConfig::default(),
    )?;
    let rings = &r.curve.frc[1..];
    assert!(rings.iter().all(|&v| v > 1.0 - 1e-6), "FRC {rings:?}");
    for res in [&r.half_bit_resolution, &r.one_seventh] {
        assert!(!res.crossed, "{res}");
        assert_eq!(res.crossing_ring, None);
        assert_eq!(res.resolution_px, 2.0);
        assert_eq!(res.frequency_cycles_per_px, 0.5);
    }
    let s = r.alignment.shift_px.expect("registered");
    assert!(s[0].abs() < 1e-9 && s[1].abs() < 1e-9, "shift {s:?}");
    Ok(())
}

#[test]
fn independent_noise_crosses_at_the_first_rings() -> TestResult {
    // a shared mean of 1 (removed before the FFT) and independent noise;
    // unregistered: a registration of independent noise finds a random shift
    let shape = (96, 96);
    let one = Complex64::new(1.0, 0.0);
    let a = to_c32(&noise(shape, 0.3, 3).mapv(|v| v + one));
    let b = to_c32(&noise(shape, 0.3, 4).mapv(|v| v + one));
    let cfg = HalfSetConfig {
        upsample_factor: None,
        ..HalfSetConfig::default()
    };
    let r = half_set_frc(a.view(), None, b.view(), None, &cfg)?;
    let high: Vec<f64> = r.curve.frc[10..].to_vec();
    let mean = high.iter().sum::<f64>() / high.len() as f64;
    assert!(mean < 0.1, "mean FRC beyond ring 10: {mean}");
    let hb = r.half_bit_resolution.crossing_ring.expect("crosses");
    assert!(hb <= 2.0, "half-bit crossing at ring {hb}");
    let s7 = r.one_seventh.crossing_ring.expect("crosses");
    assert!(s7 <= 8.0, "1/7 crossing at ring {s7}");
    assert!(r.half_bit_resolution.resolution_px >= 96.0 / 2.0);
    Ok(())
}

/// Two halves of one band-limited object (every whole-cycle frequency below
/// `band` cycles/px, SNR 10 per frequency in each half) with independent
/// white noise of standard deviation `noise_scale` times the one giving
/// that SNR.
fn band_limited_pair_snr(shape: (usize, usize), band: f64, noise_scale: f64) -> (Array2<Complex64>, Array2<Complex64>) {
    let s = band_limited(shape, band, 5);
    // the signal's unit power is spread over the band's share πk_c² of the
    // spectrum, the noise's 2σ² over all of it: SNR per frequency = 1/(2σ²·πk_c²)
    let sigma = noise_scale * (1.0 / (2.0 * SNR * PI * band * band)).sqrt();
    let one = Complex64::new(1.0, 0.0);
    let a = s.mapv(|v| one + v) + noise(shape, sigma, 6);
    let b = s.mapv(|v| one + v) + noise(shape, sigma, 7);
    (a, b)
}

const SNR: f64 = 10.0;

fn band_limited_pair(shape: (usize, usize), band: f64) -> (Array2<Complex64>, Array2<Complex64>) {
    band_limited_pair_snr(shape, band, 1.0)
}

/// The expected FRC of [`band_limited_pair`] on an `n × n` FFT, without a
/// window: in ring `r`, with `f_r` the share of its frequencies inside the
/// band, cross-power `f_r·S` over power `f_r·S + N` per frequency, so
/// `FRC(r) = f_r·SNR / (f_r·SNR + 1)`.
fn expected_band_limited_frc(n: usize, band: f64) -> FrcCurve {
    let rings = n / 2 + 1;
    let (mut inside, mut total) = (vec![0usize; rings], vec![0usize; rings]);
    let off = |k: usize| k as f64 - (n / 2) as f64;
    for i in 0..n {
        for j in 0..n {
            let rad = off(i).hypot(off(j));
            let r = rad.round() as usize;
            if r < rings {
                total[r] += 1;
                if rad < band * n as f64 {
                    inside[r] += 1;
                }
            }
        }
    }
    let frc = (0..rings)
        .map(|r| {
            let f = inside[r] as f64 / total[r] as f64;
            f * SNR / (f * SNR + 1.0)
        })
        .collect();
    FrcCurve {
        ring: (0..rings).map(|r| r as f64).collect(),
        cycles_per_px: (0..rings).map(|r| r as f64 / n as f64).collect(),
        frc,
        size_px: n,
        n_pixels: total,
    }
}

#[test]
fn band_limited_object_in_noise_crosses_at_the_band_limit() -> TestResult {
    let shape = (96, 96);
    let band = 0.2;
    let (a, b) = band_limited_pair(shape, band);
    let r = half_set_frc(
        to_c32(&a).view(),
        None,
        to_c32(&b).view(),
        None,
        &HalfSetConfig::default(),
    )?;
    let expected = expected_band_limited_frc(r.curve.size_px, band);
    let want_hb = expected.crossing_of(&expected.half_bit(), 1).expect("crosses");
    let want_s7 = expected.crossing_of(&[FRC_ONE_SEVENTH; 49], 1).expect("crosses");
    // both just past ring 19 (the band edge, 0.2 × 96 = 19.2)
    assert!((19.0..20.0).contains(&want_hb) && (19.0..20.0).contains(&want_s7));
    for (res, want) in [(&r.half_bit_resolution, want_hb), (&r.one_seventh, want_s7)] {
        let got = res.crossing_ring.expect("crosses");
        assert!((got - want).abs() <= 2.0, "{res}: ring {got}, expected ring {want}");
    }
    // below the band the FRC is about SNR/(1 + SNR)
    let inside = &r.curve.frc[3..16];
    let mean = inside.iter().sum::<f64>() / inside.len() as f64;
    assert!((mean - SNR / (SNR + 1.0)).abs() < 0.05, "FRC in the band {mean}");
    Ok(())
}

#[test]
fn a_shifted_phase_ramped_half_gives_the_same_frc() -> TestResult {
    let shape = (104, 112);
    let (a, b) = band_limited_pair(shape, 0.2);
    let cov = coverage(shape, 8.0, 10.0, [0.0, 0.0]);
    let cfg = HalfSetConfig::default();
    let base = half_set_frc(
        to_c32(&a).view(),
        Some(cov.view()),
        to_c32(&b).view(),
        Some(cov.view()),
        &cfg,
    )?;

    // b moved by (2.3, −1.7) px (its coverage with it), times e^{i(0.7 + 0.05·y − 0.03·x)}
    let d = [2.3, -1.7];
    let (ramp_y, ramp_x, offset) = (0.05, -0.03, 0.7);
    let moved = fourier_shift(to_c32(&b).view(), d);
    let moved = Array2::from_shape_fn(shape, |(y, x)| {
        let v = moved[[y, x]];
        let p = Complex32::from_polar(1.0, (offset + ramp_y * y as f64 + ramp_x * x as f64) as f32);
        v * p
    });
    let cov_moved = coverage(shape, 8.0, 10.0, d);
    let r = half_set_frc(
        to_c32(&a).view(),
        Some(cov.view()),
        moved.view(),
        Some(cov_moved.view()),
        &cfg,
    )?;

    // noise-limited: SNR 10 per frequency in the band, noise alone beyond it
    let s = r.alignment.shift_px.expect("registered");
    assert!((s[0] + d[0]).abs() < 0.1 && (s[1] + d[1]).abs() < 0.1, "shift {s:?}");
    let g = r.alignment.phase_ramp_rad_per_px.expect("ramp removed");
    // b's ramp is removed: the pipeline multiplies by e^{−i·ramp}
    assert!(
        (g[0] + ramp_y).abs() < 2e-3 && (g[1] + ramp_x).abs() < 2e-3,
        "ramp {g:?}"
    );
    let e = max_abs_diff(&r.curve.frc, &base.curve.frc);
    assert!(e < 0.05, "FRC differs from the unshifted pair's by {e}");
    for (got, want) in [
        (&r.half_bit_resolution, &base.half_bit_resolution),
        (&r.one_seventh, &base.one_seventh),
    ] {
        let (g, w) = (got.resolution_px, want.resolution_px);
        assert!((g - w).abs() / w < 0.05, "{got} vs {want}");
    }
    // without the phase removal the ramp decorrelates the halves
    let raw = half_set_frc(
        to_c32(&a).view(),
        Some(cov.view()),
        moved.view(),
        Some(cov_moved.view()),
        &HalfSetConfig {
            remove_phase_ramp: false,
            ..cfg
        },
    )?;
    assert!(
        raw.half_bit_resolution.resolution_px > 1.5 * base.half_bit_resolution.resolution_px,
        "{} vs {}",
        raw.half_bit_resolution,
        base.half_bit_resolution
    );
    Ok(())
}

#[test]
fn pixel_size_gives_nanometres() -> TestResult {
    let shape = (64, 64);
    let (a, b) = band_limited_pair(shape, 0.2);
    let cfg = HalfSetConfig {
        pixel_size_m: Some(10e-9),
        ..HalfSetConfig::default()
    };
    let r = half_set_frc(to_c32(&a).view(), None, to_c32(&b).view(), None, &cfg)?;
    let res = &r.half_bit_resolution;
    assert!((res.resolution_nm.expect("nm") - 10.0 * res.resolution_px).abs() < 1e-9);
    assert!((res.frequency_per_nm.expect("nm⁻¹") - res.frequency_cycles_per_px / 10.0).abs() < 1e-12);
    Ok(())
}

#[test]
fn interleaved_halves_are_disjoint_and_cover_the_scan() -> TestResult {
    common::init();
    let ds = ptycho_workbench::simulate::simulate_on(&common::small_config(), tch::Device::Cpu)?;
    let n = ds.n_images();
    assert!(n >= 8, "{n} patterns");
    let (even, odd) = ptycho_workbench::recon::interleaved_halves(&ds);
    assert_eq!(even.n_images(), n.div_ceil(2));
    assert_eq!(odd.n_images(), n / 2);
    // pattern i is pattern i/2 of half i%2: disjoint, and together every pattern once
    for i in 0..n {
        let half = if i % 2 == 0 { &even } else { &odd };
        let j = i / 2;
        assert_eq!(half.positions_px.row(j), ds.positions_px.row(i), "position {i}");
        assert_eq!(
            half.diffraction.index_axis(ndarray::Axis(0), j),
            ds.diffraction.index_axis(ndarray::Axis(0), i),
            "pattern {i}"
        );
    }
    // both halves span the same field of view (to within one scan step)
    let span = |d: &ptycho_workbench::data::Dataset, col: usize| {
        let c = d.positions_px.column(col);
        (
            c.fold(f64::INFINITY, |m, &v| m.min(v)),
            c.fold(f64::NEG_INFINITY, |m, &v| m.max(v)),
        )
    };
    for col in 0..2 {
        let (all, e, o) = (span(&ds, col), span(&even, col), span(&odd, col));
        for (lo, hi) in [e, o] {
            assert!(
                (lo - all.0).abs() <= 6.5 && (hi - all.1).abs() <= 6.5,
                "{col}: {lo}..{hi} vs {all:?}"
            );
        }
    }
    for (h, parity) in [(&even, "even"), (&odd, "odd")] {
        let note = h.metadata.data_transformations.last().expect("a note");
        assert!(note.contains(parity), "{note}");
    }
    Ok(())
}

fn write_recon(path: &std::path::Path, object: &Array2<Complex32>, coverage: &Array2<f32>) -> TestResult {
    let o = object.as_standard_layout();
    let c = coverage.as_standard_layout();
    let members = [
        ("object", npy::encode(o.shape(), o.as_slice().expect("contiguous"))),
        ("coverage", npy::encode(c.shape(), c.as_slice().expect("contiguous"))),
    ];
    let cur = npy::write_npz(std::io::Cursor::new(Vec::new()), &members)?;
    std::fs::write(path, cur.into_inner())?;
    Ok(())
}

#[test]
fn cli_frc_writes_the_curve_table_and_figure() -> TestResult {
    let dir = tempfile::tempdir()?;
    let shape = (80, 80);
    let (a, b) = band_limited_pair(shape, 0.2);
    let cov = coverage(shape, 6.0, 8.0, [0.0, 0.0]);
    let (pa, pb) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
    write_recon(&pa, &to_c32(&a), &cov)?;
    write_recon(&pb, &to_c32(&b), &cov)?;
    let out = dir.path().join("frc");
    let run = ptycho(&[
        "frc",
        pa.to_str().unwrap(),
        pb.to_str().unwrap(),
        "--pixel-size-m",
        "2e-8",
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let record: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    let px = record["half_bit"]["resolution_px"].as_f64().expect("resolution_px");
    let nm = record["half_bit"]["resolution_nm"].as_f64().expect("resolution_nm");
    assert!((nm - 20.0 * px).abs() < 1e-6);
    assert_eq!(record["half_bit"]["crossed"], true);
    assert!(record["one_seventh"]["resolution_px"].as_f64().is_some());
    let csv = std::fs::read_to_string(out.join("frc_halves.csv"))?;
    let header = csv.lines().next().expect("header");
    assert_eq!(
        header,
        "ring,frequency_cycles_per_px,frc,half_bit_threshold,n_pixels,frequency_per_nm"
    );
    let fft = record["alignment"]["fft_size_px"].as_u64().expect("fft size") as usize;
    assert_eq!(csv.lines().count(), 1 + fft / 2 + 1);
    assert!(std::fs::metadata(out.join("frc_halves.png"))?.len() > 1000);
    assert!(out.join("frc_halves.json").exists());

    // the table form prints both thresholds
    let run = ptycho(&["frc", pa.to_str().unwrap(), pb.to_str().unwrap()]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let text = String::from_utf8_lossy(&run.stdout);
    assert!(text.contains("half-bit") && text.contains("1/7"), "{text}");
    Ok(())
}

/// Halves reconstructed separately get canvases a few pixels apart (each
/// reaches its own outermost position) from one origin: the FRC uses their
/// common top-left extent, so padding one half changes nothing; canvases
/// far apart are refused.
#[test]
fn halves_on_canvases_a_few_pixels_apart_share_their_common_extent() -> TestResult {
    let dir = tempfile::tempdir()?;
    let shape = (80, 80);
    let (a, b) = band_limited_pair(shape, 0.2);
    let cov = coverage(shape, 6.0, 8.0, [0.0, 0.0]);
    let (pa, pb, pwide, pfar) = (
        dir.path().join("a.npz"),
        dir.path().join("b.npz"),
        dir.path().join("b_wide.npz"),
        dir.path().join("b_far.npz"),
    );
    write_recon(&pa, &to_c32(&a), &cov)?;
    write_recon(&pb, &to_c32(&b), &cov)?;
    let pad = |rows: usize, cols: usize| {
        let junk = noise((shape.0 + rows, shape.1 + cols), 5.0, 9);
        let mut o = to_c32(&junk);
        o.slice_mut(ndarray::s![..shape.0, ..shape.1]).assign(&to_c32(&b));
        let mut c = Array2::<f32>::from_elem(o.dim(), 1.0);
        c.slice_mut(ndarray::s![..shape.0, ..shape.1]).assign(&cov);
        (o, c)
    };
    let (wide, wide_cov) = pad(2, 3);
    write_recon(&pwide, &wide, &wide_cov)?;
    let (far, far_cov) = pad(100, 0);
    write_recon(&pfar, &far, &far_cov)?;
    let frc = |b: &std::path::Path| ptycho(&["frc", pa.to_str().unwrap(), b.to_str().unwrap(), "--json"]);
    let (same, padded) = (frc(&pb), frc(&pwide));
    assert!(same.status.success(), "{}", String::from_utf8_lossy(&same.stderr));
    assert!(padded.status.success(), "{}", String::from_utf8_lossy(&padded.stderr));
    let same: serde_json::Value = serde_json::from_slice(&same.stdout)?;
    let padded: serde_json::Value = serde_json::from_slice(&padded.stdout)?;
    assert_eq!(same["half_bit"], padded["half_bit"]);
    assert_eq!(same["one_seventh"], padded["one_seventh"]);
    let refused = frc(&pfar);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("share a canvas"), "{err}");
    Ok(())
}

#[test]
fn cli_compare_against_a_reference_reconstruction() -> TestResult {
    let dir = tempfile::tempdir()?;
    let shape = (80, 80);
    // a reference from another tool at a good SNR (the registration of
    // `ptycho compare` is phase correlation on the amplitudes)
    let (a, b) = band_limited_pair_snr(shape, 0.2, 0.05);
    let one = Complex64::new(1.0, 0.0);
    let (a, b) = (a.mapv(|v| one + (v - one) * 0.3), b.mapv(|v| one + (v - one) * 0.3));
    let cov = coverage(shape, 6.0, 8.0, [0.0, 0.0]);
    let (pref, prec) = (dir.path().join("ref.npz"), dir.path().join("rec.npz"));
    write_recon(&pref, &to_c32(&a), &cov)?;
    // the reconstruction: b moved by (1.4, −0.6) px with a global phase
    let moved = fourier_shift(to_c32(&b).view(), [1.4, -0.6]).mapv(|v| v * Complex32::from_polar(1.0, 2.0));
    write_recon(&prec, &moved, &coverage(shape, 6.0, 8.0, [1.4, -0.6]))?;
    let out = dir.path().join("cmp");
    let run = ptycho(&[
        "compare",
        "--reference",
        pref.to_str().unwrap(),
        "--recon",
        prec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let records: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    let rec = &records[0];
    let shift = &rec["alignment"]["shift_px"];
    let (dy, dx) = (shift[0].as_f64().unwrap(), shift[1].as_f64().unwrap());
    assert!((dy + 1.4).abs() < 0.05 && (dx - 0.6).abs() < 0.05, "shift ({dy}, {dx})");
    assert!(rec["alignment"]["scored_pixels"].as_u64().unwrap() > 1000);
    assert!(rec["phase"]["ssim"].as_f64().unwrap() > 0.5, "{}", rec["phase"]);
    assert!(out.join("metrics.csv").exists() && out.join("comparison.png").exists());
    // --truth and --reference exclude each other
    let run = ptycho(&[
        "compare",
        "--truth",
        pref.to_str().unwrap(),
        "--reference",
        pref.to_str().unwrap(),
        "--recon",
        prec.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(!run.status.success());
    Ok(())
}

#[test]
fn a_far_registration_peak_is_an_error_not_a_shift() -> TestResult {
    let shape = (96, 96);
    let (a, b) = band_limited_pair(shape, 0.2);
    let far = fourier_shift(to_c32(&b).view(), [12.0, 0.0]);
    let cfg = HalfSetConfig::default();
    let err = half_set_frc(to_c32(&a).view(), None, far.view(), None, &cfg).unwrap_err();
    assert!(err.to_string().contains("max_shift_px"), "{err}");
    let cfg = HalfSetConfig {
        max_shift_px: None,
        ..cfg
    };
    let r = half_set_frc(to_c32(&a).view(), None, far.view(), None, &cfg)?;
    let s = r.alignment.shift_px.expect("registered");
    assert!((s[0] + 12.0).abs() < 0.05 && s[1].abs() < 0.05, "shift {s:?}");
    Ok(())
}
