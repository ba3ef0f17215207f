// A Gemini Live session that outlives its connections, on livetoken tokens. Copy this file whole: it needs only
// @google/genai and the types generated from livetoken's openapi.yaml (`npm run api-types`, see the README).
//
// - requestToken(): POST /v1/tokens, retrying 429 and 503 after Retry-After with a countdown you can show;
// - LiveSession.start(): opens the session with only what the token answer's `connect` says;
// - the newest resumption handle is kept; on goAway (at a quiet moment) or a resumable close the session moves to
//   a new connection with it, on the same token while the token is valid, else on a fresh token (a new session);
// - explainClose(): every close code the Live API uses, as a sentence for the user.
import {
  GoogleGenAI,
  type LiveConnectConfig,
  type LiveSendClientContentParameters,
  type LiveSendRealtimeInputParameters,
  type LiveSendToolResponseParameters,
  type LiveServerMessage,
  type Session,
} from "@google/genai";
import type { components } from "./api.gen";

export type TokenResponse = components["schemas"]["TokenResponse"];
type Problem = components["schemas"]["Problem"];

/** Closes after which the session may go on: normal (the connection's time is up), going away, lost, server error. */
export const RESUMABLE_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1001, 1006, 1011]);
const RETRIED_STATUSES = new Set([429, 503]);
const RESUME_MARGIN_MS = 5_000; // a token this close to expire_time is not worth resuming on: take a fresh one
const MAX_RECONNECT_FAILURES = 3; // in a row, before the session is given up as lost
const MAX_REPLAY_BYTES = 2_000_000; // at most this much kept to send again on resuming (about 45 s of audio)

// ---------------------------------------------------------------------------------------------------------------
// Tokens

/** livetoken said no: what the user needs to see, from the problem+json body and the Retry-After header. */
export class TokenRefused extends Error {
  constructor(
    readonly status: number,
    readonly title: string,
    readonly detail: string,
    /** Seconds to wait (429 rate-limited, 503), when the service says. */
    readonly retryAfter: number | null,
  ) {
    super(`${status} ${title}: ${detail}`);
    this.name = "TokenRefused";
  }
}

/** POST /v1/tokens once. Throws TokenRefused on a refusal, TypeError when the service cannot be reached. */
export async function fetchToken(service: string, jwt: string, profile: string): Promise<TokenResponse> {
  // snippet: web-token
  const response = await fetch(`${service}/v1/tokens`, {
    method: "POST",
    headers: { Authorization: `Bearer ${jwt}`, "Content-Type": "application/json" },
    body: JSON.stringify({ profile }),
  });
  if (!response.ok) throw await refusal(response); // problem+json title/detail, Retry-After on 429 and 503
  const token = (await response.json()) as TokenResponse;
  // /snippet
  return token;
}

/**
 * POST /v1/tokens with a Firebase App Check token in `X-Firebase-AppCheck`: for profiles with `require_app_check`
 * (send the user's JWT too), or, with `jwt` null, for `anonymous` ones (a landing-page demo without sign-in).
 * Get the App Check token from the Firebase JS SDK: `(await getToken(appCheck)).token`.
 */
export async function fetchTokenWithAppCheck(
  service: string,
  jwt: string | null,
  profile: string,
  appCheckToken: string,
): Promise<TokenResponse> {
  // snippet: web-app-check
  const headers: Record<string, string> = { "Content-Type": "application/json", "X-Firebase-AppCheck": appCheckToken };
  if (jwt !== null) headers.Authorization = `Bearer ${jwt}`; // anonymous profiles: App Check alone
  const response = await fetch(`${service}/v1/tokens`, { method: "POST", headers, body: JSON.stringify({ profile }) });
  if (!response.ok) throw await refusal(response); // 401 app-check-invalid: missing or invalid App Check token
  // /snippet
  return (await response.json()) as TokenResponse;
}

/** A refused livetoken response as TokenRefused (its problem+json title and detail, and Retry-After). */
export async function refusal(response: Response): Promise<TokenRefused> {
  const retry = response.headers.get("Retry-After");
  const retryAfter = retry !== null && /^\d+$/.test(retry) ? Number(retry) : null;
  let problem: Partial<Problem> = {};
  if ((response.headers.get("Content-Type") ?? "").includes("json")) {
    problem = (await response.json().catch(() => ({}))) as Partial<Problem>;
  }
  return new TokenRefused(
    response.status,
    problem.title ?? (response.statusText || "Error"),
    problem.detail ?? "",
    retryAfter,
  );
}

