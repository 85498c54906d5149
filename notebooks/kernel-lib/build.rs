//! Adds exports.map (torch-sys's C functions, by name; make_exports.py) to
//! the link: mold and lld merge it with the version script rustc writes, so
//! those functions are exported next to the Rust symbols. GNU ld refuses a
//! second anonymous version script, so the map is added only where rustc
//! links with its own lld by default (x86_64 Linux; evcxr uses mold where it
//! is installed); elsewhere a cell that calls tch's C functions directly
//! fails to load, and everything else works.
fn main() {
    let map = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("exports.map");
    println!("cargo:rerun-if-changed={}", map.display());
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if arch == "x86_64" && os == "linux" {
        println!("cargo:rustc-link-arg=-Wl,--version-script={}", map.display());
    }
}
