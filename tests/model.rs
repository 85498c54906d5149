//! Models: the physics layer against simulated data, gradients against
//! finite differences, the overlap constraint, and the weight-name snapshot.
mod common;

use common::*;
use ptycho_workbench::array::{c64_to_tensor, f32_to_tensor};
use ptycho_workbench::model::{ModelConfig, ModelKind, Pinn, Supervised, layers};
use ptycho_workbench::simulate::simulate_on;
use tch::{Device, Kind, Tensor};

fn noise_free_with_patches() -> ptycho_workbench::data::Dataset {
    let mut cfg = small_config();
    cfg.dose_photons = None;
    cfg.store_patches = true;
    simulate_on(&cfg, Device::Cpu).unwrap()
}

#[test]
fn physics_layer_at_the_true_object_reproduces_simulated_diffraction() {
    init();
    let ds = noise_free_with_patches();
    let n = ds.patch_size() as i64;
    let patches = c64_to_tensor(ds.patches.as_ref().unwrap(), Device::Cpu).unsqueeze(1);
    let probe = ds.probe_tensor(Device::Cpu);
    let got = layers::diffract(&patches, &probe).squeeze_dim(1);
    let want = f32_to_tensor(&ds.diffraction, Device::Cpu);
    let err = ((&got - &want).abs().max() / want.abs().max()).double_value(&[]);
    assert!(err < 1e-5, "gridsize 1: relative error {err}");

    // gridsize 2: true patches pass the overlap constraint unchanged when the
    // offsets are whole pixels (2×2 squares of the raster: offsets ±3 px)
    let side = (ds.n_images() as f64).sqrt().round() as usize;
    assert_eq!(side * side, ds.n_images(), "small_config is a square raster");
    let mut idx = Vec::new();
    let mut offsets = Vec::new();
    for r in (0..side - 1).step_by(2) {
        for c in (0..side - 1).step_by(2) {
            let members = [
                r * side + c,
                r * side + c + 1,
                (r + 1) * side + c,
                (r + 1) * side + c + 1,
            ];
            let cx = members.iter().map(|&m| ds.positions_px[[m, 0]]).sum::<f64>() / 4.0;
            let cy = members.iter().map(|&m| ds.positions_px[[m, 1]]).sum::<f64>() / 4.0;
            for &m in &members {
                idx.push(m as i64);
                offsets.push((ds.positions_px[[m, 0]] - cx) as f32);
                offsets.push((ds.positions_px[[m, 1]] - cy) as f32);
            }
        }
    }
    assert!(offsets.iter().all(|o| o.abs() == 3.0), "{offsets:?}");
    let g = (idx.len() / 4) as i64;
    let idx = Tensor::from_slice(&idx);
    let members = patches.squeeze_dim(1).index_select(0, &idx).view([g, 4, n, n]);
    let offsets = Tensor::from_slice(&offsets).view([g, 4, 2]);
    let canvas = layers::reassemble(&members, &offsets, 12).unwrap();
    let back = layers::extract(&canvas, &offsets, n).unwrap();
    let got = layers::diffract(&back, &probe);
    let want = want.index_select(0, &idx).view([g, 4, n, n]);
    let err = ((&got - &want).abs().max() / want.abs().max()).double_value(&[]);
    assert!(err < 1e-5, "gridsize 2: relative error {err}");
}

