"""The progress bar of `forensight calibrate` and `forensight ensemble create`: a job's progress(done, total)."""
from __future__ import annotations

import sys


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
