#!/bin/bash
# 20,000 idle TLS clients (one request each, then idle), edgegate against
# HAProxy: the scale figure of idle TLS, apart from `make bench` because its
# 40,000 full handshakes take about a minute.
# One process holds at most about 9,900 clients here (the hard descriptor
# limit is 20,000 and cannot be raised), so each side runs 3 processes on
# core 1: edgegate `workers 3`, and 3 HAProxy processes (nbthread 1) sharing
# the port through SO_REUSEPORT. benchtool on core 0 sums the VmRSS growth
# of the 3 and reads the kernel's slab growth (both ends of each loopback
# connection are counted there).
# Usage: tests/bench/tls_idle_20k.sh [N]   (default 20000); prints one line
# per side: "stage N rss_per_conn B slab_per_conn B ...".
set -e
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
n=${1:-20000}
maxconn=9900
. tests/bench/setup.sh
wait_port $NGX

TLS3=$(port); H3=$(port); B3=$(port); C3=$(port); HA3=$(port)
eg_conf $dir/eg-w3.conf 3 $H3 $TLS3 $B3 $C3
ha_tls_conf $dir/ha-tls3.cfg $HA3 $dir/both.pem 1

for side in edgegate haproxy; do
    if [ $side = edgegate ]; then
        start edgegate $dir/eg-w3.conf $TLS3; port=$TLS3
        wait_listeners $port 3; all="$ppid $(pgrep -P $ppid | tr '\n' ' ')"
    else
        port=$HA3; start_haproxys $dir/ha-tls3.cfg 3 $port
    fi
    echo "$side $(taskset -c 0 build/benchtool idle $port $(echo $all | tr ' ' ',') $n tls)"
    for p in $all; do kill $p 2>/dev/null || true; done
    for p in $all; do wait $p 2>/dev/null || true; done
done
