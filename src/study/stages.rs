//! What each kind of job does: its input files, its configuration digest,
//! and the work itself (simulate + split, select a view, train, reconstruct,
//! compare). Every file is written atomically by the writers it calls.
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use num_complex::Complex32;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::config::StudyConfig;
use super::manifest::{JobRecordV1, MetricRow, TrainingRecord, ViewSplitRecord};
use super::plan::{Job, JobKind, Split, bundle_file, model_name, upstream};
use super::views::{check_acceptance, overlap_metrics, select_min_spacing};
use crate::array::parse_device;
use crate::bundle::Bundle;
use crate::compare::{RegisterPolicy, compare_all, default_align, write_comparison};
use crate::data::atomic::write_bytes_atomic;
use crate::data::product::read_recon;
use crate::data::{read_npz, write_npz};
use crate::error::{Error, Result};
use crate::grouping::{GroupingConfig, group};
use crate::job::{HISTORY_FILE, JobSpec, train_job};
use crate::recon::iterative::reconstruct_iterative;
use crate::recon::write_recon_npz;
use crate::simulate::simulate_on;
use crate::train::{EpochRecord, TrainObserver};

/// A job's log file (`logs/<id>.log`), appended to.
pub struct JobLog {
    file: Option<File>,
}

impl JobLog {
    pub fn open(path: &Path) -> JobLog {
        if let Some(p) = path.parent() {
            let _ = std::fs::create_dir_all(p);
        }
        JobLog {
            file: std::fs::OpenOptions::new().create(true).append(true).open(path).ok(),
        }
    }

    pub fn line(&mut self, text: &str) {
        if let Some(f) = &mut self.file {
            let _ = writeln!(f, "{text}");
        }
    }
}

impl TrainObserver for JobLog {
    fn on_epoch(&mut self, r: &EpochRecord, total: usize) {
        let val = r.val_loss.map_or("-".to_string(), |v| format!("{v:.6e}"));
        self.line(&format!(
            "epoch {}/{total}  train {:.6e}  val {val}  lr {:.2e}  {:.1} s",
            r.epoch, r.train_loss, r.learning_rate, r.seconds
        ));
    }
}

/// One input file of a job and the job that makes it.
#[derive(Debug, Clone)]
pub struct Input<'a> {
    pub path: PathBuf,
    pub from: &'a Job,
    /// A comparison runs without some of its reconstructions.
    pub optional: bool,
}

fn split_file(view_job: &Job, split: Split) -> PathBuf {
    view_job.out_dir().join(format!("{}.npz", split.name()))
}

/// The files `job` reads, relative to the study folder.
pub fn inputs<'a>(jobs: &'a [Job], job: &Job) -> Vec<Input<'a>> {
    let mut out = Vec::new();
    for u in upstream(jobs, job) {
        let req = |path| Input {
            path,
            from: u,
            optional: false,
        };
        match (job.kind, u.kind) {
            (JobKind::View, _) | (JobKind::Train, _) => {
                out.push(req(split_file(u, Split::Train)));
                out.push(req(split_file(u, Split::Test)));
            }
            (JobKind::Infer, JobKind::View) => out.push(req(split_file(u, Split::Test))),
            (JobKind::Infer, _) => out.push(req(bundle_file(u))),
            (JobKind::Iterative | JobKind::Compare, JobKind::View) => {
                out.push(req(split_file(u, job.split.unwrap_or(Split::Test))))
            }
            (JobKind::Compare, _) => out.push(Input {
                path: u.recon_file(),
                from: u,
                optional: true,
            }),
            _ => {}
        }
    }
    out
}

