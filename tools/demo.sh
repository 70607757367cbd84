#!/bin/sh
# `make run`: edgegate on conf/edgegate.conf in front of three simulated
# datacenters at different distances. Ctrl-C stops everything started here.
set -e
cd "$(dirname "$0")/.."
# Pid files (build/demo/NAME.pid) let a person stop one datacenter by its
# pid, and Redis keeps any file it writes there, never in the checkout.
run=build/demo
mkdir -p $run

pids=""
gateway=""
stop() {
    trap - EXIT INT TERM
    # The gateway first: it drains while what it talks to is still there.
    [ -n "$gateway" ] && kill "$gateway" 2>/dev/null && wait "$gateway" 2>/dev/null
    [ -n "$pids" ] && kill $pids 2>/dev/null
    wait 2>/dev/null
    rm -f $run/*.pid
    exit 0
}
trap stop EXIT INT TERM

# start NAME COMMAND...: runs COMMAND in the background, its pid in $run/NAME.pid
start() {
    name=$1
    shift
    "$@" &
    pids="$pids $!"
    echo $! > $run/$name.pid
}

conf=conf/edgegate.conf
listening() { grep -q "^ *[0-9]*: [0-9A-F]*:$(printf '%04X' "$1") [0-9A-F:]* 0A" /proc/net/tcp; }
if command -v redis-server >/dev/null; then
    # An instance already on 6379 is used as it is; otherwise start one.
    listening 6379 || start redis redis-server --port 6379 --bind 127.0.0.1 --save '' \
        --appendonly no --dir "$PWD/$run" --loglevel warning
    affinity="Redis on 127.0.0.1:6379"
else
    awk '/^redis /{skip=1} !skip{print} skip && /^}/{skip=0}' conf/edgegate.conf > $run/demo.conf
    conf=$run/demo.conf
    affinity="in memory (no redis-server installed)"
fi

start ams build/dcsim --name ams --listen 127.0.0.1:9001 --delay 2ms
start fra build/dcsim --name fra --listen 127.0.0.1:9002 --delay 15ms
start lon build/dcsim --name lon --listen 127.0.0.1:9003 --delay 40ms
sleep 0.3
build/edgegate -f -c $conf &
gateway=$!
echo $gateway > $run/edgegate.pid
sleep 0.5

cat <<MSG

edgegate demo is running:
  curl localhost:8080/                  answered by the nearest datacenter (dc=ams)
  curl -b sid=alice localhost:8080/     a session, pinned to its datacenter
  http://127.0.0.1:9100/stats           stats (JSON)
Session affinity: $affinity
Stop a datacenter to watch failover: kill -STOP $(cat $run/ams.pid)  (and -CONT to resume)
Ctrl-C stops everything.

MSG
wait
