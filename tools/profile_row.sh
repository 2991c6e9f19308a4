#!/usr/bin/env bash
# Where the gateway's CPU goes in one load-test row, release build, by
# sampling: `perf record` (software clock, DWARF call graphs: no frame
# pointers needed) of the load test on the memory store, then
# tools/profile_row.py over the gateway's own threads while the row ran.
# Complements tools/profile_callback.sh (instructions of the handler, or of
# the notice's delivery with `--delivery`): this
# one sees the whole of what the row's `gateway µs` counts, the outbox's
# delivery of the notice and the HTTP server included, in the optimised
# build. Shares of samples; perf slows the run, so take µs from a run
# without it (docs/performance.md#one-current-run).
#
#   tools/profile_row.sh                        # the login callback row
#   tools/profile_row.sh --only "OTP verify, wrong code" --handler 'verify_challenge'
#   tools/profile_row.sh --bin /tmp/loadtest-old   # an older build, to compare
set -euo pipefail
cd "$(dirname "$0")/.."
only="login callback (fresh"
handler='login_callback::{{closure}}'
bin=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --only) only="$2"; shift ;;
    --handler) handler="$2"; shift ;;
    --bin) bin=$(realpath "$2"); shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
command -v perf >/dev/null || { echo "needs perf (Debian: linux-perf)" >&2; exit 1; }
if [[ -z "$bin" ]]; then
  cargo build --release --example loadtest
  bin="$PWD/target/release/examples/loadtest"
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
perf record -e cpu-clock -F 999 --call-graph dwarf,32768 -o "$out/perf.data" -- \
  "$bin" --quick --no-scaling --memory-only --saturate 0 --grow-to 0 --only "$only" \
  >"$out/run.log" 2>&1 || { tail -20 "$out/run.log" >&2; exit 1; }
# The row and the ceiling, in both tables (`--only` is text, not a pattern).
grep -F -e "| CEILING bare" -e "| $only" "$out/run.log" || true
perf script -i "$out/perf.data" --no-inline -F comm,time,ip,sym >"$out/stacks" 2>/dev/null
python3 tools/profile_row.py "$out/stacks" --handler "$handler"
