#!/usr/bin/env bash
# Builds the Debian package (cargo deb), installs it with dpkg, and checks
# what was installed: the installed `wsgate check` on the shipped config,
# run as the service's own user, and the systemd unit with
# `systemd-analyze verify` (offline; no running systemd needed). Then
# removes the package again. Installs cargo-deb once (like fuzz.sh does
# cargo-fuzz). Needs root (dpkg).
#   scripts/package.sh [cargo-deb flags]   e.g. --no-build to package the
#                                          target/release/wsgate already built
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb@3.8.0
deb=$(cargo deb --locked --quiet --fast --output target/debian/ "$@" | tail -n 1)
[[ $deb == *.deb && -f $deb ]] || { echo "package: cargo deb made no .deb ($deb)" >&2; exit 1; }
echo "package: built $deb"

trap 'dpkg --purge wsgate >/dev/null 2>&1 || true' EXIT
dpkg -i "$deb"
unit=$(dpkg -L wsgate | grep '/systemd/system/wsgate\.service$')
getent passwd wsgate >/dev/null || { echo "package: no wsgate user" >&2; exit 1; }
/usr/bin/wsgate --version
# As root and as the service user (who must be able to read /etc/wsgate).
/usr/bin/wsgate check --config /etc/wsgate/wsgate.toml
runuser -u wsgate -- /usr/bin/wsgate check --config /etc/wsgate/wsgate.toml
if command -v systemd-analyze >/dev/null; then
    # verify exits 0 on some problems (a value it cannot parse is only
    # "ignored"): any word from it is a failure.
    complaints=$(systemd-analyze verify "$unit" 2>&1) || true
    [[ -z $complaints ]] || { echo "package: systemd-analyze verify $unit:" >&2; echo "$complaints" >&2; exit 1; }
    echo "package: systemd-analyze verify $unit: ok"
else
    echo "package: systemd-analyze not installed; unit not verified"
fi
echo "package: ok"
