#!/usr/bin/env bash
# End-to-end tests for one architecture: boot QEMU through run.sh and check
# what it prints, line by line, and its exit status.
#
#   tests/e2e.sh riscv64
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh

arch=$1
b=build/$arch
out=$b/e2e
mkdir -p "$out"
make --no-print-directory -s ARCH="$arch" all test-guests >/dev/null || { fail "$arch-build" "make failed"; exit 0; }

# What differs between the architectures (design.md, "Machines and memory maps").
platform=$arch-qemu-virt
case "$arch" in
  riscv64) ram=0x80000000 pflash=0x22000000 shutdown="Guest: SBI SRST shutdown" ;;
  aarch64) ram=0x40000000 pflash=0x04000000 shutdown="Guest: PSCI SYSTEM_OFF" ;;
  x86_64)  ram=0x0 pflash=0xffc00000 shutdown="Guest: (power-off port|VMMCALL shutdown)"
           platform=x86_64-qemu-microvm ;;
esac
el_line=()
[ "$arch" = aarch64 ] && el_line=("current el = EL1")

# Lines that must never appear in a good run.
forbidden=('VM fault' 'panic' 'unexpected' 'Bad pflash magic' 'ISOLATION BROKEN')

# run NAME ARGS...: run.sh with a timeout; the log goes to $out/NAME.log and
# the exit status to $status.
run() {
  local name=$1; shift
  ./run.sh "$arch" --timeout 60 --log "$out/$name.log" "$@" >/dev/null 2>"$out/$name.err"
  status=$?
}

# check NAME CONDITION-OUTPUT: helper to report a multi-part check.
report() { if [ -z "$2" ]; then pass "$arch-$1"; else fail "$arch-$1" "$2"; fi; }

# The workers: each prints 0..256 in order (design.md).
workers_ok() {
  local log=$1 w expect got
  expect=$(seq 0 256 | tr '\n' ' ')
  for w in worker1 worker2; do
    got=$(tr -d '\r' <"$log" | sed -n "s/^$w \[\([0-9]*\)\]$/\1/p" | tr '\n' ' ')
    [ "$got" = "$expect" ] || { echo "$w printed [${got:0:60}...], not 0..256 in order"; return; }
  done
}

# --- 1. The transcript of design.md --------------------------------------
run transcript
log=$out/transcript.log
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$log" \
  'Starting virtualization\.\.\.' \
  "Pre-allocating 16 MB guest RAM at $ram\.\.\." \
  'VM created success, loading images\.\.\.' \
  'app: /sbin/gkernel' \
  'Loaded [0-9]+ bytes from /sbin/gkernel' \
  'bsp_entry: 0x[0-9a-f]+; ept: 0x[0-9a-f]+' \
  'Entering VM run loop\.\.\.' \
  "arch = $arch" \
  "platform = $platform" \
  'smp = 1' \
  "${el_line[@]}" \
  '' \
  'Virtual Device \(vdev\) Test' \
  "Reading PFlash at physical address $pflash\.\.\." \
  "Try to access pflash dev region \[$pflash\], got 0x646c6670" \
  'Got pflash magic: pfld' \
  'Multi-task\(Preemptible\) is starting \.\.\.' \
  'Multi-task\(Preemptible\) ok!' \
  'Timer-driven context switches: [0-9]+' \
  "$shutdown" \
  'Shutdown vm normally!' \
  'VM exits by reason:' \
  '  total +[0-9]+' \
  'Hypervisor ok!')
[ -n "$why" ] || why=$(absent "$log" "${forbidden[@]}")
# The three lines around the end of the workers, each after the start and
# before the end of the demo.
for l in 'worker2 ok!' 'worker1 ok!' 'Wait for workers to exit \.\.\.'; do
  [ -n "$why" ] || why=$(in_order "$log" 'Multi-task\(Preemptible\) is starting \.\.\.' "$l" 'Multi-task\(Preemptible\) ok!')
done
report transcript "$why"

why=$(workers_ok "$log")
report workers-0-to-256 "$why"

n=$(tr -d '\r' <"$log" | sed -n 's/^Timer-driven context switches: \([0-9]*\)$/\1/p')
if [ -n "$n" ] && [ "$n" -ge 3 ]; then pass "$arch-timer-preemption ($n switches)"
else fail "$arch-timer-preemption" "expected at least 3 timer-driven switches, got '${n:-none}'"; fi

