// The page: wires the token, the Live session, microphone, playback, video and tools to the controls.
import {
  FunctionResponseScheduling,
  type FunctionCall,
  type FunctionResponse,
  type LiveConnectConfig,
  type LiveServerMessage,
} from "@google/genai";
import { Microphone } from "./audio-in";
import { Player } from "./audio-out";
import { base64ToBytes, bytesToBase64 } from "./base64";
import { requestedProfile, serviceUrl, takeJwtFromFragment } from "./inputs";
import {
  explainClose,
  LiveSession,
  requestToken,
  SessionRefused,
  TokenRefused,
  type RetryWait,
  type SessionEnd,
  type TokenSource,
} from "./live-session";
import { fetchProfiles } from "./token";
import type { Presentation, ProfileInfo, TokenResponse } from "./token";
import { nonBlockingFunctions, runTool } from "./tools";
import { clearError, setControls, setMeter, setStatus, showError, Transcript, ui } from "./ui";
import { VideoShare, type VideoKind } from "./video";

const service = serviceUrl(window.location);
const transcript = new Transcript(ui.transcript);

let profiles: ProfileInfo[] = [];
let lastToken: TokenResponse | null = null;
let live: LiveSession | null = null; // the session, across its connections (src/live-session.ts)
let player: Player | null = null;
let mic: Microphone | null = null;
let video: VideoShare | null = null;
let presentation: Presentation = "voice"; // the token's: "transcript" shows the reply's transcript, plays nothing
let nonBlocking = new Set<string>(); // the functions this session's config declares NON_BLOCKING
let unplayedChunks = 0; // reply audio received and not played (a "transcript" profile)

/** An error as the heading and lines the page shows. */
function describe(error: unknown, refused = "Token refused"): [string, ...string[]] {
  if (error instanceof TokenRefused) {
    const retry = error.retryAfter === null ? "" : `Retry after ${error.retryAfter} s.`;
    return [refused, `${error.status} ${error.title}`, error.detail, retry];
  }
  if (error instanceof SessionRefused) {
    if (error.code === 0) return ["Live session refused", `The Live API sent ${error.reason}.`];
    return ["Live session refused", explainClose(error.code, error.reason), closeLine(error.code, error.reason)];
  }
  if (error instanceof TypeError) {
    return ["Network error", `Could not reach livetoken at ${service} (is it running, and does it allow this origin?)`];
  }
  if (error instanceof DOMException && error.name === "NotAllowedError") {
    return ["Permission denied", "The browser (or the user) did not allow the microphone, camera or screen."];
  }
  return ["Error", error instanceof Error ? error.message : String(error)];
}

async function loadProfiles(): Promise<void> {
  const jwt = ui.jwt.value.trim();
  if (!jwt) return;
  try {
    profiles = await fetchProfiles(service, jwt);
  } catch (error) {
    showError(...describe(error, "Could not list the profiles"));
    return;
  }
  clearError();
  const wanted = requestedProfile(window.location) ?? ui.profile.value;
  ui.profile.replaceChildren(
    ...profiles.map((p) => {
      const replies = p.presentation === "transcript" ? "text replies" : "spoken replies";
      return new Option(`${p.name} (${replies})`, p.name);
    }),
  );
  if (profiles.some((p) => p.name === wanted)) ui.profile.value = wanted;
  showProfile();
}

function showProfile(): void {
  const profile = profiles.find((p) => p.name === ui.profile.value);
  if (profile === undefined) {
    ui.profileDescription.textContent = "";
    return;
  }
  const shutdown = profile.model_shutdown ? `, shuts down ${profile.model_shutdown}` : "";
  ui.profileDescription.textContent =
    `${profile.description} Model ${profile.model} (${profile.model_status}${shutdown})` +
    (profile.voice ? `, voice ${profile.voice}` : "") +
    (profile.tools.length ? `; tools: ${profile.tools.join(", ")}` : "") +
    (profile.presentation === "transcript" ? "; replies shown as text, not played" : "");
}

function closeLine(code: number, reason: string): string {
  return `Close code ${code}: ${reason || "(no reason given)"}`;
}

function connectedStatus(token: TokenResponse): string {
  const voice = token.voice ? ` (voice ${token.voice})` : "";
  const replies = token.presentation === "transcript" ? ", replies shown as text" : "";
  return `Connected: ${token.profile} on ${token.model}${voice}${replies}`;
}

/** A token request refused with 429 or 503 is retried after Retry-After: count the wait down where the user looks. */
function showRetryWait(wait: RetryWait): void {
  const what = wait.status === 429 ? "Rate limited" : "livetoken is unavailable";
  setStatus(`${what} — retrying in ${wait.secondsLeft} s`, "busy");
}

/** The token Connect uses: a new one (with retries), or the last one again (a developer option, to see it refused). */
async function firstToken(source: TokenSource): Promise<TokenResponse> {
  if (ui.reuseToken.checked && lastToken !== null) {
    setStatus("Opening the Live session with the last token…", "busy");
    return lastToken;
  }
  setStatus("Fetching a token…", "busy");
  lastToken = await requestToken(source);
  setStatus("Opening the Live session…", "busy");
  return lastToken;
}

