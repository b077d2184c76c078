//! Flux through the Rust binding, on the tiny dev-style pipeline of
//! scripts/flux_reference.py (ctest sets TP_FLUX_DEV_DIR from the
//! pipeline.flux_reference fixture): the family is detected from
//! model_index.json, the image equals the CLI's to the byte, and true CFG goes
//! through the generic request option.
use std::path::Path;

use twistedpic::{Code, Options, Registry, Request};

const PROMPT: &str = "a red circle on a white background";

#[test]
fn flux_equals_the_cli_and_takes_true_cfg_as_an_option() {
    let Some(dev) = std::env::var_os("TP_FLUX_DEV_DIR") else {
        eprintln!("SKIPPED flux_equals_the_cli_and_takes_true_cfg_as_an_option: TP_FLUX_DEV_DIR is not set");
        return;
    };
    let dev = dev.into_string().unwrap();
    let config = format!(r#"{{"models": {{"default": {{"path": "{dev}", "dtype": "fp32"}}}}}}"#);
    let registry = Registry::from_str(&config, Options::new()).unwrap();
    let pipeline = registry.pipeline("default").unwrap();
    assert_eq!(pipeline.pipeline_type(), "flux", "detected from model_index.json");
    let request = || Request::new().prompt(PROMPT).seed(5).steps(2).size(48, 32);
    let plain = pipeline.generate(&request()).unwrap();
    assert_eq!((plain.len(), plain[0].width(), plain[0].height()), (1, 48, 32));

    let guided = pipeline
        .generate(&request().negative_prompt("blurry").option("true_cfg_scale", "2").unwrap())
        .unwrap();
    assert_ne!(guided[0].pixels(), plain[0].pixels(), "true CFG with a negative prompt changed nothing");
    let err = pipeline.generate(&request().option("true_cfg_scale", "lots").unwrap()).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let err = pipeline.generate(&request().size(40, 32)).unwrap_err();
    assert!(err.code() == Code::InvalidArgument && err.message().contains("multiple of 16"), "{err}");

    let Some(lib_dir) = std::env::var_os("TWISTEDPIC_LIB_DIR") else { return };
    let cli = Path::new(&lib_dir).join("twistedpic");
    if !cli.is_file() {
        return;
    }
    let out = std::env::temp_dir().join(format!("twistedpic-rust-flux-{}.png", std::process::id()));
    let run = std::process::Command::new(&cli)
        .args(["-q", "--model-dir", &dev, "generate", PROMPT, "--seed", "5", "--steps", "2", "-W", "48", "-H", "32", "-o"])
        .arg(&out)
        .output()
        .expect("run the CLI");
    assert!(run.status.success(), "the CLI failed: {}", String::from_utf8_lossy(&run.stderr));
    let theirs = std::fs::read(&out).unwrap();
    let _ = std::fs::remove_file(&out);
    assert!(theirs == plain[0].png_bytes().unwrap(), "the CLI's PNG differs from the binding's");
}
