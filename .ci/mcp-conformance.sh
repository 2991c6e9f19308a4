#!/usr/bin/env bash
# The MCP project's conformance suite (npm @modelcontextprotocol/conformance,
# pinned) against a live gateway (the sample config, memory store, a free
# port), once for each protocol version /mcp serves: 2025-06-18, 2025-11-25
# and 2026-07-28 (docs/agents.md#conformance).
#
# The suite sends no credentials: .ci/mcp-key-proxy.py, on loopback, lends
# each request the demo bot key and passes every other header as sent (Host
# and Origin included: the DNS-rebinding scenario forges both). The
# proxy's own origin is the one `[mcp] allowed_origins` lists for the run.
# The scenarios and checks that test what chatgate does not offer are the
# expected failures of .ci/mcp-conformance-expected.yaml, which
# docs/agents.md#conformance quotes; the suite fails the run on any other
# failure, and on an expected one that passes (a stale entry).
#
# The suite needs Node >= 22: npm's `node` package (pinned) is installed
# beside it, under ~/.cache/chatgate-ci, from the npm registry.
# CHATGATE_BIN names a built gateway; else the debug build is made.
set -euo pipefail
cd "$(dirname "$0")/.."

CONFORMANCE_VERSION=0.2.0-alpha.12 # 0.1.x has no 2026-07-28 scenario
NODE_VERSION=22.23.3
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chatgate-ci/mcp-conformance"
export NO_UPDATE_NOTIFIER=1

fail() {
  echo "mcp-conformance: FAILED: $*" >&2
  [ -n "${log:-}" ] && [ -f "$log" ] && { echo "-- gateway log (last 40 lines):" >&2; tail -n 40 "$log" >&2; }
  exit 1
}

echo "== mcp conformance: tools"
command -v npm >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
pinned="@modelcontextprotocol/conformance@$CONFORMANCE_VERSION node@$NODE_VERSION"
if ! cmp -s <(echo "$pinned") "$cache/packages" 2>/dev/null; then
  rm -rf "$cache" && mkdir -p "$cache"
  # shellcheck disable=SC2086 # one word per package
  npm install --silent --no-fund --no-audit --prefix "$cache" $pinned
  echo "$pinned" >"$cache/packages"
fi
node22="$cache/node_modules/.bin/node"
suite="$cache/node_modules/@modelcontextprotocol/conformance/dist/index.js"
echo "node $("$node22" --version), @modelcontextprotocol/conformance $("$node22" "$suite" --version)"

bin="${CHATGATE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --locked --bin chatgate
  bin="${CARGO_TARGET_DIR:-target}/debug/chatgate"
fi

tmp="$(mktemp -d)"
gateway_pid=""
proxy_pid=""
cleanup() {
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && { wait "$proxy_pid" 2>/dev/null || true; }
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && { wait "$gateway_pid" 2>/dev/null || true; }
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=.ci/gateway.sh
. .ci/gateway.sh
proxy_port="$(free_port)"
P="http://127.0.0.1:$proxy_port"
log="$tmp/gateway.log"
start_gateway CHATGATE_MCP__ALLOWED_ORIGINS="[\"$P\"]"

BOT="$(demo_key bot)"
[ -n "$BOT" ] || fail "no demo bot key in config/teams/acme.toml"
CHATGATE_PROXY_KEY="$BOT" python3 .ci/mcp-key-proxy.py --listen "$proxy_port" --to "$G" &
proxy_pid=$!
for _ in $(seq 1 50); do
  curl -sS -o /dev/null "$P/readyz" 2>/dev/null && break
  sleep 0.1
done

# Each run: what it selects. A revision the suite freezes (2025-11-25,
# 2026-07-28) runs exactly its required scenarios; 2025-06-18 runs the
# active suite at that version; the stateless header checks, not yet in
# the frozen set, run by name.
runs=(
  "2025-06-18|--spec-version 2025-06-18"
  "2025-11-25|--requirements 2025-11-25"
  "2026-07-28|--requirements 2026-07-28"
  "2026-07-28 headers|--spec-version 2026-07-28 --scenario http-header-validation"
)
for run in "${runs[@]}"; do
  name="${run%%|*}"
  echo "== mcp conformance: $name"
  # shellcheck disable=SC2086 # the selection's words
  "$node22" "$suite" server --url "$P/mcp" ${run#*|} \
    --expected-failures .ci/mcp-conformance-expected.yaml -o "$tmp/results" ||
    fail "the conformance suite found a failure not in .ci/mcp-conformance-expected.yaml (or an entry there now passes): $name"
done
echo "== mcp conformance: all passed"
