"""One Live session: receive client frames, detect turns, stream the deterministic model's answers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import time
from typing import Any

from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from service.emulator import lifetime, model
from service.emulator.store import EmulatorState, SessionLineage, TokenRecord
from service.emulator.turns import ProtocolError, TurnInput, media_of
from service.logging import get_logger

log = get_logger("livetoken.emulator")
CHUNK_SECONDS = 0.04  # 40 ms of reply audio per frame, like the real service's pacing


class LiveSession:
    """State of one connection."""

    def __init__(  # noqa: PLR0917 - a session is built in one place from its parts
        self,
        socket: WebSocket[Any, Any, Any],
        state: EmulatorState,
        token: TokenRecord | None,
        setup: dict[str, Any],
        lineage: SessionLineage,
        info: dict[str, Any],
    ) -> None:
        self.socket = socket
        self.state = state
        self.token = token
        self.setup = setup
        self.lineage = lineage
        self.info = info  # this session's entry in /_emulator/sessions, kept current
        self.modality = model.modality(setup)
        self.voice = model.voice_of(setup)
        self.resumable = "sessionResumption" in setup
        self.input_transcription = "inputAudioTranscription" in setup
        self.output_transcription = "outputAudioTranscription" in setup
        self.input = TurnInput()
        self.reply: asyncio.Task[None] | None = None
        self.answering = False  # a reply has started and has not sent turnComplete yet
        self.tasks: set[asyncio.Task[None]] = set()
        self.pending_tool: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.send_lock = asyncio.Lock()
        self.closed = False
        self.connected_at = time.monotonic()
        self.replan = asyncio.Event()  # set when the session limit changes (the first video frame)

    async def send(self, message: dict[str, Any]) -> None:
        """Send one server frame (binary JSON, as Google does)."""
        async with self.send_lock:
            if not self.closed:
                await self.socket.send_data(json.dumps(message).encode(), mode="binary")

    async def close(self, code: int, reason: str) -> None:
        """Close once."""
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.socket.close(code=code, reason=reason)

    async def run(self) -> None:
        """Drive the session until either side closes."""
        self.state.live.add(self)
        await self.send({"setupComplete": {}})
        if self.resumable and self.token is not None:
            await self._resumption_update(self.token)
        timers = asyncio.create_task(self._lifetime())
        try:
            while not self.closed:
                try:
                    raw = await self.socket.receive_data(mode="text")
                except WebSocketDisconnect:
                    break
                try:
                    frame = json.loads(raw)
                except ValueError:
                    await self.close(1007, "Invalid JSON frame")
                    break
                try:
                    await self._on_frame(frame)
                except ProtocolError as exc:
                    await self.close(exc.code, exc.reason)
                    break
                except Exception as exc:
                    log.error("emulator_session_error", error_type=type(exc).__name__, error=str(exc)[:200])
                    await self.close(1011, "Internal error encountered.")
                    break
        finally:
            self.state.live.discard(self)
            timers.cancel()
            for task in self.tasks:
                task.cancel()
            self.closed = True

    async def _resumption_update(self, token: TokenRecord) -> None:
        handle = self.state.new_handle(token, self.lineage)
        await self.send({"sessionResumptionUpdate": {"newHandle": handle, "resumable": True}})

    async def _lifetime(self) -> None:
        """goAway before the earliest ending (connection limit, token expiry, session limit), then close."""
        warned = False
        while not self.closed:
            ending = lifetime.next_ending(self.state, self.token, self.lineage, self.setup, self.connected_at)
            wake = ending.at - (0.0 if warned else self.state.goaway_lead_seconds)
            if await self._replanned(wake - time.monotonic()):
                continue
            if warned:
                await self.close(ending.code, ending.reason)
                return
            await self.send({"goAway": {"timeLeft": lifetime.time_left(ending.at - time.monotonic())}})
            warned = True

    async def _replanned(self, seconds: float) -> bool:
        """Wait up to `seconds`; True (and start over) if the session's limit changed meanwhile."""
        if not self.replan.is_set() and seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.replan.wait(), seconds)
        if self.replan.is_set():
            self.replan.clear()
            return True
        return False

    async def go_away(self, time_left: float) -> None:
        """Fault injection: warn the client, then close the connection as the server does at its limit."""
        await self.send({"goAway": {"timeLeft": f"{time_left:g}s"}})
        await asyncio.sleep(time_left)
        await self.close(1000, "Connection lifetime reached")

    async def _on_frame(self, frame: dict[str, Any]) -> None:
        realtime = frame.get("realtime_input") or frame.get("realtimeInput")
        content = frame.get("client_content") or frame.get("clientContent")
        tool = frame.get("tool_response") or frame.get("toolResponse")
        if realtime is not None:
            await self._on_realtime(realtime)
        elif content is not None:
            turn_done = content.get("turnComplete", content.get("turn_complete", False))
            texts = [
                p.get("text", "")
                for turn in content.get("turns") or []
                for p in (turn.get("parts") or [])
                if isinstance(p, dict)
            ]
            if turn_done:
                await self._start_reply(" ".join(t for t in texts if t), 0.0, self.input.take_frames())
        elif tool is not None:
            for resp in tool.get("functionResponses") or tool.get("function_responses") or []:
                future = self.pending_tool.pop(str(resp.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(resp.get("response") or {})

    async def _on_realtime(self, realtime: dict[str, Any]) -> None:
        for media in media_of(realtime):
            if media.kind == "frame":
                self._on_video_frame()
                continue
            loud, turn = self.input.add_audio(media.data)
            if loud:
                await self._interrupt()  # the caller speaks over the answer: stop it, as the real model does
            if turn is not None:
                await self._start_reply(None, turn.seconds, turn.frames)
        if realtime.get("audio_stream_end") or realtime.get("audioStreamEnd"):
            turn = self.input.end_of_stream()
            if turn is not None:
                await self._start_reply(None, turn.seconds, turn.frames)
        text = realtime.get("text")
        if isinstance(text, str) and text:
            await self._start_reply(text, 0.0, self.input.take_frames())

    def _on_video_frame(self) -> None:
        self.input.add_frame()
        self.info["frames"] += 1
        if not self.lineage.video:
            # From now on this is an audio+video session, with the shorter session limit.
            self.lineage.video = True
            self.info["video"] = True
            self.info["session_limit_seconds"] = lifetime.session_limit(self.state, self.setup, video=True)
            self.replan.set()

    async def _interrupt(self) -> None:
        """Stop a reply that is still being generated and say so; a finished reply is left alone."""
        if self.answering and self.reply is not None:
            self.reply.cancel()
            self.answering = False
            await self.send({"serverContent": {"interrupted": True}})

    async def _start_reply(self, text: str | None, audio_seconds: float, frames: int) -> None:
        await self._interrupt()
        self.answering = True
        self.reply = asyncio.create_task(self._answer(text, audio_seconds, frames))
        self.tasks.add(self.reply)
        self.reply.add_done_callback(self.tasks.discard)

    async def _answer(self, text: str | None, audio_seconds: float, frames: int) -> None:
        if text is None and self.input_transcription:
            await self.send({"serverContent": {"inputTranscription": {"text": model.input_transcript(audio_seconds)}}})
        answer = model.reply_text(text, audio_seconds, frames)
        function = model.pick_function(self.setup, text)
        if function is not None:
            call_id = "fc-" + secrets.token_hex(4)
            future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self.pending_tool[call_id] = future
            args = model.function_args(function, text)
            await self.send({"toolCall": {"functionCalls": [{"id": call_id, "name": function, "args": args}]}})
            try:
                result = await asyncio.wait_for(future, timeout=30)
            except TimeoutError:
                self.answering = False
                await self.send({"toolCallCancellation": {"ids": [call_id]}})
                return
            answer = f"{function} returned {json.dumps(result, sort_keys=True)}."
        if self.modality == "TEXT":
            words = answer.split(" ")
            half = max(1, len(words) // 2)
            for part in (" ".join(words[:half]) + " ", " ".join(words[half:])):
                if part.strip():
                    await self.send({"serverContent": {"modelTurn": {"parts": [{"text": part}]}}})
        else:
            await self._stream_audio(answer)
        await self.send({"serverContent": {"generationComplete": True}})
        prompt_tokens = max(1, int(audio_seconds * 25) if text is None else len((text or "").split()))
        self.answering = False
        await self.send(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": model.usage(
                    prompt_tokens,
                    max(1, len(answer.split())),
                    self.modality,
                    "AUDIO" if text is None else "TEXT",
                    frames,
                ),
            }
        )
        if self.resumable and self.token is not None:
            await self._resumption_update(self.token)

    async def _stream_audio(self, answer: str) -> None:
        pcm = model.synthesize(answer, self.voice)
        step = int(CHUNK_SECONDS * model.OUTPUT_RATE) * 2
        pace = CHUNK_SECONDS / self.state.speed if self.state.speed > 0 else 0.0
        for offset in range(0, len(pcm), step):
            chunk = pcm[offset : offset + step]
            part = {"inlineData": {"mimeType": "audio/pcm;rate=24000", "data": base64.b64encode(chunk).decode()}}
            await self.send({"serverContent": {"modelTurn": {"parts": [part]}}})
            if pace:
                await asyncio.sleep(pace)
        if self.output_transcription:
            await self.send({"serverContent": {"outputTranscription": {"text": answer}}})
