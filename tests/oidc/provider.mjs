// A real OpenID provider for the test suite: panva's oidc-provider (OpenID Certified), so livetoken's discovery,
// JWKS fetching and JWT checks meet a provider's real documents and real tokens, not our idea of them.
//
//   OIDC_CLIENT_SECRETS='{"livetoken-test":"…","other-client":"…"}' node provider.mjs PORT
//
// PORT (argv or OIDC_PORT; 0 picks a free one) on 127.0.0.1; the issuer is http://127.0.0.1:PORT. Once listening it
// prints one JSON line on stdout: {"ready":true,"issuer":…,"port":…,"kid":…}. tests/support/oidc_provider.py
// drives it.
//
// - Clients `livetoken-test` and `other-client` (confidential, client_secret_basic): client_credentials and
//   authorization_code, redirect URI http://127.0.0.1:PORT/_test/callback (which answers the query as JSON).
// - Client-credentials access tokens are JWTs (RFC 9068, typ at+jwt, RS256): resource `urn:livetoken` (the default)
//   gives aud `livetoken` and scopes live:voice live:video live:text; `urn:other-api` gives aud `other-api`.
//   They carry client_id, scope and a `tenant` claim per client.
// - ID tokens come from the authorization code flow; devInteractions' login form signs in the one account, `alice`,
//   from plain HTTP calls (no browser).
// - Keys: one RSA key made at start, kid = its RFC 7638 thumbprint. With OIDC_KEYS_FILE the key set is kept there
//   (mode 0600) so a restarted process serves the same keys. POST /_test/rotate replaces it with a new key: the old
//   kid leaves jwks_uri and new tokens are signed with the new one (a new Provider instance on the same server).
//
// Nothing secret is printed: not the client secrets, not the private keys.

import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider, { errors } from 'oidc-provider';

const CLIENT_IDS = ['livetoken-test', 'other-client'];
const TENANTS = { 'livetoken-test': 'acme', 'other-client': 'globex' };
const RESOURCE_SERVERS = {
  'urn:livetoken': { audience: 'livetoken', scope: 'live:voice live:video live:text' },
  'urn:other-api': { audience: 'other-api', scope: 'other:read' },
};
const DEFAULT_RESOURCE = 'urn:livetoken';
const ACCOUNTS = {
  alice: { sub: 'alice', name: 'Alice', email: 'alice@example.test', email_verified: true },
};

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(2);
}

function parsePort() {
  const raw = process.argv[2] ?? process.env.OIDC_PORT;
  const port = Number(raw);
  if (raw === undefined || !Number.isInteger(port) || port < 0 || port > 65535) {
    fail('usage: OIDC_CLIENT_SECRETS=\'{"livetoken-test":"…","other-client":"…"}\' node provider.mjs PORT');
  }
  return port;
}

function parseSecrets() {
  let secrets;
  try {
    secrets = JSON.parse(process.env.OIDC_CLIENT_SECRETS ?? '');
  } catch {
    fail('OIDC_CLIENT_SECRETS must be a JSON object: {"livetoken-test": "…", "other-client": "…"}');
  }
  for (const id of CLIENT_IDS) {
    if (typeof secrets?.[id] !== 'string' || secrets[id].length < 16) {
      fail(`OIDC_CLIENT_SECRETS needs a secret of at least 16 characters for ${id}`);
    }
  }
  return secrets;
}

function newSigningKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  // RFC 7638: the thumbprint of the required public members, in lexicographic order.
  const thumbprint = createHash('sha256').update(JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n })).digest();
  return { ...jwk, kid: thumbprint.toString('base64url'), alg: 'RS256', use: 'sig' };
}

function saveKeys(path, jwks) {
  if (!path) return;
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(jwks), { mode: 0o600 });
  renameSync(tmp, path);
}

function loadOrMakeKeys(path) {
  if (path) {
    try {
      return JSON.parse(readFileSync(path, 'utf8'));
    } catch (err) {
      if (err.code !== 'ENOENT') fail(`cannot read OIDC_KEYS_FILE: ${err.message}`);
    }
  }
  const jwks = { keys: [newSigningKey()] };
  saveKeys(path, jwks);
  return jwks;
}

