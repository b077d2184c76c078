//! The registry, its options, leases, model list, plans, statistics and events.
use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::mem::{size_of, zeroed};
use std::path::Path;
use std::ptr;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use twistedpic_sys as sys;

use crate::error::check;
use crate::{c_string, device, panic, policy, Code, Device, Error, MemoryPolicy, Pipeline, Reason, Result, State, Tier};

/// How to create a [`Registry`]. Settings left alone keep the library's defaults.
#[derive(Default)]
pub struct Options {
    simulated_device: Option<u64>,
    simulated_devices: Vec<(String, u64)>,
    preset: Option<String>,
    background_thread: Option<bool>,
    text_encoder_offload: Option<Tier>,
    policies: Vec<Box<dyn MemoryPolicy>>,
}

impl Options {
    /// The library's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Uses a simulated device of `total_bytes` and simulated weights (each
    /// model's config must give "size_bytes"): for tests and demos of the
    /// registry. Simulated weights run no pipeline. Without it the registry
    /// loads real safetensors weights onto the CUDA device, or onto the CPU
    /// (host memory) where no GPU is usable.
    pub fn simulated_device(mut self, total_bytes: u64) -> Self {
        self.simulated_device = Some(total_bytes);
        self
    }

    /// Adds a simulated device named `name` of `total_bytes`, after those
    /// added before: the registry spans them in that order (a model's
    /// "device" names one, or "auto"), with simulated weights. Not with
    /// [`Options::simulated_device`] (creation fails with `FailedPrecondition`);
    /// an empty or repeated name fails it with `InvalidArgument`.
    pub fn add_simulated_device(mut self, name: &str, total_bytes: u64) -> Self {
        self.simulated_devices.push((name.to_owned(), total_bytes));
        self
    }

    /// Replaces the config's policy with a named preset: "max_gpu_availability",
    /// "balanced" or "max_speed" (another name fails creation with `InvalidArgument`).
    pub fn preset(mut self, name: &str) -> Self {
        self.preset = Some(name.to_owned());
        self
    }

    /// Runs idle timeouts and pressure checks on a background thread (the
    /// default) or only in [`Registry::tick`].
    pub fn background_thread(mut self, enabled: bool) -> Self {
        self.background_thread = Some(enabled);
        self
    }

    /// Where the text encoders of pipeline models go when their lease ends,
    /// overriding their policy: [`Tier::Host`] frees the device for the
    /// denoiser after encoding and brings them back from pinned memory;
    /// [`Tier::Disk`] drops them. Unset, the policy decides. Another tier
    /// fails creation with `InvalidArgument`.
    pub fn text_encoder_offload(mut self, tier: Tier) -> Self {
        self.text_encoder_offload = Some(tier);
        self
    }

    /// Adds a memory policy, consulted before the built-ins and, as in tp.h,
    /// before policies added earlier.
    pub fn policy(mut self, policy: Box<dyn MemoryPolicy>) -> Self {
        self.policies.push(policy);
        self
    }

    fn into_raw(self) -> Result<RawOptions> {
        let mut opts = RawOptions(ptr::null_mut());
        check(|err| unsafe { sys::tp_registry_options_create(&mut opts.0, err) })?;
        if let Some(bytes) = self.simulated_device {
            check(|err| unsafe { sys::tp_registry_options_use_simulated_device(opts.0, bytes, err) })?;
        }
        for (name, bytes) in &self.simulated_devices {
            let name = c_string(name, "simulated device name")?;
            check(|err| unsafe { sys::tp_registry_options_add_simulated_device(opts.0, name.as_ptr(), *bytes, err) })?;
        }
        if let Some(preset) = self.preset {
            let preset = c_string(&preset, "preset")?;
            check(|err| unsafe { sys::tp_registry_options_set_preset(opts.0, preset.as_ptr(), err) })?;
        }
        if let Some(enabled) = self.background_thread {
            check(|err| unsafe { sys::tp_registry_options_set_background_thread(opts.0, enabled.into(), err) })?;
        }
        if let Some(tier) = self.text_encoder_offload {
            check(|err| unsafe { sys::tp_registry_options_set_text_encoder_offload(opts.0, tier.raw(), err) })?;
        }
        for p in self.policies {
            policy::add(opts.0, p)?;
        }
        Ok(opts)
    }
}

