"""Routes the library's log lines into the ``logging`` module (STYLE B8)."""

import atexit
import logging

from . import _ffi
from ._callbacks import guarded
from ._errors import call

TRACE = logging.DEBUG - 5  # the library's trace level, below logging.DEBUG
_TO_PYTHON = {_ffi.TP_LOG_TRACE: TRACE, _ffi.TP_LOG_DEBUG: logging.DEBUG, _ffi.TP_LOG_INFO: logging.INFO,
              _ffi.TP_LOG_WARN: logging.WARNING, _ffi.TP_LOG_ERROR: logging.ERROR,
              _ffi.TP_LOG_CRITICAL: logging.CRITICAL}


def _to_library_level(level):
    """The lowest library level whose Python level is at least ``level`` (TP_LOG_OFF above CRITICAL)."""
    return min((tp for tp, py in _TO_PYTHON.items() if py >= level), default=_ffi.TP_LOG_OFF)


@_ffi.tp_log_fn
@guarded(None)
def _on_log(level, logger, msg, length, user_data):
    # Called from any library thread, possibly concurrently. Module-level: the CFUNCTYPE lives as long as the
    # interpreter.
    log = logging.getLogger("twistedpic." + logger.decode("utf-8", "replace"))
    py_level = _TO_PYTHON.get(level, logging.ERROR)
    if log.isEnabledFor(py_level):
        log.log(py_level, "%s", msg[:length].decode("utf-8", "replace"))


_atexit_registered = False


def set_log_handler(level=logging.INFO):
    """Sends the library's log lines at ``level`` and above (a ``logging`` level) to the ``logging`` module,
    under loggers named ``"twistedpic.<component>"`` (e.g. ``"twistedpic.registry"``). The library's trace level
    maps to ``twistedpic.TRACE`` (5). Replaces the default sink (stderr, warnings and above) process-wide.

    Thread-safe: the library swaps its callback atomically.
    """
    global _atexit_registered
    call(_ffi.tp_set_log_callback, _on_log, None, _to_library_level(level))
    if not _atexit_registered:  # no Python callback may run while the interpreter shuts down
        atexit.register(reset_log_handler)
        _atexit_registered = True


def reset_log_handler():
    """Restores the library's default log sink (stderr, warnings and above)."""
    call(_ffi.tp_set_log_callback, _ffi.tp_log_fn(), None, _ffi.TP_LOG_WARN)
