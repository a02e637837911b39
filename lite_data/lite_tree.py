"""What the lite-set generators share: manifest, completeness check, atomic build and the command line."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["MANIFEST", "build_tree", "check_tree", "main", "manifest"]

MANIFEST = "manifest.json"


def manifest(files: Mapping[str, bytes], *, layout_version: int, **extra: object) -> dict[str, object]:
    """The manifest of a tree: its layout version, generator-specific facts and the sha256 of every file."""
    return {
        "layout_version": layout_version,
        **extra,
        "files": {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(files.items())},
    }


def check_tree(out: Path, *, layout_version: int) -> bool:
    """True when ``out`` holds a complete tree of this layout version (cheap: reads the manifest, hashes nothing)."""
    try:
        data = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("layout_version") != layout_version:
        return False
    names = data.get("files")
    return isinstance(names, dict) and bool(names) and all((out / rel).is_file() for rel in names)


def build_tree(
    out: Path,
    *,
    layout_version: int,
    files: Callable[[], Mapping[str, bytes]],
    describe: Callable[[Mapping[str, bytes]], dict[str, object]],
    force: bool = False,
) -> bool:
    """Write the tree unless it is complete; True when files were written.

    The files go to a sibling folder that is renamed into place at the end, so an interrupted build never looks
    complete, and two processes building at once (pytest workers) both end with the same complete tree.
    """
    if check_tree(out, layout_version=layout_version) and not force:
        return False
    content = files()
    tmp = out.with_name(f"{out.name}.tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    for rel, data in content.items():
        path = tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (tmp / MANIFEST).write_text(json.dumps(describe(content), indent=1, sort_keys=True) + "\n")
    if check_tree(out, layout_version=layout_version) and not force:  # another process finished first
        shutil.rmtree(tmp)
        return False
    if out.exists():
        shutil.rmtree(out)
    try:
        tmp.rename(out)
    except OSError:  # lost the race to a concurrent build of the same bytes
        shutil.rmtree(tmp, ignore_errors=True)
        if not check_tree(out, layout_version=layout_version):
            raise
        return False
    return True


def main(
    argv: list[str] | None,
    *,
    description: str,
    default_out: Path,
    check: Callable[[Path], bool],
    build: Callable[..., bool],
) -> int:
    """``--out``, ``--check`` (exit 1 when incomplete, write nothing) and ``--force``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", type=Path, default=default_out, help="output folder (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="exit 0 if the set is complete, 1 if not; write nothing")
    parser.add_argument("--force", action="store_true", help="rebuild even if the set is complete")
    args = parser.parse_args(argv)
    if args.check:
        ok = check(args.out)
        sys.stdout.write(f"{args.out}: {'complete' if ok else 'missing or stale'}\n")
        return 0 if ok else 1
    wrote = build(args.out, force=args.force)
    sys.stdout.write(f"{args.out}: {'built' if wrote else 'already complete'}\n")
    return 0
