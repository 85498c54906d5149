//! The two measured APS scans (tike 0.26.0's test data, fetched by
//! `make measured-data`, which `make test` runs first): the imported files
//! hold what their source holds, and the solvers' measured-data features do
//! on real detector counts what they do on simulations. Without the files
//! every test here fails with the command that fetches them.
mod common;

use std::path::{Path, PathBuf};

use ndarray::Axis;
use ptycho_workbench::data::{Dataset, read_dataset};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn measured(name: &str) -> PathBuf {
    let p = common::root().join("data/measured").join(name);
    assert!(
        p.exists(),
        "{} is missing: run `make measured-data` (scripts/fetch_measured_data.sh)",
        p.display()
    );
    p
}

fn load(name: &str) -> Dataset {
    read_dataset(&measured(name)).expect("a measured dataset reads")
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// Counts `A²` per pattern, summed in f64.
fn photons_per_pattern(ds: &Dataset) -> Vec<f64> {
    ds.diffraction
        .outer_iter()
        .map(|p| p.iter().map(|&a| (a as f64) * (a as f64)).sum())
        .collect()
}

#[test]
fn the_siemens_star_holds_its_source_counts_and_a_probe_scaled_to_them() -> TestResult {
    let ds = load("siemens_star.npz");
    assert_eq!(ds.diffraction.dim(), (516, 128, 128));
    // whole-number counts, largest 963 (the facts of tike's file)
    let mut max_count = 0.0f64;
    for &a in ds.diffraction.iter() {
        let c = (a as f64).powi(2);
        assert!((c - c.round()).abs() < 2e-3 * c.max(1.0), "count {c} is not whole");
        max_count = max_count.max(c);
    }
    assert!((max_count - 963.0).abs() < 0.5, "{max_count}");
    let per = photons_per_pattern(&ds);
    let mean = per.iter().sum::<f64>() / per.len() as f64;
    assert!((4.4e5..4.8e5).contains(&mean), "{mean}");
    let recorded = ds.metadata.n_photons.expect("n_photons recorded");
    assert!((recorded - mean).abs() < 1e-6 * mean, "{recorded} vs {mean}");
    // the probe carries the mean counts (ortho FFT: Σ|P|² = Σ|F(P)|²)
    let power: f64 = ds.probe_modes().iter().map(|v| v.norm_sqr() as f64).sum();
    assert!((power - mean).abs() < 1e-3 * mean, "{power} vs {mean}");
    assert_eq!(ds.n_probe_modes(), 1);
    assert!(ds.true_positions_px.is_none());
    Ok(())
}

#[test]
fn cnm_247_keeps_three_modes_and_true_positions_9_76_px_from_the_given() -> TestResult {
    let ds = load("cnm247.npz");
    assert_eq!(ds.diffraction.dim(), (481, 128, 128));
    assert_eq!(ds.n_probe_modes(), 3);
    let truth = ds.true_positions_px.as_ref().expect("scan_truth kept");
    let d = truth - &ds.positions_px;
    let mean = d.mean_axis(Axis(0)).expect("non-empty");
    let rms = (d
        .outer_iter()
        .map(|r| (r[0] - mean[0]).powi(2) + (r[1] - mean[1]).powi(2))
        .sum::<f64>()
        / d.nrows() as f64)
        .sqrt();
    assert!((rms - 9.76).abs() < 0.01, "{rms}");
    // uint16 counts: the brightest sit just below 2^15
    let max = ds.diffraction.iter().fold(0.0f32, |m, &a| m.max(a)) as f64;
    assert!((max * max - 32541.0).abs() < 1.0, "{}", max * max);
    Ok(())
}

#[test]
fn inspect_finds_cnm_247_s_saturated_and_dead_pixels() -> TestResult {
    let data = measured("cnm247.npz");
    let run = common::ptycho(&["dataset", "inspect", s(&data), "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    let inspection = &r["inspection"];
    // counted here directly: values ≥ 90 % of the largest count, pixels dark in every pattern
    let ds = load("cnm247.npz");
    let max = ds.diffraction.iter().fold(0.0f32, |m, &a| m.max(a)) as f64;
    let saturated = ds
        .diffraction
        .iter()
        .filter(|&&a| (a as f64).powi(2) >= 0.9 * max * max - 1e-3)
        .count();
    assert_eq!(saturated, 33);
    assert_eq!(inspection["saturation"]["values"], 33);
    let dark = ds.diffraction.sum_axis(Axis(0)).iter().filter(|&&v| v == 0.0).count();
    assert!(dark >= 9, "{dark}");
    assert_eq!(inspection["dead_pixels"], 9);
    Ok(())
}

/// One scan split into interleaved halves, each reconstructed with three
/// probe modes: the modes fit the star's partially coherent beam better
/// than one, and the halves agree (half-set FRC) to fine detail.
#[test]
fn star_halves_reconstruct_with_modes_and_agree() -> TestResult {
    let dir = tempfile::tempdir()?;
    let (a, b) = (dir.path().join("a.npz"), dir.path().join("b.npz"));
    let run = common::ptycho(&[
        "dataset",
        "halves",
        s(&measured("siemens_star.npz")),
        "--out-a",
        s(&a),
        "--out-b",
        s(&b),
    ]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let reconstruct = |data: &Path, modes: &str, out: &Path| -> Result<f64, Box<dyn std::error::Error>> {
        let run = common::ptycho(&[
            "reconstruct",
            "--device",
            "cpu",
            "--data",
            s(data),
            "--iterations",
            "25",
            "--refine-probe",
            "--probe-modes",
            modes,
            "--out",
            s(out),
        ]);
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let json = common::npz_metadata(out);
        Ok(json["solver"]["final_data_error"].as_f64().expect("data error"))
    };
    let (ra, rb, r1) = (
        dir.path().join("ra.npz"),
        dir.path().join("rb.npz"),
        dir.path().join("r1.npz"),
    );
    let three = reconstruct(&a, "3", &ra)?;
    let one = reconstruct(&a, "1", &r1)?;
    assert!(
        three < 0.75 * one,
        "data error with 3 modes {three:.4}, with 1 {one:.4}"
    );
    assert_eq!(common::npz_member(&ra, "probe_modes").shape, vec![3, 128, 128]);
    reconstruct(&b, "3", &rb)?;
    let run = common::ptycho(&["frc", s(&ra), s(&rb), "--json"]);
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let r: serde_json::Value = serde_json::from_slice(&run.stdout)?;
    // the halves' canvases differ by a pixel or two; registration moves less than a pixel
    let shift = r["alignment"]["shift_px"].as_array().expect("shift");
    assert!(shift.iter().all(|v| v.as_f64().unwrap().abs() < 1.0), "{shift:?}");
    let res = r["one_seventh"]["resolution_px"].as_f64().expect("resolution");
    assert!(res < 4.0, "1/7 resolution {res} px");
    Ok(())
}
