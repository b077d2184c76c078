//! A first twistedpic program: two models on a simulated 12 GiB device.
//! The "max_gpu_availability" preset moves a model to host memory as soon as
//! its last lease ends, so the GPU is free for other programs.
//!
//! Run: TWISTEDPIC_LIB_DIR=<dir of libtwistedpic.so> LD_LIBRARY_PATH=<same dir> cargo run
use twistedpic::{Options, Registry};

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
    Ok(())
}
