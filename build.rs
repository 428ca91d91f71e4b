//! Link the `ext3edit` binary as a position-dependent executable on
//! x86_64 Linux. A Rust binary has some 14,000 relative relocations; in a
//! PIE the loader applies them at every start and copies the pages they
//! land on, which was a quarter of the time of a 1 KiB `put` (see
//! docs/BENCHMARKS.md, "Start-up"). The code itself stays
//! position-independent; only the final link changes.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux"
        && arch == "x86_64"
        && env == "gnu"
        && std::env::var_os("EXT3EDIT_PIE").is_none()
    {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    println!("cargo:rerun-if-env-changed=EXT3EDIT_PIE");
}
