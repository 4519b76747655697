/* Fuzz harness: the ELF loader alone. The input is the file. It is loaded
   for the machine its own e_machine names (so that the fuzzer does not
   spend its time on that one field), into a small guest-RAM window at the
   address that machine's guests use. Whatever elf_load answers, it must
   not touch memory outside the input and the window. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
    u16 machine = size >= 20 ? (u16)(data[18] | data[19] << 8) : EM_RISCV;
    u64 entry;
    elf_load(data, size, machine, fuzz_ram_gpa(machine), FUZZ_RAM_SIZE, fuzz_ram, &entry);
    return 0;
}
