"""Raw ctypes declarations of twistedpic's C ABI (capi/include/twistedpic/tp.h), 1:1 and without logic.

Every function keeps its C name, parameter order and types; ownership and threading are as documented in
tp.h. The library is found through the TWISTEDPIC_LIBRARY environment variable (a full path to the shared
library), then inside the package (where ``pip install`` puts it), then ``ctypes.util.find_library("twistedpic")``. Importing this module fails with ImportError when
the library is missing, lacks a symbol, has another major.minor version, or when a struct's size differs
from the C header's.
"""

import ctypes
import ctypes.util
import os
from ctypes import CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_int32, c_int64, c_size_t, c_uint32
from ctypes import c_uint8, c_uint64, c_void_p

# The C ABI version these declarations mirror (TP_VERSION_NUMBER = MAJOR * 10000 + MINOR * 100 + PATCH).
EXPECTED_VERSION = (0, 1, 0)
EXPECTED_VERSION_NUMBER = EXPECTED_VERSION[0] * 10000 + EXPECTED_VERSION[1] * 100 + EXPECTED_VERSION[2]


# Where `pip install .` puts the library: inside the package, next to this file.
_BUNDLED_LIBRARY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "libtwistedpic.so")


def _load_library():
    path = os.environ.get("TWISTEDPIC_LIBRARY")
    if not path and os.path.isfile(_BUNDLED_LIBRARY):
        path = _BUNDLED_LIBRARY
    path = path or ctypes.util.find_library("twistedpic")
    if not path:
        raise ImportError("twistedpic: the shared library libtwistedpic was not found; install the package with "
                          "pip (it bundles the library), set TWISTEDPIC_LIBRARY to its full path, or install it "
                          "where the dynamic loader finds it")
    try:
        return ctypes.CDLL(path)  # CDLL releases the GIL during every call
    except OSError as e:
        raise ImportError(f"twistedpic: cannot load {path!r}: {e}") from e


lib = _load_library()

# ---- codes ---------------------------------------------------------------------------------------------------

tp_code = c_int32
TP_OK = 0
TP_CANCELLED = 1
TP_UNKNOWN = 2
TP_INVALID_ARGUMENT = 3
TP_NOT_FOUND = 5
TP_ALREADY_EXISTS = 6
TP_RESOURCE_EXHAUSTED = 8
TP_FAILED_PRECONDITION = 9
TP_ABORTED = 10
TP_UNIMPLEMENTED = 12
TP_INTERNAL = 13
TP_UNAVAILABLE = 14
TP_DATA_LOSS = 15

TP_LOG_TRACE = 0
TP_LOG_DEBUG = 1
TP_LOG_INFO = 2
TP_LOG_WARN = 3
TP_LOG_ERROR = 4
TP_LOG_CRITICAL = 5
TP_LOG_OFF = 6

TP_TIER_DEVICE = 0
TP_TIER_HOST = 1
TP_TIER_DISK = 2

TP_STATE_UNLOADED = 0
TP_STATE_LOADING = 1
TP_STATE_RESIDENT = 2
TP_STATE_OFFLOADED = 3
TP_STATE_UNLOADING = 4
TP_STATE_FAILED = 5

TP_REASON_LAZY = 0
TP_REASON_EAGER = 1
TP_REASON_TTL = 2
TP_REASON_LRU = 3
TP_REASON_PRESSURE = 4
TP_REASON_EXPLICIT = 5
TP_REASON_UNLOAD_AFTER = 6
TP_REASON_SLOTS = 7

TP_STAGE_ENCODE = 0
TP_STAGE_DENOISE = 1
TP_STAGE_DECODE = 2
TP_STAGE_WAITING = 3


# ---- opaque handles: distinct types, so a handle of the wrong kind is a ctypes.ArgumentError -------------------

class tp_error(Structure):
    pass


class tp_registry_options(Structure):
    pass


class tp_registry(Structure):
    pass


class tp_model_list(Structure):
    pass


