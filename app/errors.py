"""Errors the command line turns into one line and exit status 2."""
import contextlib


class UsageError(Exception):
    """A mistake in how the command was called, or input it cannot use: one line, exit status 2."""


@contextlib.contextmanager
def library_errors_as_usage(prefix: str = ""):
    """Library and checkpoint errors become one readable line (KeyError's repr quotes are stripped)."""
    from models.card import CardError
    from models.checkpoints import CheckpointError
    from models.library import ModelNotFoundError
    from models.registry import UnknownArchitectureError

    try:
        yield
    except (CardError, CheckpointError, ModelNotFoundError, UnknownArchitectureError, OSError) as exc:
        raise UsageError(prefix + str(exc).strip("'\"")) from None
