//! `ptycho`: the command line over the library. Each subcommand is a few
//! lines over a library call; errors print their cause chain on one line and
//! exit non-zero.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ptycho_workbench::bench::{self, SimulateBench};
use ptycho_workbench::bundle::Bundle;
use ptycho_workbench::data::{self, Product, SplitAxis};
use ptycho_workbench::job::{JobSpec, train_job};
use ptycho_workbench::model::{ModelConfig, ModelKind};
use ptycho_workbench::recon::{ReconConfig, write_recon_npz};
use ptycho_workbench::simulate::{ObjectKind, ProbeKind, ScanKind, SimConfig, simulate_on};
use ptycho_workbench::train::{TrainConfig, terminal_observer};

#[derive(Parser)]
#[command(
    name = "ptycho",
    version,
    about = "Ptychography workbench: simulate, train, reconstruct, export, benchmark"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Simulate a dataset (object, probe, scan, far field, Poisson noise).
    Simulate(SimulateArgs),
    /// Inspect or split dataset files.
    #[command(subcommand)]
    Dataset(DatasetCommand),
    /// Export files for other tools.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Benchmarks against references measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Train a PINN or the supervised baseline and save a bundle.
    Train(TrainArgs),
    /// Inspect model bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Reconstruct a dataset's object with a trained bundle.
    Infer {
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// Output NPZ: object, coverage, _metadata.
        #[arg(long)]
        out: PathBuf,
        /// Central crop of each patch that is stitched.
        #[arg(long, default_value_t = 20)]
        crop_px: i64,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
}

#[derive(Args)]
struct TrainArgs {
    /// Training dataset (.npz or .cxi).
    #[arg(long)]
    train: PathBuf,
    /// Held-out dataset: its loss is reported in train_result.json.
    #[arg(long)]
    test: Option<PathBuf>,
    /// pinn or supervised.
    #[arg(long, default_value = "pinn")]
    model: String,
    #[arg(long, default_value_t = 1)]
    gridsize: usize,
    /// quick (a few CPU minutes) or paper (the published defaults).
    #[arg(long, default_value = "quick")]
    preset: String,
    #[arg(long)]
    epochs: Option<usize>,
    #[arg(long)]
    batch_size: Option<usize>,
    #[arg(long)]
    n_groups: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    seed: Option<u64>,
    /// Continue from OUT/checkpoint.safetensors.
    #[arg(long)]
    resume: bool,
    /// Output folder: wts.h5.zip, history.csv, train_result.json, config.json.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Subcommand)]
enum BundleCommand {
    /// Print a bundle's manifest and members (checksums verified).
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
struct SimulateArgs {
    /// Output dataset (.npz).
    #[arg(long)]
    out: PathBuf,
    /// TOML configuration; flags below override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// siemens-star, lines, blobs, or a PNG file.
    #[arg(long)]
    object: Option<String>,
    /// zone-plate, disk, or a dataset .npz whose probeGuess to use.
    #[arg(long)]
    probe: Option<String>,
    /// Patch size N (32, 64, 128).
    #[arg(long)]
    size_px: Option<usize>,
    /// Object side in pixels.
    #[arg(long)]
    object_size_px: Option<usize>,
    /// raster, spiral or random.
    #[arg(long)]
    scan: Option<String>,
    /// Scan spacing (raster, spiral) in pixels.
    #[arg(long)]
    spacing_px: Option<f64>,
    /// Number of scan positions.
    #[arg(long)]
    n_images: Option<usize>,
    /// Mean photons per pattern.
    #[arg(long, conflicts_with = "no_noise")]
    dose: Option<f64>,
    /// Noise-free amplitudes.
    #[arg(long)]
    no_noise: bool,
    #[arg(long)]
    seed: Option<u64>,
    /// Also store ground-truth patches (`Y`).
    #[arg(long)]
    store_patches: bool,
    /// cpu, cuda, cuda:N or auto.
    #[arg(long, default_value = "auto")]
    device: String,
}

#[derive(Subcommand)]
enum DatasetCommand {
    /// Print a dataset's summary.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Split a dataset in two along x or y.
    Split {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        train: PathBuf,
        #[arg(long)]
        test: PathBuf,
        #[arg(long, default_value = "y")]
        axis: String,
        /// Fraction of the coordinate range that goes to `--train`.
        #[arg(long, default_value_t = 0.5)]
        fraction: f64,
    },
}

#[derive(Subcommand)]
enum ExportCommand {
    /// Write a Ptychodus HDF5 product.
    Product {
        #[arg(long)]
        data: PathBuf,
        /// Reconstruction NPZ whose `object` to export (default: the dataset's object).
        #[arg(long)]
        recon: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "ptycho-workbench")]
        name: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Simulation throughput against a vectorised numpy reference.
    Simulate {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 4096)]
        n_images: usize,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Mean photons per pattern (repeat the flag for several doses).
        #[arg(long, default_values_t = vec![1e4, 1e6])]
        dose: Vec<f64>,
        /// Threads for libtorch and the noise sampler (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// PINN training steps per second against the same network in PyTorch.
    Train {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Threads for libtorch, here and in the reference (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Grouping of 100k positions against scipy's cKDTree.
    Group {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100_000)]
        n: usize,
    },
}

