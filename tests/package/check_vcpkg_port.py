#!/usr/bin/env python3
"""Validates the vcpkg port (vcpkg cannot run here): vcpkg.json parses, has the
required keys and dependencies, and its version is the project's.

usage: check_vcpkg_port.py PORT_DIR PROJECT_VERSION
"""
import json
import pathlib
import re
import sys


def main() -> int:
    port, version = pathlib.Path(sys.argv[1]), sys.argv[2]
    errors = []
    manifest = json.loads((port / "vcpkg.json").read_text())

    name = manifest.get("name")
    if name != port.name or not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", name or ""):
        errors.append(f"name {name!r} must be the port directory's name, lowercase-with-hyphens")
    version_keys = [k for k in ("version", "version-semver", "version-date", "version-string") if k in manifest]
    if len(version_keys) != 1:
        errors.append(f"exactly one version field expected, found {version_keys}")
    elif manifest[version_keys[0]] != version:
        errors.append(f"{version_keys[0]} is {manifest[version_keys[0]]!r}, the project is {version}")
    if not manifest.get("description"):
        errors.append("description is missing")

    deps = {}
    for d in manifest.get("dependencies", []):
        d = {"name": d} if isinstance(d, str) else d
        if not isinstance(d, dict) or "name" not in d:
            errors.append(f"bad dependency entry {d!r}")
            continue
        deps[d["name"]] = d
    for required in ("libtorch", "spdlog", "tl-expected", "nlohmann-json", "libpng", "sentencepiece", "utf8proc", "cli11"):
        if required not in deps:
            errors.append(f"dependency {required} is missing")
        elif deps[required].get("host"):
            errors.append(f"dependency {required} must not be a host dependency")
    for host in ("vcpkg-cmake", "vcpkg-cmake-config"):
        if not deps.get(host, {}).get("host"):
            errors.append(f"{host} must be a host dependency")

    # One license everywhere: the LICENSE file, the port and the Conan recipe.
    root = port.parent.parent
    license_text = (root / "LICENSE").read_text() if (root / "LICENSE").is_file() else ""
    if "Apache License" not in license_text or "Version 2.0" not in license_text:
        errors.append("LICENSE is missing or is not the Apache License 2.0")
    if manifest.get("license") != "Apache-2.0":
        errors.append(f"license is {manifest.get('license')!r}, LICENSE says Apache-2.0")
    if 'license = "Apache-2.0"' not in (root / "conanfile.py").read_text():
        errors.append("conanfile.py does not declare license = \"Apache-2.0\"")

    portfile = (port / "portfile.cmake").read_text()
    for call in ("vcpkg_cmake_configure", "vcpkg_cmake_install", "vcpkg_cmake_config_fixup", "vcpkg_fixup_pkgconfig"):
        if call not in portfile:
            errors.append(f"portfile.cmake does not call {call}")
    if not (port / "usage").is_file():
        errors.append("usage file is missing")

    for e in errors:
        print(f"{port}: {e}", file=sys.stderr)
    if not errors:
        print(f"{port}: ok ({name} {version}, dependencies: {', '.join(sorted(deps))})")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
