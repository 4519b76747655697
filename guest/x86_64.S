/*
# The guest's x86-64 assembly: `guest/x86_64.S`

The same three pieces as on RISC-V and Arm (the entry, the trap vectors, the
context switch), and one more that only x86 needs: the climb from the 32-bit
world the loader leaves us in to the 64-bit *long mode* that the C code is
compiled for. A PC still starts the way it did in the 1980s, and a Multiboot
loader hands over half-way up: in 32-bit protected mode, paging off. The rest
of the climb (page tables, a GDT, long mode) is the kernel's job.

## The Multiboot header

*Multiboot* (Multiboot Specification 0.6.96) is the contract between a PC
boot loader (GRUB, QEMU's `-kernel`, and hvbook) and a kernel. The kernel
announces itself with a header of 32-bit words somewhere in the first 8 KiB of
its file, 4-byte aligned (3.1.1 "The layout of Multiboot header"):

+--------+-----------------+---------------------------------------------------+
| offset | field           | value here                                        |
+========+=================+===================================================+
| 0      | `magic`         | 0x1BAD_B002                                       |
+--------+-----------------+---------------------------------------------------+
| 4      | `flags`         | bit 1: give me the memory size; bit 16: the       |
|        |                 | address fields below are valid                    |
+--------+-----------------+---------------------------------------------------+
| 8      | `checksum`      | chosen so that the three words add up to 0 (mod   |
|        |                 | 2^32)                                             |
+--------+-----------------+---------------------------------------------------+
| 12     | `header_addr`   | where this header lands in memory                 |
+--------+-----------------+---------------------------------------------------+
| 16     | `load_addr`     | where the image starts in memory (0x10_0000)      |
+--------+-----------------+---------------------------------------------------+
| 20     | `load_end_addr` | end of the bytes to copy from the file (the end   |
|        |                 | of `.data`)                                       |
+--------+-----------------+---------------------------------------------------+
| 24     | `bss_end_addr`  | end of the zero-filled part (the end of `.bss`)   |
+--------+-----------------+---------------------------------------------------+
| 28     | `entry_addr`    | where to jump: `multiboot_entry`                  |
+--------+-----------------+---------------------------------------------------+

Why the address fields, when the file is an ELF that says all of that too?
Because QEMU's Multiboot loader only understands 32-bit ELF files and refuses
a 64-bit one. Flag bit 16 (3.1.2; GRUB names it the "a.out kludge") tells the
loader to ignore the ELF headers and copy the file by these fields alone. The
linker script arranges the file so that both views describe the same bytes,
and the ELF's entry point is `multiboot_entry` too, so a loader that reads the
ELF (hvbook's) agrees with one that reads this header (QEMU's).
*/
    .equ    MB_HEADER_MAGIC, 0x1BADB002
    .equ    MB_FLAG_MEMORY_INFO, 1 << 1
    .equ    MB_FLAG_ADDRESSES, 1 << 16
    .equ    MB_FLAGS, MB_FLAG_MEMORY_INFO | MB_FLAG_ADDRESSES

    .section .multiboot, "a"
    .balign 4
multiboot_header:
    .long   MB_HEADER_MAGIC
    .long   MB_FLAGS
    .long   -(MB_HEADER_MAGIC + MB_FLAGS)
    .long   multiboot_header
    .long   __image_start
    .long   __data_end
    .long   __bss_end
    .long   multiboot_entry

/*
## Entry: what the loader leaves us

Multiboot 3.2 "Machine state" describes the CPU at `multiboot_entry`:

- 32-bit protected mode (`CR0.PE` = 1), paging off (`CR0.PG` = 0);
- `CS` a flat 32-bit code segment, `DS`, `ES`, `SS` (and `FS`, `GS`) flat data
  segments: base 0, limit 4 GiB, so an address is a physical address;
- interrupts masked (`EFLAGS.IF` = 0);
- `EAX` = 0x2BAD_B002, the proof that a Multiboot loader started us, and
  `EBX` = the physical address of the *Multiboot information* structure, which
  says how much memory there is;
- and, importantly, undefined: `ESP`, `GDTR` and `IDTR`. The segment
  registers are good until we load one of them; after that we need a GDT of our
  own.

hvbook starts its guest in exactly this state, with the information structure
in guest RAM, so the guest cannot tell QEMU's loader from the hypervisor.

`multiboot_entry` keeps `EAX` and `EBX` (the `rep stosl` below needs `EAX`,
`ECX` and `EDI`), takes up the boot stack and zeroes `.bss`: a Multiboot loader
zeroes up to `bss_end_addr` itself (3.1.3), but the page tables below must be
zero, and it costs six instructions not to depend on it. Then it stores the
two values in `multiboot_magic` and `multiboot_info`, C variables in
`x86_64.c`, where `plat_init` checks them once there is a console to complain
on.
*/
    .section .text.entry, "ax"
    .code32
    .globl  multiboot_entry
