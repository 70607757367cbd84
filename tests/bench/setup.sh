# Sourced by tests/bench/bench.sh and profile.sh, after common.sh: the
# backends on core 0 (nginx `return 200`, a tcp sink, a tcp echo), one RSA
# certificate, and edgegate and HAProxy configurations written alike, with
# start/stop helpers. Expects $maxconn; $tools: more commands to require.
for b in build/edgegate build/benchtool; do
    [ -x $b ] || { echo "$b missing: run make bench" >&2; exit 1; }
done
for t in nginx haproxy wrk taskset openssl ss pgrep $tools; do
    command -v $t >/dev/null || [ -x /usr/sbin/$t ] || { echo "$t missing (tools/deps.sh test)" >&2; exit 1; }
done
PATH=$PATH:/usr/sbin

NGX=$(port); SINK=$(port); ECHO=$(port)
EG_HTTP=$(port); EG_TLS=$(port); EG_BULK=$(port); EG_CONN=$(port); EG_W1=$(port); EG_W2=$(port)
EG_W12=$(port); EG_T1=$(port); EG_T2=$(port)
HA_T1=$(port); HA_T2=$(port)
HA_HTTP=$(port); HA_TLS=$(port); HA_BULK=$(port); HA_CONN=$(port); HA_I12=$(port)

# ---- the backends: nginx and the tcp sink and echo servers, on core 0 ----

mkdir -p $dir/ngx/tmp
cat > $dir/ngx/nginx.conf <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $dir/ngx/nginx.pid;
error_log $dir/ngx/error.log warn;
events { worker_connections 16384; }
http {
    access_log off;
    client_body_temp_path $dir/ngx/tmp;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    default_type text/plain;
    server {
        listen 127.0.0.1:$NGX backlog=4096;
        location / { return 200 "hello from nginx\n"; }
    }
}
CONF
taskset -c 0 nginx -p $dir/ngx -c $dir/ngx/nginx.conf -e $dir/ngx/error.log & ngx=$!; pids="$pids $ngx"
taskset -c 0 build/benchtool serve $SINK sink & pids="$pids $!"
taskset -c 0 build/benchtool serve $ECHO echo & pids="$pids $!"

openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=bench.test \
    -keyout $dir/key.pem -out $dir/cert.pem 2>/dev/null
cat $dir/cert.pem $dir/key.pem > $dir/both.pem
# The workers' TLS figure: an RSA-4096 certificate, so that the handshake's
# signature (about 4 ms here) outweighs the client's share of it (about
# 0.6 ms in OpenSSL 3.0: with RSA-2048 the client costs almost what the
# server does, 0.5 ms against 0.6, and the load generator is the ceiling).
openssl req -x509 -newkey rsa:4096 -nodes -days 2 -subj /CN=bench.test \
    -keyout $dir/key4096.pem -out $dir/cert4096.pem 2>/dev/null
cat $dir/cert4096.pem $dir/key4096.pem > $dir/both4096.pem

# ---- the two proxies, configured alike ----
# http mode, keep-alive on both sides, the server connections pooled,
# X-Forwarded-For and X-Forwarded-Proto added by both, the same timeouts, no
# checks, no logging of requests, the same connection limit.

eg_conf() { # FILE WORKERS HTTP-PORT [TLS-PORT BULK-PORT CONN-PORT]
    {
        echo "log warn;"
        echo "workers $2;"
        echo "drain_timeout 2s;"
        echo "datacenter web { server 127.0.0.1:$NGX; }"
        echo "datacenter sink { server 127.0.0.1:$SINK; }"
        echo "datacenter echo { server 127.0.0.1:$ECHO; }"
        echo "listener http { listen 127.0.0.1:$3; mode http; datacenters web;"
        echo "    idle_timeout 300s; max_connections $maxconn; }"
        [ -z "$4" ] || cat <<CONF
listener https { listen 127.0.0.1:$4; mode http; datacenters web; idle_timeout 300s;
    max_connections $maxconn; tls cert $dir/cert.pem key $dir/key.pem; }
listener bulk { listen 127.0.0.1:$5; mode tcp; datacenters sink; idle_timeout 300s;
    max_connections $maxconn; }
listener conn { listen 127.0.0.1:$6; mode tcp; datacenters echo; idle_timeout 300s;
    max_connections $maxconn; }
CONF
    } > $1
}
eg_conf $dir/eg.conf 1 $EG_HTTP $EG_TLS $EG_BULK $EG_CONN
eg_conf $dir/eg-w1.conf 1 $EG_W1
eg_conf $dir/eg-w2.conf 2 $EG_W2
eg_conf $dir/eg-w12.conf 12 $EG_W12
# TLS only, RSA-4096: workers 1 and 2 (and nbthread 1 and 2 below)
for w in 1 2; do
    p=$EG_T1; [ $w = 1 ] || p=$EG_T2
    cat > $dir/eg-tls-w$w.conf <<CONF