class tp_model(Structure):
    pass


class tp_pipeline(Structure):
    pass


class tp_request(Structure):
    pass


class tp_result(Structure):
    pass


class tp_plan(Structure):
    pass


class tp_device_list(Structure):
    pass


# ---- transparent structs (each ends at its "end of v0.1" marker) ----------------------------------------------

class tp_policy_model(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("state", c_int32),
        ("tier", c_int32),
        ("device_bytes", c_uint64),
        ("host_bytes", c_uint64),
        ("leases", c_uint32),
        ("pinned", c_int32),
        ("priority", c_int32),
        ("evictable", c_int32),
        ("idle_seconds", c_double),
    ]


tp_log_fn = CFUNCTYPE(None, c_int32, c_char_p, c_char_p, c_size_t, c_void_p)
tp_select_victims_fn = CFUNCTYPE(c_uint32, POINTER(c_uint32), c_uint32, POINTER(tp_policy_model), c_uint32,
                                 c_uint64, c_void_p)
tp_rank_victims_fn = CFUNCTYPE(c_uint32, POINTER(c_uint32), c_uint32, POINTER(tp_policy_model), c_uint32,
                               c_uint32, c_uint64, c_void_p)
tp_on_access_fn = CFUNCTYPE(None, c_char_p, c_void_p)
tp_destroy_fn = CFUNCTYPE(None, c_void_p)


class tp_memory_policy_vtable(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("select_victims", tp_select_victims_fn),
        ("on_access", tp_on_access_fn),
        ("destroy", tp_destroy_fn),
        ("rank_victims", tp_rank_victims_fn),  # v0.2; left NULL here (select_victims is used)
    ]


class tp_model_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("name", c_char_p),
        ("source", c_char_p),
        ("pipeline_type", c_char_p),
        ("dtype", c_char_p),
        ("state", c_int32),
        ("tier", c_int32),
        ("device_bytes", c_uint64),
        ("host_bytes", c_uint64),
        ("leases", c_uint32),
        ("pinned", c_int32),
        ("priority", c_int32),
        ("last_use_age_s", c_double),
        ("expires_in_s", c_double),
        ("load_count", c_uint64),
        ("last_load_ms", c_double),
        ("last_error", c_char_p),
        ("device", c_char_p),  # v0.2
    ]


class tp_stats(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("hits", c_uint64),
        ("misses", c_uint64),
        ("loads", c_uint64),
        ("reloads", c_uint64),
        ("load_failures", c_uint64),
        ("admission_waits", c_uint64),
        ("admission_failures", c_uint64),
        ("evictions", c_uint64 * TP_REASON_SLOTS),
        ("bytes_to_device", c_uint64),
        ("bytes_to_host", c_uint64),
        ("bytes_returned", c_uint64),
        ("device_bytes", c_uint64),
        ("peak_device_bytes", c_uint64),
        ("host_bytes", c_uint64),
        ("load_ms_p50", c_double),
        ("load_ms_p95", c_double),
        ("reload_ms_p50", c_double),
        ("reload_ms_p95", c_double),
    ]


class tp_event(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("model", c_char_p),
        ("from", c_int32),
        ("to", c_int32),
        ("reason", c_int32),
        ("failed", c_int32),
        ("bytes", c_uint64),
        ("ms", c_double),
        ("bytes_returned", c_int64),
        ("error", c_char_p),
    ]


tp_event_fn = CFUNCTYPE(None, POINTER(tp_event), c_void_p)


class tp_progress(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("stage", c_int32),
        ("step", c_int32),
        ("steps", c_int32),
        ("elapsed_s", c_double),
        ("model", c_char_p),
    ]


tp_progress_fn = CFUNCTYPE(c_int32, POINTER(tp_progress), c_void_p)


class tp_image(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("width", c_int32),
        ("height", c_int32),
        ("stride", c_int32),
        ("pixels", POINTER(c_uint8)),
    ]