fn sim_config(a: &SimulateArgs) -> Result<SimConfig> {
    let mut cfg = match &a.config {
        Some(p) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            SimConfig::from_toml(&text).with_context(|| format!("in {}", p.display()))?
        }
        None => SimConfig::default(),
    };
    if let Some(o) = &a.object {
        cfg.object.kind = match o.as_str() {
            "siemens-star" => ObjectKind::SiemensStar,
            "lines" => ObjectKind::Lines,
            "blobs" => ObjectKind::Blobs,
            path if path.to_ascii_lowercase().ends_with(".png") => {
                cfg.object.path = Some(PathBuf::from(path));
                ObjectKind::Png
            }
            other => bail!("--object: `{other}` is not siemens-star, lines, blobs or a .png file"),
        };
    }
    if let Some(p) = &a.probe {
        cfg.probe.kind = match p.as_str() {
            "zone-plate" => ProbeKind::ZonePlate,
            "disk" => ProbeKind::Disk,
            path if path.to_ascii_lowercase().ends_with(".npz") => {
                cfg.probe.path = Some(PathBuf::from(path));
                ProbeKind::File
            }
            other => bail!("--probe: `{other}` is not zone-plate, disk or a dataset .npz"),
        };
    }
    if let Some(s) = &a.scan {
        cfg.scan.kind = match s.as_str() {
            "raster" => ScanKind::Raster,
            "spiral" => ScanKind::Spiral,
            "random" => ScanKind::Random,
            other => bail!("--scan: `{other}` is not raster, spiral or random"),
        };
    }
    cfg.size_px = a.size_px.unwrap_or(cfg.size_px);
    cfg.object_size_px = a.object_size_px.unwrap_or(cfg.object_size_px);
    cfg.scan.spacing_px = a.spacing_px.unwrap_or(cfg.scan.spacing_px);
    cfg.scan.n_images = a.n_images.or(cfg.scan.n_images);
    cfg.seed = a.seed.unwrap_or(cfg.seed);
    cfg.store_patches |= a.store_patches;
    if a.no_noise {
        cfg.dose_photons = None;
    } else if a.dose.is_some() {
        cfg.dose_photons = a.dose;
    }
    cfg.validate()?;
    Ok(cfg)
}

