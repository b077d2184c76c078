import logging
import os
import subprocess
import sys
import weakref

import pytest

import twistedpic
from twistedpic import State, Tier
from conftest import GiB, by_name, collected


class PickLastEvictable(twistedpic.MemoryPolicy):
    """Evicts the last evictable model (the built-in LRU would pick the first, least recently used one)."""

    def __init__(self):
        self.calls = []
        self.accesses = []

    def select_victims(self, models, need_bytes):
        self.calls.append((list(models), need_bytes))
        return [max(i for i, m in enumerate(models) if m.evictable)]

    def on_access(self, name):
        self.accesses.append(name)


def fill_then_acquire_c(reg):
    for name in "abc":  # a and b fill 8 of 10 GiB: c needs a victim
        reg.acquire(name).release()


def test_python_policy_chooses_the_victim(make_registry):
    policy = PickLastEvictable()
    reg = make_registry(policy=policy)
    fill_then_acquire_c(reg)
    assert len(policy.calls) == 1
    models, need = policy.calls[0]
    assert [(m.name, m.state, m.tier, m.evictable, m.leases) for m in models] == [
        ("a", State.RESIDENT, Tier.DEVICE, True, 0), ("b", State.RESIDENT, Tier.DEVICE, True, 0),
        ("c", State.LOADING, Tier.DISK, False, 0)]  # c is being admitted
    assert models[0].device_bytes == 4 * GiB and models[1].priority == 3 and models[2].idle_seconds is None
    assert models[0].idle_seconds >= 0 and models[0].pinned is False
    assert need > 0
    assert policy.accesses == ["a", "b", "c"]
    rows = by_name(reg)
    assert (rows["a"].state, rows["b"].state, rows["c"].state) == (State.RESIDENT, State.OFFLOADED, State.RESIDENT)


def test_without_a_policy_the_builtin_lru_evicts_the_oldest(reg):
    fill_then_acquire_c(reg)  # the control for the test above: its outcome is the policy's doing
    rows = by_name(reg)
    assert (rows["a"].state, rows["b"].state) == (State.OFFLOADED, State.RESIDENT)


def test_the_policy_is_dropped_once_the_registry_no_longer_needs_it(make_registry):
    policy = PickLastEvictable()
    ref = weakref.ref(policy)
    reg = make_registry(policy=policy)
    del policy
    assert not collected(ref)  # the registry holds it
    lease = reg.acquire("a")
    reg.close()
    lease.release()
    assert collected(ref)


def test_a_policy_is_dropped_when_creation_fails(make_registry):
    policy = PickLastEvictable()
    ref = weakref.ref(policy)
    with pytest.raises(twistedpic.InvalidArgumentError):
        make_registry('{"models": {"a": {"path": "/x", "dtype": "fp8"}}}', policy=policy)
    del policy
    assert collected(ref)


class Raising(twistedpic.MemoryPolicy):
    def select_victims(self, models, need_bytes):
        raise RuntimeError("policy bug")

    def on_access(self, name):
        raise RuntimeError("on_access bug")


class OutOfRange(twistedpic.MemoryPolicy):
    def select_victims(self, models, need_bytes):
        return [len(models)]


@pytest.mark.parametrize("policy, logged", [(Raising(), "policy bug"), (OutOfRange(), "returned [3]")])
def test_a_broken_policy_is_logged_and_the_builtins_decide(make_registry, caplog, policy, logged):
    reg = make_registry(policy=policy)
    with caplog.at_level(logging.ERROR, logger="twistedpic"):
        fill_then_acquire_c(reg)
    assert by_name(reg)["a"].state == State.OFFLOADED  # the built-in LRU's choice
    assert any(logged in (r.exc_text or "") for r in caplog.records if r.name == "twistedpic")


def test_a_raising_event_callback_does_not_crash(reg, caplog):
    def boom(event):
        raise ValueError("subscriber bug")

    seen = []
    reg.subscribe(boom)
    reg.subscribe(seen.append)
    with caplog.at_level(logging.ERROR, logger="twistedpic"):
        with reg.acquire("a") as lease:
            assert lease.device_bytes == 4 * GiB
    assert [e.model for e in seen] == ["a"]  # the other subscriber still got the event
    assert any("subscriber bug" in (r.exc_text or "") for r in caplog.records)


LEASE_DROPPED_IN_A_CALLBACK = """
import time, twistedpic
from conftest import CONFIG

held = []

class DropsTheLastReference(twistedpic.MemoryPolicy):
    def select_victims(self, models, need_bytes):
        held.clear()  # Lease.__del__ runs here, while the registry's lock is held
        return []

reg = twistedpic.Registry.from_string(CONFIG, simulated_device_bytes=10 << 30, policy=DropsTheLastReference())
held.append(reg.acquire("a"))
reg.acquire("b").release()
reg.acquire("c").release()  # the policy runs: a deadlock here without the deferred release
while reg.models()[0].leases:  # released on another thread
    time.sleep(0.01)
reg.close()
print("released")
"""


def test_a_lease_collected_inside_a_policy_callback_is_released_without_deadlock():
    # In a child process: a deadlock there fails this test by timeout instead of hanging the suite.
    path = os.pathsep.join([os.path.dirname(__file__), os.path.dirname(os.path.dirname(twistedpic.__file__))])
    run = subprocess.run([sys.executable, "-c", LEASE_DROPPED_IN_A_CALLBACK], env=dict(os.environ, PYTHONPATH=path),
                         capture_output=True, text=True, timeout=60)
    assert (run.returncode, run.stdout) == (0, "released\n"), run.stderr
