"""The ``replaywire`` command (also ``python -m replaywire``).

::

    replaywire serve [--config file.toml] [--port 8080 --batch-size 200 ...]   run a server
    replaywire config [same flags] [--format json|toml|env]   print the effective configuration
    replaywire token [same flags] --tenant T [--scope read|admin] [--ttl S] [--private-key K]
    replaywire token --opaque | --keypair

The flags of both commands are generated from :func:`replaywire.config.knobs`,
so a knob declared once in :class:`~replaywire.config.Config` is a field, an
environment variable, a key of the ``--config`` TOML file and a flag at the
same time. Every flag defaults to None, which leaves the value to the
environment, then the file, then the built-in default (``Config.from_env``
applies the file, then env, then the flags that were given).

Nothing heavy is imported at module level: ``--help`` works without trio, the
server or the compiled extension.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from replaywire import __version__
from replaywire.benchcmd import run_bench
from replaywire.config import Config, ConfigError, knobs, parse_value

__all__ = ["build_parser", "main"]

# By the default's type, unless the knob names its own (``metavar=``): most
# float knobs are durations, VIEWER_FANOUT_BUDGET is a share of the loop.
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
        "Each flag overrides the environment variable named after it, which overrides "
        "the --config file; without any, the default applies.",
    )
    group.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        default=None,
        help="TOML file of settings, keys named like the fields (port = 8080, "
        'database_url = "postgresql://..."); environment and flags override it',
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
                metavar=f.metadata.get("metavar") or _METAVARS.get(kind, "VALUE"),
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
        "the --config file, then environment, then flags). Secrets (passwords in URLs) "
        "are masked.",
    )
    add_knob_flags(config)
    config.add_argument(
        "--format",
        dest="output_format",
        choices=("json", "toml", "env"),
        default="json",
        help="json (default), toml (fit for --config) or env (NAME=value lines)",
    )
    config.set_defaults(handler=_print_config)

    token = commands.add_parser(
        "token",
        help="make a viewer/API credential",
        description="Print a JWT signed with JWT_SECRET (from the same settings as serve);"
        " with --private-key an EdDSA JWT signed by a tenant's own Ed25519 key;"
        " with --keypair a fresh Ed25519 key pair (the public key goes in"
        " tenants.NAME.jwt_public_keys); with --opaque a random opaque token and the"
        " sha256 to put in tenants.NAME.api_token_hashes (or admin_token_hashes).",
    )
    add_knob_flags(token)
    token.add_argument("--tenant", help="the tenant the JWT is for")
    token.add_argument("--scope", default="read", help="read (default) or admin")
    token.add_argument("--ttl", type=float, default=3600.0, help="JWT lifetime in seconds")
    token.add_argument("--opaque", action="store_true", help="an opaque token and its hash")
    token.add_argument(
        "--private-key", type=Path, help="sign with this Ed25519 private key (PEM): EdDSA"
    )
    token.add_argument(
        "--keypair", action="store_true", help="a fresh Ed25519 private and public key (PEM)"
    )
    token.set_defaults(handler=_token)
    train = commands.add_parser(
        "train-dictionary",
        help="train the zstd dictionary of codec=zstd-dict viewers on stored sessions",
        description="Read the newest stored sessions (DATABASE_URL, from the same settings"
        " as serve), cut their events into viewer-sized deltas, train a zstd dictionary on"
        " them and write it to --out; then give it to the server as VIEWER_DICTIONARY."
        " Every fifth session is held out and the ratio with and without the dictionary"
        " on its deltas is printed. The dictionary holds fragments of what it was trained"
        " on, and every reader of the server may fetch it: train it on one tenant's"
        " sessions (--tenant) that every reader may see.",
    )
    add_knob_flags(train)
    train.add_argument("--out", type=Path, required=True, help="the dictionary file to write")
    train.add_argument("--sessions", type=int, default=200, help="newest N sessions (200)")
    train.add_argument("--tenant", help="only this tenant's sessions")
    train.add_argument("--size", type=int, default=16 * 1024, help="bytes at most (16384)")
    train.add_argument(
        "--events-per-session", type=int, default=2000, help="events read per session (2000)"
    )
    train.set_defaults(handler=_train_dictionary)
    commands.add_parser(
        "bench",
        help="run the benchmark suite (python -m benches) from a source checkout",
        add_help=False,
    )
    return parser


def config_from_args(args: argparse.Namespace) -> Config:
    """Defaults, then the ``--config`` file, then the environment, then the
    flags that were given."""
    overrides = {f.name: getattr(args, f.name, None) for f in knobs()}
    return Config.from_env(file=getattr(args, "config_file", None), **overrides)


def _serve(config: Config) -> int:
    from replaywire.observability.crashes import install_crash_hooks
    from replaywire.observability.logging import configure_logging, shutdown_logging

    configure_logging(config)
    install_crash_hooks()
    try:
        if config.workers > 1:
            from replaywire.workers import supervise

            return supervise(config)
        # Imported here, not at the top: it pulls in trio and the extension.
        from replaywire.app import serve

        return serve(config)
    except KeyboardInterrupt:  # Ctrl-C before the server handles signals itself
        return 130
    finally:
        # Whatever the file writer thread still holds reaches the disk.
        shutdown_logging()


def _print_config(config: Config, output_format: str = "json") -> int:
    values = config.redacted()
    tenants = values.pop("tenants")
    if output_format == "json":
        json.dump({**values, "tenants": tenants}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    elif output_format == "toml":
        # Scalars and lists of strings: JSON's spellings are TOML's too.
        for name, value in values.items():
            sys.stdout.write(f"{name} = {json.dumps(value)}\n")
        for tenant, table in tenants.items():
            sys.stdout.write(f"\n[tenants.{tenant}]\n")
            for name, value in table.items():
                sys.stdout.write(f"{name} = {json.dumps(value)}\n")
    else:
        for name, value in values.items():
            shown = str(value).lower() if isinstance(value, bool) else str(value)
            sys.stdout.write(f"{name.upper()}={shown}\n")
        if tenants:
            sys.stdout.write(f"TENANTS={json.dumps(tenants, separators=(',', ':'))}\n")
    return 0


def _token(config: Config, args: argparse.Namespace) -> int:
    from replaywire.auth import tokens

    if args.opaque:
        token, digest = tokens.new_opaque_token()
        sys.stdout.write(f"token  {token}\nsha256 {digest}\n")
        return 0
    if args.keypair:
        private, public = tokens.new_ed25519_keypair()
        sys.stdout.write(private + public)
        return 0
    if args.tenant not in {t.name for t in config.tenants}:
        raise ConfigError("tenants", f"--tenant {args.tenant!r}: not a configured tenant")
    if args.private_key is not None:
        try:
            pem = args.private_key.read_text()
            token = tokens.issue_eddsa_jwt(pem, args.tenant, args.scope, args.ttl)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError("tenants", f"--private-key {args.private_key}: {exc}") from None
        sys.stdout.write(token + "\n")
        return 0
    if not config.jwt_secret:
        raise ConfigError("jwt_secret", "JWT_SECRET is not set (or use --private-key, --opaque)")
    sys.stdout.write(tokens.issue_jwt(config.jwt_secret, args.tenant, args.scope, args.ttl) + "\n")
    return 0


def _train_dictionary(config: Config, args: argparse.Namespace) -> int:
    from replaywire.auth.tenants import SEPARATOR
    from replaywire.protocol import dictionary
    from replaywire.storage import open_storage

    storage = open_storage(config.database_url, pool_size=1)
    storage.open()
    try:
        training = dictionary.train_from_storage(
            storage,
            size=args.size,
            sessions=args.sessions,
            prefix=f"{args.tenant}{SEPARATOR}" if args.tenant else "",
            events_per_session=args.events_per_session,
            level=config.viewer_zstd_level,
        )
    except ValueError as exc:
        sys.stderr.write(f"replaywire train-dictionary: {exc}\n")
        return 1
    finally:
        storage.close()
    args.out.write_bytes(training.dictionary.data)
    t = training
    trained_on = t.sessions - t.held_out_sessions
    measured_on = (
        f"{t.held_out_deltas:,} deltas of {t.held_out_sessions} held-out sessions"
        if t.held_out_sessions
        else f"the {t.held_out_deltas:,} training deltas (under 5 sessions: none held out)"
    )
    sys.stdout.write(
        f"wrote {args.out}: dictionary id {t.dictionary.id}, {len(t.dictionary.data):,} bytes,"
        f" trained on {t.samples:,} deltas ({t.sample_bytes:,} bytes) of {trained_on} sessions\n"
        f"on {measured_on}: zstd {t.ratio_plain:.2f}x,"
        f" with the dictionary {t.ratio_dictionary:.2f}x\n"
        f"serve it with VIEWER_DICTIONARY={args.out}\n"
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``replaywire`` console script; returns the exit code.

    A reader that leaves early (``replaywire config --format env | head``)
    ends the command quietly with 141, as SIGPIPE ends coreutils, instead of
    a BrokenPipeError traceback. stdout is flushed here, inside the ``try``,
    so the error cannot surface later, at interpreter exit."""
    try:
        code = _run(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # Python's recipe (docs of the signal module, "Note on SIGPIPE"):
        # point stdout at devnull so the flush at exit has nowhere to fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    return code


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    rest = list(sys.argv[1:] if argv is None else argv)
    if rest[:1] == ["bench"]:  # every other argument is the suite's
        return run_bench(rest[1:])
    args = parser.parse_args(argv)
    handler: Callable[[Config], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        # ConfigError for an unparsable or out-of-range setting, from the
        # file, the environment or a flag: exit 2 with the setting named.
        config = config_from_args(args)
        if handler is _print_config:
            return _print_config(config, args.output_format)
        if args.command == "token":
            return _token(config, args)
        if args.command == "train-dictionary":
            return _train_dictionary(config, args)
        return handler(config)
    except ConfigError as exc:
        parser.error(f"invalid configuration: {exc}")