fn job_spec(a: TrainArgs) -> Result<JobSpec> {
    let mut train = match a.preset.as_str() {
        "quick" => TrainConfig::quick(),
        "paper" => TrainConfig::paper(),
        other => bail!("--preset: `{other}` is not quick or paper"),
    };
    let kind = match a.model.as_str() {
        "pinn" => ModelKind::Pinn,
        "supervised" => ModelKind::Supervised,
        other => bail!("--model: `{other}` is not pinn or supervised"),
    };
    train.epochs = a.epochs.unwrap_or(train.epochs);
    train.batch_size = a.batch_size.unwrap_or(train.batch_size);
    train.grouping.n_groups = a.n_groups.or(train.grouping.n_groups);
    if let Some(s) = a.seed {
        train.seed = s;
        train.grouping.seed = s;
    }
    let n = data::read_dataset(&a.train)?.patch_size();
    let model = ModelConfig {
        kind,
        gridsize: a.gridsize,
        n,
        ..ModelConfig::default()
    };
    model.validate()?;
    train.validate()?;
    Ok(JobSpec {
        train_data: a.train,
        test_data: a.test,
        model,
        train,
        device: a.device,
        out_dir: a.out,
        resume: a.resume,
    })
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Train { json, steps, threads }) => {
            let mut b = bench::TrainBench {
                steps,
                ..bench::TrainBench::default()
            };
            if let Some(t) = threads {
                b.threads = t;
            }
            let rows = bench::train_bench(&b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", bench::format_table(&rows));
            }
        }
        Command::Bench(BenchCommand::Group { json, n }) => {
            let rows = bench::group_bench(n, 5, &bench::default_python())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", bench::format_table(&rows));
            }
        }
        Command::Infer {
            bundle,
            data: input,
            out,
            crop_px,
            device,
        } => {
            let device = ptycho_workbench::array::parse_device(&device)?;
            let b = Bundle::load(&bundle, device)?;
            let ds = data::read_dataset(&input)?;
            let cfg = ReconConfig {
                crop_px,
                ..ReconConfig::default()
            };
            let recon = b.reconstruct(&ds, &cfg)?;
            write_recon_npz(&recon, &out)?;
            eprintln!(
                "wrote {} ({} groups, inference {:.2} s, stitching {:.2} s)",
                out.display(),
                recon.metadata.n_groups,
                recon.metadata.seconds_inference,
                recon.metadata.seconds_stitch
            );
        }
        Command::Train(a) => {
            let spec = job_spec(a)?;
            let result = train_job(&spec, terminal_observer().as_mut())?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            if let Some(e) = result.error {
                bail!("{e}");
            }
            if let Some(e) = result.bundle_error {
                bail!("training finished but the bundle was not saved: {e}");
            }
        }
        Command::Bundle(BundleCommand::Inspect { file, json }) => {
            let b = Bundle::load(&file, tch::Device::Cpu)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&b.manifest)?);
            } else {
                let m = &b.manifest;
                let c = b.config();
                println!("bundle           {}", file.display());
                println!(
                    "format           {} v{} ({}, crate {})",
                    m.format, m.format_version, m.backend, m.crate_version
                );
                println!("created          {}", m.created);
                println!(
                    "model            {:?}, N = {}, gridsize {}, filters ×{}",
                    c.kind, c.n, c.gridsize, c.n_filters_scale
                );
                println!("intensity scale  {:.6e}", m.intensity_scale);
                println!("input scale      {:.6e}", m.input_scale);
                println!("checksums        verified ({} members)", m.files.len());
                for (name, size) in &b.sizes {
                    println!("  {name:<42} {size:>12} bytes");
                }
            }
        }
        Command::Simulate(a) => {
            let cfg = sim_config(&a)?;
            let device = ptycho_workbench::array::parse_device(&a.device)?;
            let ds = simulate_on(&cfg, device)?;
            data::write_npz(&ds, &a.out)?;
            eprintln!("wrote {}", a.out.display());
            print!("{}", ds.summary());
        }
        Command::Dataset(DatasetCommand::Inspect { file, json }) => {
            let ds = data::read_dataset(&file)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&ds.summary())?);
            } else {
                print!("{}", ds.summary());
            }
        }
        Command::Dataset(DatasetCommand::Split {
            input,
            train,
            test,
            axis,
            fraction,
        }) => {
            let ds = data::read_dataset(&input)?;
            let (a, b) = ds.split(axis.parse::<SplitAxis>()?, fraction)?;
            data::write_npz(&a, &train)?;
            data::write_npz(&b, &test)?;
            eprintln!(
                "wrote {} ({} patterns) and {} ({} patterns)",
                train.display(),
                a.n_images(),
                test.display(),
                b.n_images()
            );
        }
        Command::Export(ExportCommand::Product {
            data: input,
            recon,
            out,
            name,
        }) => {
            let ds = data::read_dataset(&input)?;
            let object = recon.as_deref().map(data::product::read_recon_object).transpose()?;
            let product = Product::from_dataset(&ds, object.as_ref(), &name)?;
            data::write_product(&product, &out)?;
            eprintln!("wrote {}", out.display());
        }
        Command::Bench(BenchCommand::Simulate {
            json,
            n_images,
            repeats,
            threads,
            dose,
        }) => {
            let mut b = SimulateBench {
                n_images,
                repeats,
                doses_photons: dose,
                ..SimulateBench::default()
            };
            if let Some(t) = threads {
                b.threads = t;
            }
            let rows = bench::simulate_bench(&b)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", bench::format_table(&rows));
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        eprintln!("error: internal error (please report): {info}");
    }));
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
