"""The emulator tells where its API key is kept and never prints the key itself."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import websockets
from google.genai import types

from tests.emulator.live_support import MODEL, client, collect, mint
from tests.support.emulator import EmulatorProcess


@pytest.mark.parametrize("given", [False, True], ids=["generated-key", "key-on-command-line"])
async def test_banner_and_logs_never_show_the_api_key(tmp_path: Path, given: bool) -> None:
    """Start, mint, open sessions with the key in the header and in `?key=`, refuse a bad key: no output has the key."""
    key_args = ("--api-key", "emulator-given-key-0123456789abcdef") if given else ()
    emu = EmulatorProcess(tmp_path, *key_args)
    emu.start()
    try:
        token = await mint(emu)
        async with client(emu, token).aio.live.connect(model=MODEL) as session:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
            await collect(session)
        async with client(emu, emu.api_key).aio.live.connect(model=MODEL) as session:
            await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
            await collect(session)
        ws_base = emu.base_url.replace("https://", "wss://") + "//ws/google.ai.generativelanguage.v1beta."
        url = ws_base + f"GenerativeService.BidiGenerateContent?key={emu.api_key}"
        async with websockets.connect(url, ssl=emu.ssl_context()) as ws:
            await ws.send(json.dumps({"setup": {"model": f"models/{MODEL}"}}))
            assert json.loads(await ws.recv()) == {"setupComplete": {}}
        info_file = tmp_path / "emulator.json"
        assert json.loads(info_file.read_text())["api_key"] == emu.api_key
        assert stat.S_IMODE(os.stat(info_file).st_mode) == 0o600
    finally:
        emu.stop()
    output = (tmp_path / "emulator.log").read_text()
    assert f'  API key: in {info_file} ("api_key", readable by this user only)\n' in output
    assert "emulator_session_started" in output  # the logs were written, and they too are free of the key
    assert emu.api_key not in output
    assert token.removeprefix("auth_tokens/") not in output
