/*
 * twistedpic C ABI.
 *
 * The one header through which C, Python, Rust and Go hosts embed twistedpic.
 * Conventions (docs/conventions.md):
 *   - Every function returns a tp_code (TP_OK == 0) unless documented
 *     otherwise, and takes an optional `tp_error** out_err` last among its
 *     parameters (before user_data). On failure *out_err receives an error
 *     object the caller frees with tp_error_free(); on success it is left
 *     untouched. Other out-parameters are written only on success.
 *   - Out-parameters come first and are named out / out_<x>.
 *   - A NULL required argument returns TP_INVALID_ARGUMENT.
 *   - No C++ exception ever crosses this boundary.
 *   - Strings are UTF-8, NUL-terminated, and copied before the call returns.
 */
#ifndef TWISTEDPIC_TP_H
#define TWISTEDPIC_TP_H

#include <stddef.h>
#include <stdint.h>

#include "twistedpic/version.h"

#if defined(_WIN32)
#define TP_API
#elif defined(__GNUC__)
#define TP_API __attribute__((visibility("default")))
#else
#define TP_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Codes. Values are fixed forever and only appended to; they equal tp::ErrorCode. */

typedef int32_t tp_code;
#define TP_OK 0
#define TP_CANCELLED 1
#define TP_UNKNOWN 2
#define TP_INVALID_ARGUMENT 3
#define TP_NOT_FOUND 5
#define TP_ALREADY_EXISTS 6
#define TP_RESOURCE_EXHAUSTED 8
#define TP_FAILED_PRECONDITION 9
#define TP_ABORTED 10
#define TP_UNIMPLEMENTED 12
#define TP_INTERNAL 13
#define TP_UNAVAILABLE 14
#define TP_DATA_LOSS 15

/**
 * The stable upper-snake name of a code ("INVALID_ARGUMENT"); "UNKNOWN" for a
 * value this library does not know.
 * @return a static string; never NULL, never freed.
 * @threadsafety safe.
 * @since 0.1
 */
TP_API const char* tp_code_name(tp_code code);

/* ------------------------------------------------------------------------ */
/* Errors. */

/** An error: a code and a UTF-8 message. @threadsafety immutable. */
typedef struct tp_error tp_error;

/**
 * @param[in] err an error, or NULL.
 * @return its code; TP_OK for NULL.
 * @threadsafety safe.
 */
TP_API tp_code tp_error_code(const tp_error* err);

/**
 * @param[in] err an error, or NULL.
 * @return its message, borrowed: valid until tp_error_free(err). "" for NULL.
 * @threadsafety safe.
 */
TP_API const char* tp_error_message(const tp_error* err);

/**
 * Frees an error. NULL is a no-op.
 * @threadsafety external: not concurrently with other uses of the same error.
 */
TP_API void tp_error_free(tp_error* err);

/* ------------------------------------------------------------------------ */
/* Version. */

/**
 * The library's TP_VERSION_NUMBER, to compare against the header's:
 * `assert(tp_version_number() == TP_VERSION_NUMBER)`.
 * @threadsafety safe.
 */
TP_API uint32_t tp_version_number(void);

/** The library's version string, "MAJOR.MINOR.PATCH". Static. @threadsafety safe. */
TP_API const char* tp_version_string(void);

/* ------------------------------------------------------------------------ */
/* Logging. Levels equal spdlog's. */

#define TP_LOG_TRACE 0
#define TP_LOG_DEBUG 1
#define TP_LOG_INFO 2
#define TP_LOG_WARN 3
#define TP_LOG_ERROR 4
#define TP_LOG_CRITICAL 5
#define TP_LOG_OFF 6

/**
 * Receives one whole log line.
 * @param level   a TP_LOG_* value.
 * @param logger  the component ("registry", "weights"); valid only during the call.
 * @param msg     the line, NUL-terminated, without newline; valid only during the call.
 * @param len     strlen(msg).
 * @param user_data as given to tp_set_log_callback().
 * Called from any library thread, possibly concurrently. Must not unwind and
 * must not call tp_set_log_callback().
 */
typedef void (*tp_log_fn)(int32_t level, const char* logger, const char* msg, size_t len, void* user_data);

/**
 * Routes the library's log lines at `min_level` and above to `fn`. fn == NULL
 * restores the default (stderr, TP_LOG_WARN and above).
 * @return TP_INVALID_ARGUMENT for a level outside TP_LOG_TRACE..TP_LOG_OFF.
 * @threadsafety safe: the callback is swapped atomically, and once this
 *   returns the previous callback is never called again (the swap waits for
 *   a line in flight), so its user_data may be freed.
 */
TP_API tp_code tp_set_log_callback(tp_log_fn fn, void* user_data, int32_t min_level, tp_error** out_err);


/* ------------------------------------------------------------------------ */
/* Residency vocabulary (values equal tp::Tier, tp::ModelState, tp::Reason). */

#define TP_TIER_DEVICE 0
#define TP_TIER_HOST 1
#define TP_TIER_DISK 2

