// A holder's wallet for tests/api/interop.rs, made of libraries that are
// not the gateway's: @openid4vc/openid4vp (OpenWallet Foundation) resolves
// the authorization request from the link, fetches the signed request
// object (request_uri_method=post) and checks it, parses its
// transaction_data, then creates the encrypted authorization response
// (direct_post.jwt) and submits it; @sd-jwt/sd-jwt-vc presents the
// fixtures' issuer-signed credential, or the bank's SCA attestation it
// issues at start with the fixtures' issuer key, with a Key Binding JWT;
// jose and node:crypto are the crypto callbacks.
//
//   node wallet.mjs --link <url> --fixtures <fixtures.json> --trust <root.pem>
//                   --now <unix seconds> [--case es256] [--connect <origin>]
//                   [--jti <code>] [--tamper amount|amr] [--register]
//                   [--holder <d>]
//
// --link: the link the chat message carried (https://…/w/{code}); the
// script opens its page and follows its openid4vp:// link.
// --trust: the only certificate the request object's x5c may be (its one
// certificate, self-signed, byte for byte).
// --now: the wallet's clock (the gateway's test clock): the Key Binding
// JWT's iat, and the time the library checks the request object's exp at.
// --connect: where to send the requests for the link's origin (the test
// gateway listens on 127.0.0.1 but names itself by its public host).
// --jti: a payment's authentication code (the Key Binding JWT's jti;
// a fresh UUID without it).
// --tamper: for a payment, one thing altered as a careless or hostile
// wallet would: `amount`, the amount in the wallet's own hash input (the
// hash is then of another payment); `amr`, no amr.
// --register: the bank asks to register the SCA attestation (a request
// without transaction_data): the wallet presents it for no payment.
// --holder: another holder key (a P-256 private scalar, base64url): a
// second wallet, whose SCA attestation the same issuer bound to that key.
// Modules: WALLET_MODULES, the node_modules folder holding the packages
// (default: the one beside this file).
//
// The wallet holds two credentials: the fixtures' PID (--case) and the
// bank's SCA attestation (vct SCA_VCT, no claims, bound to the same
// holder key, issued by the fixtures' ES256 issuer under its x5c). It
// answers the DCQL query whose vct_values name one it holds. A request
// with transaction_data is a payment (EU TS12, urn:eudi:sca:payment:1):
// the wallet shows it (on stderr, as a wallet's screen would) and signs
// its hash into the Key Binding JWT with transaction_data_hashes_alg,
// response_mode, amr (two factor categories) and jti.
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
    jti: { type: 'string' },
    tamper: { type: 'string' },
    register: { type: 'boolean', default: false },
    holder: { type: 'string' },
  },
});
for (const name of ['link', 'fixtures', 'trust', 'now']) {
  if (!args[name]) fail(`--${name} is missing`);
}
const now = Number(args.now);
if (!Number.isSafeInteger(now) || now <= 0) fail('--now: unix seconds');
if (args.tamper && !['amount', 'amr'].includes(args.tamper)) fail('--tamper: amount or amr');

// The type of the bank's SCA attestation this wallet holds.
const SCA_VCT = 'https://bank.acme.example/sca/1';
// The transaction data type of one payment this wallet approves.
const PAYMENT = 'urn:eudi:sca:payment:1';

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
const { Openid4vpClient, Openid4vpVerifier } = await load('@openid4vc/openid4vp');
const { setGlobalConfig, decodeUtf8String, encodeToBase64Url } = await load('@openid4vc/utils');
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

// A P-256 key from its private scalar (the fixtures keep only that): the
// private key and its public JWK.
function p256(d) {
  const ecdh = crypto.createECDH('prime256v1');
  ecdh.setPrivateKey(Buffer.from(d, 'base64url'));
  const point = ecdh.getPublicKey();
  const jwk = { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)) };
  return { key: crypto.createPrivateKey({ format: 'jwk', key: { ...jwk, d } }), jwk };
}
const es256 = (key) => (input) => b64url(crypto.sign('sha256', Buffer.from(input), { key, dsaEncoding: 'ieee-p1363' }));
const holder = p256(args.holder ?? fixtures.holder.d);

