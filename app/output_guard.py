"""Where Forensight may write: never over evidence, never into a scanned folder, never over someone else's file.

Every output (the case database and its SQLite side files, a CSV, a PDF report and its `.sha256`) is checked
here before any work starts, so a mistyped path costs one line instead of an overwritten photo or a long scan
whose results cannot be saved. An existing file is only replaced when it is recognisably an earlier output of
the same kind (re-running a command must keep working).
"""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Iterable

from app.case.schema import SQLITE_MAGIC
from models.discovery import absolute
from models.paths import readable

CASE, CSV, PDF, SHA256, JSON = "case database", "CSV", "PDF report", "SHA-256 file", "JSON report"
CASE_SIDE_SUFFIXES = ("-wal", "-shm", "-journal")
_PDF_TAIL = 4 << 20  # the PDF's Info dictionary (its /Creator) is written near the end
_SHA256_LINE = re.compile(rb"^[0-9a-f]{64}  [^\n]+\n?$")


class OutputRefused(ValueError):
    """A path Forensight will not write to, with the reason and what to do (one line)."""


class Evidence:
    """The files being examined and the folders that hold them: nothing may be written there.

    Folders are compared by identity (device and inode) as well as by name, so an output cannot slip in
    through a symbolic link, a bind mount or a case-insensitive file system. `relative_files` are names a
    case of the first release stored relative to a folder it did not record: an output whose path ends with
    one of them, or with one of their folders, is refused wherever the command runs."""

    def __init__(self, files: Iterable[str | Path] = (), folders: Iterable[str | Path] = (),
                 relative_files: Iterable[str | Path] = ()) -> None:
        # one stat per file (and a realpath only for links): a scan passes every file it found
        files = [Path(f) if Path(f).is_absolute() else absolute(f) for f in files]
        folders = [absolute(f) for f in folders]
        self.files = set(files)
        self._file_ids = {_file_id(f) for f in files} - {None}
        self.folders = set(folders) | {f.parent for f in files}
        self.folders |= {_real(f) for f in folders} | {_real(f).parent for f in files if f.is_symlink()}
        self._folder_ids = {_file_id(f) for f in self.folders} - {None}
        self._relative = [Path(f).parts for f in relative_files]

    def holds(self, path: Path) -> bool:
        if path in self.files or _file_id(path) in self._file_ids:
            return True
        parts = _real(path).parts if self._relative else ()
        return any(parts[-len(rel):] == rel for rel in self._relative)

    def folder_of(self, path: Path) -> Path | None:
        """The scanned folder `path` would land in (its own folder or any folder above it), if any."""
        for folder in (path.parent, *path.parent.parents):
            if folder in self.folders or _file_id(folder) in self._folder_ids:
                return folder
        parts = _real(path.parent).parts
        for rel in self._relative:
            if len(rel) > 1 and parts[-(len(rel) - 1):] == rel[:-1]:
                return path.parent
        return None


def scan_evidence(paths: Iterable[Path], entries: Iterable = ()) -> Evidence:
    """What a scan of `paths` examines: the named files and folders, and every file found under them (a
    symbolic link's target included, so an output cannot land on it under another name)."""
    folders, files = _split_folders(paths)
    return Evidence(files=files + [e.path for e in entries if not e.error], folders=folders)


def case_evidence(case) -> Evidence:
    """Every file a case examined (under the exact name it was opened by) and what its scans were asked to
    examine (a scanned folder may hold no file directly, only sub-folders)."""
    folders, named_files = _split_folders(case.scanned_paths())
    stored = [Path(p) for p in case.file_paths()]
    return Evidence(files=[p for p in stored if p.is_absolute()] + named_files, folders=folders,
                    relative_files=[p for p in stored if not p.is_absolute()])


def _split_folders(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """(folders, everything else), with one stat per path."""
    folders: list[Path] = []
    others: list[Path] = []
    for path in map(Path, paths):
        (folders if path.is_dir() else others).append(path)
    return folders, others


def check_output(target: Path, kind: str, evidence: Evidence, *, create_folder: bool = False) -> Path:
    """The absolute path to write `kind` to, or OutputRefused. Side files (SQLite's, the report's .sha256)
    are checked with it."""
    path = absolute(target)
    for file, file_kind in [(path, kind), *side_files(path, kind)]:
        _check_one(file, file_kind, evidence)
    _check_folder(path, create_folder)  # only now: a missing folder among the evidence is never created
    return path


def side_files(path: Path, kind: str) -> list[tuple[Path, str]]:
    if kind == CASE:
        return [(path.with_name(path.name + suffix), CASE) for suffix in CASE_SIDE_SUFFIXES]
    if kind == PDF:
        return [(path.with_name(path.name + ".sha256"), SHA256)]
    return []


def _check_folder(path: Path, create: bool) -> None:
    folder = path.parent
    if create and not folder.exists():
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputRefused(f"cannot create the folder {readable(folder)}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise OutputRefused(f"cannot write {readable(path)}: the folder {readable(folder)} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputRefused(f"cannot write {readable(path)}: the folder {readable(folder)} is not writable")


def _check_one(path: Path, kind: str, evidence: Evidence) -> None:
    shown = readable(path)
    folder = evidence.folder_of(path)
    if evidence.holds(path) or (folder is not None and os.path.lexists(path)):
        raise OutputRefused(f"refusing to write the {kind} to {shown}: it is one of the files being examined, "
                            "and evidence is never overwritten. Choose another file name")
    if folder is not None:
        raise OutputRefused(f"refusing to write the {kind} into {readable(folder)}, a folder being examined: "
                            "evidence folders are never written to. Choose a location outside it")
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputRefused(f"cannot write {shown}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        raise OutputRefused(f"refusing to write the {kind} to {shown}: it exists and is not a regular file")
    if info.st_size and not _looks_like(path, kind):
        raise OutputRefused(f"refusing to overwrite {shown}: it exists and is not a Forensight {kind}. "
                            "Choose another file name, or move that file away first")


def _looks_like(path: Path, kind: str) -> bool:
    """Whether an existing, non-empty file is an earlier Forensight output of this kind."""
    try:
        with open(path, "rb") as handle:
            if kind == CASE:
                return _is_sqlite_file(path, handle)
            if kind == CSV:
                from app.case.csv_export import COLUMNS

                return handle.read(2048).lstrip(b"\xef\xbb\xbf").startswith(",".join(COLUMNS[:3]).encode())
            if kind == JSON:
                return handle.read(64).lstrip().startswith(b"{")
            if kind == SHA256:
                return _SHA256_LINE.match(handle.read(4096)) is not None
            if kind == PDF:
                if not handle.read(5).startswith(b"%PDF-"):
                    return False
                size = os.fstat(handle.fileno()).st_size
                handle.seek(max(0, size - _PDF_TAIL))
                return b"/Creator (Forensight " in handle.read()
    except OSError:
        return False
    return False


def _is_sqlite_file(path: Path, handle) -> bool:
    """A database, or one of SQLite's side files by its own header (never by its name alone: someone's
    notes called `x.sqlite-journal` would be deleted by SQLite)."""
    head = handle.read(16)
    if path.name.endswith("-wal"):
        return head[:4] in (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")
    if path.name.endswith("-journal"):
        return head[:8] == b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7"
    if path.name.endswith("-shm"):  # no magic of its own: it belongs to the database beside it
        main = path.with_name(path.name[:-len("-shm")])
        try:
            with open(main, "rb") as database:
                return database.read(16) == SQLITE_MAGIC
        except OSError:
            return False
    return head == SQLITE_MAGIC


def _real(path: Path) -> Path:
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError):
        return path


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino
