#!/usr/bin/env bash
# run.sh: build what is missing, make the disk and pflash images, boot QEMU.
#
#   ./run.sh ARCH [options]        ARCH is riscv64, aarch64 or x86_64
#
#   --disk FILE      boot this disk image instead of a fresh one ("none": no disk)
#   --guest ELF      put this file on the fresh disk as /sbin/gkernel
#   --bare           run the guest directly on QEMU, without the hypervisor
#   --budget S       the guest's time budget: the hypervisor stops a guest
#                    still running after S seconds (default 20; 0: no limit)
#   --timeout S      stop QEMU after S seconds (default 60) and fail
#   --gdb            start QEMU halted with its gdb stub on port 1234
#                    (--timeout still applies)
#   --log FILE       also write everything QEMU prints to FILE
#   --qemu 'ARGS'    extra QEMU arguments, e.g. --qemu '-cpu rv64,h=false'
#   --linux          aarch64: Debian 12's arm64 Linux kernel and a BusyBox
#                    initramfs (fetched once by scripts/linux.sh) instead of
#                    gkernel, with the console on your terminal, and no time
#                    limit or budget unless --timeout or --budget is given.
#                    Type "poweroff -f" at the shell to end the run.
#   --kernel FILE    with --linux: this arm64 Image instead of Debian's
#   --initrd FILE    with --linux: this initramfs instead of ours
#   --append 'WORDS' with --linux: more words for the kernel's command line;
#                    hvbook.poweroff makes our /init power off at once (a
#                    boot to user space that needs no typing)
#   -h, --help       this text
#
# Exit status: 0 exactly when the guest shut down normally and the hypervisor
# said so with this run's secret token (with --bare: when the guest powered
# off with success); 1 on a VM fault, a hypervisor panic, a guest failure or
# a spent time budget; 124 on a timeout; 2 on a usage error.
set -eu
cd "$(dirname "$0")"

usage() { sed -n '2,/^$/s/^# \{0,1\}//p' "$0"; exit "${1:-0}"; }

[ $# -ge 1 ] || usage 2
case "$1" in -h|--help) usage 0 ;; esac
arch=$1; shift
case "$arch" in
  riscv64|aarch64|x86_64) ;;
  *) echo "run.sh: unknown architecture '$arch' (riscv64, aarch64 or x86_64)" >&2; exit 2 ;;
esac

disk="" guest="" bare=0 timeout=60 timeout_set=0 budget=20 budget_set=0 gdb=0 log="" extra=""
linux=0 lkernel="" linitrd="" lappend=""
while [ $# -gt 0 ]; do
  case "$1" in
    --disk) disk=${2:?--disk needs a file}; shift 2 ;;
    --guest) guest=${2:?--guest needs a file}; shift 2 ;;
    --bare) bare=1; shift ;;
    --timeout) timeout=${2:?--timeout needs seconds}; timeout_set=1; shift 2 ;;
    --budget) budget=${2:?--budget needs seconds}; budget_set=1; shift 2 ;;
    --gdb) gdb=1; shift ;;
    --log) log=${2:?--log needs a file}; shift 2 ;;
    --qemu) extra=${2?--qemu needs arguments}; shift 2 ;;
    --linux) linux=1; shift ;;
    --kernel) lkernel=${2:?--kernel needs a file}; shift 2 ;;
    --initrd) linitrd=${2:?--initrd needs a file}; shift 2 ;;
    --append) lappend=${2?--append needs words}; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage 2 ;;
  esac
done
for n in "$timeout" "$budget"; do
  case "$n" in ''|*[!0-9]*) echo "run.sh: '$n' is not a number of seconds" >&2; exit 2 ;; esac
