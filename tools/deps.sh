#!/bin/sh
# Installs the Debian packages a target needs, and only those that are missing.
# Usage: tools/deps.sh build|run|test
# Runs apt-get only when something is missing, so a prepared machine pays nothing.
set -e

build="gcc make libev-dev libssl-dev libhiredis-dev libc-ares-dev libnghttp2-dev"
run="$build redis-server curl"
# lintian, logrotate, systemd (systemd-analyze) and man-db: the packaging tests;
# gnuplot-nox: the plot of `make bench`.
test="$build libcmocka-dev python3-pytest python3-redis python3-prometheus-client \
 redis-server redis-sentinel nginx-light haproxy wrk nghttp2-client curl openssl socat clang \
 libclang-rt-14-dev iproute2 procps chromium fonts-dejavu-core \
 lintian logrotate systemd man-db python3-h2 gnuplot-nox"

case "${1:-build}" in
build) want=$build ;;
run) want=$run ;;
test) want=$test ;;
*) echo "usage: $0 build|run|test" >&2; exit 1 ;;
esac

missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "missing packages:$missing (run as root, or install them)" >&2
    exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# Debian's postinst scripts would start redis/nginx/haproxy services on the
# default ports; the tests start their own instances, so keep those stopped.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod +x /usr/sbin/policy-rc.d
apt-get install -y -q --no-install-recommends $missing
rm -f /usr/sbin/policy-rc.d
