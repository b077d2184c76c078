//! Raw, hand-written declarations of the twistedpic C ABI, one to one with
//! `capi/include/twistedpic/tp.h` (the v0.1 registry and the v0.2 generation
//! section; `TP_VERSION_*` below are the header's). No logic lives here: see the
//! `twistedpic` crate for the safe wrapper. Ownership, threading and
//! nullability are as documented in tp.h; the comments below only point at it.
#![allow(non_camel_case_types)]
#![no_std]

use core::ffi::{c_char, c_void};
use core::marker::{PhantomData, PhantomPinned};

// ---- version.h: the header version these declarations transcribe ----------

pub const TP_VERSION_MAJOR: u32 = 0;
pub const TP_VERSION_MINOR: u32 = 1;
pub const TP_VERSION_PATCH: u32 = 0;
pub const TP_VERSION_NUMBER: u32 = TP_VERSION_MAJOR * 10000 + TP_VERSION_MINOR * 100 + TP_VERSION_PATCH;
pub const TP_VERSION_STRING: &str = "0.1.0";
pub const TP_SOVERSION: u32 = 0;

// ---- Codes -------------------------------------------------------------------

pub type tp_code = i32;
pub const TP_OK: tp_code = 0;
pub const TP_CANCELLED: tp_code = 1;
pub const TP_UNKNOWN: tp_code = 2;
pub const TP_INVALID_ARGUMENT: tp_code = 3;
pub const TP_NOT_FOUND: tp_code = 5;
pub const TP_ALREADY_EXISTS: tp_code = 6;
pub const TP_RESOURCE_EXHAUSTED: tp_code = 8;
pub const TP_FAILED_PRECONDITION: tp_code = 9;
pub const TP_ABORTED: tp_code = 10;
pub const TP_UNIMPLEMENTED: tp_code = 12;
pub const TP_INTERNAL: tp_code = 13;
pub const TP_UNAVAILABLE: tp_code = 14;
pub const TP_DATA_LOSS: tp_code = 15;

// ---- Logging -----------------------------------------------------------------

pub const TP_LOG_TRACE: i32 = 0;
pub const TP_LOG_DEBUG: i32 = 1;
pub const TP_LOG_INFO: i32 = 2;
pub const TP_LOG_WARN: i32 = 3;
pub const TP_LOG_ERROR: i32 = 4;
pub const TP_LOG_CRITICAL: i32 = 5;
pub const TP_LOG_OFF: i32 = 6;

// ---- Residency vocabulary ----------------------------------------------------

pub const TP_TIER_DEVICE: i32 = 0;
pub const TP_TIER_HOST: i32 = 1;
pub const TP_TIER_DISK: i32 = 2;

pub const TP_STATE_UNLOADED: i32 = 0;
pub const TP_STATE_LOADING: i32 = 1;
pub const TP_STATE_RESIDENT: i32 = 2;
pub const TP_STATE_OFFLOADED: i32 = 3;
pub const TP_STATE_UNLOADING: i32 = 4;
pub const TP_STATE_FAILED: i32 = 5;

pub const TP_REASON_LAZY: i32 = 0;
pub const TP_REASON_EAGER: i32 = 1;
pub const TP_REASON_TTL: i32 = 2;
pub const TP_REASON_LRU: i32 = 3;
pub const TP_REASON_PRESSURE: i32 = 4;
pub const TP_REASON_EXPLICIT: i32 = 5;
pub const TP_REASON_UNLOAD_AFTER: i32 = 6;
/// Number of reasons known to this header; `tp_stats::evictions` has this many slots.
pub const TP_REASON_SLOTS: usize = 7;

// ---- Generation: progress stages ---------------------------------------------

/// The text encoders.
pub const TP_STAGE_ENCODE: i32 = 0;
/// One denoising step done.
pub const TP_STAGE_DENOISE: i32 = 1;
/// The VAE.
pub const TP_STAGE_DECODE: i32 = 2;
/// Waiting for a network to load.
pub const TP_STAGE_WAITING: i32 = 3;

// ---- Opaque handles ----------------------------------------------------------

macro_rules! opaque {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[repr(C)]
        pub struct $name {
            _data: [u8; 0],
            _marker: PhantomData<(*mut u8, PhantomPinned)>,
        }
    )*};
}

