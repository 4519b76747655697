/*
## AArch64: from QEMU to C, and in and out of the guest

This file holds the only Arm code that cannot be written in C: the first
instructions the hypervisor runs, the *exception vector table* every trap to
EL2 goes through, and the two halves of the *world switch*, the code that
moves the CPU from the hypervisor (EL2) into the guest (EL1) and back.

### The first instructions

Started with `-kernel hvbook.elf`, QEMU loads our ELF segments at their
addresses and jumps to the ELF entry point, `_start`, exactly as a boot ROM
would hand over to a bare-metal program. With `virtualization=on` the CPU is
at the highest exception level the machine has, EL2 (QEMU's `virt` has no
EL3 unless `secure=on`). On arrival (Arm ARM DDI0487, D1 "The AArch64
System Level Programmers' Model"; the reset state as QEMU models it):

| what | value |
|---|---|
| `CurrentEL` | EL2 (EL1 if QEMU ran without `virtualization=on`) |
| `PSTATE.SP` | 1: `sp` is `SP_EL2`, the stack pointer of this level |
| `PSTATE.DAIF` | all four set: debug, SError, IRQ and FIQ masked |
| `SCTLR_EL2.M` | 0: no address translation, so addresses are physical |
| `x0` | 0: QEMU passes nothing to an ELF that is not a Linux kernel |

`_start` gives C what it needs, a stack and a zeroed `.bss`. If it really is
at EL2 it also puts the system control register into a known state and
points `VBAR_EL2`, the vector base, at `vectors` below, so that from the first
line of C any trap lands somewhere that can report it. Then it calls
`hv_main` in `aarch64.c`. At EL1 it sets up nothing: `hv_main` will only say
that it needs EL2, and power the machine off.

`SCTLR_EL2` (Arm ARM, register description SCTLR_EL2, for `HCR_EL2.E2H` = 0)
comes out of reset with some fields UNKNOWN, so we write all of it:

| bits | field | value | why |
|---|---|---|---|
| 29, 28, 23, 22, 18, 16, 11, 5, 4 | RES1 | 1 | reserved, must be one |
| 25 | EE | 0 | little-endian data accesses at EL2 |
| 19 | WXN | 0 | (no translation anyway) |
| 12 | I | 1 | instruction cache on: harmless, and faster on real hardware |
| 3 | SA | 1 | fault on a misaligned `sp`: catches a corrupt stack early |
| 2 | C | 0 | data accesses non-cacheable: see "caches" in `aarch64.c` |
| 1 | A | 0 | no alignment check beyond what Device memory already does |
| 0 | M | 0 | the hypervisor runs on physical addresses |

which is 0x30C5_1838.
*/
#define SCTLR_EL2_VALUE 0x30C51838

    .section .text.boot, "ax"
    .global _start
_start:
    msr     daifset, #0xf           // already masked at reset; say so anyway
    adrp    x1, boot_stack_top
    add     x1, x1, :lo12:boot_stack_top
    mov     sp, x1
    adrp    x1, __bss_start
    add     x1, x1, :lo12:__bss_start
    adrp    x2, __bss_end
    add     x2, x2, :lo12:__bss_end
1:  cmp     x1, x2
    b.hs    2f
    str     xzr, [x1], #8
    b       1b
2:
    mrs     x1, CurrentEL           // bits 3:2 hold the level
    cmp     x1, #(2 << 2)
    b.ne    3f                      // not EL2: hv_main explains and stops
    ldr     x1, =SCTLR_EL2_VALUE
    msr     sctlr_el2, x1
    adr     x1, vectors
    msr     vbar_el2, x1
    isb                             // the new vector base is in force now
3:  bl      hv_main
4:  wfi                             // hv_main never returns; if it did, park
    b       4b

