//! Generation on the shipped default model (models/tiny-sd3, 32x32, on the
//! CUDA device or the CPU): images equal the C++ CLI's to the byte, progress,
//! cancellation, threads, and bad input.
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;

use twistedpic::{CancelHandle, Code, Error, Image, Options, Pipeline, Progress, Registry, Request, Stage, Tier};

/// models/tiny-sd3 of this source tree (or TWISTEDPIC_MODEL_DIR).
fn model_dir() -> PathBuf {
    match std::env::var_os("TWISTEDPIC_MODEL_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../models/tiny-sd3").canonicalize().unwrap(),
    }
}

fn registry() -> Registry {
    let dir = model_dir();
    let config = format!(
        r#"{{"models": {{"tiny": {{"path": "{}", "pipeline_type": "sd3", "dtype": "fp32"}}}}}}"#,
        dir.to_str().unwrap()
    );
    Registry::from_str(&config, Options::new()).expect("create the registry")
}

fn request(prompt: &str, seed: u64, steps: u32) -> Request {
    Request::new().prompt(prompt).seed(seed).steps(steps)
}

fn generate(pipeline: &Pipeline, prompt: &str, seed: u64) -> Vec<u8> {
    let images = pipeline.generate(&request(prompt, seed, 4)).expect("generate");
    assert_eq!(images.len(), 1);
    images[0].pixels().to_vec()
}

