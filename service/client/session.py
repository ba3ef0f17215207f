"""The Live conversation: send the input, play or save the reply, answer tools, resume on goAway or a drop.

Only the SDK's public surface is used, as a frontend team would: `genai.Client(api_key=token, http_options=…)` and
`client.aio.live.connect(model=connect.model, config=connect.config)`, the served config passed as it came.

Interruption: reply audio is kept per turn and only committed (to --output) when the turn completes; when the
server says `interrupted`, the unfinished turn's audio is dropped and speaker playback stops, which is what a
listener would hear.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from google import genai
from google.genai import errors, types

from service.client.audio import INPUT_RATE, OUTPUT_RATE, chunks, seconds_of, write_wav
from service.client.devices import Speaker
from service.client.report import Progress, Summary, fingerprint
from service.client.tools import run_tool
from service.client.video import Camera, Frame

RESUMABLE_CLOSE_CODES = {1000, 1001, 1006, 1011}
# Close reasons (1008) that mean this token can no longer open or resume the session: a fresh token can.
TOKEN_SPENT = ("expired", "new session window", "no uses left", "invalid session resumption handle")
MAX_IDLE_CONNECTIONS = 3  # connections in a row that made no progress before giving up
MAX_ASKS = 3  # times one turn is asked when its reply keeps being cut off with its connection
MAX_FRESH_TOKENS = 3  # fresh tokens in a row without progress


def close_reason(exc: errors.APIError) -> str:
    """The close frame's reason (the SDK keeps a WebSocket close's reason string as the error's details)."""
    details = exc.details
    return (details if isinstance(details, str) else str(exc.message or "")).strip()


class GaveUp(RuntimeError):
    """The conversation could not go on: the message says why."""


@dataclass
class LiveOptions:
    """Everything one conversation needs."""

    token: str
    base_url: str
    api_version: str
    ca_file: str | None
    model: str
    config: dict[str, Any]  # connect.config as served: the Live API's camelCase JSON (or the older snake_case)
    presentation: str = "voice"  # "transcript": show the output transcription as the reply, play no audio
    text: str | None = None
    pcm: bytes | None = None
    images: list[Frame] = field(default_factory=list)
    camera: Camera | None = None
    realtime: bool = True
    output: Path | None = None
    speaker: Speaker | None = None
    check_single_use: bool = False
    renew: Callable[[], str] | None = None  # a fresh token for the same profile, when this one is spent


def live_client(token: str, base_url: str, api_version: str, ca_file: str | None) -> genai.Client:
    """An SDK client for the token; with a CA file, the Live WebSocket trusts that CA (and only it)."""
    client_args = {"ssl": ssl.create_default_context(cafile=ca_file)} if ca_file else None
    options = types.HttpOptions(base_url=base_url, api_version=api_version, async_client_args=client_args)
    return genai.Client(api_key=token, http_options=options)


def non_blocking_functions(config: dict[str, Any]) -> set[str]:
    """Functions the served config declares NON_BLOCKING: the model goes on talking while they run, and speaks
    their result later, as a turn of its own."""
    tools = config.get("tools") or []
    return {
        str(decl.get("name"))
        for tool in tools
        if isinstance(tool, dict)
        for decl in tool.get("functionDeclarations") or tool.get("function_declarations") or []
        if isinstance(decl, dict) and decl.get("behavior") == "NON_BLOCKING"
    }


@dataclass
class _Turn:
    audio: bytearray = field(default_factory=bytearray)
    kept: bytearray = field(default_factory=bytearray)
    complete: bool = False
    # A non-blocking call's result is spoken in a later turn of its own: each turn that began after our response
    # to such a call settles one of them (the oldest), and the conversation is complete when a turn ends with none
    # left. A call the server cancels (toolCallCancellation) is settled too. Message numbers, in arrival order.
    seen: int = 0
    started: int | None = None  # the message number the model's current turn began at
    results_due: dict[str, int] = field(default_factory=dict)  # call id -> the message number we answered at


