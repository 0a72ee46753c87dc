#!/usr/bin/env bash
# Build refit's two images with podman where no Docker engine and no registry are reachable.
#
# Usage:  scripts/images.sh build        install podman & co if missing, build (or reuse) the bases,
#                                        then build refit and refit-tfdv from their Dockerfiles
#         scripts/images.sh service SOCK run `podman system service` on unix://SOCK (foreground),
#                                        for docker clients (DOCKER_HOST=unix://SOCK)
#         scripts/images.sh podman ARGS  run podman with this script's settings
#
# What it does, and why (../shared/containers/README.md has the measurements behind it):
#   * podman runs with private settings written under the cache: runc (crun refuses hybrid cgroup
#     layouts), cgroupfs, a file events logger, and ulimits that root without CAP_SYS_RESOURCE can
#     set (nofile=20000, nproc=32768).
#   * The image store lives in a persistent cache outside the repository
#     (${REFIT_CONTAINER_CACHE:-$HOME/.cache/refit/containers}), so a fresh clone reuses it.
#   * No registry is reachable, so the bases the Dockerfiles name (python:3.11.7-slim-bookworm,
#     python:3.11-slim-trixie) are made here: a `debootstrap --variant=minbase` Debian root with the
#     runtime libraries CPython needs and ca-certificates, plus CPython 3.11 in /usr/local (as in
#     the official python images) copied from this machine's own build (REFIT_BASE_PYTHON, default
#     the interpreter `python3.11` resolves to), its standard library without tests, tkinter or
#     site-packages, and pip from its ensurepip. Each base is tagged with a content key of its
#     inputs (suite, mirror, packages, the interpreter's files, this recipe) and reused while the
#     key is unchanged: a rebuild with unchanged inputs takes seconds.
#   * Outbound TLS here may be intercepted: the host's CA bundle is bind-mounted over the image's
#     /etc/ssl/certs/ca-certificates.crt for the build's RUN steps only (`--volume`), never baked
#     into a layer. The bases point pip at that path (PIP_CERT), which is Debian's own bundle in the
#     final image.
#   * refit and refit-tfdv are built from components/images/*/Dockerfile unchanged, with
#     `--build-arg PYTHON_IMAGE=<base>` and podman's layer cache. The wheel is built with a fixed
#     SOURCE_DATE_EPOCH, so unchanged sources give the same wheel; an image whose inputs (base,
#     Dockerfile, locks, wheel) are unchanged is reused as it is (its revision label is then the
#     commit that first built those inputs).
# Env: REFIT_CONTAINER_CACHE, REFIT_BASE_MIRROR (Debian mirror; default: the host's apt source),
#      REFIT_BASE_PYTHON (a CPython 3.11 interpreter to copy), REFIT_HOST_CA (CA bundle for builds).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${REFIT_CONTAINER_CACHE:-$HOME/.cache/refit/containers}"
HOST_CA="${REFIT_HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
RECIPE_VERSION=1 # bump when the base recipe below changes meaning
PACKAGES=(podman buildah runc fuse-overlayfs slirp4netns uidmap debootstrap
    containernetworking-plugins iptables catatonit conmon golang-github-containers-common)

log() { echo "[images] $*" >&2; }
die() { echo "[images] error: $*" >&2; exit 1; }

ensure_tools() {
    local missing=() p
    for p in podman buildah runc debootstrap; do command -v "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ "${#missing[@]}" -eq 0 ] && return 0
    log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo)
    "${sudo[@]}" apt-get update -qq \
        && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
            "${PACKAGES[@]}" >/dev/null \
        || die "step 'install podman': apt-get install ${PACKAGES[*]} failed (podman is needed to build and run refit's images here)"
    command -v podman >/dev/null 2>&1 || die "step 'install podman': podman is still missing after apt-get install"
}

write_config() {
    mkdir -p "$CACHE/storage" "$CACHE/run" "$CACHE/tmp"
    cat >"$CACHE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$CACHE/run/events.log"
EOF
    cat >"$CACHE/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$CACHE/storage"
runroot = "$CACHE/run"
EOF
    export CONTAINERS_CONF="$CACHE/containers.conf" CONTAINERS_STORAGE_CONF="$CACHE/storage.conf"
    export TMPDIR="$CACHE/tmp"
}

