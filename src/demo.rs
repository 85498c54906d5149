//! The quickstart demo (`ptycho demo`, `make demo`): simulate the quickstart
//! dataset, split it, train a gridsize-2 PINN, reconstruct the held-out half
//! with the bundle, with ePIE (its settings chosen from the data) and with
//! the hybrid (the bundle's object refined by the same ePIE), compare all
//! three with the truth, and write the figures, `metrics.csv` and a short
//! `report.md` (with each method's time) into one folder.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::compare::{RegisterPolicy, compare_all, default_align, write_comparison};
use crate::data::atomic::write_bytes_atomic;
use crate::data::{SplitAxis, write_npz};
use crate::error::{Error, Result};
use crate::job::{JobSpec, train_job};
use crate::model::ModelConfig;
use crate::recon::iterative::{IterativeConfig, reconstruct_iterative};
use crate::recon::{ReconConfig, write_recon_npz};
use crate::simulate::{SimConfig, simulate};
use crate::train::{TrainConfig, TrainObserver};

/// The quickstart dataset (`data/sim/quickstart.toml`), built in.
pub const QUICKSTART_TOML: &str = include_str!("../data/sim/quickstart.toml");

/// Sizes of a demo run.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    pub sim: SimConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub iterative: IterativeConfig,
    pub device: String,
}

impl DemoConfig {
    /// The quickstart dataset, a gridsize-2 PINN with the `quick` preset,
    /// ePIE with the settings it chooses from the data.
    pub fn quickstart() -> Result<Self> {
        Ok(DemoConfig {
            sim: SimConfig::from_toml(QUICKSTART_TOML)?,
            model: ModelConfig {
                gridsize: 2,
                ..ModelConfig::default()
            },
            train: TrainConfig::quick(),
            iterative: IterativeConfig::epie(),
            device: "auto".into(),
        })
    }
}

/// Where the demo wrote its results.
#[derive(Debug, Clone)]
pub struct DemoOutputs {
    pub dir: PathBuf,
    pub report: PathBuf,
    pub metrics_csv: PathBuf,
    pub figures: Vec<PathBuf>,
}

