"""The raw layer against the C header itself: every function, constant and struct field of tp.h is mirrored."""

import ctypes
import os
import pathlib
import re
import subprocess
import sys

import pytest

from twistedpic import _ffi

ROOT = pathlib.Path(__file__).resolve().parents[3]
INCLUDE = pathlib.Path(os.environ.get("TP_INCLUDE_DIR", ROOT / "capi" / "include"))
GENERATED = os.environ.get("TP_GENERATED_INCLUDE_DIR")
HEADER = re.sub(r"/\*.*?\*/", "", (INCLUDE / "twistedpic" / "tp.h").read_text(), flags=re.S)


def test_every_function_is_declared_with_its_arity():
    functions = re.findall(r"TP_API\s+[\w\s\*]+?\b(tp_\w+)\s*\(([^)]*)\)\s*;", HEADER)
    assert len(functions) == len(re.findall(r"^TP_API ", HEADER, flags=re.M)) > 30  # the regex saw them all
    for name, params in functions:
        arity = 0 if params.strip() in ("", "void") else params.count(",") + 1
        assert len(getattr(_ffi, name).argtypes) == arity, name


def test_every_constant_has_the_header_value():
    constants = dict(re.findall(r"#define\s+(TP_[A-Z_]+)\s+(-?\d+)\s*$", HEADER, flags=re.M))
    # Every object-like TP_* macro (function-like ones, such as TP_POLICY_MODEL_AT, are not constants).
    assert set(constants) == set(re.findall(r"#define\s+(TP_\w+)(?![\w(])", HEADER)) - {"TP_API"}
    assert {n: getattr(_ffi, n, None) for n in constants} == {n: int(v) for n, v in constants.items()}


@pytest.mark.parametrize("struct", [_ffi.tp_policy_model, _ffi.tp_memory_policy_vtable, _ffi.tp_model_info,
                                    _ffi.tp_stats, _ffi.tp_event, _ffi.tp_progress, _ffi.tp_image,
                                    _ffi.tp_result_info, _ffi.tp_plan_info])
def test_struct_fields_match_the_header(struct):
    body = re.search(r"typedef struct %s \{(.*?)\} %s;" % (struct.__name__, struct.__name__), HEADER, re.S)
    declarations = [d.strip() for d in body.group(1).split(";") if d.strip()]
    names = [re.search(r"\(\*(\w+)\)|(\w+)\s*(?:\[\w+\])?$", d).group(1, 2) for d in declarations]
    assert [a or b for a, b in names] == [f[0] for f in struct._fields_]
    if ctypes.sizeof(ctypes.c_void_p) == 8:
        assert ctypes.sizeof(struct) == _ffi._C_SIZES_LP64[struct]


@pytest.mark.skipif(not GENERATED, reason="TP_GENERATED_INCLUDE_DIR is not set")
def test_expected_version_matches_the_generated_header():
    text = (pathlib.Path(GENERATED) / "twistedpic" / "version.h").read_text()
    version = tuple(int(re.search(r"#define TP_VERSION_%s (\d+)" % part, text).group(1))
                    for part in ("MAJOR", "MINOR", "PATCH"))
    assert version == _ffi.EXPECTED_VERSION
    assert _ffi.tp_version_number() == _ffi.EXPECTED_VERSION_NUMBER


def test_version_compatibility_rule():
    assert [_ffi._compatible(v, 100) for v in (100, 105, 99, 200, 10100)] == [True, True, False, False, False]
    assert [_ffi._compatible(v, 10100) for v in (10100, 10200, 10000, 20100)] == [True, True, False, False]


def test_a_missing_library_is_a_clear_import_error():
    env = dict(os.environ, TWISTEDPIC_LIBRARY="/nonexistent/libtwistedpic.so")
    run = subprocess.run([sys.executable, "-c", "import twistedpic"], env=env, capture_output=True, text=True)
    assert run.returncode != 0
    assert "ImportError: twistedpic: cannot load '/nonexistent/libtwistedpic.so'" in run.stderr
