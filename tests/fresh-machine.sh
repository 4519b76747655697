#!/usr/bin/env bash
# tests/fresh-machine.sh: the README's commands on a machine that has nothing.
#
# Builds a minimal Debian 12 root (debootstrap --variant=minbase, from the
# mirror this machine's own apt sources name), gives it /etc/hosts and
# /etc/resolv.conf, mounts proc, sys, dev and devpts, copies in the files git
# tracks, and runs in a chroot exactly what the README tells a newcomer to
# run: ./run.sh for every architecture that exists, then make test. It prints
# one line per command (exit status, seconds, last line of its output) and
# fails if any command fails. The mounts are undone on any exit.
#
#   sudo tests/fresh-machine.sh            needs root; takes a few minutes
#   KEEP=1 tests/fresh-machine.sh          keep the root afterwards (path printed)
#
# It is not part of `make test`: .ci/run runs it after `make test`.
set -u
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "fresh-machine: needs root (debootstrap, chroot, mount)" >&2; exit 2; }
export DEBIAN_FRONTEND=noninteractive LC_ALL=C

mirror=$(scripts/mirror.sh) ||
  { echo "fresh-machine: no Debian mirror in this machine's apt sources" >&2; exit 2; }

if ! command -v debootstrap >/dev/null; then
  echo "fresh-machine: installing debootstrap (to build the fresh root)" >&2
  { apt-get update && apt-get install -y --no-install-recommends debootstrap; } >/tmp/fresh-apt.log 2>&1 ||
    { echo "fresh-machine: apt-get failed; see /tmp/fresh-apt.log" >&2; exit 2; }
fi

root=$(mktemp -d /var/tmp/hvbook-fresh.XXXXXX)
logs=$root.logs
mkdir -p "$logs"
mounted=()

# Undo everything on any exit: stop what still runs inside the root (a QEMU a
# test left behind would keep the mounts busy), unmount in reverse order, and
# delete the root only once nothing is mounted inside it any more.
cleanup() {
  local pid i
  for pid in $(ls /proc | grep -E '^[0-9]+$'); do
    [ "$(readlink "/proc/$pid/root" 2>/dev/null)" = "$root" ] && kill -9 "$pid" 2>/dev/null
  done
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[i]}" 2>/dev/null || umount -l "${mounted[i]}" 2>/dev/null
  done
  if grep -q " $root/" /proc/mounts; then
    echo "fresh-machine: something is still mounted under $root; not deleting it" >&2
  elif [ "${KEEP:-0}" = 1 ]; then
    echo "fresh-machine: the root is kept in $root" >&2
  else
    rm -rf "$root"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start=$(date +%s)
echo "fresh-machine: debootstrap --variant=minbase bookworm from $mirror into $root"
if ! debootstrap --variant=minbase bookworm "$root" "$mirror" >"$logs/debootstrap.log" 2>&1; then
  echo "FAIL fresh-machine: debootstrap failed; last lines:"; tail -5 "$logs/debootstrap.log"; exit 1
fi
cp /etc/hosts "$root/etc/hosts"
cp -L /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true

mnt() { mount "$@" && mounted+=("${!#}"); }
mnt -t proc proc "$root/proc"
mnt -t sysfs sys "$root/sys"
mnt --bind /dev "$root/dev"
mnt --bind /dev/pts "$root/dev/pts"

# The tracked files, as they are in this working tree; nothing from build/.
mkdir -p "$root/root/hvbook"
git ls-files -z | tar --null -T - -cf - | tar -xf - -C "$root/root/hvbook"
echo "fresh-machine: root ready in $(( $(date +%s) - start )) s; running the README's commands"

# The commands, exactly as the README gives them, for every architecture.
cmds=()
for a in riscv64 aarch64 x86_64; do
  [ -f "$a.c" ] && cmds+=("./run.sh $a")
done
cmds+=("make test")

failed=0 i=0
for c in "${cmds[@]}"; do
  i=$((i + 1))
  t0=$(date +%s)
  chroot "$root" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/hvbook && $c" </dev/null >"$logs/$i.log" 2>&1
  st=$?
  last=$(tr -d '\r' <"$logs/$i.log" | grep -v '^[[:space:]]*$' | tail -1)
  printf '%-20s exit %-3s %4s s   %s\n' "$c" "$st" "$(( $(date +%s) - t0 ))" "$last"
  if [ "$st" != 0 ]; then
    failed=1
    echo "  --- the last 15 lines of '$c':"
    tail -15 "$logs/$i.log" | sed 's/^/  | /'
  fi
done
if [ "$failed" = 0 ]; then
  rm -rf "$logs"
else
  echo "fresh-machine: the commands' whole output is kept in $logs"
fi

if [ "$failed" = 0 ]; then
  echo "PASS fresh-machine: every README command worked on a fresh Debian 12 ($(( $(date +%s) - start )) s)"
else
  echo "FAIL fresh-machine: a README command failed on a fresh Debian 12"
fi
exit "$failed"
