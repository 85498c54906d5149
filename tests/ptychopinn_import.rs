//! Importing PtychoPINN's own bundles: the fixtures in
//! tests/fixtures/ptychopinn/ were trained, saved, reloaded and run by
//! PtychoPINN itself (run_ptychopinn.py there); our network on the
//! imported weights must predict what it predicted.
mod common;

use std::path::{Path, PathBuf};

use ndarray::Array2;
use num_complex::Complex32;
use ptycho_workbench::bundle::Bundle;
use ptycho_workbench::bundle::ptychopinn::{
    DEFAULT_PROBE_SCALE, ImportOptions, import_ptychopinn, pinn_from, ptychopinn_probe, read_ptychopinn_bundle,
};
use ptycho_workbench::model::{BorderActivation, ReassemblyNorm};
use ptycho_workbench::train::TrainedModel;
use tch::{Device, Kind, Tensor};

fn bundle(g: usize) -> PathBuf {
    common::fixture(&format!("ptychopinn/gs{g}/wts.h5.zip"))
}

fn predictions(g: usize) -> PathBuf {
    common::fixture(&format!("ptychopinn/gs{g}/predictions.npz"))
}

fn real(path: &Path, key: &str) -> Tensor {
    let a = common::npz_member(path, key);
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    Tensor::from_slice(&common::f64s(&a))
        .reshape(shape.as_slice())
        .to_kind(Kind::Float)
}

fn complex(path: &Path, key: &str) -> Tensor {
    let a = common::npz_member(path, key);
    let shape: Vec<i64> = a.shape.iter().map(|&d| d as i64).collect();
    let values = common::complex(&a);
    let ri: Vec<f32> = values.iter().flat_map(|c| [c.re, c.im]).collect();
    let mut shape2 = shape.clone();
    shape2.push(2);
    Tensor::from_slice(&ri).reshape(shape2.as_slice()).view_as_complex()
}

/// `max|a − b| / max|b|` of each item along the first axis.
fn rel_err_per_item(a: &Tensor, b: &Tensor) -> Vec<f64> {
    assert_eq!(a.size(), b.size());
    (0..a.size()[0])
        .map(|i| {
            let (x, y) = (a.get(i), b.get(i));
            (&x - &y).abs().max().double_value(&[]) / y.abs().max().double_value(&[])
        })
        .collect()
}

/// Imports `source` into `dir/ours.wts.h5.zip` with the probe of `ds`
/// (written to `dir/probe.npz`), PtychoPINN's default probe scale.
fn import_with_probe_of(source: &Path, ds: &ptycho_workbench::data::Dataset, dir: &Path) -> PathBuf {
    let data = dir.join("probe.npz");
    ptycho_workbench::data::write_npz(ds, &data).unwrap();
    let opts = ImportOptions {
        probe_dataset: data,
        probe_scale: DEFAULT_PROBE_SCALE,
    };
    import_ptychopinn(source, &opts, &dir.join("ours.wts.h5.zip")).unwrap()
}

fn flat_probe(n: usize) -> Array2<Complex32> {
    Array2::from_elem((n, n), Complex32::new(1.0, 0.0))
}

/// The imported network, and the recorded inputs in our layout: `x`
/// `[B, C, N, N]`, offsets `[B, C, 2]` = member − centroid.
fn imported(g: usize) -> (TrainedModel, Tensor, Tensor) {
    let m = read_ptychopinn_bundle(&bundle(g)).unwrap();
    let model = pinn_from(&m, &flat_probe(m.config.n)).unwrap();
    let p = predictions(g);
    let x = real(&p, "x").permute([0, 3, 1, 2]).contiguous();
    // theirs: [B, 1, 2, C] (x, y) of −(member − centroid)
    let offsets = -real(&p, "positions").squeeze_dim(1).permute([0, 2, 1]).contiguous();
    (model, x, offsets)
}

fn pinn(m: &TrainedModel) -> &ptycho_workbench::model::Pinn {
    match m {
        TrainedModel::Pinn(p) => p,
        TrainedModel::Supervised(_) => panic!("a PtychoPINN import is a PINN"),
    }
}

