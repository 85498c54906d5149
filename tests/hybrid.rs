//! The prior and the physics together: iterative solvers started from
//! another reconstruction (`--init`), a network refined by ePIE in one call
//! (`ReconConfig::refine`, `ptycho infer --refine`), test-time training
//! (`ReconConfig::adapt`, `ptycho train --init-bundle`), the solvers'
//! data-driven settings and sub-pixel positions.
mod common;

use common::*;
use ndarray::Array2;
use num_complex::Complex32;
use ptycho_workbench::bundle::Bundle;
use ptycho_workbench::data::{Dataset, read_dataset, write_npz};
use ptycho_workbench::recon::iterative::{
    IterativeConfig, IterativeInit, data_error, object_error, pattern_misfit, reconstruct_iterative,
    reconstruct_iterative_from, reconstruct_iterative_snapshots,
};
use ptycho_workbench::recon::select::Candidate;
use ptycho_workbench::recon::{AdaptConfig, ReconConfig, on_dataset_grid, write_recon_npz};
use ptycho_workbench::simulate::{SimConfig, simulate_on};
use tch::Device;

fn cpu(iterations: usize) -> IterativeConfig {
    IterativeConfig {
        iterations: Some(iterations),
        device: "cpu".into(),
        ..IterativeConfig::epie()
    }
}

fn noise_free() -> Dataset {
    simulate_on(
        &SimConfig {
            dose_photons: None,
            ..small_config()
        },
        Device::Cpu,
    )
    .unwrap()
}

#[test]
fn a_run_started_from_the_truth_stays_there_and_the_start_is_scaled_to_the_data() -> TestResult {
    init();
    let ds = noise_free();
    let truth = ds.object.clone().unwrap();
    // twice too bright: the start is scaled back to the measured energy
    let init = IterativeInit {
        object: truth.mapv(|v| v * 2.0),
        coverage: None,
        probe: None,
        source: "truth × 2".into(),
    };
    let out = reconstruct_iterative_from(&ds, &cpu(1), Some(&init), &mut |_| {})?;
    let summary = out.reconstruction.metadata.solver.clone().unwrap();
    let started = summary.init.as_ref().unwrap();
    assert!((started.amplitude_factor - 0.5).abs() < 1e-3, "{started:?}");
    assert_eq!(started.source, "truth × 2");
    assert!(!started.probe_given);
    // the truth fits noise-free data: the first iteration's error is tiny,
    // where a flat start's is large
    let flat = reconstruct_iterative(&ds, &cpu(1), &mut |_| {})?;
    assert!(out.history[0].data_error < 1e-4, "{}", out.history[0].data_error);
    assert!(flat.history[0].data_error > 100.0 * out.history[0].data_error);
    let e = object_error(&out.reconstruction.object, &truth, &ds.positions_px, ds.patch_size())?;
    assert!(e < 1e-3, "object error {e}");

    // pixels without coverage start at the covered mean, and are counted
    let mut coverage = Array2::<f32>::ones(truth.dim());
    coverage.slice_mut(ndarray::s![0..10, ..]).fill(0.0);
    let gap = IterativeInit {
        object: truth.clone(),
        coverage: Some(coverage),
        probe: None,
        source: "gap".into(),
    };
    let out = reconstruct_iterative_from(&ds, &cpu(1), Some(&gap), &mut |_| {})?;
    let started = out.reconstruction.metadata.solver.unwrap().init.unwrap();
    assert_eq!(started.filled_pixels, 10 * truth.ncols());

    // wrong shapes and bad numbers are refused by name
    let wrong = IterativeInit {
        object: Array2::from_elem((5, 5), Complex32::new(1.0, 0.0)),
        ..gap.clone()
    };
    let e = reconstruct_iterative_from(&ds, &cpu(1), Some(&wrong), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("init object"), "{e}");
    let mut nan = truth.clone();
    nan[[3, 4]] = Complex32::new(f32::NAN, 0.0);
    let bad = IterativeInit {
        object: nan,
        coverage: None,
        ..gap
    };
    let e = reconstruct_iterative_from(&ds, &cpu(1), Some(&bad), &mut |_| {}).unwrap_err();
    assert!(e.to_string().contains("NaN"), "{e}");
    Ok(())
}

