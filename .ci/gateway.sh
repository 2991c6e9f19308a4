# The sample gateway of the checks that run against a live one
# (.ci/examples.sh, .ci/mcp-conformance.sh), sourced by them, which define
# `fail`, `bin` (the gateway binary) and `log` (its log file):
#
#   start_gateway [VAR=VALUE ...]  the sample config (memory store) on a free
#                                  loopback port, with VAR=VALUE added to its
#                                  environment; sets G (its URL) and
#                                  gateway_pid, and waits for /readyz
#   demo_key ROLE                  a demo key written in the comments of
#                                  config/teams/acme.toml (bot, agent, ...)
#   free_port                      a free loopback port

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_gateway() {
  local port
  port="$(free_port)"
  G="http://127.0.0.1:$port"
  env CHATGATE_SERVER__LISTEN="127.0.0.1:$port" CHATGATE_SERVER__PUBLIC_URL="$G" \
    RUST_LOG="${RUST_LOG:-warn}" "$@" \
    "$bin" serve --config config/chatgate.toml >"$log" 2>&1 &
  gateway_pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "$G/readyz" >/dev/null 2>&1 && break
    kill -0 "$gateway_pid" 2>/dev/null || break
    sleep 0.1
  done
  curl -fsS "$G/readyz" >/dev/null || fail "the gateway did not become ready at $G"
}

demo_key() {
  sed -n -E "s/^#[[:space:]]+$1[[:space:]]+(cg_[A-Za-z0-9_-]+).*/\\1/p" config/teams/acme.toml | head -n1
}
