#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-or-later
# The test suite on another Debian release's QGIS, in a chroot built from Debian's own packages:
#
#   tools/chroot_test.sh SUITE NAME [PYTEST_ARGS...]     e.g.  tools/chroot_test.sh trixie qgis340
#
# (make test-qgis340: trixie, QGIS 3.40 LTR; make test-qgis344: sid, QGIS 3.44). Three steps, each timed:
#   build    debootstrap --variant=minbase SUITE into build/chroot-NAME (once; the stamp .cofusion-bootstrap)
#   install  apt-get the packages below in the chroot (again only when the list changes; the stamp .cofusion-packages)
#   test     copy the checkout to /src/main in the chroot (../shared/data read-only beside it where it exists),
#            link it as the package `cofusion` (/src/pkg/cofusion, a .pth, QGIS_PLUGINPATH: the Makefile's PKGDIR),
#            and run the chroot's python3 -m pytest on it with QT_QPA_PLATFORM=offscreen, in a fresh /tmp and HOME.
# Everything comes from Debian: pip in the chroot does not reach PyPI, and nothing the host has installed is used.
# The mounts (proc, sys, dev, the shared data) live in a private mount namespace (unshare) and are unmounted by a
# trap as well: none outlives the script, whatever ends it, so `rm -rf build` never reaches through to the host.
# Needs root (re-runs itself with sudo) and network to the Debian mirror (DEBIAN_MIRROR, default deb.debian.org).
set -euo pipefail

