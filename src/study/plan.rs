//! The job plan of a study: every job, in stage order, with a stable index
//! (what `study run-job --index` and Slurm array tasks name), its folder
//! and its inputs. The plan depends on the configuration only.
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::{StudyConfig, dose_label};
use crate::error::{Error, Result};
use crate::model::ModelKind;

/// A study's stages, in the order they run (each has a manifest).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Datasets,
    Views,
    Training,
    Reconstruction,
    Comparison,
}

impl Stage {
    pub const ALL: [Stage; 5] = [
        Stage::Datasets,
        Stage::Views,
        Stage::Training,
        Stage::Reconstruction,
        Stage::Comparison,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Datasets => "datasets",
            Stage::Views => "views",
            Stage::Training => "training",
            Stage::Reconstruction => "reconstruction",
            Stage::Comparison => "comparison",
        }
    }

    /// The stage's manifest, in the study folder.
    pub fn manifest_file(self) -> &'static str {
        match self {
            Stage::Datasets => "run_manifest.json",
            Stage::Views => "views_manifest.json",
            Stage::Training => "training_manifest.json",
            Stage::Reconstruction => "reconstruction_manifest.json",
            Stage::Comparison => "comparison_manifest.json",
        }
    }
}

/// Which split of a dose's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Test,
}

impl Split {
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "test",
        }
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Simulate one dose, split train/test.
    Dataset,
    /// Select one view from both splits and measure its overlap.
    View,
    /// Train one model on a view's train split (`job::train_job`).
    Train,
    /// Reconstruct a view's test split with a trained bundle.
    Infer,
    /// Reconstruct one split of a view with the iterative solver.
    Iterative,
    /// Compare a split's reconstructions with the truth.
    Compare,
}

impl JobKind {
    pub fn stage(self) -> Stage {
        match self {
            JobKind::Dataset => Stage::Datasets,
            JobKind::View => Stage::Views,
            JobKind::Train => Stage::Training,
            JobKind::Infer | JobKind::Iterative => Stage::Reconstruction,
            JobKind::Compare => Stage::Comparison,
        }
    }
}

/// One job of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub index: usize,
    pub kind: JobKind,
    pub dose_photons: f64,
    pub view: Option<String>,
    pub gridsize: Option<usize>,
    pub model: Option<ModelKind>,
    pub split: Option<Split>,
}

/// `pinn`, `supervised`.
pub fn model_name(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Pinn => "pinn",
        ModelKind::Supervised => "supervised",
    }
}

impl Job {
    pub fn stage(&self) -> Stage {
        self.kind.stage()
    }

    fn dose_dir(&self) -> String {
        format!("dose_{}", dose_label(self.dose_photons))
    }

    fn view_name(&self) -> &str {
        self.view.as_deref().unwrap_or("")
    }

    fn model_part(&self) -> String {
        format!("gs{}/{}", self.gridsize.unwrap_or(1), self.model.map_or("", model_name))
    }

    fn split_name(&self) -> &'static str {
        self.split.map_or("test", Split::name)
    }

    /// Stable name, also the record's and log's path: `train/dose_1e3/dense/gs1/pinn`.
    pub fn id(&self) -> String {
        let d = self.dose_dir();
        let v = self.view_name();
        match self.kind {
            JobKind::Dataset => format!("dataset/{d}"),
            JobKind::View => format!("view/{d}/{v}"),
            JobKind::Train => format!("train/{d}/{v}/{}", self.model_part()),
            JobKind::Infer => format!("infer/{d}/{v}/{}", self.model_part()),
            JobKind::Iterative => format!("iterative/{d}/{v}/{}", self.split_name()),
            JobKind::Compare => format!("compare/{d}/{v}/{}", self.split_name()),
        }
    }

    /// Label of this job's reconstruction in comparisons (`pinn_gs2`, `iterative`).
    pub fn recon_label(&self) -> String {
        match self.kind {
            JobKind::Iterative => "iterative".into(),
            _ => format!("{}_gs{}", self.model.map_or("", model_name), self.gridsize.unwrap_or(1)),
        }
    }

    /// The job's output folder or file stem, relative to the study folder.
    pub fn out_dir(&self) -> PathBuf {
        let d = self.dose_dir();
        let v = self.view_name();
        PathBuf::from(match self.kind {
            JobKind::Dataset => format!("data/{d}"),
            JobKind::View => format!("data/{d}/{v}"),
            JobKind::Train => format!("runs/{d}/{v}/{}", self.model_part()),
            JobKind::Infer => format!("recon/{d}/{v}/{}", self.model_part()),
            JobKind::Iterative => format!("recon/{d}/{v}/iterative"),
            JobKind::Compare => format!("compare/{d}/{v}/{}", self.split_name()),
        })
    }

    /// The reconstruction NPZ an infer/iterative job writes.
    pub fn recon_file(&self) -> PathBuf {
        self.out_dir().join(format!("{}.npz", self.split_name()))
    }

    /// `records/<id>.json`.
    pub fn record_path(&self) -> PathBuf {
        PathBuf::from(format!("records/{}.json", self.id()))
    }

    /// `logs/<id>.log`.
    pub fn log_path(&self) -> PathBuf {
        PathBuf::from(format!("logs/{}.log", self.id()))
    }
}

