/*
## x86-64: from Multiboot to long mode, and in and out of the guest

An x86 CPU wakes up as an 8086 and has to be walked, one mode at a time, to
the 64-bit *long mode* our C code is compiled for. Happily a loader does the
first half of the walk for us: QEMU's `-kernel` option understands the
*Multiboot* protocol ("Multiboot Specification", version 0.6.96), and hands
over in 32-bit protected mode. This file does the rest, then holds the
interrupt table of the hypervisor and the world switch of SVM.

### The Multiboot header

A Multiboot kernel carries a 12-byte header, 4-byte aligned, in the first
8 KiB of its file (Multiboot 0.6.96, 3.1.1 "The layout of Multiboot
header"):

| offset | field | value |
|---|---|---|
| 0 | `magic` | 0x1BAD_B002 |
| 4 | `flags` | bit 1: tell us how much memory there is |
| 8 | `checksum` | minus the other two, so that all three add up to 0 |

QEMU's loader refuses an ELF64 file, so the Makefile hands it a 32-bit ELF
copy of the hypervisor (`hvbook.elf32`, made by `objcopy`): same bytes, same
addresses, a header QEMU accepts. It loads the segments where the ELF says,
1 MiB and up, and jumps to the entry point `_start`.
*/
#define MULTIBOOT_HEADER_MAGIC 0x1BADB002
#define MULTIBOOT_HEADER_MEMINFO (1 << 1)

    .section .multiboot, "a"
    .align 4
    .long MULTIBOOT_HEADER_MAGIC
    .long MULTIBOOT_HEADER_MEMINFO
    .long -(MULTIBOOT_HEADER_MAGIC + MULTIBOOT_HEADER_MEMINFO)

/*
### The state we are handed

Multiboot 0.6.96, 3.2 "Machine state", promises:

+-----------------------------+------------------------------------------------+
| what                        | value                                          |
+=============================+================================================+
| `EAX`                       | 0x2BAD_B002: a Multiboot loader started us     |
+-----------------------------+------------------------------------------------+
| `EBX`                       | physical address of the *Multiboot             |
|                             | information*: memory size, command line        |
+-----------------------------+------------------------------------------------+
| `CS`, `DS`, `ES`, `SS`, ... | flat 4 GiB segments (base 0), 32-bit           |
+-----------------------------+------------------------------------------------+
| `CR0`                       | `PE` = 1 (protected mode), `PG` = 0 (no        |
|                             | paging)                                        |
+-----------------------------+------------------------------------------------+
| `EFLAGS`                    | `IF` = 0: interrupts off                       |
+-----------------------------+------------------------------------------------+
| `ESP`, `GDTR`, `IDTR`       | undefined: set them before use                 |
+-----------------------------+------------------------------------------------+

hvbook will start its own guest in exactly this state (see `vcpu_setup`), so
the guest kernel can be a Multiboot kernel too.

### Into long mode

Long mode needs paging, and paging needs page tables. AMD64 APM vol. 2, 14.6
"Enabling and Activating Long Mode" gives the order:

1. `CR4.PAE` = 1 (bit 5): long mode uses the PAE table format.
2. `CR3` = the physical address of the top table, the PML4.
3. `EFER.LME` = 1 (bit 8 of MSR 0xC000_0080): long mode *enabled*.
4. `CR0.PG` = 1 (bit 31): paging on, and with `LME` set the CPU makes long
   mode *active* (`EFER.LMA`). It still runs 32-bit code ("compatibility
   mode") until
5. a far jump loads `CS` with a 64-bit code segment (`L` = 1).

The page tables map the first 4 GiB one to one (virtual = physical), with
2 MiB pages: one PML4 entry, one PDPT with four entries (one per GiB), and
four page directories of 512 entries each. That covers our RAM, the local
APIC at 0xFEE0_0000, the flash window at 0xFFC0_0000 and the VirtIO slots at
0xFEB0_0000. An entry (APM vol. 2, 5.3.3 "4-Kbyte Page Translation" and
5.3.4 "2-Mbyte Page Translation"):

| bit | name | here | meaning |
|---|---|---|---|
| 0 | P | 1 | present |
| 1 | R/W | 1 | writable |
| 3 | PWT | 1 in the top GiB | write-through |
| 4 | PCD | 1 in the top GiB | cache disabled: the devices live there |
| 7 | PS | 1 in a PD entry | a 2 MiB page, not a pointer to a page table |
| 51..12 | address | | the next table, or the 2 MiB frame |

`CR0.WP` (bit 16) is set too: the hypervisor honours read-only pages itself.
The tables are built by the assembler at link time (`.rept` below), so no
code has to fill them.
*/
#define CR0_PE (1 << 0)
#define CR0_WP (1 << 16)
#define CR0_PG (1 << 31)
#define CR4_PAE (1 << 5)
#define MSR_EFER 0xC0000080
#define EFER_LME (1 << 8)

