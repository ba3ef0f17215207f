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
const { GoogleGenAI, Modality } = createRequire(join(exampleDir, "package.json"))("@google/genai");
const env = process.env;

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

const texts = (turn) => turn.flatMap((m) => m.serverContent?.modelTurn?.parts ?? []).map((p) => p.text ?? "");
const transcript = (turn, key) => turn.map((m) => m.serverContent?.[key]?.text ?? "").join("");
const audioBytes = (turn) =>
  turn
    .flatMap((m) => m.serverContent?.modelTurn?.parts ?? [])
    .filter((p) => p.inlineData?.mimeType === "audio/pcm;rate=24000")
    .reduce((n, p) => n + Buffer.from(p.inlineData.data, "base64").length, 0);
/** The emulator's reply audio: 60 ms of 24 kHz PCM16 per character of the reply, between 0.5 s and 4 s. */
const replyBytes = (text) => Math.round(Math.min(4, Math.max(0.5, 0.06 * text.length)) * 24_000) * 2;

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
  test("a text turn with a livetoken token", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "text");
    assert.equal(token.connect.api_version, "v1alpha");
    assert.deepEqual(token.connect.config.responseModalities, ["TEXT"]);
    const { session, turn: nextTurn } = await openWithToken(token);
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text: "Hello there" }] }], turnComplete: true });
    const turn = await nextTurn();
    session.close();
    assert.equal(texts(turn).join(""), "You said: Hello there");
  });

  test("an audio turn: 16 kHz PCM in, transcripts and 24 kHz PCM out", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "voice");
    const { session, turn: nextTurn } = await openWithToken(token);
    const pcm = speech(1.0, 0.2);
    for (let offset = 0; offset < pcm.length; offset += 3200) {
      const data = pcm.subarray(offset, offset + 3200).toString("base64");
      session.sendRealtimeInput({ audio: { data, mimeType: "audio/pcm;rate=16000" } });
    }
    session.sendRealtimeInput({ audioStreamEnd: true });
    const turn = await nextTurn();
    session.close();
    assert.equal(transcript(turn, "inputTranscription"), "(1.2 seconds of audio)");
    const reply = transcript(turn, "outputTranscription");
    assert.equal(reply, "I heard 1.2 seconds of audio.");
    assert.equal(audioBytes(turn), replyBytes(reply));
  });

  test("a tool call answered with sendToolResponse", async () => {
    const token = await fetchToken(env.LIVETOKEN_URL, env.LIVETOKEN_JWT, "tools");
    const declared = token.connect.config.tools.flatMap((t) => t.functionDeclarations.map((f) => f.name));
    assert.deepEqual(declared, ["get_current_time", "calculate"]);
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
    const ai = new GoogleGenAI({
      apiKey: env.EMULATOR_API_KEY,
      httpOptions: { baseUrl: env.EMULATOR_BASE_URL, apiVersion: "v1alpha" },
    });
    const { session, turn: nextTurn } = await open(ai, "gemini-2.5-flash-native-audio-preview-12-2025", {
      responseModalities: [Modality.TEXT],
    });
    session.sendClientContent({ turns: [{ role: "user", parts: [{ text: "Hello key" }] }], turnComplete: true });
    const turn = await nextTurn();
    session.close();
    assert.equal(texts(turn).join(""), "You said: Hello key");
  });
});
