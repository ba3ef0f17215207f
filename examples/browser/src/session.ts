// Opening the Live session with a livetoken token, using only what the token answer's `connect` says.
import { GoogleGenAI, type LiveConnectConfig, type LiveServerMessage, type Session } from "@google/genai";
import type { TokenResponse } from "./token";

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

/** Open a Live session; rejects with SessionRefused when the server refuses it or stays silent. */
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