/// A fresh folder under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("twistedpic-rust-{what}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[track_caller]
fn assert_error(err: Error, code: Code, needle: &str) {
    assert_eq!(err.code(), code, "{err}");
    assert!(err.message().contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn the_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Pipeline>();
    send_sync::<Request>();
    send_sync::<Image>();
    send_sync::<CancelHandle>();
    send_sync::<Progress>();
}

#[test]
fn saves_the_same_png_as_the_cli() {
    const PROMPT: &str = "a red circle on a white background";
    let Some(lib_dir) = std::env::var_os("TWISTEDPIC_LIB_DIR") else {
        eprintln!("SKIPPED saves_the_same_png_as_the_cli: TWISTEDPIC_LIB_DIR is not set, so no CLI to compare with");
        return;
    };
    let cli = Path::new(&lib_dir).join("twistedpic");
    if !cli.is_file() {
        eprintln!("SKIPPED saves_the_same_png_as_the_cli: no CLI at {}", cli.display());
        return;
    }
    let dir = TempDir::new("cli");
    let cli_dir = dir.0.join("cli");
    std::fs::create_dir(&cli_dir).unwrap();
    // The CLI runs while this process generates.
    let child = std::process::Command::new(&cli)
        .args(["-q", "--model-dir"])
        .arg(model_dir())
        .args(["generate", PROMPT, "--seed", "5", "-o"])
        .arg(&cli_dir)
        .output();

    let reg = registry();
    let pipeline = reg.pipeline("tiny").unwrap();
    let images = pipeline.generate(&Request::new().prompt(PROMPT).seed(5)).unwrap();
    assert_eq!(images.len(), 1);
    let ours = dir.0.join("ours.png");
    images[0].save(&ours).unwrap();
    let ours = std::fs::read(ours).unwrap();
    assert_eq!(images[0].png_bytes().unwrap(), ours, "save() and png_bytes() agree");

    let out = child.expect("run the CLI");
    assert!(out.status.success(), "the CLI failed: {}", String::from_utf8_lossy(&out.stderr));
    let pngs: Vec<_> = std::fs::read_dir(&cli_dir).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(pngs.len(), 1, "the CLI wrote {pngs:?}");
    let theirs = std::fs::read(&pngs[0]).unwrap();
    assert!(
        ours == theirs,
        "{} differs from the binding's PNG ({} vs {} bytes)",
        pngs[0].display(),
        theirs.len(),
        ours.len()
    );
}

#[test]
fn progress_reaches_every_step() {
    let reg = registry();
    let pipeline = reg.pipeline("tiny").unwrap();
    assert_eq!((pipeline.name(), pipeline.pipeline_type()), ("tiny", "sd3"));
    let sizes = pipeline.sizes().unwrap();
    assert_eq!((sizes.width, sizes.height, sizes.multiple), (32, 32, 8));

    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let req = request("a red circle on a white background", 7, 5).progress(move |p| {
        sink.lock().unwrap().push(p.clone());
        true
    });
    let generation = pipeline.run(&req).unwrap();
    let seen = seen.lock().unwrap();
    let steps: Vec<u32> = seen.iter().filter(|p| p.stage == Stage::Denoise).map(|p| p.step).collect();
    assert_eq!(steps, [1, 2, 3, 4, 5]);
    assert!(seen.iter().all(|p| p.steps == 5));
    assert_eq!(seen[0].stage, Stage::Encode);
    let decode = seen.iter().position(|p| p.stage == Stage::Decode).expect("a decode report");
    assert!(seen[decode..].iter().all(|p| p.stage != Stage::Denoise), "decoding comes after every step");
    let waits: Vec<&str> = seen.iter().filter(|p| p.stage == Stage::Waiting).map(|p| p.model.as_str()).collect();
    assert!(!waits.is_empty() && waits.iter().all(|m| m.starts_with("tiny/")), "{waits:?}");

    let info = &generation.info;
    assert_eq!((info.width, info.height, info.steps, info.seed), (32, 32, 5, 7));
    assert!(info.guidance_scale.is_finite() && info.total > info.denoise);
    assert!(generation.warnings.is_empty());
    let image = &generation.images[0];
    assert_eq!((image.width(), image.height(), image.pixels().len()), (32, 32, 32 * 32 * 3));
    let first = image.pixel(0, 0);
    assert!(image.pixels().chunks(3).any(|p| p != first), "not a constant image");

    // Nothing stays leased; the registry answers for each network.
    for m in reg.list().unwrap() {
        assert_eq!(m.leases, 0, "{}", m.name);
    }
    let vae = reg.info("tiny/vae").unwrap();
    assert_eq!((vae.name.as_str(), vae.pipeline_type.as_str()), ("tiny/vae", "sd3:vae"));
    let plan = reg.plan("tiny/vae").unwrap();
    assert!(plan.fits && !plan.explanation.is_empty(), "{plan:?}");
    assert_error(reg.info("nope").unwrap_err(), Code::NotFound, "nope");
    assert_error(reg.plan("nope").unwrap_err(), Code::NotFound, "nope");
}

#[test]
fn cancels_mid_way_and_the_next_call_works() {
    const PROMPT: &str = "a green triangle on a black background";
    let reg = registry();
    let pipeline = reg.pipeline("tiny").unwrap();
    let expected = generate(&pipeline, PROMPT, 11);

    // The progress closure says no at step 2.
    let steps = Arc::new(Mutex::new(0));
    let counter = steps.clone();
    let req = request(PROMPT, 11, 6).progress(move |p| {
        if p.stage == Stage::Denoise {
            *counter.lock().unwrap() += 1;
        }
        p.step < 2
    });
    assert_error(pipeline.generate(&req).unwrap_err(), Code::Cancelled, "");
    assert_eq!(*steps.lock().unwrap(), 2);
    assert_eq!(generate(&pipeline, PROMPT, 11), expected);

    // Another thread cancels through a handle, at step 2; the closure waits
    // until it has, so the call stops at the next check.
    let (step_tx, step_rx) = mpsc::channel::<u32>();
    let (ack_tx, ack_rx) = mpsc::channel::<()>();
    let ack_rx = Mutex::new(ack_rx);
    let steps = Arc::new(Mutex::new(0));
    let counter = steps.clone();
    let req = request(PROMPT, 11, 6).progress(move |p| {
        if p.stage == Stage::Denoise {
            *counter.lock().unwrap() += 1;
            if p.step == 2 {
                step_tx.send(p.step).unwrap();
                ack_rx.lock().unwrap().recv().unwrap();
            }
        }
        true
    });
    let cancel = req.cancel_handle();
    let canceller = thread::spawn(move || {
        step_rx.recv().unwrap();
        cancel.cancel();
        ack_tx.send(()).unwrap();
    });
    assert_error(pipeline.generate(&req).unwrap_err(), Code::Cancelled, "");
    canceller.join().unwrap();
    assert!(*steps.lock().unwrap() <= 3, "stopped at step {}", steps.lock().unwrap());
    assert!(req.cancel_handle().is_cancelled());
    // A cancelled request stays cancelled; a new one works.
    assert_error(pipeline.generate(&req).unwrap_err(), Code::Cancelled, "cancelled before the call began");
    assert_eq!(generate(&pipeline, PROMPT, 11), expected);
}

#[test]
fn threads_generate_at_once_on_one_pipeline_and_on_two() {
    const PROMPTS: [&str; 2] = ["a red circle on a white background", "an orange circle on a purple background"];
    let reg = registry();
    let first = Arc::new(reg.pipeline("tiny").unwrap());
    let want0 = generate(&first, PROMPTS[0], 21);
    let want1 = generate(&first, PROMPTS[1], 22);
    let second = Arc::new(reg.pipeline("tiny").unwrap());
    for other in [first.clone(), second] {
        // 'static threads: the pipelines are shared through Arcs.
        let p0 = first.clone();
        let t0 = thread::spawn(move || generate(&p0, PROMPTS[0], 21));
        let t1 = thread::spawn(move || generate(&other, PROMPTS[1], 22));
        assert!(t0.join().unwrap() == want0, "thread 0's image");
        assert!(t1.join().unwrap() == want1, "thread 1's image");
    }

    // One request serving two calls at once, from scoped threads.
    let req = request(PROMPTS[0], 21, 4);
    let (a, b) = thread::scope(|s| {
        let a = s.spawn(|| first.generate(&req).unwrap());
        let b = s.spawn(|| first.generate(&req).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert!(a[0].pixels() == want0.as_slice() && b[0].pixels() == want0.as_slice());
}

#[test]
fn a_pipeline_outlives_its_registry_value() {
    let reg = registry();
    let pipeline = reg.pipeline("tiny").unwrap();
    drop(reg); // the C registry lives on with the pipeline
    let images =
        pipeline.generate(&request("a blue square on a yellow background", 3, 2).images_per_prompt(2)).unwrap();
    assert_eq!(images.len(), 2);
    assert_ne!(images[0], images[1], "image i of a prompt uses seed + i");
}

#[test]
fn bad_input_gets_an_error_with_its_code() {
    let reg = registry();
    assert_error(reg.pipeline("nope").unwrap_err(), Code::NotFound, "nope");
    assert_error(reg.pipeline("tiny/vae").unwrap_err(), Code::InvalidArgument, "'vae' network");
    let pipeline = reg.pipeline("tiny").unwrap();

    assert_error(pipeline.generate(&Request::new().seed(1)).unwrap_err(), Code::InvalidArgument, "no prompts");
    let bad_size = Request::new().prompt("x").size(30, 32);
    assert_error(
        pipeline.generate(&bad_size).unwrap_err(),
        Code::InvalidArgument,
        "width 30 is not a positive multiple of 8",
    );
    assert_error(pipeline.generate(&request("x", 1, 1001)).unwrap_err(), Code::InvalidArgument, "steps");
    let bad_count = Request::new().prompt("x").images_per_prompt(0);
    assert_error(pipeline.generate(&bad_count).unwrap_err(), Code::InvalidArgument, "");
    let bad_guidance = Request::new().prompt("x").guidance(f64::INFINITY);
    assert_error(pipeline.generate(&bad_guidance).unwrap_err(), Code::InvalidArgument, "");
    assert_error(Request::new().option("no_such_option", "4").unwrap_err(), Code::Unimplemented, "no_such_option");
    assert_error(pipeline.generate(&Request::new().prompt("a\0b")).unwrap_err(), Code::InvalidArgument, "NUL");

    let image = Image::from_rgb8(2, 1, vec![255, 0, 0, 0, 0, 255]).unwrap();
    assert_error(image.save("/nonexistent/dir/x.png").unwrap_err(), Code::NotFound, "/nonexistent/dir/x.png");
    assert_eq!(&image.png_bytes().unwrap()[..4], b"\x89PNG");
    assert_error(Image::from_rgb8(2, 2, vec![0; 3]).unwrap_err(), Code::InvalidArgument, "12 bytes");

    // The pipeline still works.
    assert_eq!(generate(&pipeline, "a red circle on a white background", 1).len(), 32 * 32 * 3);
}

#[test]
fn text_encoder_offload_moves_the_encoders_to_the_host() {
    let dir = model_dir();
    let config =
        format!(r#"{{"models": {{"tiny": {{"path": "{}", "pipeline_type": "sd3"}}}}}}"#, dir.to_str().unwrap());
    let err = Registry::from_str(&config, Options::new().text_encoder_offload(Tier::Device)).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let reg = Registry::from_str(&config, Options::new().text_encoder_offload(Tier::Host)).unwrap();
    let pipeline = reg.pipeline("tiny").unwrap();
    pipeline.generate(&request("a red circle on a white background", 1, 1)).unwrap();
    assert_eq!(reg.info("tiny/text_encoder").unwrap().tier, Tier::Host);
}

#[test]
fn a_panic_in_progress_cancels_and_reaches_the_caller() {
    let reg = registry();
    let pipeline = reg.pipeline("tiny").unwrap();
    let steps = Arc::new(Mutex::new(0));
    let counter = steps.clone();
    let req = request("x", 1, 4).progress(move |p| {
        if p.stage == Stage::Denoise {
            *counter.lock().unwrap() += 1;
            panic!("boom in progress");
        }
        true
    });
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pipeline.generate(&req))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom in progress"));
    assert_eq!(*steps.lock().unwrap(), 1, "the panic cancelled the call");
    assert_eq!(generate(&pipeline, "x", 1).len(), 32 * 32 * 3, "the pipeline still works");
}
