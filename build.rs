//! Builds the JavaScript engine component (`plugins/js-engine`) from source
//! for wasm32-wasip2, so the gateway embeds it (`src/plugins/js.rs`).
//!
//! The engine is QuickJS, C compiled with clang against wasi-libc: Debian's
//! `clang`, `lld`, `llvm` (for `llvm-ar`), `wasi-libc` and
//! `libclang-rt-dev-wasm32`, plus the Rust target `wasm32-wasip2`
//! (`tests/toolchain` installs them). rquickjs-sys expects a WASI SDK
//! layout (`bin/clang`, `bin/ar`, `share/wasi-sysroot`); the build lays one
//! out over those packages in its target dir. A nested cargo builds the
//! crate with the `plugin` profile into `target/js-engine` (a target dir of
//! its own: the outer cargo holds `target/`'s lock), so it is built once
//! and rebuilt only when the engine's sources change.
//!
//! `HOOKGATE_JS_ENGINE_WASM=<path>` embeds a component built beforehand
//! from this source instead (for a cross build, where the nested cargo
//! cannot run).

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=plugins/js-engine");
    println!("cargo:rerun-if-changed=wit");
    println!("cargo:rerun-if-env-changed=HOOKGATE_JS_ENGINE_WASM");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    let engine = match std::env::var_os("HOOKGATE_JS_ENGINE_WASM") {
        Some(path) => PathBuf::from(path),
        None => build_engine(),
    };
    let bytes = std::fs::read(&engine).unwrap_or_else(|e| {
        panic!(
            "cannot read the JavaScript engine {}: {e}",
            engine.display()
        )
    });
    std::fs::write(out.join("js_engine.wasm"), bytes).expect("write the engine to OUT_DIR");
}

fn build_engine() -> PathBuf {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("js-engine");
    let sdk = wasi_sdk(&target_dir.join("wasi-sdk"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args(["build", "--quiet", "--locked", "-p", "js-engine"])
        .args(["--target", TARGET, "--profile", "plugin"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("WASI_SDK", &sdk);
    // What the outer cargo set for this script, not for a build of its own
    // (clippy's wrapper included: lints are for the workspace's own check).
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run cargo: {e}"));
    if !status.success() {
        panic!(
            "building the JavaScript engine (plugins/js-engine) for {TARGET} failed; it needs \
             the Rust target {TARGET} and Debian's clang, lld, llvm, wasi-libc and \
             libclang-rt-dev-wasm32: `bash tests/toolchain` installs them"
        );
    }
    target_dir
        .join(TARGET)
        .join("plugin")
        .join("js_engine.wasm")
}

/// Lays out the WASI SDK shape rquickjs-sys looks for over Debian's
/// packages: a clang that takes Rust's `wasm32-wasip2` target name for
/// clang's `wasm32-wasi`, llvm's archiver, and wasi-libc as the sysroot.
fn wasi_sdk(dir: &Path) -> PathBuf {
    let bin = dir.join("bin");
    let sysroot = dir.join("share/wasi-sysroot");
    std::fs::create_dir_all(&bin).expect("create the WASI SDK dir");
    std::fs::create_dir_all(sysroot.join("lib")).expect("create the WASI SDK dir");
    let clang = find(&["clang", "clang-14", "clang-16", "clang-19"])
        .expect("the JavaScript engine needs clang (Debian: clang); `bash tests/toolchain`");
    let ar = find(&["llvm-ar", "llvm-ar-14", "llvm-ar-16", "llvm-ar-19"])
        .expect("the JavaScript engine needs llvm-ar (Debian: llvm); `bash tests/toolchain`");
    let include = Path::new("/usr/include/wasm32-wasi");
    let lib = Path::new("/usr/lib/wasm32-wasi");
    assert!(
        include.join("stdlib.h").exists(),
        "the JavaScript engine needs wasi-libc's headers in {} (Debian: wasi-libc); \
         `bash tests/toolchain`",
        include.display()
    );
    let wrapper = format!(
        "#!/bin/sh\n# Made by hookgate's build.rs: clang for wasi-libc's target name.\n\
         for a in \"$@\"; do\n  shift\n  case \"$a\" in\n    --target=wasm32-wasi*) set -- \"$@\" --target=wasm32-wasi ;;\n    *) set -- \"$@\" \"$a\" ;;\n  esac\ndone\nexec {} \"$@\"\n",
        clang.display()
    );
    write_if_changed(&bin.join("clang"), wrapper.as_bytes());
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("clang"), std::fs::Permissions::from_mode(0o755))
            .expect("make the clang wrapper executable");
    }
    link(&ar, &bin.join("ar"));
    link(include, &sysroot.join("include"));
    link(lib, &sysroot.join("lib/wasm32-wasi"));
    dir.to_path_buf()
}

fn find(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn link(to: &Path, at: &Path) {
    if std::fs::read_link(at).ok().as_deref() == Some(to) {
        return;
    }
    let _ = std::fs::remove_file(at);
    std::os::unix::fs::symlink(to, at)
        .unwrap_or_else(|e| panic!("cannot link {} to {}: {e}", at.display(), to.display()));
}

/// Writes only when the bytes differ, so the engine's build sees no change.
fn write_if_changed(path: &Path, bytes: &[u8]) {
    if std::fs::read(path).ok().as_deref() != Some(bytes) {
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
