//! Links libtorch so that binaries, tests and notebooks need no environment
//! variables at run time:
//! - an rpath to the libtorch folder that `torch-sys` built against;
//! - `libtorch_cuda` kept linked (rustc passes `--as-needed`, which would drop
//!   it), so the same build uses a GPU when the machine has one.
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
