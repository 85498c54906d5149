//! Reliability (issue 8): hostile archives, truncated and corrupt files,
//! numerically bad data, full disks and kill -9.
//!
//! Every fault tried is one row of [`CASES`]: its id, what was tried, how
//! many times, and the outcome required. Each test calls [`record`] with the
//! number of tries it made (which must equal the row's), and
//! `docs/reliability.md` holds the table generated from `CASES`
//! (`the_record_in_docs_matches_the_cases`; `PTYCHO_BLESS=1` rewrites it).
//! Cases that may abort the process (libtorch, libhdf5) run in a child
//! process of this test binary, so an abort shows up as a signal instead of
//! killing the test harness.
mod common;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use common::*;
use ndarray::{Array2, Axis};
use num_complex::Complex32;
use ptycho_workbench::bundle::{Bundle, BundleInputs, BundleManifestV1, save_bundle};
use ptycho_workbench::data::npy;
use ptycho_workbench::data::{
    Dataset, Product, read_cxi, read_dataset, read_npz, read_product, write_npz, write_product,
};
use ptycho_workbench::model::ModelConfig;
use ptycho_workbench::recon::ReconConfig;
use ptycho_workbench::recon::iterative::{IterativeConfig, reconstruct_iterative};
use ptycho_workbench::simulate::{SimConfig, simulate_on};
use ptycho_workbench::study::StudyConfig;
use ptycho_workbench::train::{SilentObserver, TrainConfig, Trainer};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::Device;

/// One fault and what must happen.
struct Case {
    id: &'static str,
    area: &'static str,
    fault: &'static str,
    /// Times it is tried per run (`record` checks it); 0 for cases covered
    /// by another test file (`covered_by`).
    tries: usize,
    outcome: &'static str,
    /// `tests/file.rs::test_name` for cases another test exercises.
    covered_by: Option<&'static str>,
}

const fn case(id: &'static str, area: &'static str, fault: &'static str, tries: usize, outcome: &'static str) -> Case {
    Case {
        id,
        area,
        fault,
        tries,
        outcome,
        covered_by: None,
    }
}

const fn elsewhere(
    id: &'static str,
    area: &'static str,
    fault: &'static str,
    tries: usize,
    outcome: &'static str,
    test: &'static str,
) -> Case {
    Case {
        id,
        area,
        fault,
        tries,
        outcome,
        covered_by: Some(test),
    }
}

/// Truncation offsets and byte flips per file.
const CUTS: usize = 20;
const FLIPS: usize = 20;
/// Seeded mutations per reader in the fuzz loop.
const MUTATIONS: usize = 1500;
/// Bad datasets (see `bad_datasets`) and the entry points each goes through.
const BAD_DATASETS: usize = 12;
const CLI_BAD: usize = 4;