#define TP_STATE_UNLOADED 0
#define TP_STATE_LOADING 1
#define TP_STATE_RESIDENT 2
#define TP_STATE_OFFLOADED 3
#define TP_STATE_UNLOADING 4
#define TP_STATE_FAILED 5

#define TP_REASON_LAZY 0
#define TP_REASON_EAGER 1
#define TP_REASON_TTL 2
#define TP_REASON_LRU 3
#define TP_REASON_PRESSURE 4
#define TP_REASON_EXPLICIT 5
#define TP_REASON_UNLOAD_AFTER 6
/*
 * The number of slots in tp_stats.evictions, frozen at 7 (the v0.1 reasons):
 * it never grows, so tp_stats keeps its layout. Reasons added later are
 * counted only by tp_registry_evictions(), which takes any reason.
 */
#define TP_REASON_SLOTS 7

/** "device" | "host" | "disk"; "?" otherwise. Static. @threadsafety safe. */
TP_API const char* tp_tier_name(int32_t tier);
/**
 * "unloaded" | "loading" | "resident" | "offloaded" | "unloading" | "failed"; "?" otherwise.
 * Static. @threadsafety safe.
 */
TP_API const char* tp_state_name(int32_t state);
/**
 * "lazy" | "eager" | "ttl" | "lru" | "pressure" | "explicit" | "unload-after"; "?" otherwise.
 * Static. @threadsafety safe.
 */
TP_API const char* tp_reason_name(int32_t reason);

/* ------------------------------------------------------------------------ */
/* Memory policies written by the host, through a vtable. */

/** One model as a policy sees it. Strings are borrowed for the call. */
typedef struct tp_policy_model {
  const char* name;
  int32_t state;          /* TP_STATE_* */
  int32_t tier;           /* TP_TIER_* */
  uint64_t device_bytes;
  uint64_t host_bytes;
  uint32_t leases;
  int32_t pinned;         /* 0 or 1 */
  int32_t priority;
  int32_t evictable;      /* resident, unleased, unpinned: the registry accepts it as a victim */
  double idle_seconds;    /* since the last use (load, acquire or release); -1 when never loaded */
} tp_policy_model; /* end of v0.1 */

/**
 * Element `i` of a tp_policy_model array whose elements are `model_size`
 * bytes apart (the model_size given to rank_victims). Read only the fields
 * that lie within model_size: `offsetof(tp_policy_model, f) < model_size`.
 * @since 0.2
 */
#define TP_POLICY_MODEL_AT(models, model_size, i) \
  ((const tp_policy_model*)((const char*)(models) + (size_t)(i) * (size_t)(model_size)))

/**
 * A memory policy implemented by the host. The registry consults it before
 * its built-in policies. The struct is copied by tp_registry_options_add_policy().
 * Callbacks run with the registry's lock held, on any registry thread, one at
 * a time; they must not call into the registry and must not unwind.
 */
typedef struct tp_memory_policy_vtable {
  uint32_t struct_size; /* sizeof(tp_memory_policy_vtable); v0.1's 32 bytes are accepted */
  /**
   * Ranks models to evict to free at least need_bytes on the device.
   * Writes up to max_out indices into `models` to out_indices, cheapest first,
   * and returns how many (0: no opinion, the built-ins decide). The indices
   * are a ranking: the registry evicts in that order and stops as soon as the
   * evicted device bytes cover the need, so a policy may rank every
   * candidate. Victims move to the pinned host tier, or to disk when the host
   * budget has no room. Indices that are not evictable are skipped. `models`
   * is an array of v0.1's 56-byte tp_policy_model. Ignored when
   * rank_victims is set. May be NULL.
   */
  uint32_t (*select_victims)(uint32_t* out_indices, uint32_t max_out, const tp_policy_model* models, uint32_t count,
                             uint64_t need_bytes, void* user_data);
  /** Called after every successful acquire. May be NULL. */
  void (*on_access)(const char* model, void* user_data);
  /**
   * Called exactly once, when the library no longer needs the policy: when
   * the registry goes (at tp_registry_destroy(), or at the last
   * tp_model_release() when leases outlive it, on that thread), or at
   * tp_registry_options_destroy() if no registry took it. May be NULL.
   */
  void (*destroy)(void* user_data);
  /* end of v0.1 (32 bytes) */
  /**
   * As select_victims, for an array of elements `model_size` bytes apart
   * (sizeof(tp_policy_model) of the library, which may be longer than the
   * policy's): walk it with TP_POLICY_MODEL_AT(models, model_size, i).
   * Takes precedence over select_victims. May be NULL.
   * @since 0.2
   */
  uint32_t (*rank_victims)(uint32_t* out_indices, uint32_t max_out, const tp_policy_model* models, uint32_t count,
                           uint32_t model_size, uint64_t need_bytes, void* user_data);
} tp_memory_policy_vtable; /* end of v0.2 (40 bytes) */