class tp_result_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("image_count", c_uint32),
        ("width", c_int32),
        ("height", c_int32),
        ("steps", c_int32),
        ("guidance_scale", c_double),
        ("seed", c_uint64),
        ("encode_s", c_double),
        ("denoise_s", c_double),
        ("decode_s", c_double),
        ("acquire_s", c_double),
        ("total_s", c_double),
        ("warning_count", c_uint32),
    ]


class tp_plan_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("fits", c_int32),
        ("resident", c_int32),
        ("from", c_int32),
        ("bytes_to_move", c_uint64),
        ("needed_bytes", c_uint64),
        ("free_bytes", c_uint64),
        ("bytes_evicted", c_uint64),
        ("eviction_count", c_uint32),
        ("explanation", c_char_p),
    ]


class tp_device_info(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("name", c_char_p),
        ("total_bytes", c_uint64),
        ("free_bytes", c_uint64),
        ("process_bytes", c_uint64),
        ("other_process_bytes", c_uint64),
        ("headroom_bytes", c_uint64),
        ("budget_bytes", c_uint64),
        ("held_bytes", c_uint64),
        ("peak_bytes", c_uint64),
        ("reserved_bytes", c_uint64),
        ("scratch_bytes", c_uint64),
        ("admission_queue", c_uint64),
        ("resident_models", c_uint32),
    ]


# sizeof() of each struct in the C header on LP64 (x86-64, aarch64); tests/capi static_asserts the same values.
_C_SIZES_LP64 = {tp_policy_model: 56, tp_memory_policy_vtable: 40, tp_model_info: 128, tp_stats: 200,
                 tp_event: 64, tp_progress: 32, tp_image: 24, tp_result_info: 88, tp_plan_info: 64,
                 tp_device_info: 112}
if ctypes.sizeof(c_void_p) == 8:
    for _struct, _size in _C_SIZES_LP64.items():
        if ctypes.sizeof(_struct) != _size:
            raise ImportError(f"twistedpic: ctypes.sizeof({_struct.__name__}) is {ctypes.sizeof(_struct)}, "
                              f"the C header's is {_size}: these declarations are out of date")


# ---- functions -------------------------------------------------------------------------------------------------

def _declare(name, restype, *argtypes):
    try:
        fn = getattr(lib, name)
    except AttributeError as e:
        raise ImportError(f"twistedpic: {lib._name} lacks {name}(): the library is older than this package") from e
    fn.restype = restype
    fn.argtypes = argtypes
    return fn


_err = POINTER(POINTER(tp_error))
_opts = POINTER(tp_registry_options)
_reg = POINTER(tp_registry)

tp_code_name = _declare("tp_code_name", c_char_p, tp_code)
tp_error_code = _declare("tp_error_code", tp_code, POINTER(tp_error))
tp_error_message = _declare("tp_error_message", c_char_p, POINTER(tp_error))
tp_error_free = _declare("tp_error_free", None, POINTER(tp_error))
tp_version_number = _declare("tp_version_number", c_uint32)
tp_version_string = _declare("tp_version_string", c_char_p)
tp_set_log_callback = _declare("tp_set_log_callback", tp_code, tp_log_fn, c_void_p, c_int32, _err)
tp_tier_name = _declare("tp_tier_name", c_char_p, c_int32)
tp_state_name = _declare("tp_state_name", c_char_p, c_int32)
tp_reason_name = _declare("tp_reason_name", c_char_p, c_int32)

tp_registry_options_create = _declare("tp_registry_options_create", tp_code, POINTER(_opts), _err)
tp_registry_options_destroy = _declare("tp_registry_options_destroy", None, _opts)
tp_registry_options_set_preset = _declare("tp_registry_options_set_preset", tp_code, _opts, c_char_p, _err)
tp_registry_options_use_simulated_device = _declare("tp_registry_options_use_simulated_device", tp_code, _opts,
                                                    c_uint64, _err)
