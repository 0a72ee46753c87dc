#!/usr/bin/env bash
# Build refit's TFDV environment (TFDV 1.21.0 + kfp 2.17.3), idempotently, and print its interpreter.
#
# Usage:  scripts/tfdv-env.sh [DIR]        (DIR defaults to $REFIT_TFDV_HOME, else <repo>/.tfdv)
#         export REFIT_TFDV_PYTHON="$(scripts/tfdv-env.sh | tail -n 1)"
#
# TFDV 1.17+ ships only manylinux_2_39 wheels (glibc >= 2.39) and needs protobuf 6 alongside kfp, so:
#   * host glibc >= 2.39 (Debian 13, Ubuntu 24.04): a venv built directly with the host's Python
#     (3.13, 3.12, 3.11 or 3.10: TFDV 1.21 has cp310-cp313 wheels) at DIR/venv; the interpreter is
#     DIR/venv/bin/python.
#   * older glibc (Debian 12): a Debian 13 root made by `debootstrap --variant=minbase trixie` at
#     DIR/root (needs root), with the venv at DIR/root/opt/tfdv. The interpreter is the wrapper
#     DIR/python, which, in a private mount namespace (`unshare --mount`, so no mount outlives the
#     call), mounts /proc, /dev, /sys and the host's temp folder (${TMPDIR:-/tmp}) inside the root
#     at the same paths and runs `chroot DIR/root /opt/tfdv/bin/python "$@"` there.
#     Files are exchanged through that temp folder: refit's TFDV client copies its inputs and the
#     worker script into a fresh folder under it, so every path it passes means the same file on
#     both sides of the chroot (the wrapper's working directory is that temp folder).
# A second run with the environment present only checks it and prints the interpreter (seconds).
# Env: REFIT_TFDV_HOME (DIR), REFIT_TFDV_MIRROR (Debian mirror; default: the host's apt source),
#      REFIT_TFDV_FORCE_CHROOT=1 (use the debootstrap root even where glibc is new enough).
set -euo pipefail

TFDV_VERSION="1.21.0"
KFP_VERSION="2.17.3"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HOME_DIR="${1:-${REFIT_TFDV_HOME:-$REPO_ROOT/.tfdv}}"
mkdir -p "$HOME_DIR"
HOME_DIR="$(cd "$HOME_DIR" && pwd)"
STAMP_CONTENT="tensorflow-data-validation==$TFDV_VERSION kfp==$KFP_VERSION"
PROBE='import tensorflow_data_validation as t, kfp, sys; print(t.__version__, kfp.__version__, sys.version.split()[0])'

log() { echo "[tfdv-env] $*" >&2; }

glibc_version() {
    getconf GNU_LIBC_VERSION 2>/dev/null | awk '{print $2}' \
        || ldd --version 2>/dev/null | head -n 1 | awk '{print $NF}'
}

version_ge() { # version_ge A B: A >= B
    [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -n 1)" = "$2" ]
}

pip_install() { # pip_install PYTHON
    "$1" -m pip install --quiet --upgrade pip
    "$1" -m pip install --quiet "tensorflow-data-validation==$TFDV_VERSION" "kfp==$KFP_VERSION"
}