function buildProvider(issuer, secrets, jwks, cookieKeys) {
  const callback = `${issuer}/_test/callback`;
  const provider = new Provider(issuer, {
    clients: CLIENT_IDS.map((id) => ({
      client_id: id,
      client_secret: secrets[id],
      grant_types: ['client_credentials', 'authorization_code'],
      response_types: ['code'],
      redirect_uris: [callback],
    })),
    jwks,
    cookies: { keys: cookieKeys },
    // Set, not defaulted: oidc-provider asks for explicit lifetimes (and prints a notice per default used).
    ttl: {
      AccessToken: 600, AuthorizationCode: 60, ClientCredentials: 600, Grant: 3600, IdToken: 600,
      Interaction: 600, Session: 3600,
    },
    claims: { openid: ['sub'], profile: ['name'], email: ['email', 'email_verified'] },
    async findAccount(_ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return { accountId: id, claims: () => account };
    },
    async extraTokenClaims(_ctx, token) {
      return token.kind === 'ClientCredentials' ? { tenant: TENANTS[token.clientId] } : undefined;
    },
    features: {
      devInteractions: { enabled: true },
      clientCredentials: { enabled: true },
      resourceIndicators: {
        enabled: true,
        // Only the client_credentials grant defaults to livetoken; the code flow stays a plain OpenID login.
        async defaultResource(ctx, _client, oneOf) {
          if (oneOf) return oneOf;
          if (ctx.oidc.route === 'token' && ctx.oidc.params.grant_type === 'client_credentials') {
            return DEFAULT_RESOURCE;
          }
          return undefined;
        },
        async getResourceServerInfo(_ctx, resourceIndicator) {
          const server = RESOURCE_SERVERS[resourceIndicator];
          if (!server) throw new errors.InvalidTarget();
          return { ...server, accessTokenFormat: 'jwt', accessTokenTTL: 600, jwt: { sign: { alg: 'RS256' } } };
        },
        async useGrantedResource() {
          return false;
        },
      },
    },
  });
  provider.on('server_error', (_ctx, err) => process.stderr.write(`server_error: ${err.stack ?? err}\n`));
  return provider;
}

function answerJson(res, status, body) {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(data);
}

const port = parsePort();
const secrets = parseSecrets();
const keysFile = process.env.OIDC_KEYS_FILE || undefined;
let jwks = loadOrMakeKeys(keysFile);
// Cookie signing keys for the login's interaction cookies: per process, never printed.
const cookieKeys = [randomBytes(32).toString('base64url')];
let handle; // the current Provider's request listener; replaced on rotation

function rotate() {
  const next = { keys: [newSigningKey()] };
  // Build first: a bad key set must not leave the server without a provider.
  handle = buildProvider(issuer, secrets, next, cookieKeys).callback();
  jwks = next;
  saveKeys(keysFile, jwks);
  return jwks.keys[0].kid;
}

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/_test/rotate') {
    if (req.method !== 'POST') return answerJson(res, 405, { error: 'POST only' });
    const kid = rotate();
    process.stdout.write(`${JSON.stringify({ rotated: true, kid })}\n`);
    return answerJson(res, 200, { kid });
  }
  if (url.pathname === '/_test/callback') {
    return answerJson(res, 200, Object.fromEntries(url.searchParams));
  }
  if (!handle) return answerJson(res, 503, { error: 'starting' });
  return handle(req, res);
});

let issuer;
server.on('error', (err) => fail(`cannot listen on 127.0.0.1:${port}: ${err.message}`));
server.listen(port, '127.0.0.1', () => {
  const bound = server.address().port;
  issuer = `http://127.0.0.1:${bound}`;
  handle = buildProvider(issuer, secrets, jwks, cookieKeys).callback();
  process.stdout.write(`${JSON.stringify({ ready: true, issuer, port: bound, kid: jwks.keys[0].kid })}\n`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