const CASES: &[Case] = &[
    case(
        "zip-slip",
        "archives",
        "NPZ and bundle with a `../` member name",
        2,
        "refused: `refusing … member ../evil.npy: its name climbs out of the archive (..)` (nothing is ever extracted)",
    ),
    case(
        "absolute-member",
        "archives",
        "NPZ and bundle with an absolute member name (`/tmp/evil.npy`)",
        2,
        "refused: `its name is an absolute path`",
    ),
    case(
        "symlink-member",
        "archives",
        "NPZ and bundle with a symbolic-link member (`probeGuess.npy` → `/etc/passwd`)",
        2,
        "refused: `it is a symbolic link`",
    ),
    case(
        "zip-bomb-declared",
        "archives",
        "NPZ and bundle member (stored, and deflated) declaring 4 GB",
        4,
        "refused before allocating: `declares 4294967040 bytes from … compressed bytes (a zip bomb, or corrupt)`; peak memory < 1 GiB",
    ),
    case(
        "zip-bomb-lying",
        "archives",
        "NPZ member declaring 1 kB that inflates to 64 MB",
        1,
        "error `member … is truncated or corrupt` (the reader stops at the declared size)",
    ),
    case(
        "npy-huge-shape",
        "archives",
        "`.npy` header declaring shape (2⁴⁰, 2³⁰), and (2³⁰, 2³⁰) float64, with 16 bytes of data",
        2,
        "refused before allocating: `shape … is too large` / `truncated: … needs … bytes`",
    ),
    case(
        "npy-huge-header",
        "archives",
        "`.npy` v2 header declaring a 4 GB header",
        1,
        "error `truncated header`",
    ),
    case(
        "npy-pickle",
        "archives",
        "NPZ with a pickled object array (dtype `O`) as `diffraction`",
        1,
        "refused: `pickled object arrays are not read (they could run code)`",
    ),
    case(
        "torchscript-not-executed",
        "bundles",
        "bundle whose TorchScript member is garbage (checksum updated); source scan for TorchScript loaders",
        2,
        "loads and reconstructs bit-identically; no `CModule::load*` call in src/",
    ),
    elsewhere(
        "ptychopinn-pickle-bundle",
        "bundles",
        "PtychoPINN bundle (pickled `manifest.dill`)",
        1,
        "refused, naming both formats",
        "tests/bundle.rs::bad_bundles_give_clear_errors",
    ),
    case(
        "truncated-npz",
        "corrupt files",
        "dataset NPZ truncated at 20 evenly spaced offsets",
        CUTS,
        "every read an `Err`",
    ),
    case(
        "truncated-product",
        "corrupt files",
        "Ptychodus HDF5 product truncated at 20 evenly spaced offsets",
        CUTS,
        "every read an `Err` (libhdf5 never aborts)",
    ),
    case(
        "truncated-bundle",
        "corrupt files",
        "bundle truncated at 20 evenly spaced offsets",
        CUTS,
        "every load an `Err`",
    ),
    case(
        "truncated-cxi",
        "corrupt files",
        "CXI file (HDF5, written by h5py) truncated at 20 evenly spaced offsets",
        CUTS,
        "every read an `Err` (libhdf5 never aborts)",
    ),
    case(
        "flipped-npz",
        "corrupt files",
        "dataset NPZ with one byte flipped at 20 seeded offsets (half in the first or last KiB)",
        FLIPS,
        "an `Err` (zip CRC-32, header checks), or the identical dataset when the byte lies in a zip field no reader uses; never different data",
    ),
    case(
        "flipped-product",
        "corrupt files",
        "HDF5 product with one byte flipped at 20 seeded offsets (half in the first or last KiB)",
        FLIPS,
        "an `Err`, or `Ok` when the byte is array data (HDF5 has no checksums); never a crash",
    ),
    case(
        "flipped-bundle",
        "corrupt files",
        "bundle with one byte flipped at 20 seeded offsets (half in the first or last KiB)",
        FLIPS,
        "an `Err` (zip CRC-32, sha256 of every member), or the identical bundle when the byte lies in an unused zip field",
    ),
    case(
        "flipped-cxi",
        "corrupt files",
        "CXI file with one byte flipped at 20 seeded offsets",
        FLIPS,
        "an `Err`, the identical dataset, or changed array data (HDF5 has no checksums); never a crash",
    ),
    case(
        "cli-broken-pipe",
        "crashes",
        "`ptycho dataset inspect --json` writing into a pipe whose reader has gone (as in `ptycho … \\| head`)",
        1,
        "ends quietly (SIGPIPE, as `cat` does), no `internal error` panic",
    ),
    case(
        "cli-corrupt",
        "corrupt files",
        "`ptycho dataset inspect` / `bundle inspect` on 5 truncated NPZ, 5 truncated bundles, 5 truncated CXI",
        15,
        "exit status 1, one line `error: …`, no signal",
    ),
    case(
        "fuzz-npy",
        "fuzzing",
        "seeded mutations (bit flips, byte sets, cuts, insertions) of `.npy` bytes → `npy::decode`",
        MUTATIONS,
        "`Ok` or `Err`, never a panic",
    ),
    case(
        "fuzz-npz",
        "fuzzing",
        "seeded mutations of a dataset NPZ file → `read_npz`",
        MUTATIONS / 3,
        "`Ok` or `Err`, never a panic",
    ),
    case(
        "fuzz-manifest",
        "fuzzing",
        "seeded mutations of a bundle `manifest.json` → `BundleManifestV1`",
        MUTATIONS,
        "`Ok` or `Err`, never a panic",
    ),
    case(
        "fuzz-study-toml",
        "fuzzing",
        "seeded mutations of the CI study TOML → `StudyConfig::from_toml`",
        MUTATIONS,
        "`Ok` or `Err`, never a panic",
    ),
    case(
        "fuzz-sim-toml",
        "fuzzing",
        "seeded mutations of a simulation TOML → `SimConfig::from_toml` + `validate`",
        MUTATIONS,
        "`Ok` or `Err`, never a panic",
    ),
    case(
        "bad-data-api",
        "bad data",
        "12 bad datasets (NaN, +Inf, negative amplitude, all patterns zero, NaN position, position outside the object, position 1e9 px without an object, probe 16×16 for N = 32, zero probe, NaN probe, `Y` of the wrong shape, no patterns) × `Dataset::validate`, `write_npz`, `read_dataset`, `Trainer::fit`, `Bundle::reconstruct`, `reconstruct_iterative`",
        BAD_DATASETS * 6,
        "an `Err` naming the array and the first bad element; no libtorch call",
    ),
    case(
        "odd-data-api",
        "bad data",
        "one all-zero pattern; duplicated positions (every position twice)",
        2,
        "accepted (documented): validate, `Trainer::fit`, `Bundle::reconstruct` and `reconstruct_iterative` run and give finite objects",
    ),
    case(
        "bad-sim-config",
        "bad data",
        "`simulate` with NaN dose, dose −1, spacing 0, spacing 1e-9, size 48, object 16 px, a probe file of the wrong size",
        7,
        "an `Err` naming the field (or the probe file and both sizes)",
    ),
    case(
        "bad-data-cli",
        "bad data",
        "`ptycho dataset inspect`, `train`, `reconstruct`, `infer` on NaN, negative, all-zero and far-position NPZ files",
        CLI_BAD * 4,
        "exit status 1 with one line `error: …`; no signal, no files left",
    ),
    case(
        "full-disk-bundle",
        "full disk",
        "`save_bundle` into a 2 MB tmpfs holding an earlier file",
        1,
        "`No space left on device` naming `wts.h5.zip`; no bundle, no temp file; the earlier file intact",
    ),
    case(
        "full-disk-npz",
        "full disk",
        "`write_npz` into a full tmpfs over an existing dataset, then with space freed",
        2,
        "`No space left on device`; the old NPZ intact, no temp file; the retry writes it",
    ),
    case(
        "full-disk-study",
        "full disk",
        "`ptycho study run` (datasets stage) into a nearly full tmpfs after a finished dose",
        1,
        "exit 1; the job's record says `failed: … No space left on device`; the finished dose stays up to date",
    ),
    case(
        "kill-train-resume",
        "crashes",
        "`ptycho train --resume` killed with SIGKILL 3 times (during the first epoch, right after an epoch checkpoint, while the bundle's temp file is being written), then resumed",
        3,
        "every JSON parses, every bundle loads with verified checksums; the resumed run removes the killed writes' temp files and its weights and losses equal an uninterrupted run's",
    ),
    elsewhere(
        "kill-train-bundle",
        "crashes",
        "`ptycho train` killed with SIGKILL 5 times (at once, and as the bundle is written)",
        5,
        "the bundle is the old one byte for byte, or a complete new one",
        "tests/cli.rs::a_kill_during_training_or_saving_never_leaves_a_partial_bundle",
    ),
    elsewhere(
        "kill-study",
        "crashes",
        "`ptycho study run` killed with SIGKILL twice, then rerun",
        2,
        "finished jobs are not redone; results equal an uninterrupted run's",
        "tests/study.rs::a_run_killed_twice_resumes_without_redoing_finished_jobs",
    ),
    elsewhere(
        "study-lock",
        "crashes",
        "a second `study run` on a folder in use; a lock left by a dead process",
        2,
        "refused naming the owner's pid; the stale lock is taken over",
        "tests/study.rs::a_dead_owner_lock_is_taken_over_and_a_live_one_refused",
    ),
    elsewhere(
        "bundle-unwritable",
        "full disk",
        "`ptycho train` whose bundle cannot be written (a folder in its place)",
        1,
        "`train_result.json` records `bundle_error`; no temp file left",
        "tests/cli.rs::a_bundle_that_cannot_be_written_is_recorded_not_crashed",
    ),
];

/// Records that case `id` was tried `tries` times (must match its row) in
/// `target/reliability/<id>.json`.
fn record(id: &str, tries: usize) {
    let case = CASES
        .iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("`{id}` is not in CASES"));
    assert_eq!(
        tries, case.tries,
        "`{id}` was tried {tries} times, CASES says {}",
        case.tries
    );
    let dir = root().join("target/reliability");
    std::fs::create_dir_all(&dir).expect("target/ is writable");
    let json = serde_json::json!({"id": id, "tries": tries, "outcome": case.outcome});
    std::fs::write(dir.join(format!("{id}.json")), json.to_string()).expect("record written");
}

// ---------------------------------------------------------------------------
// harness

const CHILD: &str = "PTYCHO_RELIABILITY_CHILD";
const SHARED: &str = "PTYCHO_RELIABILITY_SHARED";

/// Runs `body` in a child process (this binary, this test only), so that an
/// abort or a crash is seen as a signal rather than killing the harness.
fn in_child(name: &str, body: impl FnOnce() -> TestResult) -> TestResult {
    if std::env::var_os(CHILD).is_some() {
        return body();
    }
    let shared = shared();
    let out = Command::new(std::env::current_exe()?)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env(SHARED, &shared.dir)
        .env("OMP_NUM_THREADS", "1")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some(sig) = out.status.signal() {
        panic!("{name}: the child process died of signal {sig} (an abort or a crash):\n{text}");
    }
    assert!(out.status.success(), "{name} failed in the child process:\n{text}");
    eprint!("{text}");
    assert!(text.contains("1 passed"), "{name} did not run in the child:\n{text}");
    Ok(())
}

/// A trained bundle and the dataset it was trained on, made once per process
/// (children reuse the parent's files).
struct Shared {
    dir: PathBuf,
    bundle: PathBuf,
    dataset: PathBuf,
}

