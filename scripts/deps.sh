#!/bin/bash
# Install the Debian packages gosync needs, if any is missing.
# Runs 'apt-get update' first only when something has to be installed.
set -euo pipefail

packages=(
	build-essential kmod cpio file xz-utils perl bc flex bison libelf-dev libssl-dev
	linux-headers-amd64 linux-image-amd64 linux-source-6.12
	qemu-system-x86 busybox-static liburcu-dev spin
	gnuplot-nox golang-go graphviz dkms mandoc
)

missing=()
for p in "${packages[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}"
if [ "$(id -u)" != 0 ]; then
	sudo=sudo
else
	sudo=
fi
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends \
	"${missing[@]}"