done
if [ "$linux" = 1 ]; then
  [ "$arch" = aarch64 ] || { echo "run.sh: --linux is for aarch64" >&2; exit 2; }
  # A shell is interactive: no time limit and no budget unless asked for.
  [ "$timeout_set" = 1 ] || timeout=0
  [ "$budget_set" = 1 ] || budget=0
  # Bare, the kernel and initramfs come on QEMU's command line; under
  # hvbook, on the disk (below).
  [ "$bare" = 0 ] || disk=none
fi
[ "$gdb" = 1 ] && gdb_opt=--gdb || gdb_opt=
scripts/deps.sh "$arch" $gdb_opt

b=build/$arch
if [ "$linux" = 0 ]; then
  make --no-print-directory -s ARCH="$arch" >&2
  [ -n "$guest" ] || guest=$b/gkernel
  [ -f "$guest" ] || { echo "run.sh: no such guest file: $guest" >&2; exit 2; }
elif [ "$bare" = 0 ]; then
  make --no-print-directory -s ARCH="$arch" "$b/hvbook.elf" >&2
fi
if [ "$linux" = 1 ]; then
  if [ -z "$lkernel" ] || [ -z "$linitrd" ]; then
    ldir=$(scripts/linux.sh)
    [ -n "$lkernel" ] || lkernel=$ldir/Image
    [ -n "$linitrd" ] || linitrd=$ldir/initrd.gz
  fi
  for f in "$lkernel" "$linitrd"; do
    [ -f "$f" ] || { echo "run.sh: no such file: $f" >&2; exit 2; }
  done
  # What the kernel is told, bare and under hvbook: its console is the
  # PL011; panic=-1 asks for a reset on a panic, which ends the run.
  lcmdline="console=ttyAMA0 panic=-1${lappend:+ $lappend}"
fi

# The machine each architecture runs on (see design.md, "Machines and memory
# maps"): the QEMU program, its machine options with and without the
# hypervisor, where the pflash image goes and how big it must be.
case "$arch" in
  riscv64)
    qemu=qemu-system-riscv64
    machine=(-M virt -m 128M -bios default)
    bare_machine=("${machine[@]}")
    pflash_size=$((32 << 20)) ;;
  aarch64)
    qemu=qemu-system-aarch64
    machine=(-M virt,virtualization=on,gic-version=3 -cpu max -m 256M)
    bare_machine=(-M virt,gic-version=3 -cpu max -m 256M)
    pflash_size=$((64 << 20)) ;;
  x86_64)
    qemu=qemu-system-x86_64
    machine=(-M microvm,x-option-roms=off,rtc=off -cpu max,+svm -m 256M
             -device isa-debug-exit,iobase=0xf4,iosize=4)
    bare_machine=("${machine[@]}")
    pflash_size=$((4 << 20)) ;;
esac

# Each run works in its own directory, so that runs can go on side by side.
work=$b/run.$$
mkdir -p "$work"
trap 'rm -rf "$work"' EXIT

# The pflash image: all 0xFF, as erased flash is, with the magic "pfld" at
# offset 0. QEMU insists that the file be exactly the size of the device.
pflash_opt=()
if [ "$pflash_size" -gt 0 ]; then
  # A fresh image for every run, in the run's own directory: whatever a
  # guest does to its flash, the next run starts from the same bytes.
  pflash=$work/pflash.img
  head -c "$pflash_size" /dev/zero | tr '\0' '\377' >"$pflash"
  printf 'pfld' | dd of="$pflash" conv=notrunc status=none
  if [ "$arch" = riscv64 ]; then
    # QEMU's RISC-V virt machine takes a drive on pflash unit 1 for S-mode
    # firmware (EDK2) and makes OpenSBI jump into the flash instead of to
    # -kernel. So pflash1 gets no drive; QEMU's generic loader writes the
    # image into the flash device at reset instead.
    pflash_opt=(-device "loader,file=$pflash,addr=0x22000000,force-raw=on")
  elif [ "$arch" = x86_64 ]; then
    # A PC has no spare flash bank: its flash holds the firmware, at the top
    # of the 4 GiB space. QEMU maps a -bios file of S bytes at 4 GiB - S, so
    # this 4 MiB image starts at 0xFFC0_0000, and its last 64 KiB, where the
    # CPU starts (0xFFFF_FFF0), must be the microvm machine's own firmware,
    # qboot, which then starts the Multiboot -kernel.
    fw=""
    while read -r d; do
      [ -f "$d/bios-microvm.bin" ] && { fw=$d/bios-microvm.bin; break; }
    done < <("$qemu" -L help)
    [ -n "$fw" ] || { echo "run.sh: QEMU's microvm firmware bios-microvm.bin is missing" \
                           "(Debian: apt-get install qemu-system-data)" >&2; exit 2; }
    fw_size=$(wc -c <"$fw")
    dd if="$fw" of="$pflash" bs=1024 seek=$(( (pflash_size - fw_size) / 1024 )) \
       conv=notrunc status=none
    pflash_opt=(-bios "$pflash")
  else
    pflash_opt=(-drive "if=pflash,unit=1,format=raw,file=$pflash")
  fi
