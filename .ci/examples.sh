#!/usr/bin/env bash
# Against a live gateway (the sample config, memory store, a free port):
#   0. (before it) the docs' quotes of examples/ are in the files as written;
#   1. `redocly lint` of the OpenAPI document it serves (redocly.yaml), and
#      its 3.0 and 2.0 documents (`?version=`) validated by
#      openapi-spec-validator and @apidevtools/swagger-parser, each the same
#      as `chatgate openapi --version` prints; the ready packs of
#      integrations/ (the Copilot Studio connector, the Genesys Cloud data
#      actions, the Twilio Studio flow) checked against the 2.0 and the
#      3.1 document by integrations/check.py, and its --self-test (a
#      broken pack must be caught); the connector is what its generate.py
#      makes of the served 2.0 document; a Python client generated from the
#      3.0 document (openapi-python-client) walks the README's tour with
#      examples/bot_client.py, and a TypeScript one (openapi-typescript's
#      types, openapi-fetch's calls, checked by tsc) with
#      examples/bot_client.ts, each playing the sample web chat;
#   2. the login-page snippets docs/integrating.md quotes, examples/login_callback.py (PyJWT)
#      and examples/login_callback.mjs (Node, standard library only): for
#      each, a bot creates an interaction and a login link with the demo bot
#      key, the snippet verifies the token and posts the signed callback, and
#      an agent must then read the interaction as authenticated by
#      login_link for the snippet's customer. A replayed link and a wrong key
#      must make the snippet fail.
# Any mismatch fails loudly. Installs what it needs itself: PyJWT into a
# venv and @redocly/cli into a prefix, both under ~/.cache/chatgate-ci,
# from PyPI and the npm registry (pinned). CHATGATE_BIN names a built
# gateway; else the debug build is made.
set -euo pipefail
cd "$(dirname "$0")/.."

REDOCLY_VERSION=2.77.0 # needs Node >= 20.19
PYJWT_VERSION=2.10.1
SPEC_VALIDATOR_VERSION=0.9.0
SWAGGER_PARSER_VERSION=12.1.0 # 12.x runs on Node 20
PYTHON_CLIENT_VERSION=0.29.1
TS_CLIENT_PACKAGES="openapi-typescript@7.13.0 openapi-fetch@0.17.0 typescript@5.9.3 @types/node@20.19.43"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/chatgate-ci"
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1

fail() {
  echo "examples: FAILED: $*" >&2
  [ -n "${log:-}" ] && [ -f "$log" ] && { echo "-- gateway log (last 40 lines):" >&2; tail -n 40 "$log" >&2; }
  exit 1
}

echo "== examples: tools"
command -v node >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' ||
  fail "node $(node --version) is too old for @redocly/cli $REDOCLY_VERSION (needs >= 20.19)"
redocly="$cache/redocly/node_modules/.bin/redocly"
if ! "$redocly" --version 2>/dev/null | grep -qx "$REDOCLY_VERSION"; then
  npm install --silent --no-fund --no-audit --prefix "$cache/redocly" "@redocly/cli@$REDOCLY_VERSION"
fi
venv="$cache/venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! "$venv/bin/python" -c "import jwt, sys; sys.exit(jwt.__version__ != '$PYJWT_VERSION')" 2>/dev/null; then
  "$venv/bin/pip" install -q "PyJWT==$PYJWT_VERSION"
fi
python="$venv/bin/python"
if ! "$venv/bin/pip" show openapi-spec-validator 2>/dev/null | grep -qx "Version: $SPEC_VALIDATOR_VERSION"; then
  "$venv/bin/pip" install -q "openapi-spec-validator==$SPEC_VALIDATOR_VERSION"
fi
parser_dir="$cache/swagger-parser"
if ! grep -qs "\"version\": \"$SWAGGER_PARSER_VERSION\"" "$parser_dir/node_modules/@apidevtools/swagger-parser/package.json"; then
  npm install --silent --no-fund --no-audit --prefix "$parser_dir" "@apidevtools/swagger-parser@$SWAGGER_PARSER_VERSION"
fi
echo "node $(node --version), redocly $("$redocly" --version 2>/dev/null | tail -n1), PyJWT $("$python" -c 'import jwt; print(jwt.__version__)')"

echo "== examples: the docs quote them exactly"
"$python" - <<'PY' || fail "a quote of examples/ in the docs differs from the file"
import glob, re, sys
quotes, bad = 0, []
for doc in ["README.md", *sorted(glob.glob("docs/**/*.md", recursive=True))]:
    text = open(doc, encoding="utf-8").read()
    for f, quote in re.findall(r"<!-- quoted from (\S+) -->\n```\w*\n(.*?)```", text, re.S):
        quotes += 1
        if quote not in open(f, encoding="utf-8").read():
            bad.append(f"{doc} quotes {f}, but the quote is not in the file")
for b in bad:
    print(b, file=sys.stderr)