/** How this session's replies are shown (the token's presentation) and which of its functions are non-blocking. */
function useToken(token: TokenResponse): void {
  presentation = token.presentation;
  nonBlocking = nonBlockingFunctions(token.connect.config as LiveConnectConfig);
  unplayedChunks = 0;
  if (presentation === "transcript") {
    player?.close(); // a text profile: the model's audio is never played, its transcript is the reply
    player = null;
  }
}

async function connect(): Promise<void> {
  clearError();
  if (!ui.jwt.value.trim()) {
    showError("No JWT", "Paste your user's JWT, or open this page with #jwt=… in its address.");
    return;
  }
  setControls("busy");
  player = new Player(updateMeters); // in the click handler: browsers only let audio start after a user gesture
  try {
    // snippet: web-live-session
    const source: TokenSource = {
      service, // livetoken's URL
      jwt: () => ui.jwt.value.trim(), // read at each request: a later fresh token goes with the JWT of that moment
      profile: ui.profile.value,
      maxTries: ui.retryToken.checked ? 4 : 1, // 429 and 503 are retried after Retry-After (4 tries by default)
      onWait: showRetryWait, // once a second while waiting: "Rate limited — retrying in 3 s"
    };
    const token = await firstToken(source); // requestToken(source), or the last token again (developer option)
    useToken(token);
    live = await LiveSession.start(source, { onmessage, onreconnecting, onreconnected, onend }, { token });
    // /snippet
    setStatus(connectedStatus(token), "connected");
    setControls("connected");
    updateMeters();
  } catch (error) {
    teardown();
    setStatus("Not connected", "idle");
    showError(...describe(error));
    return;
  }
  if (ui.micOnConnect.checked) await guard(toggleMic)();
}

function onmessage(message: LiveServerMessage): void {
  const content = message.serverContent;
  if (content?.interrupted) {
    player?.interrupt();
    transcript.interrupted();
  }
  if (content?.inputTranscription?.text) transcript.append("user", content.inputTranscription.text);
  for (const part of content?.modelTurn?.parts ?? []) {
    if (part.inlineData?.data && part.inlineData.mimeType?.startsWith("audio/pcm")) {
      if (presentation === "transcript") {
        unplayedChunks += 1; // today's Live models answer in audio only: a text profile shows the transcript
      } else {
        player?.play(base64ToBytes(part.inlineData.data));
        transcript.modelSpeaking();
      }
    } else if (part.text) {
      transcript.append("model", part.text);
    }
  }
  if (content?.outputTranscription?.text) transcript.append("model", content.outputTranscription.text);
  if (content?.turnComplete) transcript.endTurn();
  if (message.toolCall?.functionCalls?.length) answerToolCalls(message.toolCall.functionCalls);
  if (message.toolCallCancellation?.ids?.length) {
    transcript.add("tool", `cancelled: ${message.toolCallCancellation.ids.join(", ")}`);
  }
  updateMeters();
}

/** Run the model's function calls and answer them at once; playback goes on meanwhile. */
function answerToolCalls(calls: FunctionCall[]): void {
  // snippet: web-tool-response
  const functionResponses: FunctionResponse[] = calls.map((call) => {
    const name = call.name ?? "";
    const answer: FunctionResponse = { id: call.id ?? "", name, response: runTool(name, call.args) };
    // NON_BLOCKING (the model went on talking): have the result spoken once the model is idle, after the reply
    // in progress, rather than cut it off (INTERRUPT) or keep it silent (SILENT). A BLOCKING call's turn waits
    // for this answer, and `scheduling` does not apply to it.
    if (nonBlocking.has(name)) answer.scheduling = FunctionResponseScheduling.WHEN_IDLE; // wire: "WHEN_IDLE"
    return answer;
  });
  live?.sendToolResponse({ functionResponses });
  // /snippet
  calls.forEach((call, i) => {
    const { name, response, scheduling } = functionResponses[i] ?? {};
    const when = scheduling ? ` (non-blocking, ${scheduling})` : "";
    transcript.add("tool", `${name}(${JSON.stringify(call.args ?? {})}) → ${JSON.stringify(response)}${when}`);
  });
}

// snippet: web-live-session-events
/** The Live API let go of the connection: the session moves to a new one, microphone, camera and playback going on. */
function onreconnecting(why: string): void {
  transcript.interrupted(); // a reply the closed connection cut short stays as far as it came
  transcript.endTurn();
  setStatus(`Reconnecting: ${why}`, "busy");
}

function onreconnected(resumed: boolean): void {
  transcript.add(
    "note",
    resumed
      ? "Reconnected, session continues."
      : "Reconnected with a new token: a new session started, and the model does not remember what came before.",
  );
  if (live !== null) setStatus(connectedStatus(live.token), "connected");
}

const ENDINGS: Record<SessionEnd["kind"], string> = {
  limit: "Session over",
  refused: "The Live session ended",
  lost: "Connection lost",
};