# The workers really interleave: worker2 prints before worker1 has finished.
first_w2=$(tr -d '\r' <"$log" | grep -n -m1 '^worker2 \[' | cut -d: -f1)
last_w1=$(tr -d '\r' <"$log" | grep -n '^worker1 \[' | tail -1 | cut -d: -f1)
if [ -n "$first_w2" ] && [ -n "$last_w1" ] && [ "$first_w2" -lt "$last_w1" ]; then pass "$arch-workers-interleave"
else fail "$arch-workers-interleave" "worker2's first line ($first_w2) is not before worker1's last ($last_w1)"; fi

# --- 2. Equivalence: the same guest lines bare and virtualized ------------
# The guest's lines under the hypervisor are those between "Entering VM run
# loop..." and the shutdown line. Bare, they are the same number of banner
# lines before "arch = ", and everything after. Worker lines interleave
# differently and the switch count differs; those are compared separately.
run bare --bare
bare=$out/bare.log
guest_lines() { # LOG MODE
  tr -d '\r' <"$1" | awk -v mode="$2" -v k="$3" '
    mode == "hv" && /^Entering VM run loop\.\.\.$/ { on = 1; next }
    mode == "hv" && on && /^Guest: / { exit }
    mode == "hv" && on { print; next }
    mode == "bare" { line[NR] = $0; if ($0 ~ /^arch = / && !start) start = NR - k }
    END { if (mode == "bare") for (i = start; i <= NR; i++) print line[i] }'
}
k=$(guest_lines "$log" hv 0 | grep -n -m1 '^arch = ' | cut -d: -f1)
guest_lines "$log" hv 0 | grep -v -E '^worker|^Timer-driven' >"$out/guest-hv.txt"
guest_lines "$bare" bare "$((k - 1))" | grep -v -E '^worker|^Timer-driven' >"$out/guest-bare.txt"
why=""
[ "$status" = 0 ] || why="bare run exited $status"
[ -n "$why" ] || [ -s "$out/guest-hv.txt" ] || why="no guest lines under the hypervisor"
[ -n "$why" ] || why=$(diff "$out/guest-bare.txt" "$out/guest-hv.txt" | head -5 | tr '\n' ' ')
[ -n "$why" ] || why=$(workers_ok "$bare")
report bare-equivalence "$why"

# --- 3. Isolation: a guest reading outside its RAM and devices ------------
for g in badread badread-ramend; do
  run "$g" --guest "$b/tests/$g.elf"
  log=$out/$g.log
  gpa=$(tr -d '\r' <"$log" | sed -n 's/^VM fault: the guest .* [GI]PA \(0x[0-9a-f]*\).*/\1/p' | head -1)
  why=""
  [ "$status" = 1 ] || why="run.sh exited $status, expected 1"
  [ -n "$why" ] || why=$(in_order "$log" 'Entering VM run loop\.\.\.' 'VM fault: .*' '.*guest pc 0x[0-9a-f]+.*')
  [ -n "$why" ] || why=$(absent "$log" 'Hypervisor ok!' 'Shutdown vm normally!' 'ISOLATION BROKEN')
  [ -n "$why" ] || [ -n "$gpa" ] || why="the report names no GPA"
  report "isolation-$g (GPA $gpa)" "$why"
done

# --- 4. Bad hypercalls get an error code and the guest goes on ------------
if [ -f "$b/tests/badsbi.elf" ] || [ -f "$b/tests/badhvc.elf" ]; then
  g=$( [ -f "$b/tests/badsbi.elf" ] && echo badsbi || echo badhvc )
  run "$g" --guest "$b/tests/$g.elf"
  log=$out/$g.log
  why=""
  [ "$status" = 0 ] || why="run.sh exited $status"
  case "$g" in
    badsbi) [ -n "$why" ] || why=$(in_order "$log" 'unknown SBI extension answered -2 \(not supported\)' \
              'DBCN write outside guest RAM answered -3 \(invalid param\)' 'Hypervisor ok!') ;;
    badhvc) [ -n "$why" ] || why=$(in_order "$log" 'unknown hvc answered -1' 'unknown smc answered -1' 'Hypervisor ok!') ;;
  esac
  report "bad-hypercall-answered" "$why"
