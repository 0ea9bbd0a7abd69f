"""The ``replaywire`` command (also ``python -m replaywire``).

::

    replaywire serve [--port 8080 --batch-size 200 ...]   run a server
    replaywire config [same flags]                        print the effective configuration

The flags of both commands are generated from :func:`replaywire.config.knobs`,
so a knob declared once in :class:`~replaywire.config.Config` is a field, an
environment variable and a flag at the same time. Every flag defaults to
None, which leaves the value to the environment and then the built-in
default (``Config.from_env`` applies env, then the flags that were given).

Nothing heavy is imported at module level: ``--help`` works without trio, the
server or the compiled extension.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from replaywire import __version__
from replaywire.config import Config, ConfigError, knobs, parse_value

__all__ = ["build_parser", "main"]

_METAVARS = {bool: None, int: "N", float: "SECONDS", str: "TEXT"}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _parser_for(f: dataclasses.Field[Any]) -> Callable[[str], Any]:
    """Parse a flag exactly as the environment variable would be parsed."""

    def parse(raw: str) -> Any:
        try:
            return parse_value(f, raw)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).split(": ", 1)[-1]) from exc

    return parse


def add_knob_flags(parser: argparse.ArgumentParser) -> None:
    """One ``--flag`` per knob, typed from its default, documented from its
    field metadata. Defaults stay None so the environment is not overridden
    by a flag that was not given."""
    group = parser.add_argument_group(
        "configuration",
        "Each flag overrides the environment variable named after it; "
        "without either, the default applies.",
    )
    for f in knobs():
        kind = type(f.default)
        env = f.name.upper()
        shown = f.default if f.default != "" else '""'
        # argparse %-formats help strings; knob help text is plain prose.
        text = str(f.metadata.get("help", "")).replace("%", "%%")
        help_text = f"{text} [env {env}, default {shown}]"
        if kind is bool:
            group.add_argument(
                _flag(f.name),
                dest=f.name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
        else:
            group.add_argument(
                _flag(f.name),
                dest=f.name,
                type=_parser_for(f),
                default=None,
                metavar=_METAVARS.get(kind, "VALUE"),
                help=help_text,
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="replaywire",
        description="Session-replay ingest server: rrweb trackers in, live viewers out, "
        "batched storage.",
    )
    parser.add_argument("--version", action="version", version=f"replaywire {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="run the server until SIGINT or SIGTERM",
        description="Run the server (HTTP and WebSocket on one port) until SIGINT or "
        "SIGTERM, then shut down gracefully.",
    )
    add_knob_flags(serve)
    serve.set_defaults(handler=_serve)

    config = commands.add_parser(
        "config",
        help="print the effective configuration as JSON",
        description="Print the configuration that `serve` would run with (defaults, then "
        "environment, then flags) as JSON. Passwords in URLs are masked.",
    )
    add_knob_flags(config)
    config.set_defaults(handler=_print_config)
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Defaults, then the environment, then the flags that were given."""
    overrides = {f.name: getattr(args, f.name, None) for f in knobs()}
    return Config.from_env(**overrides)


def _serve(config: Config) -> int:
    from replaywire.observability.logging import configure_logging

    configure_logging(config)
    # Imported here, not at the top: it pulls in trio and the extension.
    from replaywire.app import serve

    try:
        return serve(config)
    except KeyboardInterrupt:  # a second Ctrl-C while shutting down
        return 130


def _print_config(config: Config) -> int:
    values = {
        name: _mask_password(value) if name.endswith("_url") else value
        for name, value in dataclasses.asdict(config).items()
    }
    json.dump(values, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _mask_password(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``replaywire`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[Config], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        # ConfigError (a ValueError) for an unparsable environment variable
        # or, from configure_logging, an unknown log level or format.
        return handler(config_from_args(args))
    except ConfigError as exc:
        parser.error(str(exc))