#[test]
fn physics_layer_gradients_match_finite_differences() {
    init();
    tch::manual_seed(11);
    let n = 8i64;
    let amp = (Tensor::rand([1, 1, n, n], (Kind::Double, Device::Cpu)) * 0.5 + 0.5).set_requires_grad(true);
    let phase = Tensor::randn([1, 1, n, n], (Kind::Double, Device::Cpu)).set_requires_grad(true);
    let probe = Tensor::randn([n, n], (Kind::ComplexDouble, Device::Cpu));
    let weights = Tensor::rand([1, 1, n, n], (Kind::Double, Device::Cpu));
    let loss_of = |a: &Tensor, p: &Tensor| {
        let obj = Tensor::complex(&(a * p.cos()), &(a * p.sin()));
        (layers::diffract(&obj, &probe) * &weights).sum(Kind::Double)
    };
    let loss = loss_of(&amp, &phase);
    let grads = Tensor::run_backward(&[&loss], &[&amp, &phase], false, false);
    let h = 1e-6;
    for (which, var, grad) in [("amplitude", &amp, &grads[0]), ("phase", &phase, &grads[1])] {
        for &(i, j) in &[(0i64, 0i64), (3, 4), (7, 2), (5, 5)] {
            let fd = tch::no_grad(|| {
                let bump = |d: f64| {
                    let v = var.detach().copy();
                    let _ = v.get(0).get(0).get(i).get(j).g_add_scalar_(d);
                    if which == "amplitude" {
                        loss_of(&v, &phase.detach())
                    } else {
                        loss_of(&amp.detach(), &v)
                    }
                    .double_value(&[])
                };
                (bump(h) - bump(-h)) / (2.0 * h)
            });
            let g = grad.double_value(&[0, 0, i, j]);
            assert!(
                (g - fd).abs() < 1e-6 * fd.abs().max(1.0),
                "{which}[{i},{j}]: autograd {g} vs fd {fd}"
            );
        }
    }
}

fn snapshot(vs: &tch::nn::VarStore) -> String {
    let mut rows: Vec<String> = vs
        .variables()
        .into_iter()
        .map(|(name, t)| format!("{name} {:?}", t.size()))
        .collect();
    rows.sort();
    rows.join("\n") + "\n"
}

/// Compares with `tests/fixtures/model/<name>.txt`; `UPDATE_SNAPSHOTS=1`
/// rewrites the file (review the diff: it is a weight-file format change).
fn check_snapshot(name: &str, got: &str) {
    let path = fixture(&format!("model/{name}.txt"));
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing snapshot {}; the current names are:\n{got}", path.display()));
    assert!(
        got == want,
        "parameter names or shapes of {name} changed (a file-format change: update {} on purpose)\n--- got\n{got}",
        path.display()
    );
    assert!(!got.contains("__"), "tch renamed a duplicate layer: {got}");
}

#[test]
fn parameter_names_and_shapes_are_a_stable_file_format() {
    init();
    let probe = ptycho_workbench::physics::disk_probe(64, 16.0, 1.0, Device::Cpu).unwrap();
    for g in [1usize, 2] {
        let cfg = ModelConfig {
            gridsize: g,
            ..ModelConfig::default()
        };
        let m = Pinn::new(&cfg, &probe, 10.0, 0, Device::Cpu).unwrap();
        check_snapshot(&format!("pinn_n64_gs{g}"), &snapshot(m.var_store()));
    }
    let cfg = ModelConfig {
        kind: ModelKind::Supervised,
        ..ModelConfig::default()
    };
    let m = Supervised::new(&cfg, 0, Device::Cpu).unwrap();
    check_snapshot("supervised_n64", &snapshot(m.var_store()));
}

#[test]
fn a_fresh_network_answers_different_patterns_differently() {
    // With libtorch's default initialisation (weights and biases in
    // ±1/sqrt(fan_in)) the signal shrinks ~6× in variance per ReLU layer and
    // the fresh N = 64 network gives nearly the same patch for every input
    // (measured: phase spread across inputs 4e-5 rad), a blob training
    // cannot escape; with He-uniform weights it is 4e-2 rad, 4e-3 rad with
    // the output layers scaled down (init::OUTPUT_LAYER_SCALE).
    // He-uniform weights and zero biases keep the input visible.
    init();
    let cfg = ModelConfig {
        n: 64,
        ..ModelConfig::default()
    };
    let probe = ptycho_workbench::physics::disk_probe(64, 16.0, 1.0, Device::Cpu).unwrap();
    let model = Pinn::new(&cfg, &probe, 10.0, 0, Device::Cpu).unwrap();
    tch::manual_seed(1);
    let x = Tensor::rand([8, 1, 64, 64], (Kind::Float, Device::Cpu)) * 2.0;
    let _guard = tch::no_grad_guard();
    let phase = model.object_patches(&x).angle().narrow(2, 16, 32).narrow(3, 16, 32);
    let spread = phase.std_dim(0, false, false).mean(Kind::Float).double_value(&[]);
    let level = phase.std(false).double_value(&[]);
    eprintln!("spread across inputs {spread:.3e}, overall {level:.3e}");
    assert!(
        spread > 1e-3,
        "outputs hardly depend on the input: {spread:.3e} rad (overall {level:.3e})"
    );
}