fn shared() -> &'static Shared {
    static SHARED_FILES: OnceLock<Shared> = OnceLock::new();
    SHARED_FILES.get_or_init(|| {
        init();
        let from_parent = std::env::var_os(SHARED).map(PathBuf::from);
        let dir = from_parent
            .clone()
            .unwrap_or_else(|| root().join(format!("target/reliability/shared-{}", std::process::id())));
        let s = Shared {
            bundle: dir.join("wts.h5.zip"),
            dataset: dir.join("train.npz"),
            dir,
        };
        if from_parent.is_none() {
            // folders of earlier runs
            if let Ok(rd) = std::fs::read_dir(root().join("target/reliability")) {
                for e in rd.flatten() {
                    if e.file_name().to_string_lossy().starts_with("shared-") {
                        let _ = std::fs::remove_dir_all(e.path());
                    }
                }
            }
            std::fs::create_dir_all(&s.dir).expect("target/ is writable");
            let ds = small_dataset();
            write_npz(&ds, &s.dataset).expect("dataset written");
            let mut train = TrainConfig::quick();
            train.epochs = 1;
            train.grouping.n_groups = Some(16);
            let outcome = Trainer::new(tiny_model(), train.clone(), Device::Cpu)
                .fit(&ds, &mut SilentObserver)
                .expect("trains");
            save_bundle(
                &BundleInputs {
                    outcome: &outcome,
                    train_config: &train,
                    dataset: &ds,
                },
                &s.dir,
            )
            .expect("bundle saved");
        }
        s
    })
}

fn tiny_model() -> ModelConfig {
    ModelConfig {
        n: 32,
        gridsize: 1,
        n_filters_scale: 1,
        ..ModelConfig::default()
    }
}

/// N = 32, 72×72 object, 6 px raster (~49 patterns), noisy.
fn small_dataset() -> Dataset {
    let mut cfg = small_config();
    cfg.object_size_px = 72;
    simulate_on(&cfg, Device::Cpu).expect("simulates")
}

/// The CLI failed as a user should see it: status 1, one `error:` line.
fn assert_cli_error(out: &Output, what: &str) -> String {
    assert_eq!(out.status.signal(), None, "{what}: killed by a signal");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{what}: {err}");
    assert!(
        !err.contains("internal error") && !err.contains("panicked"),
        "{what}: {err}"
    );
    err
}

fn expect_err<T: std::fmt::Debug>(r: ptycho_workbench::Result<T>, what: &str, words: &[&str]) -> String {
    let e = r.expect_err(what).to_string();
    for w in words {
        assert!(e.contains(w), "{what}: error lacks `{w}`: {e}");
    }
    assert!(!e.contains('\n'), "{what}: error is not one line: {e}");
    e
}

/// Files in `dir` whose names show an unfinished atomic write.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.contains(".tmp-"))
                .collect()
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// hostile archives

/// Writes a zip with the given members (name, bytes, deflate?, symlink?).
fn write_zip(path: &Path, members: &[(&str, &[u8], bool, bool)]) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).expect("created"));
    for &(name, bytes, deflate, symlink) in members {
        let method = if deflate {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        };
        let options = zip::write::SimpleFileOptions::default().compression_method(method);
        if symlink {
            zip.add_symlink(name, std::str::from_utf8(bytes).expect("target"), options)
                .expect("symlink");
        } else {
            zip.start_file(name, options).expect("member");
            zip.write_all(bytes).expect("written");
        }
    }
    zip.finish().expect("finished");
}

/// Sets the declared uncompressed size of member `name` in both its local
/// header and its central-directory entry.
fn patch_declared_size(path: &Path, name: &str, size: u32) {
    let mut b = std::fs::read(path).expect("zip");
    let n = name.len();
    let mut patched = 0;
    for i in 0..b.len().saturating_sub(46 + n) {
        let (sig, size_at, name_at) = match &b[i..i + 4] {
            [0x50, 0x4b, 0x03, 0x04] => ("local", i + 22, i + 30),
            [0x50, 0x4b, 0x01, 0x02] => ("central", i + 24, i + 46),
            _ => continue,
        };
        let name_len = u16::from_le_bytes([
            b[i + if sig == "local" { 26 } else { 28 }],
            b[i + if sig == "local" { 27 } else { 29 }],
        ]) as usize;
        if name_len == n && b.get(name_at..name_at + n) == Some(name.as_bytes()) {
            b[size_at..size_at + 4].copy_from_slice(&size.to_le_bytes());
            patched += 1;
        }
    }
    assert_eq!(patched, 2, "member `{name}` found in both headers");
    std::fs::write(path, b).expect("patched");
}

/// The members of a real dataset NPZ and a real bundle.
fn real_members(path: &Path) -> Vec<(String, Vec<u8>)> {
    ptycho_workbench::data::archive::read_members(path, "test", |_| true).expect("real archive reads")
}

/// Peak resident memory of this process, bytes.
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

