# End-to-end checks only the Arm hypervisor has (issue 8's Arm items).
# Sourced at the end of tests/e2e.sh, whose run, report and expect_failure
# (and tests/lib.sh's in_order and absent) it uses; $arch is aarch64, $b the
# build directory, $out the log directory.

t=$b/tests

# hostile NAME GUEST ARGS...: run a hostile guest, leave its log in $log.
hostile() {
  local name=$1 guest=$2; shift 2
  run "$name" --guest "$t/$guest.elf" "$@"
  log=$out/$name.log
}

# want_status N: "" if $status is N, else why not.
want_status() { [ "$status" = "$1" ] || echo "run.sh exited $status, expected $1"; }

# --- Stage 2 on every PARange (item 9) -------------------------------------
# A 40-bit Cortex-A53 cannot start a 4 KiB stage-2 walk at level 0; the
# A57 and A72 have 44 bits, max 52. -cpu max is the transcript above.
for cpu in cortex-a53 cortex-a57 cortex-a72; do
  run "stage2-$cpu" --qemu "-cpu $cpu"
  log=$out/stage2-$cpu.log
  why=$(want_status 0)
  [ -n "$why" ] || why=$(in_order "$log" 'Got pflash magic: pfld' 'Multi-task\(Preemptible\) ok!' \
                          'Guest: PSCI SYSTEM_OFF' 'Hypervisor ok!')
  [ -n "$why" ] || why=$(absent "$log" "${forbidden[@]}")
  report "stage2-$cpu" "$why"
done

# --- The flash is read-only (item 1) ---------------------------------------
hostile flash-write flashwrite
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" 'VM fault: the guest wrote IPA 0x4000000, its flash, which it may only read')
[ -n "$why" ] || why=$(absent "$log" 'FLASH REWRITTEN' 'Hypervisor ok!' 'Shutdown vm normally!')
report flash-write-refused "$why"

run flash-after
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$out/flash-after.log" 'Got pflash magic: pfld' 'Hypervisor ok!')
report flash-after-still-pfld "$why"

# A guest whose self-check fails ends the run as a failure: QEMU's generic
# loader overwrites the magic at reset, gkernel says "Bad pflash magic" and
# asks for PSCI SYSTEM_RESET.
printf 'HACK' >"$out/badmagic.bin"
run self-check-fails --qemu "-device loader,file=$out/badmagic.bin,addr=0x04000000,force-raw=on"
log=$out/self-check-fails.log
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" 'Bad pflash magic: 0x4b434148' 'Guest: PSCI SYSTEM_RESET: .*')
[ -n "$why" ] || why=$(absent "$log" 'Hypervisor ok!' 'Shutdown vm normally!')
report guest-failure-is-failure "$why"

# --- A forged verdict is not believed (item 2) -----------------------------
hostile forge forge
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" 'Hypervisor ok!' 'Verdict: pass 0123456789abcdef01234567' 'VM fault: .*')
[ -n "$why" ] || why=$(absent "$log" 'ISOLATION BROKEN')
report forged-verdict-refused "$why"

# --- The PMU never counts at EL2 (item 3) ----------------------------------
# max has the newer brakes (HPMD, HCCD); the Cortex-A53's PMUv3 has none.
for cpu in max cortex-a53; do
  hostile "pmu-$cpu" pmu --qemu "-cpu $cpu"
  why=$(want_status 0)
  [ -n "$why" ] || why=$(in_order "$log" 'PMU: the cycle counter saw no EL2 work around an hvc' \
                          'PMU: event counter 0 saw no EL2 work around an hvc' \
                          'PMU: the filters read back as written' 'Hypervisor ok!')
  report "pmu-no-el2-counting-$cpu" "$why"
done

# --- Traps decided in HCR_EL2 and MDCR_EL2 (item 4) ------------------------
hostile traps traps
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" 'traps: ACTLR_EL1 ignored the guest.s write' \
                        'traps: ERRIDR_EL1 reads 0, no error records' \
                        'traps: MDRAR_EL1 reads 0, no debug ROM table' \
                        '  system register trapped +[0-9]+' 'Hypervisor ok!')
