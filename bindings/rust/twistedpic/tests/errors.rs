//! Failures come back as Error values with the library's code and a message
//! naming what is at fault; the registry keeps working afterwards.
mod common;

use common::{options, registry, CONFIG};
use twistedpic::{Code, Error, Options, Registry, Tier};

#[track_caller]
fn assert_error(err: Error, code: Code, needle: &str) {
    assert_eq!(err.code(), code, "{err}");
    assert!(err.message().contains(needle), "{err:?} should mention {needle:?}");
    assert_eq!(err.to_string(), format!("{}: {}", code.name(), err.message()));
}

#[test]
fn unknown_model_is_not_found() {
    let reg = registry();
    assert_error(reg.acquire("zz").unwrap_err(), Code::NotFound, "model 'zz' is not configured (configured: a, b, c)");
    assert_error(reg.preload("zz").unwrap_err(), Code::NotFound, "'zz'");
    assert_error(reg.unload("zz", Tier::Disk).unwrap_err(), Code::NotFound, "'zz'");
    assert!(reg.acquire("a").is_ok());
}

#[test]
fn too_small_a_device_is_resource_exhausted() {
    // admission_timeout_ms 0: "b" fails at once instead of waiting for a's lease to end.
    let no_wait = CONFIG.replace(r#""host_budget_bytes""#, r#""admission_timeout_ms": 0, "host_budget_bytes""#);
    let reg = Registry::from_str(&no_wait, options(6)).unwrap();
    let a = reg.acquire("a").unwrap();
    assert_error(reg.acquire("b").unwrap_err(), Code::ResourceExhausted, "cannot load 'b': needs 4.00 GiB");
    drop(a);
    assert_eq!(reg.acquire("b").unwrap().name(), "b");
}

#[test]
fn bad_config_names_the_field() {
    let err = Registry::from_str(r#"{"models": {"a": {"path": "/x", "dtype": "fp8"}}}"#, options(10)).unwrap_err();
    assert_error(err, Code::InvalidArgument, "<string>: models.a.dtype: unknown dtype 'fp8'");
    let err = Registry::from_str(CONFIG, options(10).preset("warp")).unwrap_err();
    assert_error(err, Code::InvalidArgument, "unknown preset 'warp'");
    // Real weights (the CUDA or the CPU device): these models have none on
    // disk, and the library reads their folders when the registry is created.
    let err = Registry::from_str(CONFIG, Options::new()).unwrap_err();
    assert_error(err, Code::NotFound, "model 'a': model 'org/a' is not in the Hugging Face cache");
    let err = Registry::from_str(r#"{"models": {"b": {"path": "/models/b"}}}"#, Options::new()).unwrap_err();
    assert_error(err, Code::NotFound, "model 'b': model folder '/models/b' does not exist");
    let err = registry().acquire("a\0b").unwrap_err();
    assert_error(err, Code::InvalidArgument, "NUL");
}

#[test]
fn config_files() {
    let missing = std::env::temp_dir().join("twistedpic-rust-no-such-dir/tp.json");
    let err = Registry::from_file(&missing, options(10)).unwrap_err();
    assert_error(err, Code::NotFound, missing.to_str().unwrap());

    let path = std::env::temp_dir().join(format!("twistedpic-rust-{}.json", std::process::id()));
    std::fs::write(&path, CONFIG).unwrap();
    let reg = Registry::from_file(&path, options(10));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(reg.unwrap().list().unwrap().len(), 3);
}

#[test]
fn unloading_a_leased_model_fails_the_precondition() {
    let reg = registry();
    let lease = reg.acquire("a").unwrap();
    assert_error(reg.unload("a", Tier::Host).unwrap_err(), Code::FailedPrecondition, "live lease");
    assert_error(
        reg.unload_all(Tier::Disk).unwrap_err(),
        Code::FailedPrecondition,
        "still leased, left on the device: a",
    );
    assert_error(reg.unload("a", Tier::Device).unwrap_err(), Code::InvalidArgument, "tier");
    drop(lease);
    assert!(reg.unload("a", Tier::Host).is_ok());
}

#[test]
fn codes_map_both_ways() {
    for code in [Code::Cancelled, Code::NotFound, Code::FailedPrecondition, Code::DataLoss, Code::Unknown] {
        assert_eq!(Code::from_raw(code.raw()), code);
    }
    assert_eq!((Code::NotFound.raw(), Code::NotFound.name()), (5, "NOT_FOUND"));
    assert_eq!(Code::from_raw(4), Code::Unknown, "a code tp.h does not define");
    assert_eq!(Code::from_raw(99), Code::Unknown);
    assert_eq!(Tier::from_raw(7), Tier::Unknown);
}