#define PTE_P 0x001
#define PTE_RW 0x002
#define PTE_PWT 0x008
#define PTE_PCD 0x010
#define PTE_PS 0x080

/*
### A GDT for long mode

In 64-bit mode segmentation is almost gone: bases and limits are ignored for
`CS`, `DS`, `ES` and `SS`. What remains is the `L` bit of the code segment,
which says "64-bit code" (APM vol. 2, 4.8 "Long-Mode Segment Descriptors").
Three descriptors do:

+----------+-----------------------+-------------------------------------------+
| selector | descriptor            | what                                      |
+==========+=======================+===========================================+
| 0x00     | 0                     | the mandatory null descriptor             |
+----------+-----------------------+-------------------------------------------+
| 0x08     | 0x00AF_9A00_0000_FFFF | code: present, ring 0, execute/read, `L`  |
|          |                       | = 1, `G` = 1                              |
+----------+-----------------------+-------------------------------------------+
| 0x10     | 0x00CF_9200_0000_FFFF | data: present, ring 0, read/write, 4 GiB  |
+----------+-----------------------+-------------------------------------------+
*/
#define GDT_CODE64 0x08
#define GDT_DATA 0x10

    .section .text.boot, "ax"
    .code32
    .global _start
_start:
    cli
    cld
    mov     %eax, %edi              // Multiboot magic: hv_main's first argument
    mov     %ebx, %esi              // Multiboot information: its second
    mov     $boot_stack_top, %esp

    mov     %cr4, %eax              // 1. PAE
    or      $CR4_PAE, %eax
    mov     %eax, %cr4
    mov     $pml4, %eax             // 2. the tables
    mov     %eax, %cr3
    mov     $MSR_EFER, %ecx         // 3. long mode enabled
    rdmsr
    or      $EFER_LME, %eax
    wrmsr
    mov     %cr0, %eax              // 4. paging on: long mode active
    or      $(CR0_PE | CR0_WP | CR0_PG), %eax
    mov     %eax, %cr0
    lgdt    gdt_ptr
    ljmp    $GDT_CODE64, $long_mode // 5. 64-bit code from here

    .code64
long_mode:
    mov     $GDT_DATA, %ax
    mov     %ax, %ds
    mov     %ax, %es
    mov     %ax, %ss
    mov     %ax, %fs
    mov     %ax, %gs
    mov     $boot_stack_top, %rsp
    mov     %edi, %r12d             // keep the two arguments: .bss is zeroed
    mov     %esi, %r13d
    lea     __bss_start(%rip), %rdi
    lea     __bss_end(%rip), %rcx
    sub     %rdi, %rcx
    xor     %eax, %eax
    rep stosb

/*
### The interrupt descriptor table

Every exception and interrupt goes through the IDT: 256 *gates* of 16 bytes
(APM vol. 2, 8.9 "Long-Mode Interrupt Control Transfers"), each holding the
address of a handler:

+-------------+-----------------------+----------------------------------------+
| bytes       | field                 | value                                  |
+=============+=======================+========================================+
| 0..1        | offset 15..0          | the stub's address                     |
+-------------+-----------------------+----------------------------------------+
| 2..3        | selector              | 0x08: our 64-bit code                  |
+-------------+-----------------------+----------------------------------------+
| 4           | IST                   | 0: stay on the current stack           |
+-------------+-----------------------+----------------------------------------+
| 5           | type and attributes   | 0x8E: present, ring 0, 64-bit          |
|             |                       | interrupt gate (IF is cleared on       |
|             |                       | entry)                                 |
+-------------+-----------------------+----------------------------------------+
| 6..7, 8..11 | offset 31..16, 63..32 | the rest of the address                |
+-------------+-----------------------+----------------------------------------+

The addresses are only known at link time, split in three pieces, so a loop
fills the table. Each vector has a 16-byte stub (below) that records its
number; then `hv_main` runs, with every fault in the hypervisor reported
instead of silently resetting the machine.
*/
#define IDT_GATE_INTERRUPT 0x8E00
#define ISR_STUB_SIZE 16

    lea     idt(%rip), %rdi
    lea     isr_stubs(%rip), %rsi
    mov     $256, %ecx
1:  mov     %rsi, %rax
    mov     %ax, (%rdi)
    movw    $GDT_CODE64, 2(%rdi)
    movw    $IDT_GATE_INTERRUPT, 4(%rdi)
    shr     $16, %rax
    mov     %ax, 6(%rdi)
    shr     $16, %rax
    mov     %eax, 8(%rdi)
    movl    $0, 12(%rdi)
    add     $16, %rdi
    add     $ISR_STUB_SIZE, %rsi
    loop    1b
    lidt    idt_ptr(%rip)

    mov     %r12d, %edi
    mov     %r13d, %esi
    call    hv_main