report traps-tacr-terr-tdra "$why"
# QEMU implements HCR_EL2.TIDCP only from version 8.0; 7.2 lets the access
# through, so there the undefined instruction cannot be seen.
qv=$(qemu-system-aarch64 --version | sed -n 's/.*version \([0-9]*\)\..*/\1/p;q')
if [ "${qv:-0}" -ge 8 ]; then
  report traps-tidcp-undefined "$(in_order "$log" 'traps: an implementation defined register is undefined')"
else
  pass "aarch64-traps-tidcp-undefined (not observable: QEMU $qv does not implement TIDCP)"
fi

# --- The hypervisor's own timer ends a guest that never stops (item 5) -----
for g in wfi spin; do
  hostile "budget-$g" "$g" --budget 2
  why=$(want_status 1)
  [ -n "$why" ] || why=$(in_order "$log" 'Entering VM run loop\.\.\.' \
    'VM stopped: the guest did not shut down within its time budget of 2 s \(guest pc 0x[0-9a-f]+\)' \
    'VM exits by reason:' '  hypervisor timer \(budget\) +1' '  total +[0-9]+')
  [ -n "$why" ] || why=$(absent "$log" 'Hypervisor ok!' 'Shutdown vm normally!')
  report "budget-$g" "$why"
done

# --- MMIO: widths and the PC step (item 10) --------------------------------
hostile mmio-uartbyte uartbyte
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" 'UARTCR: a byte store at its address changed only its low byte' \
                        'VM fault: the guest wrote IPA 0x9000031 with a 1-byte access.*')
[ -n "$why" ] || why=$(absent "$log" 'was accepted' 'Hypervisor ok!')
report mmio-byte-inside-register-refused "$why"

hostile mmio-gicd64 gicd64
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" 'VM fault: the guest wrote IPA 0x8000000 with a 8-byte access.*')
[ -n "$why" ] || why=$(absent "$log" 'was accepted' 'Hypervisor ok!')
report mmio-64bit-gicd-ctlr-refused "$why"

hostile mmio-t32 t32
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" 'T32: the emulated 16-bit load moved the PC by 2' 'Hypervisor ok!')
report mmio-t32-pc-step "$why"

# --- A disabled timer interrupt is withdrawn (item 11) ---------------------
hostile withdraw withdraw
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" 'vtimer: a disabled timer interrupt is no longer pending' \
                        'vtimer: enabled again, the timer interrupt is pending again' 'Hypervisor ok!')
report timer-withdrawn-when-disabled "$why"

# --- Guest RAM cleaned to the Point of Coherency (item 12) -----------------
# QEMU keeps no caches, so no run can tell; the instructions must be there.
objdump=""
for pfx in ${CROSS_aarch64:-} aarch64-linux-gnu- aarch64-none-elf- aarch64-elf-; do
  command -v "${pfx}objdump" >/dev/null && { objdump=${pfx}objdump; break; }
done
dis=$([ -n "$objdump" ] && "$objdump" -d "$b/hvbook.elf" 2>/dev/null)
fn=$(printf '%s\n' "$dis" | awk '/<dcache_clean_inval_poc>:/ {on = 1; next} on && /^$/ {exit} on')
[ -n "$fn" ] || fn=$(printf '%s\n' "$dis" | awk '/<hv_main>:/ {on = 1; next} on && /^$/ {exit} on')
why=""
[ -n "$objdump" ] || why="no objdump for aarch64 found"
[ -n "$why" ] || printf '%s\n' "$fn" | grep -qE $'\tdc\tcivac' || why="no dc civac in dcache_clean_inval_poc or hv_main"
[ -n "$why" ] || printf '%s\n' "$fn" | grep -qE $'\tdsb\tsy' || why="no dsb sy after the clean"
report "guest-ram-cleaned-to-poc (disassembly; QEMU cannot show it)" "$why"

