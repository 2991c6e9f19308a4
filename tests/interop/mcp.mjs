// An MCP client for tests/api/interop.rs, made of the Model Context
// Protocol's official TypeScript SDK (@modelcontextprotocol/sdk): its
// Client over its Streamable HTTP transport drives the gateway's /mcp as
// an agent would — initialize, list the tools, start a verification, wait
// for it, and meet a tool error and a JSON-RPC error.
//
//   node mcp.mjs --url <gateway>/mcp --key <bot key> --channel <name>
//
// Modules: MCP_MODULES, the node_modules folder holding the SDK (default:
// the one beside this file). Prints one JSON line of what it saw; exits
// non-zero on any failure. Prints no key.
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath, pathToFileURL } from 'node:url';

const { values: args } = parseArgs({
  options: { url: { type: 'string' }, key: { type: 'string' }, channel: { type: 'string' } },
});
const modules = process.env.MCP_MODULES
  || path.join(path.dirname(fileURLToPath(import.meta.url)), 'node_modules');
const sdk = (file) => import(pathToFileURL(
  path.join(modules, '@modelcontextprotocol/sdk/dist/esm', file)).href);
const { Client } = await sdk('client/index.js');
const { StreamableHTTPClientTransport } = await sdk('client/streamableHttp.js');

const transport = new StreamableHTTPClientTransport(new URL(args.url), {
  requestInit: { headers: { Authorization: `Bearer ${args.key}` } },
});
const client = new Client({ name: 'chatgate-interop', version: '1.0.0' });
const seen = {};
try {
  await client.connect(transport);
  seen.server = client.getServerVersion()?.name;
  seen.session = typeof transport.sessionId === 'string' && transport.sessionId.length >= 22;
  const { tools } = await client.listTools();
  seen.tools = tools.map((t) => t.name);
  // callTool checks structuredContent against each tool's outputSchema.
  const started = await client.callTool({
    name: 'start_verification',
    arguments: { conversation: { channel: args.channel, conversation_id: `interop-${Date.now()}` }, proof: 'link' },
  });
  seen.started = started.structuredContent;
  const id = started.structuredContent.interaction_id;
  const first = await client.callTool({ name: 'get_verification', arguments: { interaction_id: id, wait_seconds: 25 } });
  seen.first = first.structuredContent;
  const waited = await client.callTool({ name: 'get_verification', arguments: { interaction_id: id, wait_seconds: 1 } });
  seen.waited = waited.structuredContent;
  const refused = await client.callTool({ name: 'confirm_chat_code', arguments: { interaction_id: id, code: '123456' } });
  seen.refused = { isError: refused.isError, problem: JSON.parse(refused.content[0].text) };
  const assurance = await client.callTool({ name: 'check_assurance', arguments: { interaction_id: id, max_age: '5m' } });
  seen.assurance = assurance.structuredContent;
  try {
    await client.callTool({ name: 'verify_code', arguments: {} });
    seen.unknown = 'answered';
  } catch (e) {
    seen.unknown = e.code;
  }
  await transport.terminateSession();
  await client.close();
  process.stdout.write(`${JSON.stringify({ ok: true, ...seen })}\n`);
} catch (e) {
  process.stdout.write(`${JSON.stringify({ ok: false, error: String(e?.message ?? e), ...seen })}\n`);
  process.exit(1);
}
