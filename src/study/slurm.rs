//! `ptycho study slurm`: one Slurm job array per stage, each task running
//! `ptycho study run-job DIR --index $SLURM_ARRAY_TASK_ID` with the same
//! binary, chained with `--dependency=afterany:` (a failed task does not
//! block the next stage: its dependants record themselves as skipped), and
//! a final `ptycho study report DIR`. We write the scripts; Slurm schedules.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::config::StudyConfig;
use super::plan::{Stage, plan};
use super::runner::prepare_study;
use crate::data::atomic::write_bytes_atomic;
use crate::error::{Error, Result};

/// What `write_slurm` wrote.
#[derive(Debug, Clone)]
pub struct SlurmScripts {
    /// `slurm/submit.sh`: submits every array and the report, in order.
    pub submit: PathBuf,
    /// `(stage, script, first index, last index)`.
    pub stages: Vec<(Stage, PathBuf, usize, usize)>,
    pub report: PathBuf,
}

fn quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', r"'\''"))
}

fn header(cfg: &StudyConfig, name: &str, log_dir: &Path, gpu: bool, array: Option<(usize, usize)>) -> String {
    let s = &cfg.slurm;
    let mut h = String::from("#!/bin/bash\n");
    let _ = writeln!(h, "#SBATCH --job-name=ptycho-{}-{name}", cfg.name);
    let _ = writeln!(h, "#SBATCH --time={}", s.time);
    let _ = writeln!(h, "#SBATCH --cpus-per-task={}", s.cpus_per_task);
    let _ = writeln!(h, "#SBATCH --ntasks=1");
    if let Some((a, b)) = array {
        let _ = writeln!(h, "#SBATCH --array={a}-{b}");
        let _ = writeln!(h, "#SBATCH --output={}/%x-%A_%a.out", log_dir.display());
    } else {
        let _ = writeln!(h, "#SBATCH --output={}/%x-%j.out", log_dir.display());
    }
    if gpu && s.gpus_per_task > 0 {
        let _ = writeln!(h, "#SBATCH --gres=gpu:{}", s.gpus_per_task);
    }
    if let Some(p) = &s.partition {
        let _ = writeln!(h, "#SBATCH --partition={p}");
    }
    if let Some(a) = &s.account {
        let _ = writeln!(h, "#SBATCH --account={a}");
    }
    for line in &s.extra {
        let _ = writeln!(h, "#SBATCH {line}");
    }
    h.push_str("set -euo pipefail\nexport OMP_WAIT_POLICY=passive\n");
    h
}

/// Prepares `dir` (resolved `study.toml`) and writes `dir/slurm/`: one
/// `stage_<n>_<name>.sbatch` array per stage, `report.sbatch` and
/// `submit.sh`. `exe` is the absolute path of the `ptycho` binary the tasks run.
pub fn write_slurm(cfg: &StudyConfig, dir: &Path, exe: &Path) -> Result<SlurmScripts> {
    prepare_study(cfg, dir)?;
    let dir = std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?;
    let exe = if exe.is_absolute() {
        exe.to_path_buf()
    } else {
        std::fs::canonicalize(exe).map_err(|e| Error::io(exe, e))?
    };
    let sdir = dir.join("slurm");
    let log_dir = dir.join("logs").join("slurm");
    for d in [&sdir, &log_dir] {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let jobs = plan(cfg);
    let mut stages = Vec::new();
    let mut submit = String::from(
        "#!/bin/bash\n# Submits the study's job arrays, each stage after the previous one\n\
         # (afterany: failed tasks are recorded and their dependants skipped), then the report.\n\
         set -euo pipefail\ncd \"$(dirname \"$0\")\"\n",
    );
    let mut previous: Option<String> = None;
    for (n, stage) in Stage::ALL.into_iter().enumerate() {
        let idx: Vec<usize> = jobs.iter().filter(|j| j.stage() == stage).map(|j| j.index).collect();
        let (Some(&a), Some(&b)) = (idx.first(), idx.last()) else {
            continue;
        };
        let gpu = matches!(stage, Stage::Training | Stage::Reconstruction);
        let mut script = header(cfg, stage.name(), &log_dir, gpu, Some((a, b)));
        let _ = writeln!(
            script,
            "exec {} study run-job {} --index \"$SLURM_ARRAY_TASK_ID\"",
            quote(&exe),
            quote(&dir)
        );
        let file = sdir.join(format!("stage_{}_{}.sbatch", n + 1, stage.name()));
        write_bytes_atomic(&file, script.as_bytes())?;
        let var = format!("job_{}", stage.name());
        let dep = previous
            .as_ref()
            .map_or(String::new(), |p| format!(" --dependency=afterany:${p}"));
        let _ = writeln!(
            submit,
            "{var}=$(sbatch --parsable{dep} {})\necho \"{} ({a}-{b}): ${var}\"",
            quote(&file),
            stage.name()
        );
        previous = Some(var);
        stages.push((stage, file, a, b));
    }
    let mut report = header(cfg, "report", &log_dir, false, None);
    let _ = writeln!(report, "exec {} study report {}", quote(&exe), quote(&dir));
    let report_file = sdir.join("report.sbatch");
    write_bytes_atomic(&report_file, report.as_bytes())?;
    let dep = previous.map_or(String::new(), |p| format!(" --dependency=afterany:${p}"));
    let _ = writeln!(
        submit,
        "job_report=$(sbatch --parsable{dep} {})\necho \"report: $job_report\"",
        quote(&report_file)
    );
    let submit_file = sdir.join("submit.sh");
    write_bytes_atomic(&submit_file, submit.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&submit_file, std::fs::Permissions::from_mode(0o755));
    }
    Ok(SlurmScripts {
        submit: submit_file,
        stages,
        report: report_file,
    })
}
