//! Panics in callbacks (STYLE B9, after git2-rs `panic.rs`).
//!
//! Every extern "C" trampoline runs user code through [`wrap`], so no panic
//! unwinds into C. Every call into the library that can run callbacks goes
//! through [`call`]; a panic caught on that thread during the call is resumed
//! when the call returns. A panic on a library thread (no call of ours on its
//! stack) has nowhere to go: the panic hook has reported it, and it is dropped.
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

thread_local! {
    /// How many calls into the library this thread is inside.
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// The first panic caught during the current outermost call.
    static CAUGHT: RefCell<Option<Box<dyn Any + Send>>> = const { RefCell::new(None) };
}

/// Runs callback code; `None` if it panicked.
pub(crate) fn wrap<T>(f: impl FnOnce() -> T) -> Option<T> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|payload| {
            if DEPTH.get() > 0 {
                CAUGHT.with_borrow_mut(|slot| {
                    slot.get_or_insert(payload);
                });
            }
        })
        .ok()
}

/// Runs a call into the library, then resumes a panic caught in a callback
/// during it (unless this thread is already unwinding, e.g. in a Drop).
pub(crate) fn call<T>(f: impl FnOnce() -> T) -> T {
    struct Depth;
    impl Drop for Depth {
        fn drop(&mut self) {
            DEPTH.set(DEPTH.get() - 1);
        }
    }
    DEPTH.set(DEPTH.get() + 1);
    let out = {
        let _depth = Depth;
        f()
    };
    if DEPTH.get() == 0 {
        if let Some(payload) = CAUGHT.take() {
            if !std::thread::panicking() {
                resume_unwind(payload);
            }
        }
    }
    out
}