#[test]
fn snapshots_are_the_objects_of_shorter_runs() -> TestResult {
    init();
    let ds = simulate_on(&small_config(), Device::Cpu)?;
    let long = reconstruct_iterative_snapshots(&ds, &cpu(5), None, &[2, 5, 9], &mut |_| {})?;
    assert_eq!(long.snapshots.iter().map(|s| s.0).collect::<Vec<_>>(), [2, 5]);
    let short = reconstruct_iterative(&ds, &cpu(2), &mut |_| {})?;
    assert_eq!(
        long.snapshots[0].1, short.reconstruction.object,
        "bit for bit on the CPU"
    );
    assert_eq!(long.snapshots[1].1, long.reconstruction.object);
    Ok(())
}

#[test]
fn unset_settings_are_chosen_from_the_data_and_recorded() -> TestResult {
    init();
    let ds = simulate_on(&small_config(), Device::Cpu)?;
    let out = reconstruct_iterative(&ds, &cpu(3), &mut |_| {})?;
    let s = out.reconstruction.metadata.solver.unwrap().settings;
    assert_eq!(s.iterations, 3);
    assert_eq!(s.chosen, ["epie.alpha", "max_weight"]);
    // the photons per pattern, computed here from the counts (s·X)²
    let scale = ds.metadata.intensity_scale.unwrap();
    let counts: f64 = ds.diffraction.iter().map(|&x| (scale * x as f64).powi(2)).sum::<f64>() / ds.n_images() as f64;
    let stats = s.stats.unwrap();
    assert!((stats.photons_per_pattern.unwrap() / counts - 1.0).abs() < 1e-6);
    // an 11×11 raster at 6 px with a probe a dozen pixels wide: every
    // illuminated pixel is seen by several patterns
    assert!(stats.redundancy > 2.0, "{stats:?}");
    // given settings are used as given
    let mut given = cpu(2);
    given.epie.alpha = Some(0.7);
    given.max_weight = Some(0.2);
    let s = reconstruct_iterative(&ds, &given, &mut |_| {})?
        .reconstruction
        .metadata
        .solver
        .unwrap()
        .settings;
    assert!(s.chosen.is_empty() && s.stats.is_none());
    assert_eq!((s.step, s.max_weight), (0.7, 0.2));
    Ok(())
}

#[test]
fn positions_between_pixels_shift_the_probe_and_fit_the_data_better() -> TestResult {
    init();
    // noise-free data at random (fractional) positions
    let mut cfg = SimConfig {
        dose_photons: None,
        ..small_config()
    };
    cfg.scan.kind = ptycho_workbench::simulate::ScanKind::Random;
    cfg.scan.n_images = Some(150);
    let ds = simulate_on(&cfg, Device::Cpu)?;
    // full steps for noise-free data, so both runs reach their floor
    let run = |subpixel: bool| {
        let mut c = IterativeConfig {
            subpixel,
            max_weight: Some(0.01),
            ..cpu(40)
        };
        c.epie.alpha = Some(1.0);
        reconstruct_iterative(&ds, &c, &mut |_| {}).unwrap()
    };
    let (shifted, rounded) = (run(true), run(false));
    let (a, b) = (
        shifted.history.last().unwrap().data_error,
        rounded.history.last().unwrap().data_error,
    );
    assert!(a < 0.7 * b, "sub-pixel data error {a} vs rounded {b}");
    let truth = ds.object.as_ref().unwrap();
    let ea = object_error(&shifted.reconstruction.object, truth, &ds.positions_px, ds.patch_size())?;
    let eb = object_error(&rounded.reconstruction.object, truth, &ds.positions_px, ds.patch_size())?;
    assert!(ea < eb, "object error {ea} vs {eb}");
    Ok(())
}

