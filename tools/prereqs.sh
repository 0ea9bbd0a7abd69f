#!/usr/bin/env bash
# What `make run` and `make test` need from the machine besides Python >= 3.11
# and Rust (cargo); the README's Quick start gives the same list.
#
#   tools/prereqs.sh run    Node.js >= 18 and npm (to build the viewer and tracker)
#   tools/prereqs.sh test   those, and Chromium (the browser tests), PostgreSQL's
#                           server binaries and redis-server (the tests start
#                           throwaway servers from them, or use PostgreSQL
#                           and Redis already running on 127.0.0.1)
#
# Nothing happens when everything is there. What is missing is installed
# with apt-get on Debian as root (or with passwordless sudo); anywhere else
# the script stops, naming what to install. The tests fail, never skip,
# without these, so a missing one is better said here, up front.
set -euo pipefail

mode=${1:-test}
chromium=${CHROMIUM:-/usr/bin/chromium}
packages=() # Debian's names
needs=()    # what to say elsewhere

have() { command -v "$1" >/dev/null 2>&1; }

if ! { have node && node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 18 ? 1 : 0)'; }; then
    packages+=(nodejs)
    needs+=("Node.js >= 18")
fi
if ! have npm; then
    packages+=(npm)
    needs+=("npm")
fi
if [[ $mode == test ]]; then
    if [[ ! -x $chromium ]]; then
        packages+=(chromium)
        needs+=("Chromium at $chromium (or CHROMIUM=/path/to/chromium)")
    fi
    if [[ -z ${REPLAYWIRE_TEST_POSTGRES_URL:-} ]] && ! have initdb &&
        ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
        packages+=(postgresql)
        needs+=("PostgreSQL's server binaries, initdb and pg_ctl (or REPLAYWIRE_TEST_POSTGRES_URL)")
    fi
    if ! have redis-server; then
        packages+=(redis-server)
        needs+=("redis-server")
    fi
fi
[[ ${#packages[@]} -eq 0 ]] && exit 0

sudo=()
if [[ $(id -u) -ne 0 ]] && have sudo && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
fi
if [[ -r /etc/debian_version ]] && have apt-get && [[ $(id -u) -eq 0 || ${#sudo[@]} -gt 0 ]]; then
    echo "make $mode needs ${packages[*]}: installing them with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    exit 0
fi

{
    echo "make $mode needs what this machine lacks:"
    printf '  - %s\n' "${needs[@]}"
    if [[ -r /etc/debian_version ]]; then
        echo "as root: apt-get install -y ${packages[*]}"
    else
        echo "(Debian packages: ${packages[*]})"
    fi
} >&2
exit 1
