"""The `forensight` command. With no arguments it opens the desktop app; subcommands work headless."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

from app import __version__
from app.cli import calibrate, data, ensemble, evaluate, models, report, scan, train
from app.errors import UsageError
from app.logs import LEVELS, setup_logging


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub, whatever a library tries
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    log_file = setup_logging(args.log_level)
    if not getattr(args, "command", None):
        import app.ui  # here, not at the top: the subcommands never load Qt

        return app.ui.run_app([])
    previous = _terminate_as_interrupt()
    try:
        return args.run(args)
    except UsageError as exc:
        print(f"forensight: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C while loading a model or listing files: nothing half-written to explain
        print("\nforensight: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one sentence for the user, the traceback for the bug report
        logging.getLogger("app.cli.main").exception("unexpected error in `forensight %s`", args.command)
        where = f"; the details are in {log_file}" if log_file else ""
        print(f"forensight: unexpected error: {type(exc).__name__}: {str(exc)[:300]}{where}", file=sys.stderr)
        return 1
    finally:
        if previous is not _NOT_SET:
            signal.signal(signal.SIGTERM, previous)


_NOT_SET = object()


def _terminate_as_interrupt():
    """`kill` (SIGTERM) unwinds like Ctrl-C, so temporary files are removed and the case is closed cleanly."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (main() called from a test's worker): leave signals alone
        return _NOT_SET


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="forensight", description="Tell real photographs from AI-generated "
                                     "images, offline.")
    parser.add_argument("--version", action="version", version=f"forensight {__version__}")
    parser.add_argument("--log-level", choices=LEVELS, default="info", help="how much goes to the log file "
                        "(the user data folder's logs/forensight.log; tracebacks of unexpected errors always do)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    # one module per command; each adds its own parser (the order is the order of `forensight --help`)
    for command in (scan, models, data, train, evaluate, report, calibrate, ensemble):
        command.add_command(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
