// Where the page gets its two inputs: the livetoken URL and the user's JWT.

const DEFAULT_SERVICE = "http://127.0.0.1:8080";

/**
 * `?service=URL` wins; a page served by livetoken itself (`livetoken serve --demo-dir …`, at /demo/) calls its own
 * origin; otherwise VITE_LIVETOKEN_URL from the build (`.env`, or the shell of `npm run dev`), else the dev default.
 */
export function serviceUrl(location: Location): string {
  const override = new URLSearchParams(location.search).get("service");
  if (override) return override.replace(/\/+$/, "");
  if (location.pathname.startsWith("/demo/")) return location.origin;
  return (import.meta.env.VITE_LIVETOKEN_URL || DEFAULT_SERVICE).replace(/\/+$/, "");
}

/**
 * The user's JWT from the URL fragment (`#jwt=…`; browsers never send a fragment to any server), which is then
 * removed from the address bar and the history so it is not left lying around.
 */
export function takeJwtFromFragment(location: Location, history: History): string | null {
  const params = new URLSearchParams(location.hash.replace(/^#/, ""));
  const jwt = params.get("jwt");
  if (jwt === null) return null;
  params.delete("jwt");
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + location.search + (rest ? `#${rest}` : ""));
  return jwt.trim();
}

/** `?profile=NAME` preselects a profile. */
export function requestedProfile(location: Location): string | null {
  return new URLSearchParams(location.search).get("profile");
}
