//! The dose × overlap study: configuration checks, a full CI-size run through
//! the library (manifests, report, Parquet, resume, a corrupted bundle), and
//! the CLI (a failing view, parallel child processes, the lock, Slurm
//! scripts and their array tasks run by hand).
mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Instant;

use common::*;
use ptycho_workbench::bundle::Bundle;
use ptycho_workbench::study::{
    self, JobKind, JobRecordV1, JobStatus, Outcome, RunOptions, StageManifestV1, StudyConfig, StudyLock, plan,
};

fn ci_config() -> StudyConfig {
    StudyConfig::from_file(&root().join("data/studies/dose_overlap_ci.toml")).expect("CI config is valid")
}

fn ptycho(args: &[&str], envs: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args)
        .env("OMP_NUM_THREADS", "1")
        .envs(envs.iter().copied())
        .output()
        .expect("ptycho runs")
}

fn manifest(dir: &Path, file: &str) -> StageManifestV1 {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("manifest exists")).expect("manifest parses")
}

/// A report table's rows, after checking that pyarrow reads its
/// `NAME.parquet` as the same values as its `NAME.csv` (names, nulls as
/// empty fields, numbers exactly).
fn report_table_rows(report: &Path, name: &str) -> usize {
    let read = common::run_python_json(
        &common::fixture("table/read_parquet.py"),
        &[&report.join(format!("{name}.parquet"))],
    );
    let csv = std::fs::read_to_string(report.join(format!("{name}.csv"))).expect("csv exists");
    let mut lines = csv.lines().map(csv_fields);
    let header = lines.next().expect("header");
    let rows: Vec<Vec<String>> = lines.collect();
    let columns = read["columns"].as_array().expect("columns");
    let names: Vec<&str> = columns.iter().map(|c| c["name"].as_str().expect("name")).collect();
    assert_eq!(names, header, "{name}: columns");
    for (k, c) in columns.iter().enumerate() {
        let values = c["values"].as_array().expect("values");
        assert_eq!(values.len(), rows.len(), "{name}: rows");
        for (i, v) in values.iter().enumerate() {
            let field = &rows[i][k];
            let same = match v {
                serde_json::Value::Null => field.is_empty(),
                serde_json::Value::Number(n) => field.parse::<f64>().ok() == n.as_f64(),
                serde_json::Value::String(s) if s == "NaN" => field == "NaN",
                serde_json::Value::String(s) => s == field,
                serde_json::Value::Bool(b) => field == &b.to_string(),
                _ => false,
            };
            assert!(same, "{name}.{}: row {i}: parquet {v}, csv {field:?}", names[k]);
        }
    }
    read["num_rows"].as_u64().expect("num_rows") as usize
}

/// One CSV line's fields (RFC 4180 quoting; no line breaks inside fields
/// in these tables).
fn csv_fields(line: &str) -> Vec<String> {
    let (mut fields, mut field, mut quoted) = (Vec::new(), String::new(), false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    fields
}

#[test]
fn validation_names_the_field() -> TestResult {
    let base = std::fs::read_to_string(root().join("data/studies/dose_overlap_ci.toml"))?;
    StudyConfig::from_file(&root().join("data/studies/dose_overlap.toml"))?;
    let cases: [(&str, &str, &str); 9] = [
        ("doses_photons = [1e3, 1e5]", "doses_photons = []", "doses_photons"),
        (
            "doses_photons = [1e3, 1e5]",
            "doses_photons = [1e3, -5.0]",
            "doses_photons[1]",
        ),
        ("gridsizes = [1, 2]", "gridsizes = [1, 3]", "gridsizes[1]"),
        (
            "overlap_fraction = 0.5",
            "overlap_fraction = 1.0",
            "views[1].overlap_fraction",
        ),
        ("k_neighbours = 7", "k_neighbours = 3", "training.k_neighbours"),
        ("size_px = 32", "size_px = 48", "simulation.size_px"),
        ("fraction = 0.5", "fraction = 1.5", "split.fraction"),
        ("iterations = 5", "iterations = 0", "iterative.iterations"),
        ("name = \"dose_overlap_ci\"", "name = \"x\"\ndosez = 3", "dosez"),
    ];
    for (from, to, field) in cases {
        assert!(base.contains(from), "{from}");
        let err = StudyConfig::from_toml(&base.replacen(from, to, 1))
            .expect_err(to)
            .to_string();
        assert!(err.contains(field), "{to}: {err}");
    }
    Ok(())
}

#[test]
fn a_dead_owner_lock_is_taken_over_and_a_live_one_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let mut child = Command::new("true").spawn()?;
    let dead = child.id();
    child.wait()?;
    std::fs::write(dir.path().join(".lock"), format!("pid {dead}\n"))?;
    let lock = StudyLock::acquire(dir.path())?;
    let err = StudyLock::acquire(dir.path()).expect_err("held").to_string();
    assert!(err.contains("in use by another"), "{err}");
    drop(lock);
    assert!(!dir.path().join(".lock").exists());
    Ok(())
}