#[test]
fn a_bundle_refined_by_epie_in_one_call_records_both() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let bundle = Bundle::load(&trained_bundle(dir.path(), 2), Device::Cpu)?;
    let ds = bundle_dataset();
    let plain = bundle.reconstruct(&ds, &ReconConfig::default())?;
    let cfg = ReconConfig {
        refine: Some(IterativeConfig {
            iterations: Some(20),
            ..IterativeConfig::epie()
        }),
        ..ReconConfig::default()
    };
    let refined = bundle.reconstruct(&ds, &cfg)?;
    assert_eq!(refined.metadata.source, "pinn inference + epie");
    assert!(
        on_dataset_grid(&refined.metadata.source),
        "a fixed probe keeps the grid"
    );
    let r = refined.metadata.refinement.as_ref().unwrap();
    assert_eq!(r.iterations_run, 20);
    assert!(r.init.as_ref().unwrap().source.contains("pinn"));
    // the physics moves a one-epoch network's object towards the truth
    let truth = ds.object.as_ref().unwrap();
    let e_plain = object_error(&plain.object, truth, &ds.positions_px, ds.patch_size())?;
    let e_refined = object_error(&refined.object, truth, &ds.positions_px, ds.patch_size())?;
    assert!(e_refined < 0.9 * e_plain, "{e_refined} vs {e_plain}");
    // its coverage is the solver's illumination (where the data constrain
    // the refined object), not the network's crop count
    let solver_alone = reconstruct_iterative(&ds, &cpu(1), &mut |_| {})?.reconstruction;
    assert_eq!(refined.coverage.dim(), solver_alone.coverage.dim());
    let peak = solver_alone.coverage.iter().fold(0f32, |m, &v| m.max(v));
    let worst = (&refined.coverage - &solver_alone.coverage)
        .iter()
        .fold(0f32, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-4 * peak, "{worst} of {peak}");
    // the metadata round-trips through the NPZ
    let path = dir.path().join("refined.npz");
    write_recon_npz(&refined, &path)?;
    let back = ptycho_workbench::data::product::read_recon_file(&path)?;
    assert_eq!(back.source.as_deref(), Some("pinn inference + epie"));
    assert!(back.coverage.is_some());
    Ok(())
}

#[test]
fn the_data_error_of_an_object_is_zero_for_the_truth_and_blind_to_its_scale() -> TestResult {
    init();
    let ds = noise_free();
    let truth = ds.object.clone().unwrap();
    let e = data_error(&ds, &truth, None, true, Device::Cpu)?;
    assert!(e < 1e-4, "{e}");
    // a network's object is known up to its intensity scale: the best scale is fitted
    let e3 = data_error(&ds, &truth.mapv(|v| v * 3.0), None, true, Device::Cpu)?;
    assert!(e3 < 1e-4, "{e3}");
    // the Poisson deviance too: zero for the truth at any scale, large for a flat object
    let m = pattern_misfit(&ds, &truth.mapv(|v| v * 0.5), None, true, Device::Cpu)?;
    assert_eq!(
        m.amplitude,
        data_error(&ds, &truth.mapv(|v| v * 0.5), None, true, Device::Cpu)?
    );
    assert!(m.poisson < 1e-4, "{m:?}");
    let flat_misfit = pattern_misfit(
        &ds,
        &Array2::from_elem(truth.dim(), Complex32::new(1.0, 0.0)),
        None,
        true,
        Device::Cpu,
    )?;
    assert!(flat_misfit.poisson > 0.05, "{flat_misfit:?}");
    // a flat object explains little of the patterns, a noisy truth a bit less than the truth
    let flat = Array2::from_elem(truth.dim(), Complex32::new(1.0, 0.0));
    let e_flat = data_error(&ds, &flat, None, true, Device::Cpu)?;
    assert!(e_flat > 0.05, "{e_flat}");
    let noisy = Array2::from_shape_fn(truth.dim(), |(i, j)| {
        truth[[i, j]] * Complex32::from_polar(1.0, 0.3 * (((i * 7 + j * 13) % 11) as f32 / 11.0 - 0.5))
    });
    let e_noisy = data_error(&ds, &noisy, None, true, Device::Cpu)?;
    assert!(e_noisy > 10.0 * e && e_noisy < e_flat, "{e_noisy} vs {e} and {e_flat}");
    let wrong = Array2::from_elem((5, 5), Complex32::new(1.0, 0.0));
    assert!(data_error(&ds, &wrong, None, true, Device::Cpu).is_err());
    let mut nan = truth.clone();
    nan[[3, 3]] = Complex32::new(f32::NAN, 0.0);
    assert!(data_error(&ds, &nan, None, true, Device::Cpu).is_err());
    Ok(())
}

