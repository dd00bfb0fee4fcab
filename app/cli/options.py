"""What several commands share: the --device/--batch-size/--quiet options of those that score pictures, the
progress bar of `forensight calibrate` and `forensight ensemble create` (a job's progress(done, total)), the
output check of those that read a data folder, and how a metric is printed."""
from __future__ import annotations

import sys
from pathlib import Path

from app.errors import UsageError

DEVICE_HELP = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps"


def add_scoring_options(parser) -> None:
    """The options of every command that runs a detector over pictures (scan, calibrate, ensemble create)."""
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.add_argument("--batch-size", type=int, default=16, metavar="N", help="images per inference batch")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


class LazyBar:
    """A tqdm bar made on the first progress call, so a job refused before it scores prints no empty bar; use it
    as a context manager so the bar is closed however the job ends."""

    def __init__(self, unit: str, desc: str = "scoring") -> None:
        self.unit, self.desc, self.bar = unit, desc, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=self.unit, file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
                            desc=self.desc)
        self.bar.n = done
        self.bar.refresh()

    def __enter__(self) -> "LazyBar":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def output_outside_data(path: Path, kind: str, data: Path) -> Path:
    """An output of a command that reads a data folder (`data inspect --json`, `evaluate --out`), its folder
    made: a usage error when it would land among that data or over a file of another kind."""
    from app.output_guard import Evidence, OutputRefused, check_output

    try:
        return check_output(path, kind, Evidence(folders=[data]), create_folder=True)
    except OutputRefused as exc:
        raise UsageError(str(exc)) from None


def metric_text(value: float | None) -> str:
    """A metric as `train` and `evaluate` print it: three decimals, or n/a when it could not be measured."""
    return "n/a" if value is None else f"{value:.3f}"
