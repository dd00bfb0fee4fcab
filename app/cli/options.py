"""What several commands share: the --device/--batch-size/--quiet options of those that score pictures, the
progress bar and error handling of `forensight calibrate` and `forensight ensemble create`, the
output check of those that read a data folder, and how a metric is printed."""
from __future__ import annotations

import sys
from pathlib import Path

from app.errors import UsageError, library_errors_as_usage

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


def run_reference_job(args, run, request, *, unit: str, failing: str, refusals: tuple[type[Exception], ...]) -> int:
    """`forensight calibrate` and `ensemble create`: a job that scores reference pictures into a new library
    model, with a progress bar unless --quiet; its refusals (and the device's, and the library's, prefixed with
    `failing`) become usage errors, and its summary is printed."""
    from models.device import DeviceError

    if args.batch_size < 1:
        raise UsageError("--batch-size must be at least 1")
    try:
        with LazyBar(unit) as bar, library_errors_as_usage(failing):
            outcome = run(request, progress=None if args.quiet else bar)
    except (*refusals, DeviceError) as exc:
        raise UsageError(str(exc)) from None
    for line in outcome.lines():
        print(line)
    return 0


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
