//! Bundles: round trip, TorchScript in plain Python, and every bad bundle.
mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

use common::*;
use ptycho_workbench::bundle::Bundle;
use ptycho_workbench::data::npy::{self, NpyData};
use ptycho_workbench::simulate::simulate_on;
use ptycho_workbench::train::{Precision, TrainedModel};
use tch::{Device, Kind, Tensor};

fn inputs(b: i64, c: i64, n: i64) -> (Tensor, Tensor) {
    tch::manual_seed(7);
    (
        Tensor::rand([b, c, n, n], (Kind::Float, Device::Cpu)) * 4.0,
        (Tensor::rand([b, c, 2], (Kind::Float, Device::Cpu)) - 0.5) * 6.0,
    )
}

fn infer(model: &TrainedModel, x: &Tensor, o: &Tensor) -> Tensor {
    match model {
        TrainedModel::Pinn(m) => m.diffraction_to_obj(x, o).unwrap(),
        TrainedModel::Supervised(m) => m.diffraction_to_obj(x).unwrap(),
    }
}

#[test]
fn reloaded_bundle_gives_bit_identical_outputs_and_python_runs_the_torchscript() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = trained_bundle(dir.path(), 2);
    let a = Bundle::load(&path, Device::Cpu).unwrap();
    let b = Bundle::load(&path, Device::Cpu).unwrap();
    assert_eq!(a.manifest.models, ["autoencoder", "diffraction_to_obj"]);
    assert_eq!(a.manifest.backend, "tch");
    let (x, o) = inputs(3, 4, 32);
    let ya = infer(&a.model, &x, &o);
    let yb = infer(&b.model, &x, &o);
    assert!(ya.equal(&yb), "two loads differ");

    // the bundled TorchScript, run from Rust on request, gives the same patches
    let ts = tch::CModule::load_data(&mut std::io::Cursor::new(a.torchscript_bytes().unwrap())).unwrap();
    let yt = ts.forward_ts(&[&x, &o]).unwrap();
    let d = (&yt - &ya).abs().max().double_value(&[]);
    assert!(d < 1e-5, "TorchScript from Rust differs by {d}");

    // plain PyTorch runs model.ts and agrees, at another batch size than traced
    let (x, o) = inputs(5, 4, 32);
    let y = infer(&a.model, &x, &o);
    let npz = dir.path().join("in.npz");
    let xv: Vec<f32> = Vec::try_from(x.flatten(0, -1)).unwrap();
    let ov: Vec<f32> = Vec::try_from(o.flatten(0, -1)).unwrap();
    let file = std::fs::File::create(&npz).unwrap();
    npy::write_npz(
        file,
        &[
            ("x", npy::encode(&[5, 4, 32, 32], &xv)),
            ("offsets", npy::encode(&[5, 4, 2], &ov)),
        ],
    )
    .unwrap();
    let out = dir.path().join("out.npy");
    let status = Command::new(python())
        .arg(fixture("bundle/run_torchscript.py"))
        .args([&path, &npz, &out])
        .status()
        .unwrap();
    assert!(status.success());
    let py = npy::decode(&std::fs::read(&out).unwrap(), &out, "out").unwrap();
    assert_eq!(py.shape, [5, 32, 32]);
    let NpyData::C64(pv) = py.data else {
        panic!("not complex64")
    };
    let rust = ptycho_workbench::array::tensor_to_c64(&y).unwrap();
    let scale = rust.iter().fold(0f32, |m, c| m.max(c.norm()));
    let err = rust.iter().zip(&pv).fold(0f32, |m, (a, b)| m.max((a - b).norm())) / scale;
    assert!(err < 1e-5, "TorchScript differs from Rust by {err}");
}

/// Rewrites a bundle's members through `edit` (name, bytes) → Some(new) or None (drop).
fn rewrite(src: &Path, dst: &Path, edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) {
    let mut zin = ::zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut zout = ::zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    for i in 0..zin.len() {
        let mut m = zin.by_index(i).unwrap();
        let name = m.name().unwrap().to_string();
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        if let Some(b) = edit(&name, bytes) {
            zout.start_file(name, ::zip::write::SimpleFileOptions::default())
                .unwrap();
            zout.write_all(&b).unwrap();
        }
    }
    zout.finish().unwrap();
}

fn load_error(path: &Path) -> String {
    let e = Bundle::load(path, Device::Cpu).unwrap_err().to_string();
    assert!(
        e.contains(path.file_name().unwrap().to_str().unwrap()),
        "error does not name the file: {e}"
    );
    e
}