# --- PSCI per DEN0022 (item 13) --------------------------------------------
# tests/e2e.sh ran the badhvc guest above; its log has one line per answer.
log=$out/badhvc.log
why=$(in_order "$log" 'PSCI_VERSION answered 1\.1' 'PSCI_FEATURES\(CPU_ON\) answered 0' \
  'PSCI_FEATURES\(MIGRATE_INFO_TYPE\) answered 0' 'PSCI_FEATURES\(SYSTEM_RESET\) answered 0' \
  'PSCI_FEATURES\(CPU_SUSPEND\) answered 0' 'PSCI_FEATURES\(unknown\) answered -1' \
  'CPU_ON\(self\) answered -4' 'CPU_ON32\(self\) answered -4' 'CPU_ON\(other\) answered -2' \
  'AFFINITY_INFO\(self\) answered 0' 'AFFINITY_INFO32\(self\) answered 0' \
  'AFFINITY_INFO\(other\) answered -2' 'MIGRATE_INFO_TYPE answered 2' \
  'CPU_SUSPEND\(power-down\) answered -2' 'CPU_SUSPEND\(level 1\) answered -2' \
  'CPU_SUSPEND\(standby\) answered 0' 'Hypervisor ok!')
[ -n "$why" ] || why=$(absent "$log" 'WRONG')
report psci-answers "$why"

hostile cpu-off cpuoff
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" 'Guest: PSCI CPU_OFF on its only CPU: .*')
[ -n "$why" ] || why=$(absent "$log" 'CPU_OFF returned' 'Hypervisor ok!')
report psci-cpu-off-ends-run "$why"

# --- The VM-fault report shows only this exit's registers (item 15) --------
hostile stale-far stalefar
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" 'VM fault: the guest read system register S3_3_C14_C2_1, .*' \
                        '  ESR 0x[0-9a-f]+ \(EC 0x18: .*\)  guest pc 0x[0-9a-f]+')
[ -n "$why" ] || why=$(absent "$log" 'FAR 0x9000000' 'HPFAR 0x90000')
report vm-dump-no-stale-far "$why"

# --- SGIs, and more interrupts than list registers (issue 10) -------------
hostile sgi sgi
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" 'SGI: all 8 arrived, each once' \
                        'SGI: one for every other CPU reached nobody' \
                        'SGI: Group 0 writes did not raise a Group 1 SGI' \
                        '  GIC maintenance interrupt +[1-9][0-9]*' \
                        '  SGI sent \(ICC_SGI\*R_EL1\) +11' 'Hypervisor ok!')
report sgi-to-itself-through-full-list-registers "$why"

# --- A level-sensitive interrupt pended by GICD_ISPENDR stays pending -----
hostile levelpend levelpend
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" 'pending latch: 33 arrived' \
                        'pending latch: \.\.\. and only once' 'Hypervisor ok!')
report level-interrupt-pending-latch "$why"

# --- The ID registers do not promise SVE or SME (issue 10) -----------------
# -cpu max has both; bare, the same guest sees them.
hostile idregs idregs
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" 'idregs: no SVE, no SME, as hvbook keeps them' \
                        'idregs: ID_AA64PFR0_EL1.EL1 is the CPU.s' 'Hypervisor ok!')
report id-registers-hide-sve-sme "$why"

# --- Linux: Debian 12's own kernel under hvbook (issue 10) -----------------
# scripts/linux.sh fetches the kernel and BusyBox once; without them (no apt,
# no network) these checks fail with that reason.
if ldir=$(scripts/linux.sh 2>"$out/linux-fetch.err"); then

# linux_session NAME ARGS...: ./run.sh aarch64 --linux ARGS with a typed
# session on its stdin. The commands are typed only once /init has said it
# runs (the log is watched), one a second, and stdin stays open until the
# run ends: QEMU takes an end of input as nothing more to read, but a shell
# that read an end of file would exit. Status in $status, log in $log.
linux_session() {
  local name=$1; shift
  log=$out/$name.log
  local fifo=$out/$name.fifo
  rm -f "$fifo" "$log"; mkfifo "$fifo"
  ./run.sh aarch64 --linux --timeout 120 "$@" <"$fifo" >"$log" 2>&1 &
  local pid=$!
  {
    local i c
    for i in $(seq 1 1000); do
      grep -q 'hvbook: /init is running' "$log" 2>/dev/null && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    sleep 1
    for c in 'uname -a' 'cat /proc/cpuinfo' 'cat /proc/interrupts' 'sleep 1' \
             'cat /proc/interrupts' 'poweroff -f'; do
      printf '%s\n' "$c"; sleep 1
    done
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
  } >"$fifo" &
  local feeder=$!
  wait "$pid"; status=$?
  wait "$feeder" 2>/dev/null
  rm -f "$fifo"
}