fi

# The disk: a fresh 64 MiB FAT32 image holding /sbin/gkernel, made by mtools
# without root or loop devices (131072 sectors of 512 bytes).
disk_opt=()
if [ "$disk" != none ]; then
  if [ -z "$disk" ] && [ "$linux" = 1 ]; then
    # Linux under hvbook: the kernel, the initramfs and the command line in
    # /boot (aarch64.c, "Booting Linux").
    disk=$work/disk.img
    mformat -i "$disk" -C -T 131072 -h 16 -s 32 -F -v HVBOOK ::
    mmd -i "$disk" ::/boot
    printf '%s\n' "$lcmdline" >"$work/cmdline"
    mcopy -i "$disk" "$lkernel" ::/boot/Image
    mcopy -i "$disk" "$linitrd" ::/boot/initrd.gz
    mcopy -i "$disk" "$work/cmdline" ::/boot/cmdline
  elif [ -z "$disk" ]; then
    disk=$work/disk.img
    mformat -i "$disk" -C -T 131072 -h 16 -s 32 -F -v HVBOOK :: 
    mmd -i "$disk" ::/sbin
    mcopy -i "$disk" "$guest" ::/sbin/gkernel
  fi
  [ -f "$disk" ] || { echo "run.sh: no such disk image: $disk" >&2; exit 2; }
  # Modern VirtIO (version 2): QEMU offers legacy VirtIO-MMIO unless told.
  disk_opt=(-global virtio-mmio.force-legacy=false
            -drive "if=none,format=raw,id=hd,file=$disk" -device virtio-blk-device,drive=hd)
fi

# The hypervisor's command line (common.h, "What run.sh tells the
# hypervisor"): the guest's time budget, and a secret token, fresh for every
# run, that the hypervisor prints after a real guest shutdown. The guest never
# sees the command line, so it cannot print the token to forge a pass.
token=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
hv_args="hvbook.budget=$budget hvbook.token=$token"
append=() initrd_opt=() stdin=/dev/null
# Linux's CPU, bare and under hvbook: pointer authentication with QEMU's
# cheap "impdef" algorithm, which is a speed setting, and no SVE or SME,
# which hvbook keeps from its guests (aarch64.c, "Booting Linux"). Bare,
# the machine has the guest's 128 MiB; under hvbook, 256 MiB of which the
# guest gets 128. The console is the terminal: stdin goes to the guest.
lcpu=(-cpu max,sve=off,sme=off,pauth-impdef=on)
if [ "$linux" = 1 ] && [ "$bare" = 1 ]; then
  kernel=$lkernel
  machine=(-M virt,gic-version=3 "${lcpu[@]}" -m 128M)
  append=(-append "$lcmdline")
  initrd_opt=(-initrd "$linitrd")
  stdin=/dev/stdin
