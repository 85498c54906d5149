//! Iterative solvers (ePIE, gradient) on simulated data: convergence to the
//! truth, determinism, probe refinement, configuration errors, output format.
mod common;

use common::*;
use ndarray::Array2;
use num_complex::Complex32;
use ptycho_workbench::data::Dataset;
use ptycho_workbench::recon::iterative::{
    Algorithm, IterativeConfig, Loss, Optimizer, StopReason, object_error, reconstruct_iterative,
};
use ptycho_workbench::recon::write_recon_npz;
use ptycho_workbench::simulate::{SimConfig, simulate_on};
use tch::Device;

/// Noise-free N = 32 data on a 96×96 object: 11×11 raster, spacing 6 px.
fn noise_free() -> Dataset {
    let cfg = SimConfig {
        dose_photons: None,
        ..small_config()
    };
    simulate_on(&cfg, Device::Cpu).unwrap()
}

/// On the CPU, with the classic full steps (ePIE's α = 1, the gradient
/// solver's 0.9 of the least-squares step) and the normaliser for
/// noise-free data, rather than the choice for noisy data.
fn cpu(cfg: IterativeConfig) -> IterativeConfig {
    let mut c = IterativeConfig {
        device: "cpu".into(),
        max_weight: Some(0.003),
        ..cfg
    };
    c.epie.alpha = Some(1.0);
    c.gradient.step_scale = Some(0.9);
    c
}

fn error_of(ds: &Dataset, object: &Array2<Complex32>) -> f64 {
    object_error(object, ds.object.as_ref().unwrap(), &ds.positions_px, ds.patch_size()).unwrap()
}

#[test]
fn epie_and_gradient_recover_the_object_from_noise_free_data() -> TestResult {
    init();
    let ds = noise_free();
    let flat = Array2::from_elem((96, 96), Complex32::new(1.0, 0.0));
    let baseline = error_of(&ds, &flat);
    for (name, cfg) in [
        ("epie", IterativeConfig::epie()),
        ("gradient lsq", IterativeConfig::gradient()),
        (
            "gradient lsq poisson",
            IterativeConfig {
                gradient: ptycho_workbench::recon::iterative::GradientConfig {
                    loss: Loss::Poisson,
                    ..Default::default()
                },
                ..IterativeConfig::gradient()
            },
        ),
    ] {
        let cfg = cpu(IterativeConfig {
            iterations: Some(30),
            ..cfg
        });
        let mut seen = Vec::new();
        let out = reconstruct_iterative(&ds, &cfg, &mut |r| seen.push(r.iteration))?;
        let err = error_of(&ds, &out.reconstruction.object);
        let history: Vec<f64> = out.history.iter().map(|r| r.data_error).collect();
        let shown: Vec<String> = history.iter().step_by(5).map(|e| format!("{e:.1e}")).collect();
        eprintln!("{name}: object error {err:.2e} (flat {baseline:.2e}), data error {shown:?}");
        assert!(err <= 1e-2, "{name}: object error {err}");
        assert_eq!(seen, (1..=30).collect::<Vec<_>>(), "{name}: observer");
        assert!(history[29] < 1e-3 * history[0], "{name}: data error {history:?}");
        assert_eq!(out.probe, ds.probe, "{name}: the probe is not refined");
    }
    Ok(())
}

#[test]
fn adam_lowers_the_object_error() -> TestResult {
    init();
    let ds = noise_free();
    let cfg = cpu(IterativeConfig {
        iterations: Some(10),
        gradient: ptycho_workbench::recon::iterative::GradientConfig {
            optimizer: Optimizer::Adam,
            ..Default::default()
        },
        ..IterativeConfig::gradient()
    });
    let out = reconstruct_iterative(&ds, &cfg, &mut |_| {})?;
    let err = error_of(&ds, &out.reconstruction.object);
    let flat = error_of(&ds, &Array2::from_elem((96, 96), Complex32::new(1.0, 0.0)));
    assert!(err < 0.5 * flat, "adam: {err} vs flat {flat}");
    Ok(())
}

