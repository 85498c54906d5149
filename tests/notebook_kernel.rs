//! The notebooks' kernel launcher (`scripts/evcxr_kernel.sh`), run with a
//! stand-in kernel that reports the environment it was given: one build
//! folder per running kernel, the users' optimisation settings, and a
//! caller's own folders kept.
mod common;

use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A stand-in for evcxr_jupyter: writes its build folder, config folder and
/// arguments into `$REPORT`, then waits until `$RELEASE` exists.
fn fake_kernel(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("fake_kernel.sh");
    std::fs::write(
        &path,
        "#!/bin/sh\nprintf '%s\\n%s\\n%s\\n' \"${EVCXR_TMPDIR:-}\" \"${EVCXR_CONFIG_DIR:-}\" \"$*\" > \"$REPORT.tmp\"\n\
         mv \"$REPORT.tmp\" \"$REPORT\"\nwhile [ ! -e \"$RELEASE\" ]; do sleep 0.05; done\n",
    )
    .unwrap();
    Command::new("chmod").arg("+x").arg(&path).status().unwrap();
    path
}

/// A running launcher; dropping it lets the stand-in end and waits for it
/// (also when an assertion fails first).
struct Kernel {
    child: Child,
    release: PathBuf,
}

impl Drop for Kernel {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.release, "");
        let _ = self.child.wait();
    }
}

fn launch(dir: &Path, name: &str, env: &[(&str, &str)]) -> Kernel {
    let mut command = Command::new("bash");
    command
        .arg(root().join("scripts/evcxr_kernel.sh"))
        .args(["--control_file", name])
        .env("PTYCHO_EVCXR_JUPYTER", dir.join("fake_kernel.sh"))
        .env("PTYCHO_EVCXR_KERNEL_DIR", dir.join("kernels"))
        .env("REPORT", dir.join(format!("{name}.report")))
        .env("RELEASE", dir.join(format!("{name}.release")))
        .env_remove("EVCXR_TMPDIR")
        .env_remove("EVCXR_CONFIG_DIR")
        .stdout(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    Kernel {
        child: command.spawn().unwrap(),
        release: dir.join(format!("{name}.release")),
    }
}

/// The stand-in's report: build folder, config folder, arguments.
fn report(dir: &Path, name: &str) -> Vec<String> {
    let path = dir.join(format!("{name}.report"));
    let started = Instant::now();
    while !path.exists() {
        assert!(started.elapsed() < Duration::from_secs(20), "{name} never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

/// Ends a kernel and checks that the launcher exited as its kernel did.
fn release(mut kernel: Kernel) {
    std::fs::write(&kernel.release, "").unwrap();
    assert!(kernel.child.wait().unwrap().success());
}

#[test]
fn each_running_kernel_gets_its_own_build_folder_and_the_users_settings() -> TestResult {
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    fake_kernel(d);
    let kernels = d.join("kernels");
    let first = launch(d, "a", &[]);
    let a = report(d, "a");
    let second = launch(d, "b", &[]);
    let b = report(d, "b");
    assert_eq!(a[0], kernels.join("0").to_string_lossy(), "{a:?}");
    assert_eq!(
        b[0],
        kernels.join("1").to_string_lossy(),
        "a second kernel at once: {b:?}"
    );
    assert_eq!(a[2], "--control_file a", "the arguments pass through");
    // cells unoptimised, every dependency optimised (a level above the build
    // folders, where evcxr's own config does not overwrite it)
    assert_eq!(a[1], kernels.join("config").to_string_lossy());
    assert_eq!(std::fs::read_to_string(kernels.join("config/init.evcxr"))?, ":opt 0\n");
    let cargo = std::fs::read_to_string(kernels.join(".cargo/config.toml"))?;
    assert!(
        cargo.contains("[profile.dev.package.\"*\"]") && cargo.contains("opt-level = 2"),
        "{cargo}"
    );
    // the first kernel ends: its folder is free again for the next one
    release(first);
    let third = launch(d, "c", &[]);
    assert_eq!(report(d, "c")[0], kernels.join("0").to_string_lossy());
    release(second);
    release(third);
    // a caller with its own folders (scripts/run_notebooks.py) keeps them
    let own = launch(
        d,
        "ci",
        &[("EVCXR_TMPDIR", "/ci/build"), ("EVCXR_CONFIG_DIR", "/ci/config")],
    );
    assert_eq!(
        report(d, "ci")[..2],
        ["/ci/build".to_string(), "/ci/config".to_string()]
    );
    release(own);
    Ok(())
}

#[test]
fn the_notebook_library_exports_every_c_function_of_the_locked_torch_sys() {
    // exports.map names torch-sys's C functions one by one; a torch-sys
    // update that adds or renames one must regenerate it, or a cell calling
    // the new function fails to load
    let script = common::root().join("notebooks/kernel-lib/make_exports.py");
    let out = std::process::Command::new(common::python())
        .arg(&script)
        .arg("--check")
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let map = std::fs::read_to_string(common::root().join("notebooks/kernel-lib/exports.map")).unwrap();
    for name in ["atm_load_str", "at_shallow_clone", "get_and_reset_last_err"] {
        assert!(map.contains(&format!("    {name};\n")), "{name} missing");
    }
}
