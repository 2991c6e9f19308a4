#!/bin/bash
# Redis' own cost of one commit (src/store/redis/commit.lua), alone: a
# private redis-server on its own core, redis-benchmark on the other, and
# the script called with the arguments of two real commits (shapes taken
# from `redis-cli MONITOR` under the load test):
#   wrong code: the interaction and the subject checked and written, the
#               challenge.failed event appended;
#   callback:   the interaction checked and written, its retry record
#               created, the pre-login subject checked absent, a new
#               customer's index, the due entry, the notice's outbox
#               entry and the authenticated event.
# Prints, per script and shape, Redis' CPU µs per commit (INFO cpu: network
# included) and the µs spent inside the script (INFO commandstats). Then a
# wrong code's whole Redis work as the gateway sends it (MGET, then the
# commit) against the same write done without Lua (WATCH, MGET, then
# MULTI, SET, SET, XADD, EXEC), each N times through one pipelined
# connection (redis-cli --pipe), in Redis CPU µs per write.
#   tools/commit_script_bench.sh                      # today's script
#   tools/commit_script_bench.sh old.lua new.lua ...  # compare scripts
# For example, against the previous commit's script:
#   git show HEAD~1:src/store/redis/commit.lua > /tmp/old.lua
#   tools/commit_script_bench.sh /tmp/old.lua src/store/redis/commit.lua
# Needs redis-server, redis-cli, redis-benchmark and python3. Port: $PORT
# (default 6395). Calls per run: $N (default 50000); runs per script: $RUNS.
set -e
SCRIPTS=()
for script in "$@"; do SCRIPTS+=("$(realpath "$script")"); done
cd "$(dirname "$0")/.."
[ ${#SCRIPTS[@]} -eq 0 ] && SCRIPTS=(src/store/redis/commit.lua)
PORT=${PORT:-6395}; N=${N:-50000}; RUNS=${RUNS:-3}
# One core each for Redis and redis-benchmark, where there are two.
CORES=$(nproc); PIN_SERVER=(); PIN_CLIENT=()
if [ "$CORES" -ge 2 ]; then PIN_SERVER=(taskset -c 1); PIN_CLIENT=(taskset -c 0); fi
if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
  echo "something answers on port $PORT already: choose another (PORT=...)" >&2
  exit 1
fi
T=$(mktemp -d)
"${PIN_SERVER[@]}" redis-server --port "$PORT" --save "" --appendonly no --daemonize yes \
  --logfile "$T/redis.log" --pidfile "$T/redis.pid" >/dev/null
# Stops this Redis only (its pid), never another on the port, and waits
# for it to go.
stop() {
  local pid; pid=$(cat "$T/redis.pid" 2>/dev/null) || true
  if [ -n "$pid" ] && kill "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -rf "$T"
}
trap stop EXIT
for _ in $(seq 50); do
  [ -f "$T/redis.pid" ] && redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
  sleep 0.1
done
[ -f "$T/redis.pid" ] || { echo "redis-server did not start: $T/redis.log" >&2; cat "$T/redis.log" >&2; exit 1; }
R() { redis-cli -p "$PORT" "$@"; }
cpu() { R INFO cpu | awk -F: '/used_cpu_(user|sys):/ {s += $2} END {printf "%.6f", s}'; }

# Values of the sizes a real commit writes (bytes after the version line).
json() { python3 -c "import sys; n=int(sys.argv[1]); print('{\"x\":\"' + 'a' * (n - 8) + '\"}')" "$1"; }
INTERACTION="7
$(json 420)"
SUBJECT="3
$(json 300)"
RETRY="1
$(json 120)"
EVENT=$(json 890)
NOW=$(($(date +%s) * 1000))

run() { # script shape -> "cpu_us inside_us"
  local sha; sha=$(R SCRIPT LOAD "$(cat "$1")")
  local args
  if [ "$2" = "wrong code" ]; then
    R SET b:i "$INTERACTION" >/dev/null; R SET b:s "$SUBJECT" >/dev/null
    args=(EVALSHA "$sha" 3 b:i b:s b:ev "$NOW" P 7 "$INTERACTION" 86400000
      P 3 "$SUBJECT" 596678 X "$EVENT" 0 1200000 0)
  else
    R SET b:i "$INTERACTION" >/dev/null
    # __rand_int__: a new retry record and a new customer each call
    # (redis-benchmark draws each placeholder apart: the expiry set's name
    # is another customer's, unused while the index holds one member).
    args=(EVALSHA "$sha" 8 b:i b:r:__rand_int__ b:s b:cu:__rand_int__ b:cu:__rand_int__:exp
      b:dueq b:obq b:ev "$NOW" P 7 "$INTERACTION" 86400000 P 0 "$RETRY" 600000 D 0
      A int-1 "$NOW" 600000 0 60000 0 Q x:int-1 $((NOW + 600000)) 86400000 0 60000
      Q n:int-1 "$NOW" 86400000 0 60000 X "$EVENT" 0 1200000 0)
  fi
  local answer; answer=$(R "${args[@]}")
  [ "$answer" = 0 ] || { echo "$1 ($2) answered $answer, not 0" >&2; exit 1; }
  R CONFIG RESETSTAT >/dev/null
  local before; before=$(cpu)
  "${PIN_CLIENT[@]}" redis-benchmark -p "$PORT" -r 1000000000 -n "$N" -c 16 -q "${args[@]}" \
    >/dev/null 2>&1
  local after; after=$(cpu)
  local stats; stats=$(R INFO commandstats | grep '^cmdstat_evalsha:')
  case "$stats" in *rejected_calls=0,failed_calls=0*) ;; *)
    echo "$1 ($2): calls failed: $stats" >&2; exit 1 ;; esac
  local inside; inside=$(sed -n 's/.*usec_per_call=\([0-9.]*\).*/\1/p' <<<"$stats")
  R --scan --pattern 'b:*' | xargs -r -n 500 redis-cli -p "$PORT" UNLINK >/dev/null
  python3 -c "print(f'{($after - $before) * 1e6 / $N:.1f} {$inside:.1f}')"
}

