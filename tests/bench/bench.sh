#!/bin/bash
# `make bench`: edgegate against HAProxy, configured alike, in front of one
# nginx (`return 200`, keep-alive). The proxy under test runs alone on core 1
# (taskset -c 1); nginx, the helper servers and the load generators on core 0.
# The two sides alternate, round by round; the report gives medians and the
# edgegate/HAProxy ratio of each figure, with the load of the machine.
#
#   keep-alive requests/s and p99      wrk -t1 -c64 --latency
#   new-connection requests/s          the same with Connection: close
#   bytes per idle keep-alive client   VmRSS growth over 2,000 connections
#   bytes per idle TLS client          the same over TLS, one RSA certificate
#   tcp mode                           bulk MB/s into a sink, connections/s
#   idle curve                         bytes per connection, 1k to 100k
#   workers 2 / workers 1              edgegate alone, not pinned: new TLS
#                                      connections/s (full RSA-4096 handshakes,
#                                      benchtool tlsrate), the proxy's CPU the
#                                      bottleneck; HAProxy nbthread 2 / 1 alike;
#                                      and keep-alive requests/s, which wrk and
#                                      nginx bound (shown against their ceiling)
#
# Writes build/bench.md and build/bench.png. Traffic stays on loopback;
# every load run is bounded in time, every client in count.
# Usage: tests/bench/bench.sh  (BENCH_QUICK=1: 3 rounds of 2 s, else 5 of 3 s;
# BENCH_OUT=DIR: where bench.md and bench.png go, default build; for trying
# the script: BENCH_ROUNDS, BENCH_SECS, BENCH_MROUNDS, BENCH_STAGES=1000,10000;
# BENCH_PHASES: which of "throughput memory idle workers" to run, default all)
set -e
cd "$(dirname "$0")/../.."
. tests/bench/common.sh

if [ "${BENCH_QUICK:-0}" = 1 ]; then rounds=3; secs=2; else rounds=5; secs=3; fi
rounds=${BENCH_ROUNDS:-$rounds}; secs=${BENCH_SECS:-$secs}
mrounds=${BENCH_MROUNDS:-2}      # memory rounds, a fresh process each (they vary by < 0.1 %)
tsecs=2                          # each tcp run
idle_stages=${BENCH_STAGES:-1000,9000}          # one process per proxy
idle_stages_mp=${BENCH_STAGES_MP-10000,100000}  # 12 processes per proxy
tools=gnuplot
phases=${BENCH_PHASES:-throughput memory idle workers}
has() { case " $phases " in *" $1 "*) return 0 ;; esac; return 1; }
wrounds=3                        # workers rounds of keep-alive (load-bound: 3 suffice)
tlsecs=2                         # each TLS handshake run
maxconn=9900                     # edgegate max_connections, HAProxy maxconn (per process)
out=${BENCH_OUT:-build}
res=$dir/res; cmds=$dir/cmds
: > $res; : > $cmds
t_start=$(date +%s)

. tests/bench/setup.sh

load() { cut -d' ' -f1 /proc/loadavg; }
ticks() { # CPU ticks of PID and of its children (the workers of a master)
    cat /proc/$1/stat $(pgrep -P $1 | sed 's|.*|/proc/&/stat|') 2>/dev/null |
        awk '{t += $14 + $15} END {print t + 0}'
}
hz=$(getconf CLK_TCK)
# Machine-wide busy CPU ticks (user, nice, system, irq, softirq, steal).
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
cmd() { grep -qxF -- "$1	$2" $cmds || printf '%s\t%s\n' "$1" "$2" >> $cmds; }