/// The bundle a training job writes.
pub fn bundle_file(train_job: &Job) -> PathBuf {
    train_job.out_dir().join(crate::bundle::BUNDLE_FILE)
}

/// Every job of the study, in stage order; `index` is the position in the list.
pub fn plan(cfg: &StudyConfig) -> Vec<Job> {
    let mut jobs: Vec<Job> = Vec::new();
    let base = |kind, dose| Job {
        index: 0,
        kind,
        dose_photons: dose,
        view: None,
        gridsize: None,
        model: None,
        split: None,
    };
    let views: Vec<String> = cfg.views.iter().map(|v| v.name.clone()).collect();
    let view_gridsizes = |name: &str| {
        cfg.views
            .iter()
            .find(|v| v.name == name)
            .and_then(|v| v.gridsizes.clone())
            .unwrap_or_else(|| cfg.gridsizes.clone())
    };
    for &d in &cfg.doses_photons {
        jobs.push(base(JobKind::Dataset, d));
    }
    for &d in &cfg.doses_photons {
        for v in &views {
            jobs.push(Job {
                view: Some(v.clone()),
                ..base(JobKind::View, d)
            });
        }
    }
    let model_jobs = |kind| {
        let mut out = Vec::new();
        for &d in &cfg.doses_photons {
            for v in &views {
                for g in view_gridsizes(v) {
                    for &m in &cfg.models {
                        if m == ModelKind::Supervised && g != 1 {
                            // the supervised baseline sees single patterns only
                            continue;
                        }
                        out.push(Job {
                            view: Some(v.clone()),
                            gridsize: Some(g),
                            model: Some(m),
                            split: Some(Split::Test),
                            ..base(kind, d)
                        });
                    }
                }
            }
        }
        out
    };
    jobs.extend(model_jobs(JobKind::Train).into_iter().map(|j| Job { split: None, ..j }));
    jobs.extend(model_jobs(JobKind::Infer));
    for kind in [JobKind::Iterative, JobKind::Compare] {
        for &d in &cfg.doses_photons {
            for v in &views {
                for s in [Split::Train, Split::Test] {
                    jobs.push(Job {
                        view: Some(v.clone()),
                        split: Some(s),
                        ..base(kind, d)
                    });
                }
            }
        }
    }
    for (i, j) in jobs.iter_mut().enumerate() {
        j.index = i;
    }
    jobs
}

/// The jobs whose outputs `job` reads.
pub fn upstream<'a>(jobs: &'a [Job], job: &Job) -> Vec<&'a Job> {
    let same = |j: &&Job| j.dose_photons == job.dose_photons && j.view == job.view;
    jobs.iter()
        .filter(|j| match job.kind {
            JobKind::Dataset => false,
            JobKind::View => j.kind == JobKind::Dataset && j.dose_photons == job.dose_photons,
            JobKind::Train | JobKind::Iterative => j.kind == JobKind::View && same(j),
            JobKind::Infer => {
                (j.kind == JobKind::View && same(j))
                    || (j.kind == JobKind::Train && same(j) && j.gridsize == job.gridsize && j.model == job.model)
            }
            JobKind::Compare => {
                (j.kind == JobKind::View && same(j))
                    || (matches!(j.kind, JobKind::Infer | JobKind::Iterative) && same(j) && j.split == job.split)
            }
        })
        .collect()
}