build_direct() {
    local venv="$HOME_DIR/venv" py=""
    if [ -f "$venv/.refit-stamp" ] && [ "$(cat "$venv/.refit-stamp")" = "$STAMP_CONTENT" ] \
        && "$venv/bin/python" -c "$PROBE" >/dev/null 2>&1; then
        log "present: $venv"
        echo "$venv/bin/python"
        return
    fi
    find_python() {
        for cand in python3.13 python3.12 python3.11 python3.10; do
            if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import venv, ensurepip' >/dev/null 2>&1; then
                command -v "$cand"
                return
            fi
        done
    }
    py="$(find_python)"
    if [ -z "$py" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "apt-get install python3 python3-venv python3-dev g++"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv python3-dev g++ >/dev/null
        py="$(find_python)"
    fi
    if [ -z "$py" ]; then
        log "no Python 3.10-3.13 with venv+ensurepip on this host (apt-get install python3 python3-venv python3-dev g++)"
        exit 1
    fi
    log "building venv with $py at $venv"
    rm -rf "$venv"
    "$py" -m venv "$venv"
    pip_install "$venv/bin/python"
    "$venv/bin/python" -c "$PROBE" >&2
    echo "$STAMP_CONTENT" >"$venv/.refit-stamp"
    echo "$venv/bin/python"
}

host_mirror() {
    if [ -n "${REFIT_TFDV_MIRROR:-}" ]; then echo "$REFIT_TFDV_MIRROR"; return; fi
    local uri
    uri="$(grep -h -E '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list \
        /etc/apt/sources.list.d/*.list 2>/dev/null | grep -v security | head -n 1 \
        | sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}')"
    echo "${uri:-http://deb.debian.org/debian}"
}

write_wrapper() { # the interpreter used as REFIT_TFDV_PYTHON
    local root="$1" wrapper="$HOME_DIR/python"
    cat >"$wrapper" <<EOF
#!/usr/bin/env bash
# refit TFDV interpreter: Python of the Debian 13 root $root (made by scripts/tfdv-env.sh).
# Runs in a private mount namespace (unshare): /proc, /dev, /sys and the host's temp folder
# (\${TMPDIR:-/tmp}) are mounted inside the root at the same paths for this process only, so
# nothing stays mounted under the root afterwards (rm -rf of the folder is safe).
set -euo pipefail
exec unshare --mount --propagation private -- /bin/sh -c '
    R="\$1"; X="\$2"; shift 2
    mount -t proc proc "\$R/proc"
    mount --rbind /dev "\$R/dev"
    mount --rbind /sys "\$R/sys"
    mkdir -p "\$R\$X"
    mount --bind "\$X" "\$R\$X"
    exec chroot "\$R" /usr/bin/env -C "\$X" TMPDIR="\$X" HOME=/root /opt/tfdv/bin/python "\$@"
' sh "$root" "\${TMPDIR:-/tmp}" "\$@"
EOF
    chmod +x "$wrapper"
    echo "$wrapper"
}

in_root() { # in_root ROOT COMMAND...: run COMMAND chrooted, with /proc and /dev in a private namespace
    local root="$1"
    shift
    unshare --mount --propagation private -- /bin/sh -c '
        R="$1"; shift
        mount -t proc proc "$R/proc"
        mount --rbind /dev "$R/dev"
        exec chroot "$R" "$@"
    ' sh "$root" "$@"
}

build_chroot() {
    local root="$HOME_DIR/root" wrapper="$HOME_DIR/python"
    if [ "$(id -u)" != 0 ]; then
        log "glibc $(glibc_version) < 2.39: building a Debian 13 root needs root (debootstrap, chroot, mount)"
        exit 1
    fi
    if [ -f "$root/opt/tfdv/.refit-stamp" ] && [ "$(cat "$root/opt/tfdv/.refit-stamp")" = "$STAMP_CONTENT" ]; then
        write_wrapper "$root" >/dev/null
        if "$wrapper" -c "$PROBE" >/dev/null 2>&1; then
            log "present: $root"
            echo "$wrapper"
            return
        fi
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        log "installing debootstrap"
        apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null
    fi
    if [ ! -x "$root/usr/bin/apt-get" ] || [ ! -f "$root/.refit-debootstrap-done" ]; then
        local mirror
        mirror="$(host_mirror)"
        log "debootstrap trixie into $root from $mirror"
        # a debootstrap killed midway can leave its /proc, /sys mounts: never rm -rf through them
        awk -v r="$root/" 'index($2, r) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n 1 umount -l
        rm -rf "$root"
        debootstrap --variant=minbase trixie "$root" "$mirror" >&2
        touch "$root/.refit-debootstrap-done"
    fi
    mkdir -p "$root/proc" "$root/dev" "$root/sys" "$root/etc/ssl/certs"
    cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/host-ca-certificates.crt"
    local cert=/etc/ssl/certs/host-ca-certificates.crt
    log "apt-get install python3 python3-venv python3-pip g++ python3-dev (in the root)"
    in_root "$root" /usr/bin/env DEBIAN_FRONTEND=noninteractive sh -c \
        "apt-get update -qq && apt-get install -y -qq --no-install-recommends python3 python3-venv python3-pip g++ python3-dev ca-certificates >/dev/null" >&2
    log "pip install $STAMP_CONTENT (in the root; ~2-3 min)"
    in_root "$root" /usr/bin/env -u PIP_FIND_LINKS PIP_CERT="$cert" SSL_CERT_FILE="$cert" REQUESTS_CA_BUNDLE="$cert" HOME=/root sh -c \
        "rm -rf /opt/tfdv && python3 -m venv /opt/tfdv && /opt/tfdv/bin/python -m pip install --quiet --upgrade pip \
         && /opt/tfdv/bin/python -m pip install --quiet tensorflow-data-validation==$TFDV_VERSION kfp==$KFP_VERSION" >&2
    echo "$STAMP_CONTENT" >"$root/opt/tfdv/.refit-stamp"
    write_wrapper "$root" >/dev/null
    "$wrapper" -c "$PROBE" >&2
    echo "$wrapper"
}

GLIBC="$(glibc_version)"
if [ "${REFIT_TFDV_FORCE_CHROOT:-0}" != 1 ] && version_ge "$GLIBC" "2.39"; then
    log "glibc $GLIBC >= 2.39: building directly on the host"
    build_direct
else
    log "glibc $GLIBC < 2.39 (or forced): building a Debian 13 (trixie) root"
    build_chroot
fi
