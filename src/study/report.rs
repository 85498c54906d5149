//! The study report, gathered from the job records: tables (CSV and
//! Parquet), figures (PNG), `report.md` and a self-contained `report.html`
//! (figures embedded as base64 PNG), all in `DIR/report/`.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::config::{StudyConfig, dose_label};
use super::manifest::{JobRecordV1, JobStatus, MetricRow, read_record};
use super::plan::{Job, JobKind, Split, model_name, plan};
use crate::data::atomic::write_bytes_atomic;
use crate::error::{Error, Result};
use crate::plot::{self, Figure, LinePanel, Panel, Series as LineSeries};
use crate::table::{Column, Table};
use crate::train::History;

/// The report's folder inside the study folder.
pub const REPORT_DIR: &str = "report";

/// One comparison row with where it comes from.
#[derive(Debug, Clone)]
struct Row {
    dose: f64,
    view: String,
    split: &'static str,
    m: MetricRow,
}

/// The comparison metrics of every completed comparison job.
fn metrics_report_table(rows: &[Row]) -> Result<Table> {
    Table::new(vec![
        Column::from_rows("dose_photons", rows, |r| r.dose),
        Column::from_rows("view", rows, |r| r.view.clone()),
        Column::from_rows("split", rows, |r| r.split.to_string()),
        Column::from_rows("label", rows, |r| r.m.label.clone()),
        Column::from_rows("model", rows, |r| r.m.model.clone()),
        Column::from_rows("gridsize", rows, |r| r.m.gridsize.map(|g| g as i64)),
        Column::from_rows("component", rows, |r| r.m.component.clone()),
        Column::from_rows("ssim", rows, |r| r.m.ssim),
        Column::from_rows("ms_ssim", rows, |r| r.m.ms_ssim),
        Column::from_rows("psnr", rows, |r| r.m.psnr),
        Column::from_rows("mae", rows, |r| r.m.mae),
        Column::from_rows("mse", rows, |r| r.m.mse),
        Column::from_rows("frc50", rows, |r| r.m.frc50),
        Column::from_rows("frc_1_7", rows, |r| r.m.frc_1_7),
    ])
}

/// One delta: PINN − a reference, same dose, view, split, component.
#[derive(Debug, Clone)]
struct Delta {
    dose: f64,
    view: String,
    split: &'static str,
    gridsize: Option<usize>,
    component: String,
    reference: String,
    d_ssim: f64,
    d_ms_ssim: f64,
    d_psnr: Option<f64>,
    d_mae: f64,
    d_frc50: Option<f64>,
}

fn deltas(rows: &[Row]) -> Vec<Delta> {
    let mut out = Vec::new();
    for p in rows.iter().filter(|r| r.m.model == "pinn") {
        let same =
            |r: &&Row| r.dose == p.dose && r.view == p.view && r.split == p.split && r.m.component == p.m.component;
        let refs = rows
            .iter()
            .filter(same)
            .filter(|r| r.m.model == "supervised" || r.m.model == "iterative");
        for r in refs {
            out.push(Delta {
                dose: p.dose,
                view: p.view.clone(),
                split: p.split,
                gridsize: p.m.gridsize,
                component: p.m.component.clone(),
                reference: r.m.label.clone(),
                d_ssim: p.m.ssim - r.m.ssim,
                d_ms_ssim: p.m.ms_ssim - r.m.ms_ssim,
                d_psnr: p.m.psnr.zip(r.m.psnr).map(|(a, b)| a - b),
                d_mae: p.m.mae - r.m.mae,
                d_frc50: p.m.frc50.zip(r.m.frc50).map(|(a, b)| a - b),
            });
        }
    }
    out
}

