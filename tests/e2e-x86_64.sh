# What only x86-64 has, sourced by tests/e2e.sh (which defines run, report,
# expect_failure, $arch, $b and $out). The hostile guests are in
# tests/guests/x86_64-*.S; each is started like the real guest, in 32-bit
# protected mode, and does one thing a guest must not get away with.

# A CPU without SVM (QEMU's qemu64 model has no nested paging to offer):
# a plain refusal that says how to start QEMU, before any VM exists.
expect_failure no-svm 'this CPU has (no SVM|SVM but no nested paging).*' --qemu '-cpu qemu64'
why=$(in_order "$out/no-svm.log" '.*-cpu max,\+svm.*')
report no-svm-hint "$why"

# The exit table of the good run shows the two kinds of exit that make the
# guest's timer work: the emulated APIC page and the injected interrupts.
why=$(in_order "$out/transcript.log" 'VM exits by reason:' '  timer interrupt +[0-9]+' \
  '  NPF: local APIC \(emulated\) +[0-9]+' '  NPF: flash \(emulated\) +[0-9]+' 'Hypervisor ok!')
report exit-table "$why"

# A hypercall nobody defines gets -1 and the guest goes on; putchar works.
run badvmmcall --guest "$b/tests/badvmmcall.elf"
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$out/badvmmcall.log" 'unknown vmmcall answered -1' '>' \
  'putchar vmmcall answered 0' 'Guest: power-off port' 'Hypervisor ok!')
report bad-hypercall-answered "$why"

# What a bare CPU without SVM would do, the guest sees: #GP for an MSR
# nobody has, #UD for an SVM instruction, no SVM in CPUID; and its own IDT
# handles the exceptions, with no VM fault.
run exceptions --guest "$b/tests/exceptions.elf"
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$out/exceptions.log" 'unknown MSR: #GP delivered to the guest' \
  'VMLOAD: #UD delivered to the guest' 'CPUID hides SVM' 'Hypervisor ok!')
report guest-exceptions "$why"

# The decoder in long mode, through the guest's own page tables: eleven
# MOV forms on the flash and the APIC, each result checked by the guest.
run decode --guest "$b/tests/decode.elf"
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$out/decode.log" 'decoder: all 11 MOV forms gave what the hardware gives' \
  'Hypervisor ok!')
report decoder-long-mode "$why"

# CPUID's OSXSAVE follows the guest's CR4; an EFER bit the CPU lacks and a
# PAT entry that is no memory type are #GP for the guest, as bare, never a
# VMRUN that fails (VMEXIT_INVALID) on the next entry.
run cpustate --guest "$b/tests/cpustate.elf"
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$out/cpustate.log" \
  "CPUID: (OSXSAVE follows the guest's CR4|no XSAVE.*)" \
  'EFER: (a bit the CPU lacks raises #GP|this CPU has TCE.*)' \
  'PAT: a reserved memory type raises #GP' 'INVD done' 'Hypervisor ok!')
report cpu-state-checks "$why"

# An idle guest halts until its timer: each HLT exit waits for the guest's
# deadline and ends with the injected interrupt.
run hlt --guest "$b/tests/hlt.elf"
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$out/hlt.log" 'HLT woken by 3 timer interrupts' \
  '  HLT +[0-9]+' 'Hypervisor ok!')
report hlt-wakes-on-timer "$why"

# A guest that moves its timer to another vector gets its ticks at the new
# vector: the VMCB's V_INTR_VECTOR is replaced, not ORed into.
run revector --guest "$b/tests/revector.elf"
why=""
[ "$status" = 0 ] || why="run.sh exited $status"
[ -n "$why" ] || why=$(in_order "$out/revector.log" \
  'timer moved to vector 0x41: the tick arrived at 0x41' 'Hypervisor ok!')
report timer-vector-moved "$why"

# expect_vm_fault NAME ERE ARGS...: the guest starts, then a VM-fault report
# matching ERE with the guest's pc, exit status 1, and no success lines.
expect_vm_fault() {
  local name=$1 msg=$2; shift 2
  run "$name" "$@"
  local why=""
  [ "$status" = 1 ] || why="run.sh exited $status, expected 1"
  [ -n "$why" ] || why=$(in_order "$out/$name.log" 'Entering VM run loop\.\.\.' "$msg" \
    '.*guest pc 0x[0-9a-f]+.*' 'The VM was stopped after a fault\.')
  [ -n "$why" ] || why=$(absent "$out/$name.log" 'Hypervisor ok!' 'Shutdown vm normally!' \
    'ISOLATION BROKEN' 'after all' 'did not stop the VM')
  report "$name" "$why"
}
expect_vm_fault port-refused 'VM fault: the guest wrote to port 0x80 .*which it does not own' \
  --guest "$b/tests/badport.elf"
expect_vm_fault flash-write-refused \
  'VM fault: the guest wrote to GPA 0xffc00000, in its flash, which is read-only' \
  --guest "$b/tests/flashwrite.elf"
expect_vm_fault icr-refused \
  "VM fault: the guest wrote .* interrupt command register \(GPA 0xfee00300\).*" \
  --guest "$b/tests/icr.elf"
expect_vm_fault triple-fault 'VM fault: the guest shut down its CPU \(SHUTDOWN.*' \
  --guest "$b/tests/triplefault.elf"
# The same guest bare: QEMU's -no-reboot turns the triple fault into an exit
# with status 0 and no power-off port written, which must not count as a pass.
run triple-fault-bare --bare --guest "$b/tests/triplefault.elf"
why=""
[ "$status" = 1 ] || why="run.sh --bare exited $status, expected 1"
[ -n "$why" ] || why=$(absent "$out/triple-fault-bare.log" 'the triple fault did not stop')
report triple-fault-bare "$why"
# An IDT in the flash: the nested page fault comes from the CPU's delivery
# of #DB, not from the load at the guest's pc, which must not be emulated.
expect_vm_fault idt-in-flash \
  "VM fault: the guest's CPU touched GPA 0xffc00008 while it delivered event 0x80000301 \(vector 1\).*" \
  --guest "$b/tests/idtflash.elf"
expect_vm_fault unknown-instruction \
  'VM fault: the guest accessed device GPA 0xfee00080 with an instruction hvbook cannot emulate .*bytes at guest pc: 83 05 80 00 e0 fe.*' \
  --guest "$b/tests/apicadd.elf"

# A guest that spins with interrupts off is stopped by the time budget,
# with a report and status 1, long before run.sh's own timeout (124).
run budget --guest "$b/tests/spin.elf" --budget 2
why=""
[ "$status" = 1 ] || why="run.sh exited $status, expected 1"
[ -n "$why" ] || why=$(in_order "$out/budget.log" 'Entering VM run loop\.\.\.' \
  'VM stopped: the guest did not shut down within its time budget of 2 s \(guest pc 0x[0-9a-f]+\)' \
  'VM exits by reason:' 'hvbook: stopping with a failure status\.')
[ -n "$why" ] || why=$(absent "$out/budget.log" 'Hypervisor ok!' 'Shutdown vm normally!')
report budget-spent "$why"
