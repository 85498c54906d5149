//! Mixed-state (partially coherent) probes outside the iterative solvers:
//! simulating with K incoherent modes, the PINN's physics layer adding the
//! modes' intensities, and bundles that keep every mode. References are
//! plain float64 FFTs mode by mode (`common::mixed_state_far_field`).
mod common;

use common::*;
use ndarray::{Array2, Axis};
use num_complex::Complex32;
use ptycho_workbench::bundle::{Bundle, BundleInputs, save_bundle};
use ptycho_workbench::data::Dataset;
use ptycho_workbench::model::ModelConfig;
use ptycho_workbench::simulate::{SimConfig, simulate_on};
use ptycho_workbench::train::{SilentObserver, TrainConfig, TrainedModel, Trainer, TrainingData};
use tch::Device;

/// [`small_config`] on a 4-px raster with `modes` incoherent modes, the
/// added ones with 15 % of the power each.
fn mixed_config(modes: usize) -> SimConfig {
    let mut cfg = small_config();
    cfg.scan.spacing_px = 4.0;
    cfg.probe.modes = modes;
    cfg.probe.mode_power = 0.15;
    cfg
}

fn power(a: ndarray::ArrayView2<'_, Complex32>) -> f64 {
    a.iter().map(|c| c.norm_sqr() as f64).sum()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs() as f64).fold(0.0, f64::max)
}

#[test]
fn simulating_with_modes_adds_their_intensities() -> TestResult {
    init();
    let mut cfg = mixed_config(3);
    cfg.dose_photons = None;
    let ds = simulate_on(&cfg, Device::Cpu)?;
    let modes = ds.probe_modes();
    assert_eq!(modes.shape(), [3, 32, 32]);
    // the power shares asked for, the modes orthogonal
    let total: f64 = modes.outer_iter().map(|m| power(m)).sum();
    let shares: Vec<f64> = modes.outer_iter().map(|m| power(m) / total).collect();
    for (got, want) in shares.iter().zip([0.7, 0.15, 0.15]) {
        assert!((got - want).abs() < 1e-4, "{shares:?}");
    }
    for (i, j) in [(0, 1), (0, 2), (1, 2)] {
        let (a, b) = (modes.index_axis(Axis(0), i), modes.index_axis(Axis(0), j));
        let dot: Complex32 = a.iter().zip(b.iter()).map(|(x, y)| x.conj() * y).sum();
        assert!(dot.norm() as f64 <= 1e-4 * total, "modes {i} and {j}: {dot}");
    }
    // noise free: the patterns are the modes' far fields added in intensity
    let want = mixed_state_amplitudes(&ds, &modes);
    let d = max_abs_diff(ds.diffraction.as_slice().unwrap(), want.as_slice().unwrap());
    let peak = want.iter().fold(0f32, |m, &v| m.max(v)) as f64;
    assert!(d < 1e-4 * peak, "{d} of {peak}");
    // and not the first mode's alone
    let coherent = mixed_state_amplitudes(&ds, &modes.slice(ndarray::s![..1, .., ..]).to_owned());
    assert!(max_abs_diff(ds.diffraction.as_slice().unwrap(), coherent.as_slice().unwrap()) > 0.05 * peak);
    // the forward model used elsewhere agrees
    let forward = ptycho_workbench::simulate::forward_amplitudes(&ds, Device::Cpu)?;
    let forward: Vec<f32> = Vec::try_from(forward.reshape([-1]))?;
    assert!(max_abs_diff(&forward, want.as_slice().unwrap()) < 1e-4 * peak);
    Ok(())
}

