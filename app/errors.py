"""Errors the command line turns into one line and exit status 2."""


class UsageError(Exception):
    """A mistake in how the command was called, or input it cannot use: one line, exit status 2."""
