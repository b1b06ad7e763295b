#!/usr/bin/env bash
# One entry point for a fresh Debian machine with Python 3.11:
#   bash scripts/dev.sh run  [softswitch run flags...]   install what is needed, run the demo switch
#   bash scripts/dev.sh test [pytest args...]            install what is needed, run the whole suite
# System packages (SIP test peers, espeak-ng, sox) come from apt-get when run as root.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VENV=${SOFTSWITCH_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

# gcc + python3-dev build the optional C extension switch/media/_rtpio.c (batched RTP I/O);
# without them pip still installs and the media engine uses its slower pure-Python I/O.
apt_packages_run=(espeak-ng libespeak-ng1 sox gcc python3-dev)
apt_packages_test=(sip-tester sipsak baresip tshark)

install_system() {
    local want=("$@") missing=()
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then missing+=(python3-venv); fi
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "note: not root; please install: ${missing[*]}" >&2
    fi
}

install_python() {
    local extras=$1
    if [ ! -x "$VENV/bin/python" ]; then
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed-$extras"
    if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ switch/media/_rtpio.c -nt "$stamp" ]; then
        "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
        "$VENV/bin/python" -m pip install -q -e ".[$extras]"
        touch "$stamp"
    fi
}

cmd=${1:-help}; shift || true
case "$cmd" in
    run)
        install_system "${apt_packages_run[@]}"
        install_python postgres
        exec "$VENV/bin/softswitch" run "$@"
        ;;
    test)
        install_system "${apt_packages_run[@]}" "${apt_packages_test[@]}"
        install_python test,bench
        "$VENV/bin/ruff" check .
        # As root the peers were installed above, so a missing one is a failure, not a skip.
        if [ "$(id -u)" = 0 ]; then export SOFTSWITCH_REQUIRE_PEERS=1; fi
        # pytest exits 5 when no test ran; set -e turns that into a failure.
        exec "$VENV/bin/python" -m pytest -n 2 --dist loadfile "$@"
        ;;
    *)
        echo "usage: bash scripts/dev.sh run|test [args...]" >&2
        exit 2
        ;;
esac
