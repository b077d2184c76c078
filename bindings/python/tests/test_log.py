import logging

import pytest

import twistedpic
from twistedpic import _ffi, _log


@pytest.fixture
def log_handler():
    yield twistedpic.set_log_handler
    twistedpic.reset_log_handler()


def registry_lines(caplog):
    return [r for r in caplog.records if r.name == "twistedpic.registry"]


def test_library_lines_reach_logging(reg, caplog, log_handler):
    log_handler(logging.INFO)
    with caplog.at_level(logging.DEBUG, logger="twistedpic"):
        reg.acquire("a").release()
    lines = registry_lines(caplog)
    assert [(r.levelno, r.getMessage().split(" (")[0]) for r in lines] == [(logging.INFO, "a: disk -> device")]
    assert "lazy, 4294967296 bytes" in lines[0].getMessage()


def test_the_level_filters_in_the_library(reg, caplog, log_handler):
    log_handler(logging.WARNING)
    with caplog.at_level(logging.DEBUG, logger="twistedpic"):
        reg.acquire("a").release()
    assert registry_lines(caplog) == []


def test_reset_stops_the_bridge(reg, caplog, log_handler):
    log_handler(logging.INFO)
    twistedpic.reset_log_handler()
    with caplog.at_level(logging.DEBUG, logger="twistedpic"):
        reg.acquire("a").release()
    assert registry_lines(caplog) == []


def test_level_mapping():
    assert [_log._to_library_level(lvl) for lvl in (1, twistedpic.TRACE, logging.DEBUG, logging.INFO, 25,
                                                    logging.WARNING, logging.ERROR, logging.CRITICAL, 60)] == [
        _ffi.TP_LOG_TRACE, _ffi.TP_LOG_TRACE, _ffi.TP_LOG_DEBUG, _ffi.TP_LOG_INFO, _ffi.TP_LOG_WARN,
        _ffi.TP_LOG_WARN, _ffi.TP_LOG_ERROR, _ffi.TP_LOG_CRITICAL, _ffi.TP_LOG_OFF]