mirror() {
    if [ -n "${REFIT_BASE_MIRROR:-}" ]; then echo "$REFIT_BASE_MIRROR"; return; fi
    local m
    m="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' | grep -v security | head -n 1)"
    [ -n "$m" ] || m="$(grep -hs '^deb ' /etc/apt/sources.list | awk '{print $2}' | head -n 1)"
    echo "${m:-http://deb.debian.org/debian}"
}

base_python() {
    local py="${REFIT_BASE_PYTHON:-$(command -v python3.11 || true)}"
    [ -n "$py" ] || die "step 'python base': no CPython 3.11 found (set REFIT_BASE_PYTHON)"
    "$py" -c 'import sys; print(sys.base_prefix)'
}

# The runtime libraries of CPython's extension modules (ldd of lib-dynload), per suite.
base_packages() {
    local common=(ca-certificates netbase tzdata libbz2-1.0 libexpat1 libffi8 liblzma5 libncursesw6
        libsqlite3-0 libuuid1 zlib1g libnsl2 libcrypt1)
    case "$1" in
        bookworm) echo "${common[*]} libssl3 libreadline8 libtirpc3" ;;
        trixie) echo "${common[*]} libssl3t64 libreadline8t64 libtirpc3t64" ;;
        *) die "step 'python base': unknown suite $1" ;;
    esac
}

# A content key of everything a base is made from.
base_key() {
    local suite="$1" prefix="$2"
    {
        echo "recipe $RECIPE_VERSION suite $suite mirror $(mirror)"
        base_packages "$suite"
        declare -f make_base
        "$prefix/bin/python3.11" -VV
        sha256sum "$prefix/bin/python3.11" "$prefix"/lib/libpython3.11.so* | awk '{print $1}'
        (cd "$prefix/lib/python3.11" && find . -path ./site-packages -prune -o -type f -name '*.py' -print | sort | xargs cat | sha256sum)
    } | sha256sum | cut -c1-12
}

