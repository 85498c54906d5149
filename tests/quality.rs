//! The quality suite as a small smoke run (it runs every kind of arm, writes
//! its table, resumes from what it trained, and refuses bad suites); the
//! numbers themselves belong to `ptycho bench quality` and docs/quality.md.
mod common;

use common::*;
use ptycho_workbench::quality::{Arm, QualitySuite, RunOptions, markdown_table, run_suite, write_results};
use ptycho_workbench::train::SilentObserver;

/// Two cases at N = 32: a dense one, and one that reuses its networks on a
/// sparse raster scored on the illuminated pixels.
const TINY: &str = r#"
name = "tiny"
arms = ["pinn-gs1", "epie", "hybrid", "constant"]
device = "cpu"
[training]
preset = "quick"
epochs = 1
n_groups = 16

[[case]]
name = "dense"
hybrid_network = "pinn-gs1"
[case.sim]
seed = 3
size_px = 32
object_size_px = 96
dose_photons = 1e4
[case.sim.scan]
kind = "random"
n_images = 120

[[case]]
name = "sparse"
score_pixels = "illuminated"
reuse_networks_of = "dense"
hybrid_network = "pinn-gs1"
arms = ["pinn-gs1", "epie", "constant"]
[case.sim]
seed = 3
size_px = 32
object_size_px = 96
dose_photons = 1e4
[case.sim.scan]
kind = "random"
n_images = 120
[case.test_sim]
seed = 3
size_px = 32
object_size_px = 96
dose_photons = 1e4
[case.test_sim.scan]
kind = "raster"
spacing_px = 20
"#;

#[test]
fn a_tiny_suite_runs_every_arm_writes_its_table_and_resumes() -> TestResult {
    init();
    let dir = tempfile::tempdir()?;
    let mut suite = QualitySuite::from_toml(TINY)?;
    for c in &mut suite.cases {
        for sim in std::iter::once(&mut c.sim).chain(c.test_sim.as_mut()) {
            sim.scan.spacing_px = sim.scan.spacing_px.max(4.0);
            sim.object.features = Some(30);
        }
    }
    let opts = RunOptions {
        work_dir: dir.path().join("work"),
        force: false,
    };
    let mut seen = Vec::new();
    let rows = run_suite(&suite, &opts, &mut |r| seen.push(r.arm.clone()), &mut SilentObserver)?;
    assert_eq!(rows.len(), 7);
    assert_eq!(seen.len(), 7);
    for r in &rows {
        assert_eq!(r.status, "ok", "{}/{}: {:?}", r.case, r.arm, r.error);
        let (a, p) = (r.amp_ssim.unwrap(), r.phase_ssim.unwrap());
        assert!((-1.0..=1.0).contains(&a) && (-1.0..=1.0).contains(&p));
    }
    let row = |case: &str, arm: &str| rows.iter().find(|r| r.case == case && r.arm == arm).unwrap();
    // the dense case trained its network; the sparse one reused it
    assert!(row("dense", "pinn-gs1").seconds_train > 0.0);
    assert_eq!(row("sparse", "pinn-gs1").seconds_train, 0.0);
    assert_eq!(
        row("dense", "hybrid").seconds_train,
        0.0,
        "the hybrid reuses the trained gs1 network"
    );
    assert!(row("dense", "hybrid").detail.starts_with("network, then"));
    // only the sparse case scores a part of the region
    assert!(row("dense", "epie").scored_fraction.is_none());
    let f = row("sparse", "epie").scored_fraction.unwrap();
    assert!(f > 0.1 && f < 1.0, "{f}");
    // the constant object is what it is, whatever the case
    assert!(row("dense", "epie").phase_ssim.unwrap() > row("dense", "constant").phase_ssim.unwrap());

    // the table and the files
    let md = markdown_table(&rows);
    assert!(md.starts_with("| case | pinn-gs1 | epie | hybrid | constant |"), "{md}");
    assert!(md.contains("| sparse |"));
    let report = ptycho_workbench::quality::QualityReport {
        command: "test".into(),
        suite: suite.clone(),
        machine: ptycho_workbench::bench::Machine::describe(),
        crate_version: "test".into(),
        finished_unix: 1,
        seconds: 1.0,
        rows: rows.clone(),
    };
    let (json, csv) = write_results(&report, dir.path())?;
    let csv_text = std::fs::read_to_string(csv)?;
    assert_eq!(csv_text.lines().count(), 8);
    assert!(csv_text.starts_with("case,arm,status,amp_ssim,phase_ssim"));
    let back: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(json)?)?;
    assert_eq!(back["rows"].as_array().unwrap().len(), 7);

    // a second run reuses the data and the network (nothing is retrained)
    let again = run_suite(&suite, &opts, &mut |_| {}, &mut SilentObserver)?;
    assert!(again.iter().all(|r| r.seconds_train == 0.0));
    assert_eq!(again[0].amp_ssim, rows[0].amp_ssim);
    Ok(())
}

#[test]
fn bad_suites_are_refused_by_name() {
    let err = |text: String| QualitySuite::from_toml(&text).unwrap_err().to_string();
    let e = err(TINY.replace("\"constant\"]\ndevice", "\"constants\"]\ndevice"));
    assert!(e.contains("constants"), "{e}");
    let e = err(TINY.replace("reuse_networks_of = \"dense\"", "reuse_networks_of = \"nowhere\""));
    assert!(e.contains("reuse_networks_of"), "{e}");
    // reusing networks trained on other data is refused
    let (dense, sparse) = TINY.split_at(TINY.find("name = \"sparse\"").unwrap());
    let e = err(format!("{dense}{}", sparse.replacen("seed = 3", "seed = 4", 1)));
    assert!(e.contains("trains on other data"), "{e}");
    let e = err(TINY.replace("name = \"sparse\"", "name = \"dense\""));
    assert!(e.contains("two cases"), "{e}");
    let e = err(TINY.replace(
        "[[case]]\nname = \"dense\"\n",
        "[[case]]\nname = \"dense\"\nsplit_fraction = 1.5\n",
    ));
    assert!(e.contains("split_fraction"), "{e}");
    // the shipped suites parse, and their cases select by name
    let mut quick = QualitySuite::quick_suite().unwrap();
    quick.select(&["lines-1e4".into()]).unwrap();
    assert_eq!(quick.cases.len(), 1);
    assert!(quick.select(&["nope".into()]).is_err());
    let full = QualitySuite::default_suite().unwrap();
    assert!(full.cases.iter().any(|c| c.reuse_networks_of.is_some()));
    assert!(full.arms.contains(&Arm::Hybrid));
    assert!(full.arms.contains(&Arm::Best));
    // the PNG object resolves under the crate, and reports name it relative to it
    let png = |s: &QualitySuite| {
        s.cases
            .iter()
            .find_map(|c| c.sim.object.path.clone())
            .expect("a case reads a PNG")
    };
    assert!(png(&full).is_absolute() && png(&full).exists());
    let shared = full.with_paths_relative_to(&root());
    assert_eq!(png(&shared), std::path::Path::new("data/objects/astronaut_256.png"));
}
