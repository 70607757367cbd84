#!/bin/sh
# CPU cost of active health checks: N servers (distinct loopback addresses,
# one dcsim on 0.0.0.0 answers them all) checked every second, for SECONDS.
# Prints the gateway's CPU use in percent of one core.
# Usage: tests/bench/checks_cpu.sh [tcp|http|tls] [N] [SECONDS]
set -e
cd "$(dirname "$0")/../.."
kind=${1:-http}; n=${2:-1000}; secs=${3:-20}
. tests/bench/common.sh
DC=$(port); LP=$(port); SP=$(port)
extra=""
[ "$kind" = tls ] && { openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=x \
    -keyout $dir/k.pem -out $dir/c.pem 2>/dev/null; extra="--tls $dir/c.pem $dir/k.pem"; }
build/dcsim --name sim --listen 0.0.0.0:$DC $extra >/dev/null & pids="$pids $!"
check="check $kind interval 1s timeout 500ms;"
[ "$kind" = http ] && check="check http /health interval 1s timeout 500ms;"
python3 - "$n" "$DC" "$LP" "$SP" "$check" > $dir/eg.conf <<'PY'
import sys
n, dc, lp, sp, check = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
print(f"log warn;\nstats 127.0.0.1:{sp};")
per = 100
for d in range(0, n, per):
    print(f"datacenter dc{d // per} {{ {check}")
    for i in range(d, min(n, d + per)):
        print(f"  server 127.0.{1 + i // 250}.{1 + i % 250}:{dc};")
    print("}")
print(f"listener web {{ listen 127.0.0.1:{lp}; }}")
PY
build/edgegate -f -c $dir/eg.conf & eg=$!; pids="$pids $eg"
sleep 3
ticks() { awk '{print $14 + $15}' /proc/$eg/stat; }
split() { awk '{print "user " $14 " sys " $15}' /proc/$eg/stat; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
if [ "$PROFILE" = perf ]; then perf record -g -o /tmp/eg/perf.data -p $eg -- sleep "$secs" >/dev/null 2>&1; elif [ "$PROFILE" = strace ]; then timeout "$secs" strace -c -f -p $eg -o /tmp/eg/strace.txt || true; else sleep "$secs"; fi
t1=$(ticks); s1=$(date +%s.%N); [ -n "$SPLIT" ] && split
up=$(curl -s 127.0.0.1:$SP/stats | python3 -c 'import json,sys; d=json.load(sys.stdin); print(sum(s["up"] for dc in d["datacenters"] for s in dc["servers"]))')
echo "$n servers, check $kind every 1s, $up up: edgegate CPU" \
     "$(echo "($t1 - $t0) / $hz / ($s1 - $s0) * 100" | bc -l | xargs printf '%.2f')% of one core over ${secs}s"
