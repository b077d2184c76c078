"""Several devices (issue #23): the registry's device list and each model's device, on several simulated
devices; the runtime's devices."""
import pytest

import twistedpic
from twistedpic import Device, State
from conftest import GiB, by_name

# Three models on two named simulated devices.
TWO_DEVICES = """{
  "models": {
    "a": {"path": "/models/a", "size_bytes": "4GiB", "device": "sim:1"},
    "b": {"path": "/models/b", "size_bytes": "2GiB", "device": "sim:0"},
    "c": {"path": "/models/c", "size_bytes": "1GiB", "device": "sim:1"}
  },
  "admission_timeout_ms": 0
}"""


@pytest.fixture
def two(make_registry):
    return make_registry(TWO_DEVICES, simulated_device_bytes=None,
                         simulated_devices=[("sim:0", 8 * GiB), ("sim:1", 16 * GiB)])


def test_devices_are_listed_in_order_with_what_they_hold(two):
    devices = two.devices()
    assert [d.name for d in devices] == ["sim:0", "sim:1"]
    assert all(isinstance(d, Device) for d in devices)
    assert [d.total_bytes for d in devices] == [8 * GiB, 16 * GiB]
    assert [d.held_bytes for d in devices] == [0, 0]
    rows = by_name(two)
    assert (rows["a"].device, rows["b"].device, rows["c"].device) == ("sim:1", "sim:0", "sim:1")
    with two.acquire("a"), two.acquire("b"), two.acquire("c"):
        assert by_name(two)["a"].state == State.RESIDENT
        d0, d1 = two.devices()
        assert (d0.held_bytes, d0.resident_models, d0.free_bytes) == (2 * GiB, 1, 6 * GiB)
        assert (d1.held_bytes, d1.resident_models, d1.free_bytes) == (5 * GiB, 2, 11 * GiB)
    assert two.info("a").device == "sim:1"


def test_one_simulated_device_is_listed(make_registry):
    reg = make_registry('{"models": {"m": {"path": "/m", "size_bytes": "1GiB"}}}', simulated_device_bytes=4 * GiB)
    (only,) = reg.devices()
    assert only.total_bytes == 4 * GiB and only.name
    assert reg.info("m").device == only.name


def test_bad_simulated_devices_are_refused(make_registry):
    with pytest.raises(twistedpic.InvalidArgumentError, match="'x' was already added"):
        make_registry(TWO_DEVICES, simulated_device_bytes=None, simulated_devices=[("x", GiB), ("x", GiB)])
    with pytest.raises(twistedpic.FailedPreconditionError, match="not both"):
        make_registry(TWO_DEVICES, simulated_device_bytes=GiB, simulated_devices=[("x", GiB)])


def test_runtime_devices_are_the_cuda_devices_or_the_cpu():
    devices = twistedpic.runtime_devices()
    assert devices
    names = [d.name for d in devices]
    assert names == ["cpu"] or names == [f"cuda:{i}" for i in range(len(names))]
    for d in devices:
        assert 0 < d.total_bytes and d.free_bytes <= d.total_bytes
        assert d.held_bytes == 0  # no registry figures