/// `--only dose=1e4,view=dense,gridsize=2,model=pinn,stage=training`: a job
/// is selected when every key it has matches (keys it lacks are ignored, so
/// a view filter keeps the datasets it needs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    pub doses_photons: Vec<f64>,
    pub views: Vec<String>,
    pub gridsizes: Vec<usize>,
    pub models: Vec<ModelKind>,
    pub stages: Vec<Stage>,
}

impl std::str::FromStr for JobFilter {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        let mut f = JobFilter::default();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| Error::config("only", format!("`{part}` is not key=value")))?;
            let bad = |what: &str| Error::config("only", format!("`{value}` is not a {what}"));
            match key.trim() {
                "dose" | "doses" | "dose_photons" => {
                    f.doses_photons.push(value.parse().map_err(|_| bad("dose (photons)"))?)
                }
                "view" => f.views.push(value.to_string()),
                "gridsize" | "gs" => f.gridsizes.push(value.parse().map_err(|_| bad("gridsize"))?),
                "model" => f.models.push(match value {
                    "pinn" => ModelKind::Pinn,
                    "supervised" => ModelKind::Supervised,
                    _ => return Err(bad("model (pinn, supervised)")),
                }),
                "stage" => f.stages.push(
                    Stage::ALL
                        .into_iter()
                        .find(|st| st.name() == value)
                        .ok_or_else(|| bad("stage (datasets, views, training, reconstruction, comparison)"))?,
                ),
                other => {
                    return Err(Error::config(
                        "only",
                        format!("unknown key `{other}` (dose, view, gridsize, model, stage)"),
                    ));
                }
            }
        }
        Ok(f)
    }
}

impl JobFilter {
    pub fn matches(&self, job: &Job) -> bool {
        let dose_ok = self.doses_photons.is_empty()
            || self
                .doses_photons
                .iter()
                .any(|d| (d - job.dose_photons).abs() <= 1e-9 * d.abs().max(1.0));
        let opt = |want_empty: bool, hit: Option<bool>| want_empty || hit.unwrap_or(true);
        dose_ok
            && opt(self.views.is_empty(), job.view.as_ref().map(|v| self.views.contains(v)))
            && opt(
                self.gridsizes.is_empty(),
                job.gridsize.map(|g| self.gridsizes.contains(&g)),
            )
            && opt(self.models.is_empty(), job.model.map(|m| self.models.contains(&m)))
            && (self.stages.is_empty() || self.stages.contains(&job.stage()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_in_stage_order_with_upstream_jobs_first() {
        let cfg = StudyConfig::default();
        let jobs = plan(&cfg);
        // 3 doses; 2 views; pinn gs1, pinn gs2, supervised gs1
        assert_eq!(jobs.len(), 3 + 6 + 18 + 18 + 12 + 12);
        assert!(jobs.windows(2).all(|w| w[0].stage() <= w[1].stage()));
        for j in &jobs {
            for u in upstream(&jobs, j) {
                assert!(u.index < j.index, "{} before {}", u.id(), j.id());
            }
        }
        let infer = jobs.iter().find(|j| j.kind == JobKind::Infer).unwrap();
        assert_eq!(infer.id(), "infer/dose_1e3/dense/gs1/pinn");
        assert_eq!(upstream(&jobs, infer).len(), 2);
        let cmp = jobs.iter().rfind(|j| j.kind == JobKind::Compare).unwrap();
        assert_eq!(cmp.id(), "compare/dose_1e5/sparse/test");
        assert_eq!(upstream(&jobs, cmp).len(), 1 + 3 + 1);
    }

    #[test]
    fn filter_keeps_what_a_view_needs() {
        let jobs = plan(&StudyConfig::default());
        let f: JobFilter = "dose=1e4,view=dense".parse().unwrap();
        let kept: Vec<String> = jobs.iter().filter(|j| f.matches(j)).map(Job::id).collect();
        assert!(kept.contains(&"dataset/dose_1e4".to_string()));
        assert!(kept.contains(&"train/dose_1e4/dense/gs2/pinn".to_string()));
        assert!(!kept.iter().any(|k| k.contains("sparse") || k.contains("1e3")));
        assert!("colour=red".parse::<JobFilter>().is_err());
    }
}