#[test]
fn held_out_patterns_choose_between_the_network_and_the_solver() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let bundle = Bundle::load(&trained_bundle(dir.path(), 1), Device::Cpu)?;
    // dense and nearly noise-free: a one-epoch network predicts held-out
    // patterns far worse than the solver does
    let mut cfg = small_config();
    cfg.scan.spacing_px = 4.0;
    cfg.dose_photons = Some(1e8);
    let ds = simulate_on(&cfg, Device::Cpu)?;
    let best = ReconConfig {
        refine: Some(IterativeConfig {
            iterations: Some(30),
            ..IterativeConfig::epie()
        }),
        ..ReconConfig::best()
    };
    let recon = bundle.reconstruct(&ds, &best)?;
    let s = recon.metadata.selection.clone().expect("selection recorded");
    assert_eq!(s.heldout_patterns, (ds.n_images() as f64 * 0.1).round() as usize);
    assert!(s.redundancy > 4.0, "{}", s.redundancy);
    let err = |c: Candidate| s.heldout_errors.iter().find(|e| e.0 == c).unwrap().1.unwrap();
    assert!(
        err(Candidate::Network) > 2.0 * err(Candidate::Solver),
        "{:?}",
        s.heldout_errors
    );
    assert_ne!(s.chosen, Candidate::Network);
    assert_eq!(s.heldout_deviances.len(), 3);
    assert!(s.heldout_deviances.iter().all(|d| d.1.unwrap() >= 0.0));
    let min = s
        .heldout_errors
        .iter()
        .map(|e| e.1.unwrap())
        .fold(f64::INFINITY, f64::min);
    assert_eq!(err(s.chosen), min, "the smallest misfit wins");
    // the winner is rebuilt from every pattern
    match s.chosen {
        Candidate::Solver => {
            assert_eq!(recon.metadata.source, "iterative epie");
            assert_eq!(recon.metadata.solver.as_ref().unwrap().iterations_run, 30);
        }
        _ => assert_eq!(recon.metadata.refinement.as_ref().unwrap().iterations_run, 30),
    }
    assert_eq!(recon.object.dim(), ds.object.as_ref().unwrap().dim());
    // recorded in the NPZ
    let path = dir.path().join("best.npz");
    write_recon_npz(&recon, &path)?;
    let meta = recon_metadata(path.to_str().unwrap());
    assert!(meta["selection"]["chosen"].is_string(), "{meta}");

    // without overlap the test is blind: the network starts the solver
    let mut sparse = small_config();
    sparse.scan.spacing_px = 40.0;
    sparse.object_size_px = 200;
    let ds = simulate_on(&sparse, Device::Cpu)?;
    let recon = bundle.reconstruct(&ds, &best)?;
    let s = recon.metadata.selection.unwrap();
    assert!(s.redundancy < 1.8, "{}", s.redundancy);
    assert_eq!(s.chosen, Candidate::NetworkThenSolver);
    assert!(s.heldout_errors.iter().all(|e| e.1.is_none()));

    // sparse crops grow until the lit pixels inside the scan are stitched
    let lit = ptycho_workbench::physics::illuminated_mask(
        ds.probe.view(),
        ds.positions_px.view(),
        [ds.object.as_ref().unwrap().nrows(), ds.object.as_ref().unwrap().ncols()],
    )?;
    let covered_fraction = |coverage: &Array2<f32>| {
        let (xs, ys) = (ds.positions_px.column(0), ds.positions_px.column(1));
        let (x0, x1) = (xs.fold(f64::MAX, |a, &v| a.min(v)), xs.fold(f64::MIN, |a, &v| a.max(v)));
        let (y0, y1) = (ys.fold(f64::MAX, |a, &v| a.min(v)), ys.fold(f64::MIN, |a, &v| a.max(v)));
        let inside: Vec<_> = lit
            .indexed_iter()
            .filter(|&((r, c), &l)| l && (y0..=y1).contains(&(r as f64)) && (x0..=x1).contains(&(c as f64)))
            .map(|(p, _)| p)
            .collect();
        inside.iter().filter(|&&p| coverage[p] > 0.0).count() as f64 / inside.len() as f64
    };
    let small = ReconConfig {
        crop_px: 4,
        ..ReconConfig::default()
    };
    let grown = bundle.reconstruct(&ds, &small)?;
    let fixed = bundle.reconstruct(
        &ds,
        &ReconConfig {
            cover_scan: false,
            ..small
        },
    )?;
    assert!(
        covered_fraction(&grown.coverage) >= 0.99,
        "{}",
        covered_fraction(&grown.coverage)
    );
    assert!(
        covered_fraction(&fixed.coverage) < 0.5,
        "{}",
        covered_fraction(&fixed.coverage)
    );
    assert!(grown.metadata.config.as_ref().unwrap().crop_px > 4);
    assert_eq!(fixed.metadata.config.as_ref().unwrap().crop_px, 4);

    // selection needs a solver, and does not combine with test-time training
    let no_solver = ReconConfig {
        refine: None,
        ..ReconConfig::best()
    };
    assert!(bundle.reconstruct(&ds, &no_solver).is_err());
    let adapting = ReconConfig {
        adapt: Some(AdaptConfig::default()),
        ..ReconConfig::best()
    };
    assert!(bundle.reconstruct(&ds, &adapting).is_err());
    Ok(())
}

