"""Support for the callbacks that the C library makes into Python.

* The library holds no Python object: ``user_data`` is an integer key into ``objects``, registered with
  ``register()`` and removed when the library is done with it.
* ``guarded()`` keeps exceptions from unwinding into C: they are logged to the "twistedpic" logger and the
  callback returns a default.
* ``finalize()`` runs a finalizer (a Lease's release, a Registry's close) now, or on a new thread when the garbage
  collector runs it inside a library callback, which may hold the registry's lock: calling back into the
  registry there would deadlock.
"""

import functools
import itertools
import logging
import threading

_logger = logging.getLogger("twistedpic")
_local = threading.local()

objects = {}  # user_data key -> Python object (a memory policy, an event callback)
_keys = itertools.count(1)


def register(obj):
    """Returns a new ``user_data`` key for ``obj``; drop it with ``objects.pop(key, None)``."""
    key = next(_keys)
    objects[key] = obj
    return key


def guarded(default):
    """Decorates a callback from C: it logs any exception and returns ``default`` instead of unwinding."""

    def wrap(fn):
        @functools.wraps(fn)
        def run(*args):
            _local.depth = getattr(_local, "depth", 0) + 1
            try:
                return fn(*args)
            except BaseException:  # noqa: BLE001 - nothing may propagate into C
                try:
                    _logger.exception("a Python callback (%s) raised; ignored", fn.__name__)
                except BaseException:  # noqa: BLE001
                    pass
                return default
            finally:
                _local.depth -= 1

        return run

    return wrap


def finalize(close):
    """Calls ``close()`` now, or on a new thread when inside a library callback on this thread."""
    if getattr(_local, "depth", 0):
        threading.Thread(target=close, name="twistedpic-finalize", daemon=True).start()
    else:
        close()
