//! The `ptycho` binary as a user runs it.
mod common;

use std::process::Command;

use common::*;

/// A small noisy dataset (N = 32, 96² object, 4 px raster) for training runs.
fn simulate_small(out: &str, seed: &str) {
    let out = ptycho(&[
        "simulate",
        "--out",
        out,
        "--size-px",
        "32",
        "--object-size-px",
        "96",
        "--spacing-px",
        "4",
        "--dose",
        "1e5",
        "--seed",
        seed,
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn simulate_inspect_split_export() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let out = ptycho(&[
        "simulate",
        "--out",
        &p("sim.npz"),
        "--object",
        "siemens-star",
        "--probe",
        "disk",
        "--size-px",
        "32",
        "--object-size-px",
        "96",
        "--scan",
        "spiral",
        "--spacing-px",
        "6",
        "--n-images",
        "60",
        "--dose",
        "1e5",
        "--seed",
        "9",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("60 × 32×32"));

    let out = ptycho(&["dataset", "inspect", &p("sim.npz"), "--json"]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["n_images"], 60);
    assert_eq!(v["n_photons"], 1e5);
    let counts = v["mean_counts_per_pattern"].as_f64().unwrap();
    assert!((counts / 1e5 - 1.0).abs() < 0.02, "{counts}");

    let out = ptycho(&[
        "dataset",
        "split",
        "--input",
        &p("sim.npz"),
        "--train",
        &p("train.npz"),
        "--test",
        &p("test.npz"),
        "--axis",
        "x",
        "--fraction",
        "0.4",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = ptycho_workbench::data::read_npz(&dir.path().join("train.npz"))?;
    let b = ptycho_workbench::data::read_npz(&dir.path().join("test.npz"))?;
    assert_eq!(a.n_images() + b.n_images(), 60);

    let out = ptycho(&["export", "product", "--data", &p("test.npz"), "--out", &p("product.h5")]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let prod = ptycho_workbench::data::read_product(&dir.path().join("product.h5"))?;
    assert_eq!(prod.positions_m.nrows(), b.n_images());
    Ok(())
}

#[test]
fn errors_are_one_line_non_zero_and_leave_nothing_behind() -> TestResult {
    let dir = tempfile::tempdir()?;
    let bad = fixture("npz_variants/bad_nan.npz");
    let out = ptycho(&["dataset", "inspect", bad.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("bad_nan.npz") && err.contains("non-finite"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("backtrace"), "{err}");

    // an invalid configuration fails before anything is written
    let target = dir.path().join("never.npz");
    let out = ptycho(&["simulate", "--out", target.to_str().unwrap(), "--size-px", "48"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("size_px"));
    // a write into a missing folder fails cleanly
    let nowhere = dir.path().join("missing/dir/x.npz");
    let out = ptycho(&[
        "simulate",
        "--out",
        nowhere.to_str().unwrap(),
        "--size-px",
        "32",
        "--object-size-px",
        "64",
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.npz"));
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0, "something was left behind");
    Ok(())
}

#[test]
fn bad_schedule_and_phase_range_options_are_named() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let out = ptycho(&[
        "train",
        "--train",
        &p("t.npz"),
        "--out",
        &p("run"),
        "--lr-schedule",
        "steps",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--lr-schedule") && err.contains("steps"), "{err}");
    for bad in ["wide", "0", "nan"] {
        let out = ptycho(&[
            "compare",
            "--truth",
            &p("t.npz"),
            "--recon",
            &p("r.npz"),
            "--out",
            &p("cmp"),
            "--phase-range",
            bad,
        ]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--phase-range"), "{bad}: {err}");
    }
    // a benchmark's gridsize is 1 or 2, refused before anything runs
    for bench in ["train", "infer"] {
        let out = ptycho(&["bench", bench, "--device", "cpu", "--gridsize", "3"]);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("--gridsize") && err.contains('3'), "{bench}: {err}");
    }
    // the measured-data benchmark says how to get what it lacks
    let out = ptycho(&["bench", "measured", "--data", &p("no_scan.npz")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no_scan.npz") && err.contains("make measured-data"),
        "{err}"
    );
    let out = ptycho(&[
        "bench",
        "measured",
        "--data",
        &root().join("Cargo.toml").to_string_lossy(),
        "--peer-python",
        &p("no_env/bin/python"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no_env") && err.contains("pip install ptychi==2.2.0"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(dir.path())?.count(), 0, "something was left behind");
    Ok(())
}

#[test]
fn config_file_with_an_unknown_key_is_refused_with_its_name() -> TestResult {
    let dir = tempfile::tempdir()?;
    let cfg = dir.path().join("sim.toml");
    std::fs::write(&cfg, "seed = 1\nsize_px = 32\n[scan]\nspacing = 4\n")?;
    let out = ptycho(&[
        "simulate",
        "--out",
        dir.path().join("x.npz").to_str().unwrap(),
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("spacing") && err.contains("sim.toml"), "{err}");
    Ok(())
}

#[test]
fn shipped_config_and_a_probe_from_another_dataset() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let cfg = root().join("data/sim/siemens_star_spiral.toml");
    // the shipped config, shrunk by flags (flags override the file)
    let out = ptycho(&[
        "simulate",
        "--out",
        &p("star.npz"),
        "--config",
        cfg.to_str().unwrap(),
        "--n-images",
        "40",
        "--object-size-px",
        "160",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let star = ptycho_workbench::data::read_npz(&dir.path().join("star.npz"))?;
    assert_eq!(star.n_images(), 40);
    assert_eq!(star.metadata.seed, Some(11));
    assert_eq!(star.metadata.n_photons, Some(1e5));
    let gen_cfg = star.metadata.generator_config.as_ref().unwrap();
    assert_eq!(gen_cfg["scan"]["kind"], "spiral");
    assert_eq!(gen_cfg["object_size_px"], 160);

    // reuse its probe for a second simulation
    let out = ptycho(&[
        "simulate",
        "--out",
        &p("lines.npz"),
        "--probe",
        &p("star.npz"),
        "--object",
        "lines",
        "--object-size-px",
        "128",
        "--no-noise",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines = ptycho_workbench::data::read_npz(&dir.path().join("lines.npz"))?;
    assert_eq!(lines.probe, star.probe);
    assert_eq!(lines.metadata.n_photons, None);

    // a probe of the wrong size is refused with both sizes named
    let out = ptycho(&[
        "simulate",
        "--out",
        &p("bad.npz"),
        "--probe",
        &p("star.npz"),
        "--size-px",
        "32",
        "--device",
        "cpu",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("probe.path") && err.contains("[64, 64]") && err.contains("[32, 32]"),
        "{err}"
    );
    Ok(())
}

#[test]
fn train_writes_a_bundle_and_a_result_record_and_inspect_reads_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    simulate_small(&p("train.npz"), "1");
    simulate_small(&p("test.npz"), "2");
    let out = ptycho(&[
        "train",
        "--train",
        &p("train.npz"),
        "--test",
        &p("test.npz"),
        "--gridsize",
        "2",
        "--max-offset-px",
        "20",
        "--epochs",
        "2",
        "--n-groups",
        "32",
        "--device",
        "cpu",
        "--out",
        &p("run"),
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("epoch 2/2"));
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/train_result.json"))?)?;
    assert_eq!(result["status"], "completed");
    assert_eq!(result["epochs_completed"], 2);
    assert_eq!(result["bundle_path"], "wts.h5.zip");
    assert!(result["test_loss"].as_f64().is_some_and(f64::is_finite));
    assert!(
        result["phase_saturation"]
            .as_f64()
            .is_some_and(|f| (0.0..=1.0).contains(&f))
    );
    let bundle = std::fs::read(dir.path().join("run/wts.h5.zip"))?;
    assert_eq!(result["bundle_size_bytes"], bundle.len());
    assert_eq!(
        result["bundle_sha256"],
        ptycho_workbench::bundle::save::sha256_hex(&bundle)
    );
    for f in ["history.csv", "config.json", "checkpoint.safetensors"] {
        assert!(dir.path().join("run").join(f).exists(), "{f} missing");
    }
    let history = std::fs::read_to_string(dir.path().join("run/history.csv"))?;
    assert_eq!(history.lines().count(), 3, "{history}");
    // the saved configuration is the one the run used: groups of 4, not the
    // grouping field's default of 1
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/config.json"))?)?;
    assert_eq!(config["model"]["gridsize"], 2);
    assert_eq!(config["train"]["grouping"]["gridsize"], 2);
    assert_eq!(config["model"]["max_offset_px"], 20.0);

    let out = ptycho(&["bundle", "inspect", &p("run/wts.h5.zip"), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let m: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(m["model_config"]["gridsize"], 2);
    assert_eq!(m["model_config"]["max_offset_px"], 20.0);
    assert_eq!(m["train_config"]["grouping"]["gridsize"], 2);
    assert_eq!(m["format"], "ptycho-workbench/bundle");
    Ok(())
}

#[test]
fn a_bundle_that_cannot_be_written_is_recorded_not_crashed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    simulate_small(&p("train.npz"), "1");
    // a folder where the bundle file should go: the final rename must fail
    std::fs::create_dir_all(dir.path().join("run/wts.h5.zip"))?;
    let out = ptycho(&[
        "train",
        "--train",
        &p("train.npz"),
        "--epochs",
        "1",
        "--n-groups",
        "16",
        "--device",
        "cpu",
        "--out",
        &p("run"),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bundle was not saved"), "{err}");
    let result: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("run/train_result.json"))?)?;
    assert_eq!(result["status"], "completed");
    assert!(result["bundle_path"].is_null());
    assert!(
        result["bundle_error"]
            .as_str()
            .is_some_and(|e| e.contains("wts.h5.zip"))
    );
    // nothing half-written is left beside it
    let stray: Vec<_> = std::fs::read_dir(dir.path().join("run"))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
    Ok(())
}

/// `ptycho train` killed with SIGKILL at several moments: afterwards the
/// bundle is the previous one, byte for byte, or a complete new one that
/// loads; never a partial file.
#[test]
fn a_kill_during_training_or_saving_never_leaves_a_partial_bundle() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    simulate_small(&p("train.npz"), "1");
    let args = |seed: &str| {
        vec![
            "train".to_string(),
            "--train".into(),
            p("train.npz"),
            "--epochs".into(),
            "1".into(),
            "--n-groups".into(),
            "16".into(),
            "--device".into(),
            "cpu".into(),
            "--seed".into(),
            seed.into(),
            "--out".into(),
            p("run"),
        ]
    };
    assert!(
        Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .args(args("1"))
            .output()?
            .status
            .success()
    );
    let bundle = dir.path().join("run/wts.h5.zip");
    let checkpoint = dir.path().join("run/checkpoint.safetensors");
    let old = std::fs::read(&bundle)?;
    // kill points: at once (reading, training) and as soon as the epoch's
    // checkpoint is rewritten (the bundle is being written then)
    for (k, after_checkpoint) in [false, true, true, false, true].into_iter().enumerate() {
        let before = std::fs::metadata(&checkpoint)?.modified()?;
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .args(args(&(k + 2).to_string()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        while after_checkpoint
            && child.try_wait()?.is_none()
            && std::fs::metadata(&checkpoint)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t == before)
        {
            std::thread::yield_now();
        }
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        let now = std::fs::read(&bundle)?;
        if now != old {
            // a complete new bundle: every checksum verifies
            ptycho_workbench::bundle::Bundle::load(&bundle, tch::Device::Cpu)?;
        }
    }
    Ok(())
}

#[test]
fn a_missing_file_is_named_once() {
    let out = ptycho(&["dataset", "inspect", "/nonexistent/data.npz"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
    assert!(err.contains("/nonexistent/data.npz"), "{err}");
}

/// Writes a member of the metrics fixture as a `.npy` file.
fn fixture_npy(dir: &std::path::Path, key: &str) -> std::path::PathBuf {
    let a = npz_member(&fixture("metrics/images.npz"), key);
    let path = dir.join(format!("{key}.npy"));
    let values: Vec<f32> = f64s(&a).iter().map(|&v| v as f32).collect();
    std::fs::write(&path, ptycho_workbench::data::npy::encode(&a.shape, &values)).unwrap();
    path
}

#[test]
fn metrics_of_two_images_match_scikit_image() -> TestResult {
    let dir = tempfile::tempdir()?;
    let expected = read_json(&fixture("metrics/expected.json"));
    for case in ["random64", "struct48x80"] {
        let truth = fixture_npy(dir.path(), &format!("{case}_truth"));
        let pred = fixture_npy(dir.path(), &format!("{case}_pred"));
        let e = &expected[case];
        let range = e["data_range"].as_f64().unwrap().to_string();
        let out = ptycho(&[
            "metrics",
            "--truth",
            truth.to_str().unwrap(),
            "--pred",
            pred.to_str().unwrap(),
            "--data-range",
            &range,
            "--json",
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let got: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        for key in ["mae", "mse", "psnr", "ssim", "ms_ssim"] {
            let (g, w) = (got[key].as_f64().unwrap(), e[key].as_f64().unwrap());
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1.0),
                "{case} {key}: {g} vs scikit-image {w}"
            );
        }
    }
    // a complex or 3-D input is refused by name
    let bad = dir.path().join("bad.npy");
    std::fs::write(&bad, ptycho_workbench::data::npy::encode(&[2, 2, 2], &[0f32; 8]))?;
    let out = ptycho(&[
        "metrics",
        "--truth",
        bad.to_str().unwrap(),
        "--pred",
        bad.to_str().unwrap(),
        "--data-range",
        "1",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected a 2-D image"));
    Ok(())
}

#[test]
fn reconstruct_then_compare_writes_tables_and_a_figure() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    // noise-free, well overlapped: ePIE must get close to the truth
    let out = ptycho(&[
        "simulate",
        "--out",
        &p("ds.npz"),
        "--size-px",
        "32",
        "--object-size-px",
        "96",
        "--spacing-px",
        "4",
        "--no-noise",
        "--seed",
        "3",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for (alg, file) in [("epie", "epie.npz"), ("gradient", "grad.npz")] {
        let out = ptycho(&[
            "reconstruct",
            "--data",
            &p("ds.npz"),
            "--algorithm",
            alg,
            "--iterations",
            "40",
            "--device",
            "cpu",
            "--out",
            &p(file),
        ]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("iteration   40"));
    }
    let out = ptycho(&[
        "compare",
        "--truth",
        &p("ds.npz"),
        "--recon",
        &p("epie.npz"),
        "--recon",
        &p("grad.npz"),
        "--label",
        "ePIE",
        "--label",
        "gradient",
        "--out",
        &p("cmp"),
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(json.as_array().unwrap().len(), 2);
    for rec in json.as_array().unwrap() {
        let ssim = rec["phase"]["ssim"].as_f64().unwrap();
        assert!(ssim > 0.9, "{}: phase SSIM {ssim}", rec["label"]);
        assert_eq!(rec["alignment"]["phase_align"], "plane");
    }
    let csv = std::fs::read_to_string(dir.path().join("cmp/metrics.csv"))?;
    let mut lines = csv.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("label,component,mae,mse,psnr,ssim,ms_ssim,frc50,frc_1_7")
    );
    assert_eq!(lines.count(), 4, "label × {{amplitude, phase}}");
    assert!(
        std::fs::read_to_string(dir.path().join("cmp/frc.csv"))?.starts_with("label,component,ring,cycles_per_px,frc")
    );
    let png = image::open(dir.path().join("cmp/comparison.png"))?;
    assert!(png.width() > 600 && png.height() > 400);
    // the truth's phase span as range: recorded, and stricter than R = 1
    let out = ptycho(&[
        "compare",
        "--truth",
        &p("ds.npz"),
        "--recon",
        &p("epie.npz"),
        "--out",
        &p("cmp_span"),
        "--phase-range",
        "span",
        "--json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let span: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let (span, unit) = (&span[0], &json[0]);
    assert_eq!(span["alignment"]["phase_scale"], "truth_span");
    let range = span["alignment"]["phase_range"].as_f64().unwrap();
    assert!(range > 0.0 && range < 1.0, "{range}");
    assert!(span["phase"]["ssim"].as_f64().unwrap() <= unit["phase"]["ssim"].as_f64().unwrap());
    assert_eq!(span["amplitude"], unit["amplitude"]);
    // a label count that does not match is refused before any work
    let out = ptycho(&[
        "compare",
        "--truth",
        &p("ds.npz"),
        "--recon",
        &p("epie.npz"),
        "--label",
        "a",
        "--label",
        "b",
        "--out",
        &p("x"),
    ]);
    assert!(!out.status.success());
    assert!(!dir.path().join("x").exists());
    Ok(())
}

/// A solver config file's algorithm and device hold unless a flag is given.
#[test]
fn reconstruct_takes_the_algorithm_from_its_config_unless_a_flag_overrides_it() -> TestResult {
    let dir = tempfile::tempdir()?;
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    simulate_small(&p("ds.npz"), "3");
    std::fs::write(
        dir.path().join("solver.toml"),
        "algorithm = \"gradient\"\niterations = 2\ndevice = \"cpu\"\n",
    )?;
    let source = |extra: &[&str], file: &str| -> Result<String, Box<dyn std::error::Error>> {
        let (ds, cfg, out_file) = (p("ds.npz"), p("solver.toml"), p(file));
        let mut args = vec!["reconstruct", "--data", &ds, "--config", &cfg, "--out", &out_file];
        args.extend(extra);
        let out = ptycho(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let meta = npz_metadata(std::path::Path::new(&out_file));
        assert_eq!(meta["solver"]["iterations_run"], 2);
        Ok(meta["source"].as_str().unwrap().to_string())
    };
    assert!(source(&[], "a.npz")?.starts_with("iterative gradient"));
    assert_eq!(source(&["--algorithm", "epie"], "b.npz")?, "iterative epie");
    Ok(())
}

/// Our networks' reconstructions are not registered by default (they are
/// stitched on the dataset's grid); iterative and foreign ones are.
#[test]
fn compare_registers_what_its_policy_says_and_names_a_bad_policy() -> TestResult {
    use ptycho_workbench::recon::{ReconMetadata, Reconstruction, write_recon_npz};
    let dir = tempfile::tempdir()?;
    let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
    simulate_small(&p("ds.npz"), "4");
    let truth = ptycho_workbench::data::read_dataset(std::path::Path::new(&p("ds.npz")))?
        .object
        .unwrap();
    // the truth moved 1 px down: a registration must move it back (dy = −1)
    let object = ndarray::Array2::from_shape_fn(truth.dim(), |(y, x)| truth[[(y + 95) % 96, x]]);
    for (file, source) in [("net.npz", "pinn inference"), ("epie.npz", "iterative epie")] {
        let recon = Reconstruction {
            object: object.clone(),
            coverage: ndarray::Array2::ones(object.dim()),
            metadata: ReconMetadata {
                format: "ptycho-workbench/reconstruction".into(),
                source: source.into(),
                bundle_sha256: None,
                n_groups: 1,
                config: None,
                seconds_inference: 0.0,
                seconds_stitch: 0.0,
                solver: None,
                refinement: None,
                adaptation: None,
                selection: None,
            },
        };
        write_recon_npz(&recon, std::path::Path::new(&p(file)))?;
    }
    let shifts = |policy: Option<&str>| -> Result<Vec<serde_json::Value>, Box<dyn std::error::Error>> {
        let out_dir = p(&format!("cmp_{}", policy.unwrap_or("default")));
        let (ds, net, epie) = (p("ds.npz"), p("net.npz"), p("epie.npz"));
        let mut args = vec![
            "compare", "--truth", &ds, "--recon", &net, "--recon", &epie, "--out", &out_dir, "--json",
        ];
        if let Some(policy) = policy {
            args.extend(["--register", policy]);
        }
        let out = ptycho(&args);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        Ok(json
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["alignment"]["shift_px"].clone())
            .collect())
    };
    let found =
        |v: &serde_json::Value| (v[0].as_f64().unwrap() + 1.0).abs() < 0.05 && v[1].as_f64().unwrap().abs() < 0.05;
    let auto = shifts(None)?;
    assert!(auto[0].is_null(), "a network's reconstruction was registered: {auto:?}");
    assert!(found(&auto[1]), "the iterative one was not registered: {auto:?}");
    // both measured on the same pixels: the unregistered one is trimmed by the registration's border
    let rec = read_json(&dir.path().join("cmp_default/metrics.json"));
    assert_eq!(rec[0]["alignment"]["metric_shape"], rec[1]["alignment"]["metric_shape"]);
    assert_eq!(rec[0]["alignment"]["trim_px"], 4);
    let all = shifts(Some("all"))?;
    assert!(found(&all[0]) && found(&all[1]), "{all:?}");
    assert!(shifts(Some("none"))?.iter().all(serde_json::Value::is_null));
    let out = ptycho(&[
        "compare",
        "--truth",
        &p("ds.npz"),
        "--recon",
        &p("net.npz"),
        "--out",
        &p("bad"),
        "--register",
        "some",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("register") && err.contains("some"), "{err}");
    assert!(!dir.path().join("bad").exists());
    Ok(())
}

#[test]
fn the_demo_writes_a_report_where_the_iterative_solver_finds_the_object() -> TestResult {
    let dir = tempfile::tempdir()?;
    let out_dir = dir.path().join("demo");
    let out = ptycho(&[
        "demo",
        "--out",
        out_dir.to_str().unwrap(),
        "--epochs",
        "1",
        "--n-groups",
        "16",
        "--n-images",
        "640",
        "--iterations",
        "10",
        "--device",
        "cpu",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = std::fs::read_to_string(out_dir.join("report.md"))?;
    assert!(report.contains("| PINN gs2 | phase |") && report.contains("| ePIE | phase |"));
    for f in [
        "dataset.png",
        "history.png",
        "comparison.png",
        "frc_phase.png",
        "pinn_gs2/wts.h5.zip",
        "metrics.json",
    ] {
        assert!(out_dir.join(f).exists(), "{f} missing");
    }
    // the classical solver on the held-out half recovers the phase well
    let json = read_json(&out_dir.join("metrics.json"));
    let epie = json.as_array().unwrap().iter().find(|r| r["label"] == "ePIE").unwrap();
    let ssim = epie["phase"]["ssim"].as_f64().unwrap();
    assert!(ssim > 0.5, "ePIE phase SSIM {ssim}");
    Ok(())
}