tp_registry_options_set_background_thread = _declare("tp_registry_options_set_background_thread", tp_code, _opts,
                                                     c_int32, _err)
tp_registry_options_add_policy = _declare("tp_registry_options_add_policy", tp_code, _opts,
                                          POINTER(tp_memory_policy_vtable), c_void_p, _err)
tp_registry_options_add_simulated_device = _declare("tp_registry_options_add_simulated_device", tp_code, _opts,
                                                    c_char_p, c_uint64, _err)
tp_registry_options_set_text_encoder_offload = _declare("tp_registry_options_set_text_encoder_offload", tp_code,
                                                        _opts, c_int32, _err)

tp_registry_create_from_file = _declare("tp_registry_create_from_file", tp_code, POINTER(_reg), c_char_p, _opts,
                                        _err)
tp_registry_create_from_string = _declare("tp_registry_create_from_string", tp_code, POINTER(_reg), c_char_p,
                                          _opts, _err)
tp_registry_destroy = _declare("tp_registry_destroy", None, _reg)
tp_registry_model_count = _declare("tp_registry_model_count", tp_code, POINTER(c_uint32), _reg, _err)
tp_registry_list = _declare("tp_registry_list", tp_code, POINTER(POINTER(tp_model_list)), _reg, _err)
tp_model_list_count = _declare("tp_model_list_count", c_uint32, POINTER(tp_model_list))
tp_model_list_get = _declare("tp_model_list_get", tp_code, POINTER(tp_model_info), POINTER(tp_model_list),
                             c_uint32, _err)
tp_model_list_free = _declare("tp_model_list_free", None, POINTER(tp_model_list))
tp_registry_preload = _declare("tp_registry_preload", tp_code, _reg, c_char_p, _err)
tp_registry_unload = _declare("tp_registry_unload", tp_code, POINTER(c_int64), _reg, c_char_p, c_int32, _err)
tp_registry_unload_all = _declare("tp_registry_unload_all", tp_code, _reg, c_int32, _err)
tp_registry_tick = _declare("tp_registry_tick", tp_code, _reg, _err)
tp_registry_stats = _declare("tp_registry_stats", tp_code, POINTER(tp_stats), _reg, _err)
tp_registry_evictions = _declare("tp_registry_evictions", tp_code, POINTER(c_uint64), _reg, c_int32, _err)
tp_registry_stat = _declare("tp_registry_stat", tp_code, POINTER(c_uint64), _reg, c_char_p, _err)
tp_registry_subscribe = _declare("tp_registry_subscribe", tp_code, POINTER(c_int32), _reg, tp_event_fn, c_void_p,
                                 _err)
tp_registry_unsubscribe = _declare("tp_registry_unsubscribe", tp_code, _reg, c_int32, _err)

tp_model_acquire = _declare("tp_model_acquire", tp_code, POINTER(POINTER(tp_model)), _reg, c_char_p, _err)
tp_model_release = _declare("tp_model_release", None, POINTER(tp_model))
tp_model_name = _declare("tp_model_name", c_char_p, POINTER(tp_model))
tp_model_device_bytes = _declare("tp_model_device_bytes", c_uint64, POINTER(tp_model))

# generation
_pipe = POINTER(tp_pipeline)
_req = POINTER(tp_request)
_res = POINTER(tp_result)
_int = POINTER(c_int32)

tp_pipeline_create = _declare("tp_pipeline_create", tp_code, POINTER(_pipe), _reg, c_char_p, _err)
tp_pipeline_destroy = _declare("tp_pipeline_destroy", None, _pipe)
tp_pipeline_name = _declare("tp_pipeline_name", c_char_p, _pipe)
tp_pipeline_type = _declare("tp_pipeline_type", c_char_p, _pipe)
tp_pipeline_sizes = _declare("tp_pipeline_sizes", tp_code, _int, _int, _int, _pipe, _err)

