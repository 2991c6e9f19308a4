#!/bin/bash
# 503s per team while a Redis Cluster master fails over, through the
# gateway: runs the failover test of tests/api/cluster_outage.rs (six
# local nodes, a master killed, its replica promoted; acme's keys on the
# killed master, globex's on another) RUNS times and prints its line per
# run: when the replica took over, and for each team the 503s among its
# answers and its slowest answer.
#   tools/cluster_failover.sh            # 3 runs
#   RUNS=10 tools/cluster_failover.sh
# Needs redis-server and redis-cli; set CARGO_TARGET_DIR as for any build.
set -e
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
cargo test --test api --no-run -q 2>/dev/null
for i in $(seq 1 "$RUNS"); do
  cargo test -q --test api a_failover_answers_503_only_to_the_team_on_the_failing_master \
    -- --nocapture 2>&1 | grep '^failover:' || echo "run $i: the test printed no line (failed before the failover?)"
done