#[test]
fn the_import_reads_ptychopinn_configuration_and_scale() {
    common::init();
    for (g, padded) in [(1usize, 74i64), (2, 78)] {
        let m = read_ptychopinn_bundle(&bundle(g)).unwrap();
        let c = &m.config;
        assert_eq!((c.n, c.gridsize, c.n_filters_scale), (64, g, 1));
        assert_eq!(c.border_activation, BorderActivation::Swish);
        assert_eq!(c.reassembly_norm, ReassemblyNorm::CentreSquare);
        assert_eq!(m.padded_size, padded);
        // our canvas is as wide as theirs: N + 2·(ceil(max_offset) + 1)
        assert_eq!(c.n as i64 + 2 * c.canvas_pad(), padded);
        let recorded = common::f64s(&common::npz_member(&predictions(g), "intensity_scale"))[0];
        assert!(
            (m.intensity_scale - recorded).abs() < 1e-9 * recorded,
            "{} vs {recorded}",
            m.intensity_scale
        );
        // every weight of ours but the intensity scale is mapped
        assert_eq!(
            m.weights.len() + 1,
            pinn_from(&m, &flat_probe(64)).unwrap().var_store().len()
        );
    }
}

#[test]
fn imported_patches_and_objects_match_ptychopinn_within_1e_4_patch_by_patch() {
    common::init();
    for g in [1usize, 2] {
        let (model, x, offsets) = imported(g);
        let net = pinn(&model);
        let p = predictions(g);
        let (patches, object) =
            tch::no_grad(|| (net.object_patches(&x), net.diffraction_to_obj(&x, &offsets).unwrap()));
        // their `obj` layer: [B, N, N, C]
        let want_patches = complex(&p, "patches").permute([0, 3, 1, 2]);
        let errs = rel_err_per_item(&patches, &want_patches);
        eprintln!("gridsize {g}: patch errors {errs:?}");
        assert!(errs.iter().all(|&e| e < 1e-4), "gridsize {g}: patch errors {errs:?}");
        // their `diffraction_to_obj` output: [B, N, N, 1]; its border is
        // ×1000 (PtychoPINN's division), so the centre is checked on its own
        let want_object = complex(&p, "object").squeeze_dim(-1);
        let centre = |t: &Tensor| t.narrow(1, 16, 32).narrow(2, 16, 32);
        for (what, a, b) in [
            ("object", object.shallow_clone(), want_object.shallow_clone()),
            ("object centre", centre(&object), centre(&want_object)),
        ] {
            let errs = rel_err_per_item(&a, &b);
            eprintln!("gridsize {g}: {what} errors {errs:?}");
            assert!(errs.iter().all(|&e| e < 1e-4), "gridsize {g}: {what} errors {errs:?}");
        }
        // the network's output varies with its input far beyond the
        // tolerance (a near-constant network would pass any mapping)
        let spread = (patches.get(0) - patches.get(1)).abs().max().double_value(&[]);
        eprintln!(
            "gridsize {g}: spread {:.3} of the peak",
            spread / patches.abs().max().double_value(&[])
        );
        assert!(
            spread > 0.1 * patches.abs().max().double_value(&[]),
            "gridsize {g}: spread {spread}"
        );
    }
}

#[test]
fn the_conversions_the_import_makes_are_needed() {
    common::init();
    // gridsize 2 with PtychoPINN's offset sign unconverted: another object
    let (model, x, offsets) = imported(2);
    let want = complex(&predictions(2), "object").squeeze_dim(-1);
    let wrong_sign = tch::no_grad(|| pinn(&model).diffraction_to_obj(&x, &(-&offsets)).unwrap());
    let errs = rel_err_per_item(&wrong_sign, &want);
    assert!(errs.iter().all(|&e| e > 1e-2), "{errs:?}");
    // gridsize 1 with our coverage division instead of PtychoPINN's: the
    // centre is off by its 1/1.001 and the border by its ×1000
    let mut m = read_ptychopinn_bundle(&bundle(1)).unwrap();
    m.config.reassembly_norm = ReassemblyNorm::Coverage;
    let ours = pinn_from(&m, &flat_probe(64)).unwrap();
    let (_, x, offsets) = imported(1);
    let object = tch::no_grad(|| pinn(&ours).diffraction_to_obj(&x, &offsets).unwrap());
    let want = complex(&predictions(1), "object").squeeze_dim(-1);
    let centre = |t: &Tensor| t.narrow(1, 16, 32).narrow(2, 16, 32);
    let ratio = (centre(&want).abs() / centre(&object).abs().clamp_min(1e-12))
        .median()
        .double_value(&[]);
    assert!((ratio - 1.0 / 1.001).abs() < 1e-5, "{ratio}");
    let errs = rel_err_per_item(&object, &want);
    assert!(errs.iter().all(|&e| e > 0.1), "{errs:?}");
}

