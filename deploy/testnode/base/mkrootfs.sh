#!/usr/bin/env bash
# mkrootfs.sh ROOTFS MIRROR OUT.tar
# Debootstraps a minimal Debian bookworm with the packages listed beside this
# script into ROOTFS, trims it and writes it as a tar for `docker import`.
# Run as root. No service starts during the install (policy-rc.d).
set -euo pipefail
rootfs=$1 mirror=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
suite=bookworm

pkgs=$(grep -v '^[[:space:]]*\(#\|$\)' "$here/packages" | paste -sd, -)

# policy-rc.d must be in place before any package's postinst runs, so it goes
# in through debootstrap's --foreign split: first stage unpacks, then we add
# it, then the second stage configures.
debootstrap --variant=minbase --foreign --include="$pkgs" "$suite" "$rootfs" "$mirror"
install -D -m 0755 /dev/stdin "$rootfs/usr/sbin/policy-rc.d" <<'POLICY'
#!/bin/sh
exit 101
POLICY
chroot "$rootfs" /debootstrap/debootstrap --second-stage

# The package install creates a cluster in /var/lib/postgresql/15/main: the
# image initdb's its own at first start into a volume.
chroot "$rootfs" pg_dropcluster 15 main 2>/dev/null || rm -rf "$rootfs/var/lib/postgresql/15/main" "$rootfs/etc/postgresql/15/main"

# Same apt sources inside as used to build it (never a host name in the repo).
echo "deb $mirror $suite main" > "$rootfs/etc/apt/sources.list"
rm -f "$rootfs/usr/sbin/policy-rc.d"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/apt/* "$rootfs"/var/log/dpkg.log \
  "$rootfs"/var/cache/debconf/*-old "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
  "$rootfs"/usr/share/info/* "$rootfs"/tmp/* "$rootfs"/var/tmp/*
# The host's identity must not leak into the image.
: > "$rootfs/etc/hostname"
rm -f "$rootfs/etc/resolv.conf"

tar --numeric-owner --xattrs -C "$rootfs" -cf "$out.tmp" .
mv "$out.tmp" "$out"
