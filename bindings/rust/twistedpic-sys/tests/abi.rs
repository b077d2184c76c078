//! The declarations against the C header and the library: struct layouts,
//! constants and version.
use std::ffi::CStr;
use std::mem::{offset_of, size_of};
use twistedpic_sys::*;

/// (C expression, the Rust value, the value tp.h gives on LP64 (v0.1 and v0.2 structs; tests/capi/abi_test.c)).
fn layout() -> Vec<(&'static str, usize, usize)> {
    macro_rules! size {
        ($t:ident = $n:expr) => {
            (concat!("sizeof(", stringify!($t), ")"), size_of::<$t>(), $n)
        };
    }
    macro_rules! off {
        ($t:ident . $f:ident = $n:expr) => {
            (concat!("offsetof(", stringify!($t), ", ", stringify!($f), ")"), offset_of!($t, $f), $n)
        };
    }
    vec![
        size!(tp_policy_model = 56),
        off!(tp_policy_model.state = 8),
        off!(tp_policy_model.device_bytes = 16),
        off!(tp_policy_model.leases = 32),
        off!(tp_policy_model.evictable = 44),
        off!(tp_policy_model.idle_seconds = 48),
        size!(tp_memory_policy_vtable = 40),
        off!(tp_memory_policy_vtable.rank_victims = 32),
        off!(tp_memory_policy_vtable.select_victims = 8),
        off!(tp_memory_policy_vtable.on_access = 16),
        off!(tp_memory_policy_vtable.destroy = 24),
        size!(tp_model_info = 128),
        off!(tp_model_info.device = 120),
        off!(tp_model_info.name = 8),
        off!(tp_model_info.dtype = 32),
        off!(tp_model_info.state = 40),
        off!(tp_model_info.device_bytes = 48),
        off!(tp_model_info.leases = 64),
        off!(tp_model_info.last_use_age_s = 80),
        off!(tp_model_info.load_count = 96),
        off!(tp_model_info.last_error = 112),
        size!(tp_stats = 200),
        off!(tp_stats.hits = 8),
        off!(tp_stats.admission_failures = 56),
        off!(tp_stats.evictions = 64),
        off!(tp_stats.bytes_to_device = 120),
        off!(tp_stats.host_bytes = 160),
        off!(tp_stats.reload_ms_p95 = 192),
        size!(tp_event = 64),
        off!(tp_event.model = 8),
        off!(tp_event.from = 16),
        off!(tp_event.failed = 28),
        off!(tp_event.bytes = 32),
        off!(tp_event.bytes_returned = 48),
        off!(tp_event.error = 56),
        size!(tp_progress = 32),
        off!(tp_progress.stage = 4),
        off!(tp_progress.step = 8),
        off!(tp_progress.steps = 12),
        off!(tp_progress.elapsed_s = 16),
        off!(tp_progress.model = 24),
        size!(tp_image = 24),
        off!(tp_image.width = 4),
        off!(tp_image.height = 8),
        off!(tp_image.stride = 12),
        off!(tp_image.pixels = 16),
        size!(tp_result_info = 88),
        off!(tp_result_info.image_count = 4),
        off!(tp_result_info.steps = 16),
        off!(tp_result_info.guidance_scale = 24),
        off!(tp_result_info.seed = 32),
        off!(tp_result_info.total_s = 72),
        off!(tp_result_info.warning_count = 80),
        size!(tp_plan_info = 64),
        off!(tp_plan_info.fits = 4),
        off!(tp_plan_info.from = 12),
        off!(tp_plan_info.bytes_to_move = 16),
        off!(tp_plan_info.eviction_count = 48),
        off!(tp_plan_info.explanation = 56),
        size!(tp_device_info = 112),
        off!(tp_device_info.name = 8),
        off!(tp_device_info.total_bytes = 16),
        off!(tp_device_info.free_bytes = 24),
        off!(tp_device_info.headroom_bytes = 48),
        off!(tp_device_info.held_bytes = 64),
        off!(tp_device_info.scratch_bytes = 88),
        off!(tp_device_info.admission_queue = 96),
        off!(tp_device_info.resident_models = 104),
        // Every constant, compiled against the real tp.h by header_still_has_these_layouts.
        ("TP_OK", TP_OK as usize, 0),
        ("TP_CANCELLED", TP_CANCELLED as usize, 1),
        ("TP_UNKNOWN", TP_UNKNOWN as usize, 2),
        ("TP_INVALID_ARGUMENT", TP_INVALID_ARGUMENT as usize, 3),
        ("TP_NOT_FOUND", TP_NOT_FOUND as usize, 5),
        ("TP_ALREADY_EXISTS", TP_ALREADY_EXISTS as usize, 6),
        ("TP_RESOURCE_EXHAUSTED", TP_RESOURCE_EXHAUSTED as usize, 8),
        ("TP_FAILED_PRECONDITION", TP_FAILED_PRECONDITION as usize, 9),
        ("TP_ABORTED", TP_ABORTED as usize, 10),
        ("TP_UNIMPLEMENTED", TP_UNIMPLEMENTED as usize, 12),
        ("TP_INTERNAL", TP_INTERNAL as usize, 13),
        ("TP_UNAVAILABLE", TP_UNAVAILABLE as usize, 14),
        ("TP_DATA_LOSS", TP_DATA_LOSS as usize, 15),
        ("TP_LOG_TRACE", TP_LOG_TRACE as usize, 0),
        ("TP_LOG_DEBUG", TP_LOG_DEBUG as usize, 1),
        ("TP_LOG_INFO", TP_LOG_INFO as usize, 2),
        ("TP_LOG_WARN", TP_LOG_WARN as usize, 3),
        ("TP_LOG_ERROR", TP_LOG_ERROR as usize, 4),
        ("TP_LOG_CRITICAL", TP_LOG_CRITICAL as usize, 5),
        ("TP_LOG_OFF", TP_LOG_OFF as usize, 6),
        ("TP_TIER_DEVICE", TP_TIER_DEVICE as usize, 0),
        ("TP_TIER_HOST", TP_TIER_HOST as usize, 1),
        ("TP_TIER_DISK", TP_TIER_DISK as usize, 2),
        ("TP_STATE_UNLOADED", TP_STATE_UNLOADED as usize, 0),
        ("TP_STATE_LOADING", TP_STATE_LOADING as usize, 1),
        ("TP_STATE_RESIDENT", TP_STATE_RESIDENT as usize, 2),
        ("TP_STATE_OFFLOADED", TP_STATE_OFFLOADED as usize, 3),
        ("TP_STATE_UNLOADING", TP_STATE_UNLOADING as usize, 4),
        ("TP_STATE_FAILED", TP_STATE_FAILED as usize, 5),
        ("TP_REASON_LAZY", TP_REASON_LAZY as usize, 0),
        ("TP_REASON_EAGER", TP_REASON_EAGER as usize, 1),
        ("TP_REASON_TTL", TP_REASON_TTL as usize, 2),
        ("TP_REASON_LRU", TP_REASON_LRU as usize, 3),
        ("TP_REASON_PRESSURE", TP_REASON_PRESSURE as usize, 4),
        ("TP_REASON_EXPLICIT", TP_REASON_EXPLICIT as usize, 5),
        ("TP_REASON_UNLOAD_AFTER", TP_REASON_UNLOAD_AFTER as usize, 6),
        ("TP_REASON_SLOTS", TP_REASON_SLOTS, 7),
        // Constants with no tp_*_name function to ask the library with.
        ("TP_STAGE_ENCODE", TP_STAGE_ENCODE as usize, 0),
        ("TP_STAGE_DENOISE", TP_STAGE_DENOISE as usize, 1),
        ("TP_STAGE_DECODE", TP_STAGE_DECODE as usize, 2),
        ("TP_STAGE_WAITING", TP_STAGE_WAITING as usize, 3),
    ]
}

