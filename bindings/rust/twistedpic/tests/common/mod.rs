//! Shared by the integration tests: a three-model config (4 GiB each) and a
//! registry on a simulated device, driven by tick() only.
#![allow(dead_code)]
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use twistedpic::{ModelInfo, Options, Registry};

pub const GIB: u64 = 1 << 30;

pub const CONFIG: &str = r#"{
  "models": {
    "a": {"model_id": "org/a", "pipeline_type": "sd3", "size_bytes": "4GiB", "dtype": "fp16"},
    "b": {"path": "/models/b", "pipeline_type": "sd3", "size_bytes": "4GiB", "priority": 3},
    "c": {"path": "/models/c", "pipeline_type": "sd3", "size_bytes": "4GiB"}
  },
  "host_budget_bytes": "16GiB"
}"#;

/// A simulated device of `device_gib` GiB, no background thread.
pub fn options(device_gib: u64) -> Options {
    Options::new().simulated_device(device_gib * GIB).background_thread(false)
}

/// CONFIG on a 10 GiB device: two models fit, three do not.
pub fn registry() -> Registry {
    Registry::from_str(CONFIG, options(10)).expect("create the registry")
}

pub fn row(registry: &Registry, name: &str) -> ModelInfo {
    registry.list().unwrap().into_iter().find(|m| m.name == name).expect("a configured model")
}

/// Counts its drops: shows when the registry lets go of a value it owns.
#[derive(Clone, Default)]
pub struct DropCounter(pub Arc<AtomicUsize>);

impl DropCounter {
    pub fn drops(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    /// A value whose drop this counter counts.
    pub fn token(&self) -> Token {
        Token(self.0.clone())
    }
}

pub struct Token(Arc<AtomicUsize>);

impl Drop for Token {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Text of a panic payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}
