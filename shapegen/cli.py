"""The ``shapegen`` command.

Every subcommand is one entry of :data:`shapegen.commands.COMMANDS`: positional arguments for
its inputs and outputs, and a typed dataclass config for everything else, set from
``--config FILE`` (a YAML preset) and repeatable ``--set key=value`` overrides. Problems the
user can fix print one line (``error: ...``) and exit with status 2. Ctrl-C prints one line
saying how to resume and exits with status 130; long-running commands resume when run again
with the same output folder (``--fresh`` starts over).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from shapegen import __version__
from shapegen.errors import ShapegenError


def _printable(message: str) -> str:
    """``message`` with the undecodable bytes of file names (kept as surrogates) shown as ``\\xff``,
    so printing it works on any stream, strict or not."""
    try:
        return message.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that stands for no byte
        return message.encode("utf-8", "backslashreplace").decode("utf-8")


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one ``error: ...`` line, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {_printable(' '.join(message.split()))}; see '{self.prog} --help'", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per command in ``COMMANDS``."""
    from shapegen.commands import COMMANDS

    parser = _Parser(
        prog="shapegen",
        description="Generate, reconstruct, convert and export 3D shapes (results open in Blender).",
    )
    parser.add_argument("--version", action="version", version=f"shapegen {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--progress", choices=["none", "json"],
                        help="json: one JSON progress line per event on stderr, e.g. {\"phase\": \"sampling\", \"done\": 3, \"total\": 20} "
                             "(default: $SHAPEGEN_PROGRESS, else none)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        if command.config is not None:
            p.add_argument("--config", metavar="FILE", help="YAML preset (a file, or a name under configs/)")
            p.add_argument(
                "--set",
                dest="overrides",
                action="append",
                default=[],
                metavar="KEY=VALUE",
                help="override one config value (repeatable), e.g. --set resolution=256",
            )
        p.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status.

    Run as a program (``argv`` None) it uses the machine's cores divided by the ``shapegen`` jobs
    running (:mod:`shapegen.threads`); called with ``argv`` it leaves torch's threads alone.
    """
    from shapegen.io import WRITE_ERRNOS, forget_created_folders, remove_created_folders, write_error
    from shapegen.progress import progress_mode

    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None:  # the shapegen program, not a call from Python: share the cores with other runs
        from shapegen.threads import apply_thread_policy

        apply_thread_policy()
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Lightning 2.6 still builds torch's deprecated LeafSpec in every fit; the warning is not the
    # user's to act on and would break the one-line error contract of a failing run.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning)
    forget_created_folders()
    try:
        try:
            command = args._command
            config = command.load_config(args) if command.config is not None else None
            with progress_mode(args.progress):
                command.run(args, config)
        except OSError as exc:
            # A full disk or a read-only file system met by a writer outside shapegen's own
            # (Lightning's checkpoints, a library's export): the user's to fix, so one line.
            if exc.errno not in WRITE_ERRNOS:
                raise
            raise write_error(exc) from exc
    except ShapegenError as exc:
        remove_created_folders()  # the empty folders this failed run made
        print(f"error: {_printable(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # One line: Ctrl-C is the user's choice, not a failure worth a traceback.
        print("interrupted; run the same command again to resume from the last checkpoint or the outputs already "
              "written (--fresh starts over)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
