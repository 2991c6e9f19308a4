// A small bot in TypeScript on a client generated from chatgate's OpenAPI
// 3.0 document (docs/integrating-bot-platforms.md#a-generated-client):
// openapi-typescript makes the types (`chatgate.d.ts`), openapi-fetch the
// calls, and `tsc` holds every path, body and answer of this tour to them.
// The same tour as examples/bot_client.py: create, login link, a code by
// SMS (the sample web chat is anonymous: a code shown there proves nothing;
// this bot plays the sample `webchat` channel, which posts to
// 127.0.0.1:9000, and Twilio, which the gateway is pointed at there by
// TWILIO_BASE_URL), a wrong code refused, the right one, the read, the
// logout.
//
//   openapi-typescript openapi-3.0.json -o chatgate.d.ts
//   tsc (beside chatgate.d.ts), then
//   node bot_client.js --gateway http://127.0.0.1:8080 --key cg_...
//
// Exits 0 when every step held, 1 (naming the step) when one did not.
import createClient from "openapi-fetch";
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import type { paths } from "./chatgate";

function arg(name: string): string {
  const at = process.argv.indexOf(`--${name}`);
  const value = at >= 0 ? process.argv[at + 1] : undefined;
  if (!value) {
    console.error(`bot_client.ts: --${name} is required`);
    process.exit(2);
  }
  return value;
}

function check(step: string, ok: boolean, detail: unknown = ""): void {
  if (!ok) {
    console.error(`bot_client.ts: FAILED at ${step}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`bot_client.ts: ${step}: ok`);
}

/** The web chat and Twilio: every message chatgate posts to them (a text
 * message as `{to, text}`). */
const messages: { conversation_id?: string; to?: string; text?: string }[] = [];
const chat = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    const sms = (req.url ?? "").endsWith("/Messages.json");
    if (sms) {
      const form = new URLSearchParams(body);
      messages.push({ to: form.get("To") ?? "", text: form.get("Body") ?? "" });
    } else {
      messages.push(JSON.parse(body || "{}"));
    }
    res.writeHead(sms ? 201 : 200, { "content-type": "application/json" });
    res.end(JSON.stringify({ sid: `SM${randomUUID().replace(/-/g, "")}` }));
  });
});

/** The digits of the first text message to `phone` that has some. */
async function codeFor(phone: string): Promise<string | undefined> {
  for (let i = 0; i < 100; i++) {
    for (const m of messages) {
      const digits = m.to === phone ? /\b(\d{4,10})\b/.exec(m.text ?? "") : null;
      if (digits) return digits[1];
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return undefined;
}

async function main(): Promise<void> {
  const gateway = arg("gateway");
  const key = arg("key");
  await new Promise<void>((r) => chat.listen(9000, "127.0.0.1", r));
  const client = createClient<paths>({
    baseUrl: gateway,
    headers: { Authorization: `Bearer ${key}` },
  });
  const conversation = `tour-${randomUUID()}`;
  const phone = "+15551230001";

  const made = await client.POST("/v1/interactions", {
    body: { channel: "webchat", conversation_id: conversation, customer_ref: "cust-tour-ts" },
  });
  check("create", made.response.status === 201 && made.data !== undefined, made.error);
  const id = made.data!.id;
  check("created unauthenticated", !made.data!.authenticated, made.data);

  const link = await client.POST("/v1/interactions/{id}/login-links", {
    params: { path: { id } },
    body: {},
  });
  check("login link", link.response.status === 201 && (link.data?.url ?? "").startsWith("http"), link.error);

  const started = await client.POST("/v1/interactions/{id}/challenges", {
    params: { path: { id } },
    body: { method: "otp", delivery: "sms", to: phone },
  });
  check("code sent by SMS", started.response.status === 201 && started.data !== undefined, started.error);
  const cid = started.data!.challenge_id;
  const code = await codeFor(phone);
  check("the phone received a code", code !== undefined, messages);

  const wrong = code!.replace(/./g, code!.startsWith("0") ? "1" : "0");
  const refused = await client.POST("/v1/interactions/{id}/challenges/{cid}/verify", {
    params: { path: { id, cid } },
    body: { code: wrong },
  });
  check("a wrong code refused", refused.response.status === 401 && refused.error?.code === "invalid_code", refused.error);
  const verified = await client.POST("/v1/interactions/{id}/challenges/{cid}/verify", {
    params: { path: { id, cid } },
    body: { code: code! },
  });
  check("verify", verified.response.status === 200, verified.error);

  const read = await client.GET("/v1/interactions/{id}", { params: { path: { id } } });
  check("read authenticated", read.data?.authenticated === true && read.data?.status === "authenticated", read.data);

  const out = await client.POST("/v1/interactions/{id}/logout", { params: { path: { id } } });
  check("logout", out.response.status === 200 && out.data?.authenticated === false, out.error);
  chat.close();
  console.log("bot_client.ts: the tour held with the generated TypeScript client");
}

main().catch((e) => {
  console.error(`bot_client.ts: FAILED: ${e}`);
  process.exit(1);
});
