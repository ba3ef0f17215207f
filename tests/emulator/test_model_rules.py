"""The emulator refuses at setup what Google refuses for each model (from the catalogue), with Google's close code
and reason, and behaves per model: non-blocking tool calls and their scheduling, client content turns."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from google.genai import errors, types

from tests.emulator.live_support import MODEL, client, collect, mint, model_text, reply_audio
from tests.support.emulator import EmulatorProcess

THINKING_MODEL = "gemini-3.8-live-extended-thinking"
NOT_AUDIO_3X = "The requested combination of response modalities (TEXT) is not supported by the model."


def not_found(model: str) -> str:
    """Google's NOT_FOUND message for a model, cut to the 123 bytes a close reason carries."""
    full = (
        f"models/{model} is not found for API version v1beta, or is not supported for bidiGenerateContent. "
        "Call ListModels to see the list of available models and their supported methods."
    )
    return full.encode()[:123].decode()


def api_key_client(emu: Any) -> Any:
    """A plain SDK client with the project's API key on v1beta, as Google's own Live tests build it."""
    c = client(emu, emu.api_key)
    c._api_client._http_options.api_version = "v1beta"
    return c


def _with(**fields: Any) -> types.LiveConnectConfig:
    return types.LiveConnectConfig(response_modalities=[types.Modality.AUDIO], **fields)


def _tools(*decls: types.FunctionDeclaration) -> list[types.Tool]:
    return [types.Tool(function_declarations=list(decls))]


REFUSALS = [
    pytest.param(
        "gemini-9-live",
        _with(),
        1008,
        not_found("gemini-9-live"),
        id="unknown-model",
    ),
    pytest.param(
        "gemini-2.0-flash-live-001",
        _with(),
        1008,
        not_found("gemini-2.0-flash-live-001"),
        id="shut-down-model",
    ),
    pytest.param(
        MODEL, types.LiveConnectConfig(response_modalities=[types.Modality.TEXT]), 1007, NOT_AUDIO_3X, id="text-3.8"
    ),
    pytest.param(
        "gemini-2.5-flash-native-audio-preview-12-2025",
        types.LiveConnectConfig(response_modalities=[types.Modality.TEXT]),
        1007,
        "Cannot extract voices from a non-audio request.",
        id="text-native-audio",
    ),
    pytest.param(
        MODEL,
        _with(thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)),
        1007,
        "Thinking config is not supported for this model.",
        id="thinking-on-3.8",
    ),
    pytest.param(
        THINKING_MODEL,
        _with(thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.MINIMAL)),
        1007,
        "Thinking level MINIMAL is not supported for this model.",
        id="minimal-thinking",
    ),
    pytest.param(
        THINKING_MODEL,
        _with(),
        1007,
        "Thinking level is required for this model: one of LOW, MEDIUM, HIGH.",
        id="thinking-missing",
    ),
    pytest.param(
        MODEL,
        _with(proactivity=types.ProactivityConfig(proactive_audio=False)),
        1007,
        "Proactive audio is always enabled for this model; proactive_audio cannot be false.",
        id="proactive-off",
    ),
    pytest.param(
        "gemini-3.1-flash-live-preview",
        _with(proactivity=types.ProactivityConfig(proactive_audio=True)),
        1007,
        "Proactive audio is not supported for this model.",
        id="proactive-on-3.1",
    ),
    pytest.param(
        MODEL,
        _with(enable_affective_dialog=True),
        1007,
        "Invalid JSON payload received. Unknown name \"enableAffectiveDialog\" at 'setup.generation_config': "
        "Cannot find field.",
        id="affective-dialog",
    ),
    pytest.param(
        THINKING_MODEL,
        _with(
            thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW),
            tools=_tools(types.FunctionDeclaration(name="f", behavior=types.Behavior.BLOCKING)),
        ),
        1007,
        "Function behavior BLOCKING is not supported for this model.",
        id="blocking-on-extended-thinking",
    ),
    pytest.param(
        "gemini-3.1-flash-live-preview",
        _with(tools=_tools(types.FunctionDeclaration(name="f", behavior=types.Behavior.NON_BLOCKING))),
        1007,
        "Function behavior NON_BLOCKING is not supported for this model.",
        id="non-blocking-on-3.1",
    ),
]


@pytest.mark.parametrize(("model", "config", "code", "reason"), REFUSALS)
async def test_a_setup_google_refuses_is_closed_with_its_code_and_reason(
    emulator: Any, model: str, config: types.LiveConnectConfig, code: int, reason: str
) -> None:
    """The raw SDK with an API key opens the setup: the close code and reason are Google's, and no session runs."""
    before = len(emulator.sessions())
    with pytest.raises(errors.APIError) as err:
        async with api_key_client(emulator).aio.live.connect(model=model, config=config) as session:
            await collect(session)
    assert (err.value.code, err.value.details) == (code, reason)
    assert len(reason.encode()) <= 123
    assert len(emulator.sessions()) == before


