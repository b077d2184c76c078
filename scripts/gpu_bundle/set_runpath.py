#!/usr/bin/env python3
"""Rewrites the DT_RUNPATH (or DT_RPATH) of ELF64 little-endian files in place.

    set_runpath.py NEW_RUNPATH FILE...

The new value replaces the old string in .dynstr, padded with NULs, so it must
not be longer (the build tree's run path, which names the venv's torch and
the CUDA toolkit, always is longer than "$ORIGIN/../lib"). Like chrpath -r,
with no dependency: the bundle's binaries must not find the build machine's
libraries through a path baked in at link time.
"""
import struct
import sys

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_STRTAB, DT_RPATH, DT_RUNPATH = 0, 5, 15, 29


def set_runpath(path: str, new: bytes) -> None:
    with open(path, "r+b") as f:
        data = bytearray(f.read())
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise SystemExit(f"{path}: not an ELF64 little-endian file")
        phoff, = struct.unpack_from("<Q", data, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
        loads, dynamic = [], None
        for i in range(phnum):
            p_type, _, p_offset, p_vaddr, _, p_filesz, _, _ = struct.unpack_from("<IIQQQQQQ", data, phoff + i * phentsize)
            if p_type == PT_LOAD:
                loads.append((p_vaddr, p_offset, p_filesz))
            elif p_type == PT_DYNAMIC:
                dynamic = (p_offset, p_filesz)
        if dynamic is None:
            raise SystemExit(f"{path}: no dynamic section")
        strtab, paths = None, []
        for off in range(dynamic[0], dynamic[0] + dynamic[1], 16):
            tag, val = struct.unpack_from("<qQ", data, off)
            if tag == DT_NULL:
                break
            if tag == DT_STRTAB:
                strtab = val
            elif tag in (DT_RPATH, DT_RUNPATH):
                paths.append(val)
        if strtab is None or not paths:
            raise SystemExit(f"{path}: no RUNPATH to rewrite")
        base = next((o + strtab - v for v, o, n in loads if v <= strtab < v + n), None)
        if base is None:
            raise SystemExit(f"{path}: .dynstr is not in a loaded segment")
        for val in paths:
            start = base + val
            end = data.index(b"\0", start)
            if len(new) > end - start:
                raise SystemExit(f"{path}: new run path longer than the old ({end - start} bytes)")
            data[start:end] = new + b"\0" * (end - start - len(new))
        f.seek(0)
        f.write(data)


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    for path in sys.argv[2:]:
        set_runpath(path, sys.argv[1].encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
