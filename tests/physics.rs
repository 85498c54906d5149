//! Physics against independent references: numpy/scipy fixtures, Parseval,
//! the fftshift convention, Poisson statistics, determinism.
mod common;

use common::*;
use ndarray::Array2;
use ptycho_workbench::array::{c64_to_tensor, tensor_to_c64, tensor_to_f32};
use ptycho_workbench::data::write_npz;
use ptycho_workbench::physics::{exit_waves, extract_patches, far_field_amplitude};
use ptycho_workbench::simulate::{ProbeKind, ScanKind, forward_amplitudes, simulate_on};
use tch::{Device, Kind, Tensor};

fn forward_fixture() -> (Tensor, Tensor, Tensor, Vec<f64>, Vec<f64>, Vec<usize>) {
    let path = fixture("forward/forward.npz");
    let obj = npz_member(&path, "object");
    let probe = npz_member(&path, "probe");
    let pos = npz_member(&path, "positions");
    let patches = npz_member(&path, "patches");
    let amp = npz_member(&path, "amplitude");
    let to_t = |a: &ptycho_workbench::data::npy::NpyArray| {
        let v = complex(a);
        let arr = Array2::from_shape_vec((a.shape[0], a.shape[1]), v).unwrap();
        c64_to_tensor(&arr, Device::Cpu)
    };
    let pos_t = Tensor::from_slice(&f64s(&pos)).view([pos.shape[0] as i64, 2]);
    let patch_re: Vec<f64> = complex(&patches)
        .iter()
        .flat_map(|c| [c.re as f64, c.im as f64])
        .collect();
    (to_t(&obj), to_t(&probe), pos_t, patch_re, f64s(&amp), amp.shape.clone())
}

#[test]
fn patches_match_scipy_map_coordinates_on_integer_and_fractional_positions() {
    init();
    let (obj, _, pos, expected, _, shape) = forward_fixture();
    let p = extract_patches(&obj, &pos, shape[1] as i64).unwrap();
    let got: Vec<f64> = tensor_to_c64(&p)
        .unwrap()
        .iter()
        .flat_map(|c| [c.re as f64, c.im as f64])
        .collect();
    let err = max_rel_err(&got, &expected);
    assert!(err < 1e-5, "relative error {err}");
    // integer positions (the first three) are exact copies of object pixels
    let n = shape[1];
    let exact = &got[..3 * n * n * 2];
    assert_eq!(
        exact,
        &expected[..3 * n * n * 2]
            .iter()
            .map(|v| *v as f32 as f64)
            .collect::<Vec<_>>()[..]
    );
}

#[test]
fn far_field_matches_numpy_to_1e5_relative() {
    init();
    let (obj, probe, pos, _, expected, shape) = forward_fixture();
    let p = extract_patches(&obj, &pos, shape[1] as i64).unwrap();
    let a = far_field_amplitude(&exit_waves(&probe, &p).unwrap());
    let got: Vec<f64> = tensor_to_f32(&a).unwrap().iter().map(|&v| v as f64).collect();
    let err = max_rel_err(&got, &expected);
    assert!(err < 1e-5, "relative error {err}");
}

#[test]
fn parseval_holds_for_random_exit_waves() {
    init();
    tch::manual_seed(0);
    let psi = Tensor::randn([4, 64, 64], (Kind::ComplexFloat, Device::Cpu));
    let a = far_field_amplitude(&psi);
    let lhs = a.to_kind(Kind::Double).square().sum(Kind::Double).double_value(&[]);
    let rhs = psi
        .abs()
        .to_kind(Kind::Double)
        .square()
        .sum(Kind::Double)
        .double_value(&[]);
    assert!(((lhs - rhs) / rhs).abs() < 1e-6, "{lhs} vs {rhs}");
}

#[test]
fn zero_frequency_sits_at_n_half_and_tilts_move_it() {
    init();
    let n = 32i64;
    // a plane wave exp(2πi·k·j/N) along x puts all energy at column N/2 + k
    for k in [0i64, 3, -5] {
        let j = Tensor::arange(n, (Kind::Double, Device::Cpu));
        let phase = (j * (2.0 * std::f64::consts::PI * k as f64 / n as f64))
            .view([1, n])
            .expand([n, n], false);
        let psi = Tensor::polar(&Tensor::ones([n, n], (Kind::Double, Device::Cpu)), &phase)
            .to_kind(Kind::ComplexFloat)
            .unsqueeze(0);
        let a = far_field_amplitude(&psi);
        let flat_argmax = a.view([-1]).argmax(0, false).int64_value(&[]);
        assert_eq!((flat_argmax / n, flat_argmax % n), (n / 2, n / 2 + k), "tilt {k}");
    }
}