log warn;
workers $w;
drain_timeout 2s;
datacenter web { server 127.0.0.1:$NGX; }
listener https { listen 127.0.0.1:$p; mode http; datacenters web; idle_timeout 300s;
    max_connections $maxconn; tls cert $dir/cert4096.pem key $dir/key4096.pem; }
CONF
done

cat > $dir/ha.cfg <<CONF
global
    nbthread 1
    maxconn $maxconn
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    maxconn $maxconn
    timeout connect 1s
    timeout client 300s
    timeout server 300s
    timeout http-request 10s
    timeout http-keep-alive 300s
    http-reuse always
    option forwardfor
frontend http
    bind 127.0.0.1:$HA_HTTP
    http-request set-header X-Forwarded-Proto http
    default_backend web
frontend https
    bind 127.0.0.1:$HA_TLS ssl crt $dir/both.pem alpn http/1.1
    http-request set-header X-Forwarded-Proto https
    default_backend web
backend web
    server s1 127.0.0.1:$NGX
listen bulk
    mode tcp
    bind 127.0.0.1:$HA_BULK
    server s1 127.0.0.1:$SINK
listen conn
    mode tcp
    bind 127.0.0.1:$HA_CONN
    server s1 127.0.0.1:$ECHO
CONF

# A TLS-only HAProxy: ha.cfg's global (nbthread THREADS) and defaults, one
# https frontend on PORT with the certificate CERT, the nginx backend.
ha_tls_conf() { # FILE PORT CERT THREADS
    sed -n '1,/^frontend http$/p' $dir/ha.cfg | sed '$d' | sed "s/nbthread 1/nbthread $4/" > $1
    cat >> $1 <<CONF
frontend https
    bind 127.0.0.1:$2 ssl crt $3 alpn http/1.1
    http-request set-header X-Forwarded-Proto https
    default_backend web
backend web
    server s1 127.0.0.1:$NGX
CONF
}
ha_tls_conf $dir/ha-tls-t1.cfg $HA_T1 $dir/both4096.pem 1
ha_tls_conf $dir/ha-tls-t2.cfg $HA_T2 $dir/both4096.pem 2

sed -n '1,/^frontend https/p' $dir/ha.cfg | sed '$d' | sed "s/127.0.0.1:$HA_HTTP/127.0.0.1:$HA_I12/" > $dir/ha-idle.cfg
cat >> $dir/ha-idle.cfg <<CONF
backend web
    server s1 127.0.0.1:$NGX
CONF

wait_port() { # PORT: until something accepts on it (5 s at most, WAIT tenths)
    for _ in $(seq ${WAIT:-50}); do
        (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on port $1" >&2; exit 1
}
# Starts a proxy (edgegate or haproxy) on core 1, or on any core with
# CPUS=0-1, under the command in WRAP if set (valgrind); its pid in $ppid.
start() { # edgegate|haproxy CONFIG PORT
    local cpus=${CPUS:-1}
    if [ $1 = edgegate ]; then
        taskset -c $cpus $WRAP build/edgegate -f -c $2 &
    else
        taskset -c $cpus $WRAP haproxy -f $2 -db -q &
    fi
    ppid=$!; pids="$pids $ppid"
    wait_port $3
}
stop() { kill $1 2>/dev/null; wait $1 2>/dev/null || true; }
wait_listeners() { # PORT N: until N sockets listen on PORT (SO_REUSEPORT; 10 s at most)
    for _ in $(seq 100); do
        [ "$(ss -Hltn "sport = :$1" | wc -l)" -ge $2 ] && break; sleep 0.1
    done
}
# N HAProxy processes (nbthread 1) on CONFIG, whose port PORT they share,
# on core 1; $all: their pids, once all N listen.
start_haproxys() { # CONFIG N PORT
    all=""
    for _ in $(seq $2); do
        taskset -c 1 haproxy -f $1 -db -q & all="$all $!"; pids="$pids $!"
    done
    wait_listeners $3 $2
}