#[test]
fn phase_consistent_stitching_is_the_default_and_can_be_turned_off() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let bundle = Bundle::load(&trained_bundle(dir.path(), 2), Device::Cpu)?;
    let ds = bundle_dataset();
    assert!(ReconConfig::default().phase_sync);
    let synced = bundle.reconstruct(&ds, &ReconConfig::default())?;
    let plain_cfg = ReconConfig {
        phase_sync: false,
        ..ReconConfig::default()
    };
    let plain = bundle.reconstruct(&ds, &plain_cfg)?;
    // the same pixels are covered, by the same weights; only the values differ
    assert_eq!(synced.coverage, plain.coverage);
    assert_ne!(synced.object, plain.object);
    assert!(synced.object.iter().all(|v| v.re.is_finite() && v.im.is_finite()));
    // turning each group by a unit factor keeps every crop's magnitude: the
    // average can only gain amplitude where neighbours agreed less before
    let mean = |o: &Array2<Complex32>| o.iter().map(|v| v.norm() as f64).sum::<f64>() / o.len() as f64;
    assert!(mean(&synced.object) >= 0.999 * mean(&plain.object));
    assert!(synced.metadata.config.as_ref().unwrap().phase_sync);
    assert!(!plain.metadata.config.as_ref().unwrap().phase_sync);
    Ok(())
}

#[test]
fn test_time_training_lowers_the_physics_loss_on_the_scan_it_reconstructs() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let bundle = Bundle::load(&trained_bundle(dir.path(), 1), Device::Cpu)?;
    // another object of the same family
    let mut cfg = small_config();
    cfg.scan.spacing_px = 4.0;
    cfg.seed = 9;
    let ds = simulate_on(&cfg, Device::Cpu)?;
    let adapted = bundle.reconstruct(
        &ds,
        &ReconConfig {
            adapt: Some(AdaptConfig {
                steps: 30,
                learning_rate: 1e-3,
                ..AdaptConfig::default()
            }),
            ..ReconConfig::default()
        },
    )?;
    let a = adapted.metadata.adaptation.as_ref().unwrap();
    assert_eq!(a.steps, 30);
    assert!(a.loss_after < a.loss_before, "{a:?}");
    // the bundle itself is untouched: inference without adaptation is as before
    let again = Bundle::load(&bundle.path, Device::Cpu)?.reconstruct(&ds, &ReconConfig::default())?;
    assert_eq!(bundle.reconstruct(&ds, &ReconConfig::default())?.object, again.object);
    assert_ne!(adapted.object, again.object);
    Ok(())
}

fn ok(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
    );
}

