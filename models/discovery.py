"""Folder → files to scan, in a stable order. Loops, unreadable folders, broken links and special files
are reported as entries with an error instead of stopping the walk.

Every path comes out absolute, with the folders above it resolved, so the same file scanned as `small5/a.jpg`,
`/abs/small5/a.jpg` or `../x/small5/a.jpg` is one row, and a report run from another folder still finds it.
The last component is kept as it was found: a file reached through a symbolic link keeps the link's name
and says where it points. Virtual file systems (/proc, /sys, /dev) are never walked: they hold no photos,
and /proc/*/root leads back into the whole machine."""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from models.paths import readable

# kernel and pseudo file systems: their "files" are live views of the machine, not evidence
VIRTUAL_FS_TYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "devfs", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "fusectl", "mqueue", "binfmt_misc", "autofs", "efivarfs", "hugetlbfs",
    "rpc_pipefs", "nsfs", "selinuxfs"})


@dataclass(frozen=True)
class Entry:
    path: Path
    error: str | None = None
    note: str | None = None  # said on the file's row, e.g. "symbolic link to /evidence/real.jpg"


def absolute(path: Path) -> Path:
    """Absolute and normalised; the folders above resolved, the last component kept (a link is not its
    target)."""
    path = Path(path).absolute()
    if path.name in ("", ".."):  # "/" and "x/..": no last component to keep
        return path.resolve()
    return path.parent.resolve() / path.name


def discover(paths: Iterable[Path], recursive: bool = False) -> Iterator[Entry]:
    walk = _Walk(recursive)
    seen_files: set[Path] = set()
    for root in paths:
        for entry in walk.root(absolute(Path(root))):
            if entry.path not in seen_files:  # the same file named twice (or reached twice) is one row
                seen_files.add(entry.path)
                yield entry


class _Walk:
    def __init__(self, recursive: bool) -> None:
        self.recursive = recursive
        self.seen_dirs: set[tuple[int, int]] = set()
        self.virtual = virtual_devices()

    def root(self, path: Path) -> Iterator[Entry]:
        try:
            info = path.stat()
        except FileNotFoundError:
            yield Entry(path, "broken symbolic link" if path.is_symlink() else "file not found")
            return
        except OSError as exc:
            yield Entry(path, _os_reason(exc, "cannot inspect"))
            return
        if stat.S_ISDIR(info.st_mode):
            if (info.st_dev, info.st_ino) not in self.seen_dirs:  # a folder named twice is walked once
                yield from self.folder(path, info, path.is_symlink())
        else:
            yield self.file(path, info, path.is_symlink())

    def folder(self, folder: Path, info: os.stat_result, is_link: bool, via: str | None = None) -> Iterator[Entry]:
        if info.st_dev in self.virtual:  # one row, under the name it was met by
            yield Entry(folder, f"virtual file system ({self.virtual[info.st_dev]}): not scanned")
            return
        if is_link:  # walked under its real name, so each file has one name however it is reached
            via = f"found through the symbolic link {readable(folder)}"
            folder = folder.resolve()
        self.seen_dirs.add((info.st_dev, info.st_ino))
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda d: d.name)
        except OSError as exc:
            yield Entry(folder, _os_reason(exc, "cannot list folder"))
            return
        for child in children:
            path = folder / child.name
            is_link = child.is_symlink()
            try:
                child_info = path.stat()
            except FileNotFoundError:
                yield Entry(path, "broken symbolic link" if is_link else "file not found")
                continue
            except OSError as exc:
                yield Entry(path, _os_reason(exc, "cannot inspect"))
                continue
            if not stat.S_ISDIR(child_info.st_mode):
                yield self.file(path, child_info, is_link, via)
            elif self.recursive:
                yield from self.subfolder(path, child_info, is_link, via)

    def subfolder(self, path: Path, info: os.stat_result, is_link: bool, via: str | None) -> Iterator[Entry]:
        if (info.st_dev, info.st_ino) in self.seen_dirs:  # its files are listed already
            if is_link:  # say why the link was not followed; a folder named twice needs no row
                target = os.path.realpath(path)
                yield Entry(path, f"symbolic link loop: points back to {readable(target)}, which contains it"
                            if path.is_relative_to(target) else
                            f"symbolic link to {readable(target)}, a folder already scanned: not followed again")
            return
        yield from self.folder(path, info, is_link, via)

    def file(self, path: Path, info: os.stat_result, is_link: bool, via: str | None = None) -> Entry:
        kind = self.virtual.get(info.st_dev)
        if kind:
            return Entry(path, f"on a virtual file system ({kind}): not scanned")
        if not stat.S_ISREG(info.st_mode):
            return Entry(path, "not a regular file (device, pipe or socket): skipped")
        note = f"symbolic link to {readable(os.path.realpath(path))}" if is_link else via
        return Entry(path, None, note)


def virtual_devices() -> dict[int, str]:
    """Device number (st_dev) → type of each mounted virtual file system. Linux lists its mounts in
    /proc/self/mountinfo ("… MAJOR:MINOR ROOT MOUNTPOINT … - TYPE SOURCE …"); elsewhere /proc, /sys and /dev
    count as virtual when they are mounts of their own."""
    found: dict[int, str] = {}
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as handle:
            lines = handle.read().splitlines()
    except OSError:
        lines = []
    for line in lines:
        before, _, after = line.partition(" - ")
        fields, kind = before.split(), (after.split() or [""])[0]
        if kind in VIRTUAL_FS_TYPES and len(fields) > 2 and hasattr(os, "makedev"):
            major, _, minor = fields[2].partition(":")
            if major.isdigit() and minor.isdigit():
                found[os.makedev(int(major), int(minor))] = kind
    if not found:
        try:
            root = os.stat("/").st_dev
        except OSError:
            return found
        for path, kind in (("/proc", "proc"), ("/sys", "sysfs"), ("/dev", "devfs")):
            try:
                device = os.stat(path).st_dev
            except OSError:
                continue
            if device != root:
                found[device] = kind
    return found


def _os_reason(exc: OSError, what: str) -> str:
    if isinstance(exc, PermissionError):
        return f"{what}: permission denied"
    if exc.errno == 40:  # ELOOP
        return "symbolic link loop"
    return f"{what}: {exc.strerror or exc}"