// The bank's SCA attestation, issued by @sd-jwt/sd-jwt-vc with the
// fixtures' ES256 issuer key under that issuer's x5c (the chain the
// gateway's trusted_issuers reach): no claims but its type, bound to the
// holder's key.
async function scaAttestation() {
  const [header] = fixtures.cases.es256.split('.');
  const { x5c } = JSON.parse(Buffer.from(header, 'base64url'));
  const issuer = new SDJwtVcInstance({
    hasher: callbacks.hash,
    hashAlg: 'sha-256',
    saltGenerator: () => b64url(crypto.randomBytes(16)),
    signAlg: 'ES256',
    signer: es256(p256(fixtures.issuer_key.d).key),
  });
  return issuer.issue(
    { vct: SCA_VCT, iss: 'https://bank.acme.example', iat: now - 3600, exp: now + 30 * 86400, cnf: { jwk: holder.jwk } },
    undefined,
    { header: { x5c } },
  );
}

// The payment the request's transaction_data asks this credential query
// to approve, as the library parsed it: its entry (null for none).
function paymentOf(resolved, queryId) {
  const entries = resolved.transactionData ?? [];
  if (entries.length === 0) return null;
  if (entries.length !== 1) fail(`${entries.length} transaction_data entries; this wallet approves one payment`);
  const [entry] = entries;
  const td = entry.transactionData;
  if (td.type !== PAYMENT) fail(`transaction_data of type ${td.type}`);
  if (!td.credential_ids.includes(queryId)) fail(`transaction_data for ${td.credential_ids}, not ${queryId}`);
  if (!(td.transaction_data_hashes_alg ?? ['sha-256']).includes('sha-256')) fail('no sha-256 among transaction_data_hashes_alg');
  return entry;
}

// transaction_data_hashes for `encoded`, an entry as sent. The library has
// no wallet-side function for them (only its verifier's
// verifyTransactionData): the wallet hashes the entry's string as that
// function does, with the library's own encoders, and the library's
// verifyTransactionData must find that hash for the entry before it is
// signed; the hash used is the one the library reports.
async function hashesOf(encoded, queryId) {
  const candidate = encodeToBase64Url(await callbacks.hash(decodeUtf8String(encoded), 'sha-256'));
  const verifier = new Openid4vpVerifier({ callbacks });
  const [matched] = await verifier.verifyTransactionData({
    transactionData: [encoded],
    credentials: { [queryId]: [{ transaction_data_hashes: [candidate], transaction_data_hashes_alg: 'sha-256' }] },
  });
  return matched.presentations.map((p) => p.hash);
}

