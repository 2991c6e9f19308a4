// A holder's wallet for tests/api/interop.rs, made of libraries that are
// not the gateway's: @openid4vc/openid4vp (OpenWallet Foundation) resolves
// the authorization request from the link, fetches the signed request
// object (request_uri_method=post) and checks it, then creates the
// encrypted authorization response (direct_post.jwt) and submits it;
// @sd-jwt/sd-jwt-vc presents the fixtures' issuer-signed credential with a
// Key Binding JWT; jose and node:crypto are the crypto callbacks.
//
//   node wallet.mjs --link <url> --fixtures <fixtures.json> --trust <root.pem>
//                   --now <unix seconds> [--case es256] [--connect <origin>]
//
// --link: the link the chat message carried (https://…/w/{code}); the
// script opens its page and follows its openid4vp:// link.
// --trust: the only certificate the request object's x5c may be (its one
// certificate, self-signed, byte for byte).
// --now: the wallet's clock (the gateway's test clock): the Key Binding
// JWT's iat, and the time the library checks the request object's exp at.
// --connect: where to send the requests for the link's origin (the test
// gateway listens on 127.0.0.1 but names itself by its public host).
// Modules: WALLET_MODULES, the node_modules folder holding the packages
// (default: the one beside this file).
//
// Prints one JSON line: what it did and what the response_uri answered;
// exits non-zero on any failure. Never prints a claim value, a key or the
// presentation.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const { values: args } = parseArgs({
  options: {
    link: { type: 'string' },
    fixtures: { type: 'string' },
    trust: { type: 'string' },
    now: { type: 'string' },
    case: { type: 'string', default: 'es256' },
    connect: { type: 'string' },
  },
});
for (const name of ['link', 'fixtures', 'trust', 'now']) {
  if (!args[name]) fail(`--${name} is missing`);
}
const now = Number(args.now);
if (!Number.isSafeInteger(now) || now <= 0) fail('--now: unix seconds');

// The wallet's clock is the gateway's: the library reads `new Date()` when
// it checks the request object's exp and has no option for another time.
const RealDate = Date;
const started = RealDate.now();
const clock = () => now * 1000 + (RealDate.now() - started);
globalThis.Date = class WalletDate extends RealDate {
  constructor(...a) {
    if (a.length === 0) super(clock());
    else super(...a);
  }
  static now() {
    return clock();
  }
};

const modules = process.env.WALLET_MODULES
  || path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules');
async function load(name) {
  const dir = path.join(modules, ...name.split('/'));
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const entry = pkg.exports?.['.']?.import?.default ?? pkg.exports?.['.']?.import
    ?? pkg.exports?.['.']?.default ?? pkg.module ?? pkg.main;
  return import(pathToFileURL(path.join(dir, typeof entry === 'string' ? entry : 'index.js')).href);
}
const { Openid4vpClient } = await load('@openid4vc/openid4vp');
const { setGlobalConfig } = await load('@openid4vc/utils');
const { SDJwtVcInstance } = await load('@sd-jwt/sd-jwt-vc');
const jose = await load('jose');

function fail(why) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: why })}\n`);
  process.exit(1);
}

const b64url = (bytes) => Buffer.from(bytes).toString('base64url');
const fixtures = JSON.parse(fs.readFileSync(args.fixtures, 'utf8'));
const trusted = new crypto.X509Certificate(fs.readFileSync(args.trust));

// The gateway's URLs are http:// in the test (no TLS on 127.0.0.1).
setGlobalConfig({ allowInsecureUrls: true });

const linkOrigin = new URL(args.link).origin;
const connect = args.connect ? new URL(args.connect).origin : linkOrigin;
// Every request of the library and of this script: to the link's origin
// only, sent where --connect says.
const seen = [];
async function walletFetch(input, init) {
  const url = new URL(input instanceof Request ? input.url : String(input));
  if (url.origin !== linkOrigin) throw new Error(`a request outside the link's origin: ${url.origin}`);
  seen.push(`${(init?.method ?? 'GET').toUpperCase()} ${url.pathname}`);
  return fetch(`${connect}${url.pathname}${url.search}`, init);
}

const sha = (alg) => ({ 'sha-256': 'sha256', 'sha-384': 'sha384', 'sha-512': 'sha512' }[alg.toLowerCase()]);
const callbacks = {
  fetch: walletFetch,
  hash: (data, alg) => {
    const name = sha(alg);
    if (!name) throw new Error(`hash ${alg}`);
    return new Uint8Array(crypto.createHash(name).update(data).digest());
  },
  // The request object: its one x5c certificate must be the trusted one.
  verifyJwt: async (signer, { compact }) => {
    if (signer.method !== 'x5c') return { verified: false };
    if (signer.x5c.length !== 1) return { verified: false };
    const leaf = new crypto.X509Certificate(Buffer.from(signer.x5c[0], 'base64'));
    if (!leaf.raw.equals(trusted.raw)) return { verified: false };
    const key = leaf.publicKey;
    try {
      await jose.compactVerify(compact, key, { algorithms: ['ES256'] });
    } catch {
      return { verified: false };
    }
    return { verified: true, signerJwk: key.export({ format: 'jwk' }) };
  },
  getX509CertificateMetadata: (certificate) => {
    const cert = new crypto.X509Certificate(Buffer.from(certificate, 'base64'));
    const names = (cert.subjectAltName ?? '').split(', ');
    return {
      sanDnsNames: names.filter((n) => n.startsWith('DNS:')).map((n) => n.slice(4)),
      sanUriNames: names.filter((n) => n.startsWith('URI:')).map((n) => n.slice(4)),
    };
  },
  // The response: ECDH-ES to the request's key, apu and apv as the
  // library names them.
  encryptJwe: async (encryptor, data) => {
    if (encryptor.method !== 'jwk') throw new Error(`encrypt to ${encryptor.method}`);
    const key = await jose.importJWK(encryptor.publicJwk, encryptor.alg);
    const parameters = {};
    if (encryptor.apu) parameters.apu = Buffer.from(encryptor.apu, 'base64url');
    if (encryptor.apv) parameters.apv = Buffer.from(encryptor.apv, 'base64url');
    const jwe = await new jose.CompactEncrypt(new TextEncoder().encode(data))
      .setProtectedHeader({ alg: encryptor.alg, enc: encryptor.enc, kid: encryptor.publicJwk.kid })
      .setKeyManagementParameters(parameters)
      .encrypt(key);
    return { jwe, encryptionJwk: encryptor.publicJwk };
  },
  signJwt: () => { throw new Error('this wallet signs no JWT through the library'); },
  decryptJwe: () => { throw new Error('this wallet decrypts no JWE'); },
};

// The holder's key: the fixtures keep its private scalar only.
const ecdh = crypto.createECDH('prime256v1');
ecdh.setPrivateKey(Buffer.from(fixtures.holder.d, 'base64url'));
const point = ecdh.getPublicKey();
const holderKey = crypto.createPrivateKey({
  format: 'jwk',
  key: {
    kty: 'EC', crv: 'P-256', d: fixtures.holder.d,
    x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)),
  },
});

try {
  // 1. The link's page, as the customer's browser opens it: its
  // openid4vp:// link.
  const page = await walletFetch(args.link, { headers: { accept: 'text/html' } });
  if (page.status !== 200) fail(`the link's page answered ${page.status}`);
  const html = await page.text();
  const href = /href="(openid4vp:\/\/[^"]*)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
  if (!href) fail("no openid4vp:// link on the link's page");

  // 2. The library: parse the link, fetch the request object by POST,
  // check its signature (x5c), its client_id (x509_hash) and its claims.
  const client = new Openid4vpClient({ callbacks });
  const parsed = client.parseOpenid4vpAuthorizationRequest({ authorizationRequest: href });
  if (parsed.type !== 'jar') fail(`the link is a ${parsed.type} request, not a signed one`);
  const resolved = await client.resolveOpenId4vpAuthorizationRequest({
    authorizationRequestPayload: parsed.params,
    wallet: {
      metadata: {
        vp_formats_supported: { 'dc+sd-jwt': { 'sd-jwt_alg_values': ['ES256'], 'kb-jwt_alg_values': ['ES256'] } },
        client_id_prefixes_supported: ['x509_hash', 'x509_san_dns'],
      },
    },
  });
  const request = resolved.authorizationRequestPayload;
  // This wallet holds an SD-JWT VC: of the credential queries (any one
  // of a credential set), it answers the one of that format.
  const queries = resolved.dcql?.query?.credentials ?? [];
  const sets = resolved.dcql?.query?.credential_sets;
  const query = queries.find((q) => q.format === 'dc+sd-jwt');
  if (!query) fail(`no DCQL credential query for dc+sd-jwt among ${queries.map((q) => q.format)}`);
  if (queries.length > 1 && !sets?.some((s) => s.options.some((o) => o.length === 1 && o[0] === query.id))) {
    fail('several credential queries without a credential set that one of them answers');
  }

  // 3. @sd-jwt/sd-jwt-vc: the credential with the asked claims disclosed
  // and a Key Binding JWT to this verifier and nonce, at the wallet's now.
  const credential = fixtures.cases[args.case];
  if (!credential) fail(`no fixture case ${args.case}`);
  const issued = `${credential.slice(0, credential.lastIndexOf('~'))}~`;
  const frame = Object.fromEntries((query.claims ?? []).map((c) => [c.path[0], true]));
  const sdjwt = new SDJwtVcInstance({
    hasher: callbacks.hash,
    hashAlg: 'sha-256',
    kbSignAlg: 'ES256',
    kbSigner: (input) => b64url(crypto.sign('sha256', Buffer.from(input), { key: holderKey, dsaEncoding: 'ieee-p1363' })),
  });
  const presentation = await sdjwt.present(issued, frame, {
    kb: { payload: { iat: now, aud: resolved.client.effective, nonce: request.nonce } },
  });

  // 4. The library: the encrypted authorization response, posted to the
  // response_uri.
  const response = await client.createOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: { vp_token: { [query.id]: [presentation] } },
    jarm: {
      encryption: { nonce: b64url(crypto.randomBytes(16)) },
      serverMetadata: {
        authorization_signing_alg_values_supported: [],
        authorization_encryption_alg_values_supported: ['ECDH-ES'],
        authorization_encryption_enc_values_supported: ['A128GCM', 'A256GCM'],
      },
    },
  });
  const submitted = await client.submitOpenid4vpAuthorizationResponse({
    authorizationRequestPayload: request,
    authorizationResponsePayload: response.authorizationResponsePayload,
    jarm: { responseJwt: response.jarm.responseJwt },
  });
  const status = submitted.response.status;
  const text = await submitted.response.text();
  let body;
  try { body = JSON.parse(text); } catch { body = text; }
  const header = JSON.parse(Buffer.from(response.jarm.responseJwt.split('.')[0], 'base64url'));
  process.stdout.write(`${JSON.stringify({
    ok: status === 200,
    requests: seen,
    client_id: request.client_id,
    version: resolved.version,
    response_mode: request.response_mode,
    credential_query: query.id,
    credential_queries: queries.map((q) => q.id),
    credential_sets: sets ?? null,
    trusted_authorities: query.trusted_authorities ?? null,
    disclosed: Object.keys(frame),
    kb_iat: now,
    jwe: { alg: header.alg, enc: header.enc, apu: Boolean(header.apu), apv: Boolean(header.apv) },
    response_uri: { status, body },
  })}\n`);
  process.exit(status === 200 ? 0 : 1);
} catch (e) {
  fail(`${e?.name ?? 'Error'}: ${e?.message ?? e}${e?.cause ? ` (${e.cause.message ?? e.cause})` : ''}`);
}