/* ------------------------------------------------------------------------ */
/* Registry options. */

/** Options for creating a registry. @threadsafety external. */
typedef struct tp_registry_options tp_registry_options;

/** @param[out] out receives new options, owned by the caller (tp_registry_options_destroy). @threadsafety safe. */
TP_API tp_code tp_registry_options_create(tp_registry_options** out, tp_error** out_err);
/**
 * NULL-safe. Destroys policies added but never handed to a registry (their destroy is called).
 * @threadsafety external: not concurrently with other uses of opts.
 */
TP_API void tp_registry_options_destroy(tp_registry_options* opts);

/**
 * Replaces the config's policy with a named preset: "max_gpu_availability",
 * "balanced" or "max_speed". TP_INVALID_ARGUMENT for another name.
 * @threadsafety external: one thread at a time per options object.
 */
TP_API tp_code tp_registry_options_set_preset(tp_registry_options* opts, const char* preset, tp_error** out_err);

/**
 * Uses a simulated device of `total_bytes` and simulated weights (each model's
 * config must give "size_bytes"), for tests and demos. Without it the
 * registry loads real safetensors weights onto the CUDA devices (every
 * visible one; tp_runtime_devices() lists them), or onto the CPU device
 * (host memory, half the RAM) where no GPU is usable.
 * @return TP_FAILED_PRECONDITION after tp_registry_options_add_simulated_device()
 *   on the same options.
 * @threadsafety external: one thread at a time per options object.
 */
TP_API tp_code tp_registry_options_use_simulated_device(tp_registry_options* opts, uint64_t total_bytes,
                                                        tp_error** out_err);

/**
 * Adds a simulated device named `name` of `total_bytes`, after those added
 * before: a registry made from these options spans them in that order (its
 * tp_registry_devices() lists them so), with simulated weights (each model's
 * config must give "size_bytes"; its "device" names one of them, or "auto").
 * For tests and demos of several devices.
 * @param[in] name UTF-8, non-empty, unique among the added devices ("sim:0", "gpu-a").
 * @return TP_INVALID_ARGUMENT for an empty or repeated name or total_bytes 0;
 *   TP_FAILED_PRECONDITION when tp_registry_options_use_simulated_device()
 *   was called on these options (one simulated device, or named ones, not both).
 * @threadsafety external: one thread at a time per options object.
 * @since 0.2
 */
TP_API tp_code tp_registry_options_add_simulated_device(tp_registry_options* opts, const char* name,
                                                        uint64_t total_bytes, tp_error** out_err);

/**
 * Runs idle timeouts and pressure checks on a background thread (1, the
 * default) or only in tp_registry_tick() (0).
 * @threadsafety external: one thread at a time per options object.
 */
TP_API tp_code tp_registry_options_set_background_thread(tp_registry_options* opts, int32_t enabled,
                                                         tp_error** out_err);

/**
 * Adds a host policy, consulted before the built-ins (and before policies
 * added earlier). The vtable is copied; user_data is handed to the registry
 * created from these options, which calls vtable->destroy(user_data) exactly
 * once (or the options do, if no registry is created from them). On failure
 * nothing is taken: destroy is not called and user_data stays the caller's.
 * @threadsafety external: one thread at a time per options object.
 */
TP_API tp_code tp_registry_options_add_policy(tp_registry_options* opts, const tp_memory_policy_vtable* vtable,
                                              void* user_data, tp_error** out_err);

/**
 * Where the text encoders of pipeline models go when their lease ends,
 * overriding their policy: TP_TIER_HOST frees the device for the denoiser after
 * encoding and brings them back from pinned memory (diffusers' model offload);
 * TP_TIER_DISK drops them; -1 (the default) leaves it to the policy.
 * @return TP_INVALID_ARGUMENT for another value.
 * @threadsafety external: not concurrently with other uses of opts.
 * @since 0.2
 */
TP_API tp_code tp_registry_options_set_text_encoder_offload(tp_registry_options* opts, int32_t tier,
                                                            tp_error** out_err);

/* ------------------------------------------------------------------------ */
/* Registry. */

/**
 * The model registry. @threadsafety safe: every function taking a
 * tp_registry* may be called from any thread, concurrently, except
 * tp_registry_destroy(), which must not overlap other calls on it.
 * Callbacks (events, host policies) must not call back into the registry:
 * a policy runs under the registry's lock, and re-entering deadlocks.
 */
typedef struct tp_registry tp_registry;

/**
 * Creates a registry from a JSON config file. Models of a pipeline type
 * (pipeline_type "sd3") become one registry model per network, named
 * "<model>/<component>" ("sd3/transformer"), exactly as the C++ API's
 * expand_pipeline_components() names them; their folders are read here.
 * On simulated devices (tp_registry_options_use_simulated_device,
 * tp_registry_options_add_simulated_device) models stay as configured:
 * simulated weights run no pipeline.
 * @param[out] out receives the registry, owned by the caller (tp_registry_destroy).
 * @param[in] config_path UTF-8 path.
 * @param[in] opts nullable; read during the call only. Policies added to it
 *   move to the registry (a second create from the same options has none).
 * @return TP_NOT_FOUND for a missing file; TP_INVALID_ARGUMENT for a bad config,
 *   whose message names the file, the field and the problem.
 * @threadsafety safe (opts: external).
 */
