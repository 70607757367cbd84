#!/bin/sh
# Check traffic with workers: N servers (distinct loopback addresses, one
# dcsim on 0.0.0.0 answers them all) checked every second, with workers 1
# and then 4. Prints the /health requests the servers received per second
# and the checks the gateway counted: with one health view per machine they
# do not grow with the number of workers.
# Usage: tests/bench/checks_workers.sh [N] [SECONDS]
set -e
cd "$(dirname "$0")/../.."
n=${1:-200}; secs=${2:-10}
. tests/bench/common.sh
DC=$(port)
build/dcsim --name sim --listen 0.0.0.0:$DC --log > $dir/dcsim.log & pids="$pids $!"
for workers in 1 4; do
    LP=$(port); SP=$(port)
    python3 - "$n" "$DC" "$LP" "$SP" "$workers" > $dir/eg.conf <<'PY'
import sys
n, dc, lp, sp, workers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
print(f"workers {workers};\nlog warn;\nstats 127.0.0.1:{sp};")
per = 100
for d in range(0, n, per):
    print(f"datacenter dc{d // per} {{ check http /health interval 1s timeout 500ms;")
    for i in range(d, min(n, d + per)):
        print(f"  server 127.0.{1 + i // 250}.{1 + i % 250}:{dc};")
    print("}")
print(f"listener web {{ listen 127.0.0.1:{lp}; }}")
PY
    build/edgegate -f -c $dir/eg.conf & eg=$!
    sleep 3
    checks() { curl -s 127.0.0.1:$SP/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["counters"]["checks_total"])'; }
    hits() { grep -c "req GET /health" $dir/dcsim.log || true; }
    c0=$(checks); h0=$(hits); s0=$(date +%s.%N)
    sleep "$secs"
    c1=$(checks); h1=$(hits); s1=$(date +%s.%N)
    kill $eg; wait $eg 2>/dev/null || true
    echo "workers $workers, $n servers checked every 1s:" \
         "$(echo "($h1 - $h0) / ($s1 - $s0)" | bc -l | xargs printf '%.1f') /health requests/s received," \
         "$(echo "($c1 - $c0) / ($s1 - $s0)" | bc -l | xargs printf '%.1f') checks/s counted"
done