#[test]
fn the_cli_starts_from_a_reconstruction_refines_adapts_and_fine_tunes() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let bundle = trained_bundle(dir.path(), 1);
    let data = dir.path().join("data.npz");
    write_npz(&bundle_dataset(), &data)?;
    let p = |f: &str| dir.path().join(f).display().to_string();
    let (b, d) = (bundle.display().to_string(), data.display().to_string());

    // infer, then reconstruct from it; the same in one call with --refine
    ok(&ptycho(&[
        "infer",
        "--bundle",
        &b,
        "--data",
        &d,
        "--out",
        &p("net.npz"),
    ]));
    let out = ptycho(&[
        "reconstruct",
        "--data",
        &d,
        "--init",
        &p("net.npz"),
        "--iterations",
        "3",
        "--out",
        &p("from.npz"),
    ]);
    ok(&out);
    let meta = recon_metadata(&p("from.npz"));
    assert_eq!(meta["solver"]["init"]["source"], p("net.npz"));
    assert_eq!(meta["solver"]["settings"]["iterations"], 3);
    let out = ptycho(&[
        "infer",
        "--bundle",
        &b,
        "--data",
        &d,
        "--refine",
        "3",
        "--out",
        &p("hyb.npz"),
    ]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("then 3 iterations"));
    let meta = recon_metadata(&p("hyb.npz"));
    assert_eq!(meta["source"], "pinn inference + epie");
    assert_eq!(meta["config"]["refine"]["iterations"], 3);
    let bad = ptycho(&[
        "infer",
        "--bundle",
        &b,
        "--data",
        &d,
        "--refine",
        "0",
        "--out",
        &p("x.npz"),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--refine"));

    // the held-out choice, with the solver's budget given
    let out = ptycho(&[
        "infer",
        "--bundle",
        &b,
        "--data",
        &d,
        "--select",
        "--refine",
        "3",
        "--out",
        &p("best.npz"),
    ]);
    ok(&out);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("chose ") && said.contains("held-out misfit network"),
        "{said}"
    );
    let meta = recon_metadata(&p("best.npz"));
    let chosen = meta["selection"]["chosen"].as_str().unwrap().to_string();
    assert!(["network", "solver", "network-then-solver"].contains(&chosen.as_str()));
    assert_eq!(meta["selection"]["heldout_errors"].as_array().unwrap().len(), 3);
    // the crop used is recorded; this dense scan keeps 20 px
    assert_eq!(recon_metadata(&p("hyb.npz"))["config"]["crop_px"], 20);

    // test-time training in infer, and fine-tuning with train --init-bundle
    ok(&ptycho(&[
        "infer",
        "--bundle",
        &b,
        "--data",
        &d,
        "--adapt",
        "4",
        "--out",
        &p("ad.npz"),
    ]));
    assert_eq!(recon_metadata(&p("ad.npz"))["adaptation"]["steps"], 4);
    ok(&ptycho(&[
        "train",
        "--train",
        &d,
        "--init-bundle",
        &b,
        "--epochs",
        "1",
        "--n-groups",
        "16",
        "--out",
        &p("tuned"),
    ]));
    let tuned = Bundle::load(&dir.path().join("tuned/wts.h5.zip"), Device::Cpu)?;
    assert_eq!(tuned.config(), Bundle::load(&bundle, Device::Cpu)?.config());
    let spec: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(p("tuned/config.json"))?)?;
    assert_eq!(spec["init_bundle"], b);
    // another gridsize than the bundle's is refused by name
    let bad = ptycho(&[
        "train",
        "--train",
        &d,
        "--init-bundle",
        &b,
        "--gridsize",
        "2",
        "--out",
        &p("bad"),
    ]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--gridsize 2"));
    Ok(())
}

fn recon_metadata(path: &str) -> serde_json::Value {
    npz_metadata(std::path::Path::new(path))
}

#[test]
fn compare_scores_only_the_illuminated_pixels_when_asked() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    // a sparse raster: 20-px spacing with N = 32 leaves gaps
    let mut cfg = small_config();
    cfg.scan.spacing_px = 20.0;
    let ds = simulate_on(&cfg, Device::Cpu)?;
    let data = dir.path().join("sparse.npz");
    write_npz(&ds, &data)?;
    let recon = reconstruct_iterative(&read_dataset(&data)?, &cpu(5), &mut |_| {})?.reconstruction;
    let r = dir.path().join("epie.npz");
    write_recon_npz(&recon, &r)?;
    let p = |f: &str| dir.path().join(f).display().to_string();
    let (d, r) = (data.display().to_string(), r.display().to_string());
    for score in ["region", "illuminated"] {
        ok(&ptycho(&[
            "compare",
            "--truth",
            &d,
            "--recon",
            &r,
            "--score-pixels",
            score,
            "--out",
            &p(score),
        ]));
    }
    let read = |s: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join(s).join("metrics.json")).unwrap()).unwrap()
    };
    let (all, lit) = (read("region"), read("illuminated"));
    assert!(all[0]["alignment"]["scored_fraction"].is_null());
    let f = lit[0]["alignment"]["scored_fraction"].as_f64().unwrap();
    assert!(f > 0.2 && f < 0.95, "scored fraction {f}");
    assert_ne!(all[0]["amplitude"]["ssim"], lit[0]["amplitude"]["ssim"]);
    let bad = ptycho(&[
        "compare",
        "--truth",
        &d,
        "--recon",
        &r,
        "--score-pixels",
        "lit",
        "--out",
        &p("x"),
    ]);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("score_pixels"));
    Ok(())
}