#[test]
fn hostile_archives_are_refused_before_allocating() -> TestResult {
    in_child("hostile_archives_are_refused_before_allocating", || {
        let s = shared();
        let dir = tempfile::tempdir()?;
        let real = [("npz", real_members(&s.dataset)), ("bundle", real_members(&s.bundle))];
        // read through the public entry points
        let open = |kind: &str, path: &Path| -> String {
            match kind {
                "npz" => expect_err(read_dataset(path), "hostile npz", &[]),
                _ => expect_err(Bundle::load(path, Device::Cpu), "hostile bundle", &[]),
            }
        };
        let with_extra = |members: &[(String, Vec<u8>)], extra: (&str, &[u8], bool, bool), path: &Path| {
            let mut all: Vec<(&str, &[u8], bool, bool)> = members
                .iter()
                .map(|(n, b)| (n.as_str(), b.as_slice(), false, false))
                .collect();
            all.push(extra);
            write_zip(path, &all);
        };
        let (mut slip, mut abs, mut link, mut bomb) = (0, 0, 0, 0);
        for (kind, members) in &real {
            let p = dir.path().join(format!("slip.{kind}"));
            with_extra(members, ("../evil.npy", b"x", false, false), &p);
            let e = open(kind, &p);
            assert!(e.contains("`../evil.npy`") && e.contains("climbs out"), "{e}");
            slip += 1;

            let p = dir.path().join(format!("abs.{kind}"));
            with_extra(members, ("/tmp/evil.npy", b"x", false, false), &p);
            assert!(open(kind, &p).contains("absolute path"));
            abs += 1;

            let p = dir.path().join(format!("link.{kind}"));
            let kept: Vec<(String, Vec<u8>)> = members
                .iter()
                .filter(|(n, _)| n != "probeGuess.npy" && n != "probe.npy")
                .cloned()
                .collect();
            let target_name = if *kind == "npz" { "probeGuess.npy" } else { "probe.npy" };
            with_extra(&kept, (target_name, b"/etc/passwd", false, true), &p);
            assert!(open(kind, &p).contains("symbolic link"));
            link += 1;

            for deflate in [false, true] {
                let p = dir.path().join(format!("bomb{deflate}.{kind}"));
                let name = "zeros.npy";
                let mut all: Vec<(&str, &[u8], bool, bool)> = members
                    .iter()
                    .map(|(n, b)| (n.as_str(), b.as_slice(), false, false))
                    .collect();
                all.push((name, &[0u8; 4096], deflate, false));
                write_zip(&p, &all);
                patch_declared_size(&p, name, 0xFFFF_FF00);
                let e = open(kind, &p);
                assert!(e.contains("declares 4294967040 bytes") && e.contains("zip bomb"), "{e}");
                bomb += 1;
            }
        }
        record("zip-slip", slip);
        record("absolute-member", abs);
        record("symlink-member", link);
        record("zip-bomb-declared", bomb);

        // a member that inflates far beyond what it declares
        let p = dir.path().join("lying.npz");
        let zeros = vec![0u8; 64 << 20];
        write_zip(&p, &[("diffraction.npy", &zeros, true, false)]);
        patch_declared_size(&p, "diffraction.npy", 1000);
        let e = expect_err(read_npz(&p), "lying member", &["lying.npz", "diffraction.npy"]);
        assert!(e.contains("truncated or corrupt"), "{e}");
        record("zip-bomb-lying", 1);

        // .npy headers that declare more than they hold
        let npz = |name: &str, bytes: &[u8]| -> PathBuf {
            let p = dir.path().join(name);
            write_zip(&p, &[("diffraction.npy", bytes, false, false)]);
            p
        };
        let mut huge = 0;
        for shape in ["(1099511627776, 1073741824)", "(1073741824, 1073741824)"] {
            let mut b = npy_header(
                &format!("{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}"),
                1,
            );
            b.extend_from_slice(&[0u8; 16]);
            let e = expect_err(
                read_npz(&npz("huge.npz", &b)),
                "huge shape",
                &["huge.npz", "diffraction"],
            );
            assert!(e.contains("too large") || e.contains("truncated"), "{e}");
            huge += 1;
        }
        record("npy-huge-shape", huge);
        let mut b = b"\x93NUMPY\x02\x00".to_vec();
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(b"{'descr': '<f8'");
        expect_err(read_npz(&npz("hdr.npz", &b)), "huge header", &["truncated header"]);
        record("npy-huge-header", 1);
        let mut b = npy_header("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 1);
        b.extend_from_slice(b"\x80\x04\x95cos\nsystem\n");
        expect_err(
            read_npz(&npz("pickle.npz", &b)),
            "pickle",
            &["pickled object arrays are not read"],
        );
        record("npy-pickle", 1);

        let peak = peak_rss_bytes();
        assert!(peak < 1 << 30, "peak resident memory {peak} bytes");
        Ok(())
    })
}

/// A `.npy` header (version 1 or 2) around `dict`.
fn npy_header(dict: &str, version: u8) -> Vec<u8> {
    let mut d = dict.to_string();
    d.push('\n');
    let mut b = vec![0x93, b'N', b'U', b'M', b'P', b'Y', version, 0];
    if version == 1 {
        b.extend_from_slice(&(d.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(d.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(d.as_bytes());
    b
}

// ---------------------------------------------------------------------------
// truncated and corrupt files

#[test]
fn truncated_and_flipped_files_give_errors_never_crashes() -> TestResult {
    in_child("truncated_and_flipped_files_give_errors_never_crashes", || {
        let s = shared();
        let dir = tempfile::tempdir()?;
        let original = read_npz(&s.dataset)?;
        let product_path = dir.path().join("product.h5");
        write_product(&Product::from_dataset(&original, None, "reliability")?, &product_path)?;
        let original_product = read_product(&product_path)?;
        let original_bundle = Bundle::load(&s.bundle, Device::Cpu)?;
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let cxi = fixture("cxi/small.cxi");
        let original_cxi = read_cxi(&cxi)?;
        for (kind, path) in [
            ("npz", s.dataset.clone()),
            ("product", product_path),
            ("bundle", s.bundle.clone()),
            ("cxi", cxi),
        ] {
            let good = std::fs::read(&path)?;
            let bad = dir.path().join(format!("bad.{kind}"));
            // Ok(true): read, same content; Ok(false): read, different content
            let read = |p: &Path| -> Result<bool, String> {
                match kind {
                    "npz" => read_npz(p).map(|d| d == original),
                    "product" => read_product(p).map(|p| p == original_product),
                    "cxi" => read_cxi(p).map(|d| d == original_cxi),
                    _ => Bundle::load(p, Device::Cpu).map(|b| {
                        b.probe == original_bundle.probe && b.manifest.files == original_bundle.manifest.files
                    }),
                }
                .map_err(|e| e.to_string())
            };
            let mut cuts = 0;
            for k in 0..CUTS {
                let cut = good.len() * k / CUTS;
                std::fs::write(&bad, &good[..cut])?;
                let r = read(&bad);
                assert!(r.is_err(), "{kind} cut at {cut} of {} bytes read as Ok", good.len());
                let e = r.unwrap_err();
                assert!(e.contains("bad.") && !e.contains('\n'), "{kind} cut at {cut}: {e}");
                cuts += 1;
            }
            record(&format!("truncated-{kind}"), cuts);
            let (mut flips, mut same, mut changed) = (0, 0, 0);
            for _ in 0..FLIPS {
                let mut b = good.clone();
                // half anywhere (mostly array data), half in the first or
                // last KiB (HDF5 superblock and headers, zip directory)
                let edge = 1024.min(b.len());
                let at = match flips % 4 {
                    0 | 2 => rng.random_range(0..b.len()),
                    1 => rng.random_range(0..edge),
                    _ => b.len() - 1 - rng.random_range(0..edge),
                };
                b[at] ^= 0x5a;
                std::fs::write(&bad, &b)?;
                match read(&bad) {
                    Err(e) => assert!(!e.contains('\n'), "{e}"),
                    Ok(true) => same += 1,
                    Ok(false) => {
                        assert!(
                            kind == "product" || kind == "cxi",
                            "{kind}: byte {at} flipped reads as different data"
                        );
                        changed += 1;
                    }
                }
                flips += 1;
            }
            eprintln!(
                "{kind}: {flips} flips, {same} read unchanged (unread fields), {changed} read changed array data"
            );
            record(&format!("flipped-{kind}"), flips);
        }
        Ok(())
    })
}

#[test]
fn the_cli_reports_corrupt_files_in_one_line() -> TestResult {
    let s = shared();
    let dir = tempfile::tempdir()?;
    let mut tries = 0;
    for (kind, path) in [
        ("npz", s.dataset.clone()),
        ("bundle", s.bundle.clone()),
        ("cxi", fixture("cxi/small.cxi")),
    ] {
        let good = std::fs::read(&path)?;
        for k in 0..5 {
            let cut = good.len() * (2 * k + 1) / 10;
            let bad = dir.path().join(format!("cut{k}.{kind}"));
            std::fs::write(&bad, &good[..cut])?;
            let b = bad.to_string_lossy().into_owned();
            let out = match kind {
                "bundle" => ptycho(&["bundle", "inspect", &b]),
                _ => ptycho(&["dataset", "inspect", &b]),
            };
            let err = assert_cli_error(&out, &format!("{kind} cut at {cut}"));
            assert!(err.contains(&b), "{err}");
            tries += 1;
        }
    }
    record("cli-corrupt", tries);
    Ok(())
}

#[test]
fn output_into_a_closed_pipe_ends_quietly() -> TestResult {
    let s = shared();
    let (reader, writer) = std::io::pipe()?;
    drop(reader);
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(["dataset", "inspect", "--json"])
        .arg(&s.dataset)
        .stdout(writer)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("internal error") && !err.contains("panicked"), "{err}");
    assert!(
        out.status.signal() == Some(13) || out.status.success(),
        "{:?}: {err}",
        out.status
    );
    record("cli-broken-pipe", 1);
    Ok(())
}

// ---------------------------------------------------------------------------
// bundles are data, not code

#[test]
fn loading_a_bundle_never_executes_its_torchscript() -> TestResult {
    init();
    let s = shared();
    let dir = tempfile::tempdir()?;
    let ts = ptycho_workbench::bundle::manifest::members::TORCHSCRIPT;
    let garbage = b"import os; os.system('touch /tmp/pwned')  # not TorchScript".to_vec();
    let mut members = real_members(&s.bundle);
    for (name, bytes) in &mut members {
        if name == ts {
            *bytes = garbage.clone();
        }
    }
    let sha = ptycho_workbench::bundle::save::sha256_hex(&garbage);
    for (name, bytes) in &mut members {
        if name == "manifest.json" {
            let mut m: serde_json::Value = serde_json::from_slice(bytes)?;
            m["files"][ts] = serde_json::Value::String(sha.clone());
            *bytes = serde_json::to_vec_pretty(&m)?;
        }
    }
    let swapped = dir.path().join("wts.h5.zip");
    let list: Vec<(&str, &[u8], bool, bool)> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice(), false, false))
        .collect();
    write_zip(&swapped, &list);
    let ds = read_npz(&s.dataset)?;
    let a = Bundle::load(&s.bundle, Device::Cpu)?;
    let b = Bundle::load(&swapped, Device::Cpu)?;
    assert_eq!(b.torchscript_bytes()?, garbage, "the member is carried, not run");
    let cfg = ReconConfig::default();
    let (ra, rb) = (a.reconstruct(&ds, &cfg)?, b.reconstruct(&ds, &cfg)?);
    assert_eq!(ra.object, rb.object);
    assert_eq!(ra.coverage, rb.coverage);

    // no code path of the library loads TorchScript
    let mut stack = vec![root().join("src")];
    let mut scanned = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                scanned += 1;
                for (i, line) in std::fs::read_to_string(&p)?.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or_default();
                    for loader in ["CModule::load", "jit_load", "torch::jit::load", "load_data("] {
                        assert!(
                            !code.contains(loader),
                            "{}:{}: `{loader}` would execute TorchScript",
                            p.display(),
                            i + 1
                        );
                    }
                }
            }
        }
    }
    assert!(scanned > 50, "scanned {scanned} files");
    record("torchscript-not-executed", 2);
    Ok(())
}