/// The CI study through the library: every job completes; manifests,
/// tables and report; a rerun does nothing; a corrupted bundle is retrained.
#[test]
fn ci_study_runs_resumes_and_redoes_a_corrupted_bundle() -> TestResult {
    init();
    let cfg = ci_config();
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let jobs = plan(&cfg);
    let t = Instant::now();
    let s = study::run_study(&cfg, dir, &RunOptions::default(), &mut |l| eprintln!("{l}"))?;
    eprintln!("CI study: {} jobs in {:.1} s", jobs.len(), t.elapsed().as_secs_f64());
    assert!(s.problems().is_empty(), "{:?}", s.problems());
    assert_eq!(s.count(Outcome::Completed), jobs.len());
    assert!(dir.join("study.toml").exists());
    assert_eq!(study::load_study(dir)?, cfg);

    // manifests
    let run = manifest(dir, "run_manifest.json");
    assert_eq!((run.n_jobs, run.n_completed), (2, 2));
    let views = manifest(dir, "views_manifest.json");
    assert_eq!(views.n_completed, 4);
    for r in &views.jobs {
        assert_eq!(r.views.len(), 2);
        for v in &r.views {
            assert!(
                v.selection.n_accepted >= 8 && v.selection.spacing_min_px.unwrap() >= v.selection.spacing_threshold_px
            );
            assert!((0.0..1.0).contains(&v.overlap.image_overlap));
        }
    }
    let dense = views.jobs.iter().find(|r| r.view.as_deref() == Some("dense")).unwrap();
    let sparse = views.jobs.iter().find(|r| r.view.as_deref() == Some("sparse")).unwrap();
    assert!(dense.views[0].overlap.image_overlap > sparse.views[0].overlap.image_overlap);
    let training = manifest(dir, "training_manifest.json");
    assert_eq!((training.n_jobs, training.n_completed), (12, 12));
    for r in &training.jobs {
        let t = r.training.as_ref().expect("training record");
        assert_eq!(t.epochs_completed, 1);
        assert!(t.final_train_loss.is_some_and(f64::is_finite));
        let bundle = dir.join(t.bundle_path.as_ref().expect("bundle path"));
        let (sha, size) = study::manifest::sha256_file(&bundle)?;
        assert_eq!(t.bundle_sha256.as_deref(), Some(sha.as_str()));
        assert_eq!(t.bundle_size_bytes, Some(size));
        assert!(bundle.starts_with(dir.join("runs")));
    }
    assert_eq!(manifest(dir, "reconstruction_manifest.json").n_completed, 12 + 8);
    let comparison = manifest(dir, "comparison_manifest.json");
    assert_eq!(comparison.n_completed, 8);
    let test_cmp = comparison
        .jobs
        .iter()
        .find(|r| r.id == "compare/dose_1e5/dense/test")
        .unwrap();
    assert_eq!(test_cmp.metrics.len(), 4 * 2); // pinn gs1, gs2, supervised gs1, iterative; amplitude and phase
    assert!(test_cmp.metrics.iter().all(|m| m.ssim.is_finite()));

    // report: 4 test comparisons × 8 rows + 4 train comparisons × 2 (iterative);
    // deltas: 4 × (2 PINN gridsizes × 2 components × 2 references)
    let report = dir.join("report");
    assert_eq!(report_table_rows(&report, "metrics"), 4 * 8 + 4 * 2);
    assert_eq!(report_table_rows(&report, "deltas"), 4 * 2 * 2 * 2);
    assert_eq!(report_table_rows(&report, "training"), 12);
    assert_eq!(report_table_rows(&report, "views"), 8);
    let csv = std::fs::read_to_string(report.join("metrics.csv"))?;
    assert!(
        csv.starts_with("dose_photons,view,split,label,model,gridsize,component,ssim"),
        "{csv}"
    );
    assert!(csv.contains("pinn_gs2") && csv.contains("supervised_gs1") && csv.contains("iterative"));
    let md = std::fs::read_to_string(report.join("report.md"))?;
    for needle in [
        "## Failures\n\nNone.",
        "## Comparison metrics",
        "PINN − baseline",
        "| 1e5 | sparse | test | pinn_gs1 | phase |",
        "ssim_vs_dose.png",
        "training_curves.png",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle}:\n{md}");
    }
    let html = std::fs::read_to_string(report.join("report.html"))?;
    assert!(
        html.matches("data:image/png;base64,").count() >= 4 + 4,
        "figures and comparison grids embedded"
    );
    assert!(!html.contains("src=\"../"), "self-contained");

    // a rerun does no work and rewrites no record
    let record = |id: &str| dir.join(format!("records/{id}.json"));
    let mtime = |id: &str| std::fs::metadata(record(id)).and_then(|m| m.modified()).unwrap();
    let ids: Vec<String> = jobs.iter().map(|j| j.id()).collect();
    let before: Vec<_> = ids.iter().map(|i| mtime(i)).collect();
    let s = study::run_study(&cfg, dir, &RunOptions::default(), &mut |_| {})?;
    assert_eq!(s.count(Outcome::UpToDate), jobs.len(), "{}", s.line());
    assert_eq!(ids.iter().map(|i| mtime(i)).collect::<Vec<_>>(), before);
    let status = study::study_status(dir)?;
    assert_eq!(status.n_up_to_date, jobs.len());

    // a corrupted bundle (same size, other bytes) is detected and retrained
    let victim = "train/dose_1e3/dense/gs1/pinn";
    let bundle = dir.join("runs/dose_1e3/dense/gs1/pinn/wts.h5.zip");
    let mut bytes = std::fs::read(&bundle)?;
    let mid = bytes.len() / 2;
    bytes[mid..mid + 64].iter_mut().for_each(|b| *b ^= 0x5a);
    std::fs::write(&bundle, &bytes)?;
    let status = study::study_status(dir)?;
    let st = status.jobs.iter().find(|j| j.id == victim).unwrap();
    assert_eq!(st.state, "stale");
    assert!(st.detail.as_deref().unwrap_or("").contains("checksum"), "{st:?}");
    let s = study::run_study(&cfg, dir, &RunOptions::default(), &mut |_| {})?;
    let outcome = |id: &str| s.jobs.iter().find(|j| j.0 == id).map(|j| j.1);
    assert_eq!(outcome(victim), Some(Outcome::Completed));
    assert_eq!(outcome("infer/dose_1e3/dense/gs1/pinn"), Some(Outcome::Completed));
    for j in jobs.iter().filter(|j| j.kind == JobKind::Train && j.id() != victim) {
        assert_eq!(outcome(&j.id()), Some(Outcome::UpToDate), "{}", j.id());
    }
    assert!(s.problems().is_empty());
    Bundle::load(&bundle, tch::Device::Cpu)?;
    Ok(())
}