/** The session is over for good: say why, plainly, and stop everything. */
function onend(end: SessionEnd): void {
  teardown();
  transcript.add("note", end.message);
  setStatus(end.kind === "limit" ? "Session over" : "Not connected", "idle");
  const again = end.kind === "limit" ? "Press Connect to start a new conversation." : "";
  showError(ENDINGS[end.kind], end.message, end.code ? closeLine(end.code, end.reason) : "", again);
}
// /snippet

function disconnect(): void {
  teardown();
  setStatus("Disconnected", "idle");
}

/** Close the session (if open) and release microphone, camera and speakers. */
function teardown(): void {
  live?.close();
  mic?.stop();
  video?.stop();
  player?.close();
  [mic, video, player, live] = [null, null, null, null];
  setControls("idle");
  ui.mic.textContent = "Start microphone";
  ui.camera.textContent = "Share camera";
  ui.screen.textContent = "Share screen";
  updateMeters(); // microphone and video off; the reply-audio meter keeps the last session's figures
}

async function toggleMic(): Promise<void> {
  if (mic !== null) {
    mic.stop();
    mic = null;
    live?.sendRealtimeInput({ audioStreamEnd: true }); // lets the Live API finish the turn it was hearing
  } else {
    mic = await Microphone.start((pcm) => {
      const data = bytesToBase64(new Uint8Array(pcm));
      live?.sendRealtimeInput({ audio: { data, mimeType: "audio/pcm;rate=16000" } });
      updateMeters();
    });
  }
  ui.mic.textContent = mic === null ? "Start microphone" : "Stop microphone";
  updateMeters();
}

async function toggleVideo(kind: VideoKind): Promise<void> {
  const wasSharing = video?.kind;
  video?.stop();
  video = null;
  if (wasSharing !== kind) {
    video = await VideoShare.start(
      kind,
      ui.preview,
      (data) => {
        live?.sendRealtimeInput({ video: { data, mimeType: "image/jpeg" } });
        updateMeters();
      },
      () => {
        video = null;
        updateMeters();
      },
    );
  }
  ui.camera.textContent = video?.kind === "camera" ? "Stop camera" : "Share camera";
  ui.screen.textContent = video?.kind === "screen" ? "Stop screen" : "Share screen";
  updateMeters();
}

function updateMeters(): void {
  const sent = mic?.sentSeconds ?? 0;
  setMeter(ui.micMeter, mic ? `on, ${sent.toFixed(1)} s sent` : "off", { seconds: Number(sent.toFixed(1)) });
  const frames = video?.framesSent ?? 0;
  setMeter(ui.videoMeter, video ? `${video.kind}, ${frames} frame${frames === 1 ? "" : "s"} sent` : "off", {
    frames,
  });
  if (player === null && presentation === "transcript") {
    const received = `${unplayedChunks} chunk${unplayedChunks === 1 ? "" : "s"} received`;
    setMeter(ui.audioMeter, `not played (this profile shows the transcript): ${received}`, {
      scheduledSeconds: 0,
      playedSeconds: 0,
      chunks: 0,
      unplayedChunks,
    });
  } else if (player !== null) {
    const { scheduledSeconds: s, playedSeconds: played, chunks, cutSeconds: cut, interruptions } = player;
    const interrupted = interruptions ? `; ${cut.toFixed(2)} s cut by ${interruptions} interruption(s)` : "";
    setMeter(ui.audioMeter, `${played.toFixed(2)} of ${s.toFixed(2)} s played (${chunks} chunks)${interrupted}`, {
      scheduledSeconds: Number(s.toFixed(3)),
      playedSeconds: Number(played.toFixed(3)),
      chunks,
      cutSeconds: Number(cut.toFixed(3)),
      queuedSeconds: Number(player.queuedSeconds.toFixed(3)),
      interruptions,
    });
  }
}

function sendChat(event: SubmitEvent): void {
  event.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!text || live === null) return;
  transcript.endTurn();
  transcript.add("user", text);
  live.sendClientContent({ turns: [{ role: "user", parts: [{ text }] }], turnComplete: true });
  ui.chatInput.value = "";
}

/** Run a click handler, showing what goes wrong (a permission refused, a device missing). */
function guard(action: () => Promise<void>): () => Promise<void> {
  return () => action().catch((error: unknown) => showError(...describe(error)));
}

ui.serviceUrl.textContent = service;
ui.jwt.value = takeJwtFromFragment(window.location, window.history) ?? ui.jwt.value;
ui.jwt.addEventListener("change", () => void loadProfiles());
ui.profile.addEventListener("change", showProfile);
ui.connect.addEventListener("click", () => void connect());
ui.disconnect.addEventListener("click", disconnect);
ui.chat.addEventListener("submit", sendChat);
ui.mic.addEventListener("click", () => void guard(toggleMic)());
ui.camera.addEventListener("click", () => void guard(() => toggleVideo("camera"))());
ui.screen.addEventListener("click", () => void guard(() => toggleVideo("screen"))());
setControls("idle");
setStatus("Not connected", "idle");
void loadProfiles();
