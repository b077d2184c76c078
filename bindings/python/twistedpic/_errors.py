"""Errors: one exception class per tp_code, and check()/call() that turn a failed C call into one."""

from ctypes import POINTER, byref

from . import _ffi


class TwistedpicError(Exception):
    """A failed twistedpic call. ``code`` is the tp_code, ``message`` the library's message."""

    code = _ffi.TP_UNKNOWN

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def code_name(self):
        """The code's stable upper-snake name, e.g. ``"NOT_FOUND"``."""
        return _ffi.tp_code_name(self.code).decode()


class CancelledError(TwistedpicError):
    code = _ffi.TP_CANCELLED


class UnknownError(TwistedpicError):
    code = _ffi.TP_UNKNOWN


class InvalidArgumentError(TwistedpicError, ValueError):
    code = _ffi.TP_INVALID_ARGUMENT


class NotFoundError(TwistedpicError, LookupError):
    code = _ffi.TP_NOT_FOUND


class AlreadyExistsError(TwistedpicError):
    code = _ffi.TP_ALREADY_EXISTS


class ResourceExhaustedError(TwistedpicError):
    code = _ffi.TP_RESOURCE_EXHAUSTED


class FailedPreconditionError(TwistedpicError):
    code = _ffi.TP_FAILED_PRECONDITION


class AbortedError(TwistedpicError):
    code = _ffi.TP_ABORTED


class UnimplementedError(TwistedpicError, NotImplementedError):
    code = _ffi.TP_UNIMPLEMENTED


class InternalError(TwistedpicError):
    code = _ffi.TP_INTERNAL


class UnavailableError(TwistedpicError):
    code = _ffi.TP_UNAVAILABLE


class DataLossError(TwistedpicError):
    code = _ffi.TP_DATA_LOSS


_BY_CODE = {cls.code: cls for cls in TwistedpicError.__subclasses__()}


def check(code, err):
    """Returns if ``code`` is TP_OK; otherwise frees ``err`` (a ``POINTER(tp_error)``, possibly NULL) and raises
    the exception class for ``code`` (UnknownError for a code this package does not know)."""
    if code == _ffi.TP_OK:
        return
    try:
        message = _ffi.tp_error_message(err).decode("utf-8", "replace") if err else ""
    finally:
        _ffi.tp_error_free(err)
    raise _BY_CODE.get(code, UnknownError)(code, message or _ffi.tp_code_name(code).decode())


def call(fn, *args):
    """Calls a tp_* function that takes a trailing ``tp_error** out_err``, raising on failure."""
    err = POINTER(_ffi.tp_error)()
    check(fn(*args, byref(err)), err)