make_base() {
    local suite="$1" prefix="$2" tag="$3" root
    root="$(mktemp -d "$CACHE/tmp/base-$suite.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$root'" RETURN
    local packages
    packages="$(base_packages "$suite" | tr ' ' ',')"
    log "debootstrap $suite ($(mirror)) with $packages"
    debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$(mirror)" >"$root.log" 2>&1 \
        || { tail -n 20 "$root.log" >&2; die "step 'debootstrap $suite' failed (log above)"; }
    rm -f "$root.log"
    # CPython 3.11 in /usr/local, as in the official python images.
    tar -C "$prefix" -c --exclude=lib/python3.11/site-packages --exclude=lib/python3.11/test \
        --exclude=lib/python3.11/idlelib --exclude=lib/python3.11/tkinter \
        --exclude=lib/python3.11/turtledemo --exclude='__pycache__' --exclude='_tkinter*' \
        --exclude='*.a' bin/python3.11 lib/libpython3.11.so.1.0 lib/python3.11 include/python3.11 \
        | tar -C "$root/usr/local" -x
    mkdir -p "$root/usr/local/lib/python3.11/site-packages"
    ln -s python3.11 "$root/usr/local/bin/python3"
    ln -s python3 "$root/usr/local/bin/python"
    chroot "$root" /sbin/ldconfig
    chroot "$root" /usr/local/bin/python3 -m ensurepip --default-pip >/dev/null \
        || die "step 'python base $suite': ensurepip failed"
    chroot "$root" /usr/local/bin/python3 -c 'import ssl, sqlite3, lzma, bz2, ctypes, uuid, readline, zlib' \
        || die "step 'python base $suite': the copied interpreter misses a runtime library"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
        "$root"/usr/share/man/* "$root"/usr/share/locale/*
    find "$root/usr/local" -name __pycache__ -prune -exec rm -rf {} +
    tar -C "$root" --numeric-owner -c . | podman import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
        --change 'CMD ["python3"]' - "$tag" >/dev/null \
        || die "step 'import base $tag' failed"
}

# Print the tag of the python base for a suite, building it when its key is new.
ensure_base() {
    local suite="$1" prefix key tag start=$SECONDS
    prefix="$(base_python)"
    key="$(base_key "$suite" "$prefix")"
    tag="localhost/refit-base/python:3.11-$suite-$key"
    if podman image exists "$tag"; then
        log "base $tag: cached"
    else
        make_base "$suite" "$prefix" "$tag"
        log "base $tag: built in $((SECONDS - start)) s"
    fi
    echo "$tag"
}

build_wheel() {
    rm -rf "$REPO_ROOT/dist"
    # A fixed timestamp: unchanged sources give a byte-identical wheel, so podman reuses its layer.
    (cd "$REPO_ROOT" && SOURCE_DATE_EPOCH=315532800 uv build --wheel --out-dir dist >/dev/null 2>&1) \
        || die "step 'build the refit wheel' failed (uv build --wheel)"
}

build_image() {
    local name="$1" base="$2" tag start=$SECONDS version revision
    tag="$(cd "$REPO_ROOT" && .venv/bin/python -c "from refit import images; print(images.$3())")"
    version="$(cd "$REPO_ROOT" && .venv/bin/python -c 'import refit; print(refit.__version__)')"
    revision="$(git -C "$REPO_ROOT" rev-parse HEAD 2>/dev/null || echo unknown)"
    [ -r "$HOST_CA" ] || die "step 'build $tag': CA bundle $HOST_CA is not readable (REFIT_HOST_CA)"
    # Everything the image is built from (the revision label aside): unchanged, the image is
    # reused without even asking podman's layer cache, which hashes a multi-GB COPY --from.
    local key keytag
    key="$(echo "$base $version" | cat - "components/images/$name/Dockerfile" \
        components/images/requirements.lock $(find "components/images/$name" -name '*.lock' | sort) \
        dist/*.whl | sha256sum | cut -c1-16)"
    keytag="localhost/refit-build/$name:$key"
    if podman image exists "$keytag" && podman image exists "$tag" \
        && [ "$(podman image inspect --format '{{.Id}}' "$keytag")" = "$(podman image inspect --format '{{.Id}}' "$tag")" ]; then
        log "image $tag: unchanged inputs ($keytag), reused"
        return 0
    fi
    log "building $tag from components/images/$name/Dockerfile on $base"
    podman build --layers --format docker -f "components/images/$name/Dockerfile" -t "$tag" \
        --build-arg "PYTHON_IMAGE=$base" --build-arg "REFIT_VERSION=$version" \
        --build-arg "VCS_REF=$revision" \
        --volume "$HOST_CA:/etc/ssl/certs/ca-certificates.crt:ro" "$REPO_ROOT" >"$CACHE/tmp/build-$name.log" 2>&1 \
        || { tail -n 30 "$CACHE/tmp/build-$name.log" >&2; die "step 'build $tag' (components/images/$name/Dockerfile) failed; log: $CACHE/tmp/build-$name.log"; }
    podman tag "$tag" "$keytag"
    local size
    size="$(podman image inspect --format '{{.Size}}' "$tag")"
    log "image $tag: $((size / 1000000)) MB, built in $((SECONDS - start)) s"
}

cmd="${1:-build}"
shift || true
case "$cmd" in
    build)
        ensure_tools
        write_config
        cd "$REPO_ROOT"
        bookworm="$(ensure_base bookworm)"
        trixie="$(ensure_base trixie)"
        build_wheel
        build_image refit "$bookworm" component_image
        build_image refit-tfdv "$trixie" tfdv_image
        ;;
    service)
        [ $# -eq 1 ] || die "usage: scripts/images.sh service SOCKET_PATH"
        ensure_tools
        write_config
        exec podman system service --time=0 "unix://$1"
        ;;
    podman)
        write_config
        exec podman "$@"
        ;;
    *) die "usage: scripts/images.sh build | service SOCKET | podman ARGS" ;;
esac
