#!/usr/bin/env bash
# Installs the Debian packages the local stack runs (only those missing): PHP + WordPress for real
# sites, MariaDB for their databases and the clones', zip for the migrator plugin's archive.
# libnss-myhostname resolves *.localhost to loopback, where the local stack serves clones.
# The real node: containerd + runc + the CNI plugins run pods; iptables + ipset carry kube-proxy and the
# NetworkPolicy enforcer; mmdebstrap builds root filesystems from Debian's packages and buildah builds
# the project's Dockerfile over one (no Docker engine, no registry); busybox-static fills the node's small
# tools image (testenv/images.py). Chromium runs the dashboard's browser tests (driven by Playwright from PyPI).
set -euo pipefail
PACKAGES="wordpress wordpress-theme-twentytwentythree php8.2-cli php8.2-mysql php8.2-curl php8.2-zip
php8.2-xml php8.2-mbstring php8.2-gd php8.2-sqlite3 mariadb-server mariadb-client zip make libnss-myhostname
containerd runc containernetworking-plugins iptables ipset conntrack iproute2 mmdebstrap buildah
fuse-overlayfs uidmap busybox-static lua5.1 chromium fonts-dejavu-core fonts-liberation"
missing=""
for package in $PACKAGES; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
[ -z "$missing" ] && exit 0
echo "[testenv] installing Debian packages:$missing"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
$SUDO apt-get update -qq
# apt starts no services here; the harness starts its own private MariaDB.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
