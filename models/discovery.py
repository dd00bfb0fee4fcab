"""Folder → files to scan, in a stable order. Loops, unreadable folders, broken links and special files
are reported as entries with an error instead of stopping the walk."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator


@dataclass(frozen=True)
class Entry:
    path: Path
    error: str | None = None


def discover(paths: Iterable[Path], recursive: bool = False) -> Iterator[Entry]:
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[Path] = set()
    for root in paths:
        root = Path(root)
        for entry in _walk_one(root, recursive, seen_dirs):
            key = entry.path.absolute()
            if key not in seen_files:  # the same file named twice on the command line is one row
                seen_files.add(key)
                yield entry


def _walk_one(path: Path, recursive: bool, seen_dirs: set) -> Iterator[Entry]:
    try:
        info = path.stat()
    except FileNotFoundError:
        yield Entry(path, "broken symbolic link" if path.is_symlink() else "file not found")
        return
    except OSError as exc:
        yield Entry(path, _os_reason(exc, "cannot inspect"))
        return
    if stat.S_ISDIR(info.st_mode):
        yield from _walk_dir(path, recursive, seen_dirs, top=True)
    elif stat.S_ISREG(info.st_mode):
        yield Entry(path)
    else:
        yield Entry(path, "not a regular file (device, pipe or socket): skipped")


def _walk_dir(folder: Path, recursive: bool, seen_dirs: set, top: bool = False) -> Iterator[Entry]:
    info = folder.stat()
    key = (info.st_dev, info.st_ino)
    if key in seen_dirs:
        yield Entry(folder, "symbolic link loop: this folder was already scanned under another name")
        return
    seen_dirs.add(key)
    try:
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda d: d.name)
    except OSError as exc:
        yield Entry(folder, _os_reason(exc, "cannot list folder"))
        return
    for child in children:
        path = Path(child.path)
        try:
            is_dir = child.is_dir(follow_symlinks=True)
        except OSError:
            is_dir = False
        if is_dir:
            if recursive:
                yield from _walk_dir(path, recursive, seen_dirs)
            continue
        yield from _walk_one(path, recursive, seen_dirs)


def _os_reason(exc: OSError, what: str) -> str:
    if isinstance(exc, PermissionError):
        return f"{what}: permission denied"
    if exc.errno == 40:  # ELOOP
        return "symbolic link loop"
    return f"{what}: {exc.strerror or exc}"