#[test]
fn the_same_seed_gives_a_bit_identical_object() -> TestResult {
    init();
    let ds = noise_free();
    for algorithm in [Algorithm::Epie, Algorithm::Gradient] {
        let cfg = cpu(IterativeConfig {
            algorithm,
            iterations: Some(3),
            seed: 7,
            ..IterativeConfig::default()
        });
        let a = reconstruct_iterative(&ds, &cfg, &mut |_| {})?;
        let b = reconstruct_iterative(&ds, &cfg, &mut |_| {})?;
        assert_eq!(a.reconstruction.object, b.reconstruction.object, "{algorithm:?}");
        let c = reconstruct_iterative(&ds, &IterativeConfig { seed: 8, ..cfg }, &mut |_| {})?;
        assert_ne!(
            a.reconstruction.object, c.reconstruction.object,
            "{algorithm:?}: seed is used"
        );
    }
    Ok(())
}

#[test]
fn probe_refinement_lowers_the_data_error_from_a_perturbed_probe() -> TestResult {
    init();
    let mut ds = noise_free();
    // a wrong probe: 30 % brighter, with a quadratic phase error of about 1 rad at the edge
    let n = ds.patch_size() as f32;
    ds.probe = Array2::from_shape_fn(ds.probe.dim(), |(i, j)| {
        let (y, x) = (i as f32 - n / 2.0, j as f32 - n / 2.0);
        ds.probe[[i, j]] * Complex32::from_polar(1.3, (x * x + y * y) / (n * n / 4.0))
    });
    for algorithm in [Algorithm::Epie, Algorithm::Gradient] {
        let base = cpu(IterativeConfig {
            algorithm,
            iterations: Some(30),
            ..IterativeConfig::default()
        });
        let fixed = reconstruct_iterative(&ds, &base, &mut |_| {})?;
        let refined = reconstruct_iterative(
            &ds,
            &IterativeConfig {
                refine_probe: true,
                ..base
            },
            &mut |_| {},
        )?;
        let (f, r) = (
            fixed.history.last().unwrap().data_error,
            refined.history.last().unwrap().data_error,
        );
        eprintln!("{algorithm:?}: fixed probe {f:.2e}, refined {r:.2e}");
        assert!(r < 0.2 * f, "{algorithm:?}: refined {r} vs fixed {f}");
        assert!(r < 0.01 * refined.history[0].data_error, "{algorithm:?}");
        assert_ne!(refined.probe, ds.probe);
    }
    Ok(())
}

#[test]
fn bad_configs_name_the_field() {
    let check = |cfg: IterativeConfig, field: &str| {
        let e = cfg.validate().expect_err(field).to_string();
        assert!(e.contains(&format!("`{field}`")), "{field}: {e}");
    };
    let d = IterativeConfig::default;
    check(
        IterativeConfig {
            iterations: Some(0),
            ..d()
        },
        "iterations",
    );
    check(IterativeConfig { batch_size: 0, ..d() }, "batch_size");
    check(
        IterativeConfig {
            max_weight: Some(0.0),
            ..d()
        },
        "max_weight",
    );
    check(
        IterativeConfig {
            max_weight: Some(f64::NAN),
            ..d()
        },
        "max_weight",
    );
    check(IterativeConfig { tolerance: -1.0, ..d() }, "tolerance");
    check(
        IterativeConfig {
            device: "tpu".into(),
            ..d()
        },
        "device",
    );
    let mut c = d();
    c.epie.alpha = Some(-1.0);
    check(c, "epie.alpha");
    let mut c = d();
    c.gradient.learning_rate = 0.0;
    check(c, "gradient.learning_rate");
    check(
        IterativeConfig {
            refine_probe: true,
            iterations: Some(100),
            probe_start_iteration: 101,
            ..d()
        },
        "probe_start_iteration",
    );
    let e = IterativeConfig::from_toml("iterations = 5\nlearning_rate = 0.1\n").unwrap_err();
    assert!(e.to_string().contains("unknown field `learning_rate`"), "{e}");
    let ok = IterativeConfig::from_toml(
        "algorithm = \"gradient\"\niterations = 5\n[gradient]\nloss = \"poisson\"\noptimizer = \"adam\"\n",
    )
    .unwrap();
    assert_eq!(ok.gradient.loss, Loss::Poisson);
    assert_eq!(ok.gradient.optimizer, Optimizer::Adam);
    assert!(ok.validate().is_ok());
    // the names parse from flags too
    assert_eq!("gradient".parse::<Algorithm>().unwrap(), Algorithm::Gradient);
    assert_eq!("lsq".parse::<Optimizer>().unwrap(), Optimizer::Lsq);
    let e = "poison".parse::<Loss>().unwrap_err().to_string();
    assert!(e.contains("`gradient.loss`") && e.contains("amplitude, poisson"), "{e}");
}

