#!/bin/bash
# Where the time and the bytes go, edgegate and HAProxy side by side, under
# the loads and with the setup of `make bench` (tests/bench/setup.sh):
#   callgrind   user-space instructions per request, keep-alive and
#               Connection: close (counted, so a busy machine does not
#               change them), and the functions that execute them
#   strace -c   system calls per request
#   perf        user/kernel split and the hottest symbols (cpu-clock samples),
#               keep-alive, Connection: close and tcp bulk
#   massif      the heap of 2,000 idle plain and 500 idle TLS clients, by
#               allocation site
# Summaries on standard output; full reports in OUTDIR.
# Usage: tests/bench/profile.sh [SECONDS] [OUTDIR]   (default 5, build/profile;
# SECTIONS="callgrind strace perf massif": the parts to run)
# Needs valgrind, linux-perf and strace.
set -e
cd "$(dirname "$0")/../.."
. tests/bench/common.sh
secs=${1:-5}; pout=${2:-build/profile}
tools="valgrind callgrind_control callgrind_annotate ms_print perf strace"
maxconn=9900
. tests/bench/setup.sh
mkdir -p $pout
sections=${SECTIONS:-callgrind strace perf massif}
on() { case " $sections " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }
wait_port $NGX; wait_port $SINK

load_run() { # PORT SECONDS keepalive|close: wrk's report
    if [ $3 = close ]; then
        taskset -c 0 wrk -t1 -c64 -d${2}s -H 'Connection: close' http://127.0.0.1:$1/
    else
        taskset -c 0 wrk -t1 -c64 -d${2}s http://127.0.0.1:$1/
    fi
}
requests() { awk '/requests in/ {print $1}'; }
ports() { # edgegate|haproxy -> "CONFIG HTTP TLS BULK CONN"
    if [ $1 = edgegate ]; then echo "$dir/eg.conf $EG_HTTP $EG_TLS $EG_BULK $EG_CONN"
    else echo "$dir/ha.cfg $HA_HTTP $HA_TLS $HA_BULK $HA_CONN"; fi
}

on callgrind && echo "== callgrind: user-space instructions per request ($secs s of wrk -c64 each)"
on callgrind && rm -f $pout/callgrind.*
on callgrind && for side in edgegate haproxy; do
    set -- $(ports $side)
    WAIT=600 WRAP="valgrind --log-file=$pout/valgrind.log --tool=callgrind --callgrind-out-file=$pout/callgrind.$side" \
        start $side $1 $5
    load_run $2 2 keepalive >/dev/null
    for load in keepalive close; do
        callgrind_control -z $ppid >/dev/null
        n=$(load_run $2 $secs $load | requests)
        callgrind_control --dump=$load $ppid >/dev/null
        f=$(ls -t $pout/callgrind.$side* | head -1)
        ir=$(awk '/^(summary|totals):/ {print $2}' $f | tail -1)
        callgrind_annotate --threshold=100 $f 2>/dev/null | sed -n '/file:function/,$p' |
            grep -v '(100.0%)' | sed -n '3,40p' > $pout/callgrind.$side.$load.txt
        echo "$side $load: $n requests, $(echo "$ir / $n" | bc) instructions per request;" \
             "top functions ($pout/callgrind.$side.$load.txt):"
        head -8 $pout/callgrind.$side.$load.txt | sed -E 's| \[/.*||; s|^|    |'
    done
    stop $ppid
done

on strace && echo "== strace -c: system calls per request ($secs s of wrk -c64)"
on strace && for side in edgegate haproxy; do
    set -- $(ports $side)
    start $side $1 $5
    load_run $2 1 keepalive >/dev/null
    for load in keepalive close; do
        strace -c -p $ppid -o $pout/strace.$side.$load.txt & st=$!
        sleep 0.5
        n=$(load_run $2 $secs $load | requests)
        kill -INT $st; wait $st 2>/dev/null || true
        echo "$side $load ($n requests): $(awk -v n=$n '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {printf "%s %.2f  ", $NF, $4 / n}' $pout/strace.$side.$load.txt)"
    done
    stop $ppid
done

on perf && echo "== perf: where the CPU time goes (cpu-clock, $secs s)"
on perf && for side in edgegate haproxy; do
    set -- $(ports $side)
    start $side $1 $5
    load_run $2 1 keepalive >/dev/null
    for load in keepalive close bulk; do
        if [ $load = bulk ]; then
            taskset -c 0 build/benchtool bulk $4 $((secs + 1)) 4 >/dev/null & lp=$!
        else
            load_run $2 $((secs + 1)) $load >/dev/null & lp=$!
        fi
        sleep 0.5
        perf record -q -F 1999 -g -p $ppid -o $pout/perf.$side.$load.data -- sleep $secs \
            >/dev/null 2>&1
        wait $lp
        perf report -i $pout/perf.$side.$load.data --no-children --sort sym --stdio -g none \
            2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 > $pout/perf.$side.$load.txt
        kern=$(perf report -i $pout/perf.$side.$load.data --no-children --sort dso --stdio \
            -g none 2>/dev/null | awk '/kernel/ {print $1}')
        incl=$(perf report -i $pout/perf.$side.$load.data --children --sort sym --stdio -g none \
            2>/dev/null | awk '$NF ~ /^(tcp_sendmsg|tcp_recvmsg|handle_softirqs|__x64_sys_epoll_wait|__x64_sys_accept4|__x64_sys_close|__x64_sys_shutdown|schedule)$/ {printf "%s %s  ", $NF, $1}')
        echo "$side $load: kernel $kern of the samples; hottest:" \
             "$(head -6 $pout/perf.$side.$load.txt | awk '{printf "%s %s  ", $1, $NF}')"
        echo "    inclusive: $incl"
    done
    stop $ppid
done

on massif && echo "== massif: heap of idle clients, by allocation site"
on massif && for side in edgegate haproxy; do
    set -- $(ports $side)
    for kind in plain tls; do
        if [ $kind = plain ]; then p=$2; n=2000; extra=""; else p=$3; n=500; extra=tls; fi
        WAIT=600 WRAP="valgrind --log-file=$pout/valgrind.log --tool=massif --massif-out-file=$pout/massif.$side.$kind.out" \
            start $side $1 $5
        WAIT=600 wait_port $p
        taskset -c 0 build/benchtool idle $p $ppid $n $extra warmup 64 >/dev/null
        stop $ppid
        echo "$side $kind, $n idle clients: heap by allocation site, per client" \
             "(fixed allocations divided too; ms_print $pout/massif.$side.$kind.out for all)"
        python3 tests/bench/massif_top.py $pout/massif.$side.$kind.out $n 12 | sed 's/^/    /'
    done
done