/// `phase_saturation` reads 0 on a fresh network and 1 once the phase
/// head's output bias pins `π·tanh` at its end, and `Trainer::fit`
/// reports it for PINNs.
#[test]
fn phase_saturation_tells_a_collapsed_phase_head_from_a_fresh_one() {
    init();
    let probe = ptycho_workbench::physics::disk_probe(32, 8.0, 1.0, Device::Cpu).unwrap();
    let cfg = ModelConfig {
        n: 32,
        n_filters_scale: 1,
        ..ModelConfig::default()
    };
    let mut model = Pinn::new(&cfg, &probe, 10.0, 3, Device::Cpu).unwrap();
    tch::manual_seed(4);
    let x = Tensor::rand([8, 1, 32, 32], (Kind::Float, Device::Cpu)) * 0.5;
    let fresh = model.phase_saturation(&x).unwrap();
    assert!(fresh < 0.01, "fresh network: {fresh}");
    let mut biased = 0;
    for (name, mut v) in model.var_store_mut().variables() {
        if name.starts_with("phase") && name.ends_with("bias") && v.size() == [1] {
            let _ = tch::no_grad(|| v.fill_(4.0));
            biased += 1;
        }
    }
    assert!(biased > 0, "no phase output bias found");
    let pinned = model.phase_saturation(&x).unwrap();
    assert!(pinned > 0.99, "pinned head: {pinned}");
    assert!(
        model
            .phase_saturation(&Tensor::zeros([2, 4, 32, 32], (Kind::Float, Device::Cpu)))
            .is_err()
    );
}

#[test]
fn a_fresh_network_starts_in_the_linear_range_of_its_heads() {
    // With He's bound on the output convolutions a third of the fresh phase
    // sat in π·tanh's flat ends, and the first Adam steps drove all of it to
    // ±π (init::OUTPUT_LAYER_SCALE). The scaled output layers start near
    // phase 0 and amplitude 1/2, on the border branch too.
    init();
    let probe = ptycho_workbench::physics::disk_probe(64, 16.0, 1.0, Device::Cpu).unwrap();
    for g in [1usize, 2] {
        let cfg = ModelConfig {
            gridsize: g,
            ..ModelConfig::default()
        };
        let c = cfg.channels() as i64;
        let model = Pinn::new(&cfg, &probe, 10.0, 3, Device::Cpu).unwrap();
        tch::manual_seed(2);
        // normalised input: mean pattern energy (N/2)², as the trainer feeds it
        let x = Tensor::rand([8, c, 64, 64], (Kind::Float, Device::Cpu));
        let energy = x.square().sum_dim_intlist([2i64, 3].as_slice(), true, Kind::Float);
        let x = &x * (32.0 / energy.sqrt());
        let _guard = tch::no_grad_guard();
        let patches = model.object_patches(&x);
        let phase = patches.angle();
        let flat_end = phase
            .abs()
            .gt(0.8 * std::f64::consts::PI)
            .to_kind(Kind::Float)
            .mean(Kind::Float);
        let flat_end = flat_end.double_value(&[]);
        let amp = patches.abs().narrow(2, 16, 32).narrow(3, 16, 32);
        let (lo, hi) = (amp.min().double_value(&[]), amp.max().double_value(&[]));
        eprintln!("gs{g}: phase beyond 0.8π {flat_end:.2e}, centre amplitude {lo:.3}..{hi:.3}");
        assert!(flat_end < 1e-3, "gs{g}: {flat_end} of the phase starts saturated");
        assert!(lo > 0.3 && hi < 0.7, "gs{g}: centre amplitude {lo}..{hi}");
    }
}
