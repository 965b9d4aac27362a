// A real OpenID Connect provider (the `oidc-provider` package) for the objectos-auth SSO test.
//
// Usage: node provider.mjs --client-id ID --client-secret SECRET --redirect-uri URL [--redirect-uri URL ...]
//
// It listens on 127.0.0.1 on a free port (or --port), prints one JSON line
// `{"issuer": "http://127.0.0.1:PORT"}` on stdout once it accepts connections, and exits when its
// stdin closes (the test process died) or after --ttl-seconds (default 300), so it never outlives
// the test.
//
// The interaction UI is replaced by a programmatic one: GET /interaction/:uid signs in the account
// named by the authorization request's `login_hint` (default `ada`) and grants every requested
// scope, so an HTTP client can follow the whole redirect chain without a browser.
// Accounts: `ada` (ada@example.com, verified) and `bob` (bob@example.com, not verified).

import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

// stdout carries only the ready line; the provider's own notices go to stderr.
console.log = console.error;
console.info = console.error;
process.stdout.on('error', () => {});

const { values } = parseArgs({
  options: {
    'client-id': { type: 'string' },
    'client-secret': { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    port: { type: 'string', default: '0' },
    'ttl-seconds': { type: 'string', default: '300' },
  },
});

const clientId = values['client-id'];
const clientSecret = values['client-secret'];
const redirectUris = values['redirect-uri'] ?? [];
if (!clientId || !clientSecret || redirectUris.length === 0) {
  console.error('usage: node provider.mjs --client-id ID --client-secret SECRET --redirect-uri URL [...]');
  process.exit(2);
}

const ACCOUNTS = {
  ada: { email: 'ada@example.com', email_verified: true, name: 'Ada Lovelace' },
  bob: { email: 'bob@example.com', email_verified: false, name: 'Bob Unverified' },
};

// A fresh signing key per run: the relying party must fetch it from the JWKS endpoint.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', use: 'sig', alg: 'RS256' };

const server = createServer();

server.listen(Number(values.port), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: redirectUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
    ],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    // Every authorization request must carry an S256 code challenge, so the test proves that
    // the relying party sends one and redeems the code with the matching verifier.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false } },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    async findAccount(_ctx, sub) {
      const account = ACCOUNTS[sub];
      if (!account) return undefined;
      return { accountId: sub, claims: async () => ({ sub, ...account }) };
    },
  });

  const app = provider.callback();

  // The programmatic login and consent: what a user would do on the provider's pages.
  async function interaction(req, res) {
    try {
      const details = await provider.interactionDetails(req, res);
      const { prompt, params } = details;
      if (prompt.name === 'login') {
        const accountId = ACCOUNTS[params.login_hint] ? params.login_hint : 'ada';
        await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
        return;
      }
      if (prompt.name === 'consent') {
        const grant = details.grantId
          ? await provider.Grant.find(details.grantId)
          : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
        const missing = prompt.details;
        if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
        if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
        for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
          grant.addResourceScope(indicator, scopes.join(' '));
        }
        const grantId = await grant.save();
        const consent = details.grantId ? {} : { grantId };
        await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
        return;
      }
      res.statusCode = 400;
      res.end(`unsupported prompt ${prompt.name}`);
    } catch (err) {
      res.statusCode = 400;
      res.end(`interaction failed: ${err.message}`);
    }
  }

  server.on('request', (req, res) => {
    if (req.method === 'GET' && req.url.startsWith('/interaction/')) {
      interaction(req, res);
    } else {
      app(req, res);
    }
  });

  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
});

// Never outlive the test: stop when the parent closes our stdin, or after the time limit.
process.stdin.on('end', () => process.exit(0));
process.stdin.on('error', () => process.exit(0));
process.stdin.resume();
setTimeout(() => process.exit(0), Number(values['ttl-seconds']) * 1000).unref();
