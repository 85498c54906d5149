//! `ptycho study …`: a few lines over `ptycho_workbench::study`.
use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Subcommand;
use ptycho_workbench::study::{self, JobStatus, Outcome, RunOptions, StudyConfig};

#[derive(Subcommand)]
pub enum StudyCommand {
    /// Run (or resume) a study: every job not up to date, then the report.
    Run {
        /// Study configuration (TOML), e.g. data/studies/dose_overlap.toml.
        #[arg(long)]
        config: PathBuf,
        /// Study folder (created; resumed when it exists).
        #[arg(long)]
        out: PathBuf,
        /// Jobs run at once, each in its own process (one GPU each when there are several).
        #[arg(long, default_value_t = 1)]
        jobs: usize,
        /// Only these jobs (and the upstream jobs they need), e.g. dose=1e4,view=dense.
        #[arg(long)]
        only: Option<String>,
        /// Print what would run; change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Rerun the selected jobs even when they are up to date.
        #[arg(long)]
        force: bool,
    },
    /// The state of every job of a study folder.
    Status {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Gather the manifests and write report/ (tables, figures, report.md, report.html).
    Report { dir: PathBuf },
    /// Write Slurm job arrays (one per stage, chained) and submit.sh into OUT/slurm/.
    Slurm {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Run one job of a study folder (what parallel runs and Slurm array tasks call).
    RunJob {
        dir: PathBuf,
        /// Job index (default: $SLURM_ARRAY_TASK_ID).
        #[arg(long)]
        index: Option<usize>,
        /// Override the study's device (auto, cpu, cuda:N).
        #[arg(long)]
        device: Option<String>,
        /// libtorch threads.
        #[arg(long)]
        threads: Option<usize>,
        /// Run even when up to date.
        #[arg(long)]
        force: bool,
    },
}

pub fn run(cmd: StudyCommand) -> Result<()> {
    match cmd {
        StudyCommand::Run {
            config,
            out,
            jobs,
            only,
            dry_run,
            force,
        } => {
            let cfg = StudyConfig::from_file(&config)?;
            let opts = RunOptions {
                parallel_jobs: jobs,
                executable: Some(std::env::current_exe()?),
                only: only.as_deref().unwrap_or("").parse()?,
                dry_run,
                force,
            };
            let summary = study::run_study(&cfg, &out, &opts, &mut |line| eprintln!("{line}"))?;
            if let Some(r) = &summary.report {
                eprintln!("report: {}", r.display());
            }
            let problems = summary.problems();
            if !problems.is_empty() {
                bail!(
                    "{} of {} jobs did not complete ({}); see the logs under {}/logs and report/report.md",
                    problems.len(),
                    summary.jobs.len(),
                    problems.iter().map(|p| p.0.as_str()).collect::<Vec<_>>().join(", "),
                    out.display()
                );
            }
            let _ = Outcome::Completed;
        }
        StudyCommand::Status { dir, json } => {
            let s = study::study_status(&dir)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                for j in &s.jobs {
                    println!(
                        "[{:>3}] {:<48} {}{}",
                        j.index,
                        j.id,
                        j.state,
                        j.detail.as_ref().map_or(String::new(), |d| format!(": {d}"))
                    );
                }
                println!(
                    "{}: {} jobs, {} up to date, {} stale, {} failed, {} skipped, {} pending{}",
                    s.study,
                    s.n_jobs,
                    s.n_up_to_date,
                    s.n_stale,
                    s.n_failed,
                    s.n_skipped,
                    s.n_pending,
                    s.locked_by
                        .as_ref()
                        .map_or(String::new(), |l| format!(" (locked: {l})"))
                );
            }
        }
        StudyCommand::Report { dir } => {
            let path = study::report_study(&dir)?;
            eprintln!("wrote {}", path.display());
        }
        StudyCommand::Slurm { config, out } => {
            let cfg = StudyConfig::from_file(&config)?;
            let s = study::write_slurm(&cfg, &out, &std::env::current_exe()?)?;
            for (stage, file, a, b) in &s.stages {
                eprintln!("{:<15} tasks {a}-{b}  {}", stage.name(), file.display());
            }
            eprintln!("report          {}", s.report.display());
            println!("{}", s.submit.display());
        }
        StudyCommand::RunJob {
            dir,
            index,
            device,
            threads,
            force,
        } => {
            let index = match index {
                Some(i) => i,
                None => std::env::var("SLURM_ARRAY_TASK_ID")
                    .map_err(|_| anyhow::anyhow!("give --index or set SLURM_ARRAY_TASK_ID"))?
                    .parse()?,
            };
            if let Some(t) = threads {
                tch::set_num_threads(t.max(1) as i32);
            }
            let r = study::run_job(&dir, index, device.as_deref(), force)?;
            eprintln!("{} {:?} ({:.1} s)", r.id, r.status, r.seconds);
            match r.status {
                JobStatus::Completed => {}
                JobStatus::Failed => bail!("{} failed: {}", r.id, r.error.unwrap_or_default()),
                JobStatus::Skipped => bail!("{} skipped: {}", r.id, r.skip_reason.unwrap_or_default()),
            }
        }
    }
    Ok(())
}
