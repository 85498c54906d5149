//! Our iterative solvers against pty-chi 2.2 LSQML on the same data.
//!
//! Noise-free data with the true probe: a 128×128 random-lines object, the
//! default zone-plate probe at N = 64 and 81 integer positions (a 9×9 raster,
//! spacing 8 px, x and y from 32 to 96). Writes the dataset as NPZ, runs
//! `benches/reference_ptychi.py` on it with the peer venv (`.venv-peers`,
//! `pip install ptychi==2.2.0`; skipped with a note when missing) with its
//! default batch size (100, i.e. the whole scan) and with batches of 10, runs our
//! ePIE and gradient (LSQ) solvers for the same epochs, with the default
//! `max_weight` (0.01) and with the noise-free setting 0.003, and prints a
//! table of wall time and object error (`recon::iterative::object_error`:
//! scanned region, modulo a global complex factor). Our wall time is the
//! whole `reconstruct_iterative` call (set-up and copies included);
//! pty-chi's is `task.run()`.
//!
//! ```text
//! OMP_WAIT_POLICY=passive cargo run --release --example iterative_peer \
//!     [-- --threads 2 --epochs 20,100 --ptychi-batch 100,10]
//! ```
use std::path::{Path, PathBuf};
use std::process::Command;

use ndarray::{Array1, Array2, Ix3};
use ptycho_workbench::array::tensor_to_f32;
use ptycho_workbench::data::{Dataset, write_npz};
use ptycho_workbench::recon::iterative::{IterativeConfig, object_error, reconstruct_iterative};
use ptycho_workbench::simulate::{SimConfig, forward_amplitudes, simulate_on};
use tch::Device;

fn dataset() -> ptycho_workbench::Result<Dataset> {
    let cfg = SimConfig {
        seed: 1,
        size_px: 64,
        object_size_px: 128,
        dose_photons: None,
        ..SimConfig::default()
    };
    let mut ds = simulate_on(&cfg, Device::Cpu)?;
    let grid: Vec<f64> = (0..9).map(|i| 32.0 + 8.0 * i as f64).collect();
    let flat: Vec<f64> = grid
        .iter()
        .flat_map(|&y| grid.iter().flat_map(move |&x| [x, y]))
        .collect();
    ds.positions_px = Array2::from_shape_vec((81, 2), flat).expect("81 positions");
    ds.start_positions_px = ds.positions_px.clone();
    ds.scan_index = Array1::zeros(81);
    ds.diffraction = tensor_to_f32(&forward_amplitudes(&ds, Device::Cpu)?)?
        .into_dimensionality::<Ix3>()
        .expect("3-D");
    ds.metadata.generator_config = None;
    ds.metadata
        .data_transformations
        .push("iterative_peer: 9×9 raster, spacing 8 px, noise-free amplitudes of the true object".into());
    ds.validate()?;
    Ok(ds)
}

struct Row {
    solver: String,
    epochs: usize,
    seconds: f64,
    error: f64,
    note: String,
}

fn ptychi(npz: &Path, epochs: &[usize], batch_size: usize, threads: usize) -> Result<Vec<Row>, String> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv-peers/bin/python");
    if !python.exists() {
        return Err(format!(
            "{} is missing (python3 -m venv .venv-peers && .venv-peers/bin/pip install ptychi==2.2.0)",
            python.display()
        ));
    }
    let list: Vec<String> = epochs.iter().map(|e| e.to_string()).collect();
    let out = Command::new(&python)
        .arg(root.join("benches/reference_ptychi.py"))
        .arg(npz)
        .arg("--threads")
        .arg(threads.to_string())
        .arg("--batch-size")
        .arg(batch_size.to_string())
        .arg("--epochs")
        .args(&list)
        .env("OMP_WAIT_POLICY", "passive")
        .output()
        .map_err(|e| format!("{}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "reference_ptychi.py failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("reference_ptychi.py output: {e}"))?;
    let runs = json["runs"].as_array().ok_or("no runs")?;
    Ok(runs
        .iter()
        .map(|r| Row {
            solver: "pty-chi 2.2 LSQML".into(),
            epochs: r["epochs"].as_u64().unwrap_or(0) as usize,
            seconds: r["seconds"].as_f64().unwrap_or(f64::NAN),
            error: r["object_error"].as_f64().unwrap_or(f64::NAN),
            note: format!("batch {}", r["batch_size"]),
        })
        .collect())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut threads = 2usize;
    let mut epochs = vec![20usize, 100];
    let mut ptychi_batches = vec![100usize, 10];
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().ok_or("--threads N")?.parse()?,
            "--epochs" => {
                epochs = args
                    .next()
                    .ok_or("--epochs A,B")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            "--ptychi-batch" => {
                ptychi_batches = args
                    .next()
                    .ok_or("--ptychi-batch A,B")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    tch::set_num_threads(threads as i32);
    let ds = dataset()?;
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("out/iterative_peer");
    std::fs::create_dir_all(&dir)?;
    let npz = dir.join("data.npz");
    write_npz(&ds, &npz)?;
    eprintln!("wrote {}", npz.display());
    let truth = ds.object.as_ref().expect("simulated");
    let mut rows = Vec::new();
    for &b in &ptychi_batches {
        match ptychi(&npz, &epochs, b, threads) {
            Ok(r) => rows.extend(r),
            Err(e) => eprintln!("pty-chi skipped: {e}"),
        }
    }
    // one untimed warm-up (libtorch's first calls allocate and plan)
    let warm = IterativeConfig {
        iterations: Some(1),
        device: "cpu".into(),
        ..IterativeConfig::epie()
    };
    reconstruct_iterative(&ds, &warm, &mut |_| {})?;
    let tuned = |c: IterativeConfig| IterativeConfig {
        max_weight: Some(0.003),
        ..c
    };
    for (name, base) in [
        ("ours: epie", IterativeConfig::epie()),
        ("ours: epie, w 0.003", tuned(IterativeConfig::epie())),
        ("ours: gradient lsq", IterativeConfig::gradient()),
        ("ours: lsq, w 0.003", tuned(IterativeConfig::gradient())),
    ] {
        for &e in &epochs {
            let cfg = IterativeConfig {
                iterations: Some(e),
                device: "cpu".into(),
                ..base.clone()
            };
            let t = std::time::Instant::now();
            let out = reconstruct_iterative(&ds, &cfg, &mut |_| {})?;
            let seconds = t.elapsed().as_secs_f64();
            let error = object_error(&out.reconstruction.object, truth, &ds.positions_px, ds.patch_size())?;
            rows.push(Row {
                solver: name.into(),
                epochs: e,
                seconds,
                error,
                note: format!(
                    "batch {}, data error {:.1e}",
                    cfg.batch_size,
                    out.history.last().map_or(f64::NAN, |r| r.data_error)
                ),
            });
        }
    }
    println!("81 positions of 64×64 on a 128×128 object, noise-free, true probe; {threads} threads");
    println!(
        "{:<22} {:>6} {:>8} {:>10}  notes",
        "solver", "epochs", "wall s", "error"
    );
    for r in &rows {
        println!(
            "{:<22} {:>6} {:>8.2} {:>10.2e}  {}",
            r.solver, r.epochs, r.seconds, r.error, r.note
        );
    }
    Ok(())
}
