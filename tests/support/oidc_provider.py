"""A real OpenID provider (panva's oidc-provider, tests/oidc/provider.mjs) in a node process on a free port."""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import httpx

OIDC_DIR = Path(__file__).resolve().parents[1] / "oidc"
CLIENT_IDS = ("livetoken-test", "other-client")
LIVETOKEN_RESOURCE = "urn:livetoken"  # client-credentials tokens for it have aud "livetoken"
OTHER_RESOURCE = "urn:other-api"  # ... and for this one aud "other-api"
ACCOUNT = "alice"  # the one account the scripted login signs in


def find_node() -> str:
    """The node binary from PATH, with the packages `npm ci` put in tests/oidc/node_modules."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("no `node` on PATH: the OpenID provider tests need Node.js 20.19+ (https://nodejs.org/)")
    if not (OIDC_DIR / "node_modules" / "oidc-provider").is_dir():
        raise RuntimeError(
            f"{OIDC_DIR / 'node_modules'} is missing: run `make test` or scripts/ensure-oidc-provider (npm ci)"
        )
    return node


class OIDCProvider:
    """Start, stop and restart one oidc-provider; `issuer` and the signing keys stay the same across restarts."""

    def __init__(self, port: int = 0) -> None:
        self.port = port  # 0: the first start picks a free port, later starts reuse it
        self.dir = Path(tempfile.mkdtemp(prefix="livetoken-oidc-"))
        self.log = self.dir / "provider.log"
        self.secrets = {client_id: secrets.token_urlsafe(24) for client_id in CLIENT_IDS}
        self.kid = ""  # the kid that signs new tokens
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> OIDCProvider:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def issuer(self) -> str:
        """The issuer URL, `http://127.0.0.1:PORT` (no trailing slash): what `iss` and discovery say."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def discovery_url(self) -> str:
        """Where the OpenID discovery document is."""
        return f"{self.issuer}/.well-known/openid-configuration"

    def start(self, timeout: float = 15.0) -> None:
        """Start the provider and wait for its ready line (it prints one once it listens)."""
        node = find_node()
        with self.log.open("ab") as log:
            start_at = log.tell()
            self.proc = subprocess.Popen(
                [node, str(OIDC_DIR / "provider.mjs"), str(self.port)],
                cwd=OIDC_DIR,
                env={  # not the caller's environment: no NODE_OPTIONS or the like changes the provider
                    "OIDC_CLIENT_SECRETS": json.dumps(self.secrets),
                    "OIDC_KEYS_FILE": str(self.dir / "jwks.json"),
                },
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready = self._ready_line(start_at)
            if ready is not None:
                self.port = int(ready["port"])
                self.kid = str(ready["kid"])
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"oidc-provider exited ({self.proc.returncode}): {self._log_tail()}")
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"oidc-provider did not start within {timeout} s: {self._log_tail()}")

    def stop(self) -> None:
        """Stop the provider (SIGTERM, then SIGKILL after 5 s): its URLs refuse connections until restart()."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None

    def restart(self, timeout: float = 15.0) -> None:
        """Stop, then start again on the same port with the same keys ("the provider is back up")."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop and remove the working directory (the log and the key set)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def discovery(self) -> dict[str, Any]:
        """The provider's OpenID discovery document."""
        return self._get_json(self.discovery_url)

    def jwks(self) -> dict[str, Any]:
        """The JWK set the discovery document's jwks_uri serves now."""
        return self._get_json(str(self.discovery()["jwks_uri"]))

    def client_credentials_token(
        self, client_id: str = "livetoken-test", scope: str = "live:voice", resource: str | None = LIVETOKEN_RESOURCE
    ) -> str:
        """A JWT access token (typ at+jwt, RS256) from the client_credentials grant; `resource=None` sends none."""
        form = {"grant_type": "client_credentials", "scope": scope}
        if resource is not None:
            form["resource"] = resource
        with httpx.Client(timeout=10) as http:
            answer = self._token_request(http, client_id, form)
        return str(answer["access_token"])

    def id_token(self, client_id: str = "livetoken-test", scope: str = "openid email profile") -> str:
        """An ID token for `alice` (aud = client_id), through the code flow with a scripted login."""
        state, nonce = secrets.token_urlsafe(8), secrets.token_urlsafe(8)
        redirect_uri = f"{self.issuer}/_test/callback"
        query = {
            "client_id": client_id,
            "response_type": "code",
            "scope": scope,
            "redirect_uri": redirect_uri,
            "state": state,
            "nonce": nonce,
        }
        # The cookie jar carries the interaction cookies from /auth to the login form and back, as a browser would.
        with httpx.Client(timeout=10, follow_redirects=True) as http:
            page = http.get(f"{self.issuer}/auth", params=query)
            for _ in range(3):  # the login prompt, then consent if the provider asks for it
                if urlsplit(str(page.url)).path == "/_test/callback":
                    break
                page = self._answer_prompt(http, page)
            else:
                raise RuntimeError(f"the scripted login did not reach the redirect URI: {page.url}")
            callback = page.json()
            if "code" not in callback or callback.get("state") != state:
                raise RuntimeError(f"the authorization request failed: {callback}")
            answer = self._token_request(
                http,
                client_id,
                {"grant_type": "authorization_code", "code": callback["code"], "redirect_uri": redirect_uri},
            )
        return str(answer["id_token"])

    def rotate_keys(self) -> str:
        """Replace the signing key with a new one (new kid; the old kid leaves jwks_uri); returns the new kid."""
        answer = httpx.post(f"{self.issuer}/_test/rotate", timeout=10)
        answer.raise_for_status()
        self.kid = str(answer.json()["kid"])
        return self.kid

    def _answer_prompt(self, http: httpx.Client, page: httpx.Response) -> httpx.Response:
        """Submit devInteractions' form on an /interaction/UID page: log in as alice, or consent."""
        if page.status_code != 200 or not urlsplit(str(page.url)).path.startswith("/interaction/"):
            raise RuntimeError(f"expected a login or consent page, got {page.status_code} at {page.url}")
        prompt = re.search(r'name="prompt" value="(\w+)"', page.text)
        if prompt is None:
            raise RuntimeError(f"no prompt on the interaction page at {page.url}")
        form = {"prompt": prompt[1]}
        if prompt[1] == "login":
            form |= {"login": ACCOUNT, "password": "any"}  # devInteractions accepts any password
        return http.post(str(page.url), data=form)

    def _token_request(self, http: httpx.Client, client_id: str, form: dict[str, str]) -> dict[str, Any]:
        """POST to the token endpoint with client_secret_basic; an error names the provider's answer."""
        answer = http.post(f"{self.issuer}/token", data=form, auth=(client_id, self.secrets[client_id]))
        if answer.status_code != 200:
            raise RuntimeError(f"token request refused ({answer.status_code}): {answer.text}")
        body: dict[str, Any] = answer.json()
        return body

    def _get_json(self, url: str) -> dict[str, Any]:
        answer = httpx.get(url, timeout=10)
        answer.raise_for_status()
        body: dict[str, Any] = answer.json()
        return body

    def _ready_line(self, start_at: int) -> dict[str, Any] | None:
        """The ready line this start printed, if it has yet."""
        with self.log.open("rb") as log:
            log.seek(start_at)
            for line in log:
                if line.startswith(b'{"ready":'):
                    ready: dict[str, Any] = json.loads(line)
                    return ready
        return None

    def _log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-1500:]