fn deltas_report_table(d: &[Delta]) -> Result<Table> {
    Table::new(vec![
        Column::from_rows("dose_photons", d, |x| x.dose),
        Column::from_rows("view", d, |x| x.view.clone()),
        Column::from_rows("split", d, |x| x.split.to_string()),
        Column::from_rows("gridsize", d, |x| x.gridsize.map(|g| g as i64)),
        Column::from_rows("component", d, |x| x.component.clone()),
        Column::from_rows("reference", d, |x| x.reference.clone()),
        Column::from_rows("delta_ssim", d, |x| x.d_ssim),
        Column::from_rows("delta_ms_ssim", d, |x| x.d_ms_ssim),
        Column::from_rows("delta_psnr", d, |x| x.d_psnr),
        Column::from_rows("delta_mae", d, |x| x.d_mae),
        Column::from_rows("delta_frc50", d, |x| x.d_frc50),
    ])
}

fn status_name(r: Option<&JobRecordV1>) -> String {
    match r.map(|r| r.status) {
        Some(JobStatus::Completed) => "completed".into(),
        Some(JobStatus::Failed) => "failed".into(),
        Some(JobStatus::Skipped) => "skipped".into(),
        None => "pending".into(),
    }
}

fn training_report_table(train: &[(&Job, Option<JobRecordV1>)]) -> Result<Table> {
    let t = |j: &(&Job, Option<JobRecordV1>)| j.1.as_ref().and_then(|r| r.training.clone());
    Table::new(vec![
        Column::from_rows("dose_photons", train, |j| j.0.dose_photons),
        Column::from_rows("view", train, |j| j.0.view.clone().unwrap_or_default()),
        Column::from_rows("gridsize", train, |j| j.0.gridsize.unwrap_or(1) as i64),
        Column::from_rows("model", train, |j| j.0.model.map_or("", model_name).to_string()),
        Column::from_rows("status", train, |j| status_name(j.1.as_ref())),
        Column::from_rows("epochs_completed", train, |j| t(j).map(|x| x.epochs_completed as i64)),
        Column::from_rows("final_train_loss", train, |j| t(j).and_then(|x| x.final_train_loss)),
        Column::from_rows("final_val_loss", train, |j| t(j).and_then(|x| x.final_val_loss)),
        Column::from_rows("test_loss", train, |j| t(j).and_then(|x| x.test_loss)),
        Column::from_rows("bundle_size_bytes", train, |j| t(j).and_then(|x| x.bundle_size_bytes)),
        Column::from_rows("seconds", train, |j| j.1.as_ref().map(|r| r.seconds)),
        Column::from_rows("error", train, |j| {
            j.1.as_ref().and_then(|r| r.error.clone().or(r.skip_reason.clone()))
        }),
    ])
}

fn views_report_table(views: &[(&Job, JobRecordV1)]) -> Result<Table> {
    let rows: Vec<(&Job, &super::manifest::ViewSplitRecord)> = views
        .iter()
        .flat_map(|(j, r)| r.views.iter().map(move |v| (*j, v)))
        .collect();
    Table::new(vec![
        Column::from_rows("dose_photons", &rows, |r| r.0.dose_photons),
        Column::from_rows("view", &rows, |r| r.0.view.clone().unwrap_or_default()),
        Column::from_rows("split", &rows, |r| r.1.split.name().to_string()),
        Column::from_rows("spacing_threshold_px", &rows, |r| r.1.selection.spacing_threshold_px),
        Column::from_rows("selection_strategy", &rows, |r| {
            r.1.selection.selection_strategy.clone()
        }),
        Column::from_rows("n_positions", &rows, |r| r.1.selection.n_positions as i64),
        Column::from_rows("n_accepted", &rows, |r| r.1.selection.n_accepted as i64),
        Column::from_rows("acceptance_rate", &rows, |r| r.1.selection.acceptance_rate),
        Column::from_rows("probe_diameter_px", &rows, |r| r.1.overlap.probe_diameter_px),
        Column::from_rows("image_overlap", &rows, |r| r.1.overlap.image_overlap),
        Column::from_rows("group_member_overlap", &rows, |r| r.1.overlap.group_member_overlap),
        Column::from_rows("group_group_overlap", &rows, |r| r.1.overlap.group_group_overlap),
    ])
}

fn write_tables(dir: &Path, name: &str, table: &Table) -> Result<()> {
    write_bytes_atomic(&dir.join(format!("{name}.csv")), table.to_csv().as_bytes())?;
    write_bytes_atomic(&dir.join(format!("{name}.parquet")), &table.to_parquet())
}

