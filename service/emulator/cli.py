"""`livetoken emulator`: the local Live API emulator on one TLS port."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import socket
import sys
from pathlib import Path

import uvicorn

from service.catalogue import catalogue
from service.emulator.admin import parse_faults
from service.emulator.app import create_emulator_app
from service.emulator.certs import ensure_certificates
from service.emulator.store import EmulatorState

GOOGLE_KEEPALIVE_SECONDS = 610


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Emulator options."""
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9443, help="TLS port (default 9443; 0 = any free port)")
    parser.add_argument(
        "--state-dir",
        default=None,
        help="where emulator.json, the CA and the key live (default $LIVETOKEN_STATE_DIR or ./.livetoken)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        help="API key to accept (default $LIVETOKEN_EMULATOR_API_KEY, "
        "else one generated once and kept in the state dir)",
    )
    parser.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="HOST",
        help="extra host name for the generated certificate, e.g. the compose service name",
    )
    parser.add_argument("--cert", default=None, help="serve this certificate (PEM) instead of a generated one")
    parser.add_argument("--key", default=None, help="private key (PEM) for --cert")
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="reply audio pacing: 1 = real time, 10 = ten times faster, 0 = no pacing",
    )
    parser.add_argument(
        "--max-connection-seconds",
        type=float,
        default=600.0,
        help="a connection gets goAway and is closed after this long (default 600)",
    )
    default = catalogue().models[catalogue().default_model]  # Google's limits, from the model catalogue
    audio, video = default.audio_session_minutes * 60, default.video_session_minutes * 60
    parser.add_argument(
        "--audio-session-seconds",
        type=float,
        default=audio,
        help="an audio-only session without context window compression ends after this long, across "
        f"resumptions (default {audio:g}, Google's {default.audio_session_minutes:g} minutes)",
    )
    parser.add_argument(
        "--video-session-seconds",
        type=float,
        default=video,
        help="a session that has received a video frame ends after this long, unless it uses context window "
        f"compression (default {video:g}, Google's {default.video_session_minutes:g} minutes)",
    )
    parser.add_argument("--goaway-lead", type=float, default=10.0, help="seconds between goAway and the close")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="fault: added latency on auth_tokens")
    parser.add_argument(
        "--error-rate",
        action="append",
        default=[],
        metavar="CODE=RATE",
        help="fault: answer auth_tokens with CODE at RATE (0..1), e.g. 503=0.2 (repeatable)",
    )
    parser.add_argument("--drop-rate", type=float, default=0.0, help="fault: reset this share of auth_tokens calls")


def _api_key(args: argparse.Namespace, directory: Path) -> str:
    explicit = args.api_key or os.environ.get("LIVETOKEN_EMULATOR_API_KEY")
    if explicit:
        return str(explicit)
    path = directory / "emulator-api-key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("emulator-" + secrets.token_urlsafe(24))
    return path.read_text().strip()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit this: without it, small TLS records wait on delayed ACKs (~40 ms a request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    """Start the emulator and serve until SIGINT/SIGTERM."""
    from service.logging import configure_logging

    configure_logging(
        None if not os.environ.get("LIVETOKEN_LOG_FORMAT") else os.environ["LIVETOKEN_LOG_FORMAT"],  # type: ignore[arg-type]  # json|console, validated by the service's own config
        os.environ.get("LIVETOKEN_LOG_LEVEL", "info"),
    )
    directory = Path(args.state_dir or os.environ.get("LIVETOKEN_STATE_DIR") or ".livetoken").absolute()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_file, cert_file, key_file = ensure_certificates(directory, tuple(args.san))
    if args.cert:
        if not args.key:
            print("livetoken emulator: --cert needs --key", file=sys.stderr)
            return 2
        cert_file, key_file = Path(args.cert), Path(args.key)
    for flag in ("max_connection_seconds", "audio_session_seconds", "video_session_seconds"):
        if not getattr(args, flag) > 0:
            print(f"livetoken emulator: --{flag.replace('_', '-')} must be a positive number", file=sys.stderr)
            return 2
    try:
        faults = parse_faults(
            {
                "latency_ms": args.latency_ms,
                "drop_rate": args.drop_rate,
                "error_rates": dict(item.split("=", 1) for item in args.error_rate),
            }
        )
        sock = _bind(args.host, args.port)
    except (ValueError, OSError) as exc:
        print(f"livetoken emulator: {exc}", file=sys.stderr)
        return 2
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    state = EmulatorState(
        _api_key(args, directory),
        speed=args.speed,
        max_connection_seconds=args.max_connection_seconds,
        goaway_lead_seconds=args.goaway_lead,
        audio_session_seconds=args.audio_session_seconds,
        video_session_seconds=args.video_session_seconds,
    )
    state.faults = faults
    info = {"base_url": f"https://{host}:{port}", "api_key": state.api_key, "ca_file": str(ca_file), "pid": os.getpid()}
    info_file = directory / "emulator.json"
    tmp = directory / "emulator.json.tmp"
    tmp.write_text(json.dumps(info, indent=2))
    tmp.chmod(0o600)
    tmp.replace(info_file)
    # The key itself never goes to the terminal: consoles end up in CI logs and screen shares.
    print(
        f"livetoken emulator: listening on {info['base_url']}\n"
        f'  API key: in {info_file} ("api_key", readable by this user only)\n  CA file: {ca_file}',
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        create_emulator_app(state),
        ssl_certfile=str(cert_file),
        ssl_keyfile=str(key_file),
        log_config=None,
        access_log=False,
        ws="websockets-sansio",
        lifespan="on",
        timeout_graceful_shutdown=2,
        # Idle keep-alive connections stay open 610 s, as on Google's front ends (their documented default),
        # not uvicorn's 5 s: a client's warm pool must meet the same server-side idle time as in production.
        timeout_keep_alive=GOOGLE_KEEPALIVE_SECONDS,
        ws_max_size=16 * 1024 * 1024,
    )
    server = uvicorn.Server(config)
    signal.signal(signal.SIGTERM, lambda *_: None)  # uvicorn re-raises it after a graceful stop
    try:
        asyncio.run(server.serve(sockets=[sock]))
    finally:
        (directory / "emulator.json").unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m service.emulator`."""
    parser = argparse.ArgumentParser(prog="livetoken emulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))