printf '%-44s %-10s %12s %12s\n' script shape "CPU µs" "inside µs"
for round in $(seq "$RUNS"); do
  for shape in "wrong code" callback; do
    for script in "${SCRIPTS[@]}"; do
      read -r c i < <(run "$script" "$shape")
      printf '%-44s %-10s %12s %12s\n' "$script" "$shape" "$c" "$i"
    done
  done
done

# RESP of `count` copies of the commands on stdin (one command a line,
# arguments separated by tabs).
resp() {
  python3 -c '
import sys
count = int(sys.argv[1])
commands = [line.rstrip("\n").split("\t") for line in sys.stdin if line.strip()]
out = sys.stdout.buffer
for _ in range(count):
    for args in commands:
        out.write(b"*%d\r\n" % len(args))
        for a in args:
            b = a.replace("\\n", "\n").encode()
            out.write(b"$%d\r\n%s\r\n" % (len(b), b))
' "$1"
}
piped() { # name file -> Redis CPU µs per write
  R SET b:i "$INTERACTION" >/dev/null; R SET b:s "$SUBJECT" >/dev/null
  R XADD b:ev '*' e x >/dev/null
  local before; before=$(cpu)
  local summary; summary=$("${PIN_CLIENT[@]}" redis-cli -p "$PORT" --pipe <"$2" 2>&1 | tail -1)
  case "$summary" in *"errors: 0,"*) ;; *) echo "$1: $summary" >&2; exit 1 ;; esac
  local after; after=$(cpu)
  R UNLINK b:i b:s b:ev >/dev/null
  python3 -c "print(f'{\"$1\":<44} {($after - $before) * 1e6 / $N:23.1f}')"
}
I=${INTERACTION//$'\n'/\\n}; S=${SUBJECT//$'\n'/\\n}
SHA=$(R SCRIPT LOAD "$(cat "${SCRIPTS[-1]}")")
printf 'MGET\tb:i\tb:s\nEVALSHA\t%s\t3\tb:i\tb:s\tb:ev\t%s\tP\t7\t%s\t86400000\tP\t3\t%s\t596678\tX\t%s\t0\t1200000\t0\n' \
  "$SHA" "$NOW" "$I" "$S" "$EVENT" | resp "$N" >"$T/lua"
printf 'WATCH\tb:i\tb:s\nMGET\tb:i\tb:s\nMULTI\nSET\tb:i\t%s\tPX\t86400000\nSET\tb:s\t%s\tPX\t596678\nXADD\tb:ev\tNOMKSTREAM\t*\te\t%s\nEXEC\n' \
  "$I" "$S" "$EVENT" | resp "$N" >"$T/watch"
printf '\n%-44s %23s\n' "a wrong code's Redis work, pipelined" "CPU µs per write"
for round in $(seq "$RUNS"); do
  piped "MGET + commit script ($(basename "${SCRIPTS[-1]}"))" "$T/lua"
  piped "WATCH + MGET + MULTI … EXEC (no Lua)" "$T/watch"
done
