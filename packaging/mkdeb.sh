#!/bin/sh
# Builds build/edgegate_VERSION_ARCH.deb from `make install` into a staging
# tree, with dpkg-deb (no debhelper needed).
set -e
cd "$(dirname "$0")/.."
version=$1
arch=$(dpkg --print-architecture)
stage=build/deb
rm -rf "$stage"
make install DESTDIR="$PWD/$stage" PREFIX=/usr >/dev/null
mkdir -p "$stage/DEBIAN" "$stage/usr/share/doc/edgegate"
cp README.md "$stage/usr/share/doc/edgegate/"
gzip -9n "$stage/usr/share/man/man8/edgegate.8"
size=$(du -sk "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: edgegate
Version: $version
Architecture: $arch
Maintainer: edgegate developers <edgegate@localhost>
Installed-Size: $size
Depends: libc6, libev4, libssl3, libhiredis0.14, libc-ares2
Section: net
Priority: optional
Description: edge routing gateway with datacenter failover
 Terminates TCP, TLS and HTTP/1.1 client connections, health-checks a set of
 datacenters, keeps each session pinned to one datacenter (in Redis, shared
 by a fleet of gateways) and reroutes traffic to the nearest healthy
 datacenter when one fails.
CONTROL
echo /etc/edgegate/edgegate.conf > "$stage/DEBIAN/conffiles"
cat > "$stage/DEBIAN/postinst" <<'POSTINST'
#!/bin/sh
set -e
if [ "$1" = configure ] && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    systemctl daemon-reload || true
fi
POSTINST
chmod 0755 "$stage/DEBIAN/postinst"
out=build/edgegate_${version}_${arch}.deb
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