tp_request_create = _declare("tp_request_create", tp_code, POINTER(_req), _err)
tp_request_destroy = _declare("tp_request_destroy", None, _req)
tp_request_add_prompt = _declare("tp_request_add_prompt", tp_code, _req, c_char_p, _err)
tp_request_add_negative_prompt = _declare("tp_request_add_negative_prompt", tp_code, _req, c_char_p, _err)
tp_request_clear_prompts = _declare("tp_request_clear_prompts", tp_code, _req, _err)
tp_request_set_images_per_prompt = _declare("tp_request_set_images_per_prompt", tp_code, _req, c_int32, _err)
tp_request_set_size = _declare("tp_request_set_size", tp_code, _req, c_int32, c_int32, _err)
tp_request_set_steps = _declare("tp_request_set_steps", tp_code, _req, c_int32, _err)
tp_request_set_guidance = _declare("tp_request_set_guidance", tp_code, _req, c_double, _err)
tp_request_set_seed = _declare("tp_request_set_seed", tp_code, _req, c_uint64, _err)
tp_request_set_max_sequence_length = _declare("tp_request_set_max_sequence_length", tp_code, _req, c_int32, _err)
tp_request_set_option = _declare("tp_request_set_option", tp_code, _req, c_char_p, c_char_p, _err)
tp_request_set_progress = _declare("tp_request_set_progress", tp_code, _req, tp_progress_fn, c_void_p, _err)
tp_request_cancel = _declare("tp_request_cancel", None, _req)

tp_pipeline_generate = _declare("tp_pipeline_generate", tp_code, POINTER(_res), _pipe, _req, _err)
tp_result_get_info = _declare("tp_result_get_info", tp_code, POINTER(tp_result_info), _res, _err)
tp_result_get_image = _declare("tp_result_get_image", tp_code, POINTER(tp_image), _res, c_uint32, _err)
tp_result_warning = _declare("tp_result_warning", c_char_p, _res, c_uint32)
tp_result_free = _declare("tp_result_free", None, _res)
tp_image_write_png = _declare("tp_image_write_png", tp_code, POINTER(tp_image), c_char_p, _err)
tp_image_encode_png = _declare("tp_image_encode_png", tp_code, POINTER(c_size_t), POINTER(c_uint8), c_size_t,
                               POINTER(tp_image), _err)

tp_registry_plan = _declare("tp_registry_plan", tp_code, POINTER(POINTER(tp_plan)), _reg, c_char_p, _err)
tp_plan_get_info = _declare("tp_plan_get_info", tp_code, POINTER(tp_plan_info), POINTER(tp_plan), _err)
tp_plan_eviction = _declare("tp_plan_eviction", c_char_p, POINTER(tp_plan), c_uint32)
tp_plan_free = _declare("tp_plan_free", None, POINTER(tp_plan))
tp_registry_info = _declare("tp_registry_info", tp_code, POINTER(POINTER(tp_model_list)), _reg, c_char_p, _err)

# devices
_devs = POINTER(tp_device_list)
tp_registry_devices = _declare("tp_registry_devices", tp_code, POINTER(_devs), _reg, _err)
tp_runtime_devices = _declare("tp_runtime_devices", tp_code, POINTER(_devs), _err)
tp_device_list_count = _declare("tp_device_list_count", c_uint32, _devs)
tp_device_list_get = _declare("tp_device_list_get", tp_code, POINTER(tp_device_info), _devs, c_uint32, _err)
tp_device_list_free = _declare("tp_device_list_free", None, _devs)


def _compatible(found, expected=EXPECTED_VERSION_NUMBER):
    """Same major (same major.minor while the major is 0), and at least the expected version."""
    series = 10000 if expected >= 10000 else 100
    return found // series == expected // series and found >= expected


if not _compatible(tp_version_number()):
    raise ImportError(f"twistedpic: {lib._name} is version {tp_version_string().decode()} "
                      f"({tp_version_number()}); this package needs {'.'.join(map(str, EXPECTED_VERSION))} "
                      f"({EXPECTED_VERSION_NUMBER}) or a compatible later release")