multiboot_entry:
    cli
    cld                             // string instructions count upwards
    mov     %eax, %esi              // the Multiboot magic
    mov     $boot_stack_top, %esp

    mov     $__bss_start, %edi
    mov     $__bss_end, %ecx
    sub     %edi, %ecx
    shr     $2, %ecx                // .bss is a multiple of 16 bytes long
    xor     %eax, %eax
    rep stosl

    mov     %esi, multiboot_magic
    mov     %ebx, multiboot_info

/*
### Is there a long mode to enter?

A 32-bit CPU would fault on the first 64-bit step, long before there is a
console. So first ask CPUID: extended leaf 0x8000_0001 has `LM` in `EDX` bit 29
(AMD64 APM vol. 3, appendix E, "Obtaining Processor Information Via the CPUID
Instruction"), and leaf 0x8000_0000 says whether that leaf exists at all. A
CPU without long mode gets the failure code written to the power-off port
(see `plat_shutdown` in `x86_64.c`) and no further.

Under hvbook CPUID is intercepted, and the hypervisor answers with the truth
about the CPU (minus SVM), so the answer is the same.
*/
    .equ    CPUID_EXT_MAX, 0x80000000
    .equ    CPUID_EXT_FEATURES, 0x80000001
    .equ    CPUID_EDX_LM, 1 << 29
    .equ    POWER_OFF_PORT, 0xF4
    .equ    POWER_OFF_FAILURE, 1

    mov     $CPUID_EXT_MAX, %eax
    cpuid
    cmp     $CPUID_EXT_FEATURES, %eax
    jb      no_long_mode
    mov     $CPUID_EXT_FEATURES, %eax
    cpuid
    test    $CPUID_EDX_LM, %edx
    jnz     build_page_tables
no_long_mode:
    mov     $POWER_OFF_FAILURE, %al
    out     %al, $POWER_OFF_PORT
1:  hlt
    jmp     1b

/*
### Page tables: the first 4 GiB, identity-mapped

Long mode cannot run with paging off (AMD64 APM vol. 2, 14.6 "Enabling and
Activating Long Mode": activating it *is* turning paging on while `EFER.LME`
is set). This kernel has no use for virtual memory, so its tables map every
address to itself, with the largest pages that keep the tables small: 2 MiB
pages, made by setting `PS` in a page-directory entry (APM vol. 2, 5.3.4
"2-Mbyte Page Translation"). A 48-bit address is split as:

+------------+----------------+------------+-----------------+-----------------+
| bits       | 47..39         | 38..30     | 29..21          | 20..0           |
+============+================+============+=================+=================+
| index into | PML4 (512      | PDPT (512) | page directory  | offset in the 2 |
|            | entries)       |            | (512)           | MiB page        |
+------------+----------------+------------+-----------------+-----------------+

Four page directories of 512 entries cover 4 GiB: one PML4 entry, four PDPT
entries, 2048 page-directory entries, in 6 pages of `.bss`. 4 GiB is enough:
guest RAM is at 0..16 MiB, and the two devices the guest touches, the local
APIC at 0xFEE0_0000 and the flash at 0xFFC0_0000, are just below 4 GiB.

The bits of an entry used here (APM vol. 2, 5.4.1 "Field Definitions"):

| bit | name | meaning |
|---|---|---|
| 0 | P | present |
| 1 | R/W | writable |
| 3 | PWT | write-through |
| 4 | PCD | cache disabled |
| 7 | PS | (page-directory entry) this entry is a 2 MiB page, not a table |

Device registers must not be cached: a cached read of the APIC's current-count
register would return an old count, and a cached write might never reach the
device. On a PC everything from 3 GiB up is the hole where devices live (RAM
above it is remapped past 4 GiB), so every page from 0xC000_0000 gets `PCD` and
`PWT`, which select the uncacheable memory type with the power-on PAT (APM
vol. 2, chapter 7, "Page-Attribute Table Mechanism": `PCD` = `PWT` = 1 picks
PAT entry 3, UC). Under hvbook those pages are not RAM at all: the
hypervisor emulates them, whatever the cache bits say.

The entries are 8 bytes; the tables are below 4 GiB, so the upper halves of
all entries stay zero from the `.bss` clearing, and 32-bit code can fill them.
*/
    .equ    PTE_P, 1 << 0
    .equ    PTE_W, 1 << 1
    .equ    PTE_PWT, 1 << 3
    .equ    PTE_PCD, 1 << 4
    .equ    PTE_PS, 1 << 7
    .equ    PAGE_SIZE, 4096
    .equ    PD_ENTRIES, 2048                // 4 GiB of 2 MiB pages
    .equ    PD_UNCACHED_FIRST, 0xC0000000 >> 21

