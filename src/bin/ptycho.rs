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
use ptycho_workbench::metrics::PhaseScale;
use ptycho_workbench::model::{ModelConfig, ModelKind};
use ptycho_workbench::recon::{ReconConfig, StitchAt, write_recon_npz};
use ptycho_workbench::simulate::{ObjectKind, ProbeKind, ScanKind, SimConfig, simulate_on};
use ptycho_workbench::train::{LrSchedule, TrainConfig, terminal_observer};

#[path = "ptycho/study.rs"]
mod study;

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
    /// Convert datasets from other tools into ours.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Benchmarks against references measured in the same run.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Train a PINN or the supervised baseline and save a bundle.
    Train(Box<TrainArgs>),
    /// Inspect model bundles.
    #[command(subcommand)]
    Bundle(BundleCommand),
    /// Reconstruct a dataset's object with an iterative solver (no training).
    /// The step, max_weight and iteration budget not given are chosen from
    /// the data (how often the scan measures each pixel; docs/quality.md);
    /// the output records them.
    Reconstruct {
        #[arg(long)]
        data: PathBuf,
        /// epie or gradient (default: the config file's, else epie).
        #[arg(long)]
        algorithm: Option<String>,
        /// Passes over all positions (default: chosen from the data).
        #[arg(long)]
        iterations: Option<usize>,
        /// The object step: ePIE's α, or the gradient solver's step scale
        /// (default: chosen from the data).
        #[arg(long)]
        step: Option<f64>,
        /// Weight of the brightest pixel in the update's normaliser, (0, 1]
        /// (default: chosen from the data).
        #[arg(long)]
        max_weight: Option<f64>,
        /// Start from this reconstruction NPZ (`object`, and `probe` when it
        /// has one) instead of a flat object: e.g. `ptycho infer`'s output.
        #[arg(long)]
        init: Option<PathBuf>,
        /// Also refine the probe.
        #[arg(long)]
        refine_probe: bool,
        /// Incoherent probe modes K (default: the dataset's); modes beyond
        /// the dataset's are added with 5 % of the power each. All are
        /// written to the output (`probe_modes`).
        #[arg(long)]
        probe_modes: Option<usize>,
        /// Correct the scan positions (a gradient step per position and
        /// epoch); the corrected ones are written as `xcoords`/`ycoords`.
        #[arg(long)]
        refine_positions: bool,
        /// First iteration that moves positions (default 5).
        #[arg(long)]
        positions_start: Option<usize>,
        /// Also search each position's best whole-pixel offset within this
        /// many pixels (coarse to fine, every 5 iterations), for errors as
        /// large as the scan's step; implies --refine-positions, and position
        /// moves start at iteration 20 unless --positions-start says otherwise
        /// (a search before the object has formed can make the solver diverge)
        #[arg(long)]
        search_radius_px: Option<usize>,
        /// Counts at or above which a measurement is not fitted: a number,
        /// `auto` (default: only when the largest count sits at a register's
        /// ceiling) or `off` (also keeps dead pixels).
        #[arg(long)]
        saturation: Option<String>,
        /// A TOML file with every solver setting (IterativeConfig); flags override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// auto, cpu, cuda or cuda:N (default: the config file's, else auto).
        #[arg(long)]
        device: Option<String>,
        /// Output NPZ: object, coverage, _metadata (as `ptycho infer`).
        #[arg(long)]
        out: PathBuf,
    },
    /// The quickstart demo: simulate, train, reconstruct, compare, figures, report.md.
    Demo {
        #[arg(long, default_value = "out/demo")]
        out: PathBuf,
        /// Training epochs (default: the quick preset's).
        #[arg(long)]
        epochs: Option<usize>,
        /// Training groups per epoch (default: the quick preset's).
        #[arg(long)]
        n_groups: Option<usize>,
        /// Simulated patterns (default 2048).
        #[arg(long)]
        n_images: Option<usize>,
        /// ePIE iterations (default: chosen from the data).
        #[arg(long)]
        iterations: Option<usize>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Raw metrics of two real images (.npy), no alignment.
    Metrics {
        #[arg(long)]
        truth: PathBuf,
        #[arg(long)]
        pred: PathBuf,
        /// Data range for PSNR and SSIM (e.g. 1 for images in [0, 1]).
        #[arg(long)]
        data_range: f64,
        #[arg(long)]
        json: bool,
    },
    /// Compare reconstructions with a dataset's true object, or with a
    /// reference reconstruction (--reference): metrics.csv, metrics.json,
    /// frc.csv and comparison.png in OUT.
    Compare {
        /// Dataset with the ground-truth object (objectGuess) and positions.
        #[arg(long, required_unless_present = "reference", conflicts_with = "reference")]
        truth: Option<PathBuf>,
        /// A reference reconstruction NPZ (`object`, and `coverage` when
        /// present; e.g. another tool's) in place of --truth: compared where
        /// every file's coverage is at least --coverage-fraction of its
        /// maximum, registered unless both are our networks' inferences.
        #[arg(long)]
        reference: Option<PathBuf>,
        /// With --reference: the share of each file's maximum coverage a
        /// pixel needs to be compared.
        #[arg(long, default_value_t = 0.5, requires = "reference")]
        coverage_fraction: f64,
        /// Reconstruction NPZ (key `object`); repeat for several.
        #[arg(long = "recon", required = true)]
        recons: Vec<PathBuf>,
        /// A label per reconstruction (default: file stem).
        #[arg(long = "label")]
        labels: Vec<String>,
        /// Pixels added around the scanned region (positions ± 10 px).
        #[arg(long, default_value_t = 0.0)]
        margin_px: f64,
        /// Phase SSIM/PSNR range: `unit` (phases mapped by (φ + π)/2π, R = 1:
        /// PtychoPINN), `span` (mapped, R = the truth's phase span / 2π) or
        /// a number of radians (unmapped).
        #[arg(long, default_value = "unit")]
        phase_range: String,
        /// Which reconstructions are registered on the truth (sub-pixel
        /// cross-correlation): `auto` (all but our networks' inferences,
        /// which are stitched on the dataset's grid), `all` or `none`.
        #[arg(long, default_value = "auto")]
        register: String,
        /// Which pixels are scored: `region` (every pixel of the scanned
        /// region) or `illuminated` (only those inside the probe's support
        /// at some position: for sparse or overlap-free scans, whose gaps no
        /// measurement saw).
        #[arg(long, default_value = "region")]
        score_pixels: String,
        #[arg(long)]
        out: PathBuf,
        /// Print the metrics as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Half-set FRC of two reconstructions of interleaved halves of one scan
    /// (`ptycho dataset halves`): resolution at the half-bit and 1/7
    /// thresholds, without ground truth (docs/metrics.md).
    Frc(FrcArgs),
    /// Dose × overlap studies: run (resumable, parallel), status, report, Slurm arrays.
    #[command(subcommand)]
    Study(study::StudyCommand),
    /// Reconstruct a dataset's object with a trained bundle.
    Infer {
        #[arg(long)]
        bundle: PathBuf,
        #[arg(long)]
        data: PathBuf,
        /// Output NPZ: object, coverage, _metadata.
        #[arg(long)]
        out: PathBuf,
        /// Central crop of each patch that is stitched: the smallest; it
        /// grows where smaller crops would leave lit pixels of the scan
        /// uncovered (sparse scans), unless --fixed-crop.
        #[arg(long, default_value_t = 20)]
        crop_px: i64,
        /// Stitch exactly --crop-px, even where the crops leave gaps.
        #[arg(long)]
        fixed_crop: bool,
        /// Gridsize-2 PINNs: stitch the merged object at each `members`'s
        /// position (every position covered) or once per group at its
        /// `centroids` (PtychoPINN; leaves the scan's corners uncovered).
        #[arg(long, default_value = "members")]
        stitch_at: String,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
        /// fp32, fp32-strict (TF32 off in cuDNN), fp16 (CUDA autocast) or
        /// bf16 (autocast, CUDA or CPU) for the network's forward passes.
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// Then refine the stitched object with ePIE on the same device: a
        /// number of iterations, or `auto` (settings and budget chosen from
        /// the data, as `ptycho reconstruct`).
        #[arg(long)]
        refine: Option<String>,
        /// First fine-tune a copy of the PINN on this dataset for STEPS
        /// steps with the physics loss (test-time training; no ground truth).
        #[arg(long)]
        adapt: Option<usize>,
        /// Average the crops as they are, without first aligning each
        /// group's constant phase with its neighbours' (phase-consistent
        /// stitching, the default).
        #[arg(long)]
        no_phase_sync: bool,
        /// Hold out 10 % of the patterns, build the network's object, the
        /// solver's (from a flat start) and the solver's from the network's
        /// object from the rest, and keep the one that predicts the held-out
        /// patterns best, rebuilt from all of them (`--refine` names the
        /// solver, `auto` when not given). Up to four times `--refine`'s cost.
        #[arg(long)]
        select: bool,
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
    /// pinn or supervised (default pinn; with --init-bundle, the bundle's).
    #[arg(long)]
    model: Option<String>,
    /// 1 or 2 (default 1; with --init-bundle, the bundle's).
    #[arg(long)]
    gridsize: Option<usize>,
    /// Fine-tune this bundle's network instead of training a fresh one (its
    /// architecture is kept; the physics loss needs no ground truth, so a
    /// PINN can adapt to new data, even the scan it will reconstruct).
    #[arg(long)]
    init_bundle: Option<PathBuf>,
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
    /// Learning rate (default: the preset's).
    #[arg(long)]
    learning_rate: Option<f64>,
    /// Weight of the phase-gauge term of the PINN loss (default: the preset's).
    #[arg(long)]
    phase_gauge: Option<f64>,
    /// plateau (reduce on plateau) or cosine (default: the preset's).
    #[arg(long)]
    lr_schedule: Option<String>,
    /// Linear warm-up steps at the start (default: the preset's, 50).
    #[arg(long)]
    warmup_steps: Option<usize>,
    /// Multiplies every filter count of the network (default: the preset's).
    #[arg(long)]
    n_filters_scale: Option<usize>,
    /// Gridsize 2: the largest offset of a group member from its centroid
    /// that the overlap canvas holds, px (default: the model's, 16); sparse
    /// scans (a measured scan's interleaved half) need more.
    #[arg(long)]
    max_offset_px: Option<f64>,
    /// Phase head: pi-tanh (PtychoPINN, bounded) or linear (unbounded,
    /// wrapped by e^{iφ}; default: the model's).
    #[arg(long)]
    phase_activation: Option<String>,
    /// Add a token-mixing MLP across the encoder's 8×8 bottleneck (a global
    /// receptive field).
    #[arg(long)]
    bottleneck_mixer: bool,
    /// Gridsize 2: apply the overlap constraint at the group `centroid`
    /// (PtychoPINN) or in each member's frame (`members`; default: the model's).
    #[arg(long)]
    overlap_frame: Option<String>,
    /// Activations of the decoders' border branch: `centre` (the centre's;
    /// ours) or `swish` (PtychoPINN's; needed to export to PtychoPINN).
    #[arg(long)]
    border_activation: Option<String>,
    /// What the overlap constraint divides by: `coverage` (ours) or
    /// `centre-square` (PtychoPINN's: central squares' coverage + 0.001).
    #[arg(long)]
    reassembly_norm: Option<String>,
    /// fp32 (libtorch's defaults: TF32 convolutions on GPUs that have them), fp32-strict (TF32 off), fp16 (CUDA autocast with a dynamic loss scale) or bf16 (autocast on CUDA or the CPU; default: fp32).
    #[arg(long)]
    precision: Option<String>,
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
    /// Convert a PtychoPINN (TensorFlow) wts.h5.zip into one of our bundles.
    /// Only its Keras graph (JSON), weights (HDF5) and intensity scale are
    /// read: nothing pickled is ever opened.
    ImportPtychopinn {
        /// PtychoPINN's wts.h5.zip.
        file: PathBuf,
        /// A dataset (.npz) whose probeGuess the model's physics uses
        /// (PtychoPINN keeps its probe only in a pickle).
        #[arg(long)]
        probe: PathBuf,
        /// PtychoPINN's probe_scale the model was trained with.
        #[arg(long, default_value_t = ptycho_workbench::bundle::ptychopinn::DEFAULT_PROBE_SCALE)]
        probe_scale: f64,
        /// Our bundle to write: a .zip path, or a folder for folder/wts.h5.zip.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write one of our bundles as a PtychoPINN wts.h5.zip with PtychoPINN's
    /// own saver (the optional environment of `make ptychopinn-env`), then
    /// check that PtychoPINN's loader predicts what ours does and that the
    /// weights read back are ours bit for bit.
    ExportPtychopinn {
        file: PathBuf,
        /// The PtychoPINN bundle to write (PtychoPINN's loader wants it
        /// named wts.h5.zip).
        #[arg(long)]
        out: PathBuf,
        /// Python with TensorFlow and PtychoPINN's dependencies
        /// [default: $PTYCHO_PTYCHOPINN_PYTHON, else .venv-ptychopinn/bin/python].
        #[arg(long)]
        python: Option<PathBuf>,
        /// PtychoPINN's source tree, put on PYTHONPATH [default: $PTYCHOPINN_SRC].
        #[arg(long)]
        ptychopinn_src: Option<PathBuf>,
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
    /// siemens-star, lines, multiscale-lines, blobs, or a PNG file.
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
    /// Print a dataset's summary and what to check first in measured data:
    /// photons per pattern, saturated and dead pixels, probe modes, the mean
    /// pattern against the probe's far field (data::inspect).
    Inspect(InspectArgs),
    /// Split a dataset into its even- and odd-indexed patterns (scan
    /// order): two interleaved halves of the same field, for `ptycho frc`.
    Halves {
        /// The dataset to halve.
        input: PathBuf,
        /// The even-indexed half (.npz).
        #[arg(long)]
        out_a: PathBuf,
        /// The odd-indexed half (.npz).
        #[arg(long)]
        out_b: PathBuf,
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

#[derive(Args)]
struct InspectArgs {
    file: PathBuf,
    #[arg(long)]
    json: bool,
    /// Counts at or above this are saturated (default: the solvers'
    /// automatic rule, data::defects).
    #[arg(long, value_name = "COUNTS")]
    saturation: Option<f64>,
    /// Also write the mean pattern beside the probe's far field (PNG or SVG).
    #[arg(long, value_name = "F.png")]
    figure: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ImportCommand {
    /// A scan in tike's layout (raw NPZ: data, scan, [scan_truth], probe;
    /// scripts/tike_to_raw.py makes one from tike's test data) → dataset NPZ.
    Tike {
        /// Raw tike NPZ.
        raw: PathBuf,
        /// Output dataset (.npz).
        #[arg(long)]
        out: PathBuf,
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
        /// Timed runs per round, on each side.
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Rounds of (our runs, the reference's); the ratio is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
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
        /// Timed steps per round, on each side.
        #[arg(long, default_value_t = 10)]
        steps: usize,
        /// Rounds of (our steps, the reference's); the ratio is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        #[arg(long, default_value_t = 16)]
        batch_size: usize,
        /// Threads for libtorch, here and in the reference (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// auto, cpu, cuda or cuda:N (the reference runs on the same device).
        #[arg(long, default_value = "auto")]
        device: String,
        /// fp32, fp32-strict (TF32 off in cuDNN), fp16 (CUDA autocast) or bf16 (autocast, CUDA or CPU).
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// Only this gridsize (1 or 2; default: both).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
        gridsize: Option<u8>,
    },
    /// Inference positions per second against the same network in PyTorch.
    Infer {
        #[arg(long)]
        json: bool,
        /// Groups per forward pass.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Timed batches per round, on each side.
        #[arg(long, default_value_t = 5)]
        batches: usize,
        /// Rounds of (our batches, the reference's); the ratio is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Threads for libtorch, here and in the reference (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Patch size N.
        #[arg(long, default_value_t = 64)]
        n: usize,
        /// auto, cpu, cuda or cuda:N (the reference runs on the same device).
        #[arg(long, default_value = "auto")]
        device: String,
        /// fp32, fp32-strict (TF32 off in cuDNN), fp16 (CUDA autocast) or bf16 (autocast, CUDA or CPU).
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// Only this gridsize (1 or 2; default: both).
        #[arg(long, value_parser = clap::value_parser!(u8).range(1..=2))]
        gridsize: Option<u8>,
    },
    /// Stitching of central crops against a numpy reference.
    Stitch {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 4096)]
        patches: usize,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Rounds of (our runs, the reference's); the ratio is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Threads for libtorch (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// Our ePIE against pty-chi 2.2 LSQML on a measured scan's two
    /// interleaved halves: epochs per second per half and both tools'
    /// half-set FRC (needs `make measured-data` and pty-chi in an optional
    /// environment, `.venv-peers` or PTYCHO_PEER_PYTHON).
    Measured {
        #[arg(long)]
        json: bool,
        /// A measured scan in our NPZ format.
        #[arg(long, default_value = "data/measured/siemens_star.npz")]
        data: PathBuf,
        #[arg(long, default_value_t = 50)]
        epochs: usize,
        /// Incoherent probe modes, refined by both tools.
        #[arg(long, default_value_t = 3)]
        probe_modes: usize,
        /// Rounds of (ours on both halves, pty-chi on both halves).
        #[arg(long, default_value_t = 1)]
        rounds: usize,
        /// Threads for libtorch and pty-chi's (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Python of the environment with pty-chi (default: .venv-peers).
        #[arg(long)]
        peer_python: Option<PathBuf>,
    },
    /// Iterative solver (batched ePIE) epochs per second against the same
    /// algorithm in numpy.
    Iterative {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 10)]
        iterations: usize,
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Rounds of (our runs, the reference's); the ratio is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Threads for libtorch and numpy's BLAS/FFT (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// auto, cpu, cuda or cuda:N.
        #[arg(long, default_value = "auto")]
        device: String,
    },
    /// A few training steps on the CPU and on DEVICE from the same seed: the
    /// losses, and how far the first loss and gradient differ (a GPU machine's
    /// first check; on CUDA with cuDNN off, which must agree, then with cuDNN
    /// and TF32 off, and with libtorch's defaults).
    SameSeed {
        #[arg(long, default_value = "cuda")]
        device: String,
        #[arg(long, default_value_t = 2)]
        gridsize: usize,
        #[arg(long, default_value_t = 5)]
        steps: usize,
        /// Also write the result as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// SSIM + FRC of two 512² images against scikit-image and numpy.
    Metrics {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 5)]
        repeats: usize,
        /// Rounds of (our runs, the reference's); the ratio is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
    },
    /// Every benchmark in one table, with the device's measured peak FLOP/s;
    /// the results are also written to benches/results/ as JSON.
    All {
        #[arg(long)]
        json: bool,
        /// auto, cpu, cuda or cuda:N (simulation and grouping run on CPU runs only).
        #[arg(long, default_value = "auto")]
        device: String,
        #[arg(long)]
        threads: Option<usize>,
        /// Training batch sizes (repeat the flag), default 16.
        #[arg(long, default_values_t = vec![16])]
        train_batch: Vec<usize>,
        /// fp32, fp32-strict (TF32 off in cuDNN), fp16 (CUDA autocast) or bf16 (autocast, CUDA or CPU) for the network rows.
        #[arg(long, default_value = "fp32")]
        precision: String,
        /// Fewer repeats and smaller sizes.
        #[arg(long)]
        quick: bool,
        /// Where the JSON goes.
        #[arg(long, default_value = "benches/results")]
        results: PathBuf,
    },
    /// The quality suite: every arm (networks, tuned solvers, the hybrid,
    /// a constant) on cases across objects, doses and overlap, scored
    /// against the truth as `ptycho compare` scores (docs/quality.md).
    /// Cases keep their data and networks under --work-dir, so a rerun
    /// reuses what matches.
    Quality {
        /// A suite TOML (default: the built-in default suite, about an hour
        /// and a half on a 2-core CPU from scratch).
        #[arg(long, conflicts_with = "quick")]
        suite: Option<PathBuf>,
        /// The built-in quick suite (three cases, about 15 minutes).
        #[arg(long)]
        quick: bool,
        /// Only these cases (comma-separated names).
        #[arg(long, value_delimiter = ',')]
        cases: Vec<String>,
        /// Only these arms (comma-separated), instead of the suite's.
        #[arg(long, value_delimiter = ',')]
        arms: Vec<String>,
        /// Where the cases' data, networks and reconstructions live.
        #[arg(long, default_value = "out/quality")]
        work_dir: PathBuf,
        /// Resimulate and retrain even where a cached result matches.
        #[arg(long)]
        force: bool,
        /// auto, cpu, cuda or cuda:N (default: the suite's).
        #[arg(long)]
        device: Option<String>,
        /// Where the CSV and JSON go.
        #[arg(long, default_value = "benches/results")]
        results: PathBuf,
        /// Print the rows as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Grouping of 100k positions against scipy's cKDTree.
    Group {
        #[arg(long)]
        json: bool,
        #[arg(long, default_value_t = 100_000)]
        n: usize,
        /// Rounds of (our runs, the reference's); the ratio is their median.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
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
            "multiscale-lines" => ObjectKind::MultiscaleLines,
            "blobs" => ObjectKind::Blobs,
            path if path.to_ascii_lowercase().ends_with(".png") => {
                cfg.object.path = Some(PathBuf::from(path));
                ObjectKind::Png
            }
            other => bail!("--object: `{other}` is not siemens-star, lines, multiscale-lines, blobs or a .png file"),
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
    let kind = match a.model.as_deref() {
        None | Some("pinn") => ModelKind::Pinn,
        Some("supervised") => ModelKind::Supervised,
        Some(other) => bail!("--model: `{other}` is not pinn or supervised"),
    };
    train.epochs = a.epochs.unwrap_or(train.epochs);
    train.batch_size = a.batch_size.unwrap_or(train.batch_size);
    train.grouping.n_groups = a.n_groups.or(train.grouping.n_groups);
    train.learning_rate = a.learning_rate.unwrap_or(train.learning_rate);
    train.loss.phase_gauge = a.phase_gauge.unwrap_or(train.loss.phase_gauge);
    if let Some(s) = &a.lr_schedule {
        train.lr_schedule = match s.as_str() {
            "plateau" => LrSchedule::Plateau,
            "cosine" => LrSchedule::Cosine,
            other => bail!("--lr-schedule: `{other}` is not plateau or cosine"),
        };
    }
    train.warmup_steps = a.warmup_steps.unwrap_or(train.warmup_steps);
    if let Some(p) = &a.precision {
        train.precision = p.parse()?;
    }
    if let Some(s) = a.seed {
        train.seed = s;
        train.grouping.seed = s;
    }
    let n = data::read_dataset(&a.train)?.patch_size();
    let mut model = match &a.init_bundle {
        Some(b) => {
            let bundle = ptycho_workbench::bundle::Bundle::load(b, tch::Device::Cpu)?;
            let m = bundle.config().clone();
            for (flag, given, has) in [
                ("--gridsize", a.gridsize.map(|g| g.to_string()), m.gridsize.to_string()),
                ("--model", a.model.clone(), format!("{:?}", m.kind).to_lowercase()),
                (
                    "--n-filters-scale",
                    a.n_filters_scale.map(|v| v.to_string()),
                    m.n_filters_scale.to_string(),
                ),
            ] {
                if let Some(g) = given
                    && g != has
                {
                    bail!(
                        "{flag} {g}: the bundle {} holds {has} (fine-tuning keeps its network)",
                        b.display()
                    );
                }
            }
            if a.phase_activation.is_some() {
                bail!("--phase-activation: fine-tuning keeps the bundle's network");
            }
            if m.n != n {
                bail!("the bundle's network is for N = {}, the data has N = {n}", m.n);
            }
            m
        }
        None => ModelConfig {
            kind,
            gridsize: a.gridsize.unwrap_or(1),
            n,
            ..ModelConfig::default()
        },
    };
    if a.init_bundle.is_none() {
        model.n_filters_scale = a.n_filters_scale.unwrap_or(model.n_filters_scale);
    }
    use ptycho_workbench::model::{BorderActivation, OverlapFrame, PhaseActivation, ReassemblyNorm};
    // a network setting a fine-tuned bundle already fixes
    let fixed = |flag: &str| -> Result<()> {
        if a.init_bundle.is_some() {
            bail!("{flag}: fine-tuning keeps the bundle's network");
        }
        Ok(())
    };
    if let Some(m) = a.max_offset_px {
        fixed("--max-offset-px")?;
        model.max_offset_px = m;
    }
    if a.bottleneck_mixer {
        fixed("--bottleneck-mixer")?;
        model.bottleneck_mixer = true;
    }
    if let Some(f) = &a.overlap_frame {
        fixed("--overlap-frame")?;
        model.overlap_frame = choice(
            "--overlap-frame",
            f,
            &[("centroid", OverlapFrame::Centroid), ("members", OverlapFrame::Members)],
        )?;
    }
    if let Some(b) = &a.border_activation {
        fixed("--border-activation")?;
        model.border_activation = choice(
            "--border-activation",
            b,
            &[("centre", BorderActivation::Centre), ("swish", BorderActivation::Swish)],
        )?;
    }
    if let Some(r) = &a.reassembly_norm {
        fixed("--reassembly-norm")?;
        model.reassembly_norm = choice(
            "--reassembly-norm",
            r,
            &[
                ("coverage", ReassemblyNorm::Coverage),
                ("centre-square", ReassemblyNorm::CentreSquare),
            ],
        )?;
    }
    if let Some(p) = &a.phase_activation {
        model.phase_activation = choice(
            "--phase-activation",
            p,
            &[
                ("pi-tanh", PhaseActivation::PiTanh),
                ("linear", PhaseActivation::Linear),
            ],
        )?;
    }
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
        init_bundle: a.init_bundle,
    })
}

/// The value `table` names `value`, or an error naming `flag` and the
/// choices (`--flag: `x` is not a or b`).
fn choice<T: Copy>(flag: &str, value: &str, table: &[(&str, T)]) -> Result<T> {
    match table.iter().find(|(name, _)| *name == value) {
        Some((_, v)) => Ok(*v),
        None => {
            let names: Vec<&str> = table.iter().map(|(name, _)| *name).collect();
            bail!("{flag}: `{value}` is not {}", names.join(" or "))
        }
    }
}

/// A real 2-D `.npy` image as f64.
fn read_image(path: &std::path::Path) -> Result<ndarray::Array2<f64>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let a = data::npy::decode(&bytes, path, "image")?;
    let values = a.data.to_f64().with_context(|| {
        format!(
            "{}: dtype {} is not a real number type",
            path.display(),
            a.data.dtype_name()
        )
    })?;
    if a.shape.len() != 2 {
        bail!("{}: expected a 2-D image, got shape {:?}", path.display(), a.shape);
    }
    Ok(ndarray::Array2::from_shape_vec((a.shape[0], a.shape[1]), values)?)
}

/// The gridsizes a bench runs: the one asked for, or both.
fn gridsizes(only: Option<u8>) -> Vec<usize> {
    only.map_or_else(|| vec![1, 2], |g| vec![g as usize])
}

#[derive(Args)]
struct FrcArgs {
    /// Reconstruction NPZ of one half (`object`, `coverage`).
    a: PathBuf,
    /// Reconstruction NPZ of the other half, on the same grid.
    b: PathBuf,
    /// The object's pixel size, m: adds nm and nm⁻¹.
    #[arg(long)]
    pixel_size_m: Option<f64>,
    /// A pixel is compared where each half's coverage is at least this
    /// share of its maximum.
    #[arg(long, default_value_t = 0.5)]
    coverage_fraction: f64,
    /// Width of the cosine edge taper, px (default: an eighth of the
    /// compared region's smaller side).
    #[arg(long)]
    taper_px: Option<f64>,
    /// Leave B where it is (no sub-pixel registration on A).
    #[arg(long)]
    no_register: bool,
    /// The largest shift (px, either axis) the registration may find: a
    /// farther peak is an error (the halves hardly correlate).
    #[arg(long, default_value_t = 8.0)]
    max_shift_px: f64,
    /// Write frc_halves.csv, frc_halves.json and frc_halves.png here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// `ptycho frc`.
fn frc_halves(a: FrcArgs) -> Result<()> {
    use ptycho_workbench::metrics::HalfSetConfig;
    use ptycho_workbench::resolution::{FrcHalvesRecord, frc_halves_files, write_frc_halves};
    let cfg = HalfSetConfig {
        coverage_fraction: a.coverage_fraction,
        taper_px: a.taper_px,
        upsample_factor: if a.no_register { None } else { Some(50) },
        max_shift_px: Some(a.max_shift_px),
        pixel_size_m: a.pixel_size_m,
        ..HalfSetConfig::default()
    };
    let r = frc_halves_files(&a.a, &a.b, &cfg)?;
    if a.json {
        let record = FrcHalvesRecord::new(&r, Some(&a.a), Some(&a.b));
        println!("{}", serde_json::to_string_pretty(&record)?);
    } else {
        println!("{}\n{}", r.half_bit_resolution, r.one_seventh);
        let al = &r.alignment;
        let shift = al
            .shift_px
            .map_or("none".into(), |s| format!("({:.2}, {:.2}) px", s[0], s[1]));
        eprintln!(
            "B shifted by {shift}; {} px compared in {}, taper {:.1} px, FFT {} px",
            al.compared_pixels, al.region, al.taper_px, al.fft_size_px
        );
    }
    if let Some(dir) = &a.out {
        write_frc_halves(dir, &r, [Some(&a.a), Some(&a.b)])?;
        eprintln!(
            "wrote {} (frc_halves.csv, frc_halves.json, frc_halves.png)",
            dir.display()
        );
    }
    Ok(())
}

fn print_bench(rows: &[bench::BenchRow], json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(rows)?);
    } else {
        print!("{}", bench::format_table(rows));
    }
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Bench(BenchCommand::Train {
            json,
            steps,
            rounds,
            batch_size,
            threads,
            device,
            precision,
            gridsize,
        }) => {
            let mut b = bench::TrainBench {
                gridsizes: gridsizes(gridsize),
                steps,
                rounds,
                batch_size,
                device: ptycho_workbench::array::parse_device(&device)?,
                precision: precision.parse()?,
                ..bench::TrainBench::default()
            };
            if let Some(t) = threads {
                b.threads = t;
            }
            let rows = bench::train_bench(&b)?;
            print_bench(&rows, json)?;
        }
        Command::Bench(BenchCommand::Quality {
            suite,
            quick,
            cases,
            arms,
            work_dir,
            force,
            device,
            results,
            json,
        }) => {
            use ptycho_workbench::quality;
            let started = std::time::Instant::now();
            let mut s = match (&suite, quick) {
                (Some(p), _) => quality::QualitySuite::from_toml(
                    &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
                )
                .with_context(|| format!("in {}", p.display()))?,
                (None, true) => quality::QualitySuite::quick_suite()?,
                (None, false) => quality::QualitySuite::default_suite()?,
            };
            s.select(&cases)?;
            if !arms.is_empty() {
                let arms: Vec<quality::Arm> = arms.iter().map(|a| a.parse()).collect::<Result<_, _>>()?;
                s.arms = arms.clone();
                for c in &mut s.cases {
                    c.arms = Some(arms.clone());
                }
            }
            if let Some(d) = device {
                s.device = d;
            }
            let opts = quality::RunOptions {
                work_dir: work_dir.clone(),
                force,
            };
            let mut observer = terminal_observer();
            let rows = quality::run_suite(
                &s,
                &opts,
                &mut |r| {
                    eprintln!(
                        "{:<18} {:<12} {}",
                        r.case,
                        r.arm,
                        match (r.amp_ssim, r.phase_ssim) {
                            (Some(a), Some(p)) => format!(
                                "amplitude SSIM {a:.3}  phase SSIM {p:.3}  ({:.0} s train, {:.1} s reconstruct)  {}",
                                r.seconds_train, r.seconds_reconstruct, r.detail
                            ),
                            _ => format!("failed: {}", r.error.as_deref().unwrap_or("?")),
                        }
                    )
                },
                observer.as_mut(),
            )?;
            let report = quality::QualityReport {
                command: std::env::args().collect::<Vec<_>>().join(" "),
                suite: s.with_paths_relative_to(std::path::Path::new(env!("CARGO_MANIFEST_DIR"))),
                machine: bench::Machine::describe(),
                crate_version: env!("CARGO_PKG_VERSION").into(),
                finished_unix: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                seconds: started.elapsed().as_secs_f64(),
                rows,
            };
            let (json_path, csv_path) = quality::write_results(&report, &results)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report.rows)?);
            } else {
                println!("{}", quality::markdown_table(&report.rows));
            }
            eprintln!(
                "{:.0} s; wrote {} and {}",
                report.seconds,
                json_path.display(),
                csv_path.display()
            );
            if report.rows.iter().any(|r| r.status != "ok") {
                bail!("some arms failed (see the table)");
            }
        }
        Command::Bench(BenchCommand::Group { json, n, rounds }) => {
            print_bench(&bench::group_bench(n, 5, rounds, &bench::default_python())?, json)?;
        }
        Command::Bench(BenchCommand::Infer {
            json,
            batch_size,
            batches,
            rounds,
            threads,
            n,
            device,
            precision,
            gridsize,
        }) => {
            let mut b = bench::InferBench {
                gridsizes: gridsizes(gridsize),
                n,
                batch_size,
                batches,
                rounds,
                device: ptycho_workbench::array::parse_device(&device)?,
                precision: precision.parse()?,
                ..bench::InferBench::default()
            };
            if let Some(t) = threads {
                b.threads = t;
            }
            print_bench(&bench::infer_bench(&b)?, json)?;
        }
        Command::Bench(BenchCommand::Stitch {
            json,
            patches,
            repeats,
            rounds,
            threads,
            device,
        }) => {
            let threads = threads.unwrap_or_else(bench::default_threads);
            let device = ptycho_workbench::array::parse_device(&device)?;
            print_bench(
                &bench::stitch_bench(patches, repeats, rounds, threads, device, &bench::default_python())?,
                json,
            )?;
        }
        Command::Bench(BenchCommand::SameSeed {
            device,
            gridsize,
            steps,
            out,
        }) => {
            let device = ptycho_workbench::array::parse_device(&device)?;
            let r = bench::same_seed_losses(device, gridsize, steps)?;
            let json = serde_json::to_string_pretty(&r)?;
            if let Some(p) = out {
                ptycho_workbench::data::atomic::write_bytes_atomic(&p, json.as_bytes())?;
            }
            println!("{json}");
            // float32 on two devices: summation order differs, the first step agrees closely
            r.check()?;
        }
        Command::Bench(BenchCommand::Metrics { json, repeats, rounds }) => {
            print_bench(
                &bench::metrics_bench(512, repeats, rounds, 1, &bench::default_python())?,
                json,
            )?;
        }
        Command::Bench(BenchCommand::All {
            json,
            device,
            threads,
            train_batch,
            precision,
            quick,
            results,
        }) => {
            let mut cfg = bench::SuiteConfig {
                device: ptycho_workbench::array::parse_device(&device)?,
                quick,
                train_batches: train_batch,
                precision: precision.parse()?,
                ..bench::SuiteConfig::default()
            };
            if let Some(t) = threads {
                cfg.threads = t;
            }
            let report = bench::run_suite(&cfg, &mut |rows| {
                for r in rows {
                    eprintln!("done: {} ({:.3} {}, {:.2}x)", r.name, r.ours, r.unit, r.ratio);
                }
            });
            let path = bench::save_report(&report, &results)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", bench::format_report(&report));
                println!("saved {}", path.display());
            }
            if !report.failures.is_empty() {
                bail!("{} benchmark(s) failed", report.failures.len());
            }
        }
        Command::Bench(BenchCommand::Measured {
            json,
            data,
            epochs,
            probe_modes,
            rounds,
            threads,
            peer_python,
        }) => {
            let b = bench::MeasuredBench {
                data,
                epochs,
                probe_modes,
                rounds,
                threads: threads.unwrap_or_else(bench::default_threads),
                device: tch::Device::Cpu,
                peer_python: peer_python.unwrap_or_else(bench::default_peer_python),
            };
            print_bench(&bench::measured_bench(&b)?, json)?;
        }
        Command::Bench(BenchCommand::Iterative {
            json,
            iterations,
            repeats,
            rounds,
            threads,
            device,
        }) => {
            let threads = threads.unwrap_or_else(bench::default_threads);
            let device = ptycho_workbench::array::parse_device(&device)?;
            print_bench(
                &bench::iterative_bench(iterations, repeats, rounds, threads, device, &bench::default_python())?,
                json,
            )?;
        }
        Command::Reconstruct {
            data: input,
            algorithm,
            iterations,
            step,
            max_weight,
            init,
            refine_probe,
            probe_modes,
            refine_positions,
            positions_start,
            search_radius_px,
            saturation,
            config,
            device,
            out,
        } => {
            use ptycho_workbench::recon::iterative::{
                Algorithm, IterativeConfig, IterativeInit, PositionConfig, reconstruct_iterative_from,
            };
            let mut cfg = match &config {
                Some(p) => IterativeConfig::from_toml(
                    &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
                )
                .with_context(|| format!("in {}", p.display()))?,
                None => IterativeConfig::default(),
            };
            if let Some(a) = algorithm {
                cfg.algorithm = match a.as_str() {
                    "epie" => Algorithm::Epie,
                    "gradient" => Algorithm::Gradient,
                    other => bail!("unknown --algorithm `{other}` (epie or gradient)"),
                };
            }
            if iterations.is_some() {
                cfg.iterations = iterations;
            }
            if let Some(v) = step {
                match cfg.algorithm {
                    Algorithm::Epie => cfg.epie.alpha = Some(v),
                    Algorithm::Gradient => cfg.gradient.step_scale = Some(v),
                }
            }
            if max_weight.is_some() {
                cfg.max_weight = max_weight;
            }
            cfg.refine_probe |= refine_probe;
            if probe_modes.is_some() {
                cfg.probe_modes = probe_modes;
            }
            cfg.positions.refine |= refine_positions;
            if let Some(k) = positions_start {
                cfg.positions.start_iteration = k;
            }
            if let Some(r) = search_radius_px {
                cfg.positions.refine = true;
                cfg.positions.search_radius_px = r;
                cfg.positions.margin_px = cfg.positions.margin_px.max(r);
                if positions_start.is_none() {
                    cfg.positions.start_iteration = cfg
                        .positions
                        .start_iteration
                        .max(PositionConfig::SEARCH_START_ITERATION);
                }
            }
            match saturation.as_deref() {
                None | Some("auto") => {}
                Some("off") => cfg.mask.enabled = false,
                Some(v) => {
                    cfg.mask.saturation_counts = Some(
                        v.parse()
                            .with_context(|| format!("--saturation `{v}`: a count, auto or off"))?,
                    )
                }
            }
            if let Some(d) = device {
                cfg.device = d;
            }
            let ds = data::read_dataset(&input)?;
            let init = match &init {
                None => None,
                Some(p) => {
                    let r = data::product::read_recon_file(p)?;
                    Some(IterativeInit {
                        object: r.object,
                        coverage: r.coverage,
                        probe: r.probe,
                        source: p.display().to_string(),
                    })
                }
            };
            let outcome = reconstruct_iterative_from(&ds, &cfg, init.as_ref(), &mut |r| {
                eprintln!(
                    "iteration {:4}  data error {:.4e}  {:7.2} s",
                    r.iteration, r.data_error, r.seconds
                )
            })?;
            let modes = (cfg.refine_probe || outcome.probe_modes.shape()[0] > 1).then_some(&outcome.probe_modes);
            ptycho_workbench::recon::write_recon_npz_with(
                &outcome.reconstruction,
                modes,
                outcome.positions_px.as_ref(),
                &out,
            )?;
            if let Some(s) = &outcome.reconstruction.metadata.solver {
                if let Some(d) = &s.defects {
                    eprintln!(
                        "masked: {} saturated values (threshold {}; {}), {} dead pixels",
                        d.saturated_values,
                        d.saturation_counts.map_or("none".into(), |t| format!("{t:.0} counts")),
                        d.saturation_rule,
                        d.dead_pixels
                    );
                }
                if s.probe_modes > 1 {
                    let p: Vec<String> = s.mode_powers.iter().map(|p| format!("{:.1} %", 100.0 * p)).collect();
                    eprintln!("probe modes: {} (power {})", s.probe_modes, p.join(", "));
                }
                if let Some(p) = &s.positions {
                    eprintln!("positions: RMS correction {:.2} px", p.rms_correction_px);
                    if let Some(t) = &p.truth {
                        eprintln!(
                            "  against the true positions: RMS {:.2} → {:.2} px ({:.2} → {:.2} px with the mean offset removed)",
                            t.rms_given_px,
                            t.rms_corrected_px,
                            t.rms_given_offset_removed_px,
                            t.rms_corrected_offset_removed_px
                        );
                    }
                }
                eprintln!(
                    "wrote {} ({} iterations, step {}, max_weight {}{})",
                    out.display(),
                    s.iterations_run,
                    s.settings.step,
                    s.settings.max_weight,
                    if s.settings.chosen.is_empty() {
                        String::new()
                    } else {
                        format!("; chosen from the data: {}", s.settings.chosen.join(", "))
                    }
                );
            }
        }
        Command::Demo {
            out,
            epochs,
            n_groups,
            n_images,
            iterations,
            device,
        } => {
            let mut cfg = ptycho_workbench::demo::DemoConfig::quickstart()?;
            if let Some(e) = epochs {
                cfg.train.epochs = e;
            }
            if let Some(g) = n_groups {
                cfg.train.grouping.n_groups = Some(g);
            }
            if let Some(n) = n_images {
                cfg.sim.scan.n_images = Some(n);
            }
            if iterations.is_some() {
                cfg.iterative.iterations = iterations;
            }
            cfg.device = device;
            let mut observer = terminal_observer();
            let done = ptycho_workbench::demo::run_demo(&cfg, &out, observer.as_mut())?;
            drop(observer);
            println!("{}", std::fs::read_to_string(&done.report)?);
            println!(
                "Look at {} (report.md, metrics.csv and the figures).",
                done.dir.display()
            );
        }
        Command::Metrics {
            truth,
            pred,
            data_range,
            json,
        } => {
            let a = read_image(&truth)?;
            let b = read_image(&pred)?;
            let (m, _) = ptycho_workbench::metrics::image_metrics(a.view(), b.view(), data_range)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&m)?);
            } else {
                let opt = |v: Option<f64>| v.map_or("none".to_string(), |v| format!("{v:.4}"));
                println!(
                    "mae      {:.6e}\nmse      {:.6e}\npsnr     {:.4} dB",
                    m.mae, m.mse, m.psnr
                );
                println!("ssim     {:.6}\nms_ssim  {:.6}", m.ssim, m.ms_ssim);
                println!("frc50    {} (ring)\nfrc_1_7  {} (ring)", opt(m.frc50), opt(m.frc_1_7));
            }
        }
        Command::Compare {
            truth,
            reference,
            coverage_fraction,
            recons,
            labels,
            margin_px,
            phase_range,
            register,
            score_pixels,
            out,
            json,
        } => {
            let policy = ptycho_workbench::compare::RegisterPolicy::parse(&register)?;
            let score = ptycho_workbench::compare::ScorePixels::parse(&score_pixels)?;
            let phase_scale = match phase_range.as_str() {
                "unit" => PhaseScale::UnitInterval,
                "span" => PhaseScale::TruthSpan,
                r => match r.parse::<f64>() {
                    Ok(v) if v.is_finite() && v > 0.0 => PhaseScale::Radians { data_range_rad: v },
                    _ => bail!("--phase-range: `{r}` is not unit, span or a positive number of radians"),
                },
            };
            if !labels.is_empty() && labels.len() != recons.len() {
                bail!(
                    "give one --label per --recon ({} labels, {} reconstructions)",
                    labels.len(),
                    recons.len()
                );
            }
            let named: Vec<(String, PathBuf)> = recons
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let label = labels.get(i).cloned().unwrap_or_else(|| {
                        p.file_stem()
                            .map_or(format!("recon{i}"), |s| s.to_string_lossy().into_owned())
                    });
                    (label, p.clone())
                })
                .collect();
            let written = match (&truth, &reference) {
                (Some(truth), _) => ptycho_workbench::compare::compare_files(
                    truth,
                    &named,
                    &out,
                    margin_px,
                    phase_scale,
                    policy,
                    score,
                )?,
                (None, Some(reference)) => {
                    if score != ptycho_workbench::compare::ScorePixels::Region || margin_px != 0.0 {
                        bail!(
                            "--score-pixels and --margin-px need --truth (with --reference the compared \
                             pixels are those every file covers: --coverage-fraction)"
                        );
                    }
                    ptycho_workbench::compare::compare_with_reference(
                        reference,
                        &named,
                        &out,
                        coverage_fraction,
                        phase_scale,
                        policy,
                    )?
                }
                (None, None) => bail!("give --truth DATASET or --reference RECON.npz"),
            };
            if json {
                println!("{}", std::fs::read_to_string(&written.metrics_json)?);
            } else {
                println!(
                    "{}",
                    written
                        .metrics
                        .select(["label", "component", "ssim", "psnr", "frc50", "mae"])?
                );
                eprintln!(
                    "wrote {} (metrics.csv, metrics.json, frc.csv, comparison.png)",
                    out.display()
                );
            }
        }
        Command::Infer {
            bundle,
            data: input,
            out,
            crop_px,
            stitch_at,
            device,
            precision,
            refine,
            adapt,
            no_phase_sync,
            select,
            fixed_crop,
        } => {
            let stitch_at = match stitch_at.as_str() {
                "members" => StitchAt::Members,
                "centroids" => StitchAt::Centroids,
                other => bail!("--stitch-at: `{other}` is not members or centroids"),
            };
            let precision: ptycho_workbench::train::Precision = precision.parse()?;
            let device = ptycho_workbench::array::parse_device(&device)?;
            let b = Bundle::load(&bundle, device)?;
            let ds = data::read_dataset(&input)?;
            let refine = match refine.as_deref() {
                None if select => Some(ptycho_workbench::recon::iterative::IterativeConfig::epie()),
                None => None,
                Some("auto") => Some(ptycho_workbench::recon::iterative::IterativeConfig::epie()),
                Some(k) => match k.parse::<usize>() {
                    Ok(k) if k > 0 => Some(ptycho_workbench::recon::iterative::IterativeConfig {
                        iterations: Some(k),
                        ..ptycho_workbench::recon::iterative::IterativeConfig::epie()
                    }),
                    _ => bail!("--refine: `{k}` is not a positive number of iterations or auto"),
                },
            };
            let cfg = ReconConfig {
                crop_px,
                stitch_at,
                precision,
                refine,
                adapt: adapt.map(|steps| ptycho_workbench::recon::AdaptConfig {
                    steps,
                    ..ptycho_workbench::recon::AdaptConfig::default()
                }),
                phase_sync: !no_phase_sync,
                cover_scan: !fixed_crop,
                select: select.then(ptycho_workbench::recon::select::SelectConfig::default),
                ..ReconConfig::default()
            };
            let recon = b.reconstruct(&ds, &cfg)?;
            write_recon_npz(&recon, &out)?;
            eprintln!(
                "wrote {} ({} groups, inference {:.2} s, stitching {:.2} s{})",
                out.display(),
                recon.metadata.n_groups,
                recon.metadata.seconds_inference,
                recon.metadata.seconds_stitch,
                recon.metadata.adaptation.as_ref().map_or(String::new(), |a| format!(
                    ", after {} adaptation steps in {:.1} s (loss {:.4} → {:.4})",
                    a.steps, a.seconds, a.loss_before, a.loss_after
                )) + &recon.metadata.refinement.as_ref().map_or(String::new(), |r| format!(
                    ", then {} iterations in {:.2} s",
                    r.iterations_run, r.seconds_iterations
                ))
            );
            if let Some(s) = &recon.metadata.selection {
                eprintln!(
                    "chose {} ({}): held-out misfit {} (in brackets: Poisson deviance per count), in {:.1} s; output: {}",
                    s.chosen.name(),
                    s.reason,
                    s.scores(),
                    s.seconds,
                    recon.metadata.source
                );
            }
        }
        Command::Study(c) => study::run(c)?,
        Command::Train(a) => {
            let spec = job_spec(*a)?;
            let result = train_job(&spec, terminal_observer().as_mut())?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            if let Some(f) = result
                .phase_saturation
                .filter(|&f| f > ptycho_workbench::train::PHASE_SATURATION_WARNING)
            {
                eprintln!(
                    "warning: {:.0} % of the trained network's phases sit at ±π, where π·tanh is flat: \
                     its phase has collapsed and its reconstructions will show a flat phase. \
                     Retrain with a longer --warmup-steps or a lower --learning-rate, or another --seed.",
                    100.0 * f
                );
            }
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
                if let Some(src) = &m.source {
                    println!(
                        "source           {} ({}, sha256 {})",
                        src["tool"].as_str().unwrap_or("?"),
                        src["file"].as_str().unwrap_or("?"),
                        src["sha256"].as_str().unwrap_or("?")
                    );
                }
                println!("checksums        verified ({} members)", m.files.len());
                for (name, size) in &b.sizes {
                    println!("  {name:<42} {size:>12} bytes");
                }
            }
        }
        Command::Bundle(BundleCommand::ImportPtychopinn {
            file,
            probe,
            probe_scale,
            out,
        }) => {
            use ptycho_workbench::bundle::ptychopinn::{ImportOptions, import_ptychopinn};
            let is_zip = out.extension().is_some_and(|e| e == "zip");
            let out = if out.is_dir() || !is_zip {
                std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
                out.join(ptycho_workbench::bundle::BUNDLE_FILE)
            } else {
                out
            };
            let opts = ImportOptions {
                probe_dataset: probe,
                probe_scale,
            };
            let written = import_ptychopinn(&file, &opts, &out)?;
            let b = Bundle::load(&written, tch::Device::Cpu)?;
            let c = b.config();
            eprintln!("wrote {}", written.display());
            println!(
                "PtychoPINN model  N = {}, gridsize {}, filters ×{}, amplitude {:?}, intensity scale {:.6e}",
                c.n, c.gridsize, c.n_filters_scale, c.amp_activation, b.manifest.intensity_scale
            );
            println!("conventions       reassembly divided as PtychoPINN divides it; offsets member − centroid");
        }
        Command::Bundle(BundleCommand::ExportPtychopinn {
            file,
            out,
            python,
            ptychopinn_src,
        }) => {
            use ptycho_workbench::bundle::ptychopinn_export::{ExportOptions, export_ptychopinn};
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
            let opts = ExportOptions {
                python: python
                    .or_else(|| std::env::var_os("PTYCHO_PTYCHOPINN_PYTHON").map(PathBuf::from))
                    .unwrap_or_else(|| root.join(".venv-ptychopinn/bin/python")),
                ptychopinn_src: ptychopinn_src.or_else(|| std::env::var_os("PTYCHOPINN_SRC").map(PathBuf::from)),
                script: root.join("scripts/export_ptychopinn.py"),
            };
            let report = export_ptychopinn(&file, &out, &opts)?;
            eprintln!("wrote {}", report.out.display());
            println!(
                "patches vs ours   {:.2e} (max relative, PtychoPINN's loaded model)",
                report.patch_rel_err
            );
            match report.object_rel_err {
                Some(e) => println!("objects vs ours   {e:.2e}"),
                None => println!(
                    "objects           not compared: this bundle averages overlaps by coverage, PtychoPINN \
                     divides by its central squares' coverage + 0.001"
                ),
            }
            println!(
                "round trip        {} of {} weights read back differ from ours",
                report.weights_differing, report.weights_compared
            );
            if report.weights_differing > 0 {
                bail!("the weights did not survive the round trip");
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
        Command::Dataset(DatasetCommand::Inspect(a)) => dataset_inspect(a)?,
        Command::Import(ImportCommand::Tike { raw, out }) => import_tike(&raw, &out)?,
        Command::Frc(a) => frc_halves(a)?,
        Command::Dataset(DatasetCommand::Halves { input, out_a, out_b }) => {
            let ds = data::read_dataset(&input)?;
            let (a, b) = ptycho_workbench::recon::interleaved_halves(&ds);
            if b.n_images() == 0 {
                bail!("{} has {} pattern(s): nothing to halve", input.display(), ds.n_images());
            }
            data::write_npz(&a, &out_a)?;
            data::write_npz(&b, &out_b)?;
            eprintln!(
                "wrote {} ({} patterns) and {} ({} patterns)",
                out_a.display(),
                a.n_images(),
                out_b.display(),
                b.n_images()
            );
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
            rounds,
            threads,
            dose,
        }) => {
            let mut b = SimulateBench {
                n_images,
                repeats,
                rounds,
                doses_photons: dose,
                ..SimulateBench::default()
            };
            if let Some(t) = threads {
                b.threads = t;
            }
            let rows = bench::simulate_bench(&b)?;
            print_bench(&rows, json)?;
        }
    }
    Ok(())
}