/// sha256 of the part of the configuration `job` depends on (devices and
/// Slurm settings excluded): a change reruns the job.
pub fn config_digest(cfg: &StudyConfig, job: &Job) -> String {
    let view = job.view.as_ref().and_then(|v| cfg.views.iter().find(|w| &w.name == v));
    let mut iterative = cfg.iterative_config();
    iterative.device = String::new();
    let value = match job.kind {
        JobKind::Dataset => json!({"sim": cfg.sim_config(job.dose_photons), "split": cfg.split}),
        JobKind::View => json!({
            "view": view, "overlap": cfg.overlap, "seeds": cfg.seeds, "gridsizes": cfg.gridsizes,
            "k": cfg.training.k_neighbours, "n": cfg.n_px(),
        }),
        JobKind::Train => json!({
            "training": cfg.training, "seeds": cfg.seeds,
            "model": job.model.zip(job.gridsize).map(|(m, g)| cfg.model_config(g, m)),
        }),
        JobKind::Infer => json!({"recon": cfg.recon_config()}),
        JobKind::Iterative => json!({"iterative": iterative}),
        JobKind::Compare => json!({"compare": 1}),
    };
    let text = format!("{} {}", job.id(), value);
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs `job`; returns its output files (relative to `dir`) and fills the
/// stage-specific parts of `record`. `available` are the optional inputs
/// that exist.
pub fn execute(
    dir: &Path,
    cfg: &StudyConfig,
    job: &Job,
    device: &str,
    available: &[Input<'_>],
    record: &mut JobRecordV1,
    log: &mut JobLog,
) -> Result<Vec<PathBuf>> {
    let out = job.out_dir();
    std::fs::create_dir_all(dir.join(&out)).map_err(|e| Error::io(dir.join(&out), e))?;
    match job.kind {
        JobKind::Dataset => dataset(dir, cfg, job, device, log),
        JobKind::View => view(dir, cfg, job, record, log),
        JobKind::Train => train(dir, cfg, job, device, record, log),
        JobKind::Infer => infer(dir, cfg, job, device, available, log),
        JobKind::Iterative => iterative(dir, cfg, job, device, available, log),
        JobKind::Compare => compare(dir, job, available, record, log),
    }
}

fn dataset(dir: &Path, cfg: &StudyConfig, job: &Job, device: &str, log: &mut JobLog) -> Result<Vec<PathBuf>> {
    let sim = cfg.sim_config(job.dose_photons);
    let ds = simulate_on(&sim, parse_device(device)?)?;
    log.line(&format!(
        "simulated {} patterns of {}×{} at {:e} photons",
        ds.n_images(),
        ds.patch_size(),
        ds.patch_size(),
        job.dose_photons
    ));
    let (train, test) = ds.split(cfg.split.axis, cfg.split.fraction)?;
    let out = job.out_dir();
    let files = vec![out.join("train.npz"), out.join("test.npz")];
    write_npz(&train, &dir.join(&files[0]))?;
    write_npz(&test, &dir.join(&files[1]))?;
    log.line(&format!("split: {} train, {} test", train.n_images(), test.n_images()));
    Ok(files)
}

fn view(dir: &Path, cfg: &StudyConfig, job: &Job, record: &mut JobRecordV1, log: &mut JobLog) -> Result<Vec<PathBuf>> {
    let name = job.view.as_deref().unwrap_or_default();
    let vcfg = cfg
        .views
        .iter()
        .find(|v| v.name == name)
        .ok_or_else(|| Error::config("views", format!("no view named `{name}`")))?;
    let spacing = vcfg.spacing_px(cfg.n_px());
    let source = dir.join(format!("data/dose_{}", super::config::dose_label(job.dose_photons)));
    let out = job.out_dir();
    let mut files = Vec::new();
    for split in [Split::Train, Split::Test] {
        let ds = read_npz(&source.join(format!("{}.npz", split.name())))?;
        let n0 = ds.n_images();
        let ds = if vcfg.image_fraction < 1.0 {
            let keep = ((vcfg.image_fraction * n0 as f64).round() as usize).clamp(1, n0);
            ds.subsample(keep, cfg.seeds.subsampling)?
        } else {
            ds
        };
        let (idx, selection) = select_min_spacing(&ds.positions_px, spacing, cfg.overlap.min_acceptance)?;
        check_acceptance(
            &selection,
            cfg.overlap.min_positions,
            &format!("view `{name}` ({} split)", split.name()),
        )?;
        let mut v = ds.select(&idx);
        let diameter = cfg
            .overlap
            .probe_diameter_px
            .unwrap_or_else(|| 2.0 * crate::plot::probe_footprint_radius_px(&v.probe));
        let k = cfg.training.k_neighbours;
        let gs = if cfg.gridsizes.contains(&2) && v.n_images() > k {
            2
        } else {
            1
        };
        let groups = group(
            &v.positions_px,
            &GroupingConfig {
                gridsize: gs,
                k_neighbours: k,
                n_groups: None,
                with_replacement: false,
                seed: cfg.seeds.grouping,
            },
        )?;
        let overlap = overlap_metrics(&v.positions_px, diameter, cfg.overlap.neighbour_count, Some(&groups))?;
        log.line(&format!(
            "{}: kept {} of {} positions ({}, spacing {spacing:.1} px), image overlap {:.3}",
            split.name(),
            selection.n_accepted,
            selection.n_positions,
            selection.selection_strategy,
            overlap.image_overlap
        ));
        v.metadata.data_transformations.push(format!(
            "view `{name}`: {} of {} positions at least {spacing:.2} px apart ({})",
            selection.n_accepted, selection.n_positions, selection.selection_strategy
        ));
        let extra = &mut v.metadata.extra;
        extra.insert("overlap_view".into(), json!(name));
        extra.insert("spacing_threshold".into(), json!(spacing));
        extra.insert("n_accepted".into(), json!(selection.n_accepted));
        extra.insert("n_rejected".into(), json!(selection.n_rejected));
        extra.insert("acceptance_rate".into(), json!(selection.acceptance_rate));
        extra.insert("selection_strategy".into(), json!(selection.selection_strategy));
        let file = out.join(format!("{}.npz", split.name()));
        write_npz(&v, &dir.join(&file))?;
        files.push(file);
        record.views.push(ViewSplitRecord {
            split,
            n_images_before_subsampling: n0,
            selection,
            overlap,
        });
    }
    let summary = out.join("views.json");
    let json = serde_json::to_vec_pretty(&record.views).map_err(|e| Error::value("views", e.to_string()))?;
    write_bytes_atomic(&dir.join(&summary), &json)?;
    files.push(summary);
    Ok(files)
}

fn train(
    dir: &Path,
    cfg: &StudyConfig,
    job: &Job,
    device: &str,
    record: &mut JobRecordV1,
    log: &mut JobLog,
) -> Result<Vec<PathBuf>> {
    let (Some(g), Some(m)) = (job.gridsize, job.model) else {
        return Err(Error::value("job", "a training job needs a gridsize and a model"));
    };
    let view_dir = dir.join(format!(
        "data/dose_{}/{}",
        super::config::dose_label(job.dose_photons),
        job.view.as_deref().unwrap_or_default()
    ));
    let train_path = view_dir.join("train.npz");
    let train_ds = read_npz(&train_path)?;
    let n_train = train_ds.n_images();
    let train_cfg = cfg.train_config(n_train)?;
    let mut model = cfg.model_config(g, m);
    if g > 1 && cfg.training.max_offset_px.is_none() {
        // the canvas must hold the view's groups, in training and in inference
        // exactly the training groups, and inference's grouping on the same positions
        let rc = cfg.recon_config();
        let mut reach = 0.0f64;
        for grouping in [
            GroupingConfig {
                gridsize: g,
                ..train_cfg.grouping.clone()
            },
            GroupingConfig {
                gridsize: g,
                k_neighbours: rc.k_neighbours,
                n_groups: None,
                with_replacement: false,
                seed: rc.seed,
            },
        ] {
            if let Ok(groups) = group(&train_ds.positions_px, &grouping) {
                reach = groups.offsets_px.iter().fold(reach, |m, v| m.max(v.abs()));
            }
        }
        model.max_offset_px = model.max_offset_px.max(reach.ceil() + 1.0).min(cfg.n_px() as f64);
        log.line(&format!(
            "overlap-constraint canvas: max_offset_px = {}",
            model.max_offset_px
        ));
    }
    drop(train_ds);
    let out = job.out_dir();
    let spec = JobSpec {
        train_data: train_path,
        test_data: Some(view_dir.join("test.npz")),
        model,
        train: train_cfg.clone(),
        device: device.to_string(),
        out_dir: dir.join(&out),
        resume: true,
        init_bundle: None,
    };
    log.line(&format!(
        "training {} gs{g} on {n_train} positions, {} epochs, {:?} groups",
        model_name(m),
        train_cfg.epochs,
        train_cfg.grouping.n_groups
    ));
    let r = train_job(&spec, log)?;
    let bundle_rel = r.bundle_path.as_ref().map(|p| out.join(p));
    record.training = Some(TrainingRecord {
        epochs_completed: r.epochs_completed,
        stop_reason: r.stop_reason.map(|s| format!("{s:?}")),
        final_train_loss: r.final_train_loss,
        final_val_loss: r.final_val_loss,
        test_loss: r.test_loss,
        n_groups: train_cfg.grouping.n_groups,
        n_train_positions: n_train,
        bundle_path: bundle_rel.as_ref().map(|p| p.to_string_lossy().into_owned()),
        bundle_sha256: r.bundle_sha256.clone(),
        bundle_size_bytes: r.bundle_size_bytes,
        bundle_error: r.bundle_error.clone(),
        history_path: (r.epochs_completed > 0).then(|| out.join(HISTORY_FILE).to_string_lossy().into_owned()),
    });
    if let Some(e) = r.error {
        return Err(Error::value("training", e));
    }
    let Some(bundle) = bundle_rel else {
        return Err(Error::value(
            "bundle",
            format!("not saved: {}", r.bundle_error.unwrap_or_default()),
        ));
    };
    Ok(vec![bundle, out.join(HISTORY_FILE)])
}

fn find<'a>(available: &'a [Input<'_>], kind: JobKind) -> Result<&'a Input<'a>> {
    available
        .iter()
        .find(|i| i.from.kind == kind)
        .ok_or_else(|| Error::value("job", format!("no {kind:?} input")))
}

fn infer(
    dir: &Path,
    cfg: &StudyConfig,
    job: &Job,
    device: &str,
    available: &[Input<'_>],
    log: &mut JobLog,
) -> Result<Vec<PathBuf>> {
    let bundle = Bundle::load(&dir.join(&find(available, JobKind::Train)?.path), parse_device(device)?)?;
    let ds = read_npz(&dir.join(&find(available, JobKind::View)?.path))?;
    let recon = bundle.reconstruct(&ds, &cfg.recon_config())?;
    let file = job.recon_file();
    write_recon_npz(&recon, &dir.join(&file))?;
    log.line(&format!(
        "reconstructed {} groups in {:.2} s",
        recon.metadata.n_groups, recon.metadata.seconds_inference
    ));
    Ok(vec![file])
}

fn iterative(
    dir: &Path,
    cfg: &StudyConfig,
    job: &Job,
    device: &str,
    available: &[Input<'_>],
    log: &mut JobLog,
) -> Result<Vec<PathBuf>> {
    let ds = read_npz(&dir.join(&find(available, JobKind::View)?.path))?;
    let mut icfg = cfg.iterative_config();
    icfg.device = device.to_string();
    let outcome = reconstruct_iterative(&ds, &icfg, &mut |r| {
        log.line(&format!("iteration {}: data error {:.4e}", r.iteration, r.data_error));
    })?;
    let file = job.recon_file();
    write_recon_npz(&outcome.reconstruction, &dir.join(&file))?;
    Ok(vec![file])
}

fn compare(
    dir: &Path,
    job: &Job,
    available: &[Input<'_>],
    record: &mut JobRecordV1,
    log: &mut JobLog,
) -> Result<Vec<PathBuf>> {
    let truth = read_npz(&dir.join(&find(available, JobKind::View)?.path))?;
    let mut recons: Vec<(String, Array2<Complex32>)> = Vec::new();
    let mut sources = Vec::new();
    let mut meta = Vec::new();
    let mut register = Vec::new();
    for i in available.iter().filter(|i| i.optional) {
        let (object, source) = read_recon(&dir.join(&i.path))?;
        register.push(RegisterPolicy::Auto.registers(source.as_deref()));
        recons.push((i.from.recon_label(), object));
        sources.push(Some(i.path.clone()));
        meta.push(match i.from.kind {
            JobKind::Iterative => ("iterative".to_string(), None),
            _ => (i.from.model.map_or("", model_name).to_string(), i.from.gridsize),
        });
    }
    let align = default_align(&truth, 0.0)?;
    let comparisons = compare_all(&truth, &recons, &align, &register)?;
    let out = job.out_dir();
    write_comparison(&dir.join(&out), &truth, &recons, &sources, &comparisons)?;
    for (((label, _), c), (model, gridsize)) in recons.iter().zip(&comparisons).zip(meta) {
        for (component, m) in [("amplitude", &c.amplitude), ("phase", &c.phase)] {
            record.metrics.push(MetricRow {
                label: label.clone(),
                model: model.clone(),
                gridsize,
                component: component.into(),
                mae: m.mae,
                mse: m.mse,
                psnr: m.psnr.is_finite().then_some(m.psnr),
                ssim: m.ssim,
                ms_ssim: m.ms_ssim,
                frc50: m.frc50,
                frc_1_7: m.frc_1_7,
            });
        }
        log.line(&format!(
            "{label}: phase SSIM {:.3}, amplitude SSIM {:.3}",
            c.phase.ssim, c.amplitude.ssim
        ));
    }
    Ok(["metrics.csv", "metrics.json", "frc.csv", "comparison.png"]
        .iter()
        .map(|f| out.join(f))
        .collect())
}