#[test]
fn poisson_counts_are_integers_with_the_dose_as_mean_and_variance_equal_to_mean() {
    init();
    let mut cfg = small_config();
    cfg.dose_photons = Some(2e4);
    cfg.scan.kind = ScanKind::Random;
    cfg.scan.n_images = Some(600);
    let ds = simulate_on(&cfg, Device::Cpu).unwrap();
    let s = ds.metadata.intensity_scale.unwrap();
    let counts: Vec<f64> = ds.diffraction.iter().map(|&x| (s * x as f64).powi(2)).collect();
    for k in &counts {
        assert!(
            (k - k.round()).abs() < 1e-3 * k.max(1.0),
            "(s·X)² = {k} is not an integer"
        );
    }
    let per_pattern = (32 * 32) as usize;
    let totals: Vec<f64> = counts.chunks(per_pattern).map(|c| c.iter().sum()).collect();
    let mean_total = totals.iter().sum::<f64>() / totals.len() as f64;
    assert!(
        (mean_total / 2e4 - 1.0).abs() < 0.02,
        "mean counts {mean_total} vs dose 2e4"
    );
    // variance about the noise-free rate equals the rate: Σ(K − λ)² / Σλ ≈ 1
    let clean = forward_amplitudes(&ds, Device::Cpu).unwrap();
    let rates: Vec<f64> = tensor_to_f32(&clean)
        .unwrap()
        .iter()
        .map(|&a| (s * a as f64).powi(2))
        .collect();
    let num: f64 = counts.iter().zip(&rates).map(|(k, l)| (k - l).powi(2)).sum();
    let den: f64 = rates.iter().sum();
    assert!((num / den - 1.0).abs() < 0.03, "variance / mean = {}", num / den);
    // and the mean of K − λ is zero
    let bias: f64 = counts.iter().zip(&rates).map(|(k, l)| k - l).sum::<f64>() / den;
    assert!(bias.abs() < 0.01, "bias {bias}");
}

#[test]
fn no_noise_stores_the_noise_free_amplitude() {
    init();
    let mut cfg = small_config();
    cfg.dose_photons = None;
    let ds = simulate_on(&cfg, Device::Cpu).unwrap();
    let clean = forward_amplitudes(&ds, Device::Cpu).unwrap();
    let got: Vec<f64> = ds.diffraction.iter().map(|&v| v as f64).collect();
    let want: Vec<f64> = tensor_to_f32(&clean).unwrap().iter().map(|&v| v as f64).collect();
    // the same model through another code path (batching, the shift folded
    // into the probe): equal up to float rounding
    let err = max_rel_err(&got, &want);
    assert!(err < 1e-6, "relative error {err}");
    assert!(ds.metadata.intensity_scale.is_none());
}

#[test]
fn same_seed_gives_byte_identical_npz_and_another_seed_does_not() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = small_config();
    cfg.scan.kind = ScanKind::Random;
    cfg.scan.n_images = Some(50);
    cfg.probe.kind = ProbeKind::Disk;
    let write = |c: &ptycho_workbench::simulate::SimConfig, name: &str| {
        let p = dir.path().join(name);
        write_npz(&simulate_on(c, Device::Cpu).unwrap(), &p).unwrap();
        std::fs::read(p).unwrap()
    };
    let a = write(&cfg, "a.npz");
    let b = write(&cfg, "b.npz");
    assert!(a == b, "same seed, different bytes");
    cfg.seed += 1;
    assert!(write(&cfg, "c.npz") != a);
}

#[test]
fn every_object_probe_and_scan_kind_simulates_a_valid_dataset() {
    init();
    use ptycho_workbench::simulate::ObjectKind;
    for (object, probe, scan) in [
        (ObjectKind::SiemensStar, ProbeKind::ZonePlate, ScanKind::Raster),
        (ObjectKind::Lines, ProbeKind::Disk, ScanKind::Spiral),
        (ObjectKind::Blobs, ProbeKind::ZonePlate, ScanKind::Random),
    ] {
        let mut cfg = small_config();
        cfg.object.kind = object;
        cfg.probe.kind = probe;
        cfg.scan.kind = scan;
        cfg.scan.n_images = Some(40);
        let ds = simulate_on(&cfg, Device::Cpu).unwrap();
        assert_eq!(ds.n_images(), 40);
        let amp: Vec<f32> = ds.object.as_ref().unwrap().iter().map(|c| c.norm()).collect();
        let (lo, hi) = amp.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert!(
            lo >= 0.5 - 1e-6 && hi <= 1.0 + 1e-6,
            "{object:?}: amplitude in [{lo}, {hi}]"
        );
        let phase_max = ds
            .object
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.arg().abs())
            .fold(0.0f32, f32::max);
        assert!(
            phase_max <= std::f32::consts::FRAC_PI_2 + 1e-5,
            "{object:?}: |φ| ≤ {phase_max}"
        );
    }
}

#[test]
fn png_object_sets_amplitude_from_luminance() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("ramp.png");
    // left half black, right half white
    let img = image::GrayImage::from_fn(96, 96, |x, _| image::Luma([if x < 48 { 0 } else { 255 }]));
    img.save(&png).unwrap();
    let mut cfg = small_config();
    cfg.object.kind = ptycho_workbench::simulate::ObjectKind::Png;
    cfg.object.path = Some(png);
    cfg.object.png_use = ptycho_workbench::simulate::PngUse::Amplitude;
    let ds = simulate_on(&cfg, Device::Cpu).unwrap();
    let o = ds.object.unwrap();
    assert!((o[[10, 5]].norm() - 0.5).abs() < 1e-6);
    assert!((o[[10, 90]].norm() - 1.0).abs() < 1e-6);
}