TP_API tp_code tp_registry_create_from_file(tp_registry** out, const char* config_path,
                                            tp_registry_options* opts, tp_error** out_err);

/**
 * As tp_registry_create_from_file(), from a JSON string (named "<string>" in errors).
 * @threadsafety safe (opts: external).
 */
TP_API tp_code tp_registry_create_from_string(tp_registry** out, const char* config_json,
                                              tp_registry_options* opts, tp_error** out_err);

/**
 * Destroys a registry. NULL-safe. Safe while leases are live: the registry
 * stops taking requests, and its models are freed when the last lease is
 * released. Must not run concurrently with other calls on the same registry.
 * @threadsafety external: must not overlap other calls on reg.
 */
TP_API void tp_registry_destroy(tp_registry* reg);

/** Number of configured models. @threadsafety safe. */
TP_API tp_code tp_registry_model_count(uint32_t* out, const tp_registry* reg, tp_error** out_err);

/** One row of the registry's model list. Strings are owned by the tp_model_list. */
typedef struct tp_model_info {
  uint32_t struct_size;    /* set by the caller: sizeof(tp_model_info) */
  const char* name;
  const char* source;
  const char* pipeline_type;
  const char* dtype;       /* "fp32" | "fp16" | "bf16" */
  int32_t state;           /* TP_STATE_* */
  int32_t tier;            /* TP_TIER_* */
  uint64_t device_bytes;
  uint64_t host_bytes;
  uint32_t leases;
  int32_t pinned;
  int32_t priority;
  double last_use_age_s;   /* seconds since last use; -1 when never used */
  double expires_in_s;     /* seconds until an idle timeout unloads it; -1 when none is running */
  uint64_t load_count;
  double last_load_ms;
  const char* last_error;  /* "" unless the last load failed */
  /* end of v0.1 (120 bytes) */
  /**
   * The registry device it is on, or that its next load goes to ("cuda:1",
   * "cpu", a simulated device's name); "auto" for a model configured "auto"
   * that no load has placed yet. @since 0.2
   */
  const char* device;
} tp_model_info; /* end of v0.2 (128 bytes) */

/** A snapshot of every configured model. @threadsafety immutable. */
typedef struct tp_model_list tp_model_list;

/**
 * @param[out] out a snapshot owned by the caller (tp_model_list_free). Rows are
 *   in the config's order (a JSON config's models are read in name order).
 * @threadsafety safe.
 */
TP_API tp_code tp_registry_list(tp_model_list** out, const tp_registry* reg, tp_error** out_err);
/** Number of rows; 0 for NULL. @threadsafety safe. */
TP_API uint32_t tp_model_list_count(const tp_model_list* list);
/**
 * Fills out (whose struct_size the caller sets) with row `index`. Writes only
 * the fields that fit in out->struct_size. Strings stay valid until
 * tp_model_list_free(list). TP_INVALID_ARGUMENT for a bad index or a
 * struct_size below v0.1's.
 * @threadsafety safe.
 */
TP_API tp_code tp_model_list_get(tp_model_info* out, const tp_model_list* list, uint32_t index, tp_error** out_err);
/** NULL-safe. @threadsafety external: not concurrently with other uses of list. */
TP_API void tp_model_list_free(tp_model_list* list);

/** Loads `model` without taking a lease. @threadsafety safe. */
TP_API tp_code tp_registry_preload(tp_registry* reg, const char* model, tp_error** out_err);
/**
 * Moves `model` off the device to `tier` (TP_TIER_HOST keeps a pinned copy,
 * TP_TIER_DISK drops all). TP_FAILED_PRECONDITION while leased.
 * @param[out] out_bytes_returned nullable: device bytes measured as returned to the driver.
 * @threadsafety safe.
 */
TP_API tp_code tp_registry_unload(int64_t* out_bytes_returned, tp_registry* reg, const char* model, int32_t tier,
                                  tp_error** out_err);
/** Unloads every unleased model; TP_FAILED_PRECONDITION naming those still leased. @threadsafety safe. */
TP_API tp_code tp_registry_unload_all(tp_registry* reg, int32_t tier, tp_error** out_err);
/** Applies idle timeouts, pressure and LRU limits now. @threadsafety safe. */
TP_API tp_code tp_registry_tick(tp_registry* reg, tp_error** out_err);

/* ------------------------------------------------------------------------ */
/* Devices. */

/**
 * One device, as tp_device_list_get() fills it. A registry's list
 * (tp_registry_devices) fills every field; the runtime's
 * (tp_runtime_devices) only name, total_bytes and free_bytes (the rest 0).
 */
