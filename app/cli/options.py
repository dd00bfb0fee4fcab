"""What the commands that score pictures share: the --device/--batch-size/--quiet options, and the progress bar of
`forensight calibrate` and `forensight ensemble create` (a job's progress(done, total))."""
from __future__ import annotations

import sys


def add_scoring_options(parser) -> None:
    """The options of every command that runs a detector over pictures (scan, calibrate, ensemble create)."""
    parser.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps")
    parser.add_argument("--batch-size", type=int, default=16, metavar="N")
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
