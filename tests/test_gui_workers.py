"""app/ui/workers.py: the one way the window runs work off the GUI thread, and the reasons it is not plain superqt."""
import threading
import warnings
from functools import partial

import pytest

import pytestqt  # noqa: F401  a dev dependency: missing, the GUI tests must fail, not skip
from PySide6.QtCore import QThread

from app.ui.workers import WorkerPool
from models.engine import CancelToken


@pytest.fixture
def pool(qtbot):
    pool = WorkerPool(2)
    yield pool
    pool.shutdown()


def test_results_errors_and_progress_arrive_on_the_gui_thread(qtbot, pool, caplog):
    gui = QThread.currentThread()
    seen = []
    pool.start(lambda report: [report(i, 3) for i in range(3)] and "made", progress=lambda done, total: seen.append(
        ("progress", done, total, QThread.currentThread() is gui)),
        done=lambda value: seen.append(("done", value, QThread.currentThread() is gui)))
    qtbot.waitUntil(lambda: not pool.busy())
    assert seen == [("progress", 0, 3, True), ("progress", 1, 3, True), ("progress", 2, 3, True), ("done", "made", True)]

    reasons = []
    pool.start(lambda: {}["no such key"], done=seen.append, failed=reasons.append)
    qtbot.waitUntil(lambda: not pool.busy())
    assert reasons == ["no such key"] and len(seen) == 4  # one sentence for the user
    assert "KeyError" in caplog.text  # the traceback is in the log


def test_a_generator_job_yields_as_it_goes_and_a_runtime_error_still_ends_it(qtbot, pool):
    # superqt 0.9.0 ends a generator that raised RuntimeError (torch: a full GPU) with no signal at all
    def job():
        yield 1
        yield 2
        raise RuntimeError("CUDA out of memory")

    yielded, reasons = [], []
    pool.start(job, yielded=yielded.append, failed=reasons.append)
    qtbot.waitUntil(lambda: not pool.busy(), timeout=5_000)
    assert yielded == [1, 2] and reasons == ["CUDA out of memory"]


def test_stop_winds_a_job_down_and_its_result_still_arrives(qtbot, pool):
    cancel = CancelToken()
    stopped = threading.Event()

    def job(cancel: CancelToken):
        count = 0
        while not cancel.cancelled:
            count += 1
            yield count
        stopped.set()
        return f"stopped after {count}"

    done = []
    worker = pool.start(partial(job, cancel), done=done.append, cancel=cancel)
    worker.stop()
    qtbot.waitUntil(lambda: not pool.busy(), timeout=5_000)
    assert stopped.is_set() and done[-1].startswith("stopped after")


def test_overlapping_workers_leave_warnings_alone(qtbot, pool):
    # superqt 0.9.0 swaps warnings.showwarning per worker: overlapping ones leave it on a finished worker
    before = warnings.showwarning, list(warnings.filters)
    first_in, second_in = threading.Event(), threading.Event()

    def first():
        first_in.set()
        second_in.wait(5)

    def second():
        first_in.wait(5)
        second_in.set()
        threading.Event().wait(0.2)

    pool.start(first)
    pool.start(second)
    qtbot.waitUntil(lambda: not pool.busy(), timeout=5_000)
    assert (warnings.showwarning, list(warnings.filters)) == before


def test_shutdown_drops_queued_work_and_detach_keeps_running_work_unseen(qtbot):
    pool = WorkerPool(1)
    release = threading.Event()
    ran, delivered = [], []
    pool.start(lambda: release.wait(5), done=delivered.append)
    for i in range(5):  # queued behind the first: never started
        pool.start(lambda i=i: ran.append(i), done=delivered.append)
    pool.shutdown(wait_ms=0)  # the owner went: what runs finishes unseen, what waits never starts
    release.set()
    qtbot.waitUntil(lambda: not pool.busy(), timeout=5_000)
    assert delivered == [] and ran == []