/// Owns a tp_registry_options; destroying it destroys policies no registry took.
struct RawOptions(*mut sys::tp_registry_options);

impl Drop for RawOptions {
    fn drop(&mut self) {
        panic::call(|| unsafe { sys::tp_registry_options_destroy(self.0) });
    }
}

/// What a registry shares with its leases: the event subscribers, which the
/// library may call until the last of them is gone.
#[derive(Default)]
struct Shared {
    subscribers: Mutex<HashMap<i32, Arc<Subscriber>>>,
}

/// One subscription: the closure, taken out on unsubscribe. The slot itself
/// lives on with [`Shared`], since the library may still be delivering to it.
struct Subscriber(RwLock<Option<Callback>>);

type Callback = Box<dyn Fn(&Event) + Send + Sync>;

/// Identifies a subscription for [`Registry::unsubscribe`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SubscriptionId(i32);

/// The model registry: loads models on demand, keeps leased ones on the
/// device, and moves idle ones to host memory or disk as its policies decide.
///
/// `Send + Sync` (tp.h: thread-safe): share it across threads, e.g. in an `Arc`.
/// Dropping it destroys the registry; live [`Lease`]s stay valid and free
/// their models when dropped. Live [`Pipeline`]s keep the registry itself
/// alive (tp.h wants every pipeline destroyed first): it is destroyed with
/// the last of them.
pub struct Registry {
    inner: Arc<RawRegistry>,
}

/// Owns the tp_registry. Shared by the [`Registry`] and its [`Pipeline`]s
/// (tp.h: a pipeline must go before its registry), so the C registry is
/// destroyed when the last of them is dropped.
pub(crate) struct RawRegistry {
    pub(crate) raw: *mut sys::tp_registry,
    shared: Arc<Shared>,
}

// SAFETY: tp.h: "every function taking a tp_registry* may be called from any
// thread"; tp_registry_destroy runs only in Drop, when the last Arc goes, so
// no other call on it can overlap.
unsafe impl Send for RawRegistry {}
unsafe impl Sync for RawRegistry {}

impl Drop for RawRegistry {
    fn drop(&mut self) {
        panic::call(|| unsafe { sys::tp_registry_destroy(self.raw) });
    }
}

impl Registry {
    /// Creates a registry from a JSON config (named `"<string>"` in errors).
    pub fn from_str(config_json: &str, options: Options) -> Result<Self> {
        let json = c_string(config_json, "config_json")?;
        Self::create(options, |out, opts, err| unsafe {
            sys::tp_registry_create_from_string(out, json.as_ptr(), opts, err)
        })
    }

    /// Creates a registry from a JSON config file: `NotFound` if it is
    /// missing, `InvalidArgument` naming the file and field if it is bad.
    pub fn from_file(path: impl AsRef<Path>, options: Options) -> Result<Self> {
        let path = path.as_ref();
        let utf8 = path
            .to_str()
            .ok_or_else(|| Error::new(Code::InvalidArgument, format!("config path {} is not UTF-8", path.display())))?;
        let path = c_string(utf8, "config path")?;
        Self::create(options, |out, opts, err| unsafe {
            sys::tp_registry_create_from_file(out, path.as_ptr(), opts, err)
        })
    }

    fn create(
        options: Options,
        create: impl FnOnce(*mut *mut sys::tp_registry, *mut sys::tp_registry_options, *mut *mut sys::tp_error) -> i32,
    ) -> Result<Self> {
        let opts = options.into_raw()?;
        let mut raw = ptr::null_mut();
        check(|err| create(&mut raw, opts.0, err))?;
        Ok(Registry { inner: Arc::new(RawRegistry { raw, shared: Arc::default() }) })
    }

    fn raw(&self) -> *mut sys::tp_registry {
        self.inner.raw
    }

    /// A snapshot of every configured model, in config order.
    pub fn list(&self) -> Result<Vec<ModelInfo>> {
        let mut list = List(ptr::null_mut());
        check(|err| unsafe { sys::tp_registry_list(&mut list.0, self.raw(), err) })?;
        (0..unsafe { sys::tp_model_list_count(list.0) })
            .map(|index| {
                // SAFETY: plain data; struct_size is set as tp_model_list_get requires.
                let mut row: sys::tp_model_info = unsafe { zeroed() };
                row.struct_size = size_of::<sys::tp_model_info>() as u32;
                check(|err| unsafe { sys::tp_model_list_get(&mut row, list.0, index, err) })?;
                Ok(unsafe { ModelInfo::from_raw(&row) })
            })
            .collect()
    }

    /// A snapshot of the registry's devices, in the order it was given them
    /// (cuda:0, cuda:1, ...; the CPU device alone; or the simulated devices,
    /// in the order added).
    pub fn devices(&self) -> Result<Vec<Device>> {
        device::collect(|out, err| unsafe { sys::tp_registry_devices(out, self.raw(), err) })
    }

    /// One model's row, as in [`Registry::list`]. `NotFound` for an unknown model.
    pub fn info(&self, model: &str) -> Result<ModelInfo> {
        let name = c_string(model, "model")?;
        let mut list = List(ptr::null_mut());
        check(|err| unsafe { sys::tp_registry_info(&mut list.0, self.raw(), name.as_ptr(), err) })?;
        // SAFETY: plain data; struct_size is set as tp_model_list_get requires.
        let mut row: sys::tp_model_info = unsafe { zeroed() };
        row.struct_size = size_of::<sys::tp_model_info>() as u32;
        check(|err| unsafe { sys::tp_model_list_get(&mut row, list.0, 0, err) })?;
        Ok(unsafe { ModelInfo::from_raw(&row) })
    }

    /// What acquiring `model` would do now (a dry run of its admission).
    /// `NotFound` for an unknown model.
    pub fn plan(&self, model: &str) -> Result<Plan> {
        struct RawPlan(*mut sys::tp_plan);
        impl Drop for RawPlan {
            fn drop(&mut self) {
                unsafe { sys::tp_plan_free(self.0) }
            }
        }
        let name = c_string(model, "model")?;
        let mut plan = RawPlan(ptr::null_mut());
        check(|err| unsafe { sys::tp_registry_plan(&mut plan.0, self.raw(), name.as_ptr(), err) })?;
        // SAFETY: plain data; struct_size is set as tp_plan_get_info requires.
        let mut info: sys::tp_plan_info = unsafe { zeroed() };
        info.struct_size = size_of::<sys::tp_plan_info>() as u32;
        check(|err| unsafe { sys::tp_plan_get_info(&mut info, plan.0, err) })?;
        Ok(Plan {
            fits: info.fits != 0,
            resident: info.resident != 0,
            from: Tier::from_raw(info.from),
            bytes_to_move: info.bytes_to_move,
            needed_bytes: info.needed_bytes,
            free_bytes: info.free_bytes,
            bytes_evicted: info.bytes_evicted,
            evictions: (0..info.eviction_count)
                .map(|i| unsafe { crate::owned_str(sys::tp_plan_eviction(plan.0, i)) })
                .collect(),
            explanation: unsafe { crate::owned_str(info.explanation) },
        })
    }

    /// A text-to-image pipeline of the configured model `name` (one with a
    /// `pipeline_type`). Loads no weights: each generate call leases the
    /// networks it needs. `NotFound` for an unknown model, `InvalidArgument`
    /// for a model that is not a pipeline, `Unimplemented` for an unsupported
    /// pipeline type. The pipeline keeps the C registry alive (see [`Registry`]).
    pub fn pipeline(&self, name: &str) -> Result<Pipeline> {
        let c_name = c_string(name, "name")?;
        let mut raw = ptr::null_mut();
        check(|err| unsafe { sys::tp_pipeline_create(&mut raw, self.raw(), c_name.as_ptr(), err) })?;
        // SAFETY: a pipeline this call created, of the registry `inner` owns.
        Ok(unsafe { Pipeline::from_raw(raw, self.inner.clone()) })
    }

