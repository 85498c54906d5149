//! What measured data needs from the iterative solvers: mixed-state probes,
//! position correction and detector masks, each checked on data whose truth
//! is known (the far fields computed here with plain FFTs, independent of
//! the solvers' batch code).
mod common;

use ndarray::{Array2, Array3, Axis, s};
use num_complex::Complex32;
use ptycho_workbench::data::Dataset;
use ptycho_workbench::data::product::canvas_shape;
use ptycho_workbench::recon::iterative::{
    IterativeConfig, IterativeInit, PositionSummary, reconstruct_iterative, reconstruct_iterative_from,
};
use ptycho_workbench::simulate::{SimConfig, simulate_on};
use tch::Device;

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn cpu(mut cfg: IterativeConfig) -> IterativeConfig {
    cfg.device = "cpu".into();
    cfg
}

/// [`common::small_config`] on a 4-px raster (integer positions), noise free.
fn dense_noise_free(seed: u64) -> Dataset {
    let mut cfg: SimConfig = common::small_config();
    cfg.seed = seed;
    cfg.scan.spacing_px = 4.0;
    cfg.dose_photons = None;
    simulate_on(&cfg, Device::Cpu).unwrap()
}

/// `sqrt(1 − f)·P` and a second mode `P·x·y` (its centre, in units of the
/// probe's width) orthogonal to it with the share `f` of the power.
fn two_modes(probe: &Array2<Complex32>, f: f64) -> Array3<Complex32> {
    let n = probe.nrows();
    let c = (n as f64 - 1.0) / 2.0;
    let mut second = Array2::from_shape_fn((n, n), |(i, j)| {
        probe[(i, j)] * (((j as f64 - c) * (i as f64 - c)) / (n as f64 / 8.0).powi(2)) as f32
    });
    let norm = |a: &Array2<Complex32>| a.iter().map(|v| v.norm_sqr() as f64).sum::<f64>();
    let dot: Complex32 = probe.iter().zip(second.iter()).map(|(a, b)| a.conj() * b).sum();
    let scale = dot / norm(probe) as f32;
    second.zip_mut_with(probe, |b, &a| *b -= a * scale);
    let total = norm(probe);
    let first = probe.mapv(|v| v * (1.0 - f).sqrt() as f32);
    let second = second.mapv(|v| v * (f * total / norm(&second)).sqrt() as f32);
    ndarray::stack(Axis(0), &[first.view(), second.view()]).unwrap()
}

#[test]
fn a_two_mode_solver_fits_mixed_state_data_that_one_mode_cannot_and_finds_the_weaker_mode() -> TestResult {
    common::init();
    let mut ds = dense_noise_free(3);
    let truth = two_modes(&ds.probe, 0.25);
    ds.diffraction = common::mixed_state_amplitudes(&ds, &truth);
    let run = |modes: usize| {
        let cfg = cpu(IterativeConfig {
            iterations: Some(60),
            refine_probe: true,
            probe_modes: Some(modes),
            ..IterativeConfig::epie()
        });
        reconstruct_iterative(&ds, &cfg, &mut |_| {}).unwrap()
    };
    let (one, two) = (run(1), run(2));
    let error = |o: &ptycho_workbench::recon::iterative::IterativeOutcome| o.history.last().unwrap().data_error;
    assert!(
        error(&two) < 0.3 * error(&one),
        "two modes {:.3e} vs one {:.3e}",
        error(&two),
        error(&one)
    );
    let summary = two.reconstruction.metadata.solver.as_ref().unwrap();
    assert_eq!((summary.probe_modes, summary.added_probe_modes), (2, 1));
    assert_eq!(two.probe_modes.shape(), [2, 32, 32]);
    // the weaker mode carries about the quarter of the power it has in the data
    assert!(
        (summary.mode_powers[1] - 0.25).abs() < 0.08,
        "mode powers {:?}",
        summary.mode_powers
    );
    Ok(())
}

/// [`common::small_config`] on a 4-px raster at 10⁶ photons, its positions
/// moved by uniform errors in ±`error_px` per axis (a seeded LCG): the
/// dataset (given = start = the moved positions, the true ones kept) and
/// the true positions.
fn perturbed_scan(error_px: f64, seed: u64) -> Result<(Dataset, Array2<f64>), Box<dyn std::error::Error>> {
    let mut cfg = common::small_config();
    cfg.scan.spacing_px = 4.0;
    cfg.dose_photons = Some(1e6);
    let mut ds = simulate_on(&cfg, Device::Cpu)?;
    let truth = ds.positions_px.clone();
    let mut state = seed;
    let mut uniform = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    ds.positions_px.mapv_inplace(|v| v + error_px * uniform());
    ds.start_positions_px = ds.positions_px.clone();
    ds.true_positions_px = Some(truth.clone());
    Ok((ds, truth))
}

