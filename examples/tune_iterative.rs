//! A grid search of the iterative solvers' settings on datasets with a
//! ground truth: how we chose the data-driven defaults
//! (`IterativeConfig::auto`, docs/quality.md). For every dataset, algorithm,
//! step `alpha` (ePIE's α; the gradient solver's step scale) and
//! `max_weight`, one run keeps the object after each iteration of a ladder,
//! and each is compared with the truth as `ptycho compare` does (scanned
//! region, registration, plane, mean amplitude; `--score-pixels`).
//! Prints CSV on stdout: one row per dataset × setting × iteration.
//!
//! ```text
//! cargo run --release --example tune_iterative -- \
//!     --alphas 0.1,0.3,1 --weights 0.01,0.1,0.5 --iters 5,10,20,50,100 \
//!     [--algorithm epie|gradient] [--score-pixels region|illuminated] [--no-subpixel] TEST.npz...
//! ```
use std::path::PathBuf;
use std::time::Instant;

use ptycho_workbench::compare::{RegisterPolicy, ScorePixels, compare_all, default_align, with_score_pixels};
use ptycho_workbench::data::read_dataset;
use ptycho_workbench::recon::iterative::{Algorithm, DataStats, IterativeConfig, reconstruct_iterative_snapshots};

fn list<T: std::str::FromStr>(s: &str) -> Vec<T> {
    s.split(',').filter_map(|v| v.trim().parse().ok()).collect()
}

fn main() -> anyhow::Result<()> {
    let mut alphas = vec![1.0];
    let mut weights = vec![0.01];
    let mut iters = vec![10usize, 100];
    let mut algorithm = Algorithm::Epie;
    let mut score = ScorePixels::Region;
    let mut files: Vec<PathBuf> = Vec::new();
    let mut no_subpixel = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| anyhow::anyhow!("{a} needs a value"));
        match a.as_str() {
            "--alphas" => alphas = list(&value()?),
            "--weights" => weights = list(&value()?),
            "--iters" => iters = list(&value()?),
            "--algorithm" => algorithm = value()?.parse()?,
            "--score-pixels" => score = ScorePixels::parse(&value()?)?,
            "--no-subpixel" => no_subpixel = true,
            f => files.push(f.into()),
        }
    }
    let last = *iters.iter().max().ok_or_else(|| anyhow::anyhow!("--iters is empty"))?;
    println!(
        "file,photons,redundancy,algorithm,alpha,max_weight,iteration,amp_ssim,phase_ssim,amp_psnr,phase_psnr,data_error,seconds"
    );
    for file in &files {
        let ds = read_dataset(file)?;
        let stats = DataStats::of(&ds)?;
        let align = with_score_pixels(default_align(&ds, 0.0)?, &ds, score)?;
        for &alpha in &alphas {
            for &w in &weights {
                let mut cfg = IterativeConfig {
                    algorithm,
                    iterations: Some(last),
                    max_weight: Some(w),
                    device: "cpu".into(),
                    ..IterativeConfig::default()
                };
                cfg.epie.alpha = Some(alpha);
                cfg.gradient.step_scale = Some(alpha);
                cfg.subpixel = !no_subpixel;
                let started = Instant::now();
                let mut times = Vec::new();
                let out = reconstruct_iterative_snapshots(&ds, &cfg, None, &iters, &mut |r| {
                    times.push((r.iteration, r.data_error, started.elapsed().as_secs_f64()))
                });
                let out = match out {
                    Ok(o) => o,
                    Err(e) => {
                        eprintln!("{}: alpha {alpha} w {w}: {e}", file.display());
                        continue;
                    }
                };
                for (it, object) in out.snapshots {
                    let c = compare_all(
                        &ds,
                        &[("x".into(), object)],
                        &align,
                        &[RegisterPolicy::Auto.registers(Some("iterative"))],
                    )?
                    .remove(0);
                    let (_, err, secs) = times[it - 1];
                    println!(
                        "{},{:.3e},{:.2},{:?},{alpha},{w},{it},{:.4},{:.4},{:.2},{:.2},{err:.5},{secs:.2}",
                        file.file_stem().unwrap_or_default().to_string_lossy(),
                        stats.photons_per_pattern.unwrap_or(f64::NAN),
                        stats.redundancy,
                        algorithm,
                        c.amplitude.ssim,
                        c.phase.ssim,
                        c.amplitude.psnr,
                        c.phase.psnr
                    );
                }
            }
        }
    }
    Ok(())
}
