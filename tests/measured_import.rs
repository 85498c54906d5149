//! Measured data in tike's layout (`ptycho import tike`) and the first look
//! at a dataset (`ptycho dataset inspect`), against hand calculations.
mod common;

use std::path::{Path, PathBuf};

use common::{TestResult, ptycho};
use ndarray::{Array1, Array2, Array3, s};
use num_complex::Complex32;
use ptycho_workbench::data::inspect::inspect;
use ptycho_workbench::data::npy::{self, encode, encode_str};
use ptycho_workbench::data::tike::{MARGIN_PX, import_tike_file, read_raw_tike};
use ptycho_workbench::data::{Dataset, Metadata, import_tike, read_npz, write_npz};

const N: usize = 32;

/// The raw tike arrays of the hand-made case: 3 patterns of 32×32, 2 modes.
struct Case {
    data: Array3<f32>,
    scan: Array2<f64>,
    truth: Array2<f64>,
    probe: Array3<Complex32>,
}

fn case() -> Case {
    let mut data = Array3::<f32>::zeros((3, N, N));
    for p in 0..3 {
        data[[p, 0, 0]] = 100.0 * (p + 1) as f32; // zero frequency: lands at [16, 16]
        data[[p, 1, 2]] = 9.0; // lands at [17, 18]
        data[[p, 31, 31]] = 4.0; // lands at [15, 15]
    }
    // tike's (v, h) top-left corners; the smallest h is −3.5 (floor −4) and
    // the smallest v is the truth's 1.75 (floor 1)
    let scan = Array2::from_shape_vec((3, 2), vec![2.5, 10.25, 7.0, -3.5, 12.0, 5.0]).unwrap();
    let truth = Array2::from_shape_vec((3, 2), vec![1.75, 10.0, 7.5, -3.0, 12.25, 5.5]).unwrap();
    // mode 0 weak (0.5 everywhere: power 256), mode 1 strong (1 everywhere,
    // 2 at [3, 4]: power 1023 + 4 = 1027)
    let mut probe = Array3::from_elem((2, N, N), Complex32::new(0.5, 0.0));
    probe.slice_mut(s![1, .., ..]).fill(Complex32::new(0.0, 1.0));
    probe[[1, 3, 4]] = Complex32::new(2.0, 0.0);
    Case {
        data,
        scan,
        truth,
        probe,
    }
}

fn flat<T: Clone>(a: impl IntoIterator<Item = T>) -> Vec<T> {
    a.into_iter().collect()
}

/// Writes a raw tike NPZ with our own npy/npz writer; `skip` leaves a key out.
fn write_raw(path: &Path, c: &Case, skip: &str) -> TestResult {
    let mut members: Vec<(&str, Vec<u8>)> = vec![
        ("data", encode(c.data.shape(), &flat(c.data.iter().copied()))),
        ("scan", encode(c.scan.shape(), &flat(c.scan.iter().copied()))),
        ("scan_truth", encode(c.truth.shape(), &flat(c.truth.iter().copied()))),
        ("probe", encode(c.probe.shape(), &flat(c.probe.iter().copied()))),
        ("source", encode_str("tike 0.26.0 (hand-made test case)")),
    ];
    members.retain(|(k, _)| *k != skip);
    npy::write_npz(std::fs::File::create(path)?, &members)?;
    Ok(())
}

