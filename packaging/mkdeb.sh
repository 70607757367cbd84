#!/bin/sh
# Builds build/edgegate_VERSION_ARCH.deb from `make install` into a staging
# tree, with dpkg-deb (no debhelper needed). What debhelper would add is done
# here by hand: stripped binaries (their debug information kept next to the
# package), compressed man page and changelog, copyright, maintainer scripts
# (packaging/debian/), lintian overrides, conffiles.
#
# Usage: packaging/mkdeb.sh VERSION   (VERSION must be the changelog's latest)
set -e
cd "$(dirname "$0")/.."
umask 022
version=$1
changelog=packaging/debian/changelog
# The latest entry of the changelog, read as dpkg-parsechangelog would (its
# first line and its " -- NAME <EMAIL>  DATE" trailer) without needing dpkg-dev.
if [ "$(sed -n '1s/^edgegate (\([^)]*\)).*/\1/p' "$changelog")" != "$version" ]; then
    echo "mkdeb: version $version is not the latest entry of $changelog" >&2
    exit 1
fi
trailer=$(sed -n '/^ -- /{s/^ -- //p;q}' "$changelog")
# The maintainer is whoever signed that entry, and every file of the package
# gets its date (reproducible builds).
maintainer="${trailer%%>*}>"
SOURCE_DATE_EPOCH=$(date -d "${trailer#*>  }" +%s)
export SOURCE_DATE_EPOCH
arch=$(dpkg --print-architecture)
stage=build/deb
doc=$stage/usr/share/doc/edgegate
out=build/edgegate_${version}_${arch}.deb
rm -rf "$stage"
make install DESTDIR="$PWD/$stage" PREFIX=/usr >/dev/null

# Stripped as dh_strip does; the debug information stays in build/.
for bin in edgegate edgegatectl; do
    debug=build/${bin}_${version}_${arch}.debug
    objcopy --only-keep-debug "$stage/usr/sbin/$bin" "$debug"
    strip --remove-section=.comment --remove-section=.note "$stage/usr/sbin/$bin"
    objcopy --add-gnu-debuglink="$debug" "$stage/usr/sbin/$bin"
done
gzip -9n "$stage/usr/share/man/man8/edgegate.8"
gzip -9n "$stage/usr/share/man/man8/edgegatectl.8"
gzip -9n "$stage/usr/share/man/man5/edgegate.conf.5"

# README.md's links point into docs/: the same layout under the doc folder.
install -d "$doc/docs"
install -m 0644 README.md "$doc/"
install -m 0644 docs/*.md "$doc/docs/"
install -m 0644 packaging/debian/copyright "$doc/"
gzip -9nc "$changelog" > "$doc/changelog.gz"
install -D -m 0644 packaging/debian/lintian-overrides "$stage/usr/share/lintian/overrides/edgegate"

install -d "$stage/DEBIAN"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/"
done
# Every file under /etc is a conffile: dpkg keeps the administrator's changes.
(cd "$stage" && find etc -type f | sort | sed 's|^|/|') > "$stage/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$stage" | cut -f1)
cat > "$stage/DEBIAN/control" <<CONTROL
Package: edgegate
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $size
Depends: adduser, libc6, libev4, libssl3, libhiredis0.14, libc-ares2, libnghttp2-14
Section: net
Priority: optional
Description: edge routing gateway with datacenter failover
 Terminates TCP, TLS, HTTP/1.1 and HTTP/2 client connections, health-checks
 a set of datacenters, keeps each session pinned to one datacenter (in
 Redis, shared by a fleet of gateways) and reroutes traffic to the nearest
 healthy datacenter when one fails.
CONTROL
# Conffiles have their checksums in dpkg's database, not in md5sums.
(cd "$stage" && find . \( -path ./DEBIAN -o -path ./etc \) -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 md5sum) > "$stage/DEBIAN/md5sums"
dpkg-deb --root-owner-group --build "$stage" "$out" >/dev/null
echo "$out"
