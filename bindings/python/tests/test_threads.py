import random
import threading

import twistedpic
from twistedpic import State
from conftest import GiB, by_name


class CountingPolicy(twistedpic.MemoryPolicy):
    def __init__(self):
        self.accesses = 0  # on_access runs under the registry's lock: one call at a time

    def on_access(self, name):
        self.accesses += 1


def test_threads_acquiring_and_releasing(make_registry):
    policy = CountingPolicy()
    reg = make_registry(simulated_device_bytes=8 * GiB, background_thread=True, policy=policy)  # room for two
    events = []
    reg.subscribe(events.append)
    acquired, unexpected, exhausted = [], [], []

    def worker(seed):
        rng = random.Random(seed)
        for _ in range(40):
            name = rng.choice("abc")
            try:
                with reg.acquire(name) as lease:
                    assert lease.name == name and lease.device_bytes == 4 * GiB
                    assert by_name(reg)[name].state == State.RESIDENT
                acquired.append(name)
            except twistedpic.ResourceExhaustedError:
                exhausted.append(name)  # must not happen: with the default timeout admissions wait their turn
            except BaseException as e:  # noqa: BLE001
                unexpected.append(e)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert unexpected == []
    assert exhausted == [] and len(acquired) == 6 * 40
    assert reg.stat("admission_queue") == 0 and reg.stat("device_total_bytes") == 8 * GiB
    s = reg.stats()
    assert s.hits + s.misses == len(acquired) == policy.accesses
    assert s.peak_device_bytes <= 8 * GiB
    assert all(m.leases == 0 for m in reg.models())
    loads = [e for e in events if e.to_tier == twistedpic.Tier.DEVICE]
    assert len(loads) == s.loads + s.reloads