typedef struct tp_device_info {
  uint32_t struct_size;         /* set by the caller: sizeof(tp_device_info) */
  const char* name;             /* "cuda:0", "cpu", a simulated device's name; owned by the tp_device_list */
  uint64_t total_bytes;         /* as its monitor reports it (0: unknown) */
  uint64_t free_bytes;
  uint64_t process_bytes;       /* this process's, per the driver (NVML) */
  uint64_t other_process_bytes; /* every other process's */
  uint64_t headroom_bytes;      /* kept free for others by the policy */
  uint64_t budget_bytes;        /* the registry's budget on it; 0: as much as is free */
  uint64_t held_bytes;          /* model weights the registry holds on it now */
  uint64_t peak_bytes;          /* the most it ever held */
  uint64_t reserved_bytes;      /* admitted loads in flight (weights + workspace) */
  uint64_t scratch_bytes;       /* the weight engine's scratch pool on it */
  uint64_t admission_queue;     /* loads waiting for its memory */
  uint32_t resident_models;
} tp_device_info; /* end of v0.2 (112 bytes) */

/** A snapshot of devices. @threadsafety immutable. @since 0.2 */
typedef struct tp_device_list tp_device_list;

/**
 * The registry's devices, in the order it was given them (for the default
 * options: cuda:0, cuda:1, ..., or the CPU device alone; with
 * tp_registry_options_add_simulated_device(): those, in the order added).
 * @param[out] out a snapshot owned by the caller (tp_device_list_free).
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_registry_devices(tp_device_list** out, const tp_registry* reg, tp_error** out_err);

/**
 * The devices a registry made without a simulated device would use now:
 * every visible CUDA device ("cuda:N", with the driver's total and free
 * bytes), or the CPU device alone ("cpu", its budget: half the RAM) where
 * no GPU is usable. The library built without LibTorch (its fuzzer) has
 * only the CPU device.
 * @param[out] out a snapshot owned by the caller (tp_device_list_free).
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_runtime_devices(tp_device_list** out, tp_error** out_err);

/** Number of devices; 0 for NULL. @threadsafety safe. @since 0.2 */
TP_API uint32_t tp_device_list_count(const tp_device_list* list);
/**
 * Fills out (whose struct_size the caller sets) with device `index`. Writes
 * only the fields that fit in out->struct_size. Strings stay valid until
 * tp_device_list_free(list). TP_INVALID_ARGUMENT for a bad index or a
 * struct_size below v0.2's 112.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_device_list_get(tp_device_info* out, const tp_device_list* list, uint32_t index,
                                  tp_error** out_err);
/** NULL-safe. @threadsafety external: not concurrently with other uses of list. @since 0.2 */
TP_API void tp_device_list_free(tp_device_list* list);

/** Registry statistics. */
typedef struct tp_stats {
  uint32_t struct_size; /* set by the caller: sizeof(tp_stats) */
  uint64_t hits;
  uint64_t misses;
  uint64_t loads;
  uint64_t reloads;
  uint64_t load_failures;
  uint64_t admission_waits;
  uint64_t admission_failures;
  uint64_t evictions[TP_REASON_SLOTS]; /* indexed by TP_REASON_*: the 7 v0.1 reasons only (TP_REASON_SLOTS is
                                          frozen); tp_registry_evictions() counts every reason */
  uint64_t bytes_to_device;
  uint64_t bytes_to_host;
  uint64_t bytes_returned;
  uint64_t device_bytes;
  uint64_t peak_device_bytes;
  uint64_t host_bytes;
  double load_ms_p50;
  double load_ms_p95;
  double reload_ms_p50;
  double reload_ms_p95;
} tp_stats; /* end of v0.1 */

/**
 * Fills out (whose struct_size the caller sets, at least v0.1's 200 bytes;
 * only that prefix is written). @threadsafety safe.
 */
TP_API tp_code tp_registry_stats(tp_stats* out, const tp_registry* reg, tp_error** out_err);

/**
 * Evictions so far for one reason (TP_REASON_*), including reasons added after
 * v0.1, which tp_stats.evictions has no slot for.
 * @param[out] out the count.
 * @return TP_INVALID_ARGUMENT for a reason this library does not know
 *   (tp_reason_name() gives "?" for it), so a host can detect a new reason.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_registry_evictions(uint64_t* out, const tp_registry* reg, int32_t reason, tp_error** out_err);

/**
 * One registry statistic by name, including those added after tp_stats was
 * frozen (a new statistic is a new name, never a new symbol or field):
 * "admission_queue" (loads waiting for device memory now, first come first
 * served), "admission_queue_bytes" (what they need), "admission_waits",
 * "admission_failures", "admission_cancels" (waits ended by a cancel);
 * the device as its monitor reports it: "device_total_bytes",
 * "device_free_bytes", "process_bytes" (this process, per the driver),
 * "other_process_bytes" (every other process), "headroom_bytes" (kept free
 * for others by the policy); the allocator cache: "cache_releases",
 * "cache_bytes_returned" (measured bytes handed back to the driver).
 * @param[out] out the value.
 * @return TP_INVALID_ARGUMENT for a name this library does not know (its
 *   message lists the known ones), so a host can detect an older library.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_registry_stat(uint64_t* out, const tp_registry* reg, const char* name, tp_error** out_err);

/** One residency transition, borrowed for the duration of the callback. */
typedef struct tp_event {
  uint32_t struct_size;
  const char* model;
  int32_t from;            /* TP_TIER_* */
  int32_t to;              /* TP_TIER_* */
  int32_t reason;          /* TP_REASON_* */
  int32_t failed;          /* 1 for a failed load */
  uint64_t bytes;
  double ms;
  int64_t bytes_returned;  /* device bytes measured as returned to the driver */
  const char* error;       /* "" unless failed */
} tp_event; /* end of v0.1 */

