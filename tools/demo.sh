#!/bin/sh
# `make run`: edgegate on conf/edgegate.conf in front of three simulated
# datacenters at different distances. Ctrl-C stops everything started here.
set -e
cd "$(dirname "$0")/.."

pids=""
stop() {
    trap - EXIT INT TERM
    [ -n "$pids" ] && kill $pids 2>/dev/null
    wait 2>/dev/null
    exit 0
}
trap stop EXIT INT TERM

start() {
    "$@" &
    pids="$pids $!"
}

start build/dcsim --name ams --listen 127.0.0.1:9001 --delay 2ms
start build/dcsim --name fra --listen 127.0.0.1:9002 --delay 15ms
start build/dcsim --name lon --listen 127.0.0.1:9003 --delay 40ms
sleep 0.3
start build/edgegate -f -c conf/edgegate.conf
sleep 0.5

cat <<MSG

edgegate demo is running:
  curl localhost:8080/                  answered by the nearest datacenter (dc=ams)
  curl -b sid=alice localhost:8080/     a session, pinned to its datacenter
  http://127.0.0.1:9100/stats           stats (JSON)
Stop a datacenter to watch failover: pkill -STOP -f 'name ams'  (and -CONT to resume)
Ctrl-C stops everything.

MSG
wait
