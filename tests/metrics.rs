//! Metrics against independent references (scikit-image, scipy, numpy; see
//! tests/fixtures/metrics/make_metrics_fixtures.py) and analytic cases.
mod common;

use std::path::PathBuf;

use common::TestResult;
use ndarray::Array2;
use num_complex::Complex32;
use ptycho_workbench::Error;
use ptycho_workbench::metrics::*;
use serde_json::Value;

fn dir() -> PathBuf {
    common::fixture("metrics")
}

fn expected() -> Value {
    common::read_json(&dir().join("expected.json"))
}

fn real(key: &str) -> Array2<f64> {
    let a = common::npz_member(&dir().join("images.npz"), key);
    Array2::from_shape_vec((a.shape[0], a.shape[1]), common::f64s(&a)).expect("2-D")
}

fn cplx(key: &str) -> Array2<Complex32> {
    let a = common::npz_member(&dir().join("images.npz"), key);
    Array2::from_shape_vec((a.shape[0], a.shape[1]), common::complex(&a)).expect("2-D")
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("expected a number, got {v}"))
}

fn opt(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn nums(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(num).collect()
}

/// Relative error, with an absolute floor of 1 for values near 0.
fn rel(got: f64, want: f64) -> f64 {
    (got - want).abs() / want.abs().max(1.0)
}

fn assert_close(what: &str, got: f64, want: f64, tol: f64) -> f64 {
    let e = rel(got, want);
    assert!(e <= tol, "{what}: got {got}, want {want} (error {e:e} > {tol:e})");
    e
}

fn assert_opt(what: &str, got: Option<f64>, want: Option<f64>, tol: f64) -> f64 {
    match (got, want) {
        (None, None) => 0.0,
        (Some(g), Some(w)) => assert_close(what, g, w, tol),
        _ => panic!("{what}: got {got:?}, want {want:?}"),
    }
}

fn max_abs(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

const CASES: [&str; 3] = ["random64", "struct48x80", "smooth180x200"];

#[test]
fn pixel_errors_ssim_and_ms_ssim_match_scikit_image() -> TestResult {
    let exp = expected();
    let mut worst = 0.0f64;
    for case in CASES {
        let e = &exp[case];
        let (t, p) = (real(&format!("{case}_truth")), real(&format!("{case}_pred")));
        let (t, p) = (t.view(), p.view());
        let r = num(&e["data_range"]);
        worst = worst.max(assert_close(&format!("{case} mae"), mae(t, p)?, num(&e["mae"]), 1e-10));
        worst = worst.max(assert_close(&format!("{case} mse"), mse(t, p)?, num(&e["mse"]), 1e-10));
        worst = worst.max(assert_close(
            &format!("{case} psnr"),
            psnr(t, p, r)?,
            num(&e["psnr"]),
            1e-10,
        ));
        worst = worst.max(assert_close(
            &format!("{case} ssim"),
            ssim(t, p, r)?,
            num(&e["ssim"]),
            1e-10,
        ));
        let s1 = ssim(t, p, 1.0)?;
        worst = worst.max(assert_close(
            &format!("{case} ssim R=1"),
            s1,
            num(&e["ssim_range_1"]),
            1e-10,
        ));
        let levels = ms_ssim_levels(t, p, r)?;
        let want = nums(&e["ms_ssim_levels"]);
        assert_eq!(levels.len(), want.len(), "{case}: number of MS-SSIM levels");
        worst = worst.max(max_abs(&levels, &want));
        worst = worst.max(assert_close(
            &format!("{case} ms_ssim"),
            ms_ssim(t, p, r)?,
            num(&e["ms_ssim"]),
            1e-10,
        ));
    }
    println!("pixel errors / SSIM / MS-SSIM: worst relative error vs scikit-image {worst:e}");
    Ok(())
}

#[test]
fn frc_curves_and_crossings_match_numpy() -> TestResult {
    let exp = expected();
    let mut worst = 0.0f64;
    for case in CASES {
        let e = &exp[case];
        let (t, p) = (real(&format!("{case}_truth")), real(&format!("{case}_pred")));
        let curve = frc(t.view(), p.view())?;
        let want = nums(&e["frc"]);
        assert_eq!(curve.size_px as f64, num(&e["frc_size"]));
        let err = max_abs(&curve.frc, &want);
        assert!(err < 1e-10, "{case}: FRC curve differs by {err:e}");
        worst = worst.max(err);
        worst = worst.max(assert_opt(
            &format!("{case} frc50"),
            curve.crossing(0.5),
            opt(&e["frc50"]),
            1e-10,
        ));
        worst = worst.max(assert_opt(
            &format!("{case} frc1/7"),
            curve.crossing(1.0 / 7.0),
            opt(&e["frc_1_7"]),
            1e-10,
        ));
        assert_eq!(curve.ring.len(), curve.size_px / 2 + 1);
        assert_eq!(curve.cycles_per_px[1], 1.0 / curve.size_px as f64);

        let (m, c) = image_metrics(t.view(), p.view(), num(&e["data_range"]))?;
        assert_eq!(c, curve);
        assert_eq!(m.frc50, curve.crossing(FRC_HALF));
        assert_eq!(
            m.frc50_cycles_per_px,
            curve.crossing(FRC_HALF).map(|r| r / curve.size_px as f64)
        );
        assert_close("image_metrics ssim", m.ssim, num(&e["ssim"]), 1e-10);
        assert_close("image_metrics ms_ssim", m.ms_ssim, num(&e["ms_ssim"]), 1e-10);
        assert_close("image_metrics psnr", m.psnr, num(&e["psnr"]), 1e-10);
    }
    // the fixtures cover "never crosses" and "crosses" cases
    assert!(exp["random64"]["frc50"].is_null() && exp["struct48x80"]["frc_1_7"].is_number());
    println!("FRC: worst error vs numpy {worst:e}");
    Ok(())
}

#[test]
fn registration_matches_phase_cross_correlation() -> TestResult {
    let exp = expected();
    for case in ["reg64", "reg48x80"] {
        let e = &exp["registration"][case];
        let (r, m) = (real(&format!("{case}_ref")), real(&format!("{case}_moving")));
        let got = register_translation(r.view(), m.view(), 50)?;
        let want = nums(&e["skimage"]);
        let err = max_abs(&got, &want);
        assert!(err < 1e-9, "{case}: {got:?} vs skimage {want:?}");
        // registering undoes the applied shift (to the edge effects of a non-periodic image)
        let applied = nums(&e["applied"]);
        assert!((got[0] + applied[0]).abs() < 0.05 && (got[1] + applied[1]).abs() < 0.05);
        println!("{case}: shift {got:?}, skimage {want:?}, applied {applied:?}");
    }
    Ok(())
}

#[test]
fn fourier_shift_matches_scipy() -> TestResult {
    let shift = nums(&expected()["fshift"]);
    let got = fourier_shift(cplx("fshift_in").view(), [shift[0], shift[1]]);
    let want = cplx("fshift_out");
    let err = got
        .iter()
        .zip(want.iter())
        .fold(0.0f32, |m, (a, b)| m.max((a - b).norm()));
    assert!(err < 1e-5, "Fourier shift differs from scipy by {err:e}");
    println!("fourier_shift: max |difference| vs scipy {err:e}");
    // a whole-pixel shift is a roll: out(y, x) = in(y − 2, x + 1)
    let a = cplx("fshift_in");
    let rolled = fourier_shift(a.view(), [2.0, -1.0]);
    let (h, w) = a.dim();
    for ((y, x), v) in rolled.indexed_iter() {
        assert!((v - a[[(y + h - 2) % h, (x + 1) % w]]).norm() < 1e-5);
    }
    Ok(())
}

#[test]
fn plane_fit_matches_least_squares() -> TestResult {
    let coef = nums(&expected()["plane"]);
    let phase = real("plane_phase");
    let plane = fit_plane(phase.view())?;
    let got = [plane.slope_x_rad_per_px, plane.slope_y_rad_per_px, plane.offset_rad];
    assert!(max_abs(&got, &coef) < 1e-10, "{got:?} vs lstsq {coef:?}");
    let resid = plane.subtract_from(phase.view());
    let err = max_abs(resid.as_slice().unwrap(), real("plane_resid").as_slice().unwrap());
    assert!(err < 1e-10, "residual differs by {err:e}");
    Ok(())
}

#[test]
fn compare_objects_matches_the_numpy_pipeline() -> TestResult {
    let e = &expected()["compare"];
    let region: ScanRegion = serde_json::from_value(e["region"].clone())?;
    let cfg = AlignConfig::ptychopinn(Some(region));
    let c = compare_objects(&cplx("cmp_truth"), &cplx("cmp_pred"), &cfg)?;
    let a = &c.alignment;
    assert_eq!(a.region, region);
    let shift = a.shift_px.expect("registered");
    assert!(max_abs(&shift, &nums(&e["shift"])) < 1e-9, "shift {shift:?}");
    let shape = nums(&e["metric_shape"]);
    assert_eq!(a.metric_shape, [shape[0] as usize, shape[1] as usize]);
    assert_eq!(c.aligned_pred.dim(), (a.metric_shape[0], a.metric_shape[1]));
    assert_close("amplitude scale", a.amplitude_scale, num(&e["amplitude_scale"]), 1e-6);
    assert_close("amplitude range", a.amplitude_range, num(&e["amplitude_range"]), 1e-6);
    let planes = |p: Option<PhasePlane>| {
        let p = p.expect("plane");
        vec![p.slope_x_rad_per_px, p.slope_y_rad_per_px, p.offset_rad]
    };
    // the prediction carries a global phase of 2.6 rad that wraps part of it
    assert_close(
        "phase offset",
        a.phase_offset_rad.expect("offset"),
        num(&e["phase_offset"]),
        1e-5,
    );
    assert!(max_abs(&planes(a.phase_plane_truth), &nums(&e["plane_truth"])) < 1e-6);
    assert!(max_abs(&planes(a.phase_plane_pred), &nums(&e["plane_pred"])) < 1e-5);
    let mut worst = 0.0f64;
    for (name, m, curve, frc_key) in [
        ("amplitude", &c.amplitude, &c.frc_amplitude, "frc_amplitude"),
        ("phase", &c.phase, &c.frc_phase, "frc_phase"),
    ] {
        let w = &e[name];
        for (k, got) in [
            ("mae", m.mae),
            ("mse", m.mse),
            ("psnr", m.psnr),
            ("ssim", m.ssim),
            ("ms_ssim", m.ms_ssim),
        ] {
            worst = worst.max(assert_close(&format!("{name} {k}"), got, num(&w[k]), 1e-4));
        }
        worst = worst.max(assert_opt(&format!("{name} frc50"), m.frc50, opt(&w["frc50"]), 1e-4));
        worst = worst.max(assert_opt(
            &format!("{name} frc1/7"),
            m.frc_1_7,
            opt(&w["frc_1_7"]),
            1e-4,
        ));
        worst = worst.max(max_abs(&curve.frc, &nums(&e[frc_key])));
    }
    assert_eq!(c.phase.data_range, 1.0);
    println!("compare_objects: worst relative error vs the numpy pipeline {worst:e}");
    Ok(())
}

/// A smooth complex object with amplitude in [0.5, 1] and phase in ±1 rad.
fn object(h: usize, w: usize) -> Array2<Complex32> {
    Array2::from_shape_fn((h, w), |(y, x)| {
        let (y, x) = (y as f32, x as f32);
        let amp = 0.75 + 0.25 * (0.3 * x).sin() * (0.2 * y).cos();
        let ph = 0.6 * (0.17 * x + 0.11 * y).sin() + 0.3 * (0.4 * y).cos();
        Complex32::from_polar(amp, ph)
    })
}

#[test]
fn identical_images_are_perfect() -> TestResult {
    let t = real("struct48x80_truth");
    let (m, curve) = image_metrics(t.view(), t.view(), 1.0)?;
    assert_eq!(m.mse, 0.0);
    assert_eq!(m.mae, 0.0);
    assert_eq!(m.psnr, f64::INFINITY);
    assert!((m.ssim - 1.0).abs() < 1e-12 && (m.ms_ssim - 1.0).abs() < 1e-12);
    assert!(curve.frc.iter().all(|v| (v - 1.0).abs() < 1e-12), "{:?}", curve.frc);
    assert_eq!((m.frc50, m.frc_1_7), (None, None));
    // JSON: an infinite PSNR and unreached crossings become null
    let j = serde_json::to_value(m)?;
    assert!(j["psnr"].is_null() && j["frc50"].is_null());
    Ok(())
}

#[test]
fn offset_alignment_removes_a_global_phase() -> TestResult {
    let t = object(40, 44);
    let p = t.mapv(|v| v * Complex32::from_polar(1.0, 0.7));
    let cfg = AlignConfig {
        phase_align: PhaseAlign::Offset,
        ..AlignConfig::none()
    };
    let c = compare_objects(&t, &p, &cfg)?;
    assert!((c.alignment.phase_offset_rad.unwrap() + 0.7).abs() < 1e-6);
    assert!(c.phase.mae < 1e-6 && c.amplitude.mae < 1e-6, "{:?}", c.phase);
    assert!((c.phase.ssim - 1.0).abs() < 1e-6);
    // without alignment the offset is measured
    let raw = compare_objects(&t, &p, &AlignConfig::none())?;
    assert!((raw.phase.mae - 0.7).abs() < 1e-5);
    assert_eq!(raw.alignment.shift_px, None);
    Ok(())
}

#[test]
fn truth_span_phase_range_is_the_aligned_truths_span() -> TestResult {
    let t = object(40, 44);
    // a prediction with some phase error beyond a global offset
    let p = Array2::from_shape_fn((40, 44), |(y, x)| {
        t[[y, x]] * Complex32::from_polar(1.0, 0.4 + 0.2 * ((x * y) as f32 * 0.05).sin())
    });
    let cfg = AlignConfig {
        phase_align: PhaseAlign::Offset,
        phase_scale: PhaseScale::TruthSpan,
        ..AlignConfig::none()
    };
    let c = compare_objects(&t, &p, &cfg)?;
    let (lo, hi) = c
        .phase_truth
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let tau = 2.0 * std::f64::consts::PI;
    assert!((c.phase.data_range - (hi - lo) / tau).abs() < 1e-12);
    assert!(hi - lo > 1.0, "the test object spans about 1.8 rad, got {}", hi - lo);
    // the same numbers as the (scikit-image-checked) metrics of the phases
    // mapped by (φ + π)/2π at that range
    let unit = |a: &Array2<f64>| a.mapv(|v| (v + std::f64::consts::PI) / tau);
    let (m, _) = image_metrics(unit(&c.phase_truth).view(), unit(&c.phase_pred).view(), (hi - lo) / tau)?;
    assert_eq!(
        (c.phase.ssim, c.phase.psnr, c.phase.ms_ssim),
        (m.ssim, m.psnr, m.ms_ssim)
    );
    // the unit interval's larger range forgives more: a higher SSIM
    let unit = compare_objects(
        &t,
        &p,
        &AlignConfig {
            phase_scale: PhaseScale::UnitInterval,
            ..cfg.clone()
        },
    )?;
    assert!(
        unit.phase.ssim > c.phase.ssim,
        "{} vs {}",
        unit.phase.ssim,
        c.phase.ssim
    );
    // a flat truth phase has no span
    let flat = t.mapv(|v| Complex32::new(v.norm(), 0.0));
    assert!(compare_objects(&flat, &p, &cfg).is_err());
    Ok(())
}

#[test]
fn plane_alignment_removes_a_linear_ramp() -> TestResult {
    let t = object(48, 48);
    let p = Array2::from_shape_fn(t.dim(), |(y, x)| {
        t[[y, x]] * Complex32::from_polar(1.0, 0.02 * x as f32 - 0.01 * y as f32 + 0.2)
    });
    let cfg = AlignConfig {
        phase_align: PhaseAlign::Plane,
        ..AlignConfig::none()
    };
    let c = compare_objects(&t, &p, &cfg)?;
    let (pt, pp) = (
        c.alignment.phase_plane_truth.unwrap(),
        c.alignment.phase_plane_pred.unwrap(),
    );
    assert!((pp.slope_x_rad_per_px - pt.slope_x_rad_per_px - 0.02).abs() < 1e-6);
    assert!((pp.slope_y_rad_per_px - pt.slope_y_rad_per_px + 0.01).abs() < 1e-6);
    // the global offset θ comes off first, the plane's constant takes the rest
    let theta = c.alignment.phase_offset_rad.unwrap();
    assert!((pp.offset_rad - theta - pt.offset_rad - 0.2).abs() < 1e-5);
    assert!(c.phase.mae < 1e-5, "{:?}", c.phase);
    assert!(max_abs(c.phase_truth.as_slice().unwrap(), c.phase_pred.as_slice().unwrap()) < 1e-5);
    Ok(())
}

#[test]
fn mean_scaling_matches_amplitudes_and_trim_crops() -> TestResult {
    let t = object(40, 40);
    let p = t.mapv(|v| v * 0.5);
    let cfg = AlignConfig {
        amplitude_scale: AmplitudeScale::Mean,
        amplitude_data_range: DataRange::Fixed(1.0),
        trim_px: 3,
        ..AlignConfig::none()
    };
    let c = compare_objects(&t, &p, &cfg)?;
    assert!((c.alignment.amplitude_scale - 2.0).abs() < 1e-6);
    assert!(c.amplitude.mae < 1e-6 && c.amplitude.data_range == 1.0);
    assert_eq!(c.alignment.metric_shape, [34, 34]);
    let unscaled = compare_objects(&t, &p, &AlignConfig::none())?;
    assert!(unscaled.amplitude.mae > 0.3);
    Ok(())
}

#[test]
fn registration_in_compare_undoes_a_shift() -> TestResult {
    // a textured object (broad spectrum: phase correlation whitens the spectrum)
    let t = cplx("cmp_truth");
    let p = fourier_shift(t.view(), [1.5, -2.25]);
    let cfg = AlignConfig {
        registration: Some(Registration {
            upsample_factor: 20,
            border_crop_px: 4,
        }),
        ..AlignConfig::none()
    };
    let c = compare_objects(&t, &p, &cfg)?;
    let s = c.alignment.shift_px.unwrap();
    println!("compare registration: {s:?} for an applied [1.5, -2.25]");
    assert!((s[0] + 1.5).abs() < 1e-9 && (s[1] - 2.25).abs() < 1e-9, "{s:?}");
    assert_eq!(c.alignment.metric_shape, [64, 64]);
    assert!(c.amplitude.ssim > 0.95, "{:?}", c.amplitude);
    Ok(())
}

#[test]
fn scan_region_is_the_position_bounding_box_plus_half_width_and_margin() -> TestResult {
    let pos = ndarray::array![[10.0, 5.5], [30.2, 25.0], [20.0, 15.0]];
    let r = ScanRegion::from_positions(pos.view(), 10.0, 2.0, [40, 50])?;
    assert_eq!(
        r,
        ScanRegion {
            y0: 0,
            y1: 37,
            x0: 0,
            x1: 43
        }
    );
    let r = ScanRegion::from_positions(pos.view(), 3.0, 0.0, [40, 50])?;
    assert_eq!(
        r,
        ScanRegion {
            y0: 2,
            y1: 28,
            x0: 7,
            x1: 34
        }
    );
    assert_eq!(r.shape(), [26, 27]);
    assert!(ScanRegion::from_positions(pos.view(), 3.0, 0.0, [2, 2]).is_err());
    assert!(ScanRegion::from_positions(ndarray::array![[1.0, f64::NAN]].view(), 3.0, 0.0, [20, 20]).is_err());
    assert!(ScanRegion::from_positions(pos.view(), -1.0, 0.0, [40, 50]).is_err());
    Ok(())
}

#[test]
fn tables_have_one_row_per_label_and_component() -> TestResult {
    let t = object(40, 44);
    let p = t.mapv(|v| v * Complex32::from_polar(0.9, 0.1));
    let a = compare_objects(&t, &p, &AlignConfig::default())?;
    let b = compare_objects(&t, &p, &AlignConfig::none())?;
    let rows = [("pinn".to_string(), &a), ("raw".to_string(), &b)];
    let df = metrics_table(&rows)?;
    assert_eq!(df.height(), 4);
    let names = df.column_names();
    for col in [
        "label",
        "component",
        "mae",
        "mse",
        "psnr",
        "ssim",
        "ms_ssim",
        "frc50",
        "frc_1_7",
        "shift_y_px",
        "shift_x_px",
        "phase_align",
        "amplitude_scale",
        "region",
    ] {
        assert!(names.contains(&col), "missing column {col} in {names:?}");
    }
    let ssim = df.column("ssim")?;
    assert_eq!(ssim.f64(0), Some(a.amplitude.ssim));
    assert_eq!(ssim.f64(3), Some(b.phase.ssim));
    assert_eq!(df.column("shift_y_px")?.f64(2), None);
    assert_eq!(df.column("component")?.str(1), Some("phase"));
    assert_eq!(df.column("region")?.str(2), Some("0:40,0:44"));

    let frc = frc_table(&rows)?;
    let per = a.frc_amplitude.frc.len() + a.frc_phase.frc.len() + b.frc_amplitude.frc.len() + b.frc_phase.frc.len();
    assert_eq!(frc.height(), per);
    assert_eq!(frc.width(), 5);
    Ok(())
}

fn is_shape(e: &Error) -> bool {
    matches!(e, Error::Shape { .. })
}

#[test]
fn bad_inputs_are_clear_errors() {
    let a = Array2::from_shape_fn((20, 20), |(y, x)| (x * y) as f64 / 400.0);
    let b = Array2::<f64>::zeros((20, 21));
    let e = mse(a.view(), b.view()).unwrap_err();
    assert!(is_shape(&e) && e.to_string().contains("[20, 21]"), "{e}");

    let mut nan = a.clone();
    nan[[3, 4]] = f64::NAN;
    let e = ssim(a.view(), nan.view(), 1.0).unwrap_err().to_string();
    assert!(e.contains("NaN") && e.contains("row 3, col 4"), "{e}");
    let mut inf = a.clone();
    inf[[0, 0]] = f64::INFINITY;
    assert!(frc(inf.view(), a.view()).is_err());

    let small = Array2::<f64>::zeros((10, 30));
    let e = ssim(small.view(), small.view(), 1.0).unwrap_err();
    assert!(is_shape(&e) && e.to_string().contains("11×11"), "{e}");
    assert!(ms_ssim(small.view(), small.view(), 1.0).is_err());

    for r in [0.0, -1.0, f64::NAN] {
        let e = psnr(a.view(), a.view(), r).unwrap_err().to_string();
        assert!(e.contains("data_range"), "{e}");
        assert!(ssim(a.view(), a.view(), r).is_err());
    }

    let empty = Array2::<f64>::zeros((0, 5));
    assert!(mae(empty.view(), empty.view()).is_err());
    assert!(register_translation(a.view(), a.view(), 0).is_err());

    // objects
    let t = object(30, 30);
    let e = compare_objects(&t, &object(30, 31), &AlignConfig::none()).unwrap_err();
    assert!(is_shape(&e), "{e}");
    let mut bad = t.clone();
    bad[[1, 2]] = Complex32::new(f32::NAN, 0.0);
    let e = compare_objects(&t, &bad, &AlignConfig::none()).unwrap_err().to_string();
    assert!(e.contains("predicted object") && e.contains("row 1, col 2"), "{e}");
    let flat = Array2::from_elem((30, 30), Complex32::new(1.0, 0.0));
    let e = compare_objects(&flat, &t, &AlignConfig::none())
        .unwrap_err()
        .to_string();
    assert!(e.contains("span 0"), "{e}");
    let zero = Array2::from_elem((30, 30), Complex32::new(0.0, 0.0));
    let cfg = AlignConfig {
        amplitude_scale: AmplitudeScale::Mean,
        ..AlignConfig::none()
    };
    assert!(
        compare_objects(&t, &zero, &cfg)
            .unwrap_err()
            .to_string()
            .contains("mean is zero")
    );
    let cfg = AlignConfig {
        region: Some(ScanRegion {
            y0: 0,
            y1: 40,
            x0: 0,
            x1: 10,
        }),
        ..AlignConfig::none()
    };
    let e = compare_objects(&t, &t, &cfg).unwrap_err();
    assert!(matches!(e, Error::Config { .. }), "{e}");
    let cfg = AlignConfig {
        trim_px: 10,
        ..AlignConfig::none()
    };
    let e = compare_objects(&t, &t, &cfg).unwrap_err().to_string();
    assert!(e.contains("SSIM window") && e.contains("10×10"), "{e}");
    let cfg = AlignConfig {
        amplitude_data_range: DataRange::Fixed(0.0),
        ..AlignConfig::none()
    };
    assert!(matches!(
        compare_objects(&t, &t, &cfg).unwrap_err(),
        Error::Config { .. }
    ));
}

#[test]
fn align_config_is_strict_serde() -> TestResult {
    let cfg = AlignConfig::ptychopinn(Some(ScanRegion {
        y0: 1,
        y1: 30,
        x0: 2,
        x1: 40,
    }));
    let json = serde_json::to_string(&cfg)?;
    assert_eq!(serde_json::from_str::<AlignConfig>(&json)?, cfg);
    let toml_text = "phase_align = \"offset\"\namplitude_data_range = { fixed = 2.0 }\n\
                     phase_scale = { radians = { data_range_rad = 6.283185307179586 } }\n";
    let parsed: AlignConfig = toml::from_str(toml_text)?;
    assert_eq!(parsed.phase_align, PhaseAlign::Offset);
    assert_eq!(parsed.amplitude_data_range, DataRange::Fixed(2.0));
    assert_eq!(parsed.registration, AlignConfig::default().registration);
    assert!(serde_json::from_str::<AlignConfig>(r#"{"phase_allign": "plane"}"#).is_err());
    assert!(serde_json::from_str::<AlignConfig>(r#"{"registration": {"upsample_factor": 5, "crop": 1}}"#).is_err());
    // the alignment record names everything applied
    let c = compare_objects(&object(40, 40), &object(40, 40), &AlignConfig::default())?;
    let rec = serde_json::to_value(&c.alignment)?;
    for k in [
        "region",
        "shift_px",
        "phase_align",
        "phase_plane_pred",
        "amplitude_scale",
        "amplitude_range",
        "phase_range",
    ] {
        assert!(rec.get(k).is_some(), "alignment record lacks {k}: {rec}");
    }
    Ok(())
}

fn masked_real(key: &str) -> Array2<f64> {
    let a = common::npz_member(&common::fixture("metrics_masked").join("masked.npz"), key);
    Array2::from_shape_vec((a.shape[0], a.shape[1]), common::f64s(&a)).expect("2-D")
}

#[test]
fn masked_metrics_match_numpy_and_ignore_unscored_pixels() -> TestResult {
    // tests/fixtures/metrics_masked/make_masked_fixtures.py: the prediction
    // holds values up to 50 outside the mask, which no metric may see
    let want = common::read_json(&common::fixture("metrics_masked").join("expected.json"));
    let (truth, pred) = (masked_real("truth"), masked_real("pred"));
    let mask = masked_real("mask").mapv(|v| v > 0.5);
    let r = num(&want["data_range"]);
    let (m, curve) = image_metrics_masked(truth.view(), pred.view(), r, mask.view())?;
    assert_close("masked MAE", m.mae, num(&want["mae"]), 1e-12);
    assert_close("masked MSE", m.mse, num(&want["mse"]), 1e-12);
    assert_close("masked PSNR", m.psnr, num(&want["psnr"]), 1e-10);
    assert_close("masked SSIM", m.ssim, num(&want["ssim"]), 1e-9);
    assert_close("masked MS-SSIM", m.ms_ssim, num(&want["ms_ssim"]), 1e-9);
    for (k, (g, w)) in curve.frc.iter().zip(nums(&want["frc"])).enumerate() {
        assert_close(&format!("masked FRC ring {k}"), *g, w, 1e-9);
    }
    // every pixel kept: scikit-image's plain SSIM (on the prediction without
    // the planted values)
    let clean = masked_real("pred_clean");
    let all = Array2::from_elem(mask.dim(), true);
    assert_close(
        "all-true mask SSIM",
        ssim_masked(truth.view(), clean.view(), r, all.view())?,
        num(&want["ssim_all"]),
        1e-9,
    );
    assert_eq!(
        ssim_masked(truth.view(), clean.view(), r, all.view())?,
        ssim(truth.view(), clean.view(), r)?
    );
    // the plane through the scored pixels of a phase that is noise elsewhere
    let plane = fit_plane_masked(masked_real("phase").view(), mask.view())?;
    let p = nums(&want["plane"]);
    assert_close("plane slope x", plane.slope_x_rad_per_px, p[0], 1e-9);
    assert_close("plane slope y", plane.slope_y_rad_per_px, p[1], 1e-9);
    assert_close("plane offset", plane.offset_rad, p[2], 1e-9);
    // a mask that keeps nothing inside the SSIM border is an error, as is a wrong shape
    let mut edge = Array2::from_elem(mask.dim(), false);
    edge[[0, 0]] = true;
    assert!(ssim_masked(truth.view(), pred.view(), r, edge.view()).is_err());
    assert!(ssim_masked(truth.view(), pred.view(), r, Array2::from_elem((3, 3), true).view()).is_err());
    Ok(())
}

#[test]
fn compare_objects_scores_only_the_mask_and_records_it() -> TestResult {
    // a sparse scan's reconstruction: right where the mask is, garbage in
    // the gaps; with the mask it scores as the good part alone
    let t = object(64, 64);
    let mut mask = Array2::from_elem((64, 64), false);
    for ((y, x), k) in mask.indexed_iter_mut() {
        *k = (y as f64 - 20.0).hypot(x as f64 - 22.0) < 14.0 || (y as f64 - 44.0).hypot(x as f64 - 42.0) < 12.0;
    }
    let good = t.mapv(|v| v * Complex32::from_polar(1.0, 0.3));
    let wild = ndarray::Zip::from(&good)
        .and(&mask)
        .map_collect(|&v, &k| if k { v } else { Complex32::new(7.0, -3.0) });
    let cfg = AlignConfig {
        mask: Some(std::sync::Arc::new(mask.clone())),
        ..AlignConfig::none()
    };
    let offset = AlignConfig {
        phase_align: PhaseAlign::Offset,
        ..cfg.clone()
    };
    let c = compare_objects(&t, &wild, &offset)?;
    assert!(
        c.amplitude.ssim > 0.999 && c.phase.ssim > 0.999,
        "{:?} {:?}",
        c.amplitude,
        c.phase
    );
    assert!((c.alignment.phase_offset_rad.unwrap() + 0.3).abs() < 1e-5);
    let kept = mask.iter().filter(|&&k| k).count();
    assert_eq!(c.alignment.scored_pixels, Some(kept));
    assert!((c.alignment.scored_fraction.unwrap() - kept as f64 / 4096.0).abs() < 1e-12);
    // without the mask the gaps dominate
    let plain = compare_objects(&t, &wild, &AlignConfig { mask: None, ..offset })?;
    assert!(plain.amplitude.ssim < 0.5, "{}", plain.amplitude.ssim);
    assert_eq!(plain.alignment.scored_pixels, None);
    // a mask of the wrong shape is an error naming it
    let bad = AlignConfig {
        mask: Some(std::sync::Arc::new(Array2::from_elem((8, 8), true))),
        ..AlignConfig::none()
    };
    let e = compare_objects(&t, &wild, &bad).unwrap_err().to_string();
    assert!(e.contains("mask"), "{e}");
    Ok(())
}
