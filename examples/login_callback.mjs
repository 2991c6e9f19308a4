#!/usr/bin/env node
// A login page's part of a chatgate login, in JavaScript: Node 18+ and its
// standard library only (crypto, fetch). Same steps as login_callback.py:
//   1. verify the login token from `?token=`: HS256 with the team key named
//      by the header's `kid`, `aud` = team id, `iss` = server.issuer, `exp`;
//   2. sign the customer in (the bank's own login; not shown here);
//   3. POST /v1/login/callback, signed by Standard Webhooks:
//      `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
// In production prefer a maintained JWT library (jose, jsonwebtoken) for
// step 1; this file shows exactly what it must check.
//
// Run (CI does, .ci/examples.sh):
//   node examples/login_callback.mjs '<login URL or token>' [customer id]
// Environment (defaults: the sample config's demo values): CHATGATE_URL,
// CHATGATE_TEAM, CHATGATE_ISSUER, CHATGATE_KID, CHATGATE_SECURITY_KEY.
// Prints the gateway's answer; exit code 1 if the login was not accepted.
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";

const env = process.env;
const GATEWAY = env.CHATGATE_URL ?? "http://127.0.0.1:8080";
const TEAM = env.CHATGATE_TEAM ?? "acme";
const ISSUER = env.CHATGATE_ISSUER ?? "chatgate";
const DEMO_KEY = "whsec_6yMOl42yXWjpdtQC5cxtwpr47Y08xgEMAwKe1oMMbuQ=";
const LEEWAY_SECONDS = 5;

/** A security key as written in the team file: `whsec_` + base64 of the key bytes. */
function keyBytes(whsec) {
  if (!whsec.startsWith("whsec_")) throw new Error("a security key starts with whsec_");
  return Buffer.from(whsec.slice("whsec_".length), "base64");
}

// kid -> key bytes: every key of the team (during a rotation, old and new).
const KEYS = new Map([[env.CHATGATE_KID ?? "2026-11", keyBytes(env.CHATGATE_SECURITY_KEY ?? DEMO_KEY)]]);

/** The `token` query parameter of the login URL (or the token itself). */
function tokenFrom(urlOrToken) {
  try {
    return new URL(urlOrToken).searchParams.get("token") ?? urlOrToken;
  } catch {
    return urlOrToken;
  }
}

const json = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));

/** The token's header and claims, or an exception: never trust an unverified token. */
function verifyToken(token) {
  const parts = token.split(".");
  if (parts.length !== 3) throw new Error("not a compact JWS");
  const [head, payload, signature] = parts;
  const header = json(head);
  if (header.alg !== "HS256") throw new Error(`alg ${header.alg} refused`);
  const key = KEYS.get(header.kid);
  if (!key) throw new Error(`unknown kid ${header.kid}`);
  const expected = createHmac("sha256", key).update(`${head}.${payload}`).digest();
  const given = Buffer.from(signature, "base64url");
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    throw new Error("bad signature");
  }
  const claims = json(payload);
  const now = Math.floor(Date.now() / 1000);
  if (claims.aud !== TEAM) throw new Error(`aud ${claims.aud} is not ${TEAM}`);
  if (claims.iss !== ISSUER) throw new Error(`iss ${claims.iss} is not ${ISSUER}`);
  // `exp` is absent only when the gateway runs with token_ttl = "0s".
  if (claims.exp !== undefined && now > claims.exp + LEEWAY_SECONDS) throw new Error("expired");
  if (claims.nbf !== undefined && now + LEEWAY_SECONDS < claims.nbf) throw new Error("not yet valid");
  return { header, claims };
}

/** POST /v1/login/callback, signed; returns [HTTP status, JSON answer]. */
async function postResult(token, kid, outcome, customer) {
  const body = JSON.stringify({ token, outcome, customer });
  const id = `msg_${randomUUID().replaceAll("-", "")}`;
  const ts = String(Math.floor(Date.now() / 1000));
  const mac = createHmac("sha256", KEYS.get(kid)).update(`${id}.${ts}.${body}`).digest("base64");
  const res = await fetch(`${GATEWAY}/v1/login/callback`, {
    method: "POST",
    body, // exactly the bytes signed
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": ts,
      "webhook-signature": `v1,${mac}`,
    },
    signal: AbortSignal.timeout(10_000),
  });
  return [res.status, await res.json()];
}

const [, , arg, customerId = "cust-42"] = process.argv;
if (!arg) {
  console.error("usage: node examples/login_callback.mjs '<login URL or token>' [customer id]");
  process.exit(2);
}
const token = tokenFrom(arg);
const { header, claims } = verifyToken(token);
// ... the customer signs in here; then report who they are:
const customer = { id: customerId, name: "Ada" };
if (claims.expected_customer && claims.expected_customer !== customer.id) {
  console.error(`note: the bot expects ${claims.expected_customer}; the gateway will refuse`);
}
const [status, answer] = await postResult(token, header.kid, "success", customer);
console.log(JSON.stringify(answer));
if (status !== 200) process.exit(1);
if (answer.binding_code) {
  // The team binds logins to the chat (login_binding = "chat_code").
  console.log(`Type ${answer.binding_code} into the chat to finish signing in.`);
} else if (!answer.authenticated) {
  process.exit(1);
}