#[test]
fn mode_settings_are_validated_and_a_coherent_config_saves_as_before() {
    let ok = SimConfig::from_toml("[probe]\nmodes = 2\nmode_power = 0.2\n").unwrap();
    assert_eq!((ok.probe.modes, ok.probe.mode_power), (2, 0.2));
    ok.validate().unwrap();
    for (text, key) in [
        ("[probe]\nmodes = 0\n", "probe.modes"),
        ("[probe]\nmodes = 17\n", "probe.modes"),
        ("[probe]\nmodes = 3\nmode_power = 0.4\n", "probe.mode_power"),
        ("[probe]\nmodes = 2\nmode_power = 0.0\n", "probe.mode_power"),
    ] {
        let err = SimConfig::from_toml(text).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
    // one mode (the default) leaves the saved config as it was, so earlier
    // datasets' and studies' recorded configs still compare equal
    let saved = serde_json::to_string(&SimConfig::default()).unwrap();
    assert!(!saved.contains("modes") && !saved.contains("mode_power"), "{saved}");
}

/// A gridsize-1 PINN trained for one short epoch on `ds`.
fn train_briefly(ds: &Dataset) -> (TrainConfig, ModelConfig, ptycho_workbench::train::TrainOutcome) {
    let mut train = TrainConfig::quick();
    train.epochs = 1;
    train.grouping.n_groups = Some(32);
    let model = ModelConfig {
        n: 32,
        gridsize: 1,
        n_filters_scale: 1,
        max_offset_px: 8.0,
        ..ModelConfig::default()
    };
    let out = Trainer::new(model.clone(), train.clone(), Device::Cpu)
        .fit(ds, &mut SilentObserver)
        .unwrap();
    (train, model, out)
}

/// Saves `outcome` as a bundle in `dir`; the bundle's path and the shape
/// of its `probe.npy` as stored in the zip.
fn save_and_read_probe_shape(
    ds: &Dataset,
    train: &TrainConfig,
    outcome: &ptycho_workbench::train::TrainOutcome,
    dir: &std::path::Path,
) -> Result<(std::path::PathBuf, Vec<usize>), Box<dyn std::error::Error>> {
    let path = save_bundle(
        &BundleInputs {
            outcome,
            train_config: train,
            dataset: ds,
        },
        dir,
    )?;
    let members = ptycho_workbench::data::archive::read_members(&path, "bundle", |n| n == "probe.npy")?;
    let stored = ptycho_workbench::data::npy::decode(&members[0].1, &path, "probe.npy")?;
    Ok((path, stored.shape))
}

#[test]
fn the_pinn_diffracts_through_every_mode_and_its_bundle_keeps_them() -> TestResult {
    init();
    let mut cfg = mixed_config(2);
    cfg.dose_photons = Some(1e5);
    let ds = simulate_on(&cfg, Device::Cpu)?;
    let (train, model_cfg, outcome) = train_briefly(&ds);
    let TrainedModel::Pinn(pinn) = &outcome.model else {
        panic!("a PINN was asked for")
    };
    assert_eq!(pinn.probe_modes(), 2, "the trainer takes every mode of the dataset");

    // the physics layer: predicted amplitudes = s·sqrt(Σ_k |F(P_k·O)|²) of
    // the network's own object patches, against float64 FFTs mode by mode
    let data = TrainingData::new(&ds, &model_cfg, &train.grouping, Device::Cpu)?;
    let (x, off) = (data.x.narrow(0, 0, 4), data.offsets.narrow(0, 0, 4));
    let predicted = pinn.autoencoder(&x, &off)?.amplitude_scaled / pinn.intensity_scale();
    let patches = pinn.diffraction_to_member_patches(&x, &off)?;
    let patches = ptycho_workbench::array::tensor_to_c64(&patches)?;
    let modes = ds.probe_modes();
    let mut worst: f64 = 0.0;
    let mut peak: f64 = 0.0;
    for b in 0..4 {
        let patch = patches.index_axis(Axis(0), b);
        let patch = patch.index_axis(Axis(0), 0);
        let want = mixed_state_far_field(patch.into_dimensionality()?, &modes);
        let got: Vec<f32> = Vec::try_from(predicted.get(b as i64).get(0).reshape([-1]))?;
        worst = worst.max(max_abs_diff(&got, want.as_slice().unwrap()));
        peak = peak.max(want.iter().fold(0f32, |m, &v| m.max(v)) as f64);
    }
    assert!(worst < 1e-4 * peak, "{worst} of {peak}");

    // the bundle stores `[K, N, N]` and a reload predicts the same counts
    let dir = tempfile::tempdir()?;
    let (path, stored_shape) = save_and_read_probe_shape(&ds, &train, &outcome, dir.path())?;
    assert_eq!(stored_shape, [2, 32, 32]);
    let loaded = Bundle::load(&path, Device::Cpu)?;
    assert_eq!(loaded.probe_modes, modes);
    assert_eq!(loaded.probe, ds.probe);
    let TrainedModel::Pinn(again) = &loaded.model else {
        panic!("the bundle holds a PINN")
    };
    assert_eq!(again.probe_modes(), 2);
    let reloaded = again.autoencoder(&x, &off)?.amplitude_scaled;
    let original = pinn.autoencoder(&x, &off)?.amplitude_scaled;
    assert_eq!(
        (reloaded - original).abs().max().double_value(&[]),
        0.0,
        "the reloaded model predicts what the trained one did"
    );
    Ok(())
}

#[test]
fn a_coherent_bundle_still_stores_one_probe_plane() -> TestResult {
    init();
    let ds = simulate_on(&mixed_config(1), Device::Cpu)?;
    let (train, _, outcome) = train_briefly(&ds);
    let dir = tempfile::tempdir()?;
    let (path, stored_shape) = save_and_read_probe_shape(&ds, &train, &outcome, dir.path())?;
    assert_eq!(stored_shape, [32, 32], "earlier readers of probe.npy see what they did");
    let loaded = Bundle::load(&path, Device::Cpu)?;
    assert_eq!(loaded.probe_modes.shape(), [1, 32, 32]);
    let first: Array2<Complex32> = loaded.probe_modes.index_axis(Axis(0), 0).to_owned();
    assert_eq!(first, ds.probe);
    Ok(())
}