fn read_record(dir: &Path, id: &str) -> JobRecordV1 {
    serde_json::from_str(&std::fs::read_to_string(dir.join(format!("records/{id}.json"))).expect("record"))
        .expect("record parses")
}

/// The CLI with a view that cannot be satisfied: its jobs fail or are
/// skipped, the others complete in parallel child processes, the exit code
/// says so; a live lock refuses a second run; the Slurm scripts' array tasks
/// run by hand give the same study.
#[test]
fn cli_failure_isolation_lock_and_slurm_tasks() -> TestResult {
    let mut cfg = ci_config();
    cfg.doses_photons = vec![1e3];
    cfg.gridsizes = vec![1];
    cfg.models = vec![ptycho_workbench::model::ModelKind::Pinn];
    cfg.views[1] = ptycho_workbench::study::ViewConfig {
        name: "impossible".into(),
        overlap_fraction: None,
        spacing_px: Some(1000.0),
        image_fraction: 1.0,
        gridsizes: None,
    };
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("study.toml");
    std::fs::write(&config, cfg.to_toml()?)?;
    let (a, b) = (tmp.path().join("local"), tmp.path().join("slurm"));
    let (cs, as_, bs) = (config.to_str().unwrap(), a.to_str().unwrap(), b.to_str().unwrap());

    // a live lock (this test's pid) refuses the run
    std::fs::create_dir_all(&a)?;
    std::fs::write(a.join(".lock"), format!("pid {}\n", std::process::id()))?;
    let out = ptycho(&["study", "run", "--config", cs, "--out", as_], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("in use by another") && err.contains(&std::process::id().to_string()),
        "{err}"
    );
    std::fs::remove_file(a.join(".lock"))?;

    let t = Instant::now();
    let out = ptycho(&["study", "run", "--config", cs, "--out", as_, "--jobs", "2"], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("{err}\nCLI study: {:.1} s", t.elapsed().as_secs_f64());
    assert!(!out.status.success(), "a failed view must fail the run");
    assert!(err.contains("view/dose_1e3/impossible"), "{err}");
    let failed = read_record(&a, "view/dose_1e3/impossible");
    assert_eq!(failed.status, JobStatus::Failed);
    assert!(
        failed.error.as_deref().unwrap_or("").contains("min_positions"),
        "{:?}",
        failed.error
    );
    assert!(a.join(failed.log_path.unwrap()).exists());
    let skipped = read_record(&a, "train/dose_1e3/impossible/gs1/pinn");
    assert_eq!(skipped.status, JobStatus::Skipped);
    assert!(
        skipped
            .skip_reason
            .as_deref()
            .unwrap_or("")
            .contains("view/dose_1e3/impossible failed"),
        "{:?}",
        skipped.skip_reason
    );
    let good = read_record(&a, "compare/dose_1e3/dense/test");
    assert_eq!(good.status, JobStatus::Completed);
    assert_eq!(good.runner, "child");
    let training = manifest(&a, "training_manifest.json");
    assert_eq!((training.n_completed, training.n_skipped), (1, 1));
    let md = std::fs::read_to_string(a.join("report/report.md"))?;
    assert!(md.contains("| view/dose_1e3/impossible | failed |"), "{md}");

    // status and dry run
    let out = ptycho(&["study", "status", as_, "--json"], &[]);
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["n_failed"], 1);
    assert_eq!(
        v["n_up_to_date"].as_u64().unwrap() + v["n_failed"].as_u64().unwrap() + v["n_skipped"].as_u64().unwrap(),
        v["n_jobs"].as_u64().unwrap()
    );
    let out = ptycho(
        &[
            "study",
            "run",
            "--config",
            cs,
            "--out",
            as_,
            "--dry-run",
            "--only",
            "view=dense",
        ],
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && err.contains("skipped: up to date") && !err.contains("impossible"),
        "{err}"
    );

    // Slurm: scripts, then every array task by hand, stage by stage, then the report
    let out = ptycho(&["study", "slurm", "--config", cs, "--out", bs], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let submit = std::fs::read_to_string(b.join("slurm/submit.sh"))?;
    assert_eq!(submit.matches("sbatch --parsable").count(), 6);
    assert_eq!(submit.matches("--dependency=afterany:$job_").count(), 5);
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_ptycho"))?;
    let train = std::fs::read_to_string(b.join("slurm/stage_3_training.sbatch"))?;
    let jobs = plan(&cfg);
    let first = jobs.iter().position(|j| j.kind == JobKind::Train).unwrap();
    assert!(
        train.contains(&format!("#SBATCH --array={first}-{}", first + 1)),
        "{train}"
    );
    assert!(train.contains("#SBATCH --gres=gpu:1"));
    assert!(train.contains(&format!("'{}' study run-job", exe.display())), "{train}");
    assert!(train.contains("--index \"$SLURM_ARRAY_TASK_ID\""));
    let report = std::fs::read_to_string(b.join("slurm/report.sbatch"))?;
    assert!(report.contains("study report"));
    for j in &jobs {
        let i = j.index.to_string();
        let out = ptycho(
            &["study", "run-job", bs],
            &[("SLURM_ARRAY_TASK_ID", &i), ("SLURM_ARRAY_JOB_ID", "77")],
        );
        let expect_ok = read_record(&a, &j.id()).status == JobStatus::Completed;
        assert_eq!(
            out.status.success(),
            expect_ok,
            "{}: {}",
            j.id(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = ptycho(&["study", "report", bs], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(b.join("report/report.html").exists());
    for j in &jobs {
        let (ra, rb) = (read_record(&a, &j.id()), read_record(&b, &j.id()));
        assert_eq!(ra.status, rb.status, "{}", j.id());
        assert_eq!(rb.runner, "slurm 77_".to_string() + &j.index.to_string());
        if matches!(j.kind, JobKind::Dataset | JobKind::View) {
            assert_eq!(ra.outputs, rb.outputs, "{}: same bytes", j.id());
        }
        assert_eq!(ra.metrics.len(), rb.metrics.len());
        for (x, y) in ra.metrics.iter().zip(&rb.metrics) {
            assert_eq!((&x.label, &x.component), (&y.label, &y.component));
            assert!(
                (x.ssim - y.ssim).abs() < 1e-6 && (x.mae - y.mae).abs() < 1e-6,
                "{}: {x:?} vs {y:?}",
                j.id()
            );
        }
    }
    Ok(())
}

/// kill -9 at two moments of a CLI run (one dose, one gridsize, two views),
/// then a run to the end: every job that had a completed record before the
/// last run is skipped as up to date, everything ends up to date (every
/// recorded file matches its checksum), and the datasets and metrics equal
/// those of an uninterrupted run.
#[test]
fn a_run_killed_twice_resumes_without_redoing_finished_jobs() -> TestResult {
    let mut cfg = ci_config();
    cfg.doses_photons = vec![1e4];
    cfg.gridsizes = vec![1];
    let tmp = tempfile::tempdir()?;
    let config = tmp.path().join("study.toml");
    std::fs::write(&config, cfg.to_toml()?)?;
    let (killed, clean) = (tmp.path().join("killed"), tmp.path().join("clean"));
    let (cs, ks, ns) = (
        config.to_str().unwrap(),
        killed.to_str().unwrap(),
        clean.to_str().unwrap(),
    );

    for after_ms in [1000u64, 2000] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .args(["study", "run", "--config", cs, "--out", ks])
            .env("OMP_NUM_THREADS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        std::thread::sleep(std::time::Duration::from_millis(after_ms));
        child.kill()?; // SIGKILL
        child.wait()?;
    }
    let completed_before: Vec<String> = plan(&cfg)
        .iter()
        .map(|j| j.id())
        .filter(|id| {
            std::fs::read_to_string(killed.join(format!("records/{id}.json")))
                .ok()
                .and_then(|t| serde_json::from_str::<JobRecordV1>(&t).ok())
                .is_some_and(|r| r.status == JobStatus::Completed)
        })
        .collect();
    assert!(!completed_before.is_empty(), "nothing finished before the kills");
    let n_jobs = plan(&cfg).len();
    assert!(
        completed_before.len() < n_jobs,
        "the kills came after the run had ended"
    );
    let out = ptycho(&["study", "run", "--config", cs, "--out", ks], &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    for id in &completed_before {
        assert!(
            err.lines()
                .any(|l| l.contains(id.as_str()) && l.contains("skipped: up to date")),
            "{id} was redone after the kill:\n{err}"
        );
    }
    let status = study::study_status(&killed)?;
    assert_eq!(status.n_up_to_date, status.n_jobs, "{:?}", status.jobs);

    let out = ptycho(&["study", "run", "--config", cs, "--out", ns], &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for f in ["data/dose_1e4/train.npz", "data/dose_1e4/dense/test.npz"] {
        assert_eq!(std::fs::read(killed.join(f))?, std::fs::read(clean.join(f))?, "{f}");
    }
    let metrics = |d: &Path| std::fs::read_to_string(d.join("report/metrics.csv")).expect("metrics.csv");
    assert_eq!(metrics(&killed), metrics(&clean));
    Ok(())
}