#[test]
fn position_correction_moves_perturbed_positions_towards_the_true_ones() -> TestResult {
    common::init();
    // positions a user would have: the true ones plus ±1.2 px errors (seeded)
    let (mut ds, truth) = perturbed_scan(1.2, 12345)?;
    // (perturbed positions may leave the true object's frame: solve on the scan's canvas)
    ds.object = None;
    let rms = |a: &Array2<f64>| {
        let d = a - &truth;
        let mean = d.mean_axis(Axis(0)).unwrap();
        (d.outer_iter()
            .map(|r| (r[0] - mean[0]).powi(2) + (r[1] - mean[1]).powi(2))
            .sum::<f64>()
            / d.nrows() as f64)
            .sqrt()
    };
    let mut solver = cpu(IterativeConfig {
        iterations: Some(150),
        ..IterativeConfig::epie()
    });
    solver.positions.refine = true;
    let out = reconstruct_iterative(&ds, &solver, &mut |_| {})?;
    let corrected = out.positions_px.as_ref().unwrap();
    let (before, after) = (rms(&ds.positions_px), rms(corrected));
    assert!(after < 0.5 * before, "RMS error {before:.3} → {after:.3} px");
    // the summary reports the same numbers
    let p = out
        .reconstruction
        .metadata
        .solver
        .as_ref()
        .unwrap()
        .positions
        .as_ref()
        .unwrap();
    let t = p.truth.unwrap();
    assert!((t.rms_given_offset_removed_px - before).abs() < 1e-9);
    assert!((t.rms_corrected_offset_removed_px - after).abs() < 1e-9);
    assert!(p.rms_move_px.len() == 150 - solver.positions.start_iteration + 1);

    // the CLI writes the corrected positions and records the settings
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data.npz");
    ptycho_workbench::data::write_npz(&ds, &data)?;
    let out_path = dir.path().join("rec.npz");
    let (data_arg, out_arg) = (data.to_string_lossy(), out_path.to_string_lossy());
    let status = common::ptycho(&[
        "reconstruct",
        "--device",
        "cpu",
        "--iterations",
        "8",
        "--refine-positions",
        "--positions-start",
        "2",
        "--probe-modes",
        "2",
        "--refine-probe",
        "--data",
        &data_arg,
        "--out",
        &out_arg,
    ]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let x = common::f64s(&common::npz_member(&out_path, "xcoords"));
    assert_eq!(x.len(), ds.n_images());
    assert!(
        x.iter()
            .zip(ds.positions_px.column(0))
            .any(|(a, b)| (a - b).abs() > 1e-3)
    );
    assert_eq!(common::npz_member(&out_path, "probe_modes").shape, vec![2, 32, 32]);
    let json = common::npz_metadata(&out_path);
    assert_eq!(json["solver"]["config"]["positions"]["refine"], true);
    assert_eq!(json["solver"]["probe_modes"], 2);
    Ok(())
}

/// Scan errors as large as the scan's step (CNM 247's are), from a good
/// start object (a reconstruction of an earlier scan of the sample, here
/// the true object): the gradient correction alone cannot reach them, the
/// coarse-to-fine search does. (From a flat start, the object the wrong
/// positions build fits them better than the true ones: docs/measured.md.)
#[test]
fn the_position_search_corrects_errors_as_large_as_the_scan_step_from_a_good_object() -> TestResult {
    common::init();
    let (mut ds, _) = perturbed_scan(4.0, 777)?;
    let true_object = ds.object.take().expect("simulated");
    // the true object on the perturbed scan's canvas (1 where it does not reach)
    let [h, w] = canvas_shape(&ds.positions_px, ds.patch_size());
    let mut start = Array2::from_elem((h, w), Complex32::new(1.0, 0.0));
    let (hh, ww) = (h.min(true_object.nrows()), w.min(true_object.ncols()));
    start
        .slice_mut(s![..hh, ..ww])
        .assign(&true_object.slice(s![..hh, ..ww]));
    let init = IterativeInit {
        object: start,
        coverage: None,
        probe: None,
        source: "the true object".into(),
    };
    let run = |radius: usize| -> Result<PositionSummary, Box<dyn std::error::Error>> {
        let mut solver = cpu(IterativeConfig {
            iterations: Some(12),
            ..IterativeConfig::gradient()
        });
        solver.positions.refine = true;
        solver.positions.start_iteration = 1;
        solver.positions.search_radius_px = radius;
        let out = reconstruct_iterative_from(&ds, &solver, Some(&init), &mut |_| {})?;
        Ok(out.reconstruction.metadata.solver.unwrap().positions.unwrap())
    };
    let (gradient_only, searched) = (run(0)?, run(8)?);
    let ratio = |p: &PositionSummary| {
        let t = p.truth.unwrap();
        t.rms_corrected_offset_removed_px / t.rms_given_offset_removed_px
    };
    eprintln!(
        "error left: {:.3} with the search, {:.3} with the gradient alone",
        ratio(&searched),
        ratio(&gradient_only)
    );
    assert!(
        ratio(&searched) < 0.25,
        "the search leaves {:.2} of the error",
        ratio(&searched)
    );
    assert!(
        ratio(&gradient_only) > 0.5,
        "the gradient alone leaves {:.2}",
        ratio(&gradient_only)
    );
    // searches every 5 iterations from the first: radii 8, 6, 4 (×0.7, rounded up)
    assert_eq!(searched.search_iterations, vec![1, 6, 11]);
    assert!(gradient_only.search_iterations.is_empty());
    assert_eq!(searched.rms_error_by_epoch_px.len(), 12);
    assert!(
        (searched.rms_error_by_epoch_px[11] - searched.truth.unwrap().rms_corrected_offset_removed_px).abs() < 1e-9
    );
    Ok(())
}

#[test]
fn masked_measurements_do_not_pull_the_fit() -> TestResult {
    common::init();
    let clean = dense_noise_free(4);
    // twenty measurements spoiled by a far too large value (a hot pixel,
    // a saturated readout that wrapped)
    let mut spoiled = clean.clone();
    let big = clean.diffraction.iter().fold(0f32, |m, &v| m.max(v)) * 30.0;
    for k in 0..20 {
        spoiled.diffraction[(k * 7 % clean.n_images(), 3 + k % 5, 20 + k % 7)] = big;
    }
    let object_error = |ds: &Dataset, mask: bool| {
        let mut cfg = cpu(IterativeConfig {
            iterations: Some(30),
            ..IterativeConfig::epie()
        });
        cfg.mask.enabled = mask;
        cfg.mask.saturation_counts = Some(0.5 * (big as f64).powi(2));
        let out = reconstruct_iterative(ds, &cfg, &mut |_| {}).unwrap();
        let summary = out.reconstruction.metadata.solver.clone().unwrap();
        let e = ptycho_workbench::recon::iterative::object_error(
            &out.reconstruction.object,
            clean.object.as_ref().unwrap(),
            &clean.positions_px,
            clean.patch_size(),
        )
        .unwrap();
        (e, summary.defects.map(|d| d.saturated_values))
    };
    let (reference, _) = object_error(&clean, true);
    let (masked, found) = object_error(&spoiled, true);
    let (unmasked, none) = object_error(&spoiled, false);
    assert_eq!((found, none), (Some(20), None));
    assert!(
        masked < 1.1 * reference + 1e-3,
        "masked {masked:.4} vs clean {reference:.4}"
    );
    assert!(unmasked > 1.5 * masked, "unmasked {unmasked:.4} vs masked {masked:.4}");
    Ok(())
}

/// `reconstruct --search-radius-px` turns position correction on, waits for
/// the object (iteration 20) unless told, and records its searches.
#[test]
fn cli_search_radius_records_its_settings_and_searches() -> TestResult {
    let mut cfg = common::small_config();
    cfg.scan.spacing_px = 4.0;
    let ds = simulate_on(&cfg, Device::Cpu)?;
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("data.npz");
    ptycho_workbench::data::write_npz(&ds, &data)?;
    let data_arg = data.to_string_lossy();
    let run = |extra: &[&str], out: &std::path::Path| -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let out_arg = out.to_string_lossy();
        let mut args = vec![
            "reconstruct",
            "--device",
            "cpu",
            "--iterations",
            "3",
            "--search-radius-px",
            "4",
            "--data",
            &data_arg,
            "--out",
            &out_arg,
        ];
        args.extend_from_slice(extra);
        let status = common::ptycho(&args);
        assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
        Ok(common::npz_metadata(out))
    };
    let waited = run(&[], &dir.path().join("a.npz"))?;
    let p = &waited["solver"]["config"]["positions"];
    assert_eq!(p["refine"], true);
    assert_eq!(p["search_radius_px"], 4);
    assert_eq!(p["start_iteration"], 20);
    assert!(
        waited["solver"]["positions"]["rms_move_px"]
            .as_array()
            .expect("moves")
            .is_empty()
    );
    let early = run(&["--positions-start", "1"], &dir.path().join("b.npz"))?;
    assert_eq!(
        early["solver"]["positions"]["search_iterations"],
        serde_json::json!([1])
    );
    assert_eq!(
        early["solver"]["positions"]["rms_move_px"]
            .as_array()
            .expect("moves")
            .len(),
        3
    );
    Ok(())
}