build_page_tables:
    mov     $boot_pd, %edi
    xor     %ecx, %ecx
1:  mov     %ecx, %eax
    shl     $21, %eax                       // the page's address: index * 2 MiB
    or      $(PTE_P | PTE_W | PTE_PS), %eax
    cmp     $PD_UNCACHED_FIRST, %ecx
    jb      2f
    or      $(PTE_PWT | PTE_PCD), %eax
2:  mov     %eax, (%edi, %ecx, 8)
    inc     %ecx
    cmp     $PD_ENTRIES, %ecx
    jb      1b

    mov     $boot_pdpt, %edi                // 4 entries: the 4 directories
    mov     $(boot_pd + (PTE_P | PTE_W)), %eax
    xor     %ecx, %ecx
3:  mov     %eax, (%edi, %ecx, 8)
    add     $PAGE_SIZE, %eax
    inc     %ecx
    cmp     $4, %ecx
    jb      3b

    movl    $(boot_pdpt + (PTE_P | PTE_W)), boot_pml4

/*
### Entering long mode

AMD64 APM vol. 2, 14.6 "Enabling and Activating Long Mode", gives the
order: with paging off, enable physical-address extensions, point `CR3` at the
PML4, set `EFER.LME`, and only then turn paging on. Before all of that we load
a GDT of our own, because the last step needs a 64-bit code segment in it.

1. `lgdt` our GDT (its layout is at the end of this file), and at once load
   the data segment registers from it: the loader's GDT may be gone by now;
2. `CR4.PAE` (bit 5): long-mode tables are PAE tables, 8-byte entries;
3. `CR3` = the PML4;
4. `EFER.LME` (bit 8) in the extended-feature-enable register, MSR
   0xC000_0080. We write the whole register rather than read, change and write
   it back: the loader leaves long mode off, and `LME` is all we want in it.
   (Under hvbook this `wrmsr` is intercepted; the hypervisor keeps the
   guest's own view of `EFER`, and one write is one exit.);
5. `CR0.PG` (bit 31). The CPU is now in long mode (`EFER.LMA` = 1), but
   still running 32-bit code in *compatibility mode*, because `CS` still holds
   the loader's 32-bit segment;
6. a far jump to a 64-bit code segment (`CS.L` = 1): 64-bit mode.
*/
    .equ    KERNEL_CS, 0x08
    .equ    KERNEL_DS, 0x10
    .equ    CR4_PAE, 1 << 5
    .equ    MSR_EFER, 0xC0000080
    .equ    EFER_LME, 1 << 8
    .equ    CR0_PG, 1 << 31

    lgdt    gdt_pointer
    mov     $KERNEL_DS, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     %ax, %fs
    mov     %ax, %gs

    mov     %cr4, %eax
    or      $CR4_PAE, %eax
    mov     %eax, %cr4

    mov     $boot_pml4, %eax
    mov     %eax, %cr3

    mov     $MSR_EFER, %ecx
    mov     $EFER_LME, %eax
    xor     %edx, %edx
    wrmsr

    mov     %cr0, %eax
    or      $CR0_PG, %eax
    mov     %eax, %cr0

    ljmp    $KERNEL_CS, $long_mode_entry

/*
### In 64-bit mode

The 32-bit code only ever set `ESP`, so the first instruction loads the
whole of `RSP` rather than trust its upper half. `kernel_main` never returns:
it powers the machine off.
*/
    .code64
long_mode_entry:
    mov     $boot_stack_top, %rsp
    xor     %ebp, %ebp                      // end of the frame-pointer chain
    call    kernel_main
1:  hlt                                     // not reached
    jmp     1b