/// `ptycho dataset inspect`: the summary, then `data::inspect` (in JSON the
/// summary's keys as before, the inspection under `inspection`).
fn dataset_inspect(a: InspectArgs) -> Result<()> {
    let ds = data::read_dataset(&a.file)?;
    if a.saturation.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
        bail!("--saturation must be a positive number of counts");
    }
    let inspection = data::inspect::inspect(&ds, a.saturation)?;
    if a.json {
        #[derive(serde::Serialize)]
        struct Out<'a> {
            #[serde(flatten)]
            summary: data::DatasetSummary,
            inspection: &'a data::inspect::Inspection,
        }
        let out = Out {
            summary: ds.summary(),
            inspection: &inspection,
        };
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}{inspection}", ds.summary());
    }
    if let Some(path) = &a.figure {
        ptycho_workbench::plot::mean_pattern_vs_probe(&ds)?.save(path)?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

/// `ptycho import tike`: raw tike NPZ → dataset NPZ (atomic), and a short summary.
fn import_tike(raw: &std::path::Path, out: &std::path::Path) -> Result<()> {
    let ds = data::tike::import_tike_file(raw)?;
    data::write_npz(&ds, out)?;
    eprintln!("wrote {}", out.display());
    let n = ds.patch_size();
    let powers: Vec<f64> = ds
        .probe_modes()
        .outer_iter()
        .map(|m| m.iter().map(|c| c.norm_sqr() as f64).sum())
        .collect();
    let total: f64 = powers.iter().sum();
    let power: Vec<String> = powers.iter().map(|p| format!("{:.3}", p / total)).collect();
    println!("patterns           {} × {n}×{n}", ds.n_images());
    println!(
        "photons / pattern  {:.4e} (mean counts)",
        ds.metadata.n_photons.unwrap_or(0.0)
    );
    println!(
        "probe modes        {} (power fractions {})",
        ds.n_probe_modes(),
        power.join(", ")
    );
    println!(
        "true positions     {}",
        if ds.true_positions_px.is_some() { "yes" } else { "no" }
    );
    let r = |c: usize| {
        let v = ds.positions_px.column(c);
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2} .. {hi:.2}")
    };
    println!("x range (px)       {}", r(0));
    println!("y range (px)       {}", r(1));
    for t in &ds.metadata.data_transformations {
        println!("transformation     {t}");
    }
    Ok(())
}

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so `println!` into a closed pipe (`ptycho … | head`)
    // panics; restore the default, which ends the process quietly as it ends
    // `cat` or `ls`.
    #[cfg(unix)]
    // SAFETY: called first in main, before any thread exists; SIG_DFL is a valid handler.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Reuse freed memory instead of mapping fresh pages every step
    // (ptycho_workbench::runtime).
    ptycho_workbench::runtime::keep_freed_memory();
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
