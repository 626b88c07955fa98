#!/bin/sh
# Installs wgfleet on a plain systemd host (Debian, Ubuntu, Fedora, …) and starts its timers:
#
#   cargo build --release && sudo sh systemd/install.sh
#
# 1. the binary to /usr/local/bin/wgfleet;
# 2. wgfleet.service and wgfleet.timer, wgfleet-endpoints.service and wgfleet-endpoints.timer (the
#    endpoint check every 30 s) to /etc/systemd/system (ExecStart follows --prefix);
# 3. /etc/wgfleet (0700) for the fleet, and a commented /etc/default/wgfleet, unless they exist;
# 4. systemctl daemon-reload, systemctl enable --now wgfleet.timer wgfleet-endpoints.timer.
#
# Then put the fleet at /etc/wgfleet/fleet.json with its encrypted keys beside it: the timer
# applies it within 5 minutes (at once: systemctl start wgfleet.service; output:
# journalctl -u wgfleet). If it is already there, the timer applies it as soon as it starts.
# Running it again upgrades the binary and the units; the fleet and settings are left alone.
#
# Options:
#   --binary PATH   the binary to install (default: target/release/wgfleet of this repository)
#   --prefix DIR    install the binary as DIR/bin/wgfleet (default: /usr/local)
#   --no-start      install and daemon-reload, but do not enable or start the timers
#   DESTDIR=DIR     (environment) stage everything under DIR, for packaging; runs no systemctl
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
binary="$repo/target/release/wgfleet"
prefix=/usr/local
start=yes
destdir=${DESTDIR:-}

usage() { sed -n '/^set -eu/q; 2,$s/^# \{0,1\}//p' "$0"; exit "$1"; }
die() { echo "install.sh: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --binary) [ $# -ge 2 ] || die "--binary needs a path"; binary=$2; shift 2 ;;
    --binary=*) binary=${1#*=}; shift ;;
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#*=}; shift ;;
    --no-start) start=no; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown argument: $1" >&2; usage 1 >&2 ;;
  esac
done

case "$prefix" in
  /*) ;;
  *) die "--prefix must be an absolute path, not $prefix" ;;
esac
# The prefix goes into ExecStart= verbatim: no characters systemd or sed would interpret.
case "$prefix" in
  *[!A-Za-z0-9/._-]*) die "--prefix may only contain letters, digits and / . _ - (got $prefix)" ;;
esac
prefix=${prefix%/}
bindir="$prefix/bin"
unitdir=/etc/systemd/system

[ -f "$binary" ] || die "no binary at $binary; build it first (cargo build --release) or pass --binary PATH"
[ -x "$binary" ] || die "$binary is not executable"
if [ -z "$destdir" ] && [ "$(id -u)" -ne 0 ]; then
  die "run as root (it installs to $bindir and $unitdir and starts a system timer)"
fi

here="$repo/systemd"
install -d -m 0755 "$destdir$bindir" "$destdir$unitdir"
install -m 0755 "$binary" "$destdir$bindir/wgfleet"
for unit in wgfleet wgfleet-endpoints; do
  sed "s|/usr/local/bin/wgfleet|$bindir/wgfleet|g" "$here/$unit.service" >"$destdir$unitdir/$unit.service.tmp"
  chmod 0644 "$destdir$unitdir/$unit.service.tmp"
  mv -f "$destdir$unitdir/$unit.service.tmp" "$destdir$unitdir/$unit.service"
  install -m 0644 "$here/$unit.timer" "$destdir$unitdir/$unit.timer"
done
echo "installed $destdir$bindir/wgfleet, $destdir$unitdir/wgfleet.service, $destdir$unitdir/wgfleet.timer, $destdir$unitdir/wgfleet-endpoints.service, $destdir$unitdir/wgfleet-endpoints.timer"

if [ ! -e "$destdir/etc/wgfleet" ]; then
  install -d -m 0700 "$destdir/etc/wgfleet"
  echo "created $destdir/etc/wgfleet: put fleet.json and its secrets/ here"
fi
if [ ! -e "$destdir/etc/default/wgfleet" ]; then
  install -d -m 0755 "$destdir/etc/default"
  cat >"$destdir/etc/default/wgfleet" <<'EOF'
# Extra arguments for `wgfleet apply` run by wgfleet.service, e.g. when this machine's name in
# the fleet is not its hostname, or its keys are encrypted to another identity than its SSH host
# key (/etc/ssh/ssh_host_ed25519_key, then /etc/ssh/ssh_host_rsa_key):
#WGFLEET_ARGS="--host cp --identity /etc/wgfleet/identity.txt"
EOF
  echo "created $destdir/etc/default/wgfleet"
fi

if [ -n "$destdir" ]; then
  echo "staged under $destdir; on the target: systemctl daemon-reload && systemctl enable --now wgfleet.timer wgfleet-endpoints.timer"
  exit 0
fi
systemctl daemon-reload
if [ "$start" = yes ]; then
  systemctl enable --now wgfleet.timer wgfleet-endpoints.timer
  echo "wgfleet.timer enabled and started: it applies /etc/wgfleet/fleet.json at boot and every 5 minutes"
  echo "wgfleet-endpoints.timer enabled and started: it follows endpoints dialled by name every 30 seconds"
  [ -e /etc/wgfleet/fleet.json ] || echo "note: /etc/wgfleet/fleet.json does not exist yet; runs fail until it does"
else
  echo "not started (--no-start): systemctl enable --now wgfleet.timer wgfleet-endpoints.timer"
fi
