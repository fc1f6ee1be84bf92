"""The ``orbitstore`` command line: a thin layer over the public API.

Every command prints human-readable text, or JSON lines with ``--json``. A user mistake
(a bad argument, bad JSON, an unknown database, the wrong type, bad SQL) prints
``error: <message> [<code>]`` and exits with status 2; nothing shows a traceback unless
``ORBITSTORE_DEBUG=1`` is set.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from orbitstore.cli.parser import DEFAULT_HOME_ENV, CommandLineError
from orbitstore.cli.parser import build_parser as build_parser
from orbitstore.errors import OrbitstoreError

#: The exit status of a user mistake.
EXIT_USAGE = 2


def default_home() -> Path:
    env = os.environ.get(DEFAULT_HOME_ENV)
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "orbitstore"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CommandLineError as exc:
        sys.stderr.write(exc.usage)
        return _fail("usage", str(exc), json_lines="--json" in argv)
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    try:
        remote = _through_api(args)
        if remote is not None:
            return remote
        quick = _read_directly(args)
        if quick is not None:
            return quick
        import trio  # imported late: `--help` and usage errors stay quick

        return trio.run(_run, args)
    except OrbitstoreError as exc:
        if os.environ.get("ORBITSTORE_DEBUG"):
            raise
        if args.json:
            print(json.dumps({"error": exc.to_dict()}), file=sys.stderr)
            return EXIT_USAGE
        return _fail(exc.code, str(exc), json_lines=False)
    except OSError as exc:  # the node directory cannot be created or read, a closed pipe
        if os.environ.get("ORBITSTORE_DEBUG"):
            raise
        if isinstance(exc, BrokenPipeError):  # `orbitstore kv ls big | head`
            _silence_stdout()
            return 0
        return _fail("os", str(exc), json_lines=args.json)
    except KeyboardInterrupt:
        return 130


def _through_api(args: argparse.Namespace) -> int | None:
    """Run the command through the API of the node that owns the directory, if one runs
    and the command can (orbitstore.cli.remote); None: open the directory directly."""
    from orbitstore.cli.apifile import running_api

    api = running_api(args.home or default_home())
    if api is None:
        return None
    from orbitstore.cli import remote
    from orbitstore.cli.output import Output

    if remote.find(args.handler) is None:
        return None
    try:
        return remote.run(api, args, Output(json_lines=args.json))
    except remote.ApiUnreachable:
        return None


def _read_directly(args: argparse.Namespace) -> int | None:
    """Answer a read-only command from the directory's file without opening a node
    (orbitstore.cli.quick), if it can; None: open the node."""
    from orbitstore.cli import quick
    from orbitstore.cli.output import Output

    return quick.run(args.home or default_home(), args, Output(json_lines=args.json))


def _fail(code: str, message: str, *, json_lines: bool) -> int:
    if json_lines:
        error = {"code": code, "message": message}
        print(json.dumps({"error": error}), file=sys.stderr)
    else:
        print(f"error: {message} [{code}]", file=sys.stderr)
    return EXIT_USAGE


def _silence_stdout() -> None:
    # Python flushes stdout again at exit; point it at /dev/null so that flush cannot fail.
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout is not a real file (captured in tests)
        pass
    finally:
        os.close(devnull)


async def _run(args: argparse.Namespace) -> int:
    # Only the module of this command is imported: `--help` and `kv get` stay quick.
    from orbitstore.cli.output import Output

    module, _, name = args.handler.rpartition(".")
    commands = importlib.import_module(f"orbitstore.cli.{module or 'commands'}")
    handler = getattr(commands, "cmd_" + name)
    result: int = await handler(args, args.home or default_home(), Output(json_lines=args.json))
    return result