/**
 * Receives residency events, on the thread that made the transition, possibly
 * concurrently, without the registry's lock. Must not unwind and must not
 * destroy the registry. `ev` is valid only during the call.
 */
typedef void (*tp_event_fn)(const tp_event* ev, void* user_data);

/**
 * Subscribes `fn`. @param[out] out_id nullable: an id for tp_registry_unsubscribe().
 * `user_data` must stay valid until tp_registry_unsubscribe() or
 * tp_registry_destroy() returns; after either, `fn` is never called again.
 * @threadsafety safe.
 */
TP_API tp_code tp_registry_subscribe(int32_t* out_id, tp_registry* reg, tp_event_fn fn, void* user_data,
                                     tp_error** out_err);
/**
 * After it returns, the subscription's `fn` is never called again: it waits for
 * a delivery in flight on another thread. May be called from inside `fn`.
 * TP_NOT_FOUND for an unknown id.
 * @threadsafety safe.
 */
TP_API tp_code tp_registry_unsubscribe(tp_registry* reg, int32_t id, tp_error** out_err);

/* ------------------------------------------------------------------------ */
/* Leases. */

/**
 * A lease on a resident model: while it lives the model stays on the device.
 * @threadsafety immutable (may be shared across threads for reading);
 *   tp_model_release() must be called exactly once.
 */
typedef struct tp_model tp_model;

/**
 * Acquires a lease on `model`, loading or reloading it first when needed
 * (single-flight: concurrent acquires perform one load).
 * @param[out] out a lease owned by the caller (tp_model_release).
 * @return TP_NOT_FOUND for an unknown model; TP_RESOURCE_EXHAUSTED when it
 *   cannot fit (the message states needed, free and evictable bytes);
 *   TP_FAILED_PRECONDITION when the registry is being destroyed.
 * @threadsafety safe.
 */
TP_API tp_code tp_model_acquire(tp_model** out, tp_registry* reg, const char* model, tp_error** out_err);
/**
 * Releases a lease. NULL-safe. The memory policies apply now.
 * @threadsafety external: exactly once per lease, not concurrently with other uses of it.
 */
TP_API void tp_model_release(tp_model* lease);
/** The leased model's name, borrowed until tp_model_release(). "" for NULL. @threadsafety safe. */
TP_API const char* tp_model_name(const tp_model* lease);
/** Device bytes the leased model holds; 0 for NULL. @threadsafety safe. */
TP_API uint64_t tp_model_device_bytes(const tp_model* lease);

/* ------------------------------------------------------------------------ */
/* Generation. */

/**
 * A text-to-image pipeline of a registry: a configured model with a
 * pipeline_type. Its networks are registry models, leased while they run.
 * @threadsafety safe: tp_pipeline_generate() may run on several threads at
 *   once, each with its own request. Destroy every pipeline before its registry.
 */
typedef struct tp_pipeline tp_pipeline;

/**
 * @param[out] out the pipeline, owned by the caller (tp_pipeline_destroy).
 * @param[in] name a configured model with a pipeline_type ("sd35_medium").
 * @return TP_NOT_FOUND for an unknown model; TP_UNIMPLEMENTED for a pipeline
 *   type that is not supported. Loads no weights.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_pipeline_create(tp_pipeline** out, tp_registry* reg, const char* name, tp_error** out_err);
/** NULL-safe. @threadsafety external: not while a generate call on it runs. @since 0.2 */
TP_API void tp_pipeline_destroy(tp_pipeline* pipeline);
/** Its name, borrowed for its lifetime; "" for NULL. @threadsafety safe. @since 0.2 */
TP_API const char* tp_pipeline_name(const tp_pipeline* pipeline);
/** Its pipeline type ("sd3"), borrowed for its lifetime; "" for NULL. @threadsafety safe. @since 0.2 */
TP_API const char* tp_pipeline_type(const tp_pipeline* pipeline);
/**
 * The pipeline's default image size, and the multiple every width and height must be.
 * @param[out] out_width, out_height, out_multiple each nullable.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_pipeline_sizes(int32_t* out_width, int32_t* out_height, int32_t* out_multiple,
                                 const tp_pipeline* pipeline, tp_error** out_err);

/** What a generate call is doing, for progress. */
#define TP_STAGE_ENCODE 0  /* the text encoders */
#define TP_STAGE_DENOISE 1 /* one denoising step done */
#define TP_STAGE_DECODE 2  /* the VAE */
#define TP_STAGE_WAITING 3 /* waiting for a network to load */

