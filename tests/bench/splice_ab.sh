#!/bin/bash
# tcp mode's byte pump, splice() against read/write: two builds of edgegate,
# the same tcp configuration, both on core 1 (loaded in turn, the order
# alternating round by round), the servers and clients on core 0.
#
#   tcp bulk      taskset -c 0 build/benchtool bulk PORT 2 4  (into benchtool serve PORT sink)
#   tcp connrate  taskset -c 0 build/benchtool connrate PORT 2 64  (through to benchtool serve PORT echo)
#
# One line per run: variant, round, MB/s or connections/s, the proxy's CPU
# time (utime + stime, /proc/PID/stat) per MB or per connection, the load
# average; then the medians.
# Usage: tests/bench/splice_ab.sh SPLICE-BIN RW-BIN [ROUNDS]
#   (RW-BIN: CFLAGS="-O2 -g -DPUMP_SPLICE=0" make B=build/rw build/rw/edgegate)
set -e
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
A=$1; B=$2; rounds=${3:-5}
[ -x "$A" ] && [ -x "$B" ] && [ -x build/benchtool ] || { echo "usage: $0 SPLICE-BIN RW-BIN [ROUNDS]" >&2; exit 1; }
hz=$(getconf CLK_TCK)
wait_port() { for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; exit 1; }
ticks() { awk '{print $14 + $15}' /proc/$1/stat; }

SINK=$(port); ECHO=$(port)
taskset -c 0 build/benchtool serve $SINK sink & pids="$pids $!"
taskset -c 0 build/benchtool serve $ECHO echo & pids="$pids $!"
declare -A pid bulk conn
for v in splice rw; do
    bulk[$v]=$(port); conn[$v]=$(port)
    cat > $dir/$v.conf <<CONF
log warn;
datacenter sink { server 127.0.0.1:$SINK; }
datacenter echo { server 127.0.0.1:$ECHO; }
listener bulk { listen 127.0.0.1:${bulk[$v]}; mode tcp; datacenters sink; idle_timeout 300s; max_connections 9900; }
listener conn { listen 127.0.0.1:${conn[$v]}; mode tcp; datacenters echo; idle_timeout 300s; max_connections 9900; }
CONF
    bin=$A; [ $v = rw ] && bin=$B
    taskset -c 1 $bin -f -c $dir/$v.conf & pid[$v]=$!; pids="$pids $!"
done
for v in splice rw; do wait_port ${bulk[$v]}; wait_port ${conn[$v]}; done
wait_port $SINK; wait_port $ECHO

run() { # VARIANT bulk|connrate PORT CONC
    local l t0 t1 w0 w1 out
    l=$(cut -d' ' -f1 /proc/loadavg); t0=$(ticks ${pid[$1]}); w0=$(date +%s.%N)
    out=$(taskset -c 0 build/benchtool $2 $3 2 $4)
    t1=$(ticks ${pid[$1]}); w1=$(date +%s.%N)
    # The rate (MB/s, connections/s) and the proxy's share of a core over the
    # run's wall time (warm-up included): CPU per unit is their ratio.
    echo "$out" | awk -v v=$1 -v k=$2 -v c=$((t1 - t0)) -v hz=$hz -v l=$l -v w=$(echo "$w1 - $w0" | bc) '{
        us = c / hz / w * 1e6 / ($1 > 0 ? $1 : 1)
        printf "%s %s %s cpu_per_%s_us=%.1f load=%s\n", k, v, $1, (k == "bulk" ? "MB" : "conn"), us, l }'
}
for v in splice rw; do run $v bulk ${bulk[$v]} 4 >/dev/null; run $v connrate ${conn[$v]} 64 >/dev/null; done  # warm-up
res=$dir/res
for r in $(seq $rounds); do
    if [ $((r % 2)) = 1 ]; then order="splice rw"; else order="rw splice"; fi
    for v in $order; do
        run $v bulk ${bulk[$v]} 4 | tee -a $res
        run $v connrate ${conn[$v]} 64 | tee -a $res
    done
done
echo "medians over $rounds rounds:"
for k in bulk connrate; do
    for v in splice rw; do
        grep "^$k $v " $res | awk -v k=$k -v v=$v '{ split($4, a, "="); x[NR] = $3; y[NR] = a[2]; l[NR] = substr($5, 6) }
            function med(arr, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
                if (arr[j] < arr[i]) { t = arr[i]; arr[i] = arr[j]; arr[j] = t }
                return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2 }
            END { printf "%s %s: %s %s, cpu %.1f us, load %s\n", k, v, med(x, NR),
                  (k == "bulk" ? "MB/s" : "conn/s"), med(y, NR), med(l, NR) }'
    done
done