// ---------------------------------------------------------------------------
// numerically bad data

/// Writes `ds` as a dataset NPZ without validating it (as another program might).
fn write_raw_npz(ds: &Dataset, path: &Path) {
    let d = ds.diffraction.as_standard_layout();
    let n = ds.n_images();
    let col = |a: &Array2<f64>, c: usize| a.column(c).to_vec();
    let c64 = |a: &Array2<Complex32>| a.as_standard_layout().iter().copied().collect::<Vec<_>>();
    let mut members: Vec<(&str, Vec<u8>)> = vec![
        ("diffraction", npy::encode(d.shape(), d.as_slice().expect("standard"))),
        ("xcoords", npy::encode(&[n], &col(&ds.positions_px, 0))),
        ("ycoords", npy::encode(&[n], &col(&ds.positions_px, 1))),
        ("xcoords_start", npy::encode(&[n], &col(&ds.start_positions_px, 0))),
        ("ycoords_start", npy::encode(&[n], &col(&ds.start_positions_px, 1))),
        ("probeGuess", npy::encode(ds.probe.shape(), &c64(&ds.probe))),
        (
            "scan_index",
            npy::encode(&[n], ds.scan_index.as_slice().expect("standard")),
        ),
    ];
    if let Some(o) = &ds.object {
        members.push(("objectGuess", npy::encode(o.shape(), &c64(o))));
    }
    if let Some(y) = &ds.patches {
        let v: Vec<Complex32> = y.as_standard_layout().iter().copied().collect();
        members.push(("Y", npy::encode(y.shape(), &v)));
    }
    let meta = serde_json::json!({
        "n_photons": ds.metadata.n_photons,
        "intensity_scale": ds.metadata.intensity_scale,
    });
    members.push(("_metadata", npy::encode_str(&meta.to_string())));
    npy::write_npz(std::fs::File::create(path).expect("created"), &members).expect("written");
}

/// Each bad dataset with the words its error must contain.
fn bad_datasets(base: &Dataset) -> Vec<(&'static str, Dataset, Vec<&'static str>)> {
    let edit = |f: &dyn Fn(&mut Dataset)| {
        let mut d = base.clone();
        f(&mut d);
        d
    };
    vec![
        (
            "nan",
            edit(&|d| d.diffraction[[2, 5, 5]] = f32::NAN),
            vec!["non-finite", "pattern 2"],
        ),
        (
            "inf",
            edit(&|d| d.diffraction[[3, 1, 1]] = f32::INFINITY),
            vec!["non-finite", "pattern 3"],
        ),
        (
            "negative",
            edit(&|d| d.diffraction[[1, 0, 0]] = -1.0),
            vec!["negative amplitude", "pattern 1"],
        ),
        (
            "zero",
            edit(&|d| d.diffraction.fill(0.0)),
            vec!["diffraction", "zero everywhere"],
        ),
        (
            "nan-position",
            edit(&|d| d.positions_px[[4, 0]] = f64::NAN),
            vec!["positions", "non-finite"],
        ),
        (
            "outside",
            edit(&|d| d.positions_px[[0, 0]] = -5.0),
            vec!["position 0", "outside"],
        ),
        (
            "far",
            edit(&|d| {
                d.object = None;
                d.positions_px[[0, 1]] = 1e9;
            }),
            vec!["position 0", "largest object canvas"],
        ),
        (
            "small-probe",
            edit(&|d| d.probe = Array2::from_elem((16, 16), Complex32::new(1.0, 0.0))),
            vec!["probe", "[32, 32]", "[16, 16]"],
        ),
        (
            "zero-probe",
            edit(&|d| d.probe.fill(Complex32::new(0.0, 0.0))),
            vec!["probe", "zero everywhere"],
        ),
        (
            "nan-probe",
            edit(&|d| d.probe[[3, 3]] = Complex32::new(f32::NAN, 0.0)),
            vec!["probe", "non-finite"],
        ),
        (
            "bad-patches",
            edit(&|d| d.patches = Some(ndarray::Array3::zeros((d.n_images(), 16, 16)))),
            vec!["Y", "16, 16]"],
        ),
        ("empty", base.select(&[]), vec!["no patterns"]),
    ]
}

fn finite(o: &Array2<Complex32>) -> bool {
    o.iter().all(|c| c.re.is_finite() && c.im.is_finite())
}

fn epie(iterations: usize) -> IterativeConfig {
    let mut cfg = IterativeConfig::epie();
    cfg.iterations = Some(iterations);
    cfg.device = "cpu".into();
    cfg
}

fn tiny_train() -> TrainConfig {
    let mut t = TrainConfig::quick();
    t.epochs = 1;
    t.grouping.n_groups = Some(8);
    t
}

#[test]
fn bad_data_is_refused_by_every_entry_point() -> TestResult {
    in_child("bad_data_is_refused_by_every_entry_point", || {
        let s = shared();
        let base = read_npz(&s.dataset)?;
        let bundle = Bundle::load(&s.bundle, Device::Cpu)?;
        let dir = tempfile::tempdir()?;
        let trainer = Trainer::new(tiny_model(), tiny_train(), Device::Cpu);
        let mut tries = 0;
        let cases = bad_datasets(&base);
        assert_eq!(cases.len(), BAD_DATASETS);
        for (label, ds, words) in &cases {
            let what = |entry: &str| format!("{label} via {entry}");
            expect_err(ds.validate(), &what("validate"), words);
            let out = dir.path().join(format!("{label}.npz"));
            expect_err(write_npz(ds, &out), &what("write_npz"), &[]);
            assert!(
                !out.exists() && temp_files(dir.path()).is_empty(),
                "{label}: write_npz left a file"
            );
            let raw = dir.path().join(format!("raw_{label}.npz"));
            write_raw_npz(ds, &raw);
            let e = expect_err(read_dataset(&raw), &what("read_dataset"), &[]);
            assert!(e.contains(&format!("raw_{label}.npz")), "{e}");
            expect_err(trainer.fit(ds, &mut SilentObserver), &what("Trainer::fit"), &[]);
            expect_err(
                bundle.reconstruct(ds, &ReconConfig::default()),
                &what("Bundle::reconstruct"),
                &[],
            );
            expect_err(
                reconstruct_iterative(ds, &epie(2), &mut |_| {}),
                &what("reconstruct_iterative"),
                &[],
            );
            tries += 6;
        }
        record("bad-data-api", tries);

        // accepted, documented: one dark pattern, every position twice
        let mut dark = base.clone();
        dark.diffraction.index_axis_mut(Axis(0), 3).fill(0.0);
        let n = base.n_images();
        let twice = base.select(&(0..n).chain(0..n).collect::<Vec<_>>());
        let mut odd = 0;
        for ds in [dark, twice] {
            ds.validate()?;
            trainer.fit(&ds, &mut SilentObserver)?;
            assert!(finite(&bundle.reconstruct(&ds, &ReconConfig::default())?.object));
            let it = reconstruct_iterative(&ds, &epie(2), &mut |_| {})?;
            assert!(finite(&it.reconstruction.object));
            odd += 1;
        }
        record("odd-data-api", odd);

        // bad simulation configurations
        let probe64 = dir.path().join("probe64.npz");
        let mut c64 = SimConfig {
            size_px: 64,
            object_size_px: 100,
            ..SimConfig::default()
        };
        c64.scan.spacing_px = 20.0;
        write_npz(&simulate_on(&c64, Device::Cpu)?, &probe64)?;
        type Edit<'a> = Box<dyn Fn(&mut SimConfig) + 'a>;
        let sims: Vec<(Edit, Vec<&str>)> = vec![
            (Box::new(|c| c.dose_photons = Some(f64::NAN)), vec!["dose_photons"]),
            (Box::new(|c| c.dose_photons = Some(-1.0)), vec!["dose_photons"]),
            (Box::new(|c| c.scan.spacing_px = 0.0), vec!["scan.spacing_px"]),
            (Box::new(|c| c.scan.spacing_px = 1e-9), vec!["scan.spacing_px"]),
            (Box::new(|c| c.size_px = 48), vec!["size_px"]),
            (Box::new(|c| c.object_size_px = 16), vec!["object_size_px"]),
            (
                Box::new(|c| {
                    c.probe.kind = ptycho_workbench::simulate::ProbeKind::File;
                    c.probe.path = Some(probe64.clone());
                }),
                vec!["probe.path", "probe64.npz", "[64, 64]"],
            ),
        ];
        let mut bad_sims = 0;
        for (edit, words) in &sims {
            let mut cfg = small_config();
            edit(&mut cfg);
            expect_err(simulate_on(&cfg, Device::Cpu), &format!("simulate {words:?}"), words);
            bad_sims += 1;
        }
        record("bad-sim-config", bad_sims);
        Ok(())
    })
}

#[test]
fn the_cli_refuses_bad_data_in_one_line() -> TestResult {
    let s = shared();
    let base = read_npz(&s.dataset)?;
    let dir = tempfile::tempdir()?;
    let bundle = s.bundle.to_string_lossy().into_owned();
    let mut tries = 0;
    let cases: Vec<_> = bad_datasets(&base)
        .into_iter()
        .filter(|(l, _, _)| ["nan", "negative", "zero", "far"].contains(l))
        .collect();
    assert_eq!(cases.len(), CLI_BAD);
    for (label, ds, words) in cases {
        let path = dir.path().join(format!("{label}.npz"));
        write_raw_npz(&ds, &path);
        let p = path.to_string_lossy().into_owned();
        let out_dir = dir.path().join(format!("out_{label}"));
        let o = |name: &str| out_dir.join(name).to_string_lossy().into_owned();
        let (o_train, o_recon, o_infer) = (o("train"), o("recon.npz"), o("infer.npz"));
        let runs: [Vec<&str>; 4] = [
            vec!["dataset", "inspect", &p],
            vec![
                "train",
                "--train",
                &p,
                "--epochs",
                "1",
                "--n-groups",
                "8",
                "--device",
                "cpu",
                "--out",
                &o_train,
            ],
            vec![
                "reconstruct",
                "--data",
                &p,
                "--iterations",
                "2",
                "--device",
                "cpu",
                "--out",
                &o_recon,
            ],
            vec![
                "infer", "--bundle", &bundle, "--data", &p, "--device", "cpu", "--out", &o_infer,
            ],
        ];
        for args in runs {
            let err = assert_cli_error(&ptycho(&args), &format!("{label}: {args:?}"));
            assert!(err.contains(&p), "{err}");
            for w in &words {
                assert!(err.contains(w), "{label} {args:?}: error lacks `{w}`: {err}");
            }
            tries += 1;
        }
        for f in ["recon.npz", "infer.npz", "train/wts.h5.zip"] {
            assert!(!out_dir.join(f).exists(), "{label}: {f} was written");
        }
    }
    record("bad-data-cli", tries);
    Ok(())
}

// ---------------------------------------------------------------------------
// full disks

