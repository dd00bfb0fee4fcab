"""The `forensight` command as the tests run it: in-process through `main(argv)` (fast, the default), or as a
real process where the process itself is the point (signals, kill -9, a fresh interpreter, another folder)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_in_process(capsys, *args) -> tuple[int, str, str]:
    """Exit status, stdout and stderr of `forensight ARGS` run by this process."""
    from app.cli.main import main

    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def run_process(*args, cwd: Path = REPO, home: Path | None = None, timeout: int = 600,
                **kw) -> subprocess.CompletedProcess:
    """`python -m app ARGS` in a new process; `home` gives it its own user data folder and no shipped models.
    The timeout turns a regression that blocks (a FIFO read, a lock) into a failure."""
    env = os.environ | {"PYTHONPATH": str(REPO)}
    if home is not None:
        env |= {"FORENSIGHT_HOME": str(home), "FORENSIGHT_SHIPPED_MODELS": str(Path(home) / "none")}
    return subprocess.run([sys.executable, "-m", "app", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=timeout, **kw)
