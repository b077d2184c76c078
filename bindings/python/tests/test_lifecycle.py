import pytest

import twistedpic
from twistedpic import Reason, State, Tier
from conftest import CONFIG, GiB, by_name


def test_list_shows_every_field_of_the_configured_models(reg):
    assert len(reg) == 3
    rows = reg.models()
    assert [m.name for m in rows] == ["a", "b", "c"]
    a = rows[0]
    assert (a.source, a.pipeline_type, a.dtype) == ("org/a", "sd3", "fp16")
    assert (a.state, a.tier) == (State.UNLOADED, Tier.DISK)
    assert (a.device_bytes, a.host_bytes, a.leases, a.load_count, a.last_load_ms) == (0, 0, 0, 0, 0.0)
    assert (a.pinned, a.priority, rows[1].priority) == (False, 0, 3) and a.pinned is False
    assert (a.last_use_age_s, a.expires_in_s, a.last_error) == (None, None, "")
    assert reg.list() == rows
    assert (str(a.state), str(a.tier)) == ("unloaded", "disk")  # the library's names


def test_pinned_model(make_registry):
    reg = make_registry('{"models": {"p": {"path": "/p", "pipeline_type": "sd3", "size_bytes": "1GiB", '
                        '"pinned": true}}}')
    assert reg.models()[0].pinned is True


def test_lease_is_a_context_manager_that_keeps_the_model_resident(reg):
    with reg.acquire("a") as lease:
        assert (lease.name, lease.device_bytes) == ("a", 4 * GiB)
        a = by_name(reg)["a"]
        assert (a.state, a.tier, a.leases, a.device_bytes, a.load_count) == (State.RESIDENT, Tier.DEVICE, 1,
                                                                             4 * GiB, 1)
        assert a.last_use_age_s >= 0
    assert lease.released and by_name(reg)["a"].leases == 0
    with pytest.raises(ValueError, match="released"):
        lease.device_bytes
    lease.release()  # idempotent


def test_unload_to_host_then_disk(reg):
    reg.acquire("a").release()
    assert reg.unload("a") == 4 * GiB  # Tier.HOST by default
    a = by_name(reg)["a"]
    assert (a.state, a.tier, a.host_bytes, a.device_bytes) == (State.OFFLOADED, Tier.HOST, 4 * GiB, 0)
    reg.preload("a")  # a reload from the host copy
    assert by_name(reg)["a"].state == State.RESIDENT
    reg.unload_all(Tier.DISK)
    a = by_name(reg)["a"]
    assert (a.state, a.tier, a.host_bytes) == (State.UNLOADED, Tier.DISK, 0)


def test_stats_count_loads_reloads_and_evictions(reg):
    with reg.acquire("a"):
        pass
    with reg.acquire("a"):
        pass
    reg.unload("a", Tier.HOST)
    reg.preload("a")
    reg.unload_all(Tier.DISK)
    s = reg.stats()
    assert (s.misses, s.hits, s.loads, s.reloads) == (1, 1, 1, 1)
    assert s.evictions[Reason.EXPLICIT] == 2 and sum(s.evictions.values()) == 2
    assert set(s.evictions) == set(Reason)
    assert (s.device_bytes, s.host_bytes, s.peak_device_bytes) == (0, 0, 4 * GiB)
    assert (s.bytes_to_device, s.bytes_to_host) == (8 * GiB, 4 * GiB)  # load + reload; one offload


def test_events_until_unsubscribed(reg):
    seen = []
    sub = reg.subscribe(seen.append)
    reg.acquire("a").release()
    reg.unload("a", Tier.DISK)
    reg.unsubscribe(sub)
    reg.acquire("b").release()
    assert [(e.model, e.from_tier, e.to_tier, e.reason) for e in seen] == [
        ("a", Tier.DISK, Tier.DEVICE, Reason.LAZY), ("a", Tier.DEVICE, Tier.DISK, Reason.EXPLICIT)]
    load, unload = seen
    assert (load.bytes, load.error) == (4 * GiB, "") and load.failed is False
    assert unload.bytes_returned == 4 * GiB and load.ms >= 0


def test_preset_max_gpu_availability_unloads_after_each_use(make_registry):
    reg = make_registry(preset="max_gpu_availability")
    seen = []
    reg.subscribe(lambda e: seen.append(f"{e.model}:{e.from_tier}->{e.to_tier}:{e.reason}"))
    with reg.acquire("b"):
        assert by_name(reg)["b"].state == State.RESIDENT
    assert seen == ["b:disk->device:lazy", "b:device->host:unload-after"]
    assert by_name(reg)["b"].state == State.OFFLOADED
    assert reg.stats().evictions[Reason.UNLOAD_AFTER] == 1


def test_from_file_with_background_thread_and_tick(tmp_path):
    path = tmp_path / "models.json"
    path.write_text(CONFIG)
    with twistedpic.Registry.from_file(path, simulated_device_bytes=10 * GiB) as reg:  # background thread on
        with reg.acquire("c") as lease:
            assert lease.device_bytes == 4 * GiB
        reg.tick()
        assert by_name(reg)["c"].state == State.RESIDENT  # no idle timeout configured
    assert reg.closed


def test_close_with_a_live_lease_is_deferred(make_registry):
    reg = make_registry()
    lease = reg.acquire("a")
    reg.close()
    reg.close()  # idempotent
    assert (lease.name, lease.device_bytes) == ("a", 4 * GiB)  # the model outlives the registry
    with pytest.raises(ValueError, match="closed"):
        reg.acquire("a")
    with pytest.raises(ValueError, match="closed"):
        reg.models()
    lease.release()
    assert repr(reg) == "<twistedpic.Registry closed>"


def test_versions():
    assert twistedpic.__version__ == "0.1.0"
    assert twistedpic.library_version().startswith("0.1.")