# Voluntary context switches of PID and its children: how often it slept.
vcs() {
    cat /proc/$1/status $(pgrep -P $1 | sed 's|.*|/proc/&/status|') 2>/dev/null |
        awk '/^voluntary_ctxt_switches/ {n += $2} END {print n + 0}'
}
# wrk on core 0 against PORT; one line "rps=... p99=... cpu=... load=... errors=...
# sleeps=... busy=..." where cpu is the proxy's CPU time over the run's wall time
# (1.0: a whole core), sleeps its voluntary context switches per 1,000 requests
# and busy the whole machine's CPU use (cores) over the run.
wrk_run() { # PID PORT SECONDS [HEADER]
    local l t0 w0 c0 out rps p99 err t1 w1 c1 n b0 b1
    l=$(load); t0=$(ticks $1); c0=$(vcs $1); b0=$(busy); w0=$(date +%s.%N)
    if [ -n "$4" ]; then
        out=$(taskset -c 0 wrk -t1 -c64 -d${3}s --latency -H "$4" http://127.0.0.1:$2/)
    else
        out=$(taskset -c 0 wrk -t1 -c64 -d${3}s --latency http://127.0.0.1:$2/)
    fi
    t1=$(ticks $1); c1=$(vcs $1); b1=$(busy); w1=$(date +%s.%N)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    p99=$(echo "$out" | awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1; printf "%.3f", v * f}')
    err=$(echo "$out" | awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
    echo "rps=$rps p99=$p99 cpu=$(echo "($t1 - $t0) / $hz / ($w1 - $w0)" | bc -l | xargs printf '%.2f') load=$l errors=$err sleeps=$(echo "($c1 - $c0) * 1000 / $n" | bc -l | xargs printf '%.1f') busy=$(echo "($b1 - $b0) / $hz / ($w1 - $w0)" | bc -l | xargs printf '%.2f')"
}
tool_run() { # PID benchtool-args...: "value=... cpu=... load=..."
    local p=$1 l t0 w0 v t1 w1; shift
    l=$(load); t0=$(ticks $p); w0=$(date +%s.%N)
    v=$(taskset -c 0 build/benchtool "$@")
    t1=$(ticks $p); w1=$(date +%s.%N)
    echo "value=${v%% *} errors=$(echo "$v" | awk '{print $2 + 0}') cpu=$(echo "($t1 - $t0) / $hz / ($w1 - $w0)" | bc -l | xargs printf '%.2f') load=$l"
}
# CPU ticks of each scheduling unit of PID: its children's (workers), or
# else its threads' (HAProxy nbthread), one per line.
unit_ticks() {
    local c; c=$(pgrep -P $1 | sed 's|.*|/proc/&/stat|')
    [ -n "$c" ] || c=$(ls /proc/$1/task/*/stat)
    cat $c 2>/dev/null | awk '{print $14 + $15}'
}
# benchtool tlsrate on core 0 against PORT: "value=conn/s errors= resumed=
# cpu=(proxy, cores) client_cpu=(cores) busy=(the whole machine, cores)
# split=(the busiest worker/thread's share of the proxy's CPU) load=".
tls_run() { # PID PORT SECONDS
    local l t0 w0 b0 u0 v t1 w1 b1 u1
    l=$(load); t0=$(ticks $1); b0=$(busy); u0=$(unit_ticks $1 | tr '\n' ' '); w0=$(date +%s.%N)
    v=$(taskset -c 0 build/benchtool tlsrate $2 $3 32 100000)
    t1=$(ticks $1); b1=$(busy); u1=$(unit_ticks $1 | tr '\n' ' '); w1=$(date +%s.%N)
    set -- $v "$(echo "($t1 - $t0) / $hz / ($w1 - $w0)" | bc -l | xargs printf '%.2f')" \
        "$(echo "($b1 - $b0) / $hz / ($w1 - $w0)" | bc -l | xargs printf '%.2f')" \
        "$(echo "$u0 | $u1" | awk -F'|' '{n = split($1, a, " "); split($2, b, " ");
            for (i = 1; i <= n; i++) { d = b[i] - a[i]; s += d; if (d > m) m = d }
            printf "%.2f", s ? m / s : 0}')"
    echo "value=$1 errors=$2 resumed=$3 client_cpu=$4 cpu=$5 busy=$6 split=$7 load=$l"
}
record() { echo "$*" >> $res; echo "  $*"; }
phase() { echo "[$(( $(date +%s) - t_start ))s] $*"; }

echo "bench: $rounds rounds of ${secs}s; scratch $dir"
wait_port $NGX; wait_port $SINK; wait_port $ECHO

# ---- throughput: both proxies up, pinned to core 1, loaded in turn ----
if has throughput; then
start edgegate $dir/eg.conf $EG_CONN; eg=$ppid
start haproxy $dir/ha.cfg $HA_CONN; ha=$ppid
for p in $eg:$EG_HTTP $ha:$HA_HTTP; do wrk_run ${p%:*} ${p#*:} 1 >/dev/null; done  # warm-up

cmd "keep-alive requests/s, p99" "taskset -c 0 wrk -t1 -c64 -d${secs}s --latency http://127.0.0.1:PORT/"
cmd "new-connection requests/s" "taskset -c 0 wrk -t1 -c64 -d${secs}s --latency -H 'Connection: close' http://127.0.0.1:PORT/"
cmd "tcp bulk MB/s" "taskset -c 0 build/benchtool bulk PORT $tsecs 4   (into build/benchtool serve PORT sink)"
cmd "tcp connections/s" "taskset -c 0 build/benchtool connrate PORT $tsecs 64   (through to build/benchtool serve PORT echo)"
for r in $(seq $rounds); do
    phase "round $r/$rounds"
    # Who goes first alternates too, so that neither always follows the other.
    if [ $((r % 2)) = 1 ]; then order="edgegate haproxy"; else order="haproxy edgegate"; fi
    for side in $order; do
        if [ $side = edgegate ]; then p=$eg; H=$EG_HTTP; B=$EG_BULK; C=$EG_CONN
        else p=$ha; H=$HA_HTTP; B=$HA_BULK; C=$HA_CONN; fi
        record "keepalive $side $r $(wrk_run $p $H $secs)"
        record "close $side $r $(wrk_run $p $H $secs 'Connection: close')"
        record "tcp_bulk $side $r $(tool_run $p bulk $B $tsecs 4)"
        record "tcp_conn $side $r $(tool_run $p connrate $C $tsecs 64)"
    done
done
stop $eg; stop $ha
fi

# ---- memory: a fresh process per measurement, 2,000 clients after a warm-up ----
if has memory; then
cmd "bytes per idle keep-alive client" "taskset -c 0 build/benchtool idle PORT PID 2000   (VmRSS growth / 2000, after 256 warm-up connections)"
cmd "bytes per idle TLS client" "taskset -c 0 build/benchtool idle PORT PID 2000 tls"
for r in $(seq $mrounds); do
    phase "memory round $r/$mrounds"
    for side in edgegate haproxy; do
        if [ $side = edgegate ]; then start edgegate $dir/eg.conf $EG_CONN; H=$EG_HTTP; T=$EG_TLS
        else start haproxy $dir/ha.cfg $HA_CONN; H=$HA_HTTP; T=$HA_TLS; fi
        l=$(load)
        record "mem_http $side $r load=$l $(taskset -c 0 build/benchtool idle $H $ppid 2000 | tr ' ' '\n' | paste -d= - - | tr '\n' ' ')"
        stop $ppid
    done
    for side in edgegate haproxy; do
        if [ $side = edgegate ]; then start edgegate $dir/eg.conf $EG_CONN; T=$EG_TLS
        else start haproxy $dir/ha.cfg $HA_CONN; T=$HA_TLS; fi
        l=$(load)
        record "mem_tls $side $r load=$l $(taskset -c 0 build/benchtool idle $T $ppid 2000 tls | tr ' ' '\n' | paste -d= - - | tr '\n' ' ')"
        stop $ppid
    done
done
fi

# ---- the idle curve: 1k to 100k plain keep-alive clients ----
# The hard RLIMIT_NOFILE here is 20,000 and cannot be raised (no
# CAP_SYS_RESOURCE): HAProxy refuses a maxconn whose 2 descriptors per
# connection do not fit, so one process of either proxy holds at most about
# 9,900 clients. 1k and 9k are measured in one process; 10k and 100k in 12
# (edgegate `workers 12`; 12 HAProxy processes sharing the port through
# SO_REUSEPORT, as HAProxy 2.6 has no nbproc), about 8,300 clients each.
if has idle; then
cmd "idle curve" "taskset -c 0 build/benchtool idle PORT PID[,PID...] $idle_stages   (1 process per proxy), then $idle_stages_mp (12 processes per proxy)"
for side in edgegate haproxy; do
    phase "idle curve: $side, one process"
    if [ $side = edgegate ]; then start edgegate $dir/eg.conf $EG_CONN; H=$EG_HTTP
    else start haproxy $dir/ha.cfg $HA_CONN; H=$HA_HTTP; fi
    l=$(load)
    taskset -c 0 build/benchtool idle $H $ppid $idle_stages > $dir/idle.out
    while read -r _ n rest; do
        record "idle_$n $side 1 load=$l procs=1 $(echo "$rest" | tr ' ' '\n' | paste -d= - - | tr '\n' ' ')"
    done < $dir/idle.out
    stop $ppid
    [ -n "$idle_stages_mp" ] || continue
    phase "idle curve: $side, 12 processes"
    if [ $side = edgegate ]; then
        start edgegate $dir/eg-w12.conf $EG_W12; H=$EG_W12
        wait_listeners $H 12; all="$ppid $(pgrep -P $ppid | tr '\n' ' ')"
    else
        H=$HA_I12; start_haproxys $dir/ha-idle.cfg 12 $H
    fi
    l=$(load)
    taskset -c 0 build/benchtool idle $H $(echo $all | tr ' ' ',') $idle_stages_mp > $dir/idle.out
    while read -r _ n rest; do
        record "idle_$n $side 1 load=$l procs=12 $(echo "$rest" | tr ' ' '\n' | paste -d= - - | tr '\n' ' ')"
    done < $dir/idle.out
    for p in $all; do kill $p 2>/dev/null || true; done
    if [ $side = edgegate ]; then stop $ppid; fi
    for p in $all; do wait $p 2>/dev/null || true; done
done
fi

# ---- workers 2 against workers 1: edgegate alone, on any core ----
# The figure that can show what a second worker brings: new TLS connections,
# each a full handshake (RSA-4096; no session cache nor ticket on the client,
# which counts resumed handshakes: 0), one request with Connection: close,
# 32 at a time. The proxy signs (about 4 ms of CPU), the client mostly
# verifies (about 0.6 ms, on core 0): the proxy's CPU is the bottleneck, so
# workers 2, free to use both cores, can show. HAProxy nbthread 1 and 2 the
# same way, for comparison. Then plain keep-alive, which is not
# edgegate-bound here: wrk and nginx share core 0 and their ceiling (wrk
# straight to nginx) is measured in the same rounds.
if has workers; then
cmd "workers 2 / workers 1, new TLS connections/s" "taskset -c 0 build/benchtool tlsrate PORT $tlsecs 32 100000   (edgegate workers 1 and 2, not pinned; RSA-4096)"
cmd "HAProxy nbthread 2 / nbthread 1, new TLS connections/s" "taskset -c 0 build/benchtool tlsrate PORT $tlsecs 32 100000   (haproxy nbthread 1 and 2, not pinned)"
cmd "workers 2 / workers 1, keep-alive (load-bound)" "taskset -c 0 wrk -t1 -c64 -d${secs}s --latency http://127.0.0.1:PORT/   (edgegate not pinned)"
cmd "load side's ceiling" "taskset -c 0 wrk -t1 -c64 -d${secs}s --latency http://127.0.0.1:NGINX-PORT/   (nginx directly, in the workers rounds)"
CPUS=0-1 start edgegate $dir/eg-tls-w1.conf $EG_T1; t1=$ppid
CPUS=0-1 start edgegate $dir/eg-tls-w2.conf $EG_T2; t2=$ppid
CPUS=0-1 start haproxy $dir/ha-tls-t1.cfg $HA_T1; h1=$ppid
CPUS=0-1 start haproxy $dir/ha-tls-t2.cfg $HA_T2; h2=$ppid
sleep 0.5   # the master's workers
for p in $t1:$EG_T1 $t2:$EG_T2 $h1:$HA_T1 $h2:$HA_T2; do tls_run ${p%:*} ${p#*:} 0.5 >/dev/null; done
for r in $(seq $rounds); do
    phase "workers TLS round $r/$rounds"
    if [ $((r % 2)) = 1 ]; then order="1 2 h1 h2"; else order="h2 h1 2 1"; fi
    for w in $order; do
        case $w in
        1) record "tlsnew w1 $r $(tls_run $t1 $EG_T1 $tlsecs)" ;;
        2) record "tlsnew w2 $r $(tls_run $t2 $EG_T2 $tlsecs)" ;;
        h1) record "tlsnew h1 $r $(tls_run $h1 $HA_T1 $tlsecs)" ;;
        h2) record "tlsnew h2 $r $(tls_run $h2 $HA_T2 $tlsecs)" ;;
        esac
    done
done
stop $t1; stop $t2; stop $h1; stop $h2

CPUS=0-1 start edgegate $dir/eg-w1.conf $EG_W1; w1=$ppid
CPUS=0-1 start edgegate $dir/eg-w2.conf $EG_W2; w2=$ppid
sleep 0.5   # the master's workers
for p in $w1:$EG_W1 $w2:$EG_W2; do wrk_run ${p%:*} ${p#*:} 1 >/dev/null; done
for r in $(seq $wrounds); do
    phase "workers keep-alive round $r/$wrounds"
    if [ $((r % 2)) = 1 ]; then order="1 2 d"; else order="d 2 1"; fi
    for w in $order; do
        case $w in
        1) record "workers w1 $r $(wrk_run $w1 $EG_W1 $secs)" ;;
        2) record "workers w2 $r $(wrk_run $w2 $EG_W2 $secs)" ;;
        # nginx alone: what wrk and nginx on core 0 can do without a proxy
        d) record "workers direct $r $(wrk_run $ngx $NGX $secs)" ;;
        esac
    done
done
stop $w1; stop $w2
fi

# ---- the report ----
mkdir -p $out
cp $res $out/bench-raw.txt; cp $cmds $out/bench-commands.txt   # to redo the report
python3 tests/bench/report.py $res $cmds $out "$rounds" "$secs" "$mrounds" \
    "$(( $(date +%s) - t_start ))" "$wrounds" "$tlsecs"
echo "wrote $out/bench.md and $out/bench.png in $(( $(date +%s) - t_start )) s"
