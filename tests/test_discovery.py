"""Walking folders: stable order, recursion, and every odd entry reported instead of crashing the scan."""
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

from models.discovery import discover


def names(entries, root):
    return [(str(e.path.relative_to(root)), e.error) for e in entries]


def test_order_recursion_and_odd_entries(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "b" / "c.png").write_bytes(b"x")
    (tmp_path / "b" / "loop").symlink_to(tmp_path, target_is_directory=True)
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(tmp_path / "pipe")
    flat = names(discover([tmp_path]), tmp_path)
    assert flat == [("a.jpg", None), ("dangling.jpg", "broken symbolic link"),
                    ("pipe", "not a regular file (device, pipe or socket): skipped")]
    deep = names(discover([tmp_path], recursive=True), tmp_path)
    assert deep[:3] == [("a.jpg", None), ("b/c.png", None), ("b/loop", deep[2][1])]
    assert "loop" in deep[2][1]
    assert len(deep) == 5  # no file twice, the loop walked once


def _discover_as_nobody(root, queue):
    os.setgid(65534)
    os.setuid(65534)
    queue.put([(str(e.path), e.error) for e in discover([Path(root)], recursive=True)])


def test_unreadable_folder_becomes_a_row():
    # a world-traversable folder (pytest's tmp_path is private to root, which defeats the unprivileged look)
    tmp_path = Path(tempfile.mkdtemp(prefix="forensight-perm-"))
    tmp_path.chmod(0o755)
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "secret.jpg").write_bytes(b"x")
    (tmp_path / "open.jpg").write_bytes(b"x")
    os.chmod(tmp_path / "open.jpg", 0o644)
    locked.chmod(0)
    try:
        if os.geteuid() == 0:  # root reads everything: look as an unprivileged user instead
            context = multiprocessing.get_context("fork")
            queue = context.Queue()
            process = context.Process(target=_discover_as_nobody, args=(str(tmp_path), queue))
            process.start()
            found = queue.get(timeout=30)
            process.join()
        else:
            found = [(str(e.path), e.error) for e in discover([tmp_path], recursive=True)]
    finally:
        locked.chmod(0o755)
        shutil.rmtree(tmp_path)
    assert (str(locked), "cannot list folder: permission denied") in found
    assert (str(tmp_path / "open.jpg"), None) in found
