//! A first twistedpic program, in two parts.
//!
//! 1. The registry: two models on a simulated 12 GiB device. The
//!    "max_gpu_availability" preset moves a model to host memory as soon as
//!    its last lease ends, so the GPU is free for other programs.
//! 2. Generation: a picture from the shipped default model (models/tiny-sd3),
//!    with progress, saved as a PNG.
//!
//! Run: TWISTEDPIC_LIB_DIR=<dir of libtwistedpic.so> LD_LIBRARY_PATH=<same dir> \
//!      cargo run -- [MODEL_DIR] [OUT.png]
use std::path::PathBuf;

use twistedpic::{Options, Registry, Request, Stage};

const CONFIG: &str = r#"{
  "models": {
    "sd35_large":  {"model_id": "stabilityai/stable-diffusion-3.5-large",  "pipeline_type": "sd3", "size_bytes": "8GiB"},
    "sd35_medium": {"model_id": "stabilityai/stable-diffusion-3.5-medium", "pipeline_type": "sd3", "size_bytes": "3GiB"}
  }
}"#;

const GIB: f64 = (1u64 << 30) as f64;

fn print_models(registry: &Registry) -> twistedpic::Result<()> {
    println!(
        "  {:<12} {:<10} {:<6} {:>8} {:>8} {:>6}",
        "model", "state", "tier", "device", "host", "leases"
    );
    for m in registry.list()? {
        println!(
            "  {:<12} {:<10} {:<6} {:>6.1}Gi {:>6.1}Gi {:>6}",
            m.name,
            m.state,
            m.tier,
            m.device_bytes as f64 / GIB,
            m.host_bytes as f64 / GIB,
            m.leases
        );
    }
    Ok(())
}

/// Generates one picture with the model in `model_dir` and saves it to `out`.
fn generate(model_dir: &str, out: &PathBuf) -> twistedpic::Result<()> {
    let config = format!(
        r#"{{"models": {{"tiny": {{"path": "{model_dir}", "pipeline_type": "sd3", "dtype": "fp32"}}}}}}"#
    );
    // No simulated device: real weights, on the GPU or else the CPU.
    let registry = Registry::from_str(&config, Options::new())?;
    let pipeline = registry.pipeline("tiny")?;
    let request = Request::new()
        .prompt("a red circle on a white background")
        .seed(5)
        .progress(|p| {
            match p.stage {
                Stage::Denoise => eprint!("\r  step {}/{}", p.step, p.steps),
                Stage::Waiting => eprintln!("  loading {}", p.model),
                Stage::Decode => eprintln!("\n  decoding"),
                _ => {}
            }
            true // false would cancel
        });
    let generation = pipeline.run(&request)?;
    let image = &generation.images[0];
    image.save(out)?;
    println!(
        "wrote {} ({}x{}, {} steps, {:.2} s)",
        out.display(),
        image.width(),
        image.height(),
        generation.info.steps,
        generation.info.total.as_secs_f64()
    );
    Ok(())
}

fn main() -> Result<(), twistedpic::Error> {
    println!("twistedpic {}", twistedpic::version());
    let options = Options::new()
        .simulated_device(12 << 30)
        .preset("max_gpu_availability");
    let registry = Registry::from_str(CONFIG, options)?;
    registry.subscribe(|e| {
        println!(
            "  event: {} {} -> {} ({}), {:.1} GiB",
            e.model,
            e.from,
            e.to,
            e.reason,
            e.bytes as f64 / GIB
        )
    })?;

    println!("\nacquiring sd35_large:");
    let lease = registry.acquire("sd35_large")?;
    println!(
        "\nwhile {} is leased ({:.1} GiB on the device):",
        lease.name(),
        lease.device_bytes() as f64 / GIB
    );
    print_models(&registry)?;

    println!("\nreleasing it:");
    drop(lease);
    println!("\nafter the release:");
    print_models(&registry)?;

    let mut args = std::env::args().skip(1);
    let model_dir = args.next().unwrap_or_else(|| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/tiny-sd3").to_owned()
    });
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("twistedpic-rust-example.png"));
    println!("\ngenerating with {model_dir}:");
    generate(&model_dir, &out)
}
