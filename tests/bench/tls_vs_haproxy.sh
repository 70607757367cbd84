#!/bin/sh
# TLS termination, edgegate vs HAProxy (one worker/thread each, same RSA
# certificate, same dcsim behind): full and resumed TLS handshakes per second
# (openssl s_time, TLS 1.2 and 1.3) and keep-alive HTTPS requests/s and p99
# (wrk). Alternated ROUNDS times; prints each figure and the ratios.
# Usage: tests/bench/tls_vs_haproxy.sh [SECONDS] [ROUNDS]
set -e
cd "$(dirname "$0")/../.."
secs=${1:-5}; rounds=${2:-2}
. tests/bench/common.sh
DC=$(port); EG=$(port); HA=$(port)

openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=bench.test \
    -keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null
cat $dir/cert.pem $dir/key.pem > $dir/both.pem
build/dcsim --name ams --listen 127.0.0.1:$DC >/dev/null & pids="$pids $!"
cat > $dir/eg.conf <<CONF
log warn;
datacenter ams { server 127.0.0.1:$DC; }
listener web { listen 127.0.0.1:$EG; tls cert $dir/cert.pem key $dir/key.pem; }
CONF
cat > $dir/ha.cfg <<CONF
global
    nbthread 1
    maxconn 8000
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 1s
    timeout client 60s
    timeout server 60s
    http-reuse always
frontend web
    bind 127.0.0.1:$HA ssl crt $dir/both.pem alpn http/1.1
    default_backend ams
backend ams
    server s1 127.0.0.1:$DC
CONF
build/edgegate -f -c $dir/eg.conf & pids="$pids $!"
haproxy -f $dir/ha.cfg -db -q & pids="$pids $!"
sleep 0.5

handshakes() { # port tls-version new|reuse
    openssl s_time -connect 127.0.0.1:$1 -$2 -$3 -time $secs 2>/dev/null |
        awk '/connections in/ && /real seconds/ {printf "%.0f\n", $1 / $4}'
}
https() { # port -> "rps p99"
    wrk -t1 -c50 -d${secs}s --latency https://127.0.0.1:$1/ |
        awk '/Requests\/sec/ {r=$2} $1 == "99%" {p=$2} END {print r, p}'
}

: > $dir/res
i=0
while [ $i -lt $rounds ]; do
    for p in edgegate:$EG haproxy:$HA; do
        name=${p%%:*}; pt=${p#*:}
        for v in tls1_2 tls1_3; do
            echo "$name full-$v $(handshakes $pt $v new)" >> $dir/res
        done
        echo "$name resumed-tls1_2 $(handshakes $pt tls1_2 reuse)" >> $dir/res
        echo "$name https-keepalive $(https $pt)" >> $dir/res
    done
    i=$((i + 1))
done
printf "%-9s %-18s %12s %10s\n" proxy measure "per second" p99
awk '{printf "%-9s %-18s %12s %10s\n", $1, $2, $3, $4}' $dir/res
awk '{s[$1" "$2] += $3} END {
    n = split("full-tls1_2 full-tls1_3 resumed-tls1_2 https-keepalive", m, " ");
    for (i = 1; i <= n; i++)
        printf "ratio edgegate/haproxy %-16s %.2f\n", m[i], s["edgegate " m[i]] / s["haproxy " m[i]];
}' $dir/res
