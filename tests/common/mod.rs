//! Helpers shared by the integration tests.
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::Command;

use ptycho_workbench::data::npy::{NpyArray, NpyData};
use ptycho_workbench::simulate::SimConfig;

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Runs the `ptycho` binary as a user would (OpenMP on one thread: tests
/// run in parallel on 2-core machines).
pub fn ptycho(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("ptycho runs")
}

/// Pins libtorch to one thread (2-core machines, tests run in parallel).
pub fn init() {
    tch::set_num_threads(1);
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// The project's Python (set up by scripts/setup.sh).
pub fn python() -> PathBuf {
    let p = root().join(".venv/bin/python");
    assert!(p.exists(), "{} is missing: run scripts/setup.sh", p.display());
    p
}

/// Runs a Python script and parses its stdout as JSON; panics with stderr on failure.
pub fn run_python_json(script: &Path, args: &[&Path]) -> serde_json::Value {
    let out = Command::new(python())
        .arg(script)
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "{} failed:\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("script prints JSON")
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("readable")).expect("JSON")
}

/// A named member of an .npz fixture.
pub fn npz_member(path: &Path, key: &str) -> NpyArray {
    ptycho_workbench::data::npy::read_npz(path)
        .expect("fixture reads")
        .into_iter()
        .find(|(k, _)| k == key)
        .unwrap_or_else(|| panic!("{} has no `{key}`", path.display()))
        .1
        .expect("member decodes")
}

/// The `_metadata` JSON string of one of our NPZ files (a reconstruction,
/// a dataset), parsed.
pub fn npz_metadata(path: &Path) -> serde_json::Value {
    match npz_member(path, "_metadata").data {
        NpyData::Str(s) => serde_json::from_str(&s[0]).expect("_metadata is JSON"),
        other => panic!("{}: _metadata is {}", path.display(), other.dtype_name()),
    }
}

pub fn f64s(a: &NpyArray) -> Vec<f64> {
    a.data.to_f64().expect("real array")
}

pub fn complex(a: &NpyArray) -> Vec<num_complex::Complex32> {
    match &a.data {
        NpyData::C64(v) => v.clone(),
        other => panic!("expected complex64, got {}", other.dtype_name()),
    }
}

/// A small, fast simulation (N = 32, 96×96 object).
pub fn small_config() -> SimConfig {
    let mut cfg = SimConfig {
        seed: 3,
        size_px: 32,
        object_size_px: 96,
        dose_photons: Some(1e4),
        ..SimConfig::default()
    };
    cfg.scan.spacing_px = 6.0;
    cfg.object.features = Some(30);
    cfg
}

/// The dataset [`trained_bundle`] trains on: [`small_config`] on a 4-px raster.
pub fn bundle_dataset() -> ptycho_workbench::data::Dataset {
    let mut cfg = small_config();
    cfg.scan.spacing_px = 4.0;
    ptycho_workbench::simulate::simulate_on(&cfg, tch::Device::Cpu).unwrap()
}

/// A small N = 64 dataset (a 128×128 object on a 16-px raster), for what
/// needs PtychoPINN's smallest patch size.
pub fn bundle_dataset_n64() -> ptycho_workbench::data::Dataset {
    let mut cfg = small_config();
    cfg.size_px = 64;
    cfg.object_size_px = 128;
    cfg.scan.spacing_px = 16.0;
    ptycho_workbench::simulate::simulate_on(&cfg, tch::Device::Cpu).unwrap()
}

/// A PINN (N = 32, filters ×1) trained for one quick epoch of 32 groups on
/// [`bundle_dataset`], saved as `dir/wts.h5.zip`.
pub fn trained_bundle(dir: &Path, gridsize: usize) -> PathBuf {
    use ptycho_workbench::bundle::{BundleInputs, save_bundle};
    use ptycho_workbench::model::ModelConfig;
    use ptycho_workbench::train::{SilentObserver, TrainConfig, Trainer};
    let ds = bundle_dataset();
    let mut train = TrainConfig::quick();
    train.epochs = 1;
    train.grouping.n_groups = Some(32);
    let model = ModelConfig {
        n: 32,
        gridsize,
        n_filters_scale: 1,
        max_offset_px: 8.0,
        ..ModelConfig::default()
    };
    let trainer = Trainer::new(model, train.clone(), tch::Device::Cpu);
    let outcome = trainer.fit(&ds, &mut SilentObserver).unwrap();
    save_bundle(
        &BundleInputs {
            outcome: &outcome,
            train_config: &train,
            dataset: &ds,
        },
        dir,
    )
    .unwrap()
}

/// Maximum relative error `max|a − b| / max|b|`.
pub fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    a.iter().zip(b).fold(0.0f64, |m, (x, y)| m.max((x - y).abs())) / scale
}

/// `sqrt(Σ_k |FFT(P_k·patch)|²)/N` of one object patch `[N, N]` under the
/// modes `[K, N, N]`, zero frequency at `(N/2, N/2)`: plain float64 FFTs,
/// mode by mode, independent of the library's batched and fused code.
pub fn mixed_state_far_field(
    patch: ndarray::ArrayView2<'_, num_complex::Complex32>,
    modes: &ndarray::Array3<num_complex::Complex32>,
) -> ndarray::Array2<f32> {
    use tch::{Device, Kind, Tensor};
    let n = patch.nrows();
    let mut intensity = Tensor::zeros([n as i64, n as i64], (Kind::Double, Device::Cpu));
    for mode in modes.outer_iter() {
        let exit: Vec<num_complex::Complex32> = mode.iter().zip(patch.iter()).map(|(a, b)| a * b).collect();
        let re: Vec<f32> = exit.iter().map(|c| c.re).collect();
        let im: Vec<f32> = exit.iter().map(|c| c.im).collect();
        let field = Tensor::complex(&Tensor::from_slice(&re), &Tensor::from_slice(&im))
            .view([n as i64, n as i64])
            .to_kind(Kind::ComplexDouble);
        let spectrum = field
            .fft_fft2(None::<&[i64]>, [0, 1], "backward")
            .fft_fftshift(None::<&[i64]>);
        intensity += spectrum.abs().square();
    }
    let a: Vec<f64> = Vec::try_from((intensity / (n * n) as f64).sqrt().reshape([-1])).unwrap();
    ndarray::Array2::from_shape_vec((n, n), a.into_iter().map(|v| v as f32).collect()).unwrap()
}

/// [`mixed_state_far_field`] at every (integer) position of `ds`, from its
/// ground-truth object.
pub fn mixed_state_amplitudes(
    ds: &ptycho_workbench::data::Dataset,
    modes: &ndarray::Array3<num_complex::Complex32>,
) -> ndarray::Array3<f32> {
    use ndarray::s;
    let n = ds.patch_size();
    let object = ds.object.as_ref().unwrap();
    let mut out = ndarray::Array3::zeros((ds.n_images(), n, n));
    for (k, p) in ds.positions_px.outer_iter().enumerate() {
        let (x, y) = (p[0].round() as usize, p[1].round() as usize);
        let patch = object.slice(s![y - n / 2..y + n / 2, x - n / 2..x + n / 2]);
        out.index_axis_mut(ndarray::Axis(0), k)
            .assign(&mixed_state_far_field(patch, modes));
    }
    out
}
