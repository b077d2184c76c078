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
/* Number of reasons known to this header; tp_stats.evictions has this many slots. */
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
 * A memory policy implemented by the host. The registry consults it before
 * its built-in policies. The struct is copied by tp_registry_options_add_policy().
 * Callbacks run with the registry's lock held, on any registry thread, one at
 * a time; they must not call into the registry and must not unwind.
 */
typedef struct tp_memory_policy_vtable {
  uint32_t struct_size; /* sizeof(tp_memory_policy_vtable) */
  /**
   * Chooses models to evict to free at least need_bytes on the device.
   * Writes up to max_out indices into `models` to out_indices, cheapest first,
   * and returns how many (0: no opinion, the built-ins decide). Victims move
   * to the pinned host tier, or to disk when the host budget has no room.
   * Victims that are not evictable are ignored. May be NULL.
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
} tp_memory_policy_vtable; /* end of v0.1 */

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
 * registry loads real safetensors weights onto the CUDA device, or onto the
 * CPU device (host memory, half the RAM) where no GPU is usable.
 * @threadsafety external: one thread at a time per options object.
 */
TP_API tp_code tp_registry_options_use_simulated_device(tp_registry_options* opts, uint64_t total_bytes,
                                                        tp_error** out_err);

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
 * Creates a registry from a JSON config file.
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
} tp_model_info; /* end of v0.1 */

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
  uint64_t evictions[TP_REASON_SLOTS]; /* indexed by TP_REASON_* */
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

/** Fills out (whose struct_size the caller sets; only that prefix is written). @threadsafety safe. */
TP_API tp_code tp_registry_stats(tp_stats* out, const tp_registry* reg, tp_error** out_err);

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

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* TWISTEDPIC_TP_H */