print(f"{quotes} quotes checked")
sys.exit(1 if bad or not quotes else 0)
PY

bin="${CHATGATE_BIN:-}"
if [ -z "$bin" ]; then
  cargo build --locked --bin chatgate
  bin="${CARGO_TARGET_DIR:-target}/debug/chatgate"
fi

tmp="$(mktemp -d)"
gateway_pid=""
cleanup() {
  [ -n "$gateway_pid" ] && kill "$gateway_pid" 2>/dev/null && wait "$gateway_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# shellcheck source=.ci/gateway.sh
. .ci/gateway.sh
log="$tmp/gateway.log"
# The generated clients' tours play Twilio for the sample `sms` channel on :9000
# (the sample web chat is anonymous: its codes go by SMS).
start_gateway TWILIO_BASE_URL="http://127.0.0.1:9000"
port="${G##*:}"

echo "== examples: redocly lint of $G/openapi.json"
curl -fsS "$G/openapi.json" -o "$tmp/openapi.json"
"$redocly" lint --config redocly.yaml --format=stylish "$tmp/openapi.json" ||
  fail "redocly lint found problems in the served document"

echo "== examples: the 3.0 and 2.0 documents, validated"
for v in 3.0 2.0; do
  curl -fsS "$G/openapi.json?version=$v" -o "$tmp/openapi-$v.json"
  CHATGATE_SERVER__LISTEN="127.0.0.1:$port" CHATGATE_SERVER__PUBLIC_URL="$G" \
    "$bin" openapi --version "$v" --config config/chatgate.toml >"$tmp/printed-$v.json" 2>/dev/null ||
    fail "chatgate openapi --version $v failed"
  "$python" -c 'import json, sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' \
    "$tmp/openapi-$v.json" "$tmp/printed-$v.json" ||
    fail "chatgate openapi --version $v prints another document than the gateway serves"
done
"$venv/bin/openapi-spec-validator" "$tmp/openapi-3.0.json" "$tmp/openapi-2.0.json" ||
  fail "openapi-spec-validator refused a down-level document"
node .ci/validate-openapi.cjs "$parser_dir/node_modules" "$tmp/openapi-3.0.json" "$tmp/openapi-2.0.json" ||
  fail "swagger-parser refused a down-level document"

echo "== examples: the ready packs of integrations/ against the served documents"
"$python" integrations/check.py "$tmp/openapi-2.0.json" ||
  fail "a pack of integrations/ calls an operation or sends a field the 2.0 document does not have"
"$python" integrations/check.py "$tmp/openapi.json" ||
  fail "a pack of integrations/ calls an operation or sends a field the 3.1 document does not have"
"$python" integrations/check.py --self-test "$tmp/openapi.json" ||
  fail "integrations/check.py --self-test: the checker missed a broken pack"
"$python" integrations/copilot-studio/generate.py "$tmp/openapi-2.0.json" -o "$tmp/apiDefinition.swagger.json" >/dev/null &&
  cmp -s "$tmp/apiDefinition.swagger.json" integrations/copilot-studio/apiDefinition.swagger.json ||
  fail "integrations/copilot-studio/apiDefinition.swagger.json is stale: run integrations/copilot-studio/generate.py on the served 2.0 document"

# The demo keys are written in the comments of config/teams/acme.toml (demo_key, .ci/gateway.sh).
BOT="$(demo_key bot)"
AGENT="$(demo_key agent)"
[ -n "$BOT" ] && [ -n "$AGENT" ] || fail "no demo bot/agent key in config/teams/acme.toml"

echo "== examples: a Python client generated from the 3.0 document walks the tour"
if ! "$venv/bin/pip" show openapi-python-client 2>/dev/null | grep -qx "Version: $PYTHON_CLIENT_VERSION"; then
  "$venv/bin/pip" install -q "openapi-python-client==$PYTHON_CLIENT_VERSION"
fi
"$venv/bin/openapi-python-client" generate --path "$tmp/openapi-3.0.json" --meta none \
  --output-path "$tmp/pyclient/chatgate_client" >"$tmp/pyclient.log" 2>&1 ||
  { cat "$tmp/pyclient.log" >&2; fail "openapi-python-client could not generate a client from the 3.0 document"; }
"$python" examples/bot_client.py --gateway "$G" --key "$BOT" --client-dir "$tmp/pyclient" ||
  fail "the generated Python client's tour (examples/bot_client.py) failed"

echo "== examples: a TypeScript client (openapi-typescript, openapi-fetch) walks the tour"
ts="$cache/tsclient"
if ! cmp -s <(echo "$TS_CLIENT_PACKAGES") "$ts/packages" 2>/dev/null; then
  rm -rf "$ts" && mkdir -p "$ts"
  # shellcheck disable=SC2086 # one word per package
  npm install --silent --no-fund --no-audit --prefix "$ts" $TS_CLIENT_PACKAGES
  echo "$TS_CLIENT_PACKAGES" >"$ts/packages"
fi
mkdir -p "$tmp/tsclient" && ln -sfn "$ts/node_modules" "$tmp/tsclient/node_modules"
# From its own folder: the generator would read the repository's redocly.yaml.
(cd "$tmp/tsclient" && "$ts/node_modules/.bin/openapi-typescript" "$tmp/openapi-3.0.json" -o chatgate.d.ts) \
  >"$tmp/tsclient.log" 2>&1 ||
  { cat "$tmp/tsclient.log" >&2; fail "openapi-typescript could not generate types from the 3.0 document"; }
cp examples/bot_client.ts "$tmp/tsclient/"
cat >"$tmp/tsclient/tsconfig.json" <<'JSON'
{"compilerOptions": {"target": "ES2022", "module": "commonjs", "moduleResolution": "node", "strict": true,
 "esModuleInterop": true, "skipLibCheck": true, "types": ["node"], "outDir": "out"}, "files": ["bot_client.ts"]}
JSON
"$ts/node_modules/.bin/tsc" -p "$tmp/tsclient/tsconfig.json" ||
  fail "examples/bot_client.ts does not type-check against the types generated from the 3.0 document"
node "$tmp/tsclient/out/bot_client.js" --gateway "$G" --key "$BOT" ||
  fail "the generated TypeScript client's tour (examples/bot_client.ts) failed"

# field JSON NAME: one member of a JSON answer (no jq needed).
field() { "$python" -c 'import json, sys; v = json.loads(sys.argv[1]); print(v.get(sys.argv[2]) or "")' "$1" "$2"; }

# A fresh interaction for customer $2 on conversation $1, and a login link: prints the login URL.
new_login() {
  local made id link
  made="$(curl -fsS -X POST "$G/v1/interactions" -H "Authorization: Bearer $BOT" \
    -H 'content-type: application/json' \
    -d "{\"channel\":\"webchat\",\"conversation_id\":\"$1\",\"customer_ref\":\"$2\"}")" ||
    fail "creating the interaction for $1"
  id="$(field "$made" id)"
  link="$(curl -fsS -X POST "$G/v1/interactions/$id/login-links" -H "Authorization: Bearer $BOT" \
    -H 'content-type: application/json' -d "{\"expected_customer\":\"$2\"}")" || fail "issuing the link for $1"
  echo "$id $(field "$link" url)"
}

# run_snippet NAME COMMAND...: the full check for one snippet.
run_snippet() {
  local name="$1"
  shift
  echo "== examples: $name"
  local customer="cust-$name-$$"
  read -r id url < <(new_login "examples-$name-$$" "$customer")
  [ -n "$id" ] && [ -n "$url" ] || fail "$name: no interaction or link"
  [ "$(field "$(curl -fsS "$G/v1/interactions/$id" -H "Authorization: Bearer $AGENT")" status)" = pending ] ||
    fail "$name: the interaction is not pending before the login"

  CHATGATE_URL="$G" "$@" "$url" "$customer" >"$tmp/$name.out" 2>&1 ||
    { cat "$tmp/$name.out" >&2; fail "$name: the snippet failed"; }
  cat "$tmp/$name.out"
  local v
  v="$(curl -fsS "$G/v1/interactions/$id" -H "Authorization: Bearer $AGENT")"
  "$python" - "$v" "$customer" "$name" <<'PY' || fail "$name: the interaction is not authenticated as it should be"
import json, sys
v, customer, name = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
want = {"status": "authenticated", "authenticated": True, "method": "login_link"}
got = {k: v.get(k) for k in want}
ok = got == want and (v.get("customer") or {}).get("id") == customer
print(f"{name}: status={got['status']} method={got['method']} customer={(v.get('customer') or {}).get('id')}")
sys.exit(0 if ok else 1)
PY

  # The same link again: used up, the gateway answers 409 and the snippet must fail.
  if CHATGATE_URL="$G" "$@" "$url" "$customer" >"$tmp/$name.again" 2>&1; then
    cat "$tmp/$name.again" >&2
    fail "$name: a used link was accepted a second time"
  fi
  grep -q token_used "$tmp/$name.again" || { cat "$tmp/$name.again" >&2; fail "$name: a reused link did not say token_used"; }
  # Another key: the snippet must refuse the token itself.
  read -r _ url < <(new_login "examples-$name-wrongkey-$$" "$customer")
  if CHATGATE_URL="$G" CHATGATE_SECURITY_KEY="whsec_$(head -c 32 /dev/urandom | base64)" \
    "$@" "$url" "$customer" >"$tmp/$name.wrong" 2>&1; then
    cat "$tmp/$name.wrong" >&2
    fail "$name: a token was accepted with the wrong key"
  fi
  echo "$name: ok (authenticated; a reused link and a wrong key are refused)"
}

run_snippet python "$python" examples/login_callback.py
run_snippet node node examples/login_callback.mjs
echo "== examples: all passed"