async def test_a_token_locked_to_a_refused_setup_is_closed_alike_and_keeps_its_use(emulator: Any) -> None:
    """A token whose locked setup asks gemini-3.8-live for TEXT: the session is refused 1007 as Google does, and
    the refused attempt spends no use."""
    token = await mint(emulator, "TEXT")
    with pytest.raises(errors.APIError) as err:
        async with client(emulator, token).aio.live.connect(model=MODEL) as session:
            await collect(session)
    assert (err.value.code, err.value.details) == (1007, NOT_AUDIO_3X)
    assert emulator.token(token)["uses_remaining"] == 1


@pytest.mark.parametrize(
    ("model", "config"),
    [
        pytest.param(MODEL, _with(proactivity=types.ProactivityConfig(proactive_audio=True)), id="proactive-on"),
        pytest.param(
            THINKING_MODEL,
            _with(thinking_config=types.ThinkingConfig(thinking_level=types.ThinkingLevel.HIGH)),
            id="extended-thinking-high",
        ),
        pytest.param(
            "gemini-2.5-flash-native-audio-preview-12-2025",
            _with(enable_affective_dialog=True, proactivity=types.ProactivityConfig(proactive_audio=False)),
            id="native-audio-options",
        ),
    ],
)
async def test_a_setup_the_model_takes_gets_an_answer(
    emulator: Any, model: str, config: types.LiveConnectConfig
) -> None:
    """What the model accepts opens a session that answers in audio."""
    config.output_audio_transcription = types.AudioTranscriptionConfig()
    async with api_key_client(emulator).aio.live.connect(model=model, config=config) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
        messages = await collect(session)
    assert model_text(messages) == "You said: hi"
    assert reply_audio(messages)


def _clock() -> types.FunctionDeclaration:
    return types.FunctionDeclaration(name="get_current_time", description="now")


async def _until_call(session: Any) -> types.FunctionCall:
    async for message in session.receive():
        if message.tool_call and message.tool_call.function_calls:
            call: types.FunctionCall = message.tool_call.function_calls[0]
            return call
    raise AssertionError("no tool call")


async def test_a_non_blocking_call_lets_the_model_go_on_and_its_result_is_spoken_when_idle(emulator: Any) -> None:
    """gemini-3.8-live: a tool without `behavior` is non-blocking. The turn goes on without the result ("Checking
    …"), and the result (scheduling WHEN_IDLE) is spoken as a turn of its own after it."""
    token = await mint(emulator, tools=_tools(_clock()))
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="get_current_time")]))
        call = await _until_call(session)
        interim = await collect(session)  # the same turn goes on, no tool response sent yet
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(
                    id=call.id,
                    name=call.name,
                    response={"utc": "12:00"},
                    scheduling=types.FunctionResponseScheduling.WHEN_IDLE,
                )
            ]
        )
        result = await collect(session)
    assert model_text(interim) == "Checking get_current_time."
    assert model_text(result) == 'get_current_time returned {"utc": "12:00"}.'
    assert reply_audio(result)


async def test_a_declared_blocking_call_waits_for_its_result(emulator: Any) -> None:
    """On the same model a tool declared BLOCKING holds the turn until the result, which the turn then speaks."""
    calc = types.FunctionDeclaration(name="calculate", description="math", behavior=types.Behavior.BLOCKING)
    token = await mint(emulator, tools=_tools(calc))
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="calculate 2+2")]))
        call = await _until_call(session)
        await session.send_tool_response(
            function_responses=[types.FunctionResponse(id=call.id, name=call.name, response={"value": 4})]
        )
        messages = await collect(session)
    assert call.args == {"expression": "2+2"}
    assert model_text(messages) == 'calculate returned {"value": 4}.'


async def test_a_silent_result_is_never_spoken(emulator: Any) -> None:
    """scheduling SILENT: the result is taken in and not spoken; the next turn is the caller's."""
    token = await mint(emulator, tools=_tools(_clock()))
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="get_current_time")]))
        call = await _until_call(session)
        await collect(session)
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(
                    id=call.id, name=call.name, response={}, scheduling=types.FunctionResponseScheduling.SILENT
                )
            ]
        )
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="next")]))
        messages = await collect(session)
    assert model_text(messages) == "You said: next"