#[test]
fn a_hand_made_tike_scan_converts_as_calculated() -> TestResult {
    let dir = tempfile::tempdir()?;
    let raw = dir.path().join("raw.npz");
    let c = case();
    write_raw(&raw, &c, "")?;
    let ds = import_tike_file(&raw)?;

    // fftshift + sqrt
    assert_eq!(ds.diffraction.shape(), [3, N, N]);
    for p in 0..3 {
        assert_eq!(ds.diffraction[[p, 16, 16]], (100.0 * (p + 1) as f32).sqrt());
        assert_eq!(ds.diffraction[[p, 17, 18]], 3.0);
        assert_eq!(ds.diffraction[[p, 15, 15]], 2.0);
        assert_eq!(ds.diffraction[[p, 0, 0]], 0.0);
    }
    let lit = ds.diffraction.iter().filter(|&&x| x > 0.0).count();
    assert_eq!(lit, 9);

    // mean counts: (113 + 213 + 313) / 3 = 213
    assert_eq!(ds.metadata.n_photons, Some(213.0));
    assert_eq!(ds.metadata.intensity_scale, Some(1.0));
    assert!(ds.metadata.geometry.is_none());
    assert_eq!(
        ds.metadata.generator.as_deref(),
        Some("tike 0.26.0 (hand-made test case)")
    );

    // positions: x = h + 16 + tx, y = v + 16 + ty; tx = 4 − floor(−3.5) = 8,
    // ty = 4 − floor(1.75) = 3 (the truth's smallest v counts too)
    assert_eq!(MARGIN_PX, 4.0);
    let (tx, ty) = (8.0, 3.0);
    for i in 0..3 {
        let (v, h) = (c.scan[[i, 0]], c.scan[[i, 1]]);
        assert_eq!(ds.positions_px[[i, 0]], h + 16.0 + tx);
        assert_eq!(ds.positions_px[[i, 1]], v + 16.0 + ty);
        assert_eq!(ds.start_positions_px.row(i), ds.positions_px.row(i));
        let t = ds.true_positions_px.as_ref().expect("truth");
        assert_eq!(t[[i, 0]], c.truth[[i, 1]] + 16.0 + tx);
        assert_eq!(t[[i, 1]], c.truth[[i, 0]] + 16.0 + ty);
    }
    assert_eq!(ds.positions_px[[1, 0]], 20.5); // −3.5 + 16 + 8: in [N/2 + 4, N/2 + 5)
    let tr = &ds.metadata.extra["tike_import"]["translation_px"];
    assert_eq!((tr["x"].as_f64(), tr["y"].as_f64()), (Some(tx), Some(ty)));

    // modes: the strong one first, one scale k with k²·(1027 + 256) = 213
    assert_eq!(ds.n_probe_modes(), 2);
    let k = (213.0f64 / 1283.0).sqrt() as f32;
    let close = |a: Complex32, b: Complex32| (a - b).norm() <= 1e-6 * b.norm().max(1.0);
    assert!(close(ds.probe[[0, 0]], Complex32::new(0.0, k)));
    assert!(close(ds.probe[[3, 4]], Complex32::new(2.0 * k, 0.0)));
    let extra = ds.extra_probe_modes.as_ref().expect("second mode");
    assert!(close(extra[[0, 7, 9]], Complex32::new(0.5 * k, 0.0)));
    let power: f64 = ds.probe_modes().iter().map(|c| c.norm_sqr() as f64).sum();
    assert!((power / 213.0 - 1.0).abs() < 1e-6, "{power}");
    let scale = ds.metadata.extra["tike_import"]["probe_scale"].as_f64().unwrap();
    assert!((scale - (213.0f64 / 1283.0).sqrt()).abs() < 1e-12);
    assert_eq!(
        ds.metadata.extra["tike_import"]["probe_mode_order"],
        serde_json::json!([1, 0])
    );
    let tr = ds.metadata.data_transformations.join("\n");
    for needle in ["sqrt", "fftshift", "(+8, +3) px", "sorted by power", "scaled by"] {
        assert!(tr.contains(needle), "`{needle}` missing from\n{tr}");
    }

    // the CLI writes the same dataset, and the NPZ keeps modes and truth
    let out = dir.path().join("ds.npz");
    let o = ptycho(&["import", "tike", raw.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("3 × 32×32") && stdout.contains("2 (power fractions 0.800, 0.200)"),
        "{stdout}"
    );
    let back = read_npz(&out)?;
    assert_eq!(back.diffraction, ds.diffraction);
    assert_eq!(back.probe_modes(), ds.probe_modes());
    assert_eq!(back.true_positions_px, ds.true_positions_px);
    assert_eq!(back.metadata.extra["tike_import"], ds.metadata.extra["tike_import"]);
    Ok(())
}

#[test]
fn bad_raw_tike_files_give_errors_that_say_what_is_wrong() -> TestResult {
    let dir = tempfile::tempdir()?;
    let err = |c: &Case, skip: &str, name: &str| -> String {
        let p = dir.path().join(name);
        write_raw(&p, c, skip).unwrap();
        import_tike_file(&p).unwrap_err().to_string()
    };

    let mut c = case();
    c.data[[1, 5, 6]] = -1.0;
    let e = err(&c, "", "negative.npz");
    assert!(
        e.contains("negative count -1 in pattern 1") && e.contains("[5, 6]"),
        "{e}"
    );

    let mut c = case();
    c.data[[2, 0, 3]] = f32::NAN;
    let e = err(&c, "", "nan.npz");
    assert!(e.contains("non-finite count NaN in pattern 2"), "{e}");

    let mut c = case();
    c.scan = c.scan.slice(s![..2, ..]).to_owned();
    let e = err(&c, "", "short_scan.npz");
    assert!(
        e.contains("tike scan") && e.contains("[3, 2]") && e.contains("[2, 2]"),
        "{e}"
    );

    let mut c = case();
    c.probe = Array3::from_elem((2, 16, 16), Complex32::new(1.0, 0.0));
    let e = err(&c, "", "small_probe.npz");
    assert!(e.contains("tike probe") && e.contains("[2, 16, 16]"), "{e}");

    let mut c = case();
    c.data = Array3::zeros((3, N, 16));
    let e = err(&c, "", "not_square.npz");
    assert!(e.contains("tike data") && e.contains("[3, 32, 16]"), "{e}");

    for key in ["data", "scan", "probe"] {
        let e = err(&case(), key, &format!("no_{key}.npz"));
        assert!(e.contains(&format!("missing key `{key}`")), "{e}");
    }
    // without a truth there are no true positions (and no error)
    let p = dir.path().join("no_truth.npz");
    write_raw(&p, &case(), "scan_truth")?;
    assert!(import_tike(&read_raw_tike(&p)?)?.true_positions_px.is_none());

    // the CLI says it in one line and writes nothing
    let mut c = case();
    c.data[[0, 2, 2]] = -3.0;
    let raw = dir.path().join("bad.npz");
    write_raw(&raw, &c, "")?;
    let out = dir.path().join("never.npz");
    let o = ptycho(&["import", "tike", raw.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && stderr.lines().count() == 1, "{stderr}");
    assert!(stderr.contains("bad.npz") && stderr.contains("pattern 0"), "{stderr}");
    assert!(!out.exists());
    Ok(())
}

/// 4 patterns of 32×32 with intensity scale 2 (counts = (2X)²): one count
/// everywhere except a dead pixel [5, 5] among lit neighbours and a dark
/// 2×2 corner [0..2, 0..2] (zero, but its neighbours are dim: not dead);
/// extra counts 500 in pattern 0 at [16, 16] and 700 in pattern 2 at
/// [16, 16] and [16, 17]. Probe: 1 and 0.5 everywhere (powers 1024, 256).
fn inspect_case() -> Dataset {
    let mut counts = Array3::<f32>::ones((4, N, N));
    for mut p in counts.outer_iter_mut() {
        p[[5, 5]] = 0.0;
        p.slice_mut(s![0..2, 0..2]).fill(0.0);
    }
    counts[[0, 16, 16]] = 500.0;
    counts[[2, 16, 16]] = 700.0;
    counts[[2, 16, 17]] = 700.0;
    let positions = Array2::from_shape_fn((4, 2), |(i, c)| 20.0 + 3.0 * i as f64 + c as f64);
    Dataset {
        diffraction: counts.mapv(|c| c.sqrt() / 2.0),
        start_positions_px: positions.clone(),
        positions_px: positions,
        scan_index: Array1::zeros(4),
        probe: Array2::from_elem((N, N), Complex32::new(1.0, 0.0)),
        extra_probe_modes: Some(Array3::from_elem((1, N, N), Complex32::new(0.0, 0.5))),
        object: None,
        true_positions_px: None,
        patches: None,
        metadata: Metadata {
            intensity_scale: Some(2.0),
            ..Metadata::default()
        },
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn dataset_inspect_counts_as_calculated_by_hand() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file: PathBuf = dir.path().join("small.npz");
    write_npz(&inspect_case(), &file)?;
    let figure = dir.path().join("mean.png");
    let o = ptycho(&[
        "dataset",
        "inspect",
        path_str(&file),
        "--json",
        "--saturation",
        "500",
        "--figure",
        path_str(&figure),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)?;
    assert_eq!(v["n_images"], 4); // the summary's keys stay at the top
    let i = &v["inspection"];
    // per pattern: 1024 − 5 zero pixels at one count = 1019, plus the extras
    let totals = [1019.0 + 499.0, 1019.0, 1019.0 + 2.0 * 699.0, 1019.0];
    let p = &i["photons_per_pattern"];
    let near = |a: &serde_json::Value, b: f64| (a.as_f64().unwrap() - b).abs() < 1e-3 * b.max(1.0);
    assert!(near(&p["mean"], totals.iter().sum::<f64>() / 4.0), "{p}");
    assert!(near(&p["min"], 1019.0) && near(&p["max"], 1019.0 + 1398.0), "{p}");
    assert!(near(&i["max_count"], 700.0), "{i}");
    assert_eq!(i["max_count_at"], serde_json::json!([2, 16, 16]));
    assert_eq!(i["values_at_max"], 2);
    let sat = &i["saturation"];
    assert_eq!(sat["rule"], "given");
    assert_eq!((sat["values"].as_u64(), sat["patterns"].as_u64()), (Some(3), Some(2)));
    assert_eq!(sat["detector_pixels"], 2);
    assert_eq!(i["zero_pixels"], 5);
    assert_eq!(
        i["zero_pixels_listed"],
        serde_json::json!([[0, 0], [0, 1], [1, 0], [1, 1], [5, 5]])
    );
    assert_eq!(i["dead_pixels"], 1); // only [5, 5] has lit neighbours
    assert_eq!(i["n_probe_modes"], 2);
    assert!(near(&i["probe_power_fractions"][0], 0.8) && near(&i["probe_power_fractions"][1], 0.2));
    assert!(near(
        &i["mean_vs_probe"]["counts_over_probe_power"],
        totals.iter().sum::<f64>() / 4.0 / 1280.0
    ));
    let png = std::fs::read(&figure)?;
    assert_eq!(&png[..4], b"\x89PNG");

    // text: the same numbers; auto rule: 700 is no register's ceiling
    let o = ptycho(&["dataset", "inspect", path_str(&file)]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for needle in [
        "max count          700 (pattern 2, pixel [16, 16]); 2 value(s) equal it",
        "saturated          0 (none",
        "dead pixels        5 zero in every pattern: [0, 0] [0, 1] [1, 0] [1, 1] [5, 5]; 1 dead",
        "probe modes        2 (power fractions 0.8000, 0.2000",
    ] {
        assert!(text.contains(needle), "`{needle}` missing from\n{text}");
    }
    let o = ptycho(&["dataset", "inspect", path_str(&file), "--saturation", "-1"]);
    assert!(!o.status.success());
    Ok(())
}

#[test]
fn a_register_ceiling_and_a_pile_up_are_flagged_automatically() -> TestResult {
    let mut ds = inspect_case();
    for c in [3, 4, 5] {
        ds.diffraction[[3, 20, c]] = 65535f32.sqrt() / 2.0;
    }
    let i = inspect(&ds, None)?;
    assert_eq!(i.saturation.threshold_counts, Some(0.9 * i.max_count));
    assert!(
        i.saturation.rule.starts_with("auto") && i.saturation.rule.contains("2^16"),
        "{}",
        i.saturation.rule
    );
    assert_eq!((i.saturation.values, i.saturation.patterns), (3, 1));
    assert!(i.saturation.pile_up_at_max);
    assert_eq!(i.values_at_max, 3);
    Ok(())
}

#[test]
fn patterns_that_are_the_probe_far_field_correlate_only_when_centred() -> TestResult {
    // a flat probe's far field is a spike at (N/2, N/2); patterns with the
    // spike there correlate 1, with the far field's zero frequency at the
    // corner −1/(N² − 1)
    let mut ds = inspect_case();
    ds.extra_probe_modes = None;
    ds.diffraction.fill(0.0);
    ds.diffraction.slice_mut(s![.., 16, 16]).fill(10.0);
    let m = inspect(&ds, None)?.mean_vs_probe;
    assert!((m.correlation.unwrap() - 1.0).abs() < 1e-6, "{m:?}");
    assert!((m.log_correlation.unwrap() - 1.0).abs() < 1e-6, "{m:?}");
    assert!((m.correlation_unshifted.unwrap() + 1.0 / 1023.0).abs() < 1e-6, "{m:?}");
    // counts (2·10)² = 400 per pattern over the probe's power 1024
    assert!((m.counts_over_probe_power - 400.0 / 1024.0).abs() < 1e-6);
    Ok(())
}
