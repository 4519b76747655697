/* What common.c and fat.c need from "the machine", for the fuzzers and the
   replay: a silent console (the code under test prints on some errors), a
   power_off that must never be reached (nothing fuzzed calls panic), the
   barrier and the clock (unused: virtio.c is not fuzzed; virtio_stub.c
   stands in for it). */
#include <stdlib.h>

#include "fuzz.h"

u8 fuzz_ram[FUZZ_RAM_SIZE];

void console_putchar(int c)
{
    (void)c;
}

_Noreturn void power_off(bool success)
{
    (void)success;
    abort(); // a panic: the fuzzer reports it as a crash
}

void io_barrier(void)
{
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

u64 time_us(void)
{
    return 0;
}

/* The window starts 128 KiB below the address each machine's seed programs
   (tests/fuzz/fuzz.sh) are linked at, because a linker often starts the
   first segment a page or so early, with the ELF headers in it. For RISC-V
   and Arm that is where their guests live too; the x86-64 seeds are built
   by the host's gcc at 2 MiB, not at the guests' 1 MiB. */
u64 fuzz_ram_gpa(u16 machine)
{
    switch (machine) {
    case EM_RISCV: return 0x80200000 - 0x20000;
    case EM_AARCH64: return 0x40080000 - 0x20000;
    default: return 0x200000 - 0x20000; // x86-64, and anything else
    }
}
