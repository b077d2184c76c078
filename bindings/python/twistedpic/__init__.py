"""twistedpic: keeps diffusion models on the GPU while they are used, and off it when memory is needed.

    import twistedpic

    with twistedpic.Registry.from_file("models.json", simulated_device_bytes=10 << 30) as reg:
        with reg.acquire("sd35_medium") as lease:
            print(lease.name, lease.device_bytes)
        for row in reg.models():
            print(row.name, row.state, row.tier)

The package wraps the C library libtwistedpic through ctypes; set TWISTEDPIC_LIBRARY to the library's full path
when the dynamic loader cannot find it.
"""

from ._errors import (AbortedError, AlreadyExistsError, CancelledError, DataLossError, FailedPreconditionError,
                      InternalError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, TwistedpicError,
                      UnavailableError, UnimplementedError, UnknownError)
from ._ffi import tp_version_string as _tp_version_string
from ._log import TRACE, reset_log_handler, set_log_handler
from .registry import (Event, Lease, MemoryPolicy, ModelInfo, PolicyModel, Reason, Registry, State, Stats, Tier)

__version__ = "0.1.0"


def library_version() -> str:
    """The loaded C library's version, "MAJOR.MINOR.PATCH"."""
    return _tp_version_string().decode()


__all__ = [
    "AbortedError", "AlreadyExistsError", "CancelledError", "DataLossError", "Event", "FailedPreconditionError",
    "InternalError", "InvalidArgumentError", "Lease", "MemoryPolicy", "ModelInfo", "NotFoundError", "PolicyModel",
    "Reason", "Registry", "ResourceExhaustedError", "State", "Stats", "Tier", "TRACE", "TwistedpicError",
    "UnavailableError", "UnimplementedError", "UnknownError", "library_version", "reset_log_handler",
    "set_log_handler",
]