#[test]
fn our_stitching_of_imported_patches_matches_ptychopinn_reassemble_position() {
    common::init();
    let (model, _, _) = imported(1);
    let p = predictions(1);
    let x = real(&p, "stitch_x").permute([0, 3, 1, 2]).contiguous();
    let offsets = common::f64s(&common::npz_member(&p, "stitch_offsets"));
    let m = common::f64s(&common::npz_member(&p, "stitch_M"))[0] as i64;
    let want = complex(&p, "stitched").squeeze_dim(-1);
    let side = want.size()[0];
    // their canvas: centred on the mean position, `pad = (side − M)/2` round
    // the crops; its pixel r is the object's row r + mean − pad − M/2
    let k = offsets.len() / 2;
    let mean = |c: usize| (0..k).map(|i| offsets[2 * i + c]).sum::<f64>() / k as f64;
    let pad = (side - m) / 2;
    let shift = [mean(0) - (pad + m / 2) as f64, mean(1) - (pad + m / 2) as f64];
    let positions: Vec<f64> = (0..k)
        .flat_map(|i| [offsets[2 * i] - shift[0], offsets[2 * i + 1] - shift[1]])
        .collect();
    let positions = Tensor::from_slice(&positions).reshape([k as i64, 2]);
    let patches = tch::no_grad(|| pinn(&model).object_patches(&x)).squeeze_dim(1);
    let (sum, coverage) = ptycho_workbench::recon::stitch::accumulate(&patches, &positions, m, side, side).unwrap();
    let ours = ptycho_workbench::recon::stitch::average(&sum, &coverage).unwrap();
    let covered = coverage.gt(0.5);
    let n_covered = covered.sum(Kind::Int64).int64_value(&[]);
    assert!(n_covered > m * m * 3, "{n_covered} pixels covered");
    let diff = (&ours - &want).abs().masked_select(&covered).max().double_value(&[]);
    let scale = want.abs().masked_select(&covered).max().double_value(&[]);
    eprintln!("stitched: {:.2e} relative over {n_covered} pixels", diff / scale);
    assert!(diff / scale < 1e-4, "stitched: {diff} / {scale}");
}

#[test]
fn importing_writes_one_of_our_bundles_that_loads_alone() {
    common::init();
    let dir = tempfile::tempdir().unwrap();
    let ds = common::bundle_dataset_n64();
    let out = import_with_probe_of(&bundle(2), &ds, dir.path());
    let b = Bundle::load(&out, Device::Cpu).unwrap();
    let source = b.manifest.source.as_ref().expect("the manifest records the source");
    assert_eq!(source["tool"], "PtychoPINN");
    assert_eq!(b.config().reassembly_norm, ReassemblyNorm::CentreSquare);
    // the probe is PtychoPINN's normalisation of the dataset's: mean |P| = 1/probe_scale
    let mean = b.probe.iter().map(|p| p.norm() as f64).sum::<f64>() / b.probe.len() as f64;
    assert!((mean - 1.0 / DEFAULT_PROBE_SCALE).abs() < 1e-6, "{mean}");
    let want = ptychopinn_probe(&ds.probe, DEFAULT_PROBE_SCALE).unwrap();
    assert!(b.probe.iter().zip(want.iter()).all(|(a, b)| (a - b).norm() < 1e-7));
    // and it predicts what PtychoPINN predicted
    let (_, x, offsets) = imported(2);
    let TrainedModel::Pinn(net) = &b.model else { panic!() };
    let object = tch::no_grad(|| net.diffraction_to_obj(&x, &offsets).unwrap());
    let want = complex(&predictions(2), "object").squeeze_dim(-1);
    let errs = rel_err_per_item(&object, &want);
    assert!(errs.iter().all(|&e| e < 1e-4), "{errs:?}");
}