/*
## The trap vectors

The *interrupt descriptor table* (IDT, set up by `idt_init` in `x86_64.c`)
gives each of the 256 vectors a handler address. Vectors 0..31 are the CPU's
exceptions, 0x20 (32) is this kernel's timer and 0xFF the APIC's spurious
vector; every other vector stays absent from the IDT, so one arriving is a
general-protection fault, which is reported like every exception.

When an interrupt or exception arrives in 64-bit mode, the CPU (APM vol. 2,
8.9.3 "Interrupt Stack Frame") aligns `RSP` down to 16 bytes, pushes `SS`,
`RSP`, `RFLAGS`, `CS`, `RIP` and, for some exceptions only, an error code, then
clears `RFLAGS.IF` (an *interrupt gate*) and jumps to the handler. Nothing
switches stacks: the kernel runs at privilege level 0 throughout, so the
handler runs on the interrupted thread's own stack, as on RISC-V and Arm. (That
is also why this kernel needs no task-state segment: the CPU reads the TSS only
to find a stack for a privilege change or for the interrupt-stack table.)

Each vector gets a stub that makes all frames look alike: it pushes a 0 where
the CPU pushed no error code, then its vector number, and jumps to
`trap_common`. The exceptions with an error code are 8, 10..14, 17, 21, 29 and
30 (APM vol. 2, 8.2 "Vectors", and the Intel SDM's table of exceptions).
*/
    .macro  TRAP vector
trap_stub_\vector:
    pushq   $0
    pushq   $\vector
    jmp     trap_common
    .endm

    .macro  TRAP_WITH_ERROR vector
trap_stub_\vector:
    pushq   $\vector
    jmp     trap_common
    .endm

    .text
    TRAP    0                       // #DE divide error
    TRAP    1                       // #DB debug
    TRAP    2                       // NMI
    TRAP    3                       // #BP breakpoint
    TRAP    4                       // #OF overflow
    TRAP    5                       // #BR bound range
    TRAP    6                       // #UD invalid opcode
    TRAP    7                       // #NM device not available
    TRAP_WITH_ERROR 8               // #DF double fault
    TRAP    9                       // (coprocessor segment overrun)
    TRAP_WITH_ERROR 10              // #TS invalid TSS
    TRAP_WITH_ERROR 11              // #NP segment not present
    TRAP_WITH_ERROR 12              // #SS stack fault
    TRAP_WITH_ERROR 13              // #GP general protection
    TRAP_WITH_ERROR 14              // #PF page fault
    TRAP    15                      // (reserved)
    TRAP    16                      // #MF x87 floating point
    TRAP_WITH_ERROR 17              // #AC alignment check
    TRAP    18                      // #MC machine check
    TRAP    19                      // #XF SIMD floating point
    TRAP    20                      // #VE virtualization exception
    TRAP_WITH_ERROR 21              // #CP control protection
    TRAP    22
    TRAP    23
    TRAP    24
    TRAP    25
    TRAP    26
    TRAP    27
    TRAP    28                      // #HV hypervisor injection
    TRAP_WITH_ERROR 29              // #VC VMM communication
    TRAP_WITH_ERROR 30              // #SX security
    TRAP    31
    TRAP    32                      // the local APIC timer (TIMER_VECTOR)

/*
`trap_stubs` lists the stubs' addresses by vector for `idt_init`.
*/
    .section .rodata
    .balign 8
    .globl  trap_stubs
trap_stubs:
    .irp    v, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16, \
               17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32

    .quad   trap_stub_\v
    .endr

/*
The common path pushes the fifteen general-purpose registers after the
vector number, which makes this *trap frame* on the thread's stack, 176 bytes
(`struct trap_frame` in `x86_64.c` spells it out):

+--------+---------+--------+---------+-------+------+----------+-------+------+
| offset | 0 ..    | 120    | 128     | 136   | 144  | 152      | 160   | 168  |
|        | 112     |        |         |       |      |          |       |      |
+========+=========+========+=========+=======+======+==========+=======+======+
| holds  | `r15`,  | vector | error   | `RIP` | `CS` | `RFLAGS` | `RSP` | `SS` |
|        | `r14`   |        | code    |       |      |          |       |      |
|        | ..      |        |         |       |      |          |       |      |
|        | `r8`,   |        |         |       |      |          |       |      |
|        | `rbp`,  |        |         |       |      |          |       |      |
|        | `rdi`,  |        |         |       |      |          |       |      |
|        | `rsi`,  |        |         |       |      |          |       |      |
|        | `rdx`,  |        |         |       |      |          |       |      |
|        | `rcx`,  |        |         |       |      |          |       |      |
|        | `rbx`,  |        |         |       |      |          |       |      |
|        | `rax`   |        |         |       |      |          |       |      |
+--------+---------+--------+---------+-------+------+----------+-------+------+

Counting from the CPU's 16-byte-aligned start, 5 words + 2 + 15 is 22 words,
an even number, so `RSP` is 16-byte aligned at the `call`, as the System V
ABI asks. `cld` gives C the direction flag it may assume (nothing in this
kernel sets it, but an interrupt does not clear it). Then `x86_trap(frame)`;
on its return, which may come much later after other threads have run, reload
everything, drop the vector and error code, and `iretq`: it pops `RIP`, `CS`,
`RFLAGS` (interrupts unmasked again if they were) and the stack.
*/
    .text
