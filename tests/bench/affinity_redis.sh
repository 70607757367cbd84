#!/bin/sh
# http mode with session affinity in Redis vs in memory: wrk keep-alive, each
# request carrying one of SESSIONS session cookies at random, after a warm-up
# that fills the cache. Alternated ROUNDS times; prints requests/s, p99 and
# the Redis/memory ratio.
# Usage: tests/bench/affinity_redis.sh [SECONDS] [CONNECTIONS] [ROUNDS] [SESSIONS]
set -e
cd "$(dirname "$0")/../.."
secs=${1:-5}; conns=${2:-50}; rounds=${3:-2}; sessions=${4:-1000}
. tests/bench/common.sh
DC=$(port); RP=$(port); MEM=$(port); RED=$(port); SP=$(port)

build/dcsim --name ams --listen 127.0.0.1:$DC >/dev/null & pids="$pids $!"
redis-server --port $RP --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 & pids="$pids $!"
sleep 0.3
for mode in mem red; do
    [ $mode = mem ] && lp=$MEM || lp=$RED
    {
        echo "log warn;"
        [ $mode = red ] && echo "stats 127.0.0.1:$SP; redis 127.0.0.1:$RP { prefix bench:; }"
        echo "datacenter ams { server 127.0.0.1:$DC; }"
        echo "listener web { listen 127.0.0.1:$lp; session cookie sid; }"
    } > $dir/$mode.conf
    build/edgegate -f -c $dir/$mode.conf & pids="$pids $!"
done
cat > $dir/sessions.lua <<LUA
math.randomseed(os.time())
request = function()
    return wrk.format("GET", "/", {["Cookie"] = "sid=s" .. math.random(1, $sessions)})
end
LUA
sleep 0.5

run() { # name port seconds
    out=$(wrk -t1 -c$conns -d${3}s --latency -s $dir/sessions.lua http://127.0.0.1:$2/)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    err=$(echo "$out" | grep -E "Non-2xx|Socket errors" || true)
    echo "$1 $rps $p99 $err"
}

run warmup $RED 2 > /dev/null
printf "%-8s %12s %10s\n" affinity "requests/s" p99
: > $dir/res
i=0
while [ $i -lt $rounds ]; do
    run memory $MEM $secs >> $dir/res
    run redis $RED $secs >> $dir/res
    i=$((i + 1))
done
awk '{printf "%-8s %12s %10s %s\n", $1, $2, $3, $4" "$5" "$6" "$7}' $dir/res
awk '$1=="redis"{r+=$2} $1=="memory"{m+=$2} END {printf "ratio redis/memory requests/s: %.2f\n", r/m}' $dir/res
echo "redis commands during the runs: $(curl -s 127.0.0.1:$SP/stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["redis"]["commands_total"])')"