#[test]
fn a_bundle_exported_through_ptychopinn_imports_back_bit_identical() {
    common::init();
    // exported_gs2 is gs2 imported, then written by PtychoPINN's own saver
    // (`ptycho bundle export-ptychopinn`, the Makefile's ptychopinn-fixtures)
    let original = read_ptychopinn_bundle(&bundle(2)).unwrap();
    let back = read_ptychopinn_bundle(&common::fixture("ptychopinn/exported_gs2/wts.h5.zip")).unwrap();
    assert_eq!(back.config, original.config);
    assert_eq!(back.intensity_scale.to_bits(), original.intensity_scale.to_bits());
    assert_eq!(back.weights.len(), original.weights.len());
    for ((name_a, a), (name_b, b)) in original.weights.iter().zip(&back.weights) {
        assert_eq!(name_a, name_b);
        assert!(a.equal(b), "{name_a} differs");
    }
    // and the two files are not the same file
    assert_ne!(back.sha256, original.sha256);
}

/// A copy of `src` with members changed by `edit` (`None` drops one).
fn rewrite(src: &Path, dst: &Path, mut edit: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) {
    use std::io::{Read, Write};
    let mut zin = zip::ZipArchive::new(std::fs::File::open(src).unwrap()).unwrap();
    let mut zout = zip::ZipWriter::new(std::fs::File::create(dst).unwrap());
    for i in 0..zin.len() {
        let mut m = zin.by_index(i).unwrap();
        let name = m.name().unwrap().to_string();
        let mut bytes = Vec::new();
        m.read_to_end(&mut bytes).unwrap();
        if let Some(bytes) = edit(&name, bytes) {
            zout.start_file(name.as_str(), zip::write::SimpleFileOptions::default())
                .unwrap();
            zout.write_all(&bytes).unwrap();
        }
    }
    zout.finish().unwrap();
}

/// `bundle(1)` with its graph (config.json in model.keras) edited.
fn with_graph(dst: &Path, mut edit: impl FnMut(&mut serde_json::Value)) {
    let dir = tempfile::tempdir().unwrap();
    rewrite(&bundle(1), dst, |name, bytes| {
        if name != "diffraction_to_obj/model.keras" {
            return Some(bytes);
        }
        let inner_in = dir.path().join("in.keras");
        let inner_out = dir.path().join("out.keras");
        std::fs::write(&inner_in, &bytes).unwrap();
        rewrite(&inner_in, &inner_out, |n, b| {
            if n != "config.json" {
                return Some(b);
            }
            let mut v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            edit(&mut v);
            Some(serde_json::to_vec(&v).unwrap())
        });
        Some(std::fs::read(&inner_out).unwrap())
    });
}

fn layer_mut<'a>(graph: &'a mut serde_json::Value, name: &str) -> &'a mut serde_json::Value {
    graph["config"]["layers"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|l| l["name"] == name)
        .unwrap_or_else(|| panic!("no layer {name}"))
}

fn import_error(path: &Path) -> String {
    read_ptychopinn_bundle(path).expect_err("must be refused").to_string()
}

#[test]
fn what_cannot_be_mapped_is_refused_naming_the_layer() {
    common::init();
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    // object.big = False: one patch per group, PadReconstructionLayer
    with_graph(&p("small.zip"), |g| {
        layer_mut(g, "padded_obj_2")["class_name"] = "PadReconstructionLayer".into()
    });
    let e = import_error(&p("small.zip"));
    assert!(e.contains("object.big = False") && e.contains("padded_obj_2"), "{e}");
    // another kernel size in the encoder's first convolution
    with_graph(&p("k5.zip"), |g| {
        layer_mut(g, "conv2d")["config"]["kernel_size"] = serde_json::json!([5, 5])
    });
    let e = import_error(&p("k5.zip"));
    assert!(e.contains("`conv2d`") && e.contains("kernel_size"), "{e}");
    // an amplitude activation we do not have
    with_graph(&p("gelu.zip"), |g| {
        layer_mut(g, "amp")["config"]["activation_name"] = "gelu".into()
    });
    let e = import_error(&p("gelu.zip"));
    assert!(e.contains("`amp`") && e.contains("gelu"), "{e}");
    // a member missing
    rewrite(&bundle(1), &p("noscale.zip"), |n, b| {
        (n != "diffraction_to_obj/model.h5").then_some(b)
    });
    let e = import_error(&p("noscale.zip"));
    assert!(e.contains("diffraction_to_obj/model.h5"), "{e}");
    // truncated
    let bytes = std::fs::read(bundle(1)).unwrap();
    std::fs::write(p("cut.zip"), &bytes[..bytes.len() / 2]).unwrap();
    assert!(read_ptychopinn_bundle(&p("cut.zip")).is_err());
    // one of our own bundles
    let ours = common::trained_bundle(dir.path(), 1);
    let e = import_error(&ours);
    assert!(e.contains("already a ptycho-workbench bundle"), "{e}");
}

