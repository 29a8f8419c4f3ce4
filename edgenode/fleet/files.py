"""The files a stage reads (a wasm stage's ``files`` option, e.g. the WAF's SecLang rule
files), carried by a fleet version through the Object Store.

``upload_tree`` stores each file of one ``files`` entry (a file, or a directory read as
the node reads it: recursively, hidden files skipped) under its digest, then a small
tree object that lists them (``{"v": 1, "files": {"<relative path>": "sha256-<hex>"}}``,
path "" for a single file), also named by its digest; the published document names the
tree.  ``materialise`` rebuilds the tree on a node under
``<module cache>/fleet-files/``, every file checked against its digest, and
returns the path the stage's option then names: a rollout of a changed rule file is a
new tree, so the node reloads the stage with the new files.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from edgenode.fleet.bus import ControlBus
from edgenode.fleet.modules import ModuleError, fetch_bytes, upload

__all__ = ["upload_tree", "materialise", "tree_entries", "parse_tree"]


def tree_entries(root: Path) -> dict[str, Path]:
    """``{relative path: file}`` of a ``files`` entry ("" for a single file)."""
    if root.is_file():
        return {"": root}
    if not root.is_dir():
        raise FileNotFoundError(f"no such file or directory {root}")
    return {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)}


async def upload_tree(bus: ControlBus, root: Path) -> str:
    """Store the files under ``root`` and their tree; the tree's object name."""
    listing = {}
    for rel, path in tree_entries(root).items():
        listing[rel] = await upload(bus, await asyncio.to_thread(path.read_bytes))
    tree = json.dumps({"v": 1, "files": listing}, sort_keys=True, separators=(",", ":")).encode()
    return await upload(bus, tree)


def parse_tree(data: bytes) -> dict[str, str]:
    """A tree object's ``{relative path: object name}``; ModuleError when malformed."""
    try:
        body = json.loads(data)
        listing = body["files"]
        if body.get("v") != 1 or not isinstance(listing, dict):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise ModuleError("not a file tree") from None
    if "" in listing and len(listing) > 1:
        raise ModuleError("file tree: a single file and a directory at once")
    for rel, name in listing.items():
        if not isinstance(name, str) or (rel and (rel.startswith("/") or "" in rel.split("/")
                                                  or ".." in PurePosixPath(rel).parts)):
            raise ModuleError(f"file tree entry {rel!r}: not a relative path")
    return listing


async def materialise(bus: ControlBus, tree: str, cache_dir: Path) -> Path:
    """The local copy of file tree ``tree``: ``<tree>/`` (a directory entry) or
    ``<tree>.file`` (a single file).  Built aside and renamed into place, so a
    half-written tree is never used (nodes on one machine share it)."""
    root = cache_dir / "fleet-files"
    for done in (root / tree, root / f"{tree}.file"):
        if done.exists():
            return done
    listing = parse_tree(await fetch_bytes(bus, tree))
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for rel, name in listing.items():
            dest = work / (rel or "file")
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(await fetch_bytes(bus, name))
        source, final = (work / "file", root / f"{tree}.file") if "" in listing else (work, root / tree)
        try:
            os.rename(source, final)
        except OSError:  # another node on this machine put it there first
            if not final.exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final
