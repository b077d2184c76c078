"""twistedpic: text-to-image generation that keeps diffusion models on the GPU while they are used, and off it
when memory is needed.

    import twistedpic

    with twistedpic.Registry.from_file("models.json") as reg, reg.pipeline("sd35_medium") as pipeline:
        for image in pipeline.generate("a red circle on a white background", seed=5, steps=28):
            image.save(f"circle_{image.index}.png")
        for row in reg.models():
            print(row.name, row.state, row.tier)

The package wraps the C library libtwistedpic through ctypes; set TWISTEDPIC_LIBRARY to the library's full path
when the dynamic loader cannot find it.
"""

import os

from ._errors import (AbortedError, AlreadyExistsError, CancelledError, DataLossError, FailedPreconditionError,
                      InternalError, InvalidArgumentError, NotFoundError, ResourceExhaustedError, TwistedpicError,
                      UnavailableError, UnimplementedError, UnknownError)
from ._ffi import tp_version_string as _tp_version_string
from ._log import TRACE, reset_log_handler, set_log_handler
from .pipeline import CancelToken, Image, Pipeline, Progress, ResultInfo, Stage
from .registry import (Device, Event, Lease, MemoryPolicy, ModelInfo, Plan, PolicyModel, Reason, Registry, State,
                       Stats, Tier, runtime_devices)

__version__ = "0.1.0"


def default_model_dir() -> str:
    """The shipped default model, a tiny SD3 pipeline folder (models/tiny-sd3): inside the installed package, or
    in the source tree when the package runs from there. Raises FileNotFoundError when neither exists."""
    here = os.path.dirname(os.path.abspath(__file__))
    for candidate in (os.path.join(here, "models", "tiny-sd3"),
                      os.path.join(here, os.pardir, os.pardir, os.pardir, "models", "tiny-sd3")):
        if os.path.isfile(os.path.join(candidate, "model_index.json")):
            return os.path.normpath(candidate)
    raise FileNotFoundError("twistedpic: the default model (models/tiny-sd3) is neither in the package nor in "
                            "the source tree")


def library_version() -> str:
    """The loaded C library's version, "MAJOR.MINOR.PATCH"."""
    return _tp_version_string().decode()


__all__ = [
    "AbortedError", "AlreadyExistsError", "CancelToken", "CancelledError", "DataLossError", "Device", "Event",
    "FailedPreconditionError", "Image", "InternalError", "InvalidArgumentError", "Lease", "MemoryPolicy",
    "ModelInfo", "NotFoundError", "Pipeline", "Plan", "PolicyModel", "Progress", "Reason", "Registry",
    "ResourceExhaustedError", "ResultInfo", "Stage", "State", "Stats", "Tier", "TRACE", "TwistedpicError",
    "UnavailableError", "UnimplementedError", "UnknownError", "default_model_dir", "library_version",
    "reset_log_handler", "runtime_devices", "set_log_handler",
]
