"""The `forensight` command as the tests run it: in-process through `main(argv)` (fast, the default), or as a
real process where the process itself is the point (signals, kill -9, a fresh interpreter, a block that only a
timeout can end). Every test that still starts a process says why in a comment beside the call."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Run:
    """What a user sees of one command: its exit status and what it printed (as subprocess.CompletedProcess)."""
    args: list[str]
    returncode: int
    stdout: str
    stderr: str


def _main(argv: list[str]) -> int:
    from app.cli.main import main

    try:
        return main(argv)
    except SystemExit as exc:  # argparse (usage errors, --help, --version) exits as the real command does
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)


def run_in_process(capsys, *args) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `forensight ARGS` run by this process."""
    code = _main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_cli(*args, cwd: Path | None = None, home: Path | None = None) -> Run:
    """`forensight ARGS` run by this process, with run_process's signature and result: `cwd` is the working
    folder for the command, `home` its own user data folder and no shipped models; both are restored after."""
    argv = [str(a) for a in args]
    saved_env = {k: os.environ.get(k) for k in ("FORENSIGHT_HOME", "FORENSIGHT_SHIPPED_MODELS")}
    saved_cwd = os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    try:
        if home is not None:
            os.environ["FORENSIGHT_HOME"] = str(home)
            os.environ["FORENSIGHT_SHIPPED_MODELS"] = str(Path(home) / "none")
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = _main(argv)
    finally:
        os.chdir(saved_cwd)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    return Run(argv, code, out.getvalue(), err.getvalue())


def run_process(*args, cwd: Path = REPO, home: Path | None = None, timeout: int = 600,
                **kw) -> subprocess.CompletedProcess:
    """`python -m app ARGS` in a new process; `home` gives it its own user data folder and no shipped models.
    The timeout turns a regression that blocks (a FIFO read, a lock) into a failure."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    if home is not None:
        env |= {"FORENSIGHT_HOME": str(home), "FORENSIGHT_SHIPPED_MODELS": str(Path(home) / "none")}
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout, **kw)


def run_python(code: str, *args, cwd: Path = REPO, timeout: int = 300, **kw) -> subprocess.CompletedProcess:
    """`python -c CODE ARGS` in a fresh interpreter (for what only a new process shows: modules not loaded,
    memory limits, a crash that must not take the test run with it)."""
    env = kw.pop("env", None) or os.environ | {"PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout, **kw)


def scan_and_report(model_id: str, pictures: list[Path], work: Path):
    """What an examiner does with a freshly imported detector: copy the pictures into a folder, scan it into a
    case on the CPU and build the PDF report. Returns the report's summary; the case is `work/case.sqlite`."""
    from app.case.store import Case
    from app.report import build_report
    from app.services.scanning import list_entries, run_scan
    from models.engine import ScanEngine
    from models.library import ModelLibrary

    folder = work / "photos"
    folder.mkdir()
    for picture in pictures:
        (folder / picture.name).write_bytes(picture.read_bytes())
    with Case(work / "case.sqlite") as case:
        run_scan(case, ScanEngine(ModelLibrary().load(model_id), device="cpu", workers=1),
                 list_entries([folder], False))
    return build_report(work / "case.sqlite", work / "report.pdf", device="cpu")