/*
### The world switch

Entering the guest and leaving it are two halves of one function call. The C
run loop calls `vcpu_enter(&vcpu)`; that "call" returns when the guest next
traps to EL2, a *VM exit*, and its return value says which kind of exception
it was. In between, the CPU runs the guest.

`struct vcpu` in `aarch64.c` starts with this layout, which the offsets below
must match (a `_Static_assert` there checks it):

| offset | contents |
|---|---|
| 0 .. 247 | guest `x0` .. `x30`, 8 bytes each |
| 248, 256 | `ELR_EL2`, `SPSR_EL2`: where and in which state the guest resumes |
| 264, 272, 280 | `ESR_EL2`, `FAR_EL2`, `HPFAR_EL2`: why it stopped |
| 288 .. 391 | host `x19` .. `x30` and `sp`: what C expects kept across a call |

Only the 31 general registers need saving by hand. The guest's EL1 system
registers (its `SCTLR_EL1`, `VBAR_EL1`, stack pointers, page-table bases...)
stay in the CPU while the hypervisor runs: EL2 code never uses them, and with
one virtual CPU nobody else does either.

The instruction that enters the guest is `ERET`. It jumps to the address in
`ELR_EL2` and takes the processor state, including the exception level (EL1)
and the interrupt masks, from `SPSR_EL2` (Arm ARM, D1 "Exception return").
The C code has filled both into the `vcpu` before calling `vcpu_enter`. From
then on every guest instruction runs directly on the CPU; only what
`HCR_EL2` says to intercept comes back.

**Finding the `vcpu` again.** When the guest traps, every general register
holds a guest value. Arm gives EL2 a software thread register, `TPIDR_EL2`,
that the hardware never touches: we park the `vcpu` pointer there. The
hypervisor's own stack pointer, `SP_EL2`, is also still valid (the guest
runs on `SP_EL1` or `SP_EL0`), so the vector can push two guest registers
there to have two scratch registers to work with.
*/
#define GUEST(n) ((n) * 8)
#define V_ELR 248
#define V_SPSR 256
#define V_ESR 264
#define V_FAR 272
#define V_HPFAR 280
#define HOST(n) (288 + (n) * 8)

    .text
    .global vcpu_enter
vcpu_enter:
    // x0 = struct vcpu *. Keep the host registers C cares about.
    stp     x19, x20, [x0, #HOST(0)]
    stp     x21, x22, [x0, #HOST(2)]
    stp     x23, x24, [x0, #HOST(4)]
    stp     x25, x26, [x0, #HOST(6)]
    stp     x27, x28, [x0, #HOST(8)]
    stp     x29, x30, [x0, #HOST(10)]
    mov     x1, sp
    str     x1, [x0, #HOST(12)]

    // From now on a lower-EL exception is a VM exit for this vcpu.
    msr     tpidr_el2, x0

    ldp     x1, x2, [x0, #V_ELR]
    msr     elr_el2, x1
    msr     spsr_el2, x2

    // Load the guest's registers; x0 last, since it is our pointer.
    ldp     x2, x3, [x0, #GUEST(2)]
    ldp     x4, x5, [x0, #GUEST(4)]
    ldp     x6, x7, [x0, #GUEST(6)]
    ldp     x8, x9, [x0, #GUEST(8)]
    ldp     x10, x11, [x0, #GUEST(10)]
    ldp     x12, x13, [x0, #GUEST(12)]
    ldp     x14, x15, [x0, #GUEST(14)]
    ldp     x16, x17, [x0, #GUEST(16)]
    ldp     x18, x19, [x0, #GUEST(18)]
    ldp     x20, x21, [x0, #GUEST(20)]
    ldp     x22, x23, [x0, #GUEST(22)]
    ldp     x24, x25, [x0, #GUEST(24)]
    ldp     x26, x27, [x0, #GUEST(26)]
    ldp     x28, x29, [x0, #GUEST(28)]
    ldr     x30, [x0, #GUEST(30)]
    ldp     x0, x1, [x0, #GUEST(0)]
    eret                            // into the guest: EL1, pc = ELR_EL2

/*
Both ways out of EL1 or EL2, a guest exit and a fault of the hypervisor
itself, begin by storing `x2` to `x30` into a frame at `x0` (the vector has
already set `x0` and `x1` aside). The frame has the layout of a `vcpu`, so
one macro serves both.
*/
.macro save_x2_to_x30
    stp     x2, x3, [x0, #GUEST(2)]
    stp     x4, x5, [x0, #GUEST(4)]
    stp     x6, x7, [x0, #GUEST(6)]
    stp     x8, x9, [x0, #GUEST(8)]
    stp     x10, x11, [x0, #GUEST(10)]
    stp     x12, x13, [x0, #GUEST(12)]
    stp     x14, x15, [x0, #GUEST(14)]
    stp     x16, x17, [x0, #GUEST(16)]
    stp     x18, x19, [x0, #GUEST(18)]
    stp     x20, x21, [x0, #GUEST(20)]
    stp     x22, x23, [x0, #GUEST(22)]
    stp     x24, x25, [x0, #GUEST(24)]
    stp     x26, x27, [x0, #GUEST(26)]
    stp     x28, x29, [x0, #GUEST(28)]
    str     x30, [x0, #GUEST(30)]
.endm

/*
`guest_exit` is where the eight vectors for exceptions from a lower level
arrive, with the guest's `x0` and `x1` pushed on the hypervisor stack and the
kind of exception in `x1`. It saves all 31 guest registers and the five
registers that describe the exit into the `vcpu`, restores the host's, and
returns from `vcpu_enter` with the kind, for the run loop to act on.
*/
guest_exit:
    mrs     x0, tpidr_el2           // the vcpu
    save_x2_to_x30
    ldp     x2, x3, [sp], #16       // the guest's x0 and x1, from the vector
    stp     x2, x3, [x0, #GUEST(0)]

    mrs     x2, elr_el2             // where the guest was
    mrs     x3, spsr_el2            // its PSTATE then
    stp     x2, x3, [x0, #V_ELR]
    mrs     x2, esr_el2             // why it stopped (synchronous exits)
    mrs     x3, far_el2             // the virtual address it touched
    stp     x2, x3, [x0, #V_ESR]
    mrs     x2, hpfar_el2           // ... and its IPA, for a stage-2 fault
    str     x2, [x0, #V_HPFAR]

    ldr     x2, [x0, #HOST(12)]
    mov     sp, x2
    ldp     x19, x20, [x0, #HOST(0)]
    ldp     x21, x22, [x0, #HOST(2)]
    ldp     x23, x24, [x0, #HOST(4)]
    ldp     x25, x26, [x0, #HOST(6)]
    ldp     x27, x28, [x0, #HOST(8)]
    ldp     x29, x30, [x0, #HOST(10)]
    mov     x0, x1                  // the exit kind
    ret                             // "return" from vcpu_enter

/*
### The vector table

`VBAR_EL2` points at a table of 16 entries, 128 bytes (32 instructions) each,
2 KiB aligned (Arm ARM, D1 "Exception vectors"). Which entry the CPU jumps to
depends on where the exception came from and what kind it is:

| offset | taken from | kinds (one entry each) |
|---|---|---|
| 0x000 | EL2, using `SP_EL0` | synchronous, IRQ, FIQ, SError |
| 0x200 | EL2, using `SP_EL2` | synchronous, IRQ, FIQ, SError |
| 0x400 | a lower level in AArch64: the guest | synchronous, IRQ, FIQ, SError |
| 0x600 | a lower level in AArch32 | synchronous, IRQ, FIQ, SError |

This table is what tells a guest exit from a fault of the hypervisor itself:
the hardware has already sorted them by where they came from. The first two
rows can only be a bug in the hypervisor (it never unmasks interrupts, so not
even an IRQ belongs there); the third row is a VM exit; the fourth cannot
happen, because `HCR_EL2.RW` makes the guest's EL1 AArch64, but if it did, it
is reported like any other unexpected exit. A 32-bit program that the guest
kernel runs at EL0 still arrives in the third row: the row is chosen by the
state of the level just below the target, the guest's EL1, not by the state
of the program that trapped (Arm ARM, D1 "Exception vectors").

The kind numbers are shared with `aarch64.c` (`EXIT_KIND_SYNC` and
friends).
*/
#define KIND_SYNC 0
#define KIND_IRQ 1
#define KIND_FIQ 2
#define KIND_SERROR 3
#define KIND_AARCH32 4

.macro guest_vector kind
    .balign 0x80
    stp     x0, x1, [sp, #-16]!     // two scratch registers
    mov     x1, #\kind
    b       guest_exit
.endm

/*
A hypervisor fault must not trust its stack: the fault may *be* a bad stack
pointer. So the EL2 entries park `x0` in `TPIDR_EL2` (the `vcpu` pointer there
is no longer needed: nothing will be resumed), store `x1` into a static
`host_frame`, and continue in `host_trap` with the kind in `x1`.
*/
.macro host_vector kind
    .balign 0x80
    msr     tpidr_el2, x0
    adrp    x0, host_frame
    add     x0, x0, :lo12:host_frame
    str     x1, [x0, #GUEST(1)]
    mov     x1, #\kind
    b       host_trap
.endm

    .balign 2048
    .global vectors
vectors:
    host_vector KIND_SYNC           // 0x000: EL2 with SP_EL0
    host_vector KIND_IRQ
    host_vector KIND_FIQ
    host_vector KIND_SERROR
    host_vector KIND_SYNC           // 0x200: EL2 with SP_EL2
    host_vector KIND_IRQ
    host_vector KIND_FIQ
    host_vector KIND_SERROR
    guest_vector KIND_SYNC          // 0x400: the guest, AArch64
    guest_vector KIND_IRQ
    guest_vector KIND_FIQ
    guest_vector KIND_SERROR
    guest_vector KIND_AARCH32       // 0x600: AArch32 (cannot happen)
    guest_vector KIND_AARCH32
    guest_vector KIND_AARCH32
    guest_vector KIND_AARCH32

/*
`host_trap` completes the frame: all 31 registers, the stack pointer and
the four exception registers, in the same order as in a `vcpu`. Then it
moves to a stack of its own and calls `hv_host_trap(frame, kind)` in C, which
prints the whole frame and powers off.
*/
host_trap:
    save_x2_to_x30
    mrs     x2, tpidr_el2           // x0, parked by the vector
    str     x2, [x0, #GUEST(0)]
    mrs     x2, elr_el2
    mrs     x3, spsr_el2
    stp     x2, x3, [x0, #V_ELR]
    mrs     x2, esr_el2
    mrs     x3, far_el2
    stp     x2, x3, [x0, #V_ESR]
    mov     x2, sp                  // in the HPFAR slot: EL2 faults have none
    str     x2, [x0, #V_HPFAR]
    adrp    x2, fault_stack_top
    add     x2, x2, :lo12:fault_stack_top
    mov     sp, x2
    bl      hv_host_trap            // does not return
5:  wfi
    b       5b

/*
### Power off through PSCI

`psci_smc(fn, a1, a2, a3)` and `psci_hvc(...)` issue a PSCI call (Arm
DEN0022, "Power State Coordination Interface") to whatever firmware is
below us. With `virtualization=on` QEMU plays that firmware at EL3 and
listens for `SMC #0`; without it (when we are only at EL1) it listens for
`HVC #0`. The SMC Calling Convention (Arm DEN0028) puts the function id in
`w0`, arguments in `x1` .. `x3`, and the result back in `x0`.
*/
    .global psci_smc
psci_smc:
    smc     #0
    ret

    .global psci_hvc
psci_hvc:
    hvc     #0
    ret

/*
The boot stack, 64 KiB, and a separate 8 KiB stack for reporting a fault of
the hypervisor itself, both in `.bss`, which `_start` zeroes. The stacks grow
down, so `sp` starts at their tops. `host_frame` is the 288-byte record
`host_trap` fills in.
*/
    .section .bss.stack, "aw", @nobits
    .balign 4096
boot_stack:
    .space  65536
boot_stack_top:
fault_stack:
    .space  8192
fault_stack_top:
    .global host_frame
host_frame:
    .space  288