/** One progress report, borrowed for the duration of the callback. */
typedef struct tp_progress {
  uint32_t struct_size; /* sizeof(tp_progress) of the library that calls */
  int32_t stage;        /* TP_STAGE_* */
  int32_t step;         /* 1-based while denoising; 0 otherwise */
  int32_t steps;        /* the call's denoising steps */
  double elapsed_s;     /* since the call began */
  const char* model;    /* TP_STAGE_WAITING: the network's registry model; "" otherwise */
} tp_progress; /* end of v0.2 */

/**
 * Receives progress on the generating thread. Return 0 to go on, non-zero to
 * cancel the call (it returns TP_CANCELLED). Must not unwind.
 */
typedef int32_t (*tp_progress_fn)(const tp_progress* progress, void* user_data);

/**
 * The settings of one generate call, set through setters; each has a default.
 * @threadsafety external, except tp_request_cancel() (any thread). One request
 *   may serve several calls one after another, not at once.
 */
typedef struct tp_request tp_request;

/** @param[out] out a new request, owned by the caller (tp_request_destroy). @since 0.2 */
TP_API tp_code tp_request_create(tp_request** out, tp_error** out_err);
/** NULL-safe. @since 0.2 */
TP_API void tp_request_destroy(tp_request* req);
/** Appends a prompt: one image per prompt and images_per_prompt. At least one. @since 0.2 */
TP_API tp_code tp_request_add_prompt(tp_request* req, const char* prompt, tp_error** out_err);
/** Appends a negative prompt: give none, one for every prompt, or one per prompt. @since 0.2 */
TP_API tp_code tp_request_add_negative_prompt(tp_request* req, const char* negative_prompt, tp_error** out_err);
/** Removes every prompt and negative prompt. @since 0.2 */
TP_API tp_code tp_request_clear_prompts(tp_request* req, tp_error** out_err);
/** Images per prompt, 1..64 (default 1). @since 0.2 */
TP_API tp_code tp_request_set_images_per_prompt(tp_request* req, int32_t count, tp_error** out_err);
/** Pixels; 0 (the default) takes the model's default size. @since 0.2 */
TP_API tp_code tp_request_set_size(tp_request* req, int32_t width, int32_t height, tp_error** out_err);
/** Denoising steps, 1..1000; 0 (the default) takes the model's default. @since 0.2 */
TP_API tp_code tp_request_set_steps(tp_request* req, int32_t steps, tp_error** out_err);
/** Classifier-free guidance; 1 or less turns it off. A NaN (the default) takes the model's default. @since 0.2 */
TP_API tp_code tp_request_set_guidance(tp_request* req, double guidance_scale, tp_error** out_err);
/** The seed of the initial noise (default 0): torch.Generator().manual_seed(seed). @since 0.2 */
TP_API tp_code tp_request_set_seed(tp_request* req, uint64_t seed, tp_error** out_err);
/**
 * T5 tokens, 1..512. Default: the model's, as in diffusers (256 for SD3 and
 * FLUX.1 [schnell]-style models, 512 for [dev]-style ones).
 * @since 0.2
 */
TP_API tp_code tp_request_set_max_sequence_length(tp_request* req, int32_t tokens, tp_error** out_err);
/**
 * An option that only some pipeline types have, as text ("true_cfg_scale",
 * "scheduler", ...). An unknown key is TP_UNIMPLEMENTED, which doubles as
 * feature detection; the pipeline checks values when it runs.
 * @since 0.2
 */
TP_API tp_code tp_request_set_option(tp_request* req, const char* key, const char* value, tp_error** out_err);
/**
 * Progress for the calls made with this request; NULL clears it. `user_data`
 * must stay valid while a call runs.
 * @since 0.2
 */
TP_API tp_code tp_request_set_progress(tp_request* req, tp_progress_fn fn, void* user_data, tp_error** out_err);
/**
 * Cancels the call running with this request, from any thread: it returns
 * TP_CANCELLED at the next check (between steps, between networks, while
 * waiting for a load). A cancelled request stays cancelled; make a new one
 * for the next call. NULL-safe.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API void tp_request_cancel(tp_request* req);

/** The images of one call and the settings, timings and warnings it ran with. @threadsafety immutable. */
typedef struct tp_result tp_result;

/**
 * Generates the request's images. Leases each network in turn (loading it
 * when needed) and releases it after use; nothing stays leased afterwards,
 * on success or failure.
 * @param[out] out the result, owned by the caller (tp_result_free).
 * @return TP_INVALID_ARGUMENT for bad settings (no prompt, a bad size, ...);
 *   TP_CANCELLED; TP_RESOURCE_EXHAUSTED when a network cannot fit; the
 *   registry's codes for a failed load; TP_INTERNAL for a torch failure.
 * @threadsafety safe on one pipeline from several threads with distinct requests.
 * @since 0.2
 */