opaque! {
    /// An error: a code and a UTF-8 message. Immutable; freed with `tp_error_free`.
    tp_error;
    /// Registry options. External synchronization; freed with `tp_registry_options_destroy`.
    tp_registry_options;
    /// The model registry. Thread-safe; freed with `tp_registry_destroy`.
    tp_registry;
    /// A snapshot of every configured model. Immutable; freed with `tp_model_list_free`.
    tp_model_list;
    /// A lease on a resident model. Immutable; released exactly once with `tp_model_release`.
    tp_model;
    /// A text-to-image pipeline of a registry. Thread-safe (generate from several
    /// threads with distinct requests); freed with `tp_pipeline_destroy` before its registry.
    tp_pipeline;
    /// The settings of one generate call. External synchronization, except
    /// `tp_request_cancel` (any thread); freed with `tp_request_destroy`.
    tp_request;
    /// The images, settings, timings and warnings of one call. Immutable; freed with `tp_result_free`.
    tp_result;
    /// A dry run of a model's admission. Immutable; freed with `tp_plan_free`.
    tp_plan;
    /// A snapshot of devices (a registry's or the runtime's). Immutable; freed with `tp_device_list_free`.
    tp_device_list;
}

// ---- Structs -----------------------------------------------------------------

/// One model as a policy sees it. `name` is borrowed for the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_policy_model {
    pub name: *const c_char,
    pub state: i32,
    pub tier: i32,
    pub device_bytes: u64,
    pub host_bytes: u64,
    pub leases: u32,
    pub pinned: i32,
    pub priority: i32,
    pub evictable: i32,
    pub idle_seconds: f64,
}

/// A memory policy implemented by the host; copied by `tp_registry_options_add_policy`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_memory_policy_vtable {
    pub struct_size: u32,
    pub select_victims: Option<
        unsafe extern "C" fn(
            out_indices: *mut u32,
            max_out: u32,
            models: *const tp_policy_model,
            count: u32,
            need_bytes: u64,
            user_data: *mut c_void,
        ) -> u32,
    >,
    pub on_access: Option<unsafe extern "C" fn(model: *const c_char, user_data: *mut c_void)>,
    pub destroy: Option<unsafe extern "C" fn(user_data: *mut c_void)>,
    // end of v0.1 (32 bytes)
    /// v0.2: `select_victims` over elements `model_size` bytes apart; takes precedence when set.
    pub rank_victims: Option<
        unsafe extern "C" fn(
            out_indices: *mut u32,
            max_out: u32,
            models: *const tp_policy_model,
            count: u32,
            model_size: u32,
            need_bytes: u64,
            user_data: *mut c_void,
        ) -> u32,
    >,
}

/// One row of a `tp_model_list`; strings are owned by the list.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_model_info {
    pub struct_size: u32,
    pub name: *const c_char,
    pub source: *const c_char,
    pub pipeline_type: *const c_char,
    pub dtype: *const c_char,
    pub state: i32,
    pub tier: i32,
    pub device_bytes: u64,
    pub host_bytes: u64,
    pub leases: u32,
    pub pinned: i32,
    pub priority: i32,
    pub last_use_age_s: f64,
    pub expires_in_s: f64,
    pub load_count: u64,
    pub last_load_ms: f64,
    pub last_error: *const c_char,
    // end of v0.1 (120 bytes)
    pub device: *const c_char,
}

/// Registry statistics.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_stats {
    pub struct_size: u32,
    pub hits: u64,
    pub misses: u64,
    pub loads: u64,
    pub reloads: u64,
    pub load_failures: u64,
    pub admission_waits: u64,
    pub admission_failures: u64,
    pub evictions: [u64; TP_REASON_SLOTS],
    pub bytes_to_device: u64,
    pub bytes_to_host: u64,
    pub bytes_returned: u64,
    pub device_bytes: u64,
    pub peak_device_bytes: u64,
    pub host_bytes: u64,
    pub load_ms_p50: f64,
    pub load_ms_p95: f64,
    pub reload_ms_p50: f64,
    pub reload_ms_p95: f64,
}

/// One residency transition, borrowed for the duration of the callback.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_event {
    pub struct_size: u32,
    pub model: *const c_char,
    pub from: i32,
    pub to: i32,
    pub reason: i32,
    pub failed: i32,
    pub bytes: u64,
    pub ms: f64,
    pub bytes_returned: i64,
    pub error: *const c_char,
}

/// One progress report, borrowed for the duration of the callback.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_progress {
    pub struct_size: u32,
    pub stage: i32,
    pub step: i32,
    pub steps: i32,
    pub elapsed_s: f64,
    pub model: *const c_char,
}

/// One RGB8 image, borrowed from its result until `tp_result_free` (or the
/// caller's own pixels, for `tp_image_write_png`/`tp_image_encode_png`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_image {
    pub struct_size: u32,
    pub width: i32,
    pub height: i32,
    pub stride: i32,
    pub pixels: *const u8,
}

