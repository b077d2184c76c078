"""Make a fresh venv that sees only some distributions of another environment, linked rather than reinstalled.

    python fresh_venv.py VENV torch               # a new venv at VENV with torch and what torch requires
    python fresh_venv.py --add VENV pytest numpy  # link more into an existing one

Run it with the interpreter of the environment that holds the distributions (the project's venv). Each named
distribution, and every distribution it requires (markers and extras evaluated), is linked into VENV's
site-packages: its top-level folders and files, and its .dist-info, so that pip sees it installed. Nothing is
copied, so a venv holding torch takes seconds and no disk. Used by run_tests.sh to `pip install` the package the
way a user would: into a venv that has the torch wheel and nothing of ours.
"""

import argparse
import importlib.metadata as metadata
import os
import subprocess
import sys

try:
    from packaging.markers import default_environment
    from packaging.requirements import Requirement
except ImportError:  # pip vendors it
    from pip._vendor.packaging.markers import default_environment
    from pip._vendor.packaging.requirements import Requirement


def closure(names):
    """The distributions named, and those they require, as {canonical name: Distribution}."""
    found, pending = {}, [(name, frozenset()) for name in names]
    seen = set()
    while pending:
        name, extras = pending.pop()
        key = (metadata.distribution(name).metadata["Name"].lower().replace("_", "-"), extras)
        if key in seen:
            continue
        seen.add(key)
        dist = metadata.distribution(name)
        found[key[0]] = dist
        for text in dist.requires or []:
            req = Requirement(text)
            environments = [dict(default_environment(), extra=e) for e in (extras or {""})]
            if req.marker is None or any(req.marker.evaluate(env) for env in environments):
                pending.append((req.name, frozenset(req.extras)))
    return found


def top_level_entries(dist):
    """The names directly in site-packages that belong to `dist` (skips scripts installed outside it)."""
    entries = set()
    for path in dist.files or []:
        first = path.parts[0]
        if first != "..":
            entries.add(first)
    return entries


def site_packages(venv):
    out = subprocess.run([os.path.join(venv, "bin", "python"), "-c",
                          "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--add", action="store_true", help="link into an existing venv instead of creating one")
    parser.add_argument("venv")
    parser.add_argument("distributions", nargs="+")
    args = parser.parse_args()
    if not args.add:
        if os.path.exists(args.venv):
            sys.exit(f"fresh_venv: {args.venv} exists")
        subprocess.run([sys.executable, "-m", "venv", args.venv], check=True)
    target = site_packages(args.venv)
    dists = closure(args.distributions)
    for dist in dists.values():
        source = str(dist.locate_file(""))
        for entry in sorted(top_level_entries(dist)):
            link = os.path.join(target, entry)
            if not os.path.lexists(link) and os.path.exists(os.path.join(source, entry)):
                os.symlink(os.path.join(source, entry), link)
    print(f"fresh_venv: {args.venv} sees {', '.join(sorted(dists))}")


if __name__ == "__main__":
    main()
