#!/usr/bin/env bash
# Builds the node VM image into OUT: vmlinuz, initrd.img and node.img (ext4
# root), from Debian packages only (mmdebstrap, trixie: kernel 6.12, systemd,
# cgroup v2). node.img appears last, so its presence means a complete build.
# Usage: hack/nodevm/build.sh OUT (make node-image calls it under a lock).
# Needs root, mmdebstrap and mkfs.ext4 (e2fsprogs); no loop device.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUT}
suite=trixie

# The Debian mirror is the one this machine's apt uses (deb822 .sources or
# one-line .list entries): it is the one that answers here.
uris() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && awk '/^URIs:/{for (i = 2; i <= NF; i++) print $i}' "$f"
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] && awk '$1 == "deb" {for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f"
	done
	true
}
main=$(uris | grep -v security | head -1 || true)
sec=$(uris | grep security | head -1 || true)
[ -n "$main" ] || { echo "nodevm: no Debian mirror in this machine's apt sources" >&2; exit 1; }

# The guest's packages: a booting systemd node, what the tests run in it, and
# what a Kubernetes node needs besides containerd 2.x and the kubelet, which
# Debian does not ship (make node-bins builds them): runc, the CNI plugins and
# nftables (the rules kube-proxy would write for the kubernetes Service, and
# the pods' masquerade).
packages=systemd,systemd-sysv,dbus,udev,kmod,procps,util-linux,perl,linux-image-amd64,initramfs-tools,zstd,e2fsprogs,runc,containernetworking-plugins,iproute2,nftables
# The units that would only cost boot time (no logins: no logind) or, for
# serial-getty, hang up the console that the harness reads. The root needs
# no fsck (pass 0, so no wait for its device unit either), and /etc/.updated
# and /var/.updated spare every boot of the snapshot the first-boot updates
# (ldconfig, the journal catalog).
masked="apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer
e2scrub_reap.service systemd-pstore.service systemd-logind.service getty@tty1.service serial-getty@ttyS0.service"

mkdir -p "$out"
work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# MODULES=list: a zstd initrd with only the drivers to mount the root and the
# share, and without udev's 13 MB hardware database (zz-no-hwdb): the
# biggest boot-time saving under TCG, where the kernel unpacks it slowly.
mmdebstrap --variant=minbase --include="$packages" \
	--setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; echo MODULES=list > "$1/etc/initramfs-tools/conf.d/modules"; printf "%s\n" virtio_pci virtio_blk ext4 9p 9pnet_virtio > "$1/etc/initramfs-tools/modules"' \
	--customize-hook="install -m 0755 '$here/guest/initramfs-no-hwdb' \"\$1/etc/initramfs-tools/hooks/zz-no-hwdb\"; chroot \"\$1\" update-initramfs -u -k all" \
	--customize-hook='echo node > "$1/etc/hostname"; mkdir -p "$1/mnt/host"; printf "/dev/vda / ext4 defaults 0 0\nhostshare /mnt/host 9p trans=virtio,version=9p2000.L,msize=524288,nofail 0 0\n" > "$1/etc/fstab"; chroot "$1" passwd -d root' \
	--customize-hook="for u in $(echo $masked); do chroot \"\$1\" systemctl mask \$u; done" \
	--customize-hook="install -m 0644 '$here/guest/nodevm-run.service' \"\$1/etc/systemd/system/\"; install -m 0755 '$here/guest/nodevm-run' \"\$1/usr/local/sbin/\"; chroot \"\$1\" systemctl enable nodevm-run.service" \
	--customize-hook='touch "$1/etc/.updated" "$1/var/.updated"' \
	--customize-hook="cp \"\$1\"/boot/vmlinuz-* '$work/vmlinuz'; cp \"\$1\"/boot/initrd.img-* '$work/initrd.img'" \
	"$suite" "$work/rootfs" \
	"deb $main $suite main" "deb $main $suite-updates main" ${sec:+"deb $sec $suite-security main"}

# mkfs.ext4 -d fills the file system from the directory: no loop mount.
# The image is sparse (3 GiB apparent, about 500 MB used); QEMU opens it with
# snapshot=on, so runs never change it.
truncate -s 3G "$work/node.img"
mkfs.ext4 -q -F -L node -d "$work/rootfs" "$work/node.img"
mv "$work/vmlinuz" "$work/initrd.img" "$out/"
mv "$work/node.img" "$out/node.img"
