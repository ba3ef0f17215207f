"""`livetoken` — the one entry point: serve, emulator, client, dev-jwt, openapi, check-config."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

from service.config import ConfigError, Duration, Settings, load_env, load_file_config, load_settings, model_warnings


def _cmd_serve(args: argparse.Namespace) -> int:
    from service import devmode
    from service.dependencies import DependencyError, check_dependencies
    from service.logging import configure_logging
    from service.server import run_server
    from service.tracing import tracing_config
    from service.upstream import SdkIncompatibleError, check_sdk

    try:
        check_dependencies()
        check_sdk()
    except (DependencyError, SdkIncompatibleError) as exc:
        print(f"livetoken: {exc}", file=sys.stderr)
        return 1
    config = args.config or os.environ.get("LIVETOKEN_CONFIG")
    child = None
    try:
        tracing = tracing_config(os.environ)  # OTEL_*: off unless configured
        if config:
            settings = load_settings(config)
        else:
            directory = devmode.state_dir()
            print(
                "livetoken: no configuration given: starting in dev mode (emulator upstream, "
                "in-memory rate limiter, dev issuer)",
                file=sys.stderr,
            )
            print("livetoken: starting the Live API emulator ...", file=sys.stderr)
            child, info = devmode.start_emulator_child(directory)
            settings = devmode.dev_settings(directory, info)
        if args.cors_origin:
            settings = settings.with_cors_origins(args.cors_origin)
        if args.demo_dir:
            settings = _with_demo(settings, args.demo_dir)
    except ConfigError as exc:
        return _config_error(exc)
    except RuntimeError as exc:
        print(f"livetoken: {exc}", file=sys.stderr)
        return 1
    try:
        configure_logging(settings.env.log_format, settings.env.log_level)
        host = args.host or settings.file.server.host
        port = args.port if args.port is not None else settings.file.server.port
        problem = _port_problem(host, port)
        if problem is not None:
            print(f"livetoken: cannot listen on {host}:{port}: {problem} (choose another with --port)", file=sys.stderr)
            return 1
        if settings.dev_mode:
            _print_dev_banner(host, port, settings)
        return run_server(settings, host, port, tracing)
    finally:
        if child is not None:
            child.terminate()
            child.wait(timeout=10)


def _with_demo(settings: Settings, demo_dir: str) -> Settings:
    if not settings.dev_mode:
        raise ConfigError("--demo-dir: the browser example is served in dev mode only (run without a config)")
    if not (Path(demo_dir) / "index.html").is_file():
        raise ConfigError(f"--demo-dir: no index.html in {demo_dir!r} (build it: make demo)")
    return dataclasses.replace(settings, demo_dir=str(Path(demo_dir).resolve()))


def _port_problem(host: str, port: int) -> str | None:
    """Why (host, port) cannot be bound right now, checked before printing how to call it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            return exc.strerror or str(exc)
    return None


def _print_dev_banner(host: str, port: int, settings: Settings) -> None:
    exe = shutil.which("livetoken") or sys.argv[0]
    if Path(exe).resolve().is_relative_to(Path.cwd()):
        exe = os.path.relpath(exe)
    state = os.environ.get("LIVETOKEN_STATE_DIR")
    prefix = f"LIVETOKEN_STATE_DIR={shlex.quote(state)} " if state else ""
    jwt_cmd = f"$({prefix}{exe} dev-jwt --sub alice)"
    url_host = f"[{host}]" if ":" in host else host
    service = f"http://{url_host}:{port}"
    print(
        "\n"
        f"livetoken dev mode is serving on {service}  (upstream: emulator at {settings.env.gemini_base_url})\n"
        "Issue a token:\n"
        f'  curl -sS -X POST {service}/v1/tokens -H "Authorization: Bearer {jwt_cmd}" '
        "-H 'Content-Type: application/json' -d '{\"profile\": \"voice\"}'\n"
        "Talk to the emulator with it (text chat):\n"
        f"  {prefix}{exe} client --service {service} --jwt \"{jwt_cmd}\" --profile text --text 'Hello there'\n"
        f"API docs: {service}/docs   Metrics: {service}/metrics\n"
        f"{_demo_line(service, settings)}",
        file=sys.stderr,
        flush=True,
    )


def _demo_line(service: str, settings: Settings) -> str:
    """Where to open the browser example, with a dev JWT in the URL fragment (which browsers never send)."""
    if settings.demo_dir is None:
        return ""
    from service import devmode

    jwt = devmode.mint_dev_jwt(devmode.state_dir(), "demo-user", ["live:tools"], 8 * 3600.0)
    return f"Browser example (signed in as demo-user for 8 h):\n  {service}/demo/#jwt={jwt}\n"


def _cmd_emulator(args: argparse.Namespace) -> int:
    from service.emulator.cli import run

    return run(args)


def _cmd_client(args: argparse.Namespace) -> int:
    from service.client.cli import run

    return run(args)


def _cmd_dev_jwt(args: argparse.Namespace) -> int:
    from service import devmode

    try:
        ttl = Duration.parse(args.ttl)
    except ValueError as exc:
        print(f"livetoken dev-jwt: --ttl: {exc}", file=sys.stderr)
        return 2
    if not args.sub.strip():
        print("livetoken dev-jwt: --sub must not be empty", file=sys.stderr)
        return 2
    print(devmode.mint_dev_jwt(devmode.state_dir(), args.sub, args.scope or [], float(ttl), args.tenant))
    return 0


