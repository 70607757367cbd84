#!/bin/sh
# HTTP/2 in front (cleartext, prior knowledge), HTTP/1.1 keep-alive behind:
# h2load through edgegate and through HAProxy (one thread, `http-reuse
# always`, X-Forwarded-For added by both) to the same dcsim, alternated
# ROUNDS times. The proxy under test runs alone on CPU 1, dcsim and h2load
# on CPU 0. Prints requests/s and p99 (from h2load's per-request log) per
# run, their medians and the edgegate/HAProxy ratios (of the medians, and the
# median of each round's).
# Usage: tests/bench/h2_vs_haproxy.sh [SECONDS] [CONNECTIONS] [STREAMS] [ROUNDS]
set -e
cd "$(dirname "$0")/../.."
secs=${1:-5}; conns=${2:-10}; streams=${3:-10}; rounds=${4:-3}
. tests/bench/common.sh

DC=$(port); EG=$(port); HA=$(port)

taskset -c 0 build/dcsim --name ams --listen 127.0.0.1:$DC >/dev/null & pids="$pids $!"
cat > $dir/eg.conf <<CONF
log warn;
datacenter ams { server 127.0.0.1:$DC; }
listener web { listen 127.0.0.1:$EG; mode http; http2 on; }
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
    bind 127.0.0.1:$HA proto h2
    default_backend ams
backend ams
    server s1 127.0.0.1:$DC
CONF
taskset -c 1 build/edgegate -f -c $dir/eg.conf & pids="$pids $!"
taskset -c 1 haproxy -f $dir/ha.cfg -db -q & pids="$pids $!"
sleep 0.5

run() { # name port
    out=$(taskset -c 0 h2load -c$conns -m$streams -D $secs --warm-up-time=1 \
          --log-file=$dir/log http://127.0.0.1:$2/ 2>&1)
    rps=$(echo "$out" | awk '/^finished in/ {print $4}')
    fails=$(echo "$out" | awk '/^requests:/ {print $10"_failed"}')
    p99=$(sort -n -k3 $dir/log | awk '{v[NR]=$3} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2fms", v[i]/1000}')
    echo "$1 $rps $p99 $fails"
}

median() { # name column
    awk -v n=$1 -v c=$2 '$1==n {print $c+0}' $dir/res | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'
}

: > $dir/res
i=0
while [ $i -lt $rounds ]; do
    run edgegate $EG >> $dir/res
    run haproxy $HA >> $dir/res
    i=$((i + 1))
done
printf "%-9s %12s %10s %s\n" proxy "requests/s" p99 failed
awk '{printf "%-9s %12s %10s %s\n", $1, $2, $3, $4}' $dir/res
e=$(median edgegate 2); h=$(median haproxy 2)
ep=$(median edgegate 3); hp=$(median haproxy 3)
echo "median requests/s: edgegate $e, haproxy $h, ratio $(echo "$e $h" | awk '{printf "%.2f", $1/$2}')"
echo "median p99: edgegate ${ep}ms, haproxy ${hp}ms"
# Runs of one round are next to each other in time: their ratio is the
# least disturbed by load that comes and goes on a shared machine.
awk '$1=="edgegate" {e=$2} $1=="haproxy" {print e/$2}' $dir/res | sort -n |
    awk '{v[NR]=$1} END {printf "median of the ratios of each round: %.2f\n", v[int((NR+1)/2)]}'