if [ $# -lt 2 ]; then
    echo "usage: $0 SUITE NAME [PYTEST_ARGS...]   (e.g. $0 trixie qgis340)" >&2
    exit 2
fi
SUITE=$1
NAME=$2
shift 2

if [ "$(id -u)" != 0 ]; then
    exec sudo --preserve-env=DEBIAN_MIRROR "$0" "$SUITE" "$NAME" "$@"
fi
if [ -z "${COFUSION_CHROOT_NS:-}" ]; then
    # A private mount namespace: the chroot's mounts are never visible on the host and vanish with the script.
    COFUSION_CHROOT_NS=1 exec unshare --mount --propagation private "$0" "$SUITE" "$NAME" "$@"
fi

ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$ROOT/build"
CHROOT=$(cd "$ROOT/build" && pwd -P)/chroot-$NAME  # without links: compared with /proc/self/mountinfo
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
# The Makefile's APT_PACKAGES (less the venv and Xvfb), the runtime requirements (requirements.txt) and the test
# requirements (requirements-dev.txt) as Debian packages; pip and setuptools for the dependency installer's tests.
# torchmetrics and lightning-utilities are not packaged by Debian: the metric cross-checks against torchmetrics skip.
PACKAGES="qgis python3-qgis qgis-providers python3-gdal gdal-bin python3-pyqtgraph python3-pywt python3-scipy
    python3-torch python3-safetensors python3-spectral
    python3-pytest python3-hypothesis python3-skimage python3-pip python3-setuptools python3-wheel"
PACKAGES=$(echo $PACKAGES)

log() { echo "[chroot $NAME] $*"; }

# Every mount under the chroot, deepest first, unmounted (lazily where busy); fails if any is left.
unmount_all() {
    local target
    for target in $(awk -v root="$CHROOT" '$5 == root || index($5, root "/") == 1 { print $5 }' /proc/self/mountinfo \
            | sort -r); do
        umount "$target" 2>/dev/null || umount -l "$target"
    done
    if awk -v root="$CHROOT" '$5 == root || index($5, root "/") == 1 { found = 1 } END { exit !found }' \
            /proc/self/mountinfo; then
        echo "[chroot $NAME] mounts are left under $CHROOT" >&2
        return 1
    fi
}

mount_system() {
    mount -t proc proc "$CHROOT/proc"
    mount -t sysfs sysfs "$CHROOT/sys"
    mount --bind /dev "$CHROOT/dev"
    mkdir -p "$CHROOT/dev/pts" "$CHROOT/dev/shm"
    mount --bind /dev/pts "$CHROOT/dev/pts"
    mount -t tmpfs -o mode=1777 tmpfs "$CHROOT/dev/shm"
}

in_chroot() {
    env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive chroot "$CHROOT" "$@"
}

trap unmount_all EXIT
unmount_all

# A build or install step that fails (Debian's mirror unreachable, a sid transition) exits with 75 (EX_TEMPFAIL):
# the suite did not run, which .ci/run reports apart from a test failure (pytest's own status).
unavailable() {
    log "$1 failed: the $NAME chroot could not be built, so its suite did not run"
    exit 75
}

# -------------------------------------------------------------------------------------------------- build
start=$(date +%s)
if [ ! -e "$CHROOT/.cofusion-bootstrap" ]; then
    if ! command -v debootstrap > /dev/null; then
        log "installing debootstrap on the host"
        env DEBIAN_FRONTEND=noninteractive apt-get update -q || unavailable "apt-get update (host)"
        env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap \
            || unavailable "apt-get install debootstrap (host)"
    fi
    rm -rf "$CHROOT"  # a half-built chroot from an interrupted run (nothing is mounted there: unmount_all)
    mkdir -p "$CHROOT"
    log "debootstrap --variant=minbase $SUITE $MIRROR"
    debootstrap --variant=minbase "$SUITE" "$CHROOT" "$MIRROR" || unavailable "debootstrap $SUITE"
    touch "$CHROOT/.cofusion-bootstrap"
    log "build: $(( $(date +%s) - start )) s"
fi

# ------------------------------------------------------------------------------------------------ install
start=$(date +%s)
if [ "$(cat "$CHROOT/.cofusion-packages" 2>/dev/null)" != "$PACKAGES" ]; then
    cp /etc/resolv.conf "$CHROOT/etc/resolv.conf"
    # No daemon starts in the chroot; apt installs no recommends, and takes a sid Release past its Valid-Until (a
    # week after it is signed): a mirror snapshot or a caching proxy serves one that old.
    printf '#!/bin/sh\nexit 101\n' > "$CHROOT/usr/sbin/policy-rc.d"
    chmod +x "$CHROOT/usr/sbin/policy-rc.d"
    printf '%s\n' 'APT::Install-Recommends "false";' 'APT::Install-Suggests "false";' \
        'Acquire::Check-Valid-Until "false";' > "$CHROOT/etc/apt/apt.conf.d/90cofusion"
    mount_system
    log "apt-get install $PACKAGES"
    in_chroot apt-get update -q || unavailable "apt-get update ($SUITE)"
    # shellcheck disable=SC2086
    in_chroot apt-get install -y -q --no-install-recommends $PACKAGES || unavailable "apt-get install ($SUITE)"
    in_chroot apt-get clean
    unmount_all
    echo "$PACKAGES" > "$CHROOT/.cofusion-packages"
    log "install: $(( $(date +%s) - start )) s"
fi

# --------------------------------------------------------------------------------------------------- test
start=$(date +%s)
rm -rf "$CHROOT/src" "$CHROOT/tmp"
mkdir -p "$CHROOT/src/main" "$CHROOT/src/pkg" "$CHROOT/tmp/home"
chmod 1777 "$CHROOT/tmp"
tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./dist --exclude='__pycache__' \
    --exclude=.pytest_cache --exclude=.hypothesis --exclude=.ruff_cache -cf - . | tar -C "$CHROOT/src/main" -xf -
ln -s /src/main "$CHROOT/src/pkg/cofusion"
site=$(in_chroot /usr/bin/python3 -c 'import sysconfig; print(sysconfig.get_path("purelib", "posix_local"))' \
    2>/dev/null || true)
case "$site" in /usr/local/lib/python3*) ;; *) site=$(in_chroot /usr/bin/python3 -c \
    'import sys; print(f"/usr/local/lib/python{sys.version_info[0]}.{sys.version_info[1]}/dist-packages")');; esac
mkdir -p "$CHROOT$site"
echo /src/pkg > "$CHROOT$site/cofusion.pth"
mount_system
if [ -d "$ROOT/../shared/data" ]; then
    mkdir -p "$CHROOT/src/shared/data"
    mount --bind "$ROOT/../shared/data" "$CHROOT/src/shared/data"
    mount -o remount,bind,ro "$CHROOT/src/shared/data"
fi
versions=$(in_chroot /usr/bin/python3 -c 'import sys, numpy, torch; from osgeo import gdal; from qgis.core import Qgis
print(f"QGIS {Qgis.QGIS_VERSION}, Python {sys.version.split()[0]}, numpy {numpy.__version__}, "
      f"GDAL {gdal.__version__}, torch {torch.__version__}")' 2>/dev/null || echo "versions unknown")
log "$SUITE: $versions"
status=0
in_chroot /usr/bin/env HOME=/tmp/home QT_QPA_PLATFORM=offscreen PYTHONDONTWRITEBYTECODE=1 \
    QGIS_PLUGINPATH=/src/pkg /bin/sh -c 'cd /src/main && exec /usr/bin/python3 -m pytest -q -p no:cacheprovider "$@"' \
    pytest "${@:-tests}" || status=$?
log "test: $(( $(date +%s) - start )) s (pytest exit $status)"
exit $status
