"""Walking folders: stable order, recursion, and every odd entry reported instead of crashing the scan."""
import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from models.discovery import absolute, discover, virtual_devices


def names(entries, root):
    return [(str(e.path.relative_to(root)), e.error) for e in entries]


def test_order_recursion_and_odd_entries(tmp_path):
    tmp_path = tmp_path.resolve()
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


def test_one_folder_named_three_ways_or_twice_is_one_row_per_file(tmp_path, monkeypatch):
    base = tmp_path.resolve()
    (base / "small5").mkdir()
    (base / "elsewhere").mkdir()
    for i in range(5):
        (base / "small5" / f"{i}.jpg").write_bytes(b"x")
    monkeypatch.chdir(base / "elsewhere")
    entries = list(discover([Path("../small5"), base / "small5", Path("../elsewhere/../small5/"),
                             Path("../small5/3.jpg")], recursive=True))
    assert [(e.path, e.error, e.note) for e in entries] == [(base / "small5" / f"{i}.jpg", None, None)
                                                              for i in range(5)]  # absolute, no loop row
    assert absolute(Path("..")) == base and absolute(Path("/")) == Path("/")


def test_a_link_keeps_its_name_and_says_where_it_points(tmp_path):
    base = tmp_path.resolve()
    (base / "real").mkdir()
    (base / "real" / "photo.jpg").write_bytes(b"x")
    (base / "scan").mkdir()
    (base / "scan" / "alias.jpg").symlink_to("../real/photo.jpg")
    (base / "scan" / "folder").symlink_to(base / "real", target_is_directory=True)
    (base / "via").mkdir()
    (base / "via" / "real").symlink_to(base / "real", target_is_directory=True)
    found = [(e.path, e.error, e.note) for e in discover([base / "scan", base / "via"], recursive=True)]
    assert found == [
        (base / "scan" / "alias.jpg", None, f"symbolic link to {base / 'real' / 'photo.jpg'}"),
        # a linked folder is walked under its real name, once; its files say how they were reached
        (base / "real" / "photo.jpg", None, f"found through the symbolic link {base / 'scan' / 'folder'}"),
        (base / "via" / "real", f"symbolic link to {base / 'real'}, a folder already scanned: not followed again",
         None),
    ]


@pytest.mark.skipif(not Path("/proc/self/mountinfo").exists(), reason="Linux mount table needed")
def test_virtual_file_systems_are_one_row_not_thousands(tmp_path):
    assert "proc" in virtual_devices().values()
    for root in (Path("/proc"), Path("/proc/self")):  # /proc/*/root would lead back into the whole machine
        (entry,) = discover([root], recursive=True)
        assert entry.path == root and entry.error == "virtual file system (proc): not scanned"
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "proc").symlink_to("/proc", target_is_directory=True)
    found = [(e.path.name, e.error) for e in discover([tmp_path], recursive=True)]
    assert found == [("a.jpg", None), ("proc", "virtual file system (proc): not scanned")]
    (entry,) = discover([Path("/proc/cpuinfo")])
    assert entry.error == "on a virtual file system (proc): not scanned"
