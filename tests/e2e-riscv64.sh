# End-to-end checks only the RISC-V hypervisor has; tests/e2e.sh sources
# this file at its end, with $arch = riscv64, $b, $out and its helpers
# run, report and expect_failure (and in_order and absent from tests/lib.sh).
# Each check below would have failed before the fix it guards (issue 8).

# vm_fault_check NAME GUEST REPORT-ERE: the guest must end in a VM fault
# whose first line matches REPORT-ERE, with status 1 and no success line.
vm_fault_check() {
  local name=$1 guest=$2 line=$3
  run "$name" --guest "$b/tests/$guest.elf" --timeout 30
  local log=$out/$name.log why=""
  [ "$status" = 1 ] || why="run.sh exited $status, expected 1"
  [ -n "$why" ] || why=$(in_order "$log" 'Entering VM run loop\.\.\.' "$line" \
    '  scause 0x[0-9a-f]+  guest pc 0x[0-9a-f]+ .*' 'VM exits by reason:')
  [ -n "$why" ] || why=$(absent "$log" 'Hypervisor ok!' 'Shutdown vm normally!' 'FLASH WRITABLE')
  report "$name" "$why"
}

# --- The pflash is read-only, and not executable ---------------------------
# A store to a page the guest has read (mapped read-only), a store as the
# first touch of a page, and a jump into the flash.
vm_fault_check pflash-store-after-read flashwrite \
  'VM fault: the guest wrote GPA 0x22000000, in its pflash window, which is read-only'
vm_fault_check pflash-store-first-touch flashwrite-cold \
  'VM fault: the guest wrote GPA 0x22010000, in its pflash window, which is read-only'
vm_fault_check pflash-fetch-report flashexec \
  'VM fault: the guest fetched an instruction from GPA 0x22000000, in its pflash window, which is not executable'

# --- A guest that reports its own failure makes the run fail ----------------
run guest-reports-failure --guest "$b/tests/selfcheck.elf" --timeout 30
log=$out/guest-reports-failure.log
why=""
[ "$status" = 1 ] || why="run.sh exited $status, expected 1"
[ -n "$why" ] || why=$(in_order "$log" 'Bad pflash magic: .*' \
  'Guest: SBI SRST shutdown, reason 1: the guest reports a failure' 'VM exits by reason:' \
  'hvbook: stopping with a failure status\.')
[ -n "$why" ] || why=$(absent "$log" 'Hypervisor ok!' 'Shutdown vm normally!')
report guest-reports-failure "$why"

# --- The time budget: the hypervisor gets the CPU back ----------------------
# Both guests never exit by themselves; before the hypervisor kept a timer
# of its own, run.sh killed QEMU at --timeout (status 124, no report).
for g in wfi spin; do
  run "budget-$g" --guest "$b/tests/$g.elf" --budget 2 --timeout 30
  log=$out/budget-$g.log
  why=""
  [ "$status" = 1 ] || why="run.sh exited $status, expected 1 (124 is a timeout)"
  [ -n "$why" ] || why=$(in_order "$log" 'Entering VM run loop\.\.\.' \
    'VM stopped: the guest did not shut down within its time budget of 2 s \(guest pc 0x802000[0-9a-f][0-9a-f]\)' \
    'VM exits by reason:' '  timer interrupt +1' '  total +[0-9]+' 'hvbook: stopping with a failure status\.')
  [ -n "$why" ] || why=$(absent "$log" 'Hypervisor ok!' 'Shutdown vm normally!' 'VM fault')
  report "budget-$g" "$why"
done

# --- The guest's own exceptions are injected, not VM faults -----------------
run exceptions-injected --guest "$b/tests/traps.elf" --timeout 30
log=$out/exceptions-injected.log
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$log" \
  'misaligned AMO: handled by the guest \(cause [4-7]\)' \
  'misaligned LR: handled by the guest \(cause [4-7]\)' \
  'illegal instruction: handled by the guest \(cause 2\)' \
  'stimecmp without Sstc: handled by the guest \(cause 2\)' \
  'wfi in U-mode: handled by the guest \(cause 2\)' \
  'stimecmp in U-mode: handled by the guest \(cause 2\)' \
  'Shutdown vm normally!' '  exception injected +[0-9]+' 'Hypervisor ok!')
[ -n "$why" ] || why=$(absent "$log" 'WRONG' 'did not trap' 'VM fault')
report exceptions-injected "$why"

# --- SBI: reserved SRST values and legacy calls -----------------------------
run sbi-srst-and-legacy --guest "$b/tests/badsbi.elf" --timeout 30
log=$out/sbi-srst-and-legacy.log
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$log" \
  'SRST reserved reset_type 3 answered -3 \(invalid param\)' \
  'SRST platform reset_type 0xF0000000 answered -3 \(invalid param\)' \
  'SRST reserved reset_reason 2 answered -3 \(invalid param\)' \
  'SRST implementation reset_reason 0xE0000000 answered -3 \(invalid param\)' \
  'legacy EIDs 0x03\.\.0x07, 0x09\.\.0x0F answered -2 and kept a1' \
  'Guest: SBI SRST shutdown' 'Hypervisor ok!')
report sbi-srst-and-legacy "$why"

# --- hstatus is written whole, not inherited --------------------------------
# A debugger plays the firmware that left junk in hstatus: VTSR, VTW, VTVM
# and HU set before hv_main runs. Inherited, VTSR alone would make the
# guest's first sret a virtual-instruction exit. QEMU's gdb stub gets a port
# of this run's own, so that other runs' debuggers do not meet it.
if command -v gdb-multiarch >/dev/null; then
  port=$((20000 + $$ % 20000))
  hexport=$(printf ':%04X 00000000:0000 0A' "$port")
  ./run.sh "$arch" --timeout 60 --log "$out/hstatus-junk.log" \
    --qemu "-S -gdb tcp:127.0.0.1:$port" >/dev/null 2>"$out/hstatus-junk.err" &
  qpid=$!
  for _ in $(seq 120); do
    grep -q "$hexport" /proc/net/tcp 2>/dev/null && break
    sleep 0.25
  done
  timeout 60 gdb-multiarch -q -batch "$b/hvbook.elf" -ex "target remote 127.0.0.1:$port" \
    -ex 'break hv_main' -ex continue -ex 'set $hstatus = $hstatus | 0x700200' \
    -ex 'p/x $hstatus' -ex delete -ex detach >"$out/hstatus-gdb.log" 2>&1
  wait "$qpid"
  status=$?
  why=""
  grep -q '^\$1 = 0x[0-9a-f]*7002[0-9a-f][0-9a-f]$' "$out/hstatus-gdb.log" ||
    why="the debugger could not set hstatus: $(tail -1 "$out/hstatus-gdb.log")"
  [ -n "$why" ] || [ "$status" = 0 ] || why="run.sh exited $status"
  [ -n "$why" ] || why=$(in_order "$out/hstatus-junk.log" 'Shutdown vm normally!' 'Hypervisor ok!')
  report hstatus-not-inherited "$why"
else
  fail "$arch-hstatus-not-inherited" "gdb-multiarch is not installed"
fi

# --- HFENCE.GVMA names x0 where it means "all" -------------------------------
# QEMU flushes everything on any HFENCE, so only the machine code can show
# this. HFENCE.GVMA is funct7 0110001, rs1, rs2, funct3 0, opcode SYSTEM:
# word & 0xFE007FFF == 0x62000073. hvbook has one VMID and uses x0 (all
# VMIDs) for rs2 everywhere; after hgatp and after new tables rs1 is x0 too.
objdump=""
for pfx in ${CROSS_riscv64:-} riscv64-linux-gnu- riscv64-unknown-elf- riscv64-elf-; do
  command -v "${pfx}objdump" >/dev/null && { objdump=${pfx}objdump; break; }
done
fences=$([ -n "$objdump" ] && "$objdump" -d "$b/hvbook.elf" 2>/dev/null |
  awk -F'\t' 'NF >= 3 { w = $2; gsub(/ /, "", w); if (length(w) == 8) print w }' |
  while read -r w; do
    v=$((16#$w))
    [ $((v & 0xFE007FFF)) = $((0x62000073)) ] && echo "$(( (v >> 15) & 31 )),$(( (v >> 20) & 31 ))"
  done | sort | uniq -c | tr -s ' ' | tr '\n' ';')
why=""
[ -n "$objdump" ] || why="no objdump for riscv64 found"
[ -n "$why" ] || [ -n "$fences" ] || why="no HFENCE.GVMA found in $b/hvbook.elf"
[ -n "$why" ] || ! echo "$fences" | grep -q ',[1-9][0-9]*;' || why="an HFENCE.GVMA names a register, not x0, as its VMID (rs1,rs2 counts: $fences)"
[ -n "$why" ] || echo "$fences" | grep -q ' 0,0;' || why="no HFENCE.GVMA x0, x0 (rs1,rs2 counts: $fences)"
report "hfence-gvma-x0 (rs1,rs2 counts:$fences)" "$why"
