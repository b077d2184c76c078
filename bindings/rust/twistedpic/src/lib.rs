//! Safe Rust binding of twistedpic: embeddable text-to-image generation on a
//! GPU (or the CPU) whose models live in a registry that keeps them resident,
//! offloads them to host memory or disk, and hands out leases. Built over the
//! C ABI (`tp.h`) declared in `twistedpic-sys`.
//!
//! ```no_run
//! use twistedpic::{Options, Registry, Request};
//! let config = r#"{"models": {"tiny": {"path": "models/tiny-sd3", "pipeline_type": "sd3", "dtype": "fp32"}}}"#;
//! let registry = Registry::from_str(config, Options::new())?;
//! let pipeline = registry.pipeline("tiny")?;
//! let request = Request::new().prompt("a red circle on a white background").seed(5);
//! let images = pipeline.generate(&request)?; // leases each network while it runs
//! images[0].save("circle.png")?;
//! println!("{}x{}", images[0].width(), images[0].height());
//! # Ok::<(), twistedpic::Error>(())
//! ```
//!
//! The registry on its own (a simulated device needs no GPU and no weights):
//!
//! ```no_run
//! use twistedpic::{Options, Registry};
//! let config = r#"{"models": {"a": {"path": "/models/a", "pipeline_type": "sd3", "size_bytes": "4GiB"}}}"#;
//! let registry = Registry::from_str(config, Options::new().simulated_device(8 << 30))?;
//! let lease = registry.acquire("a")?; // loaded and pinned on the device until dropped
//! println!("{} holds {} bytes", lease.name(), lease.device_bytes());
//! # Ok::<(), twistedpic::Error>(())
//! ```
//!
//! # Threading (as tp.h's `@threadsafety`)
//! - [`Registry`] is `Send + Sync` (tp.h: *safe*): share it, e.g. in an `Arc`,
//!   and call it from any thread. Dropping it needs exclusive ownership, which
//!   is what tp.h asks of `tp_registry_destroy`.
//! - [`Lease`] is `Send + Sync` (tp.h: *immutable*) and owns its release. It
//!   does not borrow the registry: dropping the registry while leases live is
//!   safe, and the models are freed with the last lease (tp.h, STYLE B6.5).
//! - [`Pipeline`] is `Send + Sync` (tp.h: *safe*, generate may run on several
//!   threads at once with distinct requests; each call here makes its own C
//!   request). It holds the C registry alive through an `Arc`, as tp.h wants
//!   every pipeline destroyed before its registry: like a lease it may outlive
//!   the [`Registry`] value, and the registry is destroyed with the last of them.
//! - [`Request`] is `Send + Sync`: plain settings, a progress closure
//!   (`FnMut + Send`) behind a mutex, and a [`CancelHandle`]. One request may
//!   serve several calls, even at once.
//! - [`CancelHandle`] is `Send + Sync + Clone`: cancel from any thread
//!   (`tp_request_cancel` is thread-safe).
//! - [`Image`] owns a copy of its pixels: plain data, `Send + Sync + Clone`.
//! - Event subscribers run on whichever thread made the transition, possibly
//!   concurrently, so they are `Fn + Send + Sync`. [`MemoryPolicy`] callbacks
//!   run one at a time with the registry's lock held, so a policy is `Send` and
//!   gets `&mut self`. Progress closures run on the thread that called
//!   generate. No callback may call into the registry.
//!
//! # Panics in callbacks
//! No panic unwinds into C (STYLE B9, as git2-rs `panic.rs`): each callback
//! runs under `catch_unwind`. A panic caught on a thread that is inside a call
//! into the library (say, a policy run by `acquire`, or a progress closure) is
//! resumed on that thread when the call returns; a panicking progress closure
//! cancels its call first. A panic on one of the library's own threads is
//! reported by the panic hook and otherwise ignored. A panicking policy counts
//! as having no opinion, so the built-in policies decide.
#![warn(missing_docs)]

mod device;
mod error;
mod generate;
mod panic;
mod policy;
mod registry;
mod vocab;

use std::ffi::{c_char, CStr, CString};

pub use device::{runtime_devices, Device};
pub use error::{Error, Result};
pub use generate::{CancelHandle, Generation, GenerationInfo, Image, Pipeline, Progress, Request, Sizes, Stage};
pub use policy::{MemoryPolicy, PolicyModel};
pub use registry::{Event, Lease, ModelInfo, Options, Plan, Registry, Stats, SubscriptionId};
pub use vocab::{Code, Reason, State, Tier};

/// The library's version, "MAJOR.MINOR.PATCH".
pub fn version() -> &'static str {
    unsafe { static_str(twistedpic_sys::tp_version_string()) }
}

/// The library's version as MAJOR * 10000 + MINOR * 100 + PATCH.
pub fn version_number() -> u32 {
    unsafe { twistedpic_sys::tp_version_number() }
}

/// Borrows a string the library owns; "" for NULL (tp.h promises UTF-8; anything else reads as "").
unsafe fn borrowed_str<'a>(p: *const c_char) -> &'a str {
    if p.is_null() {
        return "";
    }
    CStr::from_ptr(p).to_str().unwrap_or("")
}

/// A static string from the library (the tp_*_name functions).
unsafe fn static_str(p: *const c_char) -> &'static str {
    borrowed_str(p)
}

/// Copies a string the library owns.
unsafe fn owned_str(p: *const c_char) -> String {
    borrowed_str(p).to_owned()
}

/// A C copy of `s`, or an InvalidArgument error naming `what` if `s` holds a NUL.
fn c_string(s: &str, what: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(Code::InvalidArgument, format!("{what} must not contain a NUL byte")))
}