#[test]
fn bad_bundles_give_clear_errors() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let good = trained_bundle(dir.path(), 1);
    let p = |n: &str| dir.path().join(n);

    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(p("truncated.zip"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(load_error(&p("truncated.zip")).contains("not a readable bundle"));

    rewrite(&good, &p("missing.zip"), |n, b| (n != "history.csv").then_some(b));
    assert!(load_error(&p("missing.zip")).contains("missing member `history.csv`"));

    rewrite(&good, &p("corrupt.zip"), |n, mut b| {
        if n == "diffraction_to_obj/weights.safetensors" {
            let k = b.len() - 10;
            b[k] ^= 0xFF;
        }
        Some(b)
    });
    assert!(load_error(&p("corrupt.zip")).contains("checksum mismatch for `diffraction_to_obj/weights.safetensors`"));

    rewrite(&good, &p("future.zip"), |n, b| {
        if n == "manifest.json" {
            let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            v["format_version"] = 99.into();
            return Some(serde_json::to_vec(&v).unwrap());
        }
        Some(b)
    });
    assert!(load_error(&p("future.zip")).contains("unknown bundle format version 99"));

    // a PtychoPINN bundle (pickled manifest)
    let mut z = ::zip::ZipWriter::new(std::fs::File::create(p("ptychopinn.zip")).unwrap());
    for name in [
        "manifest.dill",
        "diffraction_to_obj/params.dill",
        "diffraction_to_obj/model.keras",
    ] {
        z.start_file(name, ::zip::write::SimpleFileOptions::default()).unwrap();
        z.write_all(b"\x80\x04pickled").unwrap();
    }
    z.finish().unwrap();
    let e = load_error(&p("ptychopinn.zip"));
    assert!(
        e.contains("PtychoPINN") && e.contains("TensorFlow or PyTorch") && e.contains("manifest.json"),
        "{e}"
    );

    std::fs::write(p("empty.zip"), b"").unwrap();
    load_error(&p("empty.zip"));
    assert!(Bundle::load(&p("absent.zip"), Device::Cpu).is_err());
}

#[test]
fn a_bundle_reconstructs_the_dataset_grid_and_ptycho_infer_writes_it() {
    init();
    let dir = tempfile::tempdir().unwrap();
    let path = trained_bundle(dir.path(), 2);
    let b = Bundle::load(&path, Device::Cpu).unwrap();
    let mut cfg = small_config();
    cfg.scan.spacing_px = 4.0;
    cfg.seed = 9;
    let ds = simulate_on(&cfg, Device::Cpu).unwrap();
    let recon = b
        .reconstruct(&ds, &ptycho_workbench::recon::ReconConfig::default())
        .unwrap();
    assert_eq!(recon.object.shape(), ds.object.as_ref().unwrap().shape());
    assert_eq!(recon.metadata.n_groups, ds.n_images());
    assert!(recon.object.iter().all(|c| c.re.is_finite() && c.im.is_finite()));
    // every scan position is covered, far corners are not
    for p in ds.positions_px.outer_iter() {
        assert!(recon.coverage[[p[1].round() as usize, p[0].round() as usize]] > 0.0);
    }
    assert_eq!(recon.coverage[[0, 0]], 0.0);
    assert_eq!(recon.object[[0, 0]].norm(), 0.0);
    // bf16 autocast on the CPU: close to fp32, but not the same arithmetic
    let in_precision = |precision| {
        b.reconstruct(
            &ds,
            &ptycho_workbench::recon::ReconConfig {
                precision,
                ..Default::default()
            },
        )
    };
    let bf16 = in_precision(Precision::Bf16).unwrap();
    let (diff, norm) = bf16
        .object
        .iter()
        .zip(&recon.object)
        .fold((0f64, 0f64), |(d, n), (a, f)| {
            (d + (a - f).norm_sqr() as f64, n + f.norm_sqr() as f64)
        });
    let rel = (diff / norm).sqrt();
    assert!(rel > 1e-5 && rel < 0.05, "bf16 against fp32: {rel}");
    assert_eq!(bf16.coverage, recon.coverage);
    let e = in_precision(Precision::Fp16).unwrap_err().to_string();
    assert!(e.contains("CUDA"), "{e}");

    let data = dir.path().join("data.npz");
    ptycho_workbench::data::write_npz(&ds, &data).unwrap();
    // `ptycho infer` of this bundle on `data` into `out`, with extra
    // arguments and environment
    let infer = |out: &Path, args: &[&str], envs: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .envs(envs.iter().copied())
            .args(["infer", "--bundle"])
            .arg(&path)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out)
            .args(["--device", "cpu"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = dir.path().join("recon.npz");
    assert!(infer(&out, &[], &[]).status.success());
    let members = npy::read_npz(&out).unwrap();
    let get = |k: &str| {
        members
            .iter()
            .find(|(n, _)| n == k)
            .unwrap()
            .1
            .as_ref()
            .unwrap()
            .clone()
    };
    assert_eq!(get("object").shape, [96, 96]);
    assert!(matches!(get("object").data, NpyData::C64(_)));
    assert!(matches!(get("coverage").data, NpyData::F32(_)));
    let meta = npz_metadata(&out);
    assert_eq!(
        meta["bundle_sha256"],
        ptycho_workbench::bundle::save::sha256_hex(&std::fs::read(&path).unwrap())
    );
    assert_eq!(meta["config"]["precision"], "fp32");

    // --precision reaches the forward passes and the metadata; a bad one is refused
    let out_bf16 = dir.path().join("recon-bf16.npz");
    assert!(infer(&out_bf16, &["--precision", "bf16"], &[]).status.success());
    assert_eq!(npz_metadata(&out_bf16)["config"]["precision"], "bf16");
    // the network's activations in NCHW (PTYCHO_CHANNELS_LAST=0) give the
    // same object as the default channels-last layout, to float rounding
    let nchw_out = dir.path().join("recon-nchw.npz");
    assert!(infer(&nchw_out, &[], &[("PTYCHO_CHANNELS_LAST", "0")]).status.success());
    let (a, b) = (
        complex(&npz_member(&out, "object")),
        complex(&npz_member(&nchw_out, "object")),
    );
    let peak = a.iter().map(|z| z.norm()).fold(0f32, f32::max);
    let d = a.iter().zip(&b).map(|(x, y)| (x - y).norm()).fold(0f32, f32::max);
    assert!(
        peak > 0.0 && d <= 1e-4 * peak,
        "NCHW and channels-last differ by {d} (peak {peak})"
    );
    let bad = infer(&dir.path().join("never.npz"), &["--precision", "fp8"], &[]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("`fp8` is not one of"));
    assert!(!dir.path().join("never.npz").exists());
}

/// Gridsize 2: the merged object is stitched at every member's position by
/// default, so the coverage is the positions' crops; once per group at the
/// centroids (PtychoPINN) the scan's corners stay open.
#[test]
fn gridsize_two_stitches_at_the_members_and_centroids_leave_corners_open() {
    use ptycho_workbench::recon::{ReconConfig, StitchAt};
    init();
    let dir = tempfile::tempdir().unwrap();
    let b = Bundle::load(&trained_bundle(dir.path(), 2), Device::Cpu).unwrap();
    let mut cfg = small_config();
    cfg.scan.spacing_px = 4.0;
    cfg.seed = 9;
    let ds = simulate_on(&cfg, Device::Cpu).unwrap();
    let at = |stitch_at| {
        b.reconstruct(
            &ds,
            &ReconConfig {
                stitch_at,
                ..ReconConfig::default()
            },
        )
        .unwrap()
    };
    let (members, centroids) = (at(StitchAt::Members), at(StitchAt::Centroids));
    let crop = ReconConfig::default().crop_px as f64;
    let (h, w) = members.coverage.dim();
    // pixels inside some position's crop (1 px in from its edge, for the bilinear split)
    let inside = |y: usize, x: usize| {
        ds.positions_px
            .outer_iter()
            .any(|p| (x as f64 - p[0]).abs() <= crop / 2.0 - 1.0 && (y as f64 - p[1]).abs() <= crop / 2.0 - 1.0)
    };
    let mut open_at_centroids = 0;
    for y in 0..h {
        for x in 0..w {
            if inside(y, x) {
                assert!(members.coverage[[y, x]] > 0.0, "({y}, {x}) not covered");
                open_at_centroids += usize::from(centroids.coverage[[y, x]] == 0.0);
            }
        }
    }
    assert!(open_at_centroids > 0, "the centroids covered every position's crop");
    // each crop adds weight M² (bilinear weights sum to one), C per group at the members
    let total = |c: &ndarray::Array2<f32>| c.iter().map(|&v| v as f64).sum::<f64>();
    let groups = members.metadata.n_groups as f64;
    assert!((total(&members.coverage) - 4.0 * groups * crop * crop).abs() < 1e-3 * total(&members.coverage));
    assert!((total(&centroids.coverage) - groups * crop * crop).abs() < 1e-3 * total(&centroids.coverage));
    // where both are well covered they show the same merged objects
    let mut diff = 0.0;
    let mut norm = 0.0;
    for ((m, c), (cm, cc)) in members
        .object
        .iter()
        .zip(centroids.object.iter())
        .zip(members.coverage.iter().zip(centroids.coverage.iter()))
    {
        if *cm > 8.0 && *cc > 2.0 {
            diff += (m - c).norm_sqr() as f64;
            norm += c.norm_sqr() as f64;
        }
    }
    assert!(
        norm > 0.0 && (diff / norm).sqrt() < 0.06,
        "members vs centroids: relative difference {}",
        (diff / norm).sqrt()
    );
}
