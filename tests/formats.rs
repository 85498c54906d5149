//! Files: PtychoPINN NPZ both ways with numpy, Ptychodus products with h5py,
//! CXI from h5py, and bad input that must give a clear error.
mod common;

use common::*;
use ptycho_workbench::data::{self, Product, read_cxi, read_npz, read_product, write_npz, write_product};
use ptycho_workbench::simulate::simulate_on;
use tch::Device;

#[test]
fn npz_written_by_rust_loads_in_numpy_with_the_contract_dtypes() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let ds = simulate_on(&small_config(), Device::Cpu)?;
    let path = dir.path().join("sim.npz");
    write_npz(&ds, &path)?;
    let v = run_python_json(&fixture("npz_variants/check_npz.py"), &[&path]);
    assert_eq!(v["n"], ds.n_images());
    assert_eq!(v["N"], 32);
    assert_eq!(v["nphotons"], 1e4);
    assert_eq!(v["intensity_scale"].as_f64(), ds.metadata.intensity_scale);
    let sum: f64 = ds.diffraction.iter().map(|&x| x as f64).sum();
    assert!((v["amplitude_sum"].as_f64().unwrap() - sum).abs() < 1e-9 * sum);
    assert_eq!(v["x0"].as_f64().unwrap(), ds.positions_px[[0, 0]]);
    assert_eq!(v["object_shape"], serde_json::json!([96, 96]));
    assert!(v["keys"].as_array().unwrap().iter().any(|k| k == "_metadata"));
    Ok(())
}

#[test]
fn npz_round_trip_in_rust_is_lossless() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let mut cfg = small_config();
    cfg.store_patches = true;
    let ds = simulate_on(&cfg, Device::Cpu)?;
    let path = dir.path().join("rt.npz");
    write_npz(&ds, &path)?;
    let back = read_npz(&path)?;
    assert_eq!(back, ds);
    Ok(())
}

#[test]
fn numpy_written_npz_variants_load_to_the_same_data() -> TestResult {
    init();
    let expected = read_json(&fixture("npz_variants/expected.json"));
    let sum_ref = expected["amplitude_sum"].as_f64().unwrap();
    for name in [
        "canonical",
        "legacy_diff3d_nnm",
        "legacy_uint16",
        "fortran_order",
        "compressed",
    ] {
        let ds = read_npz(&fixture(&format!("npz_variants/{name}.npz")))?;
        assert_eq!(ds.n_images(), 5, "{name}");
        assert_eq!(ds.patch_size(), 32, "{name}");
        let sum: f64 = ds.diffraction.iter().map(|&x| x as f64).sum();
        assert!((sum - sum_ref).abs() < 1e-6 * sum_ref, "{name}: {sum} vs {sum_ref}");
        let a = ds.diffraction[[2, 3, 4]] as f64;
        assert!(
            (a - expected["amplitude_2_3_4"].as_f64().unwrap()).abs() < 1e-6,
            "{name}"
        );
        let xs: Vec<f64> = ds.positions_px.column(0).to_vec();
        assert_eq!(serde_json::json!(xs), expected["x"], "{name}");
        let p = ds.probe[[0, 1]];
        assert_eq!(
            serde_json::json!([p.re as f64, p.im as f64]),
            expected["probe_0_1"],
            "{name}"
        );
    }
    let canonical = read_npz(&fixture("npz_variants/canonical.npz"))?;
    assert_eq!(canonical.metadata.n_photons, Some(20480.0));
    assert_eq!(canonical.metadata.extra["creator"], "numpy fixture");
    let legacy = read_npz(&fixture("npz_variants/legacy_uint16.npz"))?;
    assert_eq!(legacy.metadata.intensity_scale, Some(1.0));
    let mean_counts = expected["counts_mean_total"].as_f64().unwrap();
    assert!((legacy.metadata.n_photons.unwrap() - mean_counts).abs() < 1e-9 * mean_counts);
    assert!(
        legacy
            .metadata
            .data_transformations
            .iter()
            .any(|t| t.contains("uint16 intensity → amplitude"))
    );
    let nnm = read_npz(&fixture("npz_variants/legacy_diff3d_nnm.npz"))?;
    assert!(
        nnm.metadata
            .data_transformations
            .iter()
            .any(|t| t.contains("[N, N, n]"))
    );
    Ok(())
}

fn expect_error(result: ptycho_workbench::Result<impl std::fmt::Debug>, file: &str, words: &[&str]) {
    let e = result.expect_err("must fail").to_string();
    assert!(e.contains(file), "error does not name the file: {e}");
    for w in words {
        assert!(e.contains(w), "error lacks `{w}`: {e}");
    }
    assert!(!e.contains('\n'), "error is not one line: {e}");
}