fn num(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map_or("—".into(), |x| format!("{x:.digits$}"))
}

/// A figure saved as PNG in the report folder, kept for the HTML.
struct Figures {
    dir: PathBuf,
    list: Vec<(String, String, Vec<u8>)>, // (title, file name, png)
}

impl Figures {
    fn add(&mut self, title: &str, file: &str, fig: Result<Figure>) -> Result<()> {
        let png = fig?.to_png()?;
        write_bytes_atomic(&self.dir.join(file), &png)?;
        self.list.push((title.into(), file.into(), png));
        Ok(())
    }
}

fn vs_dose(rows: &[Row], metric: &str, get: fn(&MetricRow) -> Option<f64>) -> Result<Figure> {
    let mut panels: Vec<Panel> = Vec::new();
    for component in ["amplitude", "phase"] {
        let mut keys: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.split == "test" && r.m.component == component)
            .map(|r| (r.m.label.clone(), r.view.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        keys.sort();
        let series = keys
            .iter()
            .map(|(label, view)| {
                let mut pts: Vec<(f64, f64)> = rows
                    .iter()
                    .filter(|r| {
                        r.split == "test" && r.m.component == component && &r.m.label == label && &r.view == view
                    })
                    .filter_map(|r| get(&r.m).map(|v| (r.dose.log10(), v)))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let line = LineSeries::new(
                    format!("{label} · {view}"),
                    pts.iter().map(|p| p.0).collect(),
                    pts.iter().map(|p| p.1).collect(),
                );
                if view.contains("sparse") { line.dashed() } else { line }
            })
            .filter(|s| !s.x.is_empty())
            .collect();
        panels.push(
            LinePanel {
                title: format!("{metric} ({component}, test split)"),
                x_label: "log10 dose (photons per pattern)".into(),
                y_label: metric.into(),
                series,
                markers: true,
                ..LinePanel::default()
            }
            .into(),
        );
    }
    for p in &panels {
        p.validate()?;
    }
    Ok(Figure::from_panels(2, panels).with_size(1200, 440))
}

fn training_curves(dir: &Path, train: &[(&Job, Option<JobRecordV1>)], doses: &[f64]) -> Result<Option<Figure>> {
    let mut panels: Vec<Panel> = Vec::new();
    for &d in doses {
        let mut series = Vec::new();
        for (j, r) in train.iter().filter(|(j, _)| j.dose_photons == d) {
            let Some(h) = r
                .as_ref()
                .and_then(|r| r.training.as_ref())
                .and_then(|t| t.history_path.clone())
            else {
                continue;
            };
            let Ok(text) = std::fs::read_to_string(dir.join(&h)) else {
                continue;
            };
            let Ok(hist) = History::from_csv(&text) else { continue };
            series.push(LineSeries::new(
                format!(
                    "{} · gs{} · {}",
                    j.view.clone().unwrap_or_default(),
                    j.gridsize.unwrap_or(1),
                    j.model.map_or("", model_name)
                ),
                hist.epochs.iter().map(|e| e.epoch as f64).collect(),
                hist.epochs.iter().map(|e| e.train_loss).collect(),
            ));
        }
        if !series.is_empty() {
            panels.push(
                LinePanel {
                    title: format!("training loss, dose {}", dose_label(d)),
                    x_label: "epoch".into(),
                    y_label: "train loss".into(),
                    series,
                    markers: true,
                    ..LinePanel::default()
                }
                .into(),
            );
        }
    }
    if panels.is_empty() {
        return Ok(None);
    }
    for p in &panels {
        p.validate()?;
    }
    let cols = panels.len().min(3);
    let rows = panels.len().div_ceil(cols);
    Ok(Some(
        Figure::from_panels(cols, panels).with_size(560 * cols as u32, 420 * rows as u32),
    ))
}

/// A report section: title, column headers, rows.
type Section<'a> = (&'a str, &'a [&'a str], &'a Vec<Vec<String>>);

fn md_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = format!("| {} |\n|{}\n", headers.join(" | "), "---|".repeat(headers.len()));
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

/// Writes the tables, figures, `report.md` and `report.html` of the study in
/// `dir` from whatever records exist; returns the path of `report.html`.
pub fn write_report(dir: &Path, cfg: &StudyConfig) -> Result<PathBuf> {
    let out = dir.join(REPORT_DIR);
    std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
    let jobs = plan(cfg);
    let records: Vec<(&Job, Option<JobRecordV1>)> = jobs.iter().map(|j| (j, read_record(dir, j))).collect();
    let mut rows: Vec<Row> = Vec::new();
    for (j, r) in &records {
        if let (JobKind::Compare, Some(r)) = (j.kind, r)
            && r.status == JobStatus::Completed
        {
            for m in &r.metrics {
                rows.push(Row {
                    dose: j.dose_photons,
                    view: j.view.clone().unwrap_or_default(),
                    split: j.split.map_or("test", Split::name),
                    m: m.clone(),
                });
            }
        }
    }
    let train: Vec<(&Job, Option<JobRecordV1>)> = records
        .iter()
        .filter(|(j, _)| j.kind == JobKind::Train)
        .map(|(j, r)| (*j, r.clone()))
        .collect();
    let views: Vec<(&Job, JobRecordV1)> = records
        .iter()
        .filter_map(|(j, r)| match (j.kind, r) {
            (JobKind::View, Some(r)) if r.status == JobStatus::Completed => Some((*j, r.clone())),
            _ => None,
        })
        .collect();
    let delta_rows = deltas(&rows);
    write_tables(&out, "metrics", &metrics_report_table(&rows)?)?;
    write_tables(&out, "training", &training_report_table(&train)?)?;
    write_tables(&out, "deltas", &deltas_report_table(&delta_rows)?)?;
    write_tables(&out, "views", &views_report_table(&views)?)?;

    let mut figs = Figures {
        dir: out.clone(),
        list: Vec::new(),
    };
    if !rows.is_empty() {
        figs.add(
            "SSIM vs dose",
            "ssim_vs_dose.png",
            vs_dose(&rows, "SSIM", |m| Some(m.ssim)),
        )?;
        figs.add(
            "FRC50 vs dose",
            "frc50_vs_dose.png",
            vs_dose(&rows, "FRC50 (ring)", |m| m.frc50),
        )?;
    }
    let phase_deltas: Vec<&Delta> = delta_rows
        .iter()
        .filter(|d| d.split == "test" && d.component == "phase")
        .collect();
    if !phase_deltas.is_empty() {
        let labels: Vec<String> = cfg.doses_photons.iter().map(|d| dose_label(*d)).collect();
        let groups: Vec<String> = phase_deltas
            .iter()
            .map(|d| format!("gs{} {} − {}", d.gridsize.unwrap_or(1), d.view, d.reference))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let values: Vec<Vec<f64>> = groups
            .iter()
            .map(|g| {
                cfg.doses_photons
                    .iter()
                    .map(|&dose| {
                        phase_deltas
                            .iter()
                            .find(|d| {
                                d.dose == dose
                                    && &format!("gs{} {} − {}", d.gridsize.unwrap_or(1), d.view, d.reference) == g
                            })
                            .map_or(f64::NAN, |d| d.d_ssim)
                    })
                    .collect()
            })
            .collect();
        figs.add(
            "Phase SSIM: PINN − reference, per dose",
            "delta_ssim_phase.png",
            plot::metric_bars(&labels, &groups, &values, "Δ phase SSIM (PINN − reference)"),
        )?;
    }
    if let Some(f) = training_curves(dir, &train, &cfg.doses_photons)? {
        figs.add("Training curves", "training_curves.png", Ok(f))?;
    }
    // comparison grids (rendered by each comparison job), test split
    let mut grids: Vec<(String, String, Vec<u8>)> = Vec::new();
    for (j, r) in &records {
        if j.kind == JobKind::Compare
            && j.split == Some(Split::Test)
            && r.as_ref().is_some_and(|r| r.status == JobStatus::Completed)
        {
            let rel = j.out_dir().join("comparison.png");
            if let Ok(png) = std::fs::read(dir.join(&rel)) {
                grids.push((
                    format!(
                        "dose {}, view {}",
                        dose_label(j.dose_photons),
                        j.view.clone().unwrap_or_default()
                    ),
                    format!("../{}", rel.to_string_lossy()),
                    png,
                ));
            }
        }
    }

    // tables for md and html
    let metric_headers = [
        "dose",
        "view",
        "split",
        "reconstruction",
        "component",
        "SSIM",
        "MS-SSIM",
        "PSNR (dB)",
        "FRC50",
        "MAE",
    ];
    let metric_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                dose_label(r.dose),
                r.view.clone(),
                r.split.into(),
                r.m.label.clone(),
                r.m.component.clone(),
                num(Some(r.m.ssim), 3),
                num(Some(r.m.ms_ssim), 3),
                num(r.m.psnr, 2),
                num(r.m.frc50, 1),
                num(Some(r.m.mae), 4),
            ]
        })
        .collect();
    let delta_headers = [
        "dose",
        "view",
        "split",
        "gridsize",
        "component",
        "reference",
        "ΔSSIM",
        "ΔMS-SSIM",
        "ΔPSNR",
        "ΔFRC50",
        "ΔMAE",
    ];
    let delta_table: Vec<Vec<String>> = delta_rows
        .iter()
        .map(|d| {
            vec![
                dose_label(d.dose),
                d.view.clone(),
                d.split.into(),
                d.gridsize.map_or("—".into(), |g| g.to_string()),
                d.component.clone(),
                d.reference.clone(),
                num(Some(d.d_ssim), 3),
                num(Some(d.d_ms_ssim), 3),
                num(d.d_psnr, 2),
                num(d.d_frc50, 1),
                num(Some(d.d_mae), 4),
            ]
        })
        .collect();
    let train_headers = [
        "dose",
        "view",
        "gridsize",
        "model",
        "status",
        "epochs",
        "final loss",
        "test loss",
        "seconds",
    ];
    let train_rows: Vec<Vec<String>> = train
        .iter()
        .map(|(j, r)| {
            let t = r.as_ref().and_then(|r| r.training.as_ref());
            vec![
                dose_label(j.dose_photons),
                j.view.clone().unwrap_or_default(),
                j.gridsize.unwrap_or(1).to_string(),
                j.model.map_or("", model_name).into(),
                status_name(r.as_ref()),
                t.map_or("—".into(), |t| t.epochs_completed.to_string()),
                num(t.and_then(|t| t.final_train_loss), 4),
                num(t.and_then(|t| t.test_loss), 4),
                num(r.as_ref().map(|r| r.seconds), 1),
            ]
        })
        .collect();
    let view_headers = [
        "dose",
        "view",
        "split",
        "spacing (px)",
        "strategy",
        "kept",
        "of",
        "image overlap",
        "group overlap",
    ];
    let view_rows: Vec<Vec<String>> = views
        .iter()
        .flat_map(|(j, r)| {
            r.views.iter().map(move |v| {
                vec![
                    dose_label(j.dose_photons),
                    j.view.clone().unwrap_or_default(),
                    v.split.name().into(),
                    num(Some(v.selection.spacing_threshold_px), 1),
                    v.selection.selection_strategy.clone(),
                    v.selection.n_accepted.to_string(),
                    v.selection.n_positions.to_string(),
                    num(Some(v.overlap.image_overlap), 3),
                    num(v.overlap.group_group_overlap, 3),
                ]
            })
        })
        .collect();
    let problems: Vec<Vec<String>> = records
        .iter()
        .filter_map(|(j, r)| match r {
            Some(r) if r.status == JobStatus::Failed => Some(vec![
                j.id(),
                "failed".into(),
                r.error.clone().unwrap_or_default(),
                r.log_path.clone().unwrap_or_default(),
            ]),
            Some(r) if r.status == JobStatus::Skipped => Some(vec![
                j.id(),
                "skipped".into(),
                r.skip_reason.clone().unwrap_or_default(),
                r.log_path.clone().unwrap_or_default(),
            ]),
            None => Some(vec![j.id(), "pending".into(), "not run".into(), String::new()]),
            _ => None,
        })
        .collect();
    let problem_headers = ["job", "status", "reason", "log"];
    let n_done = records
        .iter()
        .filter(|(_, r)| r.as_ref().is_some_and(|r| r.status == JobStatus::Completed))
        .count();
    let intro = format!(
        "{} jobs: {n_done} completed, {} failed, {} skipped, {} pending. Doses {} photons per pattern; \
         views {}; gridsizes {:?}; models {}; N = {}; split {:?} at {}.",
        records.len(),
        problems.iter().filter(|p| p[1] == "failed").count(),
        problems.iter().filter(|p| p[1] == "skipped").count(),
        problems.iter().filter(|p| p[1] == "pending").count(),
        cfg.doses_photons
            .iter()
            .map(|d| dose_label(*d))
            .collect::<Vec<_>>()
            .join(", "),
        cfg.views.iter().map(|v| v.name.clone()).collect::<Vec<_>>().join(", "),
        cfg.gridsizes,
        cfg.models.iter().map(|m| model_name(*m)).collect::<Vec<_>>().join(", "),
        cfg.n_px(),
        cfg.split.axis,
        cfg.split.fraction
    );
    let alignment = "Metrics as `ptycho compare`: the scanned region (positions ± 10 px), sub-pixel registration \
                     of the iterative reconstructions only, phase plane removed, amplitude scaled to the truth's mean. Deltas are PINN − reference \
                     (the supervised baseline, gridsize 1, and the iterative solver).";

    let mut md = format!("# Study `{}`\n\n{intro}\n\n{alignment}\n\n", cfg.name);
    let sections: [Section; 5] = [
        ("Failures", &problem_headers, &problems),
        ("Comparison metrics", &metric_headers, &metric_rows),
        ("PINN − baseline and PINN − iterative", &delta_headers, &delta_table),
        ("Training", &train_headers, &train_rows),
        ("Views", &view_headers, &view_rows),
    ];
    for (title, headers, table) in &sections {
        if *title == "Failures" && table.is_empty() {
            let _ = writeln!(md, "## Failures\n\nNone.\n");
            continue;
        }
        let _ = writeln!(md, "## {title}\n\n{}", md_table(headers, table));
    }
    let _ = writeln!(
        md,
        "Tables: `metrics`, `deltas`, `training`, `views` (`.csv` and `.parquet`).\n\n## Figures\n"
    );
    for (title, file, _) in &figs.list {
        let _ = writeln!(md, "### {title}\n\n![{title}]({file})\n");
    }
    for (title, file, _) in &grids {
        let _ = writeln!(md, "### Comparison, {title}\n\n![{title}]({file})\n");
    }
    write_bytes_atomic(&out.join("report.md"), md.as_bytes())?;

    let esc = plot::escape_html;
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Study {}</title>\n\
         <style>body{{font-family:sans-serif;max-width:1300px;margin:auto;padding:1em}}\
         td,th{{padding:2px 8px;border-bottom:1px solid #ddd}}img{{max-width:100%}}</style></head><body>\n\
         <h1>Study <code>{}</code></h1>\n<p>{}</p>\n<p>{}</p>\n",
        esc(&cfg.name),
        esc(&cfg.name),
        esc(&intro),
        esc(alignment)
    );
    for (title, headers, table) in &sections {
        let _ = writeln!(html, "<h2>{}</h2>", esc(title));
        if table.is_empty() {
            html.push_str("<p>None.</p>\n");
        } else {
            let h: Vec<String> = headers.iter().map(|s| s.to_string()).collect();
            html.push_str(&plot::html_table(&h, table));
        }
    }
    html.push_str("<h2>Figures</h2>\n");
    for (title, _, png) in figs.list.iter().chain(&grids) {
        let _ = writeln!(
            html,
            "<h3>{}</h3>\n<img alt=\"{}\" src=\"data:image/png;base64,{}\">",
            esc(title),
            esc(title),
            plot::base64(png)
        );
    }
    html.push_str("</body></html>\n");
    let path = out.join("report.html");
    write_bytes_atomic(&path, html.as_bytes())?;
    Ok(path)
}
