//! Compiles bpf/xbond.bpf.c into a BPF object that the crate embeds.

use std::env;
use std::path::PathBuf;

use libbpf_cargo::SkeletonBuilder;

fn main() {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../bpf/xbond.bpf.c");
    let out =
        PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("xbond.bpf.o");
    let arch_include = format!(
        "-I/usr/include/{}-linux-gnu",
        env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_else(|_| "x86_64".into())
    );
    SkeletonBuilder::new()
        .source(&src)
        .obj(&out)
        .clang_args([arch_include.as_str(), "-O2", "-g", "-Wall"])
        .build()
        .unwrap_or_else(|e| panic!("compiling {} with clang failed: {e:#}", src.display()));
    println!("cargo:rerun-if-changed={}", src.display());
}
