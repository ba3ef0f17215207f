"""`livetoken client`: fetch a token from the service, then talk to the Live API with it.

Exit codes: 0 success; 2 bad usage or input; 3 token request refused; 4 Live connection refused or failed;
5 (--check) no complete turn came back; 6 (--check-single-use) a second connect with the token was accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
from google.genai import errors, types

from service.client.audio import AudioFormatError, read_wav_pcm16
from service.client.devices import DeviceUnavailableError, Speaker, record
from service.client.fetch import FetchError, fetch_token
from service.client.report import Progress, Summary, fingerprint
from service.client.session import GaveUp, LiveConversation, LiveOptions
from service.client.video import Camera, Frame, VideoInputError, image_frame


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Client options."""
    parser.add_argument("--service", required=True, help="token service base URL, e.g. http://127.0.0.1:8080")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--jwt", help="the caller's JWT")
    who.add_argument("--jwt-file", type=Path, help="file holding the caller's JWT")
    parser.add_argument("--profile", required=True, help="profile to request (see GET /v1/profiles)")
    parser.add_argument("--voice", default=None, help="voice override, if the profile allows it")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="send one text turn")
    what.add_argument("--input", type=Path, help="send a WAV file (any rate, mono/stereo, 8-32 bit)")
    what.add_argument("--mic", action="store_true", help="record from the microphone (needs livetoken[audio])")
    parser.add_argument("--mic-seconds", type=float, default=5.0, help="how long to record with --mic (default 5)")
    video = parser.add_mutually_exclusive_group()
    video.add_argument(
        "--image",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="send a JPEG or PNG as a video frame before the turn (repeatable)",
    )
    video.add_argument(
        "--camera",
        type=int,
        nargs="?",
        const=0,
        default=None,
        metavar="DEVICE",
        help="send camera frames (one before the turn, then one per second of audio; default device 0; "
        "needs livetoken[camera])",
    )
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument(
        "--realtime", dest="realtime", action="store_true", default=True, help="stream audio in real time (default)"
    )
    pace.add_argument("--fast", dest="realtime", action="store_false", help="send audio as fast as allowed")
    parser.add_argument("--output", type=Path, help="save the reply audio as a 24 kHz mono WAV")
    parser.add_argument("--speaker", action="store_true", help="play the reply (needs livetoken[audio])")
    parser.add_argument(
        "--ca-file",
        default=None,
        help="CA to trust for the Live endpoint (default: "
        "$LIVETOKEN_GEMINI_CA_FILE, the dev emulator's, or the system store)",
    )
    parser.add_argument("--check", action="store_true", help="exit non-zero unless a complete turn came back")
    parser.add_argument(
        "--check-single-use",
        action="store_true",
        help="afterwards, verify a second session with the same token is refused",
    )
    parser.add_argument("--json", action="store_true", help="print a machine-readable summary on stdout")
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds (default 60)")


def _ca_file(explicit: str | None, base_url: str) -> str | None:
    if explicit:
        return explicit
    if env := os.environ.get("LIVETOKEN_GEMINI_CA_FILE"):
        return env
    info_file = Path(os.environ.get("LIVETOKEN_STATE_DIR") or ".livetoken") / "emulator.json"
    try:
        info = json.loads(info_file.read_text())
    except (OSError, ValueError):
        return None
    # Trust the dev emulator's CA only for the emulator itself.
    return str(info["ca_file"]) if info.get("base_url", "").rstrip("/") == base_url.rstrip("/") else None


def _fail(summary: Summary, args: argparse.Namespace, code: int, message: str) -> int:
    summary.error = message
    print(f"livetoken client: {message}", file=sys.stderr)
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    return code


def _load_input(args: argparse.Namespace, progress: Progress) -> tuple[str | None, bytes | None]:
    if args.text is not None:
        return args.text, None
    if args.mic:
        progress.say(f"recording {args.mic_seconds:g}s from the microphone ...")
        return None, record(args.mic_seconds)
    pcm = read_wav_pcm16(args.input)
    progress.say(f"loaded {args.input} ({len(pcm) / 32000:.2f}s at 16 kHz mono)")
    return None, pcm


def _modality(config: dict[str, Any]) -> str:
    # connect.config is the Live API's camelCase JSON; older services served snake_case.
    modalities = config.get("responseModalities") or config.get("response_modalities") or ["AUDIO"]
    return str(modalities[0])


