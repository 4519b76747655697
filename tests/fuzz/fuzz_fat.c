/* Fuzz harness: the FAT reader, then the ELF loader on what it read.

   A FAT32 volume is at least 32 MiB, far too big for a fuzzer input, and
   almost all of it is zeros. So an input describes a *sparse disk*:

       bytes 0..3      the disk's size in 512-byte sectors (little-endian)
       then records    4 bytes: a sector number (little-endian)
                       512 bytes: that sector's contents
                       (a last, shorter record is zero-padded)

   Sectors no record names read as zeros; a sector named twice reads as its
   last record; a read past the size fails, as on a truncated image.
   tests/fuzz/mksparse.c turns an mtools image into this form.

   Each input is mounted, two paths are looked up (a long name two
   directories down, and /sbin/gkernel), gkernel is read whole, and the
   result is handed to elf_load, as load_guest_kernel does in the
   hypervisor. */
#include "fuzz.h"

struct sparse {
    const u8 *data;
    size_t size;
    u64 sectors;
};

#define RECORD (4 + SECTOR_SIZE)

static u32 le32(const u8 *p)
{
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

static int sparse_read(void *ctx, u64 sector, u32 count, void *buf)
{
    const struct sparse *d = ctx;
    u8 *out = buf;
    if (count == 0 || sector > d->sectors || count > d->sectors - sector)
        return -1;
    for (u32 i = 0; i < count; i++, out += SECTOR_SIZE) {
        memset(out, 0, SECTOR_SIZE);
        for (size_t r = 4; r + 4 < d->size; r += RECORD) {
            if (le32(d->data + r) != sector + i)
                continue;
            size_t n = d->size - (r + 4) < SECTOR_SIZE ? d->size - (r + 4) : SECTOR_SIZE;
            memset(out, 0, SECTOR_SIZE);
            memcpy(out, d->data + r + 4, n);
        }
    }
    return 0;
}

/* Big enough for every seed's gkernel; a file larger than this is refused
   by fat_read_file with a message, which is a path worth fuzzing too. */
static u8 file[128 * 1024];

int LLVMFuzzerTestOneInput(const u8 *data, size_t size)
{
    struct sparse d = {data, size, size >= 4 ? le32(data) : 0};
    struct fat_fs fs;
    u32 n;
    u64 entry;

    if (fat_mount(&fs, sparse_read, &d) != NULL)
        return 0;
    fat_stat(&fs, "/boot/A Rather Long Kernel Name.elf", &n);
    fat_stat(&fs, "/a/b/deep.txt", &n);
    if (fat_read_file(&fs, "/sbin/gkernel", file, sizeof(file), &n) != NULL)
        return 0;
    u16 machine = n >= 20 ? (u16)(file[18] | file[19] << 8) : EM_RISCV;
    elf_load(file, n, machine, fuzz_ram_gpa(machine), FUZZ_RAM_SIZE, fuzz_ram, &entry);
    return 0;
}
