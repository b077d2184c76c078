#!/usr/bin/env python3
"""Writes the malformed PNG corpus.

  tests/data/bad/png/<case>.<CODE>.png   one malformation each; <CODE> is the
      error code tp::read_png must return, and the message must name the file
      (tests/unit/reliability/bad_inputs_test.cpp checks every entry).

Besides files: a dangling symlink (missing_file.NOT_FOUND.png) and a folder
named like a PNG (is_a_directory.INVALID_ARGUMENT.png, holding .gitkeep).
Truncations are DATA_LOSS, other damage INVALID_ARGUMENT, as for safetensors.
A file that ends right after complete image data (no IEND) is read, as libpng
and most readers do, so it is not a case here.

Standard library only. Rerun after changing a case: python3 tests/data/bad/make_bad_png.py
"""
import os
import pathlib
import shutil
import struct
import zlib

ROOT = pathlib.Path(__file__).resolve().parents[3]
BAD = ROOT / "tests/data/bad/png"

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def chunk(kind, data, crc=None):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) if crc is None else crc)


def ihdr(width, height, depth=8, color=2):
    return chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 0))


def rows(width, height, channels=3):
    """Filter byte 0, then width * channels bytes per row."""
    raw = b""
    for y in range(height):
        raw += b"\0" + bytes((x * 37 + y * 101 + c * 13) & 0xFF for x in range(width) for c in range(channels))
    return raw


def png(width=3, height=2, idat=None, extra=b"", iend=True, header=None):
    data = SIGNATURE + (header if header is not None else ihdr(width, height))
    data += extra
    data += chunk(b"IDAT", zlib.compress(rows(width, height)) if idat is None else idat)
    if iend:
        data += chunk(b"IEND", b"")
    return data


VALID = png()
IDAT_AT = VALID.index(b"IDAT") - 4  # the IDAT chunk's length field


def with_crc_broken(data, kind):
    """`data` with the CRC of the first `kind` chunk inverted."""
    at = data.index(kind) - 4
    (length,) = struct.unpack(">I", data[at:at + 4])
    crc_at = at + 8 + length
    (crc,) = struct.unpack(">I", data[crc_at:crc_at + 4])
    return data[:crc_at] + struct.pack(">I", crc ^ 0xFFFFFFFF) + data[crc_at + 4:]


CASES = {
    ("not_a_png", "INVALID_ARGUMENT"): b"GIF89a\x01\x00\x01\x00\x00\x00\x00;",
    ("empty", "DATA_LOSS"): b"",
    ("signature_only", "DATA_LOSS"): SIGNATURE,
    ("truncated_signature", "DATA_LOSS"): SIGNATURE[:5],
    ("truncated_in_ihdr", "DATA_LOSS"): VALID[:8 + 8 + 6],
    ("truncated_in_idat", "DATA_LOSS"): VALID[:IDAT_AT + 8 + 6],
    ("ihdr_crc_mismatch", "INVALID_ARGUMENT"): with_crc_broken(VALID, b"IHDR"),
    ("idat_crc_mismatch", "INVALID_ARGUMENT"): with_crc_broken(VALID, b"IDAT"),
    ("zero_width", "INVALID_ARGUMENT"): png(header=ihdr(0, 2)),
    ("unknown_color_type", "INVALID_ARGUMENT"): png(header=ihdr(3, 2, 8, 5)),
    ("rgb_with_bit_depth_4", "INVALID_ARGUMENT"): png(header=ihdr(3, 2, 4, 2)),
    ("palette_without_plte", "INVALID_ARGUMENT"): png(header=ihdr(3, 2, 8, 3), idat=zlib.compress(rows(3, 2, 1))),
    ("idat_not_zlib", "INVALID_ARGUMENT"): png(idat=b"this is not a zlib stream"),
    ("idat_too_short", "INVALID_ARGUMENT"): png(idat=zlib.compress(rows(3, 1))),
    ("no_idat", "INVALID_ARGUMENT"): SIGNATURE + ihdr(3, 2) + chunk(b"IEND", b""),
    # Over read_png's limits (checked from the header, before any decoding).
    ("width_over_65535", "INVALID_ARGUMENT"): png(header=ihdr(65536, 1)),
    ("over_2_28_pixels", "INVALID_ARGUMENT"): png(header=ihdr(20000, 20000)),
}


def main():
    if BAD.exists():
        shutil.rmtree(BAD)
    BAD.mkdir(parents=True)
    for (name, code), data in CASES.items():
        (BAD / f"{name}.{code}.png").write_bytes(data)
    os.symlink("does_not_exist.png", BAD / "missing_file.NOT_FOUND.png")
    folder = BAD / "is_a_directory.INVALID_ARGUMENT.png"
    folder.mkdir()
    (folder / ".gitkeep").write_bytes(b"")
    print(f"{len(CASES) + 2} bad cases in {BAD.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