#[test]
fn tolerance_stops_early_and_the_output_records_how_it_ran() -> TestResult {
    init();
    let ds = noise_free();
    let cfg = cpu(IterativeConfig {
        iterations: Some(200),
        tolerance: 0.2,
        ..IterativeConfig::default()
    });
    let out = reconstruct_iterative(&ds, &cfg, &mut |_| {})?;
    let r = &out.reconstruction;
    let s = r.metadata.solver.as_ref().unwrap();
    assert_eq!(s.stop_reason, StopReason::Tolerance);
    assert!(s.iterations_run < 200 && s.iterations_run == out.history.len());
    assert_eq!(s.final_data_error, out.history.last().unwrap().data_error);
    assert_eq!(s.max_position_rounding_px, 0.0);
    assert_eq!(r.metadata.n_groups, ds.n_images());
    assert!(r.metadata.bundle_sha256.is_none() && r.metadata.config.is_none());
    // scanned pixels are lit, the far corner is not and keeps the initial 1
    assert_eq!(r.object.dim(), (96, 96));
    assert!(r.coverage[[48, 48]] > 0.0);
    assert_eq!(r.coverage[[0, 0]], 0.0);
    assert_eq!(r.object[[0, 0]], Complex32::new(1.0, 0.0));
    // the NPZ keeps its keys; _metadata carries the solver summary
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("recon.npz");
    write_recon_npz(r, &path)?;
    let keys: Vec<String> = ptycho_workbench::data::npy::read_npz(&path)?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(keys, ["object", "coverage", "_metadata"]);
    let json = npz_metadata(&path);
    assert_eq!(json["solver"]["stop_reason"], "tolerance");
    assert_eq!(json["solver"]["config"]["algorithm"], "epie");
    assert_eq!(json["source"], "iterative epie");
    Ok(())
}

#[test]
fn datasets_without_an_object_and_with_fractional_positions_run() -> TestResult {
    init();
    let mut ds = noise_free();
    ds.object = None;
    ds.positions_px[[0, 0]] += 0.3;
    let out = reconstruct_iterative(
        &ds,
        &cpu(IterativeConfig {
            iterations: Some(2),
            ..Default::default()
        }),
        &mut |_| {},
    )?;
    let s = out.reconstruction.metadata.solver.unwrap();
    assert!((s.max_position_rounding_px - 0.3).abs() < 1e-9);
    // the canvas: largest position + N/2
    let [h, w] = ptycho_workbench::data::product::canvas_shape(&ds.positions_px, 32);
    assert_eq!(out.reconstruction.object.dim(), (h, w));
    // positions far outside any sensible grid (metres taken for pixels, say) are refused
    ds.positions_px[[1, 0]] = 1e6;
    let e = reconstruct_iterative(&ds, &cpu(IterativeConfig::default()), &mut |_| {}).unwrap_err();
    assert!(e.to_string().starts_with("positions:"), "{e}");
    Ok(())
}