try {
  // 1. The link's page, as the customer's browser opens it: its
  // openid4vp:// link.
  const page = await walletFetch(args.link, { headers: { accept: 'text/html' } });
  if (page.status !== 200) fail(`the link's page answered ${page.status}`);
  const html = await page.text();
  const href = /href="(openid4vp:\/\/[^"]*)"/.exec(html)?.[1]?.replaceAll('&amp;', '&');
  if (!href) fail("no openid4vp:// link on the link's page");

  // 2. The library: parse the link, fetch the request object by POST,
  // check its signature (x5c), its client_id (x509_hash) and its claims,
  // and parse its transaction_data.
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
  // Of the credential queries (any one of a credential set), it answers
  // the SD-JWT VC one whose type it holds.
  const queries = resolved.dcql?.query?.credentials ?? [];
  const sets = resolved.dcql?.query?.credential_sets;
  const held = [fixtures.vct, SCA_VCT];
  const query = queries.find((q) => q.format === 'dc+sd-jwt'
    && (q.meta?.vct_values ?? []).some((v) => held.includes(v)));
  if (!query) fail(`no DCQL credential query for a dc+sd-jwt this wallet holds among ${queries.map((q) => q.format)}`);
  if (queries.length > 1 && !sets?.some((s) => s.options.some((o) => o.length === 1 && o[0] === query.id))) {
    fail('several credential queries without a credential set that one of them answers');
  }
  // DCQL's claims is a non-empty array when present (the library does
  // not parse the query; dcql-ts, which wallets built on it use, refuses
  // an empty one): checked here by hand.
  if (queries.some((q) => Array.isArray(q.claims) && q.claims.length === 0)) {
    fail('a DCQL credential query with an empty claims array');
  }
  const sca = query.meta.vct_values.includes(SCA_VCT) && !query.meta.vct_values.includes(fixtures.vct);

  // 3. A payment: shown, then its hash computed over the entry as sent
  // (or, tampered, over another amount).
  const entry = paymentOf(resolved, query.id);
  if (sca && !entry && !args.register) fail('the SCA attestation is presented for a payment, or to register it, only');
  if (args.register && (!sca || entry)) fail('--register: the bank asks for the SCA attestation, with no payment');
  let payment = null;
  const kbPayment = {};
  if (entry) {
    const p = entry.transactionData.payload ?? {};
    payment = {
      type: entry.transactionData.type, credential_ids: entry.transactionData.credential_ids,
      transaction_id: p.transaction_id, amount: p.amount, currency: p.currency, payee: p.payee,
    };
    process.stderr.write(`approving ${p.amount} ${p.currency} to ${p.payee?.name} (${p.payee?.id}): PIN and device key\n`);
    let hashed = entry.encoded;
    if (args.tamper === 'amount') {
      const altered = { ...entry.transactionData, payload: { ...p, amount: p.amount + 1000 } };
      hashed = encodeToBase64Url(decodeUtf8String(JSON.stringify(altered)));
    }
    Object.assign(kbPayment, {
      transaction_data_hashes: await hashesOf(hashed, query.id),
      transaction_data_hashes_alg: 'sha-256',
      response_mode: request.response_mode,
      jti: args.jti ?? crypto.randomUUID(),
    });
    // TS12's two factors, written by hand: no library here names them.
    if (args.tamper !== 'amr') {
      kbPayment.amr = [{ knowledge: 'pin_6_or_more_digits' }, { possession: 'key_in_local_native_wscd' }];
    }
  } else if (args.tamper) {
    fail('--tamper is for a payment');
  }

  // 4. @sd-jwt/sd-jwt-vc: the credential with the asked claims disclosed
  // and a Key Binding JWT to this verifier and nonce, at the wallet's now,
  // with the payment's claims (the library passes a Key Binding JWT's
  // payload through and adds sd_hash).
  let issued;
  if (sca) {
    issued = await scaAttestation();
  } else {
    const credential = fixtures.cases[args.case];
    if (!credential) fail(`no fixture case ${args.case}`);
    issued = `${credential.slice(0, credential.lastIndexOf('~'))}~`;
  }
  const frame = Object.fromEntries((query.claims ?? []).map((c) => [c.path[0], true]));
  const sdjwt = new SDJwtVcInstance({
    hasher: callbacks.hash,
    hashAlg: 'sha-256',
    kbSignAlg: 'ES256',
    kbSigner: es256(holder.key),
  });
  const presentation = await sdjwt.present(issued, frame, {
    kb: { payload: { iat: now, aud: resolved.client.effective, nonce: request.nonce, ...kbPayment } },
  });

  // 5. The library: the encrypted authorization response, posted to the
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
    payment,
    transaction_data: entry?.encoded ?? null,
    kb_payment: Object.keys(kbPayment).sort(),
    transaction_data_hashes: kbPayment.transaction_data_hashes ?? null,
    jwe: { alg: header.alg, enc: header.enc, apu: Boolean(header.apu), apv: Boolean(header.apv) },
    response_uri: { status, body },
  })}\n`);
  process.exit(status === 200 ? 0 : 1);
} catch (e) {
  fail(`${e?.name ?? 'Error'}: ${e?.message ?? e}${e?.cause ? ` (${e.cause.message ?? e.cause})` : ''}`);
}
