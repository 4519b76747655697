#!/usr/bin/env bash
# scripts/linux.sh: fetch Debian 12's arm64 Linux kernel and BusyBox, and
# build the initramfs that ./run.sh aarch64 --linux boots.
#
#   scripts/linux.sh            prints the directory that holds Image and initrd.gz
#
# Everything goes under build/aarch64/linux/ and is made once. The packages
# come from the Debian archive this machine's apt sources name, through a
# private apt state under that directory: the machine's own dpkg set-up is
# never touched (no `dpkg --add-architecture`). Elsewhere than on Debian or
# Ubuntu it says which two files to get and how to pass them to run.sh.
#
#   Image      the kernel, as Debian ships it: /boot/vmlinuz-6.1.0-*-arm64 of
#              linux-image-6.1.0-*-arm64, an uncompressed arm64 Image
#   initrd.gz  BusyBox (busybox-static) and an /init of our own, as a gzipped
#              cpio archive in the "newc" format the kernel unpacks
#
# /init starts a shell, unless the kernel's command line has the word
# hvbook.poweroff: then it says it runs and powers off at once, which is a
# whole boot to user space that needs no typing (./run.sh aarch64 --linux
# --append hvbook.poweroff; tests/bench.sh times it).
set -eu
cd "$(dirname "$0")/.."
dir=build/aarch64/linux
st=$PWD/$dir/apt
# Bumped whenever the initramfs below changes, so a cached one is rebuilt.
initrd_version=2
mkdir -p "$dir"
if [ -s "$dir/Image" ] && [ -s "$dir/initrd.gz" ] &&
   [ "$(cat "$dir/initrd.version" 2>/dev/null)" = "$initrd_version" ]; then
  echo "$dir"
  exit 0
fi
if [ -s "$dir/Image" ] && ls "$st"/debs/busybox-static_*.deb >/dev/null 2>&1; then
  fetched=1 # only the initramfs is out of date: no need to download again
else
  fetched=0
fi

if [ "$fetched" = 0 ]; then

if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  cat >&2 <<EOF
scripts/linux.sh: fetching the kernel needs Debian's or Ubuntu's apt-get.
Get these two files yourself and pass them to run.sh instead:
  --kernel FILE   an arm64 Linux Image, e.g. /boot/vmlinuz-6.1.0-*-arm64 from
                  Debian's linux-image-6.1.0-*-arm64 package (for arm64)
  --initrd FILE   a gzipped cpio initramfs whose /init starts a shell on the
                  console, e.g. one built around Debian's busybox-static (arm64)
EOF
  exit 1
fi
scripts/deps.sh --linux

mirror=$(scripts/mirror.sh) ||
  { echo "scripts/linux.sh: no Debian mirror in this machine's apt sources" >&2; exit 1; }

# A private apt: its own sources (arm64 only), lists, cache and an empty
# dpkg status, all under $dir/apt.
mkdir -p "$st/lists/partial" "$st/cache/archives/partial" "$st/debs"
echo "deb [arch=arm64] $mirror bookworm main" >"$st/sources.list"
: >"$st/status"
apt_opts=(-o "Dir::State=$st" -o "Dir::State::Lists=$st/lists" -o "Dir::State::status=$st/status"
          -o "Dir::Cache=$st/cache" -o "Dir::Etc::SourceList=$st/sources.list"
          -o "Dir::Etc::SourceParts=/nonexistent" -o "Dir::Etc::Preferences=/nonexistent"
          -o "Dir::Etc::PreferencesParts=/nonexistent" -o "APT::Architecture=arm64"
          -o "APT::Architectures::=arm64" -o "APT::Sandbox::User=$(id -un)"
          -o "Debug::NoLocking=1")
log=$st/apt.log
echo "hvbook: downloading Debian 12's arm64 kernel and BusyBox (for --linux), once" >&2
apt-get "${apt_opts[@]}" update >"$log" 2>&1 ||
  { echo "scripts/linux.sh: apt-get update failed; see $log" >&2; exit 1; }
# linux-image-arm64 is a metapackage: the kernel is the package it depends on.
kpkg=$(apt-cache "${apt_opts[@]}" depends linux-image-arm64 2>>"$log" |
       sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-arm64\)$/\1/p' | head -1)
[ -n "$kpkg" ] || { echo "scripts/linux.sh: cannot find the kernel package; see $log" >&2; exit 1; }
(cd "$st/debs" && apt-get "${apt_opts[@]}" download "$kpkg" busybox-static) >>"$log" 2>&1 ||
  { echo "scripts/linux.sh: apt-get download failed; see $log" >&2; exit 1; }

echo "$kpkg" >"$dir/kernel-package"
fi # fetched

command -v cpio >/dev/null || scripts/deps.sh --linux
ex=$st/extract
rm -rf "$ex" && mkdir -p "$ex"
if [ "$fetched" = 0 ]; then
  for deb in "$st"/debs/*.deb; do dpkg-deb -x "$deb" "$ex"; done
  kernel=$(ls "$ex"/boot/vmlinuz-*-arm64 | head -1)
  [ -f "$kernel" ] || { echo "scripts/linux.sh: no vmlinuz in the kernel package" >&2; exit 1; }
else
  dpkg-deb -x "$(ls "$st"/debs/busybox-static_*.deb | head -1)" "$ex"
fi

# The initramfs: BusyBox and an /init of our own. The kernel makes /dev and
# /dev/console in its built-in root before it unpacks ours, so we need no
# device nodes (which only root could create).
rd=$st/initramfs
rm -rf "$rd" && mkdir -p "$rd/bin" "$rd/proc" "$rd/sys" "$rd/dev" "$rd/tmp"
cp "$ex/bin/busybox" "$rd/bin/busybox"
cat >"$rd/init" <<'EOF'
#!/bin/busybox sh
# hvbook's /init: make BusyBox's commands, mount what a shell expects, say
# so, and start a shell on the console (cttyhack gives it a controlling
# terminal, so Ctrl-C works). "poweroff -f" switches the machine off.
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
echo "hvbook: /init is running, Linux $(uname -r); type poweroff -f to stop"
case " $(cat /proc/cmdline) " in
  *" hvbook.poweroff "*) echo "hvbook: powering off, as the command line asks"
                         exec poweroff -f ;;
esac
exec setsid cttyhack sh
EOF
chmod 755 "$rd/init"
(cd "$rd" && find . | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet) | gzip -9 >"$dir/initrd.gz.tmp"
if [ "$fetched" = 0 ]; then
  cp "$kernel" "$dir/Image.tmp"
  mv "$dir/Image.tmp" "$dir/Image"
fi
mv "$dir/initrd.gz.tmp" "$dir/initrd.gz"
echo "$initrd_version" >"$dir/initrd.version"
rm -rf "$ex" "$rd"
echo "$dir"