    /// Takes a lease on `model`, loading or reloading it first when needed.
    /// `NotFound` for an unknown model; `ResourceExhausted` when it cannot fit.
    pub fn acquire(&self, model: &str) -> Result<Lease> {
        let name = c_string(model, "model")?;
        let mut lease = Lease { raw: ptr::null_mut(), _shared: self.inner.shared.clone() };
        check(|err| unsafe { sys::tp_model_acquire(&mut lease.raw, self.raw(), name.as_ptr(), err) })?;
        Ok(lease)
    }

    /// Loads `model` onto the device without taking a lease.
    pub fn preload(&self, model: &str) -> Result<()> {
        let name = c_string(model, "model")?;
        check(|err| unsafe { sys::tp_registry_preload(self.raw(), name.as_ptr(), err) })
    }

    /// Moves `model` off the device to `tier` ([`Tier::Host`] keeps a pinned
    /// copy, [`Tier::Disk`] drops all); returns the device bytes measured as
    /// returned to the driver. `FailedPrecondition` while it is leased.
    pub fn unload(&self, model: &str, tier: Tier) -> Result<i64> {
        let name = c_string(model, "model")?;
        let mut returned = 0;
        check(|err| unsafe { sys::tp_registry_unload(&mut returned, self.raw(), name.as_ptr(), tier.raw(), err) })?;
        Ok(returned)
    }

    /// Unloads every unleased model to `tier`; `FailedPrecondition` naming those still leased.
    pub fn unload_all(&self, tier: Tier) -> Result<()> {
        check(|err| unsafe { sys::tp_registry_unload_all(self.raw(), tier.raw(), err) })
    }

    /// Applies idle timeouts, pressure and LRU limits now.
    pub fn tick(&self) -> Result<()> {
        check(|err| unsafe { sys::tp_registry_tick(self.raw(), err) })
    }

    /// Registry statistics.
    pub fn stats(&self) -> Result<Stats> {
        // SAFETY: plain data; struct_size is set as tp_registry_stats requires.
        let mut s: sys::tp_stats = unsafe { zeroed() };
        s.struct_size = size_of::<sys::tp_stats>() as u32;
        check(|err| unsafe { sys::tp_registry_stats(&mut s, self.raw(), err) })?;
        Ok(Stats::from_raw(&s))
    }

    /// Calls `callback` for every residency transition until unsubscribed or
    /// the registry is dropped. It runs on the thread that made the transition,
    /// possibly concurrently, and must not call into the registry.
    pub fn subscribe(&self, callback: impl Fn(&Event) + Send + Sync + 'static) -> Result<SubscriptionId> {
        let subscriber = Arc::new(Subscriber(RwLock::new(Some(Box::new(callback)))));
        let user_data = Arc::as_ptr(&subscriber).cast_mut().cast::<c_void>();
        let mut id = 0;
        check(|err| unsafe { sys::tp_registry_subscribe(&mut id, self.raw(), Some(on_event), user_data, err) })?;
        self.inner.shared.subscribers.lock().unwrap_or_else(PoisonError::into_inner).insert(id, subscriber);
        Ok(SubscriptionId(id))
    }

    /// Stops a subscription. When this returns the callback is not running on
    /// any thread and has been dropped; it must not be called from the callback itself.
    pub fn unsubscribe(&self, id: SubscriptionId) -> Result<()> {
        check(|err| unsafe { sys::tp_registry_unsubscribe(self.raw(), id.0, err) })?;
        let subscriber =
            self.inner.shared.subscribers.lock().unwrap_or_else(PoisonError::into_inner).get(&id.0).cloned();
        if let Some(subscriber) = subscriber {
            // Waits for a delivery still in flight (tp.h allows one after unsubscribe).
            let callback = subscriber.0.write().unwrap_or_else(PoisonError::into_inner).take();
            drop(callback);
        }
        Ok(())
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry").field("raw", &self.raw()).finish_non_exhaustive()
    }
}

