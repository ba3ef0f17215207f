// Talking to livetoken: the caller's JWT buys a single-use Live API token; the Gemini API key stays on the server.
import type { components } from "./api.gen";

export type TokenResponse = components["schemas"]["TokenResponse"];
export type ProfileInfo = components["schemas"]["ProfileInfo"];
/** "voice": play the reply's audio; "transcript": show its output transcription as the reply, play nothing. */
export type Presentation = TokenResponse["presentation"];
type Problem = components["schemas"]["Problem"];

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

/** POST /v1/tokens. Throws TokenRefused on a refusal, TypeError when the service cannot be reached. */
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

/** GET /v1/profiles: the profiles this caller may ask for. */
export async function fetchProfiles(service: string, jwt: string): Promise<ProfileInfo[]> {
  const response = await fetch(`${service}/v1/profiles`, { headers: { Authorization: `Bearer ${jwt}` } });
  if (!response.ok) throw await refusal(response);
  return ((await response.json()) as components["schemas"]["ProfileList"]).profiles;
}

async function refusal(response: Response): Promise<TokenRefused> {
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