class LiveConversation:
    """One turn, carried across connections: resumed with the newest handle when the server lets go of the
    connection, or continued as a new session with a fresh token when this one is spent.

    The input is streamed as a microphone would be: it does not rewind when a connection drops, the next connection
    goes on from where the last one stopped. When the whole input went out and the reply was cut off with its
    connection, the turn is asked again (at most MAX_ASKS times). The conversation gives up only when
    MAX_IDLE_CONNECTIONS connections in a row make no progress (no new input sent, no reply received), however many
    connections it takes."""

    def __init__(self, opts: LiveOptions, summary: Summary, progress: Progress) -> None:
        self.opts = opts
        self.summary = summary
        self.progress = progress
        self.client = live_client(opts.token, opts.base_url, opts.api_version, opts.ca_file)
        self.non_blocking = non_blocking_functions(opts.config)
        self.transcript_only = opts.presentation == "transcript"
        self.handle: str | None = None
        self.turn = _Turn()
        self.sent_at: float | None = None
        self.position = 0  # bytes of the input audio sent in this ask (for text: 1 once sent)
        self.input_done = False  # this ask's whole input is out (audio_stream_end or the text)
        self.fed = 0  # input bytes (or text messages) ever sent: progress
        self.asks = 0
        self.fresh_tokens_in_a_row = 0
        self.fed_at_renewal = 0

    def _config(self) -> types.LiveConnectConfigOrDict:
        # Mirror the locked config as served (the server enforces it anyway); resuming adds our handle to it.
        if self.handle is None:
            # The SDK's TypedDict names only snake_case keys; its pydantic model takes the camelCase aliases too.
            return cast(types.LiveConnectConfigDict, self.opts.config)
        config = types.LiveConnectConfig.model_validate(self.opts.config)
        config.session_resumption = types.SessionResumptionConfig(handle=self.handle)
        return config

    def _progress_mark(self) -> tuple[int, int, int, int]:
        s = self.summary
        return (self.fed, s.audio_bytes_received, len(s.text_received), len(s.output_transcript))

    async def run(self) -> None:
        """Talk until a turn completes, reconnecting as the server requires (see the class)."""
        try:
            idle = 0
            while True:
                mark = self._progress_mark()
                try:
                    if await self._connection():
                        break
                except errors.APIError as exc:
                    if self.turn.complete:
                        break
                    await self._after_close(exc)
                idle = 0 if self._progress_mark() != mark else idle + 1
                if idle >= MAX_IDLE_CONNECTIONS:
                    raise GaveUp(f"gave up: {idle} connections in a row made no progress")
                self.summary.resumptions += 1
            if self.opts.output is not None:
                write_wav(self.opts.output, bytes(self.turn.kept), OUTPUT_RATE)
                self.progress.say(
                    f"saved {seconds_of(len(self.turn.kept), OUTPUT_RATE):.2f}s of reply to {self.opts.output}"
                )
            if self.opts.check_single_use:
                self.summary.second_connect_refused = await self._second_connect_refused()
        finally:
            await self.client.aio.aclose()

    async def _after_close(self, exc: errors.APIError) -> None:
        """Decide how to go on after the server closed (or refused) a connection; raise when we cannot."""
        reason = close_reason(exc)
        if exc.code in RESUMABLE_CLOSE_CODES:
            how = "resuming the session" if self.handle else "opening a new session"
            self.progress.say(f"connection closed ({exc.code} {reason}); {how}")
            return
        if exc.code == 1008 and any(why in reason.lower() for why in TOKEN_SPENT) and self.opts.renew is not None:
            if self.fed > self.fed_at_renewal:  # input went out since the last fresh token: that one was of use
                self.fresh_tokens_in_a_row = 0
            self.fresh_tokens_in_a_row += 1
            self.fed_at_renewal = self.fed
            if self.fresh_tokens_in_a_row > MAX_FRESH_TOKENS:
                raise exc
            self.progress.say(f"the token can no longer open or resume this session ({reason}); fetching a fresh one")
            token = await asyncio.to_thread(self.opts.renew)
            await self.client.aio.aclose()
            self.client = live_client(token, self.opts.base_url, self.opts.api_version, self.opts.ca_file)
            self.handle = None  # a handle belongs to the token that made it: this is a new session
            self.summary.fresh_tokens += 1
            self.progress.say(
                f"got a fresh token {fingerprint(token)}: a new session, which does not remember the old one"
            )
            return
        raise exc

    async def _connection(self) -> bool:
        """One connection; True when the turn is complete (a close raises APIError instead)."""
        async with self.client.aio.live.connect(model=self.opts.model, config=self._config()) as session:
            self.progress.say("connected" + (" (resumed)" if self.handle else ""))
            # A reply cut off by the server is lost with its connection: drop its partial audio.
            self.turn.audio.clear()
            if self.input_done:  # the whole input went out and no complete reply came back: ask again
                self.asks += 1
                if self.asks >= MAX_ASKS:
                    raise GaveUp(f"gave up: the reply was cut off {self.asks} times")
                self.progress.say("the reply was cut off with the connection; asking again")
                self.position, self.input_done = 0, False
            sender = asyncio.create_task(self._send_input(session))
            try:
                while not self.turn.complete:
                    await self._receive_turn(session)
            finally:
                if not sender.done():
                    sender.cancel()
        return True

    async def _send_frame(self, session: Any, frame: Frame, what: str) -> None:
        await session.send_realtime_input(video=types.Blob(data=frame.data, mime_type=frame.mime_type))
        self.summary.frames_sent += 1
        self.progress.say(f"sent {what} as a video frame ({frame.mime_type}, {len(frame.data)} bytes)")

    async def _send_camera_frame(self, session: Any) -> None:
        if self.opts.camera is not None:
            frame = await asyncio.to_thread(self.opts.camera.frame)
            await self._send_frame(session, frame, f"camera {self.opts.camera.device}")

    async def _send_input(self, session: Any) -> None:
        """This ask's input from where the last connection stopped: frames first (so the turn they belong to is the
        one that follows), then the text, or the audio as a microphone streams it."""
        if self.position == 0:
            for number, image in enumerate(self.opts.images, 1):
                await self._send_frame(session, image, f"image {number}")
        await self._send_camera_frame(session)
        if self.opts.text is not None:
            if self.position == 0:
                self.sent_at = time.monotonic()
                await session.send_client_content(
                    turns=types.Content(role="user", parts=[types.Part(text=self.opts.text)]), turn_complete=True
                )
                self.position, self.input_done = 1, True
                self.fed += 1
                self.progress.say(f"sent text ({len(self.opts.text)} characters)")
            return
        pcm = self.opts.pcm or b""
        if self.position:
            self.progress.say(f"going on with the audio from {seconds_of(self.position, INPUT_RATE):.2f}s")
        sent = seconds_of(self.position, INPUT_RATE)
        next_frame_at = float(int(sent)) + 1.0  # the camera sends one frame per second of audio, like Google's sample
        for piece in chunks(pcm[self.position :]):
            await session.send_realtime_input(audio=types.Blob(data=piece, mime_type=f"audio/pcm;rate={INPUT_RATE}"))
            self.position += len(piece)
            self.fed += len(piece)
            seconds = seconds_of(len(piece), INPUT_RATE)
            sent += seconds
            self.summary.audio_seconds_sent += seconds
            if sent >= next_frame_at:
                next_frame_at += 1.0
                await self._send_camera_frame(session)
            if self.opts.realtime:
                await asyncio.sleep(seconds)
        if not self.input_done:
            self.sent_at = time.monotonic()
            await session.send_realtime_input(audio_stream_end=True)
            self.input_done = True
            self.progress.say(f"sent {seconds_of(self.position, INPUT_RATE):.2f}s of audio")

    async def _receive_turn(self, session: Any) -> None:
        """Handle messages until turn_complete; a close raises APIError (run() resumes on the usual codes)."""
        async for message in session.receive():
            self.turn.seen += 1
            if message.session_resumption_update and message.session_resumption_update.new_handle:
                self.handle = message.session_resumption_update.new_handle
            if message.go_away:
                left = message.go_away.time_left
                self.progress.say(f"server sent goAway (time left {left}); reconnecting when it closes")
            if message.tool_call:
                if self.turn.started is None:  # a call opens the model's turn (what it says next belongs to it)
                    self.turn.started = self.turn.seen
                await self._answer_tools(session, message.tool_call)
            if message.tool_call_cancellation and message.tool_call_cancellation.ids:
                for call_id in message.tool_call_cancellation.ids:
                    self.turn.results_due.pop(call_id, None)
                self.progress.say(f"the model cancelled tool call(s) {', '.join(message.tool_call_cancellation.ids)}")
            if message.server_content:
                self._on_content(message.server_content)

    def _first_byte(self) -> None:
        if self.summary.time_to_first_byte_ms is None and self.sent_at is not None:
            self.summary.time_to_first_byte_ms = round((time.monotonic() - self.sent_at) * 1000, 1)
            self.progress.say(f"first reply byte after {self.summary.time_to_first_byte_ms:.0f} ms")

    def _on_content(self, content: types.LiveServerContent) -> None:
        if self.turn.started is None and (content.model_turn or content.output_transcription):
            self.turn.started = self.turn.seen
        if content.input_transcription and content.input_transcription.text:
            self.summary.input_transcript += content.input_transcription.text
            self.progress.transcript("you", content.input_transcription.text)
        if content.model_turn:
            self._on_parts(content.model_turn.parts or [])
        if content.output_transcription and content.output_transcription.text:
            self._on_output_transcript(content.output_transcription.text)
        if content.interrupted:
            self.summary.interrupted += 1
            self.progress.say(
                f"interrupted: dropping {seconds_of(len(self.turn.audio), OUTPUT_RATE):.2f}s of unplayed reply"
            )
            self.turn.audio.clear()
            self.turn.started = None
            if self.opts.speaker is not None:
                self.opts.speaker.stop()
        if content.turn_complete:
            self._on_turn_complete()

    def _on_parts(self, parts: list[types.Part]) -> None:
        for part in parts:
            if part.inline_data and part.inline_data.data:
                self._first_byte()
                self.turn.audio += part.inline_data.data
                self.summary.audio_bytes_received += len(part.inline_data.data)
                if self.opts.speaker is not None and not self.transcript_only:
                    self.opts.speaker.play(part.inline_data.data)
            if part.text:
                self._first_byte()
                self.summary.text_received += part.text
                self.progress.stream("model", part.text)

    def _on_output_transcript(self, text: str) -> None:
        self.summary.output_transcript += text
        if self.transcript_only:  # the transcript is the reply: shown as the model's text
            self._first_byte()
            self.summary.text_received += text
            self.progress.stream("model", text)
        else:
            self.progress.transcript("model (transcript)", text)

    def _on_turn_complete(self) -> None:
        self.turn.kept += self.turn.audio
        self.turn.audio.clear()
        began, self.turn.started = self.turn.started, None
        due = self.turn.results_due
        if due and began is not None:
            oldest = min(due, key=due.__getitem__)
            if due[oldest] < began:  # this turn began after we answered that call: it spoke the result
                del due[oldest]
        if due:
            self.progress.say("turn complete; waiting for the model to speak the tool's result")
            return
        self.turn.complete = True
        self.summary.turn_complete = True
        self.summary.audio_seconds_received = round(seconds_of(len(self.turn.kept), OUTPUT_RATE), 3)
        if self.summary.modality == "TEXT" or self.transcript_only:
            self.progress.say(f"turn complete: {len(self.summary.text_received)} characters of text received")
        else:
            self.progress.say(f"turn complete: {self.summary.audio_seconds_received:.2f}s audio received")

    async def _answer_tools(self, session: Any, call: types.LiveServerToolCall) -> None:
        """Answer every call; playback goes on meanwhile. A non-blocking call's result is scheduled WHEN_IDLE: the
        model speaks it once it has finished what it is saying, and the conversation waits for that turn."""
        responses = []
        for fc in call.function_calls or []:
            result = run_tool(fc.name or "", fc.args)
            waits = fc.name in self.non_blocking
            self.summary.tool_calls.append(
                {"name": fc.name, "args": fc.args or {}, "result": result, "non_blocking": waits}
            )
            self.progress.say(f"tool call {fc.name}({fc.args or {}}) -> {result}{' (non-blocking)' if waits else ''}")
            scheduling = types.FunctionResponseScheduling.WHEN_IDLE if waits else None
            responses.append(types.FunctionResponse(id=fc.id, name=fc.name, response=result, scheduling=scheduling))
            if waits:
                self.turn.results_due[fc.id or fc.name or ""] = self.turn.seen
        await session.send_tool_response(function_responses=responses)

    async def _second_connect_refused(self) -> bool:
        """Try a fresh session with the same token: a single-use token must be refused."""
        try:
            async with self.client.aio.live.connect(model=self.opts.model, config=types.LiveConnectConfig()) as s:
                await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="again")]))
                async for _ in s.receive():
                    pass
        except errors.APIError as exc:
            self.progress.say(f"second connect with the same token refused: {exc}")
            return True
        return False
