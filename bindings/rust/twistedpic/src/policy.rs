//! Memory policies written in Rust, bridged through `tp_memory_policy_vtable`.
use std::ffi::{c_char, c_void};
use std::mem::size_of;
use std::slice;
use std::time::Duration;

use twistedpic_sys as sys;

use crate::error::check;
use crate::{panic, Result, State, Tier};

/// A memory policy, consulted before the built-in ones whenever the registry
/// needs room on the device.
///
/// Threading: the registry calls it with its lock held, on any of its threads,
/// one call at a time; hence `Send` and `&mut self`. It must not call into the
/// registry. It is dropped exactly once, when the registry no longer needs it:
/// when the [`Registry`](crate::Registry) drops, or with the last [`Lease`](crate::Lease)
/// if leases outlive the registry (or with the options, if creation fails).
pub trait MemoryPolicy: Send {
    /// Chooses models to evict to free at least `need_bytes` on the device:
    /// indices into `models`, cheapest first. Return none to leave the choice
    /// to the built-in policies. Indices out of range are ignored; only models
    /// with `evictable` set are accepted as victims.
    fn select_victims(&mut self, models: &[PolicyModel], need_bytes: u64) -> Vec<usize>;

    /// Called after every successful acquire of `model`.
    fn on_access(&mut self, _model: &str) {}
}

/// One model as a policy sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyModel {
    /// The configured name.
    pub name: String,
    /// Residency state.
    pub state: State,
    /// Where the weights are.
    pub tier: Tier,
    /// Bytes held on the device.
    pub device_bytes: u64,
    /// Bytes held in host memory.
    pub host_bytes: u64,
    /// Live leases.
    pub leases: u32,
    /// Pinned by its config.
    pub pinned: bool,
    /// Configured priority.
    pub priority: i32,
    /// Resident, unleased and unpinned: the registry accepts it as a victim.
    pub evictable: bool,
    /// Time since the last acquire or release; `None` when never used.
    pub idle: Option<Duration>,
}

impl PolicyModel {
    unsafe fn from_raw(m: &sys::tp_policy_model) -> Self {
        PolicyModel {
            name: crate::owned_str(m.name),
            state: State::from_raw(m.state),
            tier: Tier::from_raw(m.tier),
            device_bytes: m.device_bytes,
            host_bytes: m.host_bytes,
            leases: m.leases,
            pinned: m.pinned != 0,
            priority: m.priority,
            evictable: m.evictable != 0,
            idle: Duration::try_from_secs_f64(m.idle_seconds).ok(),
        }
    }
}

/// The vtable's user_data: a thin pointer to the boxed policy.
type Boxed = Box<dyn MemoryPolicy>;

static VTABLE: sys::tp_memory_policy_vtable = sys::tp_memory_policy_vtable {
    struct_size: size_of::<sys::tp_memory_policy_vtable>() as u32,
    select_victims: Some(select_victims),
    on_access: Some(on_access),
    destroy: Some(destroy),
    rank_victims: None,
};

/// Hands `policy` to `opts`, which own it from now on (tp.h: destroy runs exactly once).
pub(crate) fn add(opts: *mut sys::tp_registry_options, policy: Boxed) -> Result<()> {
    let user_data = Box::into_raw(Box::new(policy)).cast::<c_void>();
    // On failure tp.h does not say whether the library already called destroy:
    // the policy is leaked rather than risk dropping it twice.
    check(|err| unsafe { sys::tp_registry_options_add_policy(opts, &VTABLE, user_data, err) })
}

unsafe extern "C" fn select_victims(
    out_indices: *mut u32,
    max_out: u32,
    models: *const sys::tp_policy_model,
    count: u32,
    need_bytes: u64,
    user_data: *mut c_void,
) -> u32 {
    let policy = &mut *user_data.cast::<Boxed>();
    panic::wrap(|| {
        if count == 0 || max_out == 0 {
            return 0;
        }
        let models: Vec<PolicyModel> =
            slice::from_raw_parts(models, count as usize).iter().map(|m| PolicyModel::from_raw(m)).collect();
        let out = slice::from_raw_parts_mut(out_indices, max_out as usize);
        let picked = policy.select_victims(&models, need_bytes).into_iter().filter(|&i| i < models.len());
        let mut n = 0;
        for (slot, index) in out.iter_mut().zip(picked) {
            *slot = index as u32;
            n += 1;
        }
        n
    })
    .unwrap_or(0)
}

unsafe extern "C" fn on_access(model: *const c_char, user_data: *mut c_void) {
    let policy = &mut *user_data.cast::<Boxed>();
    panic::wrap(|| policy.on_access(crate::borrowed_str(model)));
}

unsafe extern "C" fn destroy(user_data: *mut c_void) {
    panic::wrap(|| drop(Box::from_raw(user_data.cast::<Boxed>())));
}
