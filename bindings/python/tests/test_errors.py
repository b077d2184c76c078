from ctypes import POINTER

import pytest

import twistedpic
from twistedpic import Tier, _errors, _ffi
from conftest import CONFIG, GiB


def test_unknown_model_is_not_found_and_named(reg):
    with pytest.raises(twistedpic.NotFoundError, match=r"model 'zz' is not configured \(configured: a, b, c\)") as e:
        reg.acquire("zz")
    assert (e.value.code, e.value.code_name) == (_ffi.TP_NOT_FOUND, "NOT_FOUND")
    assert e.value.message == str(e.value)
    assert isinstance(e.value, LookupError)
    for call in (reg.preload, reg.unload):
        with pytest.raises(twistedpic.NotFoundError, match="'zz'"):
            call("zz")


def test_too_small_device_is_resource_exhausted(make_registry):
    # admission_timeout_ms 0: "b" fails at once instead of waiting for a's lease to end.
    no_wait = CONFIG.replace('"host_budget_bytes"', '"admission_timeout_ms": 0, "host_budget_bytes"')
    reg = make_registry(no_wait, simulated_device_bytes=6 * GiB)
    with reg.acquire("a"):
        with pytest.raises(twistedpic.ResourceExhaustedError, match="cannot load 'b': needs 4.00 GiB"):
            reg.acquire("b")
    with reg.acquire("b") as lease:  # the next request works
        assert lease.device_bytes == 4 * GiB


def test_bad_config_names_the_field(make_registry):
    with pytest.raises(twistedpic.InvalidArgumentError, match=r"<string>: models.a.dtype: unknown dtype 'fp8'"):
        make_registry('{"models": {"a": {"path": "/x", "size_bytes": "1GiB", "dtype": "fp8"}}}')
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        make_registry("{not json")


def test_missing_config_file_is_not_found():
    with pytest.raises(twistedpic.NotFoundError, match="/nonexistent/tp.json"):
        twistedpic.Registry.from_file("/nonexistent/tp.json", simulated_device_bytes=GiB)


def test_unloading_a_leased_model_is_a_failed_precondition(reg):
    with reg.acquire("a"):
        with pytest.raises(twistedpic.FailedPreconditionError, match="live lease"):
            reg.unload("a")
        with pytest.raises(twistedpic.FailedPreconditionError, match="a"):
            reg.unload_all()
    assert reg.unload("a") == 4 * GiB


def test_invalid_parameters(reg, make_registry):
    with pytest.raises(twistedpic.InvalidArgumentError, match="tier"):
        reg.unload("a", Tier.DEVICE)
    with pytest.raises(twistedpic.InvalidArgumentError, match="unknown preset 'warp'"):
        make_registry(preset="warp")
    with pytest.raises(twistedpic.InvalidArgumentError, match="total_bytes"):
        make_registry(simulated_device_bytes=0)


def test_real_weights_that_are_not_on_disk_are_not_found():
    # Real weights (the CUDA or the CPU device): pipeline models are expanded when the registry is created.
    with pytest.raises(twistedpic.NotFoundError, match="model 'a': model 'org/a' is not in the Hugging Face cache"):
        twistedpic.Registry.from_string(CONFIG)
    with pytest.raises(twistedpic.NotFoundError, match="model 'b': model folder '/models/b' does not exist"):
        twistedpic.Registry.from_string('{"models": {"b": {"path": "/models/b", "pipeline_type": "sd3"}}}')
    # A plain model (no pipeline) fails only when it is acquired.
    with twistedpic.Registry.from_string('{"models": {"b": {"path": "/models/b", "pipeline_type": "plain"}}}') as r:
        with pytest.raises(twistedpic.NotFoundError, match="model 'b': model folder '/models/b' does not exist"):
            r.acquire("b")


@pytest.mark.parametrize("name", ["CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "NOT_FOUND", "ALREADY_EXISTS",
                                  "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "UNIMPLEMENTED",
                                  "INTERNAL", "UNAVAILABLE", "DATA_LOSS"])
def test_check_raises_one_class_per_code(name):
    code = getattr(_ffi, "TP_" + name)
    cls = getattr(twistedpic, "".join(w.capitalize() for w in name.split("_")) + "Error")
    with pytest.raises(cls) as e:
        _errors.check(code, POINTER(_ffi.tp_error)())  # a NULL error: the message falls back to the code's name
    assert type(e.value) is cls and isinstance(e.value, twistedpic.TwistedpicError)
    assert (e.value.code, e.value.message, e.value.code_name) == (code, name, name)


def test_check_passes_ok_and_maps_unknown_codes():
    assert _errors.check(_ffi.TP_OK, POINTER(_ffi.tp_error)()) is None
    with pytest.raises(twistedpic.UnknownError) as e:
        _errors.check(99, POINTER(_ffi.tp_error)())
    assert e.value.code == 99