async def test_client_content_without_turn_complete_waits_for_the_rest(emulator: Any) -> None:
    """Turns sent without turn_complete are held (model-role turns are context) until one completes the turn."""
    token = await mint(emulator)
    async with client(emulator, token).aio.live.connect(model=MODEL) as session:
        await session.send_client_content(
            turns=[
                types.Content(role="user", parts=[types.Part(text="part one")]),
                types.Content(role="model", parts=[types.Part(text="noted")]),
            ],
            turn_complete=False,
        )
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="part two")]))
        messages = await collect(session)
    assert model_text(messages) == "You said: part one part two"


@pytest.fixture(scope="module")
def paced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    """An emulator that speaks in real time, so a reply is still in progress when the next message arrives."""
    proc = EmulatorProcess(tmp_path_factory.mktemp("paced-rules"), "--speed", "1")
    proc.start()
    yield proc
    proc.stop()


async def _first_audio(session: Any) -> None:
    async for message in session.receive():
        if message.server_content and message.server_content.model_turn:
            return


async def test_turn_complete_interrupts_a_reply_in_progress(paced: EmulatorProcess) -> None:
    """A new client turn with turn_complete=true while the model speaks: `interrupted`, then the new answer."""
    token = await mint(paced)
    long_text = "tell me a long story " * 4
    async with client(paced, token).aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text=long_text)]))
        await _first_audio(session)
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="stop")]))
        seen = await collect(session)
    interrupted = [i for i, m in enumerate(seen) if m.server_content and m.server_content.interrupted]
    assert len(interrupted) == 1
    assert model_text(seen[interrupted[0] :]) == "You said: stop"


async def test_an_interrupt_result_cuts_the_reply_in_progress(paced: EmulatorProcess) -> None:
    """scheduling INTERRUPT while the interim reply is still being spoken: it is interrupted and the result is
    spoken at once."""
    token = await mint(paced, tools=_tools(_clock()))
    async with client(paced, token).aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="get_current_time")]))
        call = await _until_call(session)
        await _first_audio(session)
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(
                    id=call.id,
                    name=call.name,
                    response={"utc": "9"},
                    scheduling=types.FunctionResponseScheduling.INTERRUPT,
                )
            ]
        )
        seen = await collect(session)
        await asyncio.sleep(0)
    flags = [m.server_content.interrupted for m in seen if m.server_content and m.server_content.interrupted]
    assert flags == [True]
    assert model_text(seen) == 'get_current_time returned {"utc": "9"}.'


async def test_two_when_idle_results_are_spoken_one_after_the_other(paced: EmulatorProcess) -> None:
    """Two non-blocking calls answered while the model speaks (WHEN_IDLE): each result is a turn of its own, after
    the reply in progress and after each other; nothing is interrupted."""
    clock = types.FunctionDeclaration(name="get_current_time", description="now")
    weather = types.FunctionDeclaration(name="get_weather", description="weather")
    token = await mint(paced, tools=_tools(clock, weather))
    when_idle = types.FunctionResponseScheduling.WHEN_IDLE
    async with client(paced, token).aio.live.connect(model=MODEL) as session:
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="get_current_time")]))
        first = await _until_call(session)
        await session.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="get_weather")]))
        second = await _until_call(session)
        await session.send_tool_response(
            function_responses=[
                types.FunctionResponse(id=first.id, name=first.name, response={"n": 1}, scheduling=when_idle),
                types.FunctionResponse(id=second.id, name=second.name, response={"n": 2}, scheduling=when_idle),
            ]
        )
        turns = [await collect(session) for _ in range(3)]
    said = [model_text(turn) for turn in turns]
    assert said == ["Checking get_weather.", 'get_current_time returned {"n": 1}.', 'get_weather returned {"n": 2}.']
    assert not any(m.server_content and m.server_content.interrupted for turn in turns for m in turn)


async def test_a_thinking_budget_is_taken_where_the_model_has_one(emulator: Any) -> None:
    """The 2.5 native-audio model takes `thinking_budget` (and refuses a level); gemini-3.8-live refuses both."""
    budget = types.ThinkingConfig(thinking_budget=0)
    native = "gemini-2.5-flash-native-audio-preview-12-2025"
    async with api_key_client(emulator).aio.live.connect(model=native, config=_with(thinking_config=budget)) as s:
        await s.send_client_content(turns=types.Content(role="user", parts=[types.Part(text="hi")]))
        assert reply_audio(await collect(s))
    refusals = []
    for model, thinking in (
        (native, types.ThinkingConfig(thinking_level=types.ThinkingLevel.LOW)),
        (MODEL, budget),
    ):
        with pytest.raises(errors.APIError) as err:
            async with api_key_client(emulator).aio.live.connect(
                model=model, config=_with(thinking_config=thinking)
            ) as session:
                await collect(session)
        refusals.append((err.value.code, err.value.details))
    assert refusals == [
        (1007, "Thinking level is not supported for this model."),
        (1007, "Thinking config is not supported for this model."),
    ]