unsafe extern "C" fn on_event(ev: *const sys::tp_event, user_data: *mut c_void) {
    // SAFETY: user_data is a Subscriber kept alive by Shared for as long as the library can call it.
    let subscriber = &*user_data.cast::<Subscriber>();
    panic::wrap(|| {
        if let Some(callback) = &*subscriber.0.read().unwrap_or_else(PoisonError::into_inner) {
            callback(&Event::from_raw(&*ev));
        }
    });
}

/// A lease on a resident model: while it lives the model stays on the device.
///
/// `Send + Sync` (tp.h: immutable). Dropping it releases the lease, after
/// which the memory policies apply. It may outlive its [`Registry`].
pub struct Lease {
    raw: *mut sys::tp_model,
    _shared: Arc<Shared>,
}

// SAFETY: tp.h: a tp_model is immutable and may be shared across threads;
// tp_model_release runs only in Drop, exactly once.
unsafe impl Send for Lease {}
unsafe impl Sync for Lease {}

impl Lease {
    /// The leased model's name.
    pub fn name(&self) -> &str {
        unsafe { crate::borrowed_str(sys::tp_model_name(self.raw)) }
    }

    /// Device bytes the leased model holds.
    pub fn device_bytes(&self) -> u64 {
        unsafe { sys::tp_model_device_bytes(self.raw) }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        panic::call(|| unsafe { sys::tp_model_release(self.raw) });
    }
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease").field("name", &self.name()).field("device_bytes", &self.device_bytes()).finish()
    }
}

/// Owns a tp_model_list.
struct List(*mut sys::tp_model_list);

impl Drop for List {
    fn drop(&mut self) {
        unsafe { sys::tp_model_list_free(self.0) }
    }
}

/// What acquiring a model would do now ([`Registry::plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The model can be admitted (after the evictions).
    pub fits: bool,
    /// Already on the device: nothing to do.
    pub resident: bool,
    /// Where the weights would come from.
    pub from: Tier,
    /// The weights' bytes.
    pub bytes_to_move: u64,
    /// Weights plus workspace.
    pub needed_bytes: u64,
    /// Usable now (free minus headroom, within the budget).
    pub free_bytes: u64,
    /// What the evictions would free.
    pub bytes_evicted: u64,
    /// The models it would evict.
    pub evictions: Vec<String>,
    /// One line for people.
    pub explanation: String,
}

/// One row of [`Registry::list`].
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The configured name.
    pub name: String,
    /// The model id or path it loads from.
    pub source: String,
    /// The pipeline type ("sd3", ...).
    pub pipeline_type: String,
    /// "fp32", "fp16" or "bf16".
    pub dtype: String,
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
    /// Time since last use; `None` when never used.
    pub last_use_age: Option<Duration>,
    /// Time until an idle timeout unloads it; `None` when none is running.
    pub expires_in: Option<Duration>,
    /// Loads so far.
    pub load_count: u64,
    /// How long the last load took.
    pub last_load: Duration,
    /// Why the last load failed, if it did.
    pub last_error: Option<String>,
    /// The registry device it is on, or that its next load goes to
    /// ("cuda:1"); "auto" for a model configured "auto" not yet placed.
    pub device: String,
}

impl ModelInfo {
    unsafe fn from_raw(r: &sys::tp_model_info) -> Self {
        ModelInfo {
            name: crate::owned_str(r.name),
            source: crate::owned_str(r.source),
            pipeline_type: crate::owned_str(r.pipeline_type),
            dtype: crate::owned_str(r.dtype),
            state: State::from_raw(r.state),
            tier: Tier::from_raw(r.tier),
            device_bytes: r.device_bytes,
            host_bytes: r.host_bytes,
            leases: r.leases,
            pinned: r.pinned != 0,
            priority: r.priority,
            last_use_age: Duration::try_from_secs_f64(r.last_use_age_s).ok(),
            expires_in: Duration::try_from_secs_f64(r.expires_in_s).ok(),
            load_count: r.load_count,
            last_load: millis(r.last_load_ms),
            last_error: Some(crate::owned_str(r.last_error)).filter(|e| !e.is_empty()),
            device: crate::owned_str(r.device),
        }
    }
}

