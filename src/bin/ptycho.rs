//! `ptycho`: the command line over the library. Each subcommand is a few
//! lines over a library call; errors print their cause chain on one line and
//! exit non-zero.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use ptycho_workbench::bench::{self, SimulateBench};
use ptycho_workbench::data::{self, Product, SplitAxis};
use ptycho_workbench::simulate::{ObjectKind, ProbeKind, ScanKind, SimConfig, simulate_on};

#[derive(Parser)]
#[command(
    name = "ptycho",
    version,
    about = "Ptychography workbench: simulate, inspect, export, benchmark"
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

fn run(cli: Cli) -> Result<()> {
    match cli.command {
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
