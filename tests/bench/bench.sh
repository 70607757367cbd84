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
#   workers 2 / workers 1              edgegate alone, not pinned
#
# Writes build/bench.md and build/bench.png. Traffic stays on loopback;
# every load run is bounded in time, every client in count.
# Usage: tests/bench/bench.sh  (BENCH_QUICK=1: 3 rounds of 2 s, else 5 of 3 s;
# BENCH_OUT=DIR: where bench.md and bench.png go, default build; for trying
# the script: BENCH_ROUNDS, BENCH_SECS, BENCH_MROUNDS, BENCH_STAGES=1000,10000)
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
cmd() { grep -qxF -- "$1	$2" $cmds || printf '%s\t%s\n' "$1" "$2" >> $cmds; }

# Voluntary context switches of PID and its children: how often it slept.
vcs() {
    cat /proc/$1/status $(pgrep -P $1 | sed 's|.*|/proc/&/status|') 2>/dev/null |
        awk '/^voluntary_ctxt_switches/ {n += $2} END {print n + 0}'
}
# wrk on core 0 against PORT; one line "rps=... p99=... cpu=... load=... errors=...
# sleeps=..." where cpu is the proxy's CPU time over the run's wall time (1.0:
# a whole core) and sleeps its voluntary context switches per 1,000 requests.
wrk_run() { # PID PORT SECONDS [HEADER]
    local l t0 w0 c0 out rps p99 err t1 w1 c1 n
    l=$(load); t0=$(ticks $1); c0=$(vcs $1); w0=$(date +%s.%N)
    if [ -n "$4" ]; then
        out=$(taskset -c 0 wrk -t1 -c64 -d${3}s --latency -H "$4" http://127.0.0.1:$2/)
    else
        out=$(taskset -c 0 wrk -t1 -c64 -d${3}s --latency http://127.0.0.1:$2/)
    fi
    t1=$(ticks $1); c1=$(vcs $1); w1=$(date +%s.%N)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    p99=$(echo "$out" | awk '$1 == "99%" {v = $2; u = v; sub(/[0-9.]+/, "", u); sub(/[a-z]+$/, "", v);
        f = (u == "us") ? 0.001 : (u == "s") ? 1000 : 1; printf "%.3f", v * f}')
    err=$(echo "$out" | awk '/Non-2xx/ {n += $NF} /Socket errors/ {gsub(",", ""); n += $4 + $6 + $8 + $10} END {print n + 0}')
    echo "rps=$rps p99=$p99 cpu=$(echo "($t1 - $t0) / $hz / ($w1 - $w0)" | bc -l | xargs printf '%.2f') load=$l errors=$err sleeps=$(echo "($c1 - $c0) * 1000 / $n" | bc -l | xargs printf '%.1f')"
}
tool_run() { # PID benchtool-args...: "value=... cpu=... load=..."
    local p=$1 l t0 w0 v t1 w1; shift
    l=$(load); t0=$(ticks $p); w0=$(date +%s.%N)
    v=$(taskset -c 0 build/benchtool "$@")
    t1=$(ticks $p); w1=$(date +%s.%N)
    echo "value=${v%% *} errors=$(echo "$v" | awk '{print $2 + 0}') cpu=$(echo "($t1 - $t0) / $hz / ($w1 - $w0)" | bc -l | xargs printf '%.2f') load=$l"
}
record() { echo "$*" >> $res; echo "  $*"; }
phase() { echo "[$(( $(date +%s) - t_start ))s] $*"; }

echo "bench: $rounds rounds of ${secs}s; scratch $dir"
wait_port $NGX; wait_port $SINK; wait_port $ECHO

# ---- throughput: both proxies up, pinned to core 1, loaded in turn ----
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

# ---- memory: a fresh process per measurement, 2,000 clients after a warm-up ----
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

# ---- the idle curve: 1k to 100k plain keep-alive clients ----
# The hard RLIMIT_NOFILE here is 20,000 and cannot be raised (no
# CAP_SYS_RESOURCE): HAProxy refuses a maxconn whose 2 descriptors per
# connection do not fit, so one process of either proxy holds at most about
# 9,900 clients. 1k and 9k are measured in one process; 10k and 100k in 12
# (edgegate `workers 12`; 12 HAProxy processes sharing the port through
# SO_REUSEPORT, as HAProxy 2.6 has no nbproc), about 8,300 clients each.
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
        start edgegate $dir/eg-w12.conf $EG_W12; all="$ppid $(pgrep -P $ppid | tr '\n' ' ')"; H=$EG_W12
    else
        all=""
        for _ in $(seq 12); do
            taskset -c 1 haproxy -f $dir/ha-idle.cfg -db -q & all="$all $!"; pids="$pids $!"
        done
        H=$HA_I12
    fi
    for _ in $(seq 100); do   # until the 12 listening sockets are open
        [ "$(ss -Hltn "sport = :$H" | wc -l)" -ge 12 ] && break; sleep 0.1
    done
    if [ $side = edgegate ]; then all="$ppid $(pgrep -P $ppid | tr '\n' ' ')"; fi
    l=$(load)
    taskset -c 0 build/benchtool idle $H $(echo $all | tr ' ' ',') $idle_stages_mp > $dir/idle.out
    while read -r _ n rest; do
        record "idle_$n $side 1 load=$l procs=12 $(echo "$rest" | tr ' ' '\n' | paste -d= - - | tr '\n' ' ')"
    done < $dir/idle.out
    for p in $all; do kill $p 2>/dev/null || true; done
    if [ $side = edgegate ]; then stop $ppid; fi
    for p in $all; do wait $p 2>/dev/null || true; done
done

# ---- workers 2 against workers 1: edgegate alone, on any core ----
cmd "workers 2 / workers 1" "taskset -c 0 wrk -t1 -c64 -d${secs}s --latency http://127.0.0.1:PORT/   (edgegate not pinned)"
cmd "load side's ceiling" "taskset -c 0 wrk -t1 -c64 -d${secs}s --latency http://127.0.0.1:NGINX-PORT/   (nginx directly, in the workers rounds)"
CPUS=0-1 start edgegate $dir/eg-w1.conf $EG_W1; w1=$ppid
CPUS=0-1 start edgegate $dir/eg-w2.conf $EG_W2; w2=$ppid
sleep 0.5   # the master's workers
for p in $w1:$EG_W1 $w2:$EG_W2; do wrk_run ${p%:*} ${p#*:} 1 >/dev/null; done
for r in $(seq $rounds); do
    phase "workers round $r/$rounds"
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

# ---- the report ----
mkdir -p $out
cp $res $out/bench-raw.txt; cp $cmds $out/bench-commands.txt   # to redo the report
python3 tests/bench/report.py $res $cmds $out "$rounds" "$secs" "$mrounds" \
    "$(( $(date +%s) - t_start ))"
echo "wrote $out/bench.md and $out/bench.png in $(( $(date +%s) - t_start )) s"