def run(args: argparse.Namespace) -> int:
    """Run the client; see the module docstring for exit codes."""
    # Ephemeral tokens are documented as v1alpha/experimental; saying so on every connect is noise here.
    warnings.filterwarnings("ignore", category=errors.ExperimentalWarning)
    summary = Summary(profile=args.profile)
    progress = Progress(quiet=args.json)
    with contextlib.ExitStack() as devices:
        try:
            jwt = args.jwt if args.jwt is not None else args.jwt_file.read_text().strip()
            images: list[Frame] = [image_frame(path) for path in args.image]
            camera = devices.enter_context(contextlib.closing(Camera(args.camera))) if args.camera is not None else None
            text, pcm = _load_input(args, progress)
            speaker = devices.enter_context(contextlib.closing(Speaker())) if args.speaker else None
        except (OSError, AudioFormatError, DeviceUnavailableError, VideoInputError) as exc:
            return _fail(summary, args, 2, str(exc))
        inputs = _Inputs(text, pcm, images, camera, speaker)
        return _converse(args, summary, progress, jwt, inputs)


@dataclass(frozen=True)
class _Inputs:
    """What to say and show, and the devices opened for it (closed when run() returns)."""

    text: str | None
    pcm: bytes | None
    images: list[Frame]
    camera: Camera | None
    speaker: Speaker | None


def _converse(args: argparse.Namespace, summary: Summary, progress: Progress, jwt: str, inputs: _Inputs) -> int:  # noqa: PLR0911 - one exit code per outcome, as documented
    def waiting(why: str, seconds: float) -> None:
        progress.say(f"{why}; trying again in {seconds:g}s")

    def renew() -> str:
        """A fresh token for the same profile, when the session's token can no longer go on."""
        fresh: dict[str, Any] = fetch_token(args.service, jwt, args.profile, args.voice, on_wait=waiting)
        return str(fresh["token"])

    try:
        progress.say(f"requesting a token for profile {args.profile!r} from {args.service}")
        answer: dict[str, Any] = fetch_token(args.service, jwt, args.profile, args.voice, on_wait=waiting)
    except FetchError as exc:
        return _fail(summary, args, 3, str(exc))
    connect = answer["connect"]
    summary.token_fingerprint = fingerprint(answer["token"])
    summary.model = answer["model"]
    summary.modality = _modality(connect["config"])
    summary.presentation = str(answer.get("presentation") or "voice")
    progress.say(
        f"got token {summary.token_fingerprint} for {summary.model} ({summary.modality}"
        f"{', shown as its transcript' if summary.presentation == 'transcript' else ''}), "
        f"{answer['uses']} use(s), expires {answer['expire_time']}"
    )
    try:
        # The SDK validates the config inside connect(); checking first gives a clear message instead.
        types.LiveConnectConfig.model_validate(connect["config"])
    except pydantic.ValidationError as exc:
        where = ".".join(map(str, exc.errors()[0]["loc"]))
        return _fail(summary, args, 4, f"connect.config from the service is not a config this SDK accepts (at {where})")
    opts = LiveOptions(
        token=answer["token"],
        base_url=connect["base_url"],
        api_version=connect.get("api_version") or answer.get("api_version") or "v1alpha",
        ca_file=_ca_file(args.ca_file, connect["base_url"]),
        model=connect["model"],
        config=connect["config"],
        presentation=summary.presentation,
        text=inputs.text,
        pcm=inputs.pcm,
        images=inputs.images,
        camera=inputs.camera,
        realtime=args.realtime,
        output=args.output,
        speaker=inputs.speaker,
        check_single_use=args.check_single_use,
        renew=renew,
    )
    try:
        asyncio.run(asyncio.wait_for(LiveConversation(opts, summary, progress).run(), timeout=args.timeout))
    except errors.APIError as exc:
        return _fail(summary, args, 4, f"live session closed by server: {exc}")
    except VideoInputError as exc:
        return _fail(summary, args, 2, str(exc))
    except FetchError as exc:  # a fresh token was needed and the service did not give one
        return _fail(summary, args, 3, f"could not get a fresh token: {exc}")
    except GaveUp as exc:
        return _fail(summary, args, 4, f"live session ended: {exc}")
    except (TimeoutError, OSError, RuntimeError) as exc:
        return _fail(summary, args, 4, f"live session failed: {type(exc).__name__}: {exc}")
    if args.json:
        print(json.dumps(summary.as_dict(), indent=2))
    as_text = summary.modality == "TEXT" or summary.presentation == "transcript"
    complete = summary.turn_complete and (bool(summary.text_received) if as_text else summary.audio_bytes_received > 0)
    if args.check and not complete:
        what = "text" if as_text else "audio"
        print(f"livetoken client: check failed: no complete turn with {what} came back", file=sys.stderr)
        return 5
    if args.check_single_use and summary.second_connect_refused is not True:
        print("livetoken client: check failed: a second session with the same token was accepted", file=sys.stderr)
        return 6
    return 0
