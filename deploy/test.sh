#!/usr/bin/env bash
# Checks the deployment artifacts in deploy/:
#   promtool check rules / test rules / check config, the Grafana dashboard
#   (JSON, variables, only sync-trace metric and label names), systemd-analyze
#   verify of the unit, that the unit keeps the capabilities, system calls and
#   paths sync-trace needs, its `systemd-analyze security` exposure, and a
#   schema check of the Kubernetes manifests (strict, plus cross-references).
# Installs what it needs when missing, from Debian and PyPI only:
#   promtool     from the Debian package `prometheus`, extracted into the cache
#                (`apt-get download`; nothing is installed system-wide, so no
#                Prometheus server is started)
#   systemd-analyze  Debian package `systemd` (apt-get install, as root)
#   Python venv  ${SYNC_TRACE_CACHE:-$HOME/.cache/sync-trace}/deploy-venv with
#                kubernetes-validate (bundled Kubernetes schemas), PyYAML, jsonschema
# Prints `PASS name` or `FAIL name: why` per check and `N passed, M failed`;
# exits 1 when any check fails.
set -euo pipefail

DEPLOY=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${SYNC_TRACE_CACHE:-$HOME/.cache/sync-trace}
VENV=$CACHE/deploy-venv
PROMTOOL_DIR=$CACHE/deploy-promtool
# Highest acceptable `systemd-analyze security` exposure for the unit.
MAX_EXPOSURE=${SYNC_TRACE_MAX_EXPOSURE:-3.0}
PY_PACKAGES=("kubernetes-validate==1.37.0" "PyYAML>=6,<7" "jsonschema>=4.18,<5")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/sync-trace-deploy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$CACHE"

log() { echo "test.sh: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

apt_updated=0
apt_install() {
    log "installing Debian packages: $*"
    if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2; then
        [ "$apt_updated" -eq 1 ] && return 1
        apt_updated=1
        as_root apt-get update -qq >&2 || return 1
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
    fi
}

# --- tools ------------------------------------------------------------------

PROMTOOL=
find_promtool() {
    if command -v promtool >/dev/null; then PROMTOOL=$(command -v promtool); return 0; fi
    if [ -x "$PROMTOOL_DIR/usr/bin/promtool" ]; then PROMTOOL=$PROMTOOL_DIR/usr/bin/promtool; return 0; fi
    log "extracting promtool from the Debian package prometheus into $PROMTOOL_DIR"
    local dl=$WORK/deb
    mkdir -p "$dl"
    if ! (cd "$dl" && apt-get download prometheus >&2 2>/dev/null); then
        as_root apt-get update -qq >&2 || true
        apt_updated=1
        (cd "$dl" && apt-get download prometheus >&2) || return 1
    fi
    rm -rf "$PROMTOOL_DIR"
    dpkg-deb -x "$dl"/prometheus_*.deb "$PROMTOOL_DIR" || return 1
    [ -x "$PROMTOOL_DIR/usr/bin/promtool" ] && PROMTOOL=$PROMTOOL_DIR/usr/bin/promtool
}

ensure_systemd_analyze() {
    command -v systemd-analyze >/dev/null || apt_install systemd
    command -v systemd-analyze >/dev/null
}

ensure_venv() {
    if [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c 'import kubernetes_validate, yaml, jsonschema' 2>/dev/null; then
        return 0
    fi
    log "creating $VENV"
    command -v python3 >/dev/null || apt_install python3
    if ! python3 -m venv --clear "$VENV" >&2; then
        apt_install python3-venv || return 1
        python3 -m venv --clear "$VENV" >&2 || return 1
    fi
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}" >&2
}

# --- checks -----------------------------------------------------------------

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1: $2"; failed=$((failed + 1)); }

# The most telling line of a check's output, on one line. A header such as
# promtool's "FAILED:" is joined with the two lines after it.
why() {
    local out=$1 n line
    n=$(grep -n -m1 -iE 'fail|error|unknown|invalid|not |unexpected|missing|must|no |block' "$out" | cut -d: -f1 || true)
    if [ -n "$n" ]; then
        line=$(sed -n "${n}p" "$out")
        case $line in *:) line=$(sed -n "${n},$((n + 2))p" "$out" | tr '\n' ' ') ;; esac
    else
        line=$(grep -v '^[[:space:]]*$' "$out" | tail -n1 || true)
    fi
    [ -n "$line" ] || line="exit status $2"
    echo "$line" | tr -s ' \t' ' ' | sed 's/^ //; s/ $//' | cut -c1-300
}

