"""One Live session: receive client frames, detect turns, stream the deterministic model's answers."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import structlog
from litestar import WebSocket
from litestar.exceptions import WebSocketDisconnect

from service.emulator import model
from service.emulator.store import EmulatorState, TokenRecord

log = structlog.get_logger("livetoken.emulator")
CHUNK_SECONDS = 0.04  # 40 ms of reply audio per frame, like the real service's pacing
END_OF_TURN_SILENCE = 0.6  # seconds of silence after speech that end an audio turn


def decode_b64(data: str) -> bytes:
    """Google accepts standard and URL-safe base64, padded or not (the Python SDK sends URL-safe)."""
    data = data.replace("-", "+").replace("_", "/")
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)


class LiveSession:
    """State of one connection."""

    def __init__(
        self, socket: WebSocket[Any, Any, Any], state: EmulatorState, token: TokenRecord | None, setup: dict[str, Any]
    ) -> None:
        self.socket = socket
        self.state = state
        self.token = token
        self.setup = setup
        self.modality = model.modality(setup)
        self.voice = model.voice_of(setup)
        self.resumable = "sessionResumption" in setup
        self.input_transcription = "inputAudioTranscription" in setup
        self.output_transcription = "outputAudioTranscription" in setup
        self.audio = bytearray()
        self.heard_speech = False
        self.silence = 0.0
        self.reply: asyncio.Task[None] | None = None
        self.pending_tool: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.send_lock = asyncio.Lock()
        self.closed = False

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
            await self._resumption_update()
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
                except Exception as exc:
                    log.error("emulator_session_error", error_type=type(exc).__name__, error=str(exc)[:200])
                    await self.close(1011, "Internal error encountered.")
                    break
        finally:
            self.state.live.discard(self)
            timers.cancel()
            if self.reply is not None:
                self.reply.cancel()
            self.closed = True

    async def _resumption_update(self) -> None:
        assert self.token is not None
        await self.send(
            {"sessionResumptionUpdate": {"newHandle": self.state.new_handle(self.token), "resumable": True}}
        )

    async def _lifetime(self) -> None:
        """goAway before the connection limit or the token's expiry, then close."""
        lead = self.state.goaway_lead_seconds
        limit = self.state.max_connection_seconds
        end_reason, end_code = "Connection lifetime reached", 1000
        if self.token is not None:
            left = (self.token.expire_time - datetime.now(UTC)).total_seconds()
            if left < limit:
                limit, end_reason, end_code = left, "Token has expired.", 1008
        await asyncio.sleep(max(0.0, limit - lead))
        await self.send({"goAway": {"timeLeft": f"{max(0, round(min(lead, limit)))}s"}})
        await asyncio.sleep(max(0.0, min(lead, limit)))
        await self.close(end_code, end_reason)

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
                self._start_reply(" ".join(t for t in texts if t), 0.0)
        elif tool is not None:
            for resp in tool.get("functionResponses") or tool.get("function_responses") or []:
                future = self.pending_tool.pop(str(resp.get("id")), None)
                if future is not None and not future.done():
                    future.set_result(resp.get("response") or {})

    async def _on_realtime(self, realtime: dict[str, Any]) -> None:
        audio = realtime.get("audio") or realtime.get("media")
        if isinstance(audio, dict) and audio.get("data"):
            pcm = decode_b64(str(audio["data"]))
            loud = model.rms(pcm) >= model.SILENCE_RMS
            seconds = len(pcm) / 2 / model.INPUT_RATE
            if loud and self.reply is not None and not self.reply.done():
                # The caller speaks over the answer: stop it, as the real model does.
                self.reply.cancel()
                self.reply = None
                await self.send({"serverContent": {"interrupted": True}})
            self.audio += pcm
            if loud:
                self.heard_speech, self.silence = True, 0.0
            elif self.heard_speech:
                self.silence += seconds
                if self.silence >= END_OF_TURN_SILENCE:
                    self._end_audio_turn()
        if realtime.get("audio_stream_end") or realtime.get("audioStreamEnd"):
            self._end_audio_turn()
        text = realtime.get("text")
        if isinstance(text, str) and text:
            self._start_reply(text, 0.0)

    def _end_audio_turn(self) -> None:
        if not self.audio:
            return
        seconds = len(self.audio) / 2 / model.INPUT_RATE
        self.audio.clear()
        self.heard_speech, self.silence = False, 0.0
        self._start_reply(None, seconds)

    def _start_reply(self, text: str | None, audio_seconds: float) -> None:
        if self.reply is not None and not self.reply.done():
            self.reply.cancel()
        self.reply = asyncio.create_task(self._answer(text, audio_seconds))

    async def _answer(self, text: str | None, audio_seconds: float) -> None:
        if text is None and self.input_transcription:
            await self.send({"serverContent": {"inputTranscription": {"text": model.input_transcript(audio_seconds)}}})
        answer = model.reply_text(text, audio_seconds)
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
        await self.send(
            {
                "serverContent": {"turnComplete": True},
                "usageMetadata": model.usage(
                    prompt_tokens, max(1, len(answer.split())), self.modality, "AUDIO" if text is None else "TEXT"
                ),
            }
        )
        if self.resumable and self.token is not None:
            await self._resumption_update()

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