elif [ "$linux" = 1 ]; then
  kernel=$b/hvbook.elf
  machine=(-M virt,virtualization=on,gic-version=3 "${lcpu[@]}" -m 256M)
  append=(-append "$hv_args hvbook.guest=linux")
  stdin=/dev/stdin
elif [ "$bare" = 1 ]; then
  kernel=$guest; machine=("${bare_machine[@]}")
else
  kernel=$b/hvbook.elf
  [ "$arch" = x86_64 ] && kernel=$b/hvbook.elf32
  append=(-append "$hv_args")
fi

# A run with no standard input at all (CI) reads from /dev/null instead.
[ "$stdin" = /dev/null ] || [ -r /dev/stdin ] || stdin=/dev/null

# No network on any machine: hvbook has no use for one, and Arm's virt
# machine would otherwise add a network card whose option ROM
# (efi-virtio.rom) a fresh Debian does not have.
# shellcheck disable=SC2206
cmd=("$qemu" "${machine[@]}" -nographic -no-reboot -nic none -kernel "$kernel" "${append[@]}"
     "${initrd_opt[@]}" "${disk_opt[@]}" "${pflash_opt[@]}" $extra)

# timeout(1) says 124 when it stopped QEMU, 137 when it had to kill it.
exit_if_timed_out() {
  if [ "$1" = 124 ] || [ "$1" = 137 ]; then
    echo "run.sh: timed out after $timeout s" >&2
    exit 124
  fi
}

if [ "$gdb" = 1 ]; then
  cat >&2 <<EOF
QEMU is waiting for a debugger on port 1234. In another terminal:

  gdb-multiarch $kernel -ex 'target remote 127.0.0.1:1234'

To debug the guest instead, load its symbols in that gdb session:

  (gdb) symbol-file $guest

The hypervisor and the guest kernel share address ranges (one physical,
one guest-physical), so load one symbol file at a time. A breakpoint on
vcpu_run is a good place to start. Stop QEMU with Ctrl-A X; it stops by
itself after $timeout s (--timeout).
EOF
  set +e
  timeout --foreground -k 5 "$timeout" "${cmd[@]}" -s -S
  status=$?
  exit_if_timed_out "$status"
  exit "$status"
fi

# Run QEMU with a time limit, keeping what it prints, then decide.
out=$work/qemu.log
set +e
timeout --foreground -k 5 "$timeout" "${cmd[@]}" <"$stdin" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e
[ -n "$log" ] && cp "$out" "$log"

exit_if_timed_out "$status"
if [ "$linux" = 1 ] && tr -d '\r' <"$out" | grep -q 'Kernel panic'; then
  echo "run.sh: the Linux kernel panicked" >&2
  exit 1
fi
# x86_64 powers off through isa-debug-exit, which cannot end QEMU with status
# 0: writing v makes it (v << 1) | 1. The guest and hvbook write 0 for
# success and 1 for failure, so 1 means success and 3 failure. QEMU also exits
# with 1 when it cannot start at all, but then it says why on a line that
# starts with "qemu-system-x86_64: " or "qemu: ", which keeps the run a failure.
# Status 0 means QEMU stopped without that port being written: a triple fault
# under -no-reboot ends that way, so on x86 it is a failure.
qemu_status=$status
if [ "$arch" = x86_64 ]; then
  case "$status" in
    0) status=1 ;;
    1) tr -d '\r' <"$out" | grep -E "^(qemu|$qemu): " | grep -v -q -E "^[^:]*: warning:" ||
         status=0 ;;
    3) status=1 ;;
  esac
fi
if [ "$bare" = 1 ]; then
  [ "$status" = 0 ] && exit 0
  echo "run.sh: QEMU exited with status $qemu_status" >&2
  exit 1
fi
# Only the hypervisor knows the token, so only it can print this line.
if [ "$status" = 0 ] && tr -d '\r' <"$out" | grep -qx "Verdict: pass $token"; then
  exit 0
fi
echo "run.sh: the VM did not shut down normally (QEMU status $status)" >&2
exit 1
