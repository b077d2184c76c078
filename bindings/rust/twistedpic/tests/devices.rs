//! Several devices (issue #23): the registry's device list and each model's
//! device, on several simulated devices; the runtime's devices.
mod common;

use common::{options, GIB};
use twistedpic::{runtime_devices, Code, Options, Registry};

const TWO_DEVICES: &str = r#"{
  "models": {
    "a": {"path": "/models/a", "size_bytes": "4GiB", "device": "sim:1"},
    "b": {"path": "/models/b", "size_bytes": "2GiB", "device": "sim:0"},
    "c": {"path": "/models/c", "size_bytes": "1GiB", "device": "sim:1"}
  },
  "admission_timeout_ms": 0
}"#;

fn two_devices() -> Registry {
    let opts = Options::new()
        .add_simulated_device("sim:0", 8 * GIB)
        .add_simulated_device("sim:1", 16 * GIB)
        .background_thread(false);
    Registry::from_str(TWO_DEVICES, opts).expect("create the registry")
}

#[test]
fn devices_are_listed_in_order_with_what_they_hold() {
    let reg = two_devices();
    let devices = reg.devices().unwrap();
    assert_eq!(devices.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(), ["sim:0", "sim:1"]);
    assert_eq!((devices[0].total_bytes, devices[1].total_bytes), (8 * GIB, 16 * GIB));
    assert_eq!((devices[0].held_bytes, devices[1].held_bytes), (0, 0));
    assert_eq!(reg.info("a").unwrap().device, "sim:1");
    assert_eq!(reg.info("b").unwrap().device, "sim:0");
    let leases = ["a", "b", "c"].map(|m| reg.acquire(m).unwrap());
    let d = reg.devices().unwrap();
    assert_eq!((d[0].held_bytes, d[0].resident_models, d[0].free_bytes), (2 * GIB, 1, 6 * GIB));
    assert_eq!((d[1].held_bytes, d[1].resident_models, d[1].free_bytes), (5 * GIB, 2, 11 * GIB));
    drop(leases);
    let rows = reg.list().unwrap();
    assert_eq!(rows.iter().map(|m| m.device.as_str()).collect::<Vec<_>>(), ["sim:1", "sim:0", "sim:1"]);
}

#[test]
fn one_simulated_device_is_listed() {
    let reg = Registry::from_str(r#"{"models": {"m": {"path": "/m", "size_bytes": "1GiB"}}}"#, options(4)).unwrap();
    let devices = reg.devices().unwrap();
    assert_eq!(devices.len(), 1);
    assert_eq!(devices[0].total_bytes, 4 * GIB);
    assert_eq!(reg.info("m").unwrap().device, devices[0].name);
}

#[test]
fn bad_simulated_devices_are_refused() {
    let twice = Options::new().add_simulated_device("x", GIB).add_simulated_device("x", GIB);
    let err = Registry::from_str(TWO_DEVICES, twice).err().expect("a repeated name");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    let both = Options::new().simulated_device(GIB).add_simulated_device("x", GIB);
    let err = Registry::from_str(TWO_DEVICES, both).err().expect("both kinds");
    assert_eq!(err.code(), Code::FailedPrecondition, "{err}");
}

#[test]
fn runtime_devices_are_the_cuda_devices_or_the_cpu() {
    let devices = runtime_devices().unwrap();
    assert!(!devices.is_empty());
    let names: Vec<_> = devices.iter().map(|d| d.name.clone()).collect();
    let cuda: Vec<_> = (0..names.len()).map(|i| format!("cuda:{i}")).collect();
    assert!(names == ["cpu"] || names == cuda, "{names:?}");
    for d in &devices {
        assert!(d.total_bytes > 0 && d.free_bytes <= d.total_bytes, "{d:?}");
        assert_eq!(d.held_bytes, 0);
    }
}