2:  cli                             // hv_main never returns; if it did, park
    hlt
    jmp     2b

/*
### The stubs and the common handler

Some exceptions push an error code, most do not (APM vol. 2, 8.2 "Vectors":
8, 10 to 14, 17, 21, 29 and 30 do). Each stub pushes a dummy 0 where the CPU
pushed none, then its vector number, so that every frame looks the same:

    higher addresses
      SS, RSP, RFLAGS, CS, RIP     pushed by the CPU
      error code                   by the CPU, or 0 by the stub
      vector                       by the stub
      RAX, RBX, ..., R15           by isr_common
    lower addresses  <- RSP: the struct trap_frame that hv_trap receives

`hv_trap` in `x86_64.c` either handles the interrupt (the hypervisor's own
timer) and returns, or reports a fault with all the registers and stops.
*/
    .text
    .align 16
isr_stubs:
    .set vec, 0
    .rept 256
    .align ISR_STUB_SIZE
    .if (vec == 8) || ((vec >= 10) && (vec <= 14)) || (vec == 17) || \
        (vec == 21) || (vec == 29) || (vec == 30)
    pushq   $vec
    .else
    pushq   $0
    pushq   $vec
    .endif
    jmp     isr_common
    .set vec, vec + 1
    .endr

isr_common:
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
    mov     %rsp, %rdi              // struct trap_frame *: 22 words, aligned
    cld
    call    hv_trap
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
    add     $16, %rsp               // vector and error code
    iretq

/*
### The world switch: `VMRUN`

On x86 with SVM, entering the guest is one instruction, `VMRUN`, given the
physical address of the guest's *VMCB* (virtual machine control block) in
`RAX` (APM vol. 2, 15.5 "VMRUN Instruction"). It saves part of the host's
state in the *host save area* (`VM_HSAVE_PA`), loads the guest's state from
the VMCB, and runs the guest until an intercepted event: a `#VMEXIT`, after
which the next host instruction runs with the host's state back.

"Part of the state" is the catch. The VMCB holds the guest's `RAX`, `RSP`,
`RIP`, `RFLAGS`, control registers and segment registers, but **not** the
other fourteen general registers, `RCX`, `RDX`, `RBX`, `RBP`, `RSI`, `RDI`
and `R8` to `R15`: they simply keep whatever
the guest left in them (APM vol. 2, 15.5.1 "Basic Operation"). So they are
ours to swap, using a `struct vcpu` (in `x86_64.c`) laid out like this:

+----------+-------------------------------------------------------------------+
| offset   | contents                                                          |
+==========+===================================================================+
| 0 .. 127 | the sixteen guest registers in the CPU's own numbering: `RAX`,    |
|          | `RCX`, `RDX`, `RBX`, `RSP`, `RBP`, `RSI`, `RDI`, `R8` .. `R15`, 8 |
|          | bytes each; the slots of `RAX` and `RSP` stay unused, since those |
|          | two live in the VMCB                                              |
+----------+-------------------------------------------------------------------+
| 128      | physical address of the guest's VMCB                              |
+----------+-------------------------------------------------------------------+
| 136      | physical address of a page for the host's `VMSAVE`                |
+----------+-------------------------------------------------------------------+

Another handful of registers is left alone by `VMRUN` as well: `FS`, `GS`,
`TR` and `LDTR` with their hidden parts, `KernelGSBase`, and the
`SYSCALL`/`SYSENTER` MSRs. `VMLOAD` and `VMSAVE` move exactly those between
the CPU and a VMCB-shaped page (APM vol. 2, 15.5.2 "VMSAVE and VMLOAD
Instructions"): we save the host's before loading the guest's, and the
other way round after the exit.

**Interrupts around `VMRUN`.** A timer interrupt must end the guest's turn,
so the host runs `VMRUN` with `RFLAGS.IF` = 1: with `V_INTR_MASKING` set in
the VMCB, the *host's* `IF` decides whether physical interrupts are taken
while the guest runs (15.21.1 "Virtual Interrupt Masking"), and they are
then intercepted, never delivered to the guest. But an interrupt arriving
*before* `VMRUN`, between `STI` and `VMRUN`, would be taken by the host and
the guest would miss its exit. SVM's *global interrupt flag* closes that
gap: `CLGI` holds every interrupt back, `VMRUN` sets `GIF` again atomically
as it enters the guest, and `#VMEXIT` clears it (15.17 "Global Interrupt
Flag, STGI and CLGI Instructions"). After the exit we clear `IF` before
`STGI`, so a pending interrupt waits for the C code to take it when it is
ready (see `take_host_interrupts` in `x86_64.c`).
*/
#define V_RCX 8
#define V_RDX 16
#define V_RBX 24
#define V_RBP 40
#define V_RSI 48
#define V_RDI 56
#define V_R(n) ((n) * 8)
#define V_VMCB 128
#define V_HOST_SAVE 136

    .global vcpu_enter