#[test]
fn bad_npz_files_give_errors_that_name_the_file_and_the_problem() -> TestResult {
    init();
    let f = |n: &str| fixture(&format!("npz_variants/{n}"));
    expect_error(read_npz(&f("bad_nan.npz")), "bad_nan.npz", &["non-finite", "pattern 2"]);
    expect_error(
        read_npz(&f("bad_missing_probe.npz")),
        "bad_missing_probe.npz",
        &["missing key `probeGuess`"],
    );
    expect_error(
        read_npz(&f("bad_complex_diffraction.npz")),
        "bad_complex_diffraction.npz",
        &["complex64", "float32"],
    );
    expect_error(
        read_npz(&f("bad_negative.npz")),
        "bad_negative.npz",
        &["negative amplitude", "pattern 1"],
    );

    let dir = tempfile::tempdir()?;
    let empty = dir.path().join("empty.npz");
    std::fs::write(&empty, b"")?;
    expect_error(read_npz(&empty), "empty.npz", &["empty"]);
    let good = std::fs::read(f("canonical.npz"))?;
    for cut in [good.len() / 2, good.len() - 30, 100] {
        let t = dir.path().join(format!("truncated_{cut}.npz"));
        std::fs::write(&t, &good[..cut])?;
        expect_error(read_npz(&t), &format!("truncated_{cut}.npz"), &[]);
    }
    let missing = dir.path().join("nope.npz");
    expect_error(read_npz(&missing), "nope.npz", &["No such file"]);
    Ok(())
}

#[test]
fn product_written_by_rust_has_the_exact_h5py_layout_and_reads_back() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let ds = simulate_on(&small_config(), Device::Cpu)?;
    let product = Product::from_dataset(&ds, None, "sim")?;
    let path = dir.path().join("product.h5");
    write_product(&product, &path)?;
    let v = run_python_json(&fixture("product/check_product.py"), &[&path]);
    assert_eq!(v["object_shape"], serde_json::json!([1, 96, 96]));
    assert_eq!(v["probe_shape"], serde_json::json!([1, 1, 32, 32]));
    assert_eq!(v["n_positions"], ds.n_images());
    let dx = ds.metadata.geometry.unwrap().object_pixel_size_m(32);
    assert!((v["pixel_width_m"].as_f64().unwrap() - dx).abs() < 1e-20);
    // probe centre of position x is x − ½ px; the object centre (W−1)/2 = 47.5 px is 0 m
    let x0 = ds.positions_px[[0, 0]];
    let x_m0 = v["x_m"][0].as_f64().unwrap();
    assert!((x_m0 - (x0 - 0.5 - 47.5) * dx).abs() < 1e-15, "{x_m0}");
    let o = ds.object.as_ref().unwrap()[[0, 0]];
    assert_eq!(v["object_0_0"], serde_json::json!([o.re as f64, o.im as f64]));
    let back = read_product(&path)?;
    assert_eq!(back, product);
    let px = back.positions_px();
    for (a, b) in px.iter().zip(ds.positions_px.iter()) {
        assert!((a - b).abs() < 1e-9, "{a} vs {b}");
    }
    Ok(())
}

#[test]
fn products_written_by_h5py_read_in_rust() -> TestResult {
    init();
    let p = read_product(&fixture("product/ptychodus_v17.h5"))?;
    assert_eq!(p.name, "fixture");
    assert_eq!(p.photon_energy_ev, 9000.0);
    assert_eq!(p.object.shape(), [1, 40, 48]);
    assert_eq!(p.probe.shape(), [1, 1, 16, 16]);
    assert_eq!(p.object_center_m, [2e-8, -1e-8]);
    assert_eq!(p.loss_values, vec![3.0, 2.0, 1.5]);
    // x_px = (x_m − cx)/dx + (W−1)/2 + ½ = (−1e-7 − 2e-8)/1e-8 + 23.5 + 0.5
    assert!((p.positions_px()[[0, 0]] - (-12.0 + 24.0)).abs() < 1e-9);
    let legacy = read_product(&fixture("product/ptychodus_legacy.h5"))?;
    assert_eq!(legacy.photon_energy_ev, 7000.0);
    assert_eq!(legacy.object.shape(), [1, 40, 48]);
    assert_eq!(legacy.probe.shape(), [1, 1, 16, 16]);
    assert_eq!(legacy.probe_pixel_size_m, [2e-8, 2e-8]); // defaults to the object's
    Ok(())
}

#[test]
fn bad_product_files_give_clear_errors() -> TestResult {
    init();
    expect_error(
        read_product(&fixture("product/bad_real_imag.h5")),
        "bad_real_imag.h5",
        &["`r` and `i`"],
    );
    let dir = tempfile::tempdir()?;
    let not_h5 = dir.path().join("not.h5");
    std::fs::write(&not_h5, b"plain text, not HDF5")?;
    expect_error(read_product(&not_h5), "not.h5", &["not a readable HDF5 file"]);
    // an HDF5 file with the wrong layout: a CXI file is not a product
    expect_error(
        read_product(&fixture("cxi/small.cxi")),
        "small.cxi",
        &["missing root attribute `detector_object_distance_m`"],
    );
    // and a product is not a CXI file
    expect_error(
        read_cxi(&fixture("product/ptychodus_v17.h5")),
        "ptychodus_v17.h5",
        &["no diffraction data"],
    );
    Ok(())
}

#[test]
fn cxi_from_h5py_converts_intensities_and_metres() -> TestResult {
    init();
    let expected = read_json(&fixture("cxi/expected.json"));
    let ds = read_cxi(&fixture("cxi/small.cxi"))?;
    assert_eq!(ds.n_images(), 9);
    assert_eq!(ds.patch_size(), 32);
    let g = ds.metadata.geometry.unwrap();
    assert!((g.photon_energy_ev - 6200.0).abs() < 1e-6);
    let dx = expected["dx_m"].as_f64().unwrap();
    assert!((g.object_pixel_size_m(32) - dx).abs() < 1e-12 * dx);
    for (i, (x, y)) in ds
        .positions_px
        .column(0)
        .iter()
        .zip(ds.positions_px.column(1))
        .enumerate()
    {
        assert!((x - expected["x_px"][i].as_f64().unwrap()).abs() < 1e-9, "x[{i}]");
        assert!((y - expected["y_px"][i].as_f64().unwrap()).abs() < 1e-9, "y[{i}]");
    }
    let sum: f64 = ds.diffraction.iter().map(|&a| a as f64).sum();
    let want = expected["amplitude_sum"].as_f64().unwrap();
    assert!((sum - want).abs() < 1e-6 * want);
    assert_eq!(ds.metadata.intensity_scale, Some(1.0));
    assert!((ds.metadata.n_photons.unwrap() - expected["mean_total_counts"].as_f64().unwrap()).abs() < 1e-6);
    // the estimated probe reproduces the mean measured amplitude in the far field
    let p = ptycho_workbench::array::c64_to_tensor(&ds.probe, Device::Cpu).unsqueeze(0);
    let a = ptycho_workbench::physics::far_field_amplitude(&p);
    let mean_i = ds.diffraction.mapv(|x| x * x).mean_axis(ndarray::Axis(0)).unwrap();
    let got = ptycho_workbench::array::tensor_to_f32(&a)?;
    let got: Vec<f64> = got.iter().map(|&v| v as f64).collect();
    let want: Vec<f64> = mean_i.iter().map(|&v| (v as f64).sqrt()).collect();
    assert!(max_rel_err(&got, &want) < 1e-5);
    Ok(())
}

#[test]
fn split_and_subsample_partition_the_patterns() -> TestResult {
    init();
    let ds = simulate_on(&small_config(), Device::Cpu)?;
    let (train, test) = ds.split(data::SplitAxis::Y, 0.5)?;
    assert_eq!(train.n_images() + test.n_images(), ds.n_images());
    let (lo, hi) = (
        ds.positions_px.column(1).fold(f64::MAX, |a, &b| a.min(b)),
        ds.positions_px.column(1).fold(f64::MIN, |a, &b| a.max(b)),
    );
    let t = lo + 0.5 * (hi - lo);
    assert!(train.positions_px.column(1).iter().all(|&y| y < t));
    assert!(test.positions_px.column(1).iter().all(|&y| y >= t));
    assert!(ds.split(data::SplitAxis::X, 1.5).is_err());
    let sub = ds.subsample(10, 4)?;
    assert_eq!(sub.n_images(), 10);
    assert_eq!(sub, ds.subsample(10, 4)?);
    assert_ne!(sub, ds.subsample(10, 5)?);
    assert!(ds.subsample(ds.n_images() + 1, 0).is_err());
    Ok(())
}

#[test]
fn validation_names_the_problem() {
    init();
    let ds = simulate_on(&small_config(), Device::Cpu).unwrap();
    let mut outside = ds.clone();
    outside.positions_px[[3, 0]] = 2.0;
    let e = outside.validate().unwrap_err().to_string();
    assert!(e.contains("position 3") && e.contains("outside"), "{e}");
    let mut wrong_probe = ds.clone();
    wrong_probe.probe = ndarray::Array2::zeros((16, 16));
    let e = wrong_probe.validate().unwrap_err().to_string();
    assert!(e.contains("probe") && e.contains("[32, 32]"), "{e}");
    let mut unsupported = ds.clone();
    unsupported.diffraction = ndarray::Array3::zeros((ds.n_images(), 48, 48));
    unsupported.probe = ndarray::Array2::zeros((48, 48));
    let e = unsupported.validate().unwrap_err().to_string();
    assert!(e.contains("N = 48 is not supported"), "{e}");
    let mut nan_pos = ds.clone();
    nan_pos.positions_px[[1, 1]] = f64::NAN;
    assert!(nan_pos.validate().unwrap_err().to_string().contains("non-finite"));
}
