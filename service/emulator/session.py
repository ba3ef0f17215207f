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

from service.emulator import lifetime, model, setup_rules
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
        self.pending_tool: dict[str, asyncio.Future[dict[str, Any]]] = {}  # blocking calls, by id
        self.running_tools: dict[str, str] = {}  # non-blocking calls still running: id -> function name
        self.typed: list[str] = []  # client content sent without turn_complete, waiting for it
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
            await self._on_client_content(content)
        elif tool is not None:
            for resp in model.pick(tool, "functionResponses") or []:
                if isinstance(resp, dict):
                    await self._on_tool_response(resp)

    async def _on_client_content(self, content: dict[str, Any]) -> None:
        """The caller's turns (model turns are context, not a prompt); without turn_complete the server waits
        for more, and turn_complete=true interrupts a reply in progress, as Google's Live models do."""
        self.typed += [
            str(p.get("text"))
            for turn in content.get("turns") or []
            if isinstance(turn, dict) and turn.get("role", "user") == "user"
            for p in (turn.get("parts") or [])
            if isinstance(p, dict) and p.get("text")
        ]
        if model.pick(content, "turnComplete"):
            text, self.typed = " ".join(self.typed), []
            await self._start_reply(text, 0.0, self.input.take_frames())

    async def _on_tool_response(self, resp: dict[str, Any]) -> None:
        call_id = str(resp.get("id"))
        result = resp.get("response") or {}
        future = self.pending_tool.pop(call_id, None)
        if future is not None:
            if not future.done():
                future.set_result(result)
            return
        function = self.running_tools.pop(call_id, None)
        if function is None:
            return
        scheduling = str(resp.get("scheduling") or "WHEN_IDLE")
        if not setup_rules.schedules_results(self.setup):
            scheduling = "WHEN_IDLE"  # a model without scheduling speaks a result when it is free
        spoken = model.result_text(function, result)
        if scheduling == "SILENT":
            return
        if scheduling == "INTERRUPT":
            await self._start_spoken(spoken)
            return
        # WHEN_IDLE: once nothing is being said (one result after another), without blocking this receive loop.
        self._spawn(self._when_idle(spoken))

    async def _when_idle(self, spoken: str) -> None:
        while self.answering and self.reply is not None and not self.reply.done():
            await asyncio.wait({self.reply})  # however it ends; cancelling this task does not cancel the reply
        if not self.closed:
            await self._start_spoken(spoken)  # no await before it sets `answering`: the next result waits

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _on_realtime(self, realtime: dict[str, Any]) -> None:
        for media in media_of(realtime):
            if media.kind == "frame":
                self._on_video_frame()
                continue
            self.info["audio_seconds"] += len(media.data) / 32000  # PCM16 at 16 kHz
            loud, turn = self.input.add_audio(media.data)
            if loud:
                await self._interrupt()  # the caller speaks over the answer: stop it, as the real model does
            if turn is not None:
                self.info["turns_heard"].append(round(turn.seconds, 2))
                await self._start_reply(None, turn.seconds, turn.frames)
        if realtime.get("audio_stream_end") or realtime.get("audioStreamEnd"):
            turn = self.input.end_of_stream()
            if turn is not None:
                self.info["turns_heard"].append(round(turn.seconds, 2))
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
        self.reply = self._spawn(self._answer(text, audio_seconds, frames))

    async def _start_spoken(self, answer: str) -> None:
        """A turn of the model's own (a non-blocking call's result), not an answer to the caller."""
        await self._interrupt()
        self.answering = True
        self.reply = self._spawn(self._speak(answer, 1, "TEXT", 0))

    async def _answer(self, text: str | None, audio_seconds: float, frames: int) -> None:
        if text is None and self.input_transcription:
            await self.send({"serverContent": {"inputTranscription": {"text": model.input_transcript(audio_seconds)}}})
        answer = model.reply_text(text, audio_seconds, frames)
        function = model.pick_function(self.setup, text)
        if function is not None:
            call_id = "fc-" + secrets.token_hex(4)
            args = model.function_args(function, text)
            call = {"toolCall": {"functionCalls": [{"id": call_id, "name": function, "args": args}]}}
            if setup_rules.behavior_of(self.setup, function) == "non_blocking":
                # The model goes on speaking while the call runs; its result is spoken when scheduled.
                self.running_tools[call_id] = function
                await self.send(call)
                answer = model.interim_text(function)
            else:
                future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                self.pending_tool[call_id] = future
                await self.send(call)
                try:
                    result = await asyncio.wait_for(future, timeout=30)
                except TimeoutError:
                    self.answering = False
                    await self.send({"toolCallCancellation": {"ids": [call_id]}})
                    return
                answer = model.result_text(function, result)
        prompt_tokens = max(1, int(audio_seconds * 25) if text is None else len((text or "").split()))
        await self._speak(answer, prompt_tokens, "AUDIO" if text is None else "TEXT", frames)

    async def _speak(self, answer: str, prompt_tokens: int, prompt_modality: str, frames: int) -> None:
        """Stream one model turn: the answer, generationComplete, turnComplete with usage, a new handle."""
        if self.modality == "TEXT":
            words = answer.split(" ")
            half = max(1, len(words) // 2)
            for part in (" ".join(words[:half]) + " ", " ".join(words[half:])):
                if part.strip():
                    await self.send({"serverContent": {"modelTurn": {"parts": [{"text": part}]}}})
        else:
            await self._stream_audio(answer)
        await self.send({"serverContent": {"generationComplete": True}})
        self.answering = False
        await self.send(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": model.usage(
                    prompt_tokens, max(1, len(answer.split())), self.modality, prompt_modality, frames
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
