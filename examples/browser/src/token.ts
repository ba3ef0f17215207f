// The page's own calls to livetoken besides the token (src/live-session.ts): the profiles this caller may use.
import type { components } from "./api.gen";
import { refusal } from "./live-session";

export type { TokenResponse } from "./live-session";
export type ProfileInfo = components["schemas"]["ProfileInfo"];
/** "voice": play the reply's audio; "transcript": show its output transcription as the reply, play nothing. */
export type Presentation = components["schemas"]["TokenResponse"]["presentation"];

/** GET /v1/profiles: the profiles this caller may ask for. Throws TokenRefused on a refusal. */
export async function fetchProfiles(service: string, jwt: string): Promise<ProfileInfo[]> {
  const response = await fetch(`${service}/v1/profiles`, { headers: { Authorization: `Bearer ${jwt}` } });
  if (!response.ok) throw await refusal(response);
  return ((await response.json()) as components["schemas"]["ProfileList"]).profiles;
}
