#!/bin/sh
# Keep-alive HTTP through edgegate and through HAProxy (one worker/thread
# each, `http-reuse always`) to the same dcsim, alternated ROUNDS times.
# Prints requests/s and p99 per run and the edgegate/HAProxy ratios.
# Usage: tests/bench/http_vs_haproxy.sh [SECONDS] [CONNECTIONS] [ROUNDS]
set -e
cd "$(dirname "$0")/../.."
secs=${1:-5}; conns=${2:-50}; rounds=${3:-2}
. tests/bench/common.sh

DC=$(port); EG=$(port); HA=$(port)

build/dcsim --name ams --listen 127.0.0.1:$DC >/dev/null & pids="$pids $!"
cat > $dir/eg.conf <<CONF
log warn;
datacenter ams { server 127.0.0.1:$DC; }
listener web { listen 127.0.0.1:$EG; mode http; }
CONF
cat > $dir/ha.cfg <<CONF
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    http-reuse always
    option forwardfor
frontend web
    bind 127.0.0.1:$HA
    default_backend ams
backend ams
    server s1 127.0.0.1:$DC
CONF
build/edgegate -f -c $dir/eg.conf & pids="$pids $!"
haproxy -f $dir/ha.cfg -db -q & pids="$pids $!"
sleep 0.5

run() { # name port
    out=$(wrk -t1 -c$conns -d${secs}s --latency http://127.0.0.1:$2/)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    err=$(echo "$out" | grep -E "Non-2xx|Socket errors" || true)
    echo "$1 $rps $p99 $err"
}

printf "%-9s %12s %10s\n" proxy "requests/s" p99
i=0
: > $dir/res
while [ $i -lt $rounds ]; do
    run edgegate $EG >> $dir/res
    run haproxy $HA >> $dir/res
    i=$((i + 1))
done
awk '{printf "%-9s %12s %10s %s\n", $1, $2, $3, $4" "$5" "$6" "$7}' $dir/res
awk '$1=="edgegate"{e+=$2; n++} $1=="haproxy"{h+=$2} END {printf "ratio edgegate/haproxy requests/s: %.2f\n", e/h}' $dir/res