/// A small tmpfs, unmounted when dropped (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` (with the reason printed) when mounting is not possible here.
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            Ok(o) => {
                eprintln!(
                    "skipping the full-disk case: cannot mount a tmpfs ({})",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping the full-disk case: cannot run mount ({e})");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system up to `leave` free bytes.
    fn fill(&self, leave: u64) -> PathBuf {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(self.path())
            .output()
            .expect("df runs");
        let avail: u64 = String::from_utf8_lossy(&out.stdout)
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .expect("df prints the free bytes");
        let filler = self.path().join("filler");
        std::fs::write(&filler, vec![0u8; avail.saturating_sub(leave) as usize]).expect("filler fits");
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

#[test]
fn a_full_disk_loses_nothing() -> TestResult {
    init();
    let Some(fs) = Tmpfs::mount("4m") else {
        return Ok(());
    };
    let ds = small_dataset();
    let train = tiny_train();
    let outcome = Trainer::new(tiny_model(), train.clone(), Device::Cpu).fit(&ds, &mut SilentObserver)?;
    let inputs = BundleInputs {
        outcome: &outcome,
        train_config: &train,
        dataset: &ds,
    };
    let earlier = fs.path().join("data.npz");
    write_npz(&ds, &earlier)?;
    let earlier_bytes = std::fs::read(&earlier)?;
    let filler = fs.fill(100_000);

    let run = fs.path().join("run");
    std::fs::create_dir(&run)?;
    let e = expect_err(save_bundle(&inputs, &run), "bundle on a full disk", &["wts.h5.zip"]);
    assert!(e.contains("No space left on device"), "{e}");
    assert!(!run.join("wts.h5.zip").exists() && temp_files(&run).is_empty());
    assert_eq!(std::fs::read(&earlier)?, earlier_bytes);
    record("full-disk-bundle", 1);

    let mut brighter = ds.clone();
    brighter.diffraction.mapv_inplace(|x| 2.0 * x);
    let e = expect_err(write_npz(&brighter, &earlier), "npz on a full disk", &["data.npz"]);
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(std::fs::read(&earlier)?, earlier_bytes, "the old dataset is intact");
    assert!(temp_files(fs.path()).is_empty());
    std::fs::remove_file(&filler)?;
    write_npz(&brighter, &earlier)?;
    assert_eq!(read_npz(&earlier)?, brighter);
    record("full-disk-npz", 2);
    Ok(())
}

#[test]
fn a_study_on_a_full_disk_records_the_failure_and_keeps_earlier_results() -> TestResult {
    let Some(fs) = Tmpfs::mount("8m") else {
        return Ok(());
    };
    let config = fs.path().join("study.toml");
    std::fs::copy(root().join("data/studies/dose_overlap_ci.toml"), &config)?;
    let out = fs.path().join("study");
    let (c, o) = (
        config.to_string_lossy().into_owned(),
        out.to_string_lossy().into_owned(),
    );
    let run = |dose: &str| {
        ptycho(&[
            "study",
            "run",
            "--config",
            &c,
            "--out",
            &o,
            "--only",
            &format!("stage=datasets,dose={dose}"),
        ])
    };
    let first = run("1e3");
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    let kept = out.join("data/dose_1e3/train.npz");
    let kept_bytes = std::fs::read(&kept)?;
    fs.fill(300_000);
    let second = run("1e5");
    let err = assert_cli_error(&second, "study on a full disk");
    assert!(err.contains("dataset/dose_1e5"), "{err}");
    let rec: serde_json::Value = read_json(&out.join("records/dataset/dose_1e5.json"));
    assert_eq!(rec["status"], "failed");
    assert!(
        rec["error"]
            .as_str()
            .is_some_and(|e| e.contains("No space left on device")),
        "{rec}"
    );
    assert_eq!(std::fs::read(&kept)?, kept_bytes);
    let status = ptycho_workbench::study::study_status(&out)?;
    let state = |id: &str| {
        status
            .jobs
            .iter()
            .find(|j| j.id == id)
            .map(|j| j.state.clone())
            .unwrap_or_default()
    };
    assert_eq!(state("dataset/dose_1e3"), "up to date");
    assert_eq!(state("dataset/dose_1e5"), "failed");
    assert!(temp_files(&out.join("data/dose_1e5")).is_empty());
    record("full-disk-study", 1);
    Ok(())
}

// ---------------------------------------------------------------------------
// kill -9

fn history_losses(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("history.csv"))
        .expect("history.csv")
        .lines()
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect()
}

fn weights_member(bundle: &Path) -> Vec<u8> {
    real_members(bundle)
        .into_iter()
        .find(|(n, _)| n == "diffraction_to_obj/weights.safetensors")
        .expect("weights member")
        .1
}

/// Every file of a run folder is complete: JSON parses, a bundle loads
/// (checksums verified).
fn assert_complete(dir: &Path) {
    for e in std::fs::read_dir(dir).expect("run folder") {
        let p = e.expect("entry").path();
        let name = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a temp file of the killed write: never read
        }
        if name.ends_with(".json") {
            serde_json::from_slice::<serde_json::Value>(&std::fs::read(&p).expect("readable"))
                .unwrap_or_else(|e| panic!("{name} does not parse: {e}"));
        }
        if name.ends_with(".zip") {
            Bundle::load(&p, Device::Cpu).unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
}

#[test]
fn a_training_run_killed_three_times_resumes_to_the_same_result() -> TestResult {
    init();
    let s = shared();
    let dir = tempfile::tempdir()?;
    let data = s.dataset.to_string_lossy().into_owned();
    let args = |out: &Path| -> Vec<String> {
        [
            "train",
            "--train",
            &data,
            "--epochs",
            "2",
            "--n-groups",
            "16",
            "--device",
            "cpu",
            "--seed",
            "5",
            "--resume",
            "--out",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([out.to_string_lossy().into_owned()])
        .collect()
    };
    let clean = dir.path().join("clean");
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args(&clean))
        .env("OMP_NUM_THREADS", "1")
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let killed = dir.path().join("killed");
    let checkpoint = killed.join("checkpoint.safetensors");
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let mut kills = 0;
    // kill points: during the first epoch; right after an epoch checkpoint;
    // while the bundle's temp file is being written
    for point in ["first epoch", "checkpoint", "bundle"] {
        let before = mtime(&checkpoint);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ptycho"))
            .args(args(&killed))
            .env("OMP_NUM_THREADS", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let started = std::time::Instant::now();
        let ready = || match point {
            // the run has started writing (a loaded machine may take seconds to get there)
            "first epoch" => started.elapsed().as_millis() > 700 && killed.join("config.json").exists(),
            "checkpoint" => mtime(&checkpoint) != before,
            // the bundle's temp file exists: it is being written
            _ => temp_files(&killed).iter().any(|n| n.starts_with(".wts.h5.zip.tmp-")),
        };
        while child.try_wait()?.is_none() && !ready() {
            std::thread::yield_now();
        }
        let _ = child.kill(); // SIGKILL
        let status = child.wait()?;
        eprintln!(
            "kill at {point}: {status:?} after {:.1} s; checkpoint: {}; temp files: {:?}",
            started.elapsed().as_secs_f64(),
            checkpoint.exists(),
            temp_files(&killed)
        );
        assert_complete(&killed);
        kills += 1;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ptycho"))
        .args(args(&killed))
        .env("OMP_NUM_THREADS", "1")
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_complete(&killed);
    assert!(
        temp_files(&killed).is_empty(),
        "stale temp files: {:?}",
        temp_files(&killed)
    );
    assert_eq!(history_losses(&killed), history_losses(&clean));
    assert_eq!(
        weights_member(&killed.join("wts.h5.zip")),
        weights_member(&clean.join("wts.h5.zip")),
        "the resumed run's weights differ from the uninterrupted run's"
    );
    let result = read_json(&killed.join("train_result.json"));
    assert_eq!(result["status"], "completed");
    assert_eq!(result["epochs_completed"], 2);
    record("kill-train-resume", kills);
    Ok(())
}

// ---------------------------------------------------------------------------
// seeded mutation fuzzing (cargo fuzz needs a nightly toolchain; this loop
// runs everywhere, bounded)

fn mutate(rng: &mut ChaCha8Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = b.len().max(1);
        match rng.random_range(0..6) {
            0 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
            1 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                b[i] = [0u8, 0xff, b'9', b'(', b',', b'"', b'[', b'\n'][rng.random_range(0..8)];
            }
            2 => b.truncate(rng.random_range(0..len)),
            3 => {
                let i = rng.random_range(0..=b.len());
                let junk: Vec<u8> = (0..rng.random_range(1..16)).map(|_| rng.random()).collect();
                b.splice(i..i, junk);
            }
            4 if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let j = (i + rng.random_range(1..64)).min(b.len());
                let chunk = b[i..j].to_vec();
                b.splice(i..i, chunk);
            }
            _ if !b.is_empty() => {
                let i = rng.random_range(0..b.len());
                let j = (i + rng.random_range(1..32)).min(b.len());
                b.drain(i..j);
            }
            _ => {}
        }
    }
    b
}

/// Runs `f` on `count` mutations of `seed_input`; a panic fails with the input.
fn fuzz(name: &str, seed: u64, count: usize, seed_input: &[u8], f: &dyn Fn(&[u8])) -> usize {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for k in 0..count {
        let input = mutate(&mut rng, seed_input);
        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&input))).is_err() {
            let path = root().join(format!("target/reliability/fuzz-{name}-{k}.bin"));
            let _ = std::fs::write(&path, &input);
            panic!("{name}: mutation {k} panicked (input saved to {})", path.display());
        }
    }
    count
}

