//! Devices: a registry's ([`crate::Registry::devices`]) and the runtime's ([`runtime_devices`]).
use std::mem::{size_of, zeroed};
use std::ptr;

use twistedpic_sys as sys;

use crate::error::check;
use crate::{Error, Result};

/// One device (tp_device_info). [`crate::Registry::devices`] fills every
/// field; [`runtime_devices`] only `name`, `total_bytes` and `free_bytes`
/// (the others are 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Device {
    /// "cuda:0", "cpu", a simulated device's name.
    pub name: String,
    /// As its monitor reports it (0: unknown).
    pub total_bytes: u64,
    /// Free now.
    pub free_bytes: u64,
    /// This process's, per the driver (NVML).
    pub process_bytes: u64,
    /// Every other process's.
    pub other_process_bytes: u64,
    /// Kept free for others by the policy.
    pub headroom_bytes: u64,
    /// The registry's budget on it; 0: as much as is free.
    pub budget_bytes: u64,
    /// Model weights the registry holds on it now.
    pub held_bytes: u64,
    /// The most it ever held.
    pub peak_bytes: u64,
    /// Admitted loads in flight (weights + workspace).
    pub reserved_bytes: u64,
    /// The weight engine's scratch pool on it.
    pub scratch_bytes: u64,
    /// Loads waiting for its memory.
    pub admission_queue: u64,
    /// Models resident on it.
    pub resident_models: u32,
}

/// Owns a tp_device_list.
struct List(*mut sys::tp_device_list);

impl Drop for List {
    fn drop(&mut self) {
        unsafe { sys::tp_device_list_free(self.0) }
    }
}

/// The rows of the list `fill` makes (tp_registry_devices, tp_runtime_devices).
pub(crate) fn collect(fill: impl FnOnce(*mut *mut sys::tp_device_list, *mut *mut sys::tp_error) -> sys::tp_code)
    -> Result<Vec<Device>> {
    let mut list = List(ptr::null_mut());
    check(|err| fill(&mut list.0, err))?;
    (0..unsafe { sys::tp_device_list_count(list.0) })
        .map(|index| {
            // SAFETY: plain data; struct_size is set as tp_device_list_get requires.
            let mut d: sys::tp_device_info = unsafe { zeroed() };
            d.struct_size = size_of::<sys::tp_device_info>() as u32;
            check(|err| unsafe { sys::tp_device_list_get(&mut d, list.0, index, err) })?;
            Ok(Device {
                name: unsafe { crate::owned_str(d.name) },
                total_bytes: d.total_bytes,
                free_bytes: d.free_bytes,
                process_bytes: d.process_bytes,
                other_process_bytes: d.other_process_bytes,
                headroom_bytes: d.headroom_bytes,
                budget_bytes: d.budget_bytes,
                held_bytes: d.held_bytes,
                peak_bytes: d.peak_bytes,
                reserved_bytes: d.reserved_bytes,
                scratch_bytes: d.scratch_bytes,
                admission_queue: d.admission_queue,
                resident_models: d.resident_models,
            })
        })
        .collect::<std::result::Result<Vec<_>, Error>>()
}

/// The devices a registry without a simulated device uses now: every visible
/// CUDA device ("cuda:N", with the driver's total and free bytes), or the CPU
/// device alone ("cpu") where no GPU is usable.
pub fn runtime_devices() -> Result<Vec<Device>> {
    collect(|out, err| unsafe { sys::tp_runtime_devices(out, err) })
}
