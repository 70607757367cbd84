#!/bin/bash
# Where the bytes of an idle TLS client go inside OpenSSL, edgegate and
# HAProxy side by side, with the setup of `make bench` (tests/bench/setup.sh):
# each proxy runs with build/ossl_allocs.so preloaded (tests/bench/ossl_allocs.c),
# benchtool opens N TLS clients after its warm-up (one request each, then
# idle), and the OpenSSL allocations still live then are printed by source
# line, per client: count, bytes asked, bytes of glibc chunks; and the
# growth of the whole heap in use (OpenSSL's and the proxy's own), per client.
# Usage: tests/bench/tls_allocs.sh [N]   (default 2000; needs gdb)
set -e
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
n=${1:-2000}
tools=gdb
maxconn=9900
[ -f build/ossl_allocs.so ] || { echo "build/ossl_allocs.so missing: make build/ossl_allocs.so" >&2; exit 1; }
. tests/bench/setup.sh
wait_port $NGX

call() { gdb -p $1 -batch -ex "call (void)$2" >/dev/null 2>&1; }
heap() { gdb -p $1 -batch -ex 'print ossl_allocs_heap()' 2>/dev/null | sed -n 's/^\$1 = //p'; }
for side in edgegate haproxy; do
    if [ $side = edgegate ]; then cfg=$dir/eg.conf; T=$EG_TLS; C=$EG_CONN
    else cfg=$dir/ha.cfg; T=$HA_TLS; C=$HA_CONN; fi
    WRAP="env LD_PRELOAD=$PWD/build/ossl_allocs.so" start $side $cfg $C
    mkfifo $dir/out.$side
    taskset -c 0 build/benchtool idle $T $ppid $n tls hold $dir/go > $dir/out.$side & bt=$!
    exec 3<$dir/out.$side
    read -r _ <&3                                   # "warm"
    call $ppid 'ossl_allocs_mark()'
    in0=$(heap $ppid)
    touch $dir/go
    read -r stage <&3
    call $ppid "ossl_allocs_dump(\"$dir/allocs.$side\")"
    in1=$(heap $ppid)
    touch $dir/go
    wait $bt; exec 3<&-
    stop $ppid
    echo "== $side, $n idle TLS clients: ${stage#stage $n }"
    echo "heap in use (mallinfo2): $(( (in1 - in0) / n )) B per client, of which OpenSSL's:"
    awk -v n=$n '{c += $1; b += $2; k += $3;
                  if (NR <= 24) printf "  %6.2f %7.0f %7.0f  %s\n", $1 / n, $2 / n, $3 / n, $4}
                 END {printf "  %6.2f %7.0f %7.0f  total (allocations, bytes asked, chunk bytes per client)\n", c / n, b / n, k / n}' \
        $dir/allocs.$side
done