#[test]
#[cfg(target_pointer_width = "64")]
fn struct_layouts_match_the_header() {
    for (expr, rust, c) in layout() {
        assert_eq!(rust, c, "{expr}");
    }
}

/// With TWISTEDPIC_INCLUDE_DIRS (':'-separated; run_tests.sh sets it), also
/// compiles the table's expressions against the real tp.h, so a header change
/// that this crate has not followed fails here.
#[test]
#[cfg(target_pointer_width = "64")]
fn header_still_has_these_layouts() {
    let Ok(dirs) = std::env::var("TWISTEDPIC_INCLUDE_DIRS") else {
        eprintln!("TWISTEDPIC_INCLUDE_DIRS is not set: checked the Rust side only");
        return;
    };
    let tmp = std::env::temp_dir().join(format!("twistedpic-sys-abi-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let prints: String =
        layout().iter().map(|(expr, _, _)| format!("  printf(\"%zu\\n\", (size_t)({expr}));\n")).collect();
    let src = format!(
        "#include <stddef.h>\n#include <stdio.h>\n#include \"twistedpic/tp.h\"\n\
         int main(void) {{\n{prints}  printf(\"%u\\n\", (unsigned)TP_VERSION_NUMBER);\n  return 0;\n}}\n"
    );
    std::fs::write(tmp.join("probe.c"), src).unwrap();
    let mut cc = std::process::Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()));
    cc.arg("probe.c").arg("-o").arg("probe").current_dir(&tmp);
    for dir in dirs.split(':') {
        cc.arg(format!("-I{dir}"));
    }
    assert!(cc.status().expect("run cc").success(), "the probe did not compile");
    let out = std::process::Command::new(tmp.join("probe")).output().unwrap();
    std::fs::remove_dir_all(&tmp).ok();
    let values: Vec<usize> = String::from_utf8(out.stdout).unwrap().lines().map(|l| l.parse().unwrap()).collect();
    let (&header_version, values) = values.split_last().unwrap();
    for ((expr, _, expected), got) in layout().into_iter().zip(values) {
        assert_eq!(*got, expected, "{expr} in the header");
    }
    assert_eq!(header_version, TP_VERSION_NUMBER as usize, "TP_VERSION_NUMBER in the header");
}

fn name(p: *const std::ffi::c_char) -> &'static str {
    unsafe { CStr::from_ptr(p) }.to_str().unwrap()
}

#[test]
fn constants_match_the_library() {
    unsafe {
        let codes = [
            (TP_OK, "OK"),
            (TP_CANCELLED, "CANCELLED"),
            (TP_UNKNOWN, "UNKNOWN"),
            (TP_INVALID_ARGUMENT, "INVALID_ARGUMENT"),
            (TP_NOT_FOUND, "NOT_FOUND"),
            (TP_ALREADY_EXISTS, "ALREADY_EXISTS"),
            (TP_RESOURCE_EXHAUSTED, "RESOURCE_EXHAUSTED"),
            (TP_FAILED_PRECONDITION, "FAILED_PRECONDITION"),
            (TP_ABORTED, "ABORTED"),
            (TP_UNIMPLEMENTED, "UNIMPLEMENTED"),
            (TP_INTERNAL, "INTERNAL"),
            (TP_UNAVAILABLE, "UNAVAILABLE"),
            (TP_DATA_LOSS, "DATA_LOSS"),
        ];
        for (code, expected) in codes {
            assert_eq!(name(tp_code_name(code)), expected);
        }
        assert_eq!(name(tp_code_name(4)), "UNKNOWN");
        for (tier, expected) in [(TP_TIER_DEVICE, "device"), (TP_TIER_HOST, "host"), (TP_TIER_DISK, "disk")] {
            assert_eq!(name(tp_tier_name(tier)), expected);
        }
        let states = [
            (TP_STATE_UNLOADED, "unloaded"),
            (TP_STATE_LOADING, "loading"),
            (TP_STATE_RESIDENT, "resident"),
            (TP_STATE_OFFLOADED, "offloaded"),
            (TP_STATE_UNLOADING, "unloading"),
            (TP_STATE_FAILED, "failed"),
        ];
        for (state, expected) in states {
            assert_eq!(name(tp_state_name(state)), expected);
        }
        let reasons = [
            (TP_REASON_LAZY, "lazy"),
            (TP_REASON_EAGER, "eager"),
            (TP_REASON_TTL, "ttl"),
            (TP_REASON_LRU, "lru"),
            (TP_REASON_PRESSURE, "pressure"),
            (TP_REASON_EXPLICIT, "explicit"),
            (TP_REASON_UNLOAD_AFTER, "unload-after"),
        ];
        for (reason, expected) in reasons {
            assert_eq!(name(tp_reason_name(reason)), expected);
        }
        assert_eq!(name(tp_reason_name(TP_REASON_SLOTS as i32)), "?");
    }
}

#[test]
fn library_matches_the_declared_version() {
    let lib = unsafe { tp_version_number() };
    assert_eq!(lib / 10000, TP_VERSION_MAJOR, "library major version");
    assert!(lib >= TP_VERSION_NUMBER, "library {lib} is older than these declarations");
    let string = format!("{}.{}.{}", lib / 10000, lib / 100 % 100, lib % 100);
    assert_eq!(name(unsafe { tp_version_string() }), string);
}