# check NAME CMD...: PASS when CMD exits 0.
check() {
    local name=$1 out=$WORK/out rc=0
    shift
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then pass "$name"; else fail "$name" "$(why "$out" "$rc")"; fi
}

# check_quiet NAME CMD...: PASS when CMD exits 0 and prints nothing
# (systemd-analyze verify only warns about unknown or unparsable settings).
check_quiet() {
    local name=$1 out=$WORK/out rc=0
    shift
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ] && [ ! -s "$out" ]; then pass "$name"; else fail "$name" "$(why "$out" "$rc")"; fi
}

# A root directory for systemd-analyze: the unit, systemd's own units, and a
# stand-in /usr/local/bin/sync-trace (verify insists that ExecStart= exists).
make_unit_root() {
    local root=$WORK/root units
    mkdir -p "$root/etc/systemd/system" "$root/usr/local/bin" "$root/usr/lib/systemd"
    for units in /usr/lib/systemd/system /lib/systemd/system; do
        if [ -d "$units" ]; then cp -a "$units" "$root/usr/lib/systemd/"; break; fi
    done
    printf '#!/bin/sh\nexit 0\n' >"$root/usr/local/bin/sync-trace"
    chmod 755 "$root/usr/local/bin/sync-trace"
    cp "$DEPLOY/systemd/sync-trace.service" "$root/etc/systemd/system/"
    echo "$root"
}

exposure_check() {
    local root=$1 out=$WORK/security score
    systemd-analyze security --offline=yes --root="$root" sync-trace.service >"$out" 2>&1 || true
    score=$(sed -n 's/.*Overall exposure level for sync-trace.service: \([0-9.]*\).*/\1/p' "$out")
    if [ -z "$score" ]; then
        echo "no exposure score: $(tail -n1 "$out")"
        return 1
    fi
    echo "exposure $score, max $MAX_EXPOSURE"
    awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s <= m) }'
}

cd "$DEPLOY"

if find_promtool; then
    check "promtool check rules" "$PROMTOOL" check rules prometheus/alerts.yml
    check "promtool test rules" "$PROMTOOL" test rules prometheus/alerts_test.yml
    check "promtool check config" "$PROMTOOL" check config prometheus/prometheus.yml
else
    for n in "promtool check rules" "promtool test rules" "promtool check config"; do
        fail "$n" "promtool unavailable (Debian package prometheus could not be fetched)"
    done
fi

check "grafana dashboard" python3 grafana/check_dashboard.py grafana/sync-trace.json

if ensure_systemd_analyze; then
    root=$(make_unit_root)
    check_quiet "systemd-analyze verify" systemd-analyze verify --root="$root" /etc/systemd/system/sync-trace.service
    check "systemd unit keeps what sync-trace needs" python3 systemd/check_unit.py systemd/sync-trace.service
    out=$WORK/exposure
    if exposure_check "$root" >"$out" 2>&1; then
        pass "systemd-analyze security ($(cat "$out"))"
    else
        fail "systemd-analyze security" "$(cat "$out")"
    fi
else
    fail "systemd-analyze verify" "systemd-analyze unavailable (Debian package systemd)"
    fail "systemd unit keeps what sync-trace needs" "systemd-analyze unavailable (Debian package systemd)"
    fail "systemd-analyze security" "systemd-analyze unavailable (Debian package systemd)"
fi

if ensure_venv; then
    check "kubernetes manifests" "$VENV/bin/python" kubernetes/check_manifests.py
else
    fail "kubernetes manifests" "could not build the Python venv $VENV"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