trap_common:
    push    %rax
    push    %rbx
    push    %rcx
    push    %rdx
    push    %rsi
    push    %rdi
    push    %rbp
    push    %r8
    push    %r9
    push    %r10
    push    %r11
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    cld
    mov     %rsp, %rdi
    call    x86_trap
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %r11
    pop     %r10
    pop     %r9
    pop     %r8
    pop     %rbp
    pop     %rdi
    pop     %rsi
    pop     %rdx
    pop     %rcx
    pop     %rbx
    pop     %rax
    add     $16, %rsp                       // the vector and the error code
    iretq

/*
The spurious vector needs nothing at all. The local APIC delivers it when an
interrupt it was about to deliver went away (the task priority rose, say) and
does not count it as in service, so its handler must *not* signal an end of
interrupt (Intel SDM vol. 3A, the local APIC's "Spurious Interrupt" section).
*/
    .globl  spurious_stub
spurious_stub:
    iretq

/*
## The context switch

`ctx_switch(void **old_sp, void *new_sp)`, as `guest.h` describes it. The
System V AMD64 ABI (3.2.1 "Registers") makes `rbx`, `rbp` and `r12`..`r15` the
callee-saved registers; the arguments arrive in `rdi` and `rsi`. Push the six,
park `rsp` in `*old_sp`, take up `new_sp`, pop the other thread's six and
`ret` into wherever it called `ctx_switch` from. The switch frame:

| offset | 0 | 8 | 16 | 24 | 32 | 40 | 48 |
|---|---|---|---|---|---|---|---|
| holds | `r15` | `r14` | `r13` | `r12` | `rbx` | `rbp` | return address |

`plat_thread_stack` in `x86_64.c` forges this frame for a new thread.
*/
    .globl  ctx_switch
ctx_switch:
    push    %rbp
    push    %rbx
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    mov     %rsp, (%rdi)

    mov     %rsi, %rsp
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %rbx
    pop     %rbp
    ret

/*
## The GDT

In 64-bit mode segmentation is almost gone: bases and limits are ignored for
`CS`, `DS`, `ES` and `SS` (APM vol. 2, 4.8 "Long-Mode Segment Descriptors").
What remains is that `CS` must name a *code* descriptor with `L` = 1. The
data registers get a flat data descriptor, which the 32-bit entry code needs
anyway before long mode is on. So the GDT holds three descriptors of 8 bytes:

+------------------+-----------------------+-----------------------------------+
| selector         | descriptor            | bits that matter                  |
+==================+=======================+===================================+
| 0x00             | null                  | (the CPU requires entry 0 to be   |
|                  |                       | unused)                           |
+------------------+-----------------------+-----------------------------------+
| 0x08 `KERNEL_CS` | 0x0020_9A00_0000_0000 | 53 `L` = 64-bit; 47 `P`; 46..45   |
|                  |                       | `DPL` = 0; 44 `S` = code/data;    |
|                  |                       | 43..40 type 0xA = execute/read    |
+------------------+-----------------------+-----------------------------------+
| 0x10 `KERNEL_DS` | 0x00CF_9200_0000_FFFF | base 0, limit 4 GiB (`G` = 1, bit |
|                  |                       | 55), 32-bit (`D/B`, bit 54); `P`; |
|                  |                       | `S`; type 0x2 = read/write        |
+------------------+-----------------------+-----------------------------------+

`gdt_pointer` is the 6-byte operand of the 32-bit `lgdt`: the limit
(size - 1), then the base.
*/
    .section .rodata
    .balign 8
gdt:
    .quad   0
    .quad   0x00209A0000000000
    .quad   0x00CF92000000FFFF
gdt_end:
gdt_pointer:
    .word   gdt_end - gdt - 1
    .long   gdt

/*
## The boot stack and the page tables

The boot stack, 16 KiB in `.bss`, is the stack of the `main` thread. The page
tables must be 4 KiB aligned; the linker script puts `.bss.pagetables` first
in a page-aligned `.bss`.
*/
    .section .bss.pagetables, "aw", @nobits
    .balign PAGE_SIZE
boot_pml4:
    .space  PAGE_SIZE
boot_pdpt:
    .space  PAGE_SIZE
boot_pd:
    .space  4 * PAGE_SIZE

    .section .bss.stack, "aw", @nobits
    .balign 16
boot_stack:
    .space  16 * 1024
    .globl  boot_stack_top
boot_stack_top:
