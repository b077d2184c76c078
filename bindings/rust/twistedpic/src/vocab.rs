//! The C ABI's enumerations: codes, tiers, states and reasons.
use std::fmt;

use twistedpic_sys as sys;

macro_rules! c_enum {
    ($(#[$meta:meta])* $name:ident, $name_fn:ident, unknown = $unknown:expr,
     { $($(#[$vmeta:meta])* $variant:ident = $raw:ident,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this binding does not know (from a newer library).
            Unknown,
        }

        impl $name {
            /// Maps a raw C value; values this binding does not know map to `Unknown`.
            pub fn from_raw(raw: i32) -> Self {
                match raw {
                    $(sys::$raw => Self::$variant,)*
                    _ => Self::Unknown,
                }
            }

            /// The raw C value.
            pub fn raw(self) -> i32 {
                match self {
                    $(Self::$variant => sys::$raw,)*
                    Self::Unknown => $unknown,
                }
            }

            /// The library's name for this value.
            pub fn name(self) -> &'static str {
                unsafe { crate::static_str(sys::$name_fn(self.raw())) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.name())
            }
        }
    };
}

c_enum! {
    /// Why a call failed (tp.h's TP_* codes; `Unknown` is TP_UNKNOWN and any code this binding does not know).
    Code, tp_code_name, unknown = sys::TP_UNKNOWN, {
        /// TP_CANCELLED.
        Cancelled = TP_CANCELLED,
        /// TP_INVALID_ARGUMENT: a bad argument or config (the message names the field).
        InvalidArgument = TP_INVALID_ARGUMENT,
        /// TP_NOT_FOUND: an unknown model or a missing file.
        NotFound = TP_NOT_FOUND,
        /// TP_ALREADY_EXISTS.
        AlreadyExists = TP_ALREADY_EXISTS,
        /// TP_RESOURCE_EXHAUSTED: the model cannot fit (the message gives the numbers).
        ResourceExhausted = TP_RESOURCE_EXHAUSTED,
        /// TP_FAILED_PRECONDITION: e.g. unloading a leased model.
        FailedPrecondition = TP_FAILED_PRECONDITION,
        /// TP_ABORTED.
        Aborted = TP_ABORTED,
        /// TP_UNIMPLEMENTED.
        Unimplemented = TP_UNIMPLEMENTED,
        /// TP_INTERNAL.
        Internal = TP_INTERNAL,
        /// TP_UNAVAILABLE.
        Unavailable = TP_UNAVAILABLE,
        /// TP_DATA_LOSS.
        DataLoss = TP_DATA_LOSS,
    }
}

c_enum! {
    /// Where a model's weights live.
    Tier, tp_tier_name, unknown = -1, {
        /// On the GPU.
        Device = TP_TIER_DEVICE,
        /// In pinned host memory.
        Host = TP_TIER_HOST,
        /// Only on disk.
        Disk = TP_TIER_DISK,
    }
}

c_enum! {
    /// A model's residency state.
    State, tp_state_name, unknown = -1, {
        /// Not loaded anywhere.
        Unloaded = TP_STATE_UNLOADED,
        /// Being loaded onto the device.
        Loading = TP_STATE_LOADING,
        /// On the device.
        Resident = TP_STATE_RESIDENT,
        /// Offloaded to host memory.
        Offloaded = TP_STATE_OFFLOADED,
        /// Being moved off the device.
        Unloading = TP_STATE_UNLOADING,
        /// The last load failed.
        Failed = TP_STATE_FAILED,
    }
}

c_enum! {
    /// Why a residency transition happened.
    Reason, tp_reason_name, unknown = -1, {
        /// Loaded on first use.
        Lazy = TP_REASON_LAZY,
        /// Preloaded.
        Eager = TP_REASON_EAGER,
        /// An idle timeout.
        Ttl = TP_REASON_TTL,
        /// Least recently used, to make room.
        Lru = TP_REASON_LRU,
        /// Device memory pressure.
        Pressure = TP_REASON_PRESSURE,
        /// An explicit unload.
        Explicit = TP_REASON_EXPLICIT,
        /// The policy's unload-after-use.
        UnloadAfter = TP_REASON_UNLOAD_AFTER,
    }
}