#[test]
fn seeded_mutations_of_every_pure_rust_reader_never_panic() -> TestResult {
    in_child("seeded_mutations_of_every_pure_rust_reader_never_panic", || {
        let s = shared();
        let dir = tempfile::tempdir()?;
        let p = Path::new("fuzz.npy");
        let inputs = [
            npy::encode(&[3, 4], &(0..12).map(|i| i as f32).collect::<Vec<_>>()),
            npy::encode(&[2, 2], &[Complex32::new(1.0, 2.0); 4]),
            npy::encode_str("{\"n_photons\": 1e4}"),
        ];
        let mut n = 0;
        for (k, input) in inputs.iter().enumerate() {
            n += fuzz("npy", k as u64, MUTATIONS / 3, input, &|b| {
                let _ = npy::decode(b, p, "x");
            });
        }
        record("fuzz-npy", n);

        // a dataset NPZ of 4 patterns
        let small = read_npz(&s.dataset)?.select(&[0, 1, 2, 3]);
        let npz = dir.path().join("small.npz");
        write_npz(&small, &npz)?;
        let target = dir.path().join("fuzz.npz");
        let n = fuzz("npz", 10, MUTATIONS / 3, &std::fs::read(&npz)?, &|b| {
            std::fs::write(&target, b).expect("written");
            let _ = read_npz(&target);
        });
        record("fuzz-npz", n);

        let manifest = real_members(&s.bundle)
            .into_iter()
            .find(|(n, _)| n == "manifest.json")
            .expect("manifest")
            .1;
        serde_json::from_slice::<BundleManifestV1>(&manifest)?;
        let n = fuzz("manifest", 11, MUTATIONS, &manifest, &|b| {
            let _ = serde_json::from_slice::<BundleManifestV1>(b);
        });
        record("fuzz-manifest", n);

        let study = std::fs::read(root().join("data/studies/dose_overlap_ci.toml"))?;
        let n = fuzz("study", 12, MUTATIONS, &study, &|b| {
            if let Ok(text) = std::str::from_utf8(b) {
                let _ = StudyConfig::from_toml(text);
            }
        });
        record("fuzz-study-toml", n);

        let sim = toml::to_string(&small_config())?;
        let n = fuzz("sim", 13, MUTATIONS, sim.as_bytes(), &|b| {
            if let Ok(text) = std::str::from_utf8(b)
                && let Ok(cfg) = SimConfig::from_toml(text)
            {
                let _ = cfg.validate();
            }
        });
        record("fuzz-sim-toml", n);
        Ok(())
    })
}

// ---------------------------------------------------------------------------
// the record

const BEGIN: &str = "<!-- cases:begin (generated from tests/reliability.rs; PTYCHO_BLESS=1 cargo test --test reliability rewrites it) -->";
const END: &str = "<!-- cases:end -->";

fn cases_table() -> String {
    let mut t = String::from("| id | area | fault tried | tries per run | outcome |\n|---|---|---|---|---|\n");
    for c in CASES {
        let tries = match c.covered_by {
            Some(test) => format!("{} (`{test}`)", c.tries),
            None => c.tries.to_string(),
        };
        t.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            c.id, c.area, c.fault, tries, c.outcome
        ));
    }
    let sum = |keep: &dyn Fn(&Case) -> bool| CASES.iter().filter(|c| keep(c)).map(|c| c.tries).sum::<usize>();
    t.push_str(&format!(
        "\n**Totals: {} cases; {} targeted tries per test run ({} of them in other test files) and {} seeded \
         mutations.**\n",
        CASES.len(),
        sum(&|c| c.area != "fuzzing"),
        sum(&|c| c.covered_by.is_some()),
        sum(&|c| c.area == "fuzzing"),
    ));
    t
}

#[test]
fn the_record_in_docs_matches_the_cases() -> TestResult {
    let source = include_str!("reliability.rs");
    for c in CASES {
        match c.covered_by {
            Some(test) => {
                let (file, name) = test.split_once("::").expect("file::test");
                let text = std::fs::read_to_string(root().join(file))?;
                assert!(text.contains(&format!("fn {name}(")), "{test} does not exist");
            }
            None => {
                let direct = source.contains(&format!("record(\"{}\"", c.id));
                let prefix =
                    c.id.split_once('-')
                        .map(|(p, _)| format!("record(&format!(\"{p}-{{kind}}\")"));
                assert!(
                    direct || prefix.is_some_and(|p| source.contains(&p)),
                    "no test records `{}`",
                    c.id
                );
            }
        }
    }
    let ids: std::collections::BTreeSet<_> = CASES.iter().map(|c| c.id).collect();
    assert_eq!(ids.len(), CASES.len(), "duplicate case ids");

    let path = root().join("docs/reliability.md");
    let doc = std::fs::read_to_string(&path)?;
    let (head, rest) = doc.split_once(BEGIN).expect("docs/reliability.md has the begin marker");
    let (table, tail) = rest.split_once(END).expect("docs/reliability.md has the end marker");
    let want = format!("\n{}", cases_table());
    if table != want {
        if std::env::var_os("PTYCHO_BLESS").is_some() {
            std::fs::write(&path, format!("{head}{BEGIN}{want}{END}{tail}"))?;
        } else {
            panic!(
                "docs/reliability.md is out of date with CASES: run `PTYCHO_BLESS=1 cargo test --test reliability the_record`"
            );
        }
    }
    Ok(())
}
