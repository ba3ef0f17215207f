// Google's JS SDK (@google/genai, the version examples/browser pins) in Node against the emulator, with tokens
// from livetoken: what a Node backend or a test suite of a frontend team does. Run by tests/frontend/test_node_sdk.py
// with `node --test`; the emulator's CA is trusted through NODE_EXTRA_CA_CERTS, as the README tells Node users.
//
// Environment: LIVETOKEN_URL and LIVETOKEN_JWT (dev mode, scope live:tools); LIVETOKEN_LATE_URL and
// LIVETOKEN_LATE_JWT (a service whose `late` profile gives 1 s to start a session); EMULATOR_BASE_URL and
// EMULATOR_API_KEY; NODE_EXTRA_CA_CERTS.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const exampleDir = fileURLToPath(new URL("../../examples/browser/", import.meta.url));
const { GoogleGenAI, Modality, FunctionResponseScheduling } = createRequire(join(exampleDir, "package.json"))(
  "@google/genai",
);
const env = process.env;

/** Google's close reason for responseModalities TEXT on today's audio-only Live models. */
const TEXT_REFUSED = "The requested combination of response modalities (TEXT) is not supported by the model.";

/** POST /v1/tokens with the caller's JWT. */
async function fetchToken(service, jwt, profile) {
  const response = await fetch(`${service}/v1/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ profile }),
  });
  assert.equal(response.status, 201, `POST /v1/tokens answered ${response.status}`);
  return response.json();
}

class SessionRefused extends Error {
  constructor(code, reason) {
    super(`closed with ${code}: ${reason}`);
    this.code = code;
    this.reason = reason;
  }
}

/**
 * ai.live.connect() with the messages queued for the test. A refused token is closed with 1008 right after the
 * WebSocket opens, and connect() then never settles: race it against onclose and a timeout (as the page does).
 */
async function open(ai, model, config, timeoutMs = 10_000) {
  const inbox = [];
  const waiters = new Set();
  let started = false;
  let refuse = () => {};
  const refused = new Promise((_, reject) => (refuse = reject));
  const timer = setTimeout(() => refuse(new SessionRefused(0, "no answer")), timeoutMs);
  const connecting = ai.live.connect({
    model,
    config,
    callbacks: {
      onmessage: (message) => {
        started = true;
        inbox.push(message);
        for (const wake of waiters) wake();
      },
      onclose: (event) => {
        if (!started) refuse(new SessionRefused(event.code, event.reason));
      },
    },
  });
  try {
    const session = await Promise.race([connecting, refused]);
    /** Wait for (and take) the first queued message that satisfies `predicate`. */
    const next = async (predicate, ms = 15_000) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const index = inbox.findIndex(predicate);
        if (index >= 0) return inbox.splice(index, 1)[0];
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`no matching message within ${ms} ms`);
        await new Promise((resolve) => {
          const wake = () => {
            clearTimeout(timeout);
            waiters.delete(wake);
            resolve();
          };
          const timeout = setTimeout(wake, left);
          waiters.add(wake);
        });
      }
    };
    /** Everything up to and including turnComplete. */
    const turn = async () => {
      const messages = [];
      for (;;) {
        const message = await next(() => true);
        messages.push(message);
        if (message.serverContent?.turnComplete) return messages;
      }
    };
    return { session, next, turn };
  } catch (error) {
    void connecting.then((late) => late.close());
    throw error;
  } finally {
    clearTimeout(timer);
  }
}

/** A client with the emulator's own API key (the SDK then sends it as ?key=). */
function emulatorClient() {
  return new GoogleGenAI({
    apiKey: env.EMULATOR_API_KEY,
    httpOptions: { baseUrl: env.EMULATOR_BASE_URL, apiVersion: "v1alpha" },
  });
}

/** A client for a livetoken token, configured from the token answer's `connect` only. */
function clientFor(token) {
  return new GoogleGenAI({
    apiKey: token.token,
    httpOptions: { baseUrl: token.connect.base_url, apiVersion: token.connect.api_version },
  });
}

async function openWithToken(token) {
  return open(clientFor(token), token.connect.model, token.connect.config);
}

/** Send 1.0 s of tone and 0.2 s of silence in 100 ms chunks, then audioStreamEnd: one spoken turn of 1.2 s. */
function speak(session) {
  const pcm = speech(1.0, 0.2);
  for (let offset = 0; offset < pcm.length; offset += 3200) {
    const data = pcm.subarray(offset, offset + 3200).toString("base64");
    session.sendRealtimeInput({ audio: { data, mimeType: "audio/pcm;rate=16000" } });
  }
  session.sendRealtimeInput({ audioStreamEnd: true });
}

/** The model's reply as text, as the page shows it: a "transcript" profile's reply is its output transcription. */
function replyText(token, turn) {
  return token.presentation === "transcript" ? transcript(turn, "outputTranscription") : texts(turn).join("");
}
const texts = (turn) => turn.flatMap((m) => m.serverContent?.modelTurn?.parts ?? []).map((p) => p.text ?? "");
const transcript = (turn, key) => turn.map((m) => m.serverContent?.[key]?.text ?? "").join("");
const audioBytes = (turn) =>
  turn
    .flatMap((m) => m.serverContent?.modelTurn?.parts ?? [])
    .filter((p) => p.inlineData?.mimeType === "audio/pcm;rate=24000")
    .reduce((n, p) => n + Buffer.from(p.inlineData.data, "base64").length, 0);
/** The emulator's reply audio: 60 ms of 24 kHz PCM16 per character of the reply, between 0.5 s and 4 s (whole
 * samples, rounded down as the emulator does). */
const replyBytes = (text) => Math.trunc(Math.min(4, Math.max(0.5, 0.06 * text.length)) * 24_000) * 2;

/** A 1x1 JPEG: what the page's canvas sends once a second, as small as one can be. */
const JPEG =
  "/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP//////////////////////////////////////////////////////////////////////////" +
  "////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=";

/** 16 kHz mono PCM16: a 440 Hz tone, then silence. */
function speech(toneSeconds, silenceSeconds) {
  const rate = 16_000;
  const tone = Math.round(toneSeconds * rate);
  const pcm = Buffer.alloc((tone + Math.round(silenceSeconds * rate)) * 2);
  for (let i = 0; i < tone; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / rate)), i * 2);
  return pcm;
}

// The tests are independent (a token each) and mostly wait on the emulator's real-time pacing: run them together.
describe("@google/genai in Node", { concurrency: true }, () => {
  // Each profile dev mode ships is opened below with the SDK and gets what it promises; a new one fails this first.
  test("dev mode ships exactly the profiles tested here", async () => {
    const response = await fetch(`${env.LIVETOKEN_URL}/v1/profiles`, {
      headers: { Authorization: `Bearer ${env.LIVETOKEN_JWT}` },
    });
    assert.equal(response.status, 200);
    const { profiles } = await response.json();
    assert.deepEqual(
      profiles.map((p) => [p.name, p.model, p.model_status, p.presentation]),
      [
        ["text", "gemini-3.8-live", "GA", "transcript"],
        ["thinking", "gemini-3.8-live-extended-thinking", "GA", "voice"],
        ["tools", "gemini-3.8-live", "GA", "voice"],
        ["video", "gemini-3.8-live", "GA", "voice"],
        ["voice", "gemini-3.8-live", "GA", "voice"],
      ],
    );
  });

  test("voice: 16 kHz PCM in, transcripts both ways and 24 kHz PCM out", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "voice");
    assert.equal(token.presentation, "voice");
    assert.equal(token.connect.model, "gemini-3.8-live");
    assert.deepEqual(token.connect.config.responseModalities, ["AUDIO"]);
    const { session, turn: nextTurn } = await openWithToken(token);
    speak(session);
    const turn = await nextTurn();
    session.close();
    assert.equal(transcript(turn, "inputTranscription"), "(1.2 seconds of audio)");
    const reply = transcript(turn, "outputTranscription");
    assert.equal(reply, "I heard 1.2 seconds of audio.");
    assert.equal(audioBytes(turn), replyBytes(reply));
  });

  test("thinking: extended thinking at MEDIUM, audio and transcripts", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "thinking");
    assert.equal(token.presentation, "voice");
    assert.equal(token.connect.model, "gemini-3.8-live-extended-thinking");
    assert.deepEqual(token.connect.config.thinkingConfig, { thinkingLevel: "MEDIUM" });
    assert.deepEqual(token.connect.config.responseModalities, ["AUDIO"]);
    const { session, turn: nextTurn } = await openWithToken(token);
    speak(session);
    const turn = await nextTurn();
    session.close();
    assert.equal(transcript(turn, "inputTranscription"), "(1.2 seconds of audio)");
    const reply = transcript(turn, "outputTranscription");
    assert.equal(reply, "I heard 1.2 seconds of audio.");
    assert.equal(audioBytes(turn), replyBytes(reply));
  });

  test("text: the reply's output transcription is its text; its audio is not for playing", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "text");
    assert.equal(token.presentation, "transcript");
    assert.equal(token.connect.model, "gemini-3.8-live");
    assert.deepEqual(token.connect.config.responseModalities, ["AUDIO"]);
    assert.deepEqual(token.connect.config.outputAudioTranscription, {});
    const { session, turn: nextTurn } = await openWithToken(token);
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text: "Hello there" }] }], turnComplete: true });
    const turn = await nextTurn();
    session.close();
    assert.equal(replyText(token, turn), "You said: Hello there");
    assert.deepEqual(texts(turn), Array(texts(turn).length).fill("")); // no text parts: audio only, as Google
    assert.equal(audioBytes(turn), replyBytes("You said: Hello there"));
  });

  test("tools: a non-blocking call answered with WHEN_IDLE is spoken after the reply in progress", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "tools");
    const behaviors = token.connect.config.tools.flatMap((t) => t.functionDeclarations.map((f) => [f.name, f.behavior]));
    assert.deepEqual(behaviors, [
      ["get_current_time", "NON_BLOCKING"],
      ["calculate", "BLOCKING"],
    ]);
    const { session, next, turn: nextTurn } = await openWithToken(token);
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text: "get_current_time" }] }], turnComplete: true });
    const { toolCall } = await next((m) => m.toolCall);
    assert.equal(toolCall.functionCalls.length, 1);
    const [call] = toolCall.functionCalls;
    assert.equal(call.name, "get_current_time");
    assert.deepEqual(call.args, {});
    // The model does not wait for the call: it is already speaking. Answer while it speaks, to be spoken when idle.
    const speaking = await next((m) => m.serverContent?.modelTurn?.parts?.[0]?.inlineData);
    const response = { utc: "2026-12-05T12:00:00.000Z" };
    session.sendToolResponse({
      functionResponses: [{ id: call.id, name: call.name, response, scheduling: FunctionResponseScheduling.WHEN_IDLE }],
    });
    const interim = [speaking, ...(await nextTurn())];
    const result = await nextTurn();
    session.close();
    assert.equal(FunctionResponseScheduling.WHEN_IDLE, "WHEN_IDLE");
    assert.equal(interim.filter((m) => m.serverContent?.interrupted).length, 0); // WHEN_IDLE: nothing cut off
    assert.equal(transcript(interim, "outputTranscription"), "Checking get_current_time.");
    assert.equal(audioBytes(interim), replyBytes("Checking get_current_time."));
    const spoken = transcript(result, "outputTranscription");
    assert.equal(spoken, 'get_current_time returned {"utc": "2026-12-05T12:00:00.000Z"}.');
    assert.equal(audioBytes(result), replyBytes(spoken));
  });

  test("tools: a blocking call answered with sendToolResponse", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "tools");
    const { session, next, turn: nextTurn } = await openWithToken(token);
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text: "calculate 6*7" }] }], turnComplete: true });
    const { toolCall } = await next((m) => m.toolCall);
    assert.equal(toolCall.functionCalls.length, 1);
    const [call] = toolCall.functionCalls;
    assert.equal(call.name, "calculate");
    assert.deepEqual(call.args, { expression: "6*7" });
    session.sendToolResponse({ functionResponses: [{ id: call.id, name: call.name, response: { result: 42 } }] });
    const turn = await nextTurn();
    session.close();
    const reply = transcript(turn, "outputTranscription");
    assert.equal(reply, 'calculate returned {"result": 42}.');
    assert.equal(audioBytes(turn), replyBytes(reply));
  });

  test("video: frames sent with realtimeInput.video are counted in the answer", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "video");
    assert.equal(token.presentation, "voice");
    assert.equal(token.connect.config.mediaResolution, "MEDIA_RESOLUTION_LOW");
    const { session, turn: nextTurn } = await openWithToken(token);
    for (let i = 0; i < 3; i++) session.sendRealtimeInput({ video: { data: JPEG, mimeType: "image/jpeg" } });
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text: "What do you see?" }] }], turnComplete: true });
    const turn = await nextTurn();
    session.close();
    const reply = transcript(turn, "outputTranscription");
    assert.equal(reply, "I saw 3 frames. You said: What do you see?");
    assert.equal(audioBytes(turn), replyBytes(reply));
    const [usage] = turn.filter((m) => m.usageMetadata).map((m) => m.usageMetadata.promptTokensDetails);
    assert.deepEqual(usage, [
      { modality: "TEXT", tokenCount: 4 },
      { modality: "IMAGE", tokenCount: 3 * 258 },
    ]);
  });

  test("a token opens one session: the second is refused with 1008", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "text");
    assert.equal(token.uses, 1);
    const first = await openWithToken(token);
    first.session.close();
    await assert.rejects(openWithToken(token), {
      code: 1008,
      reason: "Unauthenticated: ephemeral token has no uses left",
    });
  });

  test("a token past its new-session window is refused with 1008", async () => {
    const token = await fetchToken(env.LIVETOKEN_LATE_URL, env.LIVETOKEN_LATE_JWT, "late");
    const window = Date.parse(token.new_session_expire_time) - Date.now();
    assert.ok(window > 0 && window <= 1000, `new-session window of ${window} ms`);
    await sleep(window + 100);
    await assert.rejects(openWithToken(token), {
      code: 1008,
      reason: "Unauthenticated: new session window of this ephemeral token has passed",
    });
  });

  test("the emulator's API key through the SDK's ?key= route", async () => {
    const { session, turn: nextTurn } = await open(emulatorClient(), "gemini-3.8-live", {
      responseModalities: [Modality.AUDIO],
      outputAudioTranscription: {},
    });
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text: "Hello key" }] }], turnComplete: true });
    const turn = await nextTurn();
    session.close();
    const reply = transcript(turn, "outputTranscription");
    assert.equal(reply, "You said: Hello key");
    assert.equal(audioBytes(turn), replyBytes(reply));
  });

  test("TEXT replies from gemini-3.8-live are refused with 1007, as Google does", async () => {
    await assert.rejects(open(emulatorClient(), "gemini-3.8-live", { responseModalities: [Modality.TEXT] }), {
      code: 1007,
      reason: TEXT_REFUSED,
    });
  });
});
