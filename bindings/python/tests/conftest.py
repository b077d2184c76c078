import gc
import os

import pytest

import twistedpic
from twistedpic import _callbacks

# run_tests.sh runs the suite against the pip-installed package and names where it must come from.
_expected = os.environ.get("TP_EXPECT_PACKAGE_IN")
if _expected and os.path.dirname(os.path.abspath(twistedpic.__file__)) != _expected:
    raise ImportError(f"tests: twistedpic was imported from {twistedpic.__file__}, not from {_expected}")

GiB = 1 << 30

# Three 4 GiB models, as in tests/capi/registry_capi_test.cpp.
CONFIG = """{
  "models": {
    "a": {"model_id": "org/a", "pipeline_type": "sd3", "size_bytes": "4GiB", "dtype": "fp16"},
    "b": {"path": "/models/b", "pipeline_type": "sd3", "size_bytes": "4GiB", "priority": 3},
    "c": {"path": "/models/c", "pipeline_type": "sd3", "size_bytes": "4GiB"}
  },
  "host_budget_bytes": "16GiB"
}"""


@pytest.fixture
def make_registry():
    """Registry.from_string(CONFIG) on a simulated 10 GiB device without a background thread; closed after the
    test. Keyword arguments override these defaults."""
    made = []

    def make(config=CONFIG, **options):
        options = {"simulated_device_bytes": 10 * GiB, "background_thread": False, **options}
        made.append(twistedpic.Registry.from_string(config, **options))
        return made[-1]

    yield make
    for reg in made:
        reg.close()


@pytest.fixture
def reg(make_registry):
    return make_registry()


def by_name(reg):
    return {m.name: m for m in reg.models()}


def collected(ref):
    """Whether the object behind the weak reference `ref` is gone."""
    gc.collect()
    return ref() is None


@pytest.fixture(autouse=True)
def no_leaked_callback_objects():
    """Every test leaves the table of objects handed to C (policies, subscribers) as it found it."""
    before = set(_callbacks.objects)
    yield
    gc.collect()
    assert set(_callbacks.objects) <= before