/// Registry statistics ([`Registry::stats`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Stats {
    /// Acquires that found the model resident.
    pub hits: u64,
    /// Acquires that had to load it.
    pub misses: u64,
    /// Loads from disk.
    pub loads: u64,
    /// Reloads from the host tier.
    pub reloads: u64,
    /// Failed loads.
    pub load_failures: u64,
    /// Admissions that waited for leases to end.
    pub admission_waits: u64,
    /// Admissions that failed.
    pub admission_failures: u64,
    /// Evictions per reason, indexed by [`Reason::raw`]; see [`Stats::evictions`].
    pub evictions_by_reason: [u64; sys::TP_REASON_SLOTS],
    /// Bytes moved to the device.
    pub bytes_to_device: u64,
    /// Bytes moved to host memory.
    pub bytes_to_host: u64,
    /// Device bytes returned to the driver.
    pub bytes_returned: u64,
    /// Device bytes held now.
    pub device_bytes: u64,
    /// Most device bytes held at once.
    pub peak_device_bytes: u64,
    /// Host bytes held now.
    pub host_bytes: u64,
    /// Median load time, ms.
    pub load_ms_p50: f64,
    /// 95th percentile load time, ms.
    pub load_ms_p95: f64,
    /// Median reload time, ms.
    pub reload_ms_p50: f64,
    /// 95th percentile reload time, ms.
    pub reload_ms_p95: f64,
}

impl Stats {
    fn from_raw(s: &sys::tp_stats) -> Self {
        Stats {
            hits: s.hits,
            misses: s.misses,
            loads: s.loads,
            reloads: s.reloads,
            load_failures: s.load_failures,
            admission_waits: s.admission_waits,
            admission_failures: s.admission_failures,
            evictions_by_reason: s.evictions,
            bytes_to_device: s.bytes_to_device,
            bytes_to_host: s.bytes_to_host,
            bytes_returned: s.bytes_returned,
            device_bytes: s.device_bytes,
            peak_device_bytes: s.peak_device_bytes,
            host_bytes: s.host_bytes,
            load_ms_p50: s.load_ms_p50,
            load_ms_p95: s.load_ms_p95,
            reload_ms_p50: s.reload_ms_p50,
            reload_ms_p95: s.reload_ms_p95,
        }
    }

    /// Evictions for `reason` (0 for [`Reason::Unknown`]).
    pub fn evictions(&self, reason: Reason) -> u64 {
        usize::try_from(reason.raw()).ok().and_then(|i| self.evictions_by_reason.get(i)).copied().unwrap_or(0)
    }
}

/// One residency transition, as delivered to [`Registry::subscribe`] callbacks.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The model that moved.
    pub model: String,
    /// Where it was.
    pub from: Tier,
    /// Where it went.
    pub to: Tier,
    /// Why.
    pub reason: Reason,
    /// Bytes moved.
    pub bytes: u64,
    /// How long it took.
    pub duration: Duration,
    /// Device bytes measured as returned to the driver.
    pub bytes_returned: i64,
    /// Why the load failed, for a failed load.
    pub error: Option<String>,
}

impl Event {
    unsafe fn from_raw(ev: &sys::tp_event) -> Self {
        let error = crate::owned_str(ev.error);
        Event {
            model: crate::owned_str(ev.model),
            from: Tier::from_raw(ev.from),
            to: Tier::from_raw(ev.to),
            reason: Reason::from_raw(ev.reason),
            bytes: ev.bytes,
            duration: millis(ev.ms),
            bytes_returned: ev.bytes_returned,
            error: (ev.failed != 0).then_some(error),
        }
    }

    /// Whether this was a failed load.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

fn millis(ms: f64) -> Duration {
    Duration::try_from_secs_f64(ms / 1e3).unwrap_or_default()
}
