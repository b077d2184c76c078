//! Finds libtwistedpic: `TWISTEDPIC_LIB_DIR` if set, else `pkg-config --libs twistedpic`.
//! Each library directory is also added as an rpath, so this crate's tests run
//! without LD_LIBRARY_PATH, and is exported to dependents' build scripts as
//! `DEP_TWISTEDPIC_LIB_DIR` (':'-separated) so they can do the same.
use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=TWISTEDPIC_LIB_DIR");
    println!("cargo::rerun-if-env-changed=PKG_CONFIG_PATH");

    let dirs = match env::var_os("TWISTEDPIC_LIB_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            let dir = dir.canonicalize().unwrap_or_else(|e| panic!("TWISTEDPIC_LIB_DIR={}: {e}", dir.display()));
            vec![dir.to_str().expect("TWISTEDPIC_LIB_DIR must be UTF-8").to_owned()]
        }
        None => pkg_config_lib_dirs(),
    };
    for dir in &dirs {
        println!("cargo::rustc-link-search=native={dir}");
        println!("cargo::rustc-link-arg=-Wl,-rpath,{dir}");
    }
    println!("cargo::rustc-link-lib=dylib=twistedpic");
    println!("cargo::metadata=lib_dir={}", dirs.join(":"));
}

/// The `-L` directories of `pkg-config --libs twistedpic` (none when the
/// library is in a default linker path).
fn pkg_config_lib_dirs() -> Vec<String> {
    let out = Command::new("pkg-config").args(["--libs", "twistedpic"]).output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|flag| flag.strip_prefix("-L").map(str::to_owned))
            .collect(),
        Ok(out) => panic!(
            "libtwistedpic not found: set TWISTEDPIC_LIB_DIR to the directory holding \
             libtwistedpic.so, or make `pkg-config --libs twistedpic` work ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("libtwistedpic not found: TWISTEDPIC_LIB_DIR is not set and pkg-config could not run ({e})"),
    }
}