def _cmd_openapi(_args: argparse.Namespace) -> int:
    from service.openapi_doc import render_openapi_yaml

    sys.stdout.write(render_openapi_yaml())
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    try:
        file = load_file_config(args.file)
        if not args.no_env:
            load_env(os.environ, file, require_api_key=False)
            from service.tracing import tracing_config

            tracing_config(os.environ)
    except ConfigError as exc:
        return _config_error(exc)
    for warning in model_warnings(file):
        print(f"livetoken: warning: {warning}", file=sys.stderr)
    print(f"{args.file}: OK ({len(file.issuers)} issuer(s), profiles: {', '.join(sorted(file.profiles))})")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    from service.catalogue import catalogue, today

    cat, day = catalogue(), today()
    rows = [("MODEL", "STATUS", "MODALITIES", "THINKING", "NOTES")]
    for entry in cat.models.values():
        status = entry.status_on(day)
        if entry.shutdown is not None:
            status += f" ({'since' if entry.shut_down_on(day) else 'until'} {entry.shutdown.isoformat()})"
        rows.append((entry.name, status, "+".join(entry.response_modalities), entry.thinking, entry.notes))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[4])
    if args.sources:
        for entry in cat.models.values():
            print(f"\n{entry.name}:")
            for url in entry.sources:
                print(f"  {url}")
    print(f"\nDefault: {cat.default_model}. Checked against Google's pages on {cat.checked.isoformat()}", end="")
    print("." if args.sources else " (--sources lists the pages).")
    return 0


def _config_error(exc: ConfigError) -> int:
    """Report a configuration error as `serve` and `check-config` both do: one line naming the key, exit 2."""
    message = " ".join(str(exc).splitlines())
    print(f"livetoken: configuration error: {message}", file=sys.stderr)
    return 2


def installed_version() -> str:
    """This installation's version (pyproject.toml's, as installed); 0.0.0 when run from a bare source tree."""
    try:
        return importlib.metadata.version("livetoken")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run without being installed
        return "0.0.0"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="livetoken", description=__doc__)
    parser.add_argument("--version", action="version", version=f"livetoken {installed_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the token service (dev mode when no config is given)")
    serve.add_argument("--config", help="TOML config file (default: $LIVETOKEN_CONFIG; none = dev mode)")
    serve.add_argument("--host", default=None, help="listen address (default: [server].host, 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="listen port (default: [server].port, 8080)")
    serve.add_argument(
        "--cors-origin",
        action="append",
        metavar="URL",
        help="a browser origin allowed to call the service, e.g. https://app.example (repeatable; adds to "
        "[server].cors_allow_origins and LIVETOKEN_CORS_ALLOW_ORIGINS; dev mode allows http://localhost:* itself)",
    )
    serve.add_argument(
        "--demo-dir", metavar="DIR", help="dev mode: serve the built browser example from DIR at /demo/ (make demo)"
    )
    serve.set_defaults(func=_cmd_serve)

    from service.client.cli import add_arguments as client_args
    from service.emulator.cli import add_arguments as emulator_args

    emulator = sub.add_parser("emulator", help="run the local Live API emulator (TLS)")
    emulator_args(emulator)
    emulator.set_defaults(func=_cmd_emulator)

    client = sub.add_parser("client", help="reference client: fetch a token, talk to the Live API")
    client_args(client)
    client.set_defaults(func=_cmd_client)

    dev_jwt = sub.add_parser("dev-jwt", help="print a caller JWT signed by the dev issuer")
    dev_jwt.add_argument("--sub", required=True, help="subject (the caller's user id)")
    dev_jwt.add_argument("--scope", action="append", help="a scope to grant (repeatable), e.g. live:tools")
    dev_jwt.add_argument("--tenant", default=None, help="tenant claim")
    dev_jwt.add_argument("--ttl", default="10m", help="lifetime, e.g. 10m, 1h (default 10m)")
    dev_jwt.set_defaults(func=_cmd_dev_jwt)

    openapi = sub.add_parser("openapi", help="print the OpenAPI document (YAML)")
    openapi.set_defaults(func=_cmd_openapi)

    from service.operator_cli import add_arguments as operator_args
    from service.operator_cli import cmd_block, cmd_blocks, cmd_unblock

    block = sub.add_parser("block", help="block a caller or a tenant on every replica (until it expires)")
    unblock = sub.add_parser("unblock", help="lift a block")
    blocks = sub.add_parser("blocks", help="list the blocks in force")
    operator_args(block, unblock, blocks)
    block.set_defaults(func=cmd_block)
    unblock.set_defaults(func=cmd_unblock)
    blocks.set_defaults(func=cmd_blocks)

    models = sub.add_parser("models", help="list Google's Live models and what each accepts (the model catalogue)")
    models.add_argument(
        "--sources", action="store_true", help="also list the Google pages each model's facts come from"
    )
    models.set_defaults(func=_cmd_models)

    check = sub.add_parser("check-config", help="validate a config file (and the secrets it names)")
    check.add_argument("file")
    check.add_argument("--no-env", action="store_true", help="check the file only, not the environment")
    check.set_defaults(func=_cmd_check_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