vcpu_enter:
    push    %rbp
    push    %rbx
    push    %r12
    push    %r13
    push    %r14
    push    %r15
    push    %rdi                    // the vcpu, to find it after the exit
    mov     V_HOST_SAVE(%rdi), %rax
    vmsave  %rax                    // the host's FS, GS, TR, LDTR, MSRs
    mov     V_VMCB(%rdi), %rax

    mov     V_RCX(%rdi), %rcx       // the guest's registers; RDI last
    mov     V_RDX(%rdi), %rdx
    mov     V_RBX(%rdi), %rbx
    mov     V_RBP(%rdi), %rbp
    mov     V_RSI(%rdi), %rsi
    mov     V_R(8)(%rdi), %r8
    mov     V_R(9)(%rdi), %r9
    mov     V_R(10)(%rdi), %r10
    mov     V_R(11)(%rdi), %r11
    mov     V_R(12)(%rdi), %r12
    mov     V_R(13)(%rdi), %r13
    mov     V_R(14)(%rdi), %r14
    mov     V_R(15)(%rdi), %r15
    mov     V_RDI(%rdi), %rdi

    clgi                            // no interrupt until the guest runs
    sti                             // host IF = 1: an interrupt ends its turn

    vmload  %rax                    // the guest's FS, GS, TR, LDTR, MSRs
    vmrun   %rax                    // ... the guest runs until a #VMEXIT ...
    vmsave  %rax
    cli                             // GIF = 0 after #VMEXIT; IF = 0 before STGI

    push    %rdi                    // the guest's RDI
    mov     8(%rsp), %rdi           // the vcpu
    mov     %rcx, V_RCX(%rdi)
    mov     %rdx, V_RDX(%rdi)
    mov     %rbx, V_RBX(%rdi)
    mov     %rbp, V_RBP(%rdi)
    mov     %rsi, V_RSI(%rdi)
    popq    V_RDI(%rdi)
    mov     %r8, V_R(8)(%rdi)
    mov     %r9, V_R(9)(%rdi)
    mov     %r10, V_R(10)(%rdi)
    mov     %r11, V_R(11)(%rdi)
    mov     %r12, V_R(12)(%rdi)
    mov     %r13, V_R(13)(%rdi)
    mov     %r14, V_R(14)(%rdi)
    mov     %r15, V_R(15)(%rdi)
    mov     V_HOST_SAVE(%rdi), %rax
    vmload  %rax                    // the host's FS, GS, TR, LDTR, MSRs again
    stgi

    add     $8, %rsp
    pop     %r15
    pop     %r14
    pop     %r13
    pop     %r12
    pop     %rbx
    pop     %rbp
    ret

/*
### The tables

The page tables, the GDT and the IDT's pointer are data; the stack and the
IDT itself are zeroed `.bss`. `.rept` with a running address builds the 2048
page-directory entries: the first three GiB as ordinary memory, the fourth
(0xC000_0000 and up, where the devices are) uncached.
*/
    .section .data
    .align 4096
pml4:
    .quad   pdpt + PTE_P + PTE_RW
    .fill   511, 8, 0
pdpt:
    .quad   pd + PTE_P + PTE_RW
    .quad   pd + 0x1000 + PTE_P + PTE_RW
    .quad   pd + 0x2000 + PTE_P + PTE_RW
    .quad   pd + 0x3000 + PTE_P + PTE_RW
    .fill   508, 8, 0
pd:
    .set addr, 0
    .rept 1536
    .quad   addr + PTE_P + PTE_RW + PTE_PS
    .set addr, addr + 0x200000
    .endr
    .rept 512
    .quad   addr + PTE_P + PTE_RW + PTE_PS + PTE_PWT + PTE_PCD
    .set addr, addr + 0x200000
    .endr

    .align 16
gdt:
    .quad   0
    .quad   0x00AF9A000000FFFF
    .quad   0x00CF92000000FFFF
gdt_end:
gdt_ptr:
    .word   gdt_end - gdt - 1
    .quad   gdt
idt_ptr:
    .word   256 * 16 - 1
    .quad   idt

    .section .bss
    .align 16
idt:
    .space  256 * 16
    .align 16
boot_stack:
    .space  16384
boot_stack_top:
