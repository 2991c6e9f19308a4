// An independent OpenID Connect provider for tests/api/interop.rs: panva's
// oidc-provider with the customers' client (chatgate), CIBA in poll mode
// and back-channel logout, and the workforce client of the console's
// sign-in (WORKFORCE_CLIENT_ID, when set; its users are in `cc-agents`),
// plus test-only endpoints under /test/ that play the
// customer (approve or deny a CIBA request) and the provider's logout.
//
// Environment: PORT (0: any free one), CLIENT_ID, CLIENT_SECRET,
// REDIRECT_URI, BACKCHANNEL_LOGOUT_URI; OIDC_PROVIDER_MODULES, the
// node_modules folder holding oidc-provider (default: the one beside this
// file). Prints `ready <port>` once it listens. Never prints the client
// secret, a token or an auth_req_id.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const modules = process.env.OIDC_PROVIDER_MODULES
  || path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules');
const packageDir = path.join(modules, 'oidc-provider');
const { main } = JSON.parse(fs.readFileSync(path.join(packageDir, 'package.json'), 'utf8'));
const { default: Provider, errors } = await import(pathToFileURL(path.join(packageDir, main)).href);

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const clientId = env('CLIENT_ID');
const port = Number(process.env.PORT ?? 0);
const server = http.createServer();
await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

// The CIBA requests, newest last, and those the customer answered.
const requests = [];
const answered = new Set();
// Requests at the token endpoint (CIBA polls, code exchanges).
let tokenRequests = 0;
// The last hosted login: its account and provider session id for chatgate.
let lastLogin;

const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const provider = new Provider(issuer, {
  clients: [{
    client_id: clientId,
    client_secret: env('CLIENT_SECRET'),
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [env('REDIRECT_URI')],
    grant_types: ['authorization_code', 'urn:openid:params:grant-type:ciba'],
    response_types: ['code'],
    backchannel_token_delivery_mode: 'poll',
    backchannel_logout_uri: env('BACKCHANNEL_LOGOUT_URI'),
    backchannel_logout_session_required: true,
  }, ...(process.env.WORKFORCE_CLIENT_ID ? [{
    client_id: process.env.WORKFORCE_CLIENT_ID,
    client_secret: env('WORKFORCE_CLIENT_SECRET'),
    token_endpoint_auth_method: 'client_secret_basic',
    redirect_uris: [env('WORKFORCE_REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }] : [])],
  jwks: { keys: [{ ...privateKey.export({ format: 'jwk' }), kid: 'interop-1', use: 'sig', alg: 'RS256' }] },
  claims: { openid: ['sub'], profile: ['name', 'preferred_username', 'groups'], email: ['email'] },
  // The ID token carries the scopes' claims (chatgate reads no userinfo).
  conformIdTokenClaims: false,
  findAccount: (ctx, sub) => ({
    accountId: sub,
    claims: () => ({
      sub, name: 'Ada Lovelace', email: 'ada@example.com',
      preferred_username: `${sub}@bank.example`, groups: ['staff', 'cc-agents'],
    }),
  }),
  // Every client is first party here: no consent screen.
  loadExistingGrant: async (ctx) => {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.requestParamScopes ? [...ctx.oidc.requestParamScopes].join(' ') : 'openid');
    await grant.save();
    return grant;
  },
  // The gateway under test listens on loopback, which the provider's
  // protection against server-side request forgery refuses.
  fetch: (url, { dispatcher, ...options }) => globalThis.fetch(url, options),
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    ciba: {
      enabled: true,
      deliveryModes: ['poll'],
      // One customer the provider knows under another subject.
      processLoginHint: (ctx, loginHint) => (loginHint === 'renamed' ? 'cust-7' : loginHint),
      processLoginHintToken: () => {
        throw new errors.InvalidRequest('login_hint_token is not supported here');
      },
      validateBindingMessage: (ctx, bindingMessage) => {
        if (!/^[0-9]{4}$/.test(bindingMessage ?? '')) {
          throw new errors.InvalidBindingMessage('four digits expected');
        }
      },
      validateRequestContext: () => {},
      verifyUserCode: () => {},
      triggerAuthenticationDevice: (ctx, request) => {
        requests.push(request);
      },
    },
  },
});

// The customer's browser at the provider signs in at once, as login_hint
// (else cust-42).
async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const accountId = details.params.login_hint || 'cust-42';
  await provider.interactionFinished(req, res, { login: { accountId } }, { mergeWithLastSubmission: false });
}

provider.use(async (ctx, next) => {
  if (ctx.method === 'POST' && ctx.path === '/token') tokenRequests += 1;
  await next();
});

provider.on('authorization.success', (ctx) => {
  const { session, client } = ctx.oidc;
  if (session?.accountId && client) {
    lastLogin = { sub: session.accountId, sid: session.sidFor(client.clientId), client };
  }
});

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

// GET /test/ciba: what the newest CIBA request asked (never its
// auth_req_id), whether it is answered, and how many token requests came.
// POST /test/approve, /test/deny: the customer answers it.
// POST /test/logout: the provider ends the last hosted login's session.
async function testEndpoint(req, res) {
  const route = `${req.method} ${req.url}`;
  const request = requests.at(-1);
  if (route === 'GET /test/ciba') {
    if (!request) return json(res, 404, { error: 'no request' });
    const { login_hint, binding_message, requested_expiry, scope } = request.params;
    return json(res, 200, {
      requests: requests.length,
      answered: answered.has(request),
      polls: tokenRequests,
      login_hint,
      binding_message,
      requested_expiry,
      scope,
    });
  }
  if (route === 'POST /test/approve' || route === 'POST /test/deny') {
    if (!request || answered.has(request)) return json(res, 404, { error: 'no request to answer' });
    answered.add(request);
    if (route === 'POST /test/deny') {
      await provider.backchannelResult(request, new errors.AccessDenied('the customer denied it'));
    } else {
      const grant = new provider.Grant({ clientId: request.clientId, accountId: request.accountId });
      grant.addOIDCScope(request.scope);
      await grant.save();
      await provider.backchannelResult(request, grant);
    }
    return json(res, 200, { done: true });
  }
  if (route === 'POST /test/logout') {
    if (!lastLogin) return json(res, 404, { error: 'no login' });
    const { sub, sid, client } = lastLogin;
    try {
      await client.backchannelLogout(sub, sid);
      return json(res, 200, { done: true });
    } catch (e) {
      return json(res, 502, { error: e.message, cause: e.cause?.message });
    }
  }
  return json(res, 404, { error: 'no such test endpoint' });
}

const callback = provider.callback();
server.on('request', (req, res) => {
  const handle = req.url.startsWith('/test/') ? testEndpoint
    : req.url.startsWith('/interaction/') ? interaction
      : callback;
  Promise.resolve(handle(req, res)).catch((e) => {
    console.error(`provider: ${req.method} ${req.url.split('?')[0]}: ${e.message}`);
    if (!res.headersSent) json(res, 500, { error: 'test provider failed' });
  });
});
console.log(`ready ${server.address().port}`);
