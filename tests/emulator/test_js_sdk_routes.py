"""The WebSocket URLs the JS SDK opens, byte for byte, and what the emulator answers on them.

Read from @google/genai 2.32.0 (dist/node/index.cjs and dist/web/index.mjs, `Live.connect`): a browser WebSocket
carries no headers, so the SDK puts the credential in the query string, unencoded:
`{ws base}/ws/google.ai.generativelanguage.{apiVersion}.GenerativeService.BidiGenerateContent?key={apiKey}`, or
`…BidiGenerateContentConstrained?access_token={auth_tokens/…}` for an ephemeral token. The ws base is
`new URL(baseUrl)` printed with the scheme swapped (https→wss), which always ends in "/", so the path starts "//ws/".
In Node the only headers are user-agent, x-goog-api-client and content-type. Frames are camelCase JSON text.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import websockets
from google.genai import errors
from websockets.asyncio.client import ClientConnection

from tests.emulator.live_support import MODEL, b64, client, collect, jpeg, mint

JS_HEADERS = {
    "user-agent": "google-genai-sdk/2.32.0 gl-node/v20.20.2",
    "x-goog-api-client": "google-genai-sdk/2.32.0 gl-node/v20.20.2",
    "content-type": "application/json",
}
REFUSED = "Unauthenticated: API key or ephemeral token required"


def js_url(emu: Any, api_version: str, method: str, key_name: str, key: str) -> str:
    """The URL exactly as the JS SDK builds it (the base URL gets a trailing slash from URL.toString())."""
    base = emu.base_url.replace("https://", "wss://", 1) + "/"
    return f"{base}/ws/google.ai.generativelanguage.{api_version}.GenerativeService.{method}?{key_name}={key}"


async def text_turn(ws: ClientConnection, text: str) -> list[dict[str, Any]]:
    """Send a typed turn the way the JS SDK's sendClientContent does; return server frames up to turnComplete."""
    turn = {"clientContent": {"turns": [{"role": "user", "parts": [{"text": text}]}], "turnComplete": True}}
    await ws.send(json.dumps(turn))
    frames: list[dict[str, Any]] = []
    while not frames or not frames[-1].get("serverContent", {}).get("turnComplete"):
        frames.append(json.loads(await ws.recv()))
    return frames


def text_of(frames: list[dict[str, Any]]) -> str:
    """What the model said, from the output transcription of server frames (its audio is the answer itself)."""
    return "".join(frame.get("serverContent", {}).get("outputTranscription", {}).get("text", "") for frame in frames)


async def test_api_key_in_the_query_opens_a_session(emulator: Any) -> None:
    """`?key=API_KEY` on v1beta BidiGenerateContent (the JS SDK's default version) is a working session."""
    url = js_url(emulator, "v1beta", "BidiGenerateContent", "key", emulator.api_key)
    async with websockets.connect(url, ssl=emulator.ssl_context(), additional_headers=JS_HEADERS) as ws:
        await ws.send(
            json.dumps(
                {
                    "setup": {
                        "model": f"models/{MODEL}",
                        "generationConfig": {"responseModalities": ["AUDIO"]},
                        "outputAudioTranscription": {},
                    }
                }
            )
        )
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        frames = await text_turn(ws, "hello from node")
    assert text_of(frames) == "You said: hello from node"
    assert [list(f) for f in frames[-1:]] == [["serverContent", "usageMetadata"]]


async def test_wrong_api_key_is_refused_alike_in_the_query_and_in_the_header(emulator: Any) -> None:
    """A wrong `?key=` gets the same close as a wrong x-goog-api-key header: 1008 with one generic reason."""
    url = js_url(emulator, "v1beta", "BidiGenerateContent", "key", "not-the-key")
    async with websockets.connect(url, ssl=emulator.ssl_context(), additional_headers=JS_HEADERS) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, REFUSED)
    with pytest.raises(errors.APIError) as sdk_error:
        async with client(emulator, "not-the-key").aio.live.connect(model=MODEL) as session:
            await collect(session)
    assert sdk_error.value.code == 1008
    assert REFUSED in str(sdk_error.value)


async def test_ephemeral_token_in_access_token_on_the_constrained_method(emulator: Any) -> None:
    """`//ws/…Constrained?access_token=auth_tokens/…` (slash unencoded) gets the locked session and spends a use."""
    token = await mint(emulator)
    url = js_url(emulator, "v1alpha", "BidiGenerateContentConstrained", "access_token", token)
    async with websockets.connect(url, ssl=emulator.ssl_context(), additional_headers=JS_HEADERS) as ws:
        await ws.send(
            json.dumps({"setup": {"model": "models/anything", "generationConfig": {"responseModalities": ["AUDIO"]}}})
        )
        assert json.loads(await ws.recv()) == {"setupComplete": {}}
        # The browser example's camera: one JPEG frame through realtimeInput.video, standard base64.
        await ws.send(json.dumps({"realtimeInput": {"video": {"data": b64(jpeg()), "mimeType": "image/jpeg"}}}))
        frames = await text_turn(ws, "what do you see?")
    assert text_of(frames) == "I saw 1 frame. You said: what do you see?"
    assert emulator.token(token)["uses_remaining"] == 0
    assert emulator.sessions()[-1]["effective_setup"]["generationConfig"]["responseModalities"] == ["AUDIO"]


async def test_api_key_is_refused_on_the_constrained_method(emulator: Any) -> None:
    """The constrained method is for ephemeral tokens only: `?access_token=API_KEY` there is refused like a bad key."""
    url = js_url(emulator, "v1alpha", "BidiGenerateContentConstrained", "access_token", emulator.api_key)
    async with websockets.connect(url, ssl=emulator.ssl_context(), additional_headers=JS_HEADERS) as ws:
        await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1008, REFUSED)