# The arch timer's count in the Nth "cat /proc/interrupts" (1 or 2).
timer_count() {
  tr -d '\r' <"$1" | awk -v n="$2" '/arch_timer$/ { k++; if (k == n) print $2 }'
}

linux_session linux
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" 'Pre-allocating 128 MB guest RAM at 0x40000000\.\.\.' \
  'app: /boot/Image' 'Linux Image: text_offset 0x0, image_size 0x[0-9a-f]+, flags 0xa' \
  'Device tree: [0-9]+ bytes at 0x47e00000' 'Entering VM run loop\.\.\.' \
  '\[ *[0-9.]+\] Linux version 6\.1\..*' \
  '\[ *[0-9.]+\] psci: PSCIv1\.1 detected in firmware\.' \
  '\[ *[0-9.]+\] GICv3: 32 SPIs implemented' \
  '\[ *[0-9.]+\] GICv3: CPU0: found redistributor 0 region .*' \
  '\[ *[0-9.]+\] arch_timer: cp15 timer\(s\) running at .*\(virt\)\.' \
  '\[ *[0-9.]+\] 9000000\.pl011: ttyAMA0 at MMIO 0x9000000 \(irq = [0-9]+.*PL011.*' \
  'hvbook: /init is running, Linux 6\.1\..*' \
  'Linux \(none\) 6\.1\..* aarch64 GNU/Linux' 'processor[[:space:]]+: 0' \
  ' *[0-9]+: +[0-9]+ +GICv3 +27 Level +arch_timer' \
  ' *[0-9]+: +[0-9]+ +GICv3 +33 Level +uart-pl011' \
  ' *[0-9]+: +[0-9]+ +GICv3 +27 Level +arch_timer' \
  'Guest: PSCI SYSTEM_OFF' 'Shutdown vm normally!' 'VM exits by reason:' \
  '  console input \(PL011\) +[0-9]+' '  total +[0-9]+' 'Hypervisor ok!')
[ -n "$why" ] || why=$(absent "$log" 'VM fault' 'Oops' 'BUG' 'Kernel panic' 'hvbook: panic' \
                        'Call trace')
t1=$(timer_count "$log" 1) t2=$(timer_count "$log" 2)
[ -n "$why" ] || [ "${t2:-0}" -gt "${t1:-0}" ] ||
  why="the timer's interrupt count did not rise ($t1, then $t2)"
init_ms=$(tr -d '\r' <"$log" | sed -n 's/^\[ *\([0-9.]*\)\] Run \/init.*/\1/p')
report "linux-boots-to-an-interactive-shell (/init at ${init_ms:-?} s guest time)" "$why"

# A kernel that panics (its initramfs is not an archive: no /init, no root)
# asks PSCI for a reset (panic=-1), and the run is a failure.
head -c 65536 /dev/urandom >"$out/not-cpio.img"
run linux-panic --linux --timeout 120 --initrd "$out/not-cpio.img" </dev/null
log=$out/linux-panic.log
why=$(want_status 1)
[ -n "$why" ] || why=$(in_order "$log" '.*Kernel panic - not syncing: .*' \
                        'Guest: PSCI SYSTEM_RESET: .*')
[ -n "$why" ] || why=$(absent "$log" 'Hypervisor ok!' 'Shutdown vm normally!')
report linux-panic-is-a-failure "$why"

# The same kernel on QEMU alone, for comparison, with the /init that powers
# off at once (the way tests/bench.sh times a boot).
run linux-bare --linux --bare --append hvbook.poweroff </dev/null
log=$out/linux-bare.log
why=$(want_status 0)
[ -n "$why" ] || why=$(in_order "$log" '\[ *[0-9.]+\] Linux version 6\.1\..*' \
  '\[ *[0-9.]+\] Kernel command line: console=ttyAMA0 panic=-1 hvbook\.poweroff' \
  'hvbook: /init is running, Linux 6\.1\..*' 'hvbook: powering off, as the command line asks' \
  '\[ *[0-9.]+\] reboot: Power down')
report linux-bare "$why"

else
  fail aarch64-linux "scripts/linux.sh could not fetch the kernel: $(tail -1 "$out/linux-fetch.err")"
fi