/// The settings a call ran with (the model's defaults filled in), and its timings.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_result_info {
    pub struct_size: u32,
    pub image_count: u32,
    pub width: i32,
    pub height: i32,
    pub steps: i32,
    pub guidance_scale: f64,
    pub seed: u64,
    pub encode_s: f64,
    pub denoise_s: f64,
    pub decode_s: f64,
    pub acquire_s: f64,
    pub total_s: f64,
    pub warning_count: u32,
}

/// A plan's figures; `explanation` is borrowed until `tp_plan_free`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_plan_info {
    pub struct_size: u32,
    pub fits: i32,
    pub resident: i32,
    pub from: i32,
    pub bytes_to_move: u64,
    pub needed_bytes: u64,
    pub free_bytes: u64,
    pub bytes_evicted: u64,
    pub eviction_count: u32,
    pub explanation: *const c_char,
}

/// One device of a `tp_device_list`; `name` is owned by the list.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tp_device_info {
    pub struct_size: u32,
    pub name: *const c_char,
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub process_bytes: u64,
    pub other_process_bytes: u64,
    pub headroom_bytes: u64,
    pub budget_bytes: u64,
    pub held_bytes: u64,
    pub peak_bytes: u64,
    pub reserved_bytes: u64,
    pub scratch_bytes: u64,
    pub admission_queue: u64,
    pub resident_models: u32,
}

// ---- Callbacks ---------------------------------------------------------------

/// Receives one whole log line, from any library thread. Must not unwind.
pub type tp_log_fn = Option<
    unsafe extern "C" fn(level: i32, logger: *const c_char, msg: *const c_char, len: usize, user_data: *mut c_void),
>;

/// Receives residency events, possibly concurrently. Must not unwind.
pub type tp_event_fn = Option<unsafe extern "C" fn(ev: *const tp_event, user_data: *mut c_void)>;

/// Receives progress on the generating thread; non-zero cancels the call. Must not unwind.
pub type tp_progress_fn = Option<unsafe extern "C" fn(progress: *const tp_progress, user_data: *mut c_void) -> i32>;

// ---- Functions ---------------------------------------------------------------