/// Runs the demo into `dir`, printing a line per stage on stderr.
pub fn run_demo(cfg: &DemoConfig, dir: &Path, observer: &mut dyn TrainObserver) -> Result<DemoOutputs> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let started = Instant::now();
    let stage = |what: &str| eprintln!("[{:6.1} s] {what}", started.elapsed().as_secs_f64());
    let mut timings: Vec<(&str, f64)> = Vec::new();

    stage("simulating the quickstart dataset");
    let t = Instant::now();
    let dataset = simulate(&cfg.sim)?;
    let (train_ds, test_ds) = dataset.split(SplitAxis::Y, 0.5)?;
    let (train_path, test_path) = (dir.join("train.npz"), dir.join("test.npz"));
    write_npz(&train_ds, &train_path)?;
    write_npz(&test_ds, &test_path)?;
    let mut figures = vec![dir.join("dataset.png")];
    dataset.plot()?.save(&figures[0])?;
    timings.push(("simulate + split", t.elapsed().as_secs_f64()));

    stage(&format!(
        "training the PINN (gridsize {}, {} epochs) on {} patterns",
        cfg.model.gridsize,
        cfg.train.epochs,
        train_ds.n_images()
    ));
    let t = Instant::now();
    let spec = JobSpec {
        train_data: train_path,
        test_data: Some(test_path),
        model: cfg.model.clone(),
        train: cfg.train.clone(),
        device: cfg.device.clone(),
        out_dir: dir.join(format!("pinn_gs{}", cfg.model.gridsize)),
        resume: false,
        init_bundle: None,
    };
    let job = train_job(&spec, observer)?;
    let bundle_path = match (&job.error, &job.bundle_path) {
        (None, Some(p)) => spec.out_dir.join(p),
        _ => {
            return Err(Error::value(
                "training",
                job.error.clone().or(job.bundle_error.clone()).unwrap_or_default(),
            ));
        }
    };
    timings.push(("train", t.elapsed().as_secs_f64()));

    stage("reconstructing the test half with the bundle");
    let t = Instant::now();
    let device = crate::array::parse_device(&cfg.device)?;
    let bundle = crate::bundle::Bundle::load(&bundle_path, device)?;
    let history = crate::train::History::from_csv(
        &std::fs::read_to_string(spec.out_dir.join(crate::job::HISTORY_FILE))
            .map_err(|e| Error::io(spec.out_dir.join(crate::job::HISTORY_FILE), e))?,
    )?;
    figures.push(dir.join("history.png"));
    history.plot()?.save(&figures[1])?;
    let pinn = bundle.reconstruct(&test_ds, &ReconConfig::default())?;
    write_recon_npz(&pinn, &dir.join("recon_pinn.npz"))?;
    let seconds_pinn = t.elapsed().as_secs_f64();
    timings.push(("inference + stitching", seconds_pinn));

    stage("ePIE (settings chosen from the data)");
    let t = Instant::now();
    let epie = reconstruct_iterative(&test_ds, &cfg.iterative, &mut |_| {})?.reconstruction;
    write_recon_npz(&epie, &dir.join("recon_epie.npz"))?;
    let seconds_epie = t.elapsed().as_secs_f64();
    timings.push(("ePIE", seconds_epie));

    stage("hybrid: the bundle's object refined by the same ePIE");
    let t = Instant::now();
    let hybrid_cfg = ReconConfig {
        refine: Some(cfg.iterative.clone()),
        ..ReconConfig::hybrid()
    };
    let hybrid = bundle.reconstruct(&test_ds, &hybrid_cfg)?;
    write_recon_npz(&hybrid, &dir.join("recon_hybrid.npz"))?;
    let seconds_hybrid = t.elapsed().as_secs_f64();
    timings.push(("hybrid (inference + ePIE)", seconds_hybrid));

    stage("comparing with the truth");
    let align = default_align(&test_ds, 0.0)?;
    let pinn_label = format!("PINN gs{}", cfg.model.gridsize);
    let recons = vec![
        (pinn_label.clone(), pinn.object.clone()),
        ("ePIE".to_string(), epie.object.clone()),
        ("hybrid".to_string(), hybrid.object.clone()),
    ];
    let seconds = [seconds_pinn, seconds_epie, seconds_hybrid];
    let register = [&pinn, &epie, &hybrid].map(|r| RegisterPolicy::Auto.registers(Some(&r.metadata.source)));
    let comparisons = compare_all(&test_ds, &recons, &align, &register)?;
    let written = write_comparison(
        dir,
        &test_ds,
        &recons,
        &[
            Some(dir.join("recon_pinn.npz")),
            Some(dir.join("recon_epie.npz")),
            Some(dir.join("recon_hybrid.npz")),
        ],
        &comparisons,
    )?;
    figures.push(written.figure_png.clone());
    let aligned = crate::plot::comparison(
        &comparisons[0].aligned_truth,
        &[
            (pinn_label.as_str(), &comparisons[0].aligned_pred),
            ("ePIE", &comparisons[1].aligned_pred),
            ("hybrid", &comparisons[2].aligned_pred),
        ],
    )?;
    figures.push(dir.join("comparison_aligned.png"));
    aligned.save(&figures[3])?;
    let frc: Vec<(String, Vec<f64>, Vec<f64>)> = recons
        .iter()
        .zip(&comparisons)
        .map(|((l, _), c)| {
            (
                format!("{l} phase"),
                c.frc_phase.cycles_per_px.clone(),
                c.frc_phase.frc.clone(),
            )
        })
        .collect();
    figures.push(dir.join("frc_phase.png"));
    crate::plot::frc(&frc)?.save(&figures[4])?;

    let mut md = String::new();
    let _ = writeln!(md, "# ptycho-workbench quickstart demo\n");
    let _ = writeln!(
        md,
        "Dataset: {} patterns of {}×{} ({} photons per pattern), object {}×{}; the top half trains, \
         the bottom half ({} patterns) tests.\n",
        dataset.n_images(),
        dataset.patch_size(),
        dataset.patch_size(),
        cfg.sim.dose_photons.map_or("no noise".into(), |d| format!("{d:.0e}")),
        cfg.sim.object_size_px,
        cfg.sim.object_size_px,
        test_ds.n_images()
    );
    let _ = writeln!(
        md,
        "| reconstruction | component | SSIM | MS-SSIM | PSNR (dB) | FRC50 (ring) | MAE | seconds |\n|---|---|---|---|---|---|---|---|"
    );
    for (((label, _), c), s) in recons.iter().zip(&comparisons).zip(seconds) {
        for (component, m) in [("amplitude", &c.amplitude), ("phase", &c.phase)] {
            let _ = writeln!(
                md,
                "| {label} | {component} | {:.3} | {:.3} | {:.2} | {} | {:.4} | {s:.1} |",
                m.ssim,
                m.ms_ssim,
                m.psnr,
                m.frc50.map_or("—".into(), |v| format!("{v:.1}")),
                m.mae
            );
        }
    }
    if let Some(s) = &epie.metadata.solver {
        let _ = writeln!(
            md,
            "\nePIE's settings, chosen from the data ({}): step α {}, max_weight {}, {} iterations; the hybrid runs the \
             same ePIE from the network's object. Seconds: inference and stitching, the solver, or both (training is \
             below).",
            s.settings.stats.map_or("given".into(), |d| format!(
                "{:.2e} photons per pattern, each illuminated pixel measured {:.1} times",
                d.photons_per_pattern.unwrap_or(f64::NAN),
                d.redundancy
            )),
            s.settings.step,
            s.settings.max_weight,
            s.iterations_run
        );
    }
    let _ = writeln!(
        md,
        "\nAlignment (PtychoPINN's evaluation): region {}, sub-pixel registration of the ePIE reconstruction \
         only (the network's and the hybrid's are on the dataset's grid), phase plane removed, amplitude scaled to \
         the truth's mean; details in `metrics.json`.\n",
        comparisons[0].alignment.region
    );
    let _ = writeln!(md, "| stage | seconds |\n|---|---|");
    for (what, s) in &timings {
        let _ = writeln!(md, "| {what} | {s:.1} |");
    }
    let _ = writeln!(
        md,
        "\nTraining: {} epochs (stopped: {}), final loss {:.4}, held-out loss {}.\n",
        job.epochs_completed,
        job.stop_reason.map_or("—".into(), |s| format!("{s:?}")),
        job.final_train_loss.unwrap_or(f64::NAN),
        job.test_loss.map_or("—".into(), |v| format!("{v:.4}"))
    );
    let _ = writeln!(
        md,
        "Files: `train.npz`, `test.npz`, `{}/wts.h5.zip` (the bundle), `recon_pinn.npz`, `recon_epie.npz`, `recon_hybrid.npz`, `metrics.csv`, `metrics.json`, `frc.csv`, and the figures:\n",
        spec.out_dir.file_name().unwrap_or_default().to_string_lossy()
    );
    for f in &figures {
        let name = f.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(md, "![{name}]({name})");
    }
    let report = dir.join("report.md");
    write_bytes_atomic(&report, md.as_bytes())?;
    stage("done");
    Ok(DemoOutputs {
        dir: dir.to_path_buf(),
        report,
        metrics_csv: written.metrics_csv,
        figures,
    })
}