/** A wait before the next token request: call it once a second, with the seconds left. */
export interface RetryWait {
  status: number; // 429 (rate limited) or 503 (unavailable)
  title: string; // the problem's title
  secondsLeft: number;
  attempt: number; // the try that was refused, from 1
  maxTries: number;
}

/** Where tokens come from: the same livetoken, user and profile for the first token and any fresh one. */
export interface TokenSource {
  service: string;
  /** The user's JWT, read at each request (your app may have refreshed it meanwhile); null: none (App Check alone). */
  jwt: () => string | null;
  profile: string;
  /** Tries in all when livetoken answers 429 or 503 (default 4; 1: no retry). */
  maxTries?: number;
  /** A Retry-After longer than this many seconds is not waited for: the refusal is thrown at once (default 30). */
  maxWaitSeconds?: number;
  /** Called each second of a wait: show it ("Rate limited — retrying in 3 s"). */
  onWait?: (wait: RetryWait) => void;
  /** A fresh Firebase App Check token for each request, for profiles with `require_app_check` (see
   * fetchTokenWithAppCheck); with it, `jwt` may return null for `anonymous` profiles. */
  appCheck?: () => Promise<string>;
}

/** A token from `source`, retrying 429 and 503 after Retry-After (2, 4, 8 s when absent). Throws as fetchToken. */
export async function requestToken(source: TokenSource): Promise<TokenResponse> {
  const maxTries = Math.max(1, source.maxTries ?? 4);
  for (let attempt = 1; ; attempt++) {
    try {
      return source.appCheck
        ? await fetchTokenWithAppCheck(source.service, source.jwt(), source.profile, await source.appCheck())
        : await fetchToken(source.service, source.jwt() ?? "", source.profile);
    } catch (error) {
      if (!(error instanceof TokenRefused) || !RETRIED_STATUSES.has(error.status) || attempt >= maxTries) throw error;
      const seconds = Math.max(1, error.retryAfter ?? 2 ** attempt);
      if (seconds > (source.maxWaitSeconds ?? 30)) throw error;
      for (let secondsLeft = seconds; secondsLeft > 0; secondsLeft--) {
        source.onWait?.({ status: error.status, title: error.title, secondsLeft, attempt, maxTries });
        await sleep(1000);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// One connection

/** The Live API closed the WebSocket instead of starting the session (or never answered). */
export class SessionRefused extends Error {
  constructor(
    /** The WebSocket close code (1008: token unknown, used, expired or past its new-session window); 0: timeout. */
    readonly code: number,
    readonly reason: string,
  ) {
    super(code ? `closed with ${code}: ${reason}` : reason);
    this.name = "SessionRefused";
  }
}

export interface SessionEvents {
  onmessage: (message: LiveServerMessage) => void;
  /** The session ended after it had started (server close, network loss, or our own close()). */
  onclose: (event: CloseEvent) => void;
}

/** Open one Live connection; rejects with SessionRefused when the server refuses it or stays silent. */
export async function openSession(token: TokenResponse, events: SessionEvents, timeoutMs = 10_000): Promise<Session> {
  // snippet: web-connect
  const { connect } = token; // base_url, api_version, model and the locked config: never hard-code them
  const ai = new GoogleGenAI({
    apiKey: token.token, // "auth_tokens/…": one session, which must start before new_session_expire_time
    httpOptions: { baseUrl: connect.base_url, apiVersion: connect.api_version }, // apiVersion: "v1alpha"
  });
  // A refused token is closed with 1008 and a reason right after the WebSocket opens: ai.live.connect() then
  // never settles and only onclose hears it. So race connect() against onclose and a timeout.
  let started = false;
  let refuse: (error: SessionRefused) => void = () => {};
  const refused = new Promise<never>((_, reject) => (refuse = reject));
  const timer = setTimeout(() => refuse(new SessionRefused(0, `no answer within ${timeoutMs / 1000} s`)), timeoutMs);
  const connecting = ai.live.connect({
    model: connect.model,
    config: connect.config as LiveConnectConfig, // the Live API's camelCase JSON: pass it unchanged
    callbacks: {
      onmessage: (message: LiveServerMessage) => {
        started = true; // the first one is setupComplete, delivered just before connect() resolves
        events.onmessage(message);
      },
      onclose: (event: CloseEvent) => {
        if (started) events.onclose(event);
        else refuse(new SessionRefused(event.code, event.reason));
      },
    },
  });
  try {
    return await Promise.race([connecting, refused]);
  } catch (error) {
    void connecting.then((late) => late.close()); // gave up (timeout): close it should it open after all
    throw error;
  } finally {
    clearTimeout(timer);
  }
  // /snippet
}

/** The same token with a resumption handle added to its config: the connection resumes that session. */
function withHandle(token: TokenResponse, handle: string): TokenResponse {
  const config = token.connect.config as LiveConnectConfig;
  const sessionResumption = { ...config.sessionResumption, handle };
  return { ...token, connect: { ...token.connect, config: { ...config, sessionResumption } } };
}

// ---------------------------------------------------------------------------------------------------------------
// What a close means

/** The Live API's session limit, from a close reason: 15 min audio-only, 2 min with video (Google's figures). */
function sessionLimit(reason: string): { video: boolean; seconds: number } | "unspecified" | null {
  if (!/session limit/i.test(reason)) return null;
  const stated = /(audio\+video|audio-only) sessions last (\d+(?:\.\d+)?)s/.exec(reason);
  return stated ? { video: stated[1] === "audio+video", seconds: Number(stated[2]) } : "unspecified";
}

function duration(seconds: number): string {
  if (seconds >= 60 && seconds % 60 === 0) return `${seconds / 60} minute${seconds === 60 ? "" : "s"}`;
  return `${seconds} second${seconds === 1 ? "" : "s"}`;
}

/** A close code and reason from the Live API as one sentence a user understands. */
export function explainClose(code: number, reason: string): string {
  switch (code) {
    case 1000:
      return "The Live API closed the connection normally: a connection lasts about 10 minutes.";
    case 1001:
      return "The Live API's server went away (a restart or maintenance).";
    case 1006:
      return "The connection was lost without a word from the Live API (network, or an untrusted certificate).";
    case 1007:
      return "The Live API refused the session's settings as invalid, e.g. a response modality the model lacks.";
    case 1008:
      return explainPolicy(reason);
    case 1011:
      return "The Live API failed on its side (an internal error, or the project's quota is used up).";
    default:
      return `The connection to the Live API closed (code ${code}).`;
  }
}

function explainPolicy(reason: string): string {
  const limit = sessionLimit(reason);
  if (limit === "unspecified") {
    return "This conversation reached the Live API's time limit (15 minutes audio-only, 2 with video).";
  }
  if (limit !== null) {
    const kind = limit.video ? "with video" : "audio-only";
    return `This conversation reached the Live API's time limit for sessions ${kind}: ${duration(limit.seconds)}.`;
  }
  if (/no uses left/i.test(reason)) return "This token has already opened its session: a token opens only one.";
  if (/new session window/i.test(reason)) {
    return "This token waited too long: a session must start soon after its token is issued (60 s by default).";
  }
  if (/expired/i.test(reason)) return "The token has expired.";
  if (/resumption handle/i.test(reason)) return "The Live API could not resume this session from its handle.";
  if (/not found|not supported/i.test(reason)) {
    return "The model is not available to the Live API (unknown, or shut down).";
  }
  if (/unauthenticated|token|api key/i.test(reason)) return "The Live API did not accept the token.";
  return "The Live API refused this by policy.";
}

// ---------------------------------------------------------------------------------------------------------------
// A session across connections

/** Why a session is over for good. */
export interface SessionEnd {
  /** "limit": the session's own time limit; "refused": the Live API or livetoken said no; "lost": no new connection. */
  kind: "limit" | "refused" | "lost";
  /** One sentence for the user. */
  message: string;
  /** The close code and the server's own reason (code 0: no close, e.g. livetoken refused a fresh token). */
  code: number;
  reason: string;
}

export interface LiveSessionEvents {
  /** Every server message, whichever connection carries the session. */
  onmessage: (message: LiveServerMessage) => void;
  /** The session is moving to a new connection (`why`: a sentence); what you send meanwhile is kept and sent then. */
  onreconnecting?: (why: string) => void;
  /** The session runs on a new connection: `resumed` (it continues), or a new session on a fresh token. */
  onreconnected?: (resumed: boolean) => void;
  /** The session is over and will not come back (not called after your own close()). */
  onend: (end: SessionEnd) => void;
}

type State = "connecting" | "open" | "reconnecting" | "closed";

interface Outgoing {
  send: (session: Session) => void;
  bytes: number;
  sent: boolean;
}

/** A Live session that moves to a new connection when the Live API lets go of the current one. */
export class LiveSession {
  /** Connections after the first (resumed or new sessions). */
  reconnections = 0;
  private session: Session | null = null;
  private connection = 0; // the current connection's number: events of older ones are ignored
  private state: State = "connecting";
  private handle: string | null = null; // the newest resumption handle
  private turnUnderWay = false; // the user's turn was heard, or the model answers: not a moment to move
  private turnEnded = false; // a turn has completed since the outbox was last emptied
  private moveWhenIdle = false; // a goAway asked us to move
  private announcedEnd = 0; // when the last goAway said its connection ends (ms since the epoch)
  private outbox: Outgoing[] = []; // sent since the last turn the session holds, and what waits for a connection
  private readonly resumable: boolean;

  private constructor(
    private readonly source: TokenSource,
    private readonly events: LiveSessionEvents,
    private currentToken: TokenResponse,
    private readonly timeoutMs: number,
  ) {
    this.resumable = "sessionResumption" in currentToken.connect.config;
  }

  /**
   * Open a session with `token` (else one from `source`); a fresh token later comes from `source` too. Rejects
   * with TokenRefused, SessionRefused or TypeError (livetoken unreachable) when the first connection cannot start.
   */
  static async start(
    source: TokenSource,
    events: LiveSessionEvents,
    options: { token?: TokenResponse; timeoutMs?: number } = {},
  ): Promise<LiveSession> {
    const token = options.token ?? (await requestToken(source));
    const live = new LiveSession(source, events, token, options.timeoutMs ?? 10_000);
    await live.connect(null);
    return live;
  }

  /** The token of the current session (a fresh one after a new session). */
  get token(): TokenResponse {
    return this.currentToken;
  }

  /** Audio, video, text or audioStreamEnd. A video frame sent while reconnecting is dropped (the next one follows). */
  sendRealtimeInput(params: LiveSendRealtimeInputParameters): void {
    const bytes = (params.audio?.data?.length ?? 0) + (params.text?.length ?? 0);
    if (params.video !== undefined || params.media !== undefined) {
      if (this.state === "open") this.session?.sendRealtimeInput(params);
      return;
    }
    this.send((session) => session.sendRealtimeInput(params), bytes);
  }

  sendClientContent(params: LiveSendClientContentParameters): void {
    this.send((session) => session.sendClientContent(params), JSON.stringify(params.turns ?? "").length);
    if (params.turnComplete !== false) this.turnUnderWay = true; // asked: not a moment to move until it is answered
  }

  sendToolResponse(params: LiveSendToolResponseParameters): void {
    this.send((session) => session.sendToolResponse(params), JSON.stringify(params).length);
  }

  /** End the session (no onend follows). */
  close(): void {
    this.state = "closed";
    this.connection += 1;
    this.session?.close();
    this.session = null;
    this.outbox = [];
  }

  private send(send: (session: Session) => void, bytes: number): void {
    if (this.state === "closed") return;
    const sent = this.state === "open" && this.session !== null;
    if (sent) send(this.session as Session);
    if (sent && !this.resumable) return; // nothing to send again: no handle will ever resume it
    this.outbox.push({ send, bytes, sent });
    let total = this.outbox.reduce((sum, item) => sum + item.bytes, 0);
    while (total > MAX_REPLAY_BYTES && this.outbox[0]?.sent) total -= this.outbox.shift()?.bytes ?? 0;
  }

  /** Open a connection (resuming `handle`, or the token's new session) and send what waits for it. */
  private async connect(handle: string | null): Promise<void> {
    const id = ++this.connection;
    const token = handle === null ? this.currentToken : withHandle(this.currentToken, handle);
    const session = await openSession(
      token,
      { onmessage: (message) => this.onmessage(id, message), onclose: (event) => this.onclose(id, event) },
      this.timeoutMs,
    );
    if (this.state === "closed" || id !== this.connection) {
      session.close();
      return;
    }
    this.session = session;
    this.state = "open";
    // Resuming: the session is as it was at the handle, so send again what came after it. A new session: only
    // what was never sent.
    this.outbox = this.outbox.filter((item) => handle !== null || !item.sent);
    for (const item of this.outbox) {
      item.send(session);
      item.sent = true;
    }
    if (!this.resumable) this.outbox = [];
    this.moveIfIdle();
  }

  private onmessage(id: number, message: LiveServerMessage): void {
    if (id !== this.connection) return; // a connection we have left
    const content = message.serverContent;
    if (content?.inputTranscription || content?.modelTurn || message.toolCall) this.turnUnderWay = true;
    if (content?.turnComplete || content?.interrupted) this.turnUnderWay = false;
    if (content?.turnComplete) this.turnEnded = true;
    const update = message.sessionResumptionUpdate;
    if (update?.newHandle && update.resumable !== false) {
      this.handle = update.newHandle;
      // A handle after a completed turn holds what was sent before it. Other handles (one comes with every new
      // connection) may not hold what was sent meanwhile, so that is kept, to be sent again on resuming.
      if (this.turnEnded && this.state === "open") {
        this.outbox = this.outbox.filter((item) => !item.sent);
        this.turnEnded = false;
      }
    }
    this.events.onmessage(message);
    if (message.goAway) this.onGoAway(message.goAway.timeLeft);
    this.moveIfIdle();
  }

  private onGoAway(timeLeft: string | undefined): void {
    const end = Date.now() + 1000 * (Number.parseFloat(timeLeft ?? "0") || 0);
    // A new connection told of the end the last one was: that end is the session's (its time limit), which no
    // connection escapes. Wait for the close, which says why.
    const sameEnd = end <= this.announcedEnd + 1000;
    this.announcedEnd = end;
    // The token's own end (expire_time) closes any connection on it: wait for that close too.
    const tokenEnds = end >= Date.parse(this.currentToken.expire_time) - 1000;
    this.moveWhenIdle = !sameEnd && !tokenEnds;
  }

  private moveIfIdle(): void {
    if (!this.moveWhenIdle || this.turnUnderWay || this.state !== "open") return;
    if (this.resumable && this.turnEnded) return; // the handle that holds the finished turn comes next: wait for it
    void this.reconnect("The Live API asked to move this session to a new connection (goAway).", false);
  }

  private onclose(id: number, event: CloseEvent): void {
    if (id !== this.connection || this.state !== "open") return; // a connection we left or are leaving
    this.session = null;
    const { code, reason } = event;
    if (code === 1008 && sessionLimit(reason) !== null) {
      this.end({ kind: "limit", message: explainClose(code, reason), code, reason });
    } else if (code === 1008 && /expired/i.test(reason)) {
      void this.reconnect(explainClose(code, reason), true);
    } else if (RESUMABLE_CLOSE_CODES.has(code)) {
      void this.reconnect(explainClose(code, reason), false);
    } else {
      this.end({ kind: "refused", message: explainClose(code, reason), code, reason });
    }
  }

  /** Move to a new connection: resume with the newest handle on a valid token, else a new session on a fresh one. */
  private async reconnect(why: string, fresh: boolean): Promise<void> {
    if (this.state !== "open") return;
    this.state = "reconnecting";
    this.moveWhenIdle = false;
    this.turnUnderWay = false;
    this.turnEnded = false;
    this.connection += 1; // what the old connection still says or does is no longer ours
    this.session?.close();
    this.session = null;
    this.events.onreconnecting?.(why);
    for (let failures = 0; ; ) {
      const left = Date.parse(this.currentToken.expire_time) - Date.now();
      const resume = !fresh && this.handle !== null && left > RESUME_MARGIN_MS;
      try {
        if (!resume) {
          this.currentToken = await requestToken(this.source);
          this.handle = null;
          if (this.isIn("closed")) return;
        }
        await this.connect(resume ? this.handle : null);
        if (!this.isIn("open")) return; // closed meanwhile
        this.reconnections += 1;
        this.events.onreconnected?.(resume);
        return;
      } catch (error) {
        if (this.isIn("closed")) return;
        const refused = error instanceof SessionRefused ? error : null;
        if (refused !== null && refused.code === 1008 && sessionLimit(refused.reason) !== null) {
          return this.end({ kind: "limit", message: explainClose(1008, refused.reason), ...closeOf(refused) });
        }
        if (refused !== null && refused.code === 1008 && resume) {
          fresh = true; // the token or the handle would not do (expired, unknown): a new session on a fresh token
          continue;
        }
        if (refused !== null && (refused.code === 1007 || refused.code === 1008)) {
          const message = explainClose(refused.code, refused.reason);
          return this.end({ kind: "refused", message, ...closeOf(refused) });
        }
        if (error instanceof TokenRefused) {
          const message = `livetoken refused a new token: ${error.status} ${error.title}. ${error.detail}`.trim();
          return this.end({ kind: "refused", message, code: 0, reason: "" });
        }
        failures += 1;
        if (failures >= MAX_RECONNECT_FAILURES) {
          const { code, reason } = refused !== null ? closeOf(refused) : { code: 0, reason: String(error) };
          const message = `Could not reconnect after ${failures} tries. ${code ? explainClose(code, reason) : reason}`;
          return this.end({ kind: "lost", message, code, reason });
        }
        await sleep(1000 * failures);
      }
    }
  }

  /** The state now (a method: TypeScript would keep a narrowed `this.state` across awaits). */
  private isIn(state: State): boolean {
    return this.state === state;
  }

  private end(end: SessionEnd): void {
    this.close();
    this.events.onend(end);
  }
}

function closeOf(refused: SessionRefused): { code: number; reason: string } {
  return { code: refused.code, reason: refused.reason };
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