extern "C" {
    pub fn tp_code_name(code: tp_code) -> *const c_char;

    pub fn tp_error_code(err: *const tp_error) -> tp_code;
    pub fn tp_error_message(err: *const tp_error) -> *const c_char;
    pub fn tp_error_free(err: *mut tp_error);

    pub fn tp_version_number() -> u32;
    pub fn tp_version_string() -> *const c_char;

    pub fn tp_set_log_callback(
        fn_: tp_log_fn,
        user_data: *mut c_void,
        min_level: i32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;

    pub fn tp_tier_name(tier: i32) -> *const c_char;
    pub fn tp_state_name(state: i32) -> *const c_char;
    pub fn tp_reason_name(reason: i32) -> *const c_char;

    pub fn tp_registry_options_create(out: *mut *mut tp_registry_options, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_registry_options_destroy(opts: *mut tp_registry_options);
    pub fn tp_registry_options_set_preset(
        opts: *mut tp_registry_options,
        preset: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_options_use_simulated_device(
        opts: *mut tp_registry_options,
        total_bytes: u64,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_options_add_simulated_device(
        opts: *mut tp_registry_options,
        name: *const c_char,
        total_bytes: u64,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_options_set_background_thread(
        opts: *mut tp_registry_options,
        enabled: i32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_options_add_policy(
        opts: *mut tp_registry_options,
        vtable: *const tp_memory_policy_vtable,
        user_data: *mut c_void,
        out_err: *mut *mut tp_error,
    ) -> tp_code;

    pub fn tp_registry_options_set_text_encoder_offload(
        opts: *mut tp_registry_options,
        tier: i32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;

    pub fn tp_registry_create_from_file(
        out: *mut *mut tp_registry,
        config_path: *const c_char,
        opts: *mut tp_registry_options,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_create_from_string(
        out: *mut *mut tp_registry,
        config_json: *const c_char,
        opts: *mut tp_registry_options,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_destroy(reg: *mut tp_registry);
    pub fn tp_registry_model_count(out: *mut u32, reg: *const tp_registry, out_err: *mut *mut tp_error) -> tp_code;

    pub fn tp_registry_list(
        out: *mut *mut tp_model_list,
        reg: *const tp_registry,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_model_list_count(list: *const tp_model_list) -> u32;
    pub fn tp_model_list_get(
        out: *mut tp_model_info,
        list: *const tp_model_list,
        index: u32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_model_list_free(list: *mut tp_model_list);

    pub fn tp_registry_preload(reg: *mut tp_registry, model: *const c_char, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_registry_unload(
        out_bytes_returned: *mut i64,
        reg: *mut tp_registry,
        model: *const c_char,
        tier: i32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_unload_all(reg: *mut tp_registry, tier: i32, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_registry_tick(reg: *mut tp_registry, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_registry_stats(out: *mut tp_stats, reg: *const tp_registry, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_registry_stat(
        out: *mut u64,
        reg: *const tp_registry,
        name: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_evictions(
        out: *mut u64,
        reg: *const tp_registry,
        reason: i32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;

    pub fn tp_registry_subscribe(
        out_id: *mut i32,
        reg: *mut tp_registry,
        fn_: tp_event_fn,
        user_data: *mut c_void,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_registry_unsubscribe(reg: *mut tp_registry, id: i32, out_err: *mut *mut tp_error) -> tp_code;

    pub fn tp_model_acquire(
        out: *mut *mut tp_model,
        reg: *mut tp_registry,
        model: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_model_release(lease: *mut tp_model);
    pub fn tp_model_name(lease: *const tp_model) -> *const c_char;
    pub fn tp_model_device_bytes(lease: *const tp_model) -> u64;

    // Generation.
    pub fn tp_pipeline_create(
        out: *mut *mut tp_pipeline,
        reg: *mut tp_registry,
        name: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_pipeline_destroy(pipeline: *mut tp_pipeline);
    pub fn tp_pipeline_name(pipeline: *const tp_pipeline) -> *const c_char;
    pub fn tp_pipeline_type(pipeline: *const tp_pipeline) -> *const c_char;
    pub fn tp_pipeline_sizes(
        out_width: *mut i32,
        out_height: *mut i32,
        out_multiple: *mut i32,
        pipeline: *const tp_pipeline,
        out_err: *mut *mut tp_error,
    ) -> tp_code;

    pub fn tp_request_create(out: *mut *mut tp_request, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_destroy(req: *mut tp_request);
    pub fn tp_request_add_prompt(req: *mut tp_request, prompt: *const c_char, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_add_negative_prompt(
        req: *mut tp_request,
        negative_prompt: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_request_clear_prompts(req: *mut tp_request, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_set_images_per_prompt(req: *mut tp_request, count: i32, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_set_size(req: *mut tp_request, width: i32, height: i32, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_set_steps(req: *mut tp_request, steps: i32, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_set_guidance(req: *mut tp_request, guidance_scale: f64, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_set_seed(req: *mut tp_request, seed: u64, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_request_set_max_sequence_length(
        req: *mut tp_request,
        tokens: i32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_request_set_option(
        req: *mut tp_request,
        key: *const c_char,
        value: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_request_set_progress(
        req: *mut tp_request,
        fn_: tp_progress_fn,
        user_data: *mut c_void,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_request_cancel(req: *mut tp_request);

    pub fn tp_pipeline_generate(
        out: *mut *mut tp_result,
        pipeline: *mut tp_pipeline,
        req: *mut tp_request,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_result_get_info(
        out: *mut tp_result_info,
        result: *const tp_result,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_result_get_image(
        out: *mut tp_image,
        result: *const tp_result,
        index: u32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_result_warning(result: *const tp_result, index: u32) -> *const c_char;
    pub fn tp_result_free(result: *mut tp_result);

    pub fn tp_image_write_png(image: *const tp_image, path: *const c_char, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_image_encode_png(
        out_size: *mut usize,
        buffer: *mut u8,
        capacity: usize,
        image: *const tp_image,
        out_err: *mut *mut tp_error,
    ) -> tp_code;

    // Plans and single models.
    pub fn tp_registry_plan(
        out: *mut *mut tp_plan,
        reg: *const tp_registry,
        model: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_plan_get_info(out: *mut tp_plan_info, plan: *const tp_plan, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_plan_eviction(plan: *const tp_plan, index: u32) -> *const c_char;
    pub fn tp_plan_free(plan: *mut tp_plan);
    pub fn tp_registry_info(
        out: *mut *mut tp_model_list,
        reg: *const tp_registry,
        model: *const c_char,
        out_err: *mut *mut tp_error,
    ) -> tp_code;

    // Devices.
    pub fn tp_registry_devices(
        out: *mut *mut tp_device_list,
        reg: *const tp_registry,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_runtime_devices(out: *mut *mut tp_device_list, out_err: *mut *mut tp_error) -> tp_code;
    pub fn tp_device_list_count(list: *const tp_device_list) -> u32;
    pub fn tp_device_list_get(
        out: *mut tp_device_info,
        list: *const tp_device_list,
        index: u32,
        out_err: *mut *mut tp_error,
    ) -> tp_code;
    pub fn tp_device_list_free(list: *mut tp_device_list);
}