TP_API tp_code tp_pipeline_generate(tp_result** out, tp_pipeline* pipeline, tp_request* req, tp_error** out_err);

/** One RGB8 image, borrowed from its result until tp_result_free(). */
typedef struct tp_image {
  uint32_t struct_size;  /* set by the caller: sizeof(tp_image) */
  int32_t width;
  int32_t height;
  int32_t stride;        /* bytes from one row to the next (width * 3 today) */
  const uint8_t* pixels; /* row-major RGB8, height * stride bytes */
} tp_image; /* end of v0.2 */

/** The settings a call ran with (the model's defaults filled in), and its timings. */
typedef struct tp_result_info {
  uint32_t struct_size; /* set by the caller: sizeof(tp_result_info) */
  uint32_t image_count;
  int32_t width;
  int32_t height;
  int32_t steps;
  double guidance_scale;
  uint64_t seed;
  double encode_s;
  double denoise_s;
  double decode_s;
  double acquire_s; /* waiting for networks to load (part of the others) */
  double total_s;
  uint32_t warning_count;
} tp_result_info; /* end of v0.2 */

/** Fills `out` (whose struct_size the caller sets). @threadsafety safe. @since 0.2 */
TP_API tp_code tp_result_get_info(tp_result_info* out, const tp_result* result, tp_error** out_err);
/** Image `index` (prompt-major: every image of the first prompt first). @threadsafety safe. @since 0.2 */
TP_API tp_code tp_result_get_image(tp_image* out, const tp_result* result, uint32_t index, tp_error** out_err);
/** Warning `index` (a truncated prompt, ...), borrowed until tp_result_free(). "" when out of range. @since 0.2 */
TP_API const char* tp_result_warning(const tp_result* result, uint32_t index);
/** NULL-safe. @threadsafety external. @since 0.2 */
TP_API void tp_result_free(tp_result* result);

/**
 * Writes `image` as a PNG file; the file appears whole or not at all.
 * @return the file's error codes (TP_NOT_FOUND for a missing folder, ...), naming the path.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_image_write_png(const tp_image* image, const char* path, tp_error** out_err);
/**
 * Encodes `image` as PNG into the caller's `buffer`. `*out_size` receives the
 * PNG's size; when `capacity` is smaller, nothing is written and the call
 * returns TP_RESOURCE_EXHAUSTED, so a caller may ask first with capacity 0.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_image_encode_png(size_t* out_size, uint8_t* buffer, size_t capacity, const tp_image* image,
                                   tp_error** out_err);

/* ------------------------------------------------------------------------ */
/* Plans and single models. */

/** What acquiring a model would do now: a dry run of its admission. @threadsafety immutable. */
typedef struct tp_plan tp_plan;

/** A plan's figures. */
typedef struct tp_plan_info {
  uint32_t struct_size;     /* set by the caller: sizeof(tp_plan_info) */
  int32_t fits;             /* 1: the model can be admitted (after the evictions) */
  int32_t resident;         /* 1: already on the device, nothing to do */
  int32_t from;             /* TP_TIER_*: where the weights would come from */
  uint64_t bytes_to_move;   /* the weights */
  uint64_t needed_bytes;    /* weights + workspace */
  uint64_t free_bytes;      /* usable now (free minus headroom, within the budget) */
  uint64_t bytes_evicted;   /* what the evictions would free */
  uint32_t eviction_count;  /* names via tp_plan_eviction() */
  const char* explanation;  /* one line for people, borrowed until tp_plan_free() */
} tp_plan_info; /* end of v0.2 */

/**
 * @param[out] out the plan, owned by the caller (tp_plan_free).
 * @return TP_NOT_FOUND for an unknown model.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_registry_plan(tp_plan** out, const tp_registry* reg, const char* model, tp_error** out_err);
/** Fills `out` (whose struct_size the caller sets). @threadsafety safe. @since 0.2 */
TP_API tp_code tp_plan_get_info(tp_plan_info* out, const tp_plan* plan, tp_error** out_err);
/** The model eviction `index` would move; borrowed until tp_plan_free(); "" when out of range. @since 0.2 */
TP_API const char* tp_plan_eviction(const tp_plan* plan, uint32_t index);
/** NULL-safe. @since 0.2 */
TP_API void tp_plan_free(tp_plan* plan);

/**
 * One model's row: a one-row tp_model_list (read it with tp_model_list_get(..., 0, ...)).
 * @return TP_NOT_FOUND for an unknown model.
 * @threadsafety safe.
 * @since 0.2
 */
TP_API tp_code tp_registry_info(tp_model_list** out, const tp_registry* reg, const char* model, tp_error** out_err);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TWISTEDPIC_TP_H */