#[test]
fn a_planted_pickle_is_never_opened() {
    common::init();
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("pwned");
    // protocol-0 pickle whose loading runs `touch MARKER`
    let payload = format!("cposix\nsystem\n(S'touch {}'\ntR.", marker.display()).into_bytes();
    // the payload is live: Python's unpickler runs it
    let probe = dir.path().join("payload.pickle");
    std::fs::write(&probe, &payload).unwrap();
    let status = std::process::Command::new(common::python())
        .args(["-c", "import pickle, sys; pickle.loads(open(sys.argv[1], 'rb').read())"])
        .arg(&probe)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(marker.exists(), "the planted pickle should run when unpickled");
    std::fs::remove_file(&marker).unwrap();
    // planted in every pickled member of a PtychoPINN bundle
    let planted = dir.path().join("wts.h5.zip");
    rewrite(&bundle(1), &planted, |n, b| {
        Some(if n.ends_with(".dill") { payload.clone() } else { b })
    });
    let m = read_ptychopinn_bundle(&planted).unwrap();
    import_with_probe_of(&planted, &common::bundle_dataset_n64(), dir.path());
    assert_eq!(m.config.gridsize, 1);
    assert!(!marker.exists(), "importing must never unpickle");
}

#[test]
fn the_cli_imports_and_says_what_export_needs() {
    common::init();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("probe.npz");
    ptycho_workbench::data::write_npz(&common::bundle_dataset_n64(), &data).unwrap();
    let out_dir = dir.path().join("imported");
    let src = bundle(2);
    let o = common::ptycho(&[
        "bundle",
        "import-ptychopinn",
        src.to_str().unwrap(),
        "--probe",
        data.to_str().unwrap(),
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let written = out_dir.join("wts.h5.zip");
    let inspect = common::ptycho(&["bundle", "inspect", written.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("source           PtychoPINN"), "{text}");
    // export: without the optional environment, say how to get it
    let o = common::ptycho(&[
        "bundle",
        "export-ptychopinn",
        written.to_str().unwrap(),
        "--out",
        dir.path().join("back/wts.h5.zip").to_str().unwrap(),
        "--python",
        dir.path().join("no-such-python").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("make ptychopinn-env"), "{err}");
    assert!(!dir.path().join("back/wts.h5.zip").exists());
    // a network PtychoPINN does not have is refused, naming the setting
    let ours = common::trained_bundle(dir.path(), 1);
    let o = common::ptycho(&[
        "bundle",
        "export-ptychopinn",
        ours.to_str().unwrap(),
        "--out",
        dir.path().join("x/wts.h5.zip").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("model.n"), "{err}");
}

#[test]
fn an_imported_model_stitches_only_the_central_square_of_its_patches() {
    common::init();
    // a sparse scan (48 px apart, N = 64) would make our stitching grow its
    // crops towards the whole patch, whose border PtychoPINN's division
    // multiplies by 1000: imported models stop at N/2
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = common::small_config();
    cfg.size_px = 64;
    cfg.object_size_px = 192;
    cfg.scan.spacing_px = 48.0;
    let ds = ptycho_workbench::simulate::simulate_on(&cfg, Device::Cpu).unwrap();
    let b = Bundle::load(&import_with_probe_of(&bundle(1), &ds, dir.path()), Device::Cpu).unwrap();
    let recon = b
        .reconstruct(&ds, &ptycho_workbench::recon::ReconConfig::default())
        .unwrap();
    let crop = recon.metadata.config.as_ref().unwrap().crop_px;
    assert!((20..=32).contains(&crop), "crop {crop}");
    // what the scan alone would have asked for
    let wanted = ptycho_workbench::recon::infer::covering_crop(&ds, 20, 64, [192, 192]).unwrap();
    assert!(wanted > 32, "the scan is not sparse enough to test the cap ({wanted})");
    let peak = recon.object.iter().fold(0.0f32, |m, c| m.max(c.norm()));
    assert!(peak.is_finite() && peak < 5.0, "peak amplitude {peak}");
}
