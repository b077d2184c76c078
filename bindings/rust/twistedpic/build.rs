//! Adds libtwistedpic's directory (found by twistedpic-sys) as an rpath, so this
//! crate's tests run without LD_LIBRARY_PATH.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    if let Ok(dirs) = std::env::var("DEP_TWISTEDPIC_LIB_DIR") {
        for dir in dirs.split(':').filter(|d| !d.is_empty()) {
            println!("cargo::rustc-link-arg=-Wl,-rpath,{dir}");
        }
    }
}