fi

# --- 5. Bad disks: a clear message, a non-zero exit, never "ok" -----------
# expect_failure NAME ERE ARGS...: run, then want exit 1 (not a timeout), a
# line matching ERE, and no success lines.
expect_failure() {
  local name=$1 msg=$2; shift 2
  run "$name" "$@"
  local why=""
  [ "$status" = 1 ] || why="run.sh exited $status, expected 1"
  [ -n "$why" ] || why=$(in_order "$out/$name.log" ".*$msg.*")
  [ -n "$why" ] || why=$(absent "$out/$name.log" 'Hypervisor ok!' 'Shutdown vm normally!' 'Entering VM run loop')
  report "$name" "$why"
}
expect_failure no-disk 'no block device attached' --disk none

expect_failure legacy-virtio 'VirtIO: found only a legacy .*force-legacy=false' \
  --qemu '-global virtio-mmio.force-legacy=true'

nok=$out/no-gkernel.img
rm -f "$nok"; mformat -i "$nok" -C -T 131072 -h 16 -s 32 -F :: && mmd -i "$nok" ::/sbin
expect_failure no-gkernel 'cannot load /sbin/gkernel: .*' --disk "$nok"

seq 1 100 | sed 's/^/this is a text file, not a kernel: line /' >"$out/not-elf.txt"
expect_failure not-elf 'cannot load /sbin/gkernel: ELF: bad magic.*' --guest "$out/not-elf.txt"

# Another architecture's guest kernel: a good ELF, for the wrong machine.
other=$(ls riscv64.c aarch64.c x86_64.c 2>/dev/null | sed 's/\.c$//' | grep -v -x "$arch" | head -1)
if [ -n "$other" ] && make --no-print-directory -s ARCH="$other" "build/$other/gkernel" >/dev/null; then
  expect_failure wrong-machine 'cannot load /sbin/gkernel: ELF: built for another machine.*' \
    --guest "build/$other/gkernel"
else
  fail "$arch-wrong-machine" "no other architecture's gkernel to try"
fi

nofat=$out/not-fat.img
head -c $((1 << 20)) /dev/zero >"$nofat"
expect_failure not-fat 'cannot load /sbin/gkernel: .*' --disk "$nofat"

# --- 6. A CPU that cannot virtualize: a clear refusal ---------------------
case "$arch" in
  riscv64) expect_failure no-h-extension 'this CPU has no H extension.*' --qemu '-cpu rv64,h=false' ;;
  aarch64) expect_failure no-el2 '.*virtualization=on.*' --qemu '-M virtualization=off' ;;
esac

# --- 7. Debugging: --gdb waits for gdb, which can stop in the run loop ----
if command -v gdb-multiarch >/dev/null; then
  ./run.sh "$arch" --gdb --timeout 60 >"$out/gdb-qemu.log" 2>&1 &
  qpid=$!
  # Wait until QEMU listens on port 1234 (0x04D2; state 0A is LISTEN).
  for _ in $(seq 120); do
    grep -q ':04D2 00000000:0000 0A' /proc/net/tcp /proc/net/tcp6 2>/dev/null && break
    sleep 0.25
  done
  timeout 60 gdb-multiarch -q -batch "$b/hvbook.elf" -ex 'target remote 127.0.0.1:1234' \
    -ex 'break vcpu_run' -ex continue -ex 'bt 1' -ex kill >"$out/gdb.log" 2>&1
  wait "$qpid" 2>/dev/null
  why=$(in_order "$out/gdb.log" '#0 .*vcpu_run .*')
  [ -n "$why" ] || why=$(in_order "$out/gdb-qemu.log" '  gdb-multiarch .* -ex .target remote 127\.0\.0\.1:1234.')
  report gdb-attach "$why"
else
  fail "$arch-gdb-attach" "gdb-multiarch is not installed"
fi

# --- 8. What only this architecture has: tests/e2e-<arch>.sh, sourced here so
# that it can use run, report and expect_failure.
[ -f "tests/e2e-$arch.sh" ] && . "tests/e2e-$arch.sh"
