/*
# Reading a FAT file system

The hypervisor has to find its guest kernel, `/sbin/gkernel`, on a disk. The
disk is an image made on the host with `mformat` and `mcopy`, so it holds a
FAT file system: one of the oldest file systems still in everyday use, spoken
by every operating system, every camera and every firmware. FAT is also small
enough to read in one sitting, which is why it is here.

This file is a *read-only* FAT reader. It can mount a volume, look a path up
and read a whole file into memory; it cannot write, create or delete. FAT32 is
its first concern (that is what `run.sh` makes), but FAT16 and FAT12 cost only
a few lines more, so they are read too. Long file names are understood.

Everything here follows Microsoft's *FAT32 File System Specification, FAT:
General Overview of On-Disk Format*, version 1.03 of December 6, 2000 (often
called `fatgen103`). We cite it by the title of its sections, "Boot Sector and
BPB", "FAT Type Determination" and so on, which every copy shares.

## The layout of a volume

A FAT volume is a row of *sectors* cut into four regions, in this order:

```
sector 0                                                          TotSec - 1
+------------+------------+------------+------------+--------------------------+
| reserved   | FAT #1     | FAT #2     | root       | data region              |
| region     |            | (a copy)   | directory  |                          |
| boot sector|            |            | FAT12/16   | cluster 2 | cluster 3 ...|
| FSInfo ... |            |            | only       |                          |
+------------+------------+------------+------------+--------------------------+
 RsvdSecCnt    FATSz        FATSz        RootDir-      CountofClusters clusters
 sectors       sectors      sectors      Sectors       of SecPerClus sectors
```

* The **reserved region** starts with the *boot sector*, whose *BIOS
  Parameter Block* (BPB) describes everything else. FAT32 keeps a little more
  there (the FSInfo sector and a backup boot sector), which we do not need.
* The **FAT**, the *File Allocation Table* that gives the file system its
  name, is an array with one entry per cluster. A file's directory entry names
  its first cluster; the FAT entry of each cluster names the next one, and a
  special *end-of-chain* value ends the list. The FAT is stored `NumFATs`
  times (usually twice) so a damaged copy can be repaired.
* FAT12 and FAT16 have a **fixed root directory** of `RootEntCnt` entries
  right after the FATs. FAT32 dropped it: its root directory is an ordinary
  cluster chain starting at `RootClus`, so it can grow.
* The **data region** is cut into *clusters* of `SecPerClus` sectors. They
  are numbered from 2, because FAT entries 0 and 1 are reserved; that is why
  "cluster `n` starts at `data_start + (n - 2) * sectors per cluster`".

## The BIOS Parameter Block

Only these fields of the boot sector matter to a reader ("Boot Sector and
BPB"). All numbers on a FAT disk are little-endian.

| offset | size | name | what it says |
|---|---|---|---|
| 11 | 2 | `BPB_BytsPerSec` | bytes per sector: 512, 1024, 2048 or 4096 |
| 13 | 1 | `BPB_SecPerClus` | sectors per cluster: a power of two, 1 to 128 |
| 14 | 2 | `BPB_RsvdSecCnt` | sectors in the reserved region, never 0 |
| 16 | 1 | `BPB_NumFATs` | copies of the FAT, usually 2 |
| 17 | 2 | `BPB_RootEntCnt` | FAT12/16: entries in the fixed root; FAT32: 0 |
| 19 | 2 | `BPB_TotSec16` | sectors in the volume, or 0 if over 16 bits |
| 22 | 2 | `BPB_FATSz16` | sectors in one FAT (FAT12/16); 0 on FAT32 |
| 32 | 4 | `BPB_TotSec32` | sectors in the volume, when `BPB_TotSec16` is 0 |
| 36 | 4 | `BPB_FATSz32` | FAT32 only: sectors in one FAT |
| 40 | 2 | `BPB_ExtFlags` | FAT32 only: bit 7 = one FAT live, bits 0-3: which |
| 42 | 2 | `BPB_FSVer` | FAT32 only: version, must be 0.0 |
| 44 | 4 | `BPB_RootClus` | FAT32 only: first cluster of the root directory |
| 510 | 2 | signature | bytes `0x55 0xAA` |

## Two kinds of sector

The block reader (see `common.h`) always speaks in 512-byte *device sectors*,
as VirtIO does. FAT has its own sector size, `BPB_BytsPerSec`, which may be
larger: a volume formatted for 4 KiB sectors counts everything in 4 KiB units.
`fat_mount` converts every FAT sector count into device sectors once, so that
the rest of this file only ever deals in 512-byte sectors. Every sector number
stored in `struct fat_fs` (`total_sectors`, `fat_start`, `fat_sectors`,
`root_start`, `data_start`) is therefore a 512-byte device sector; only
`bytes_per_sector` keeps the volume's own unit, for the record.

## Distrust

The disk image is input, and anyone can edit it. A reader that believes what
it reads can be made to loop forever (a cluster chain that points back at
itself) or to read outside its buffers (a cluster number larger than the
volume). So every number taken from the disk is checked before it is used, and
every problem becomes a sentence the student can act on. There is no `malloc`
here and no recursion: two static buffers and a few hundred bytes of stack are
all this file uses.
*/
#include "common.h"

/*
## Names for the numbers

The boot sector offsets from the table above, and the values a FAT entry can
hold ("FAT Data Structure"). Entries 0 and 1 are reserved, so a valid next
cluster is at least 2. The top of the range is reserved too: one value marks a
*bad cluster* (a damaged spot on the medium that must never be used), and any
value from `EOC` up marks the *end of a chain*. FAT32 entries are 32 bits wide
but only the low 28 are the cluster number; the top 4 are reserved and must be
masked off when reading.
*/
#define BPB_BYTS_PER_SEC 11
#define BPB_SEC_PER_CLUS 13
#define BPB_RSVD_SEC_CNT 14
#define BPB_NUM_FATS 16
#define BPB_ROOT_ENT_CNT 17
#define BPB_TOT_SEC16 19
#define BPB_FAT_SZ16 22
#define BPB_TOT_SEC32 32
#define BPB_FAT_SZ32 36
#define BPB_EXT_FLAGS 40
#define BPB_FS_VER 42
#define BPB_ROOT_CLUS 44
#define BOOT_SIGNATURE 510

#define EXT_FLAGS_ONE_FAT 0x80   /* bit 7: the FATs are not mirrored */
#define EXT_FLAGS_ACTIVE 0x0f    /* bits 0-3: which FAT is the live one */

#define FAT32_MASK 0x0FFFFFFFu
#define FAT12_EOC 0xFF8u
#define FAT16_EOC 0xFFF8u
#define FAT32_EOC 0x0FFFFFF8u

/* The largest cluster this reader accepts. The specification allows no more
   ("Boot Sector and BPB": a cluster larger than 32K "should never be used"),
   and it is the size of our one cluster buffer. */
#define MAX_CLUSTER_BYTES (32 * 1024)

/*
Two buffers hold everything this file reads. `cluster_buf` receives one
cluster at a time, or one 32 KiB slice of the FAT16 root directory, or the boot
sector. `fat_cache` holds one 512-byte sector of the FAT: following a chain
reads entry after entry from the same sector, so remembering the last one saves
almost every FAT read. The cache is tagged with the volume it came from and is
forgotten at every mount, so two volumes never see each other's FAT.
*/
static u8 cluster_buf[MAX_CLUSTER_BYTES];
static u8 fat_cache[SECTOR_SIZE];
static const struct fat_fs *fat_cache_fs;
static u64 fat_cache_sector;

/*
Numbers on the disk are little-endian and need not be aligned (the 16-bit
`BPB_BytsPerSec` sits at the odd offset 11). Reading them a byte at a time is
correct on every architecture in this book, whatever the endianness, and never
makes an unaligned access, which would fault on AArch64 with the MMU off.
*/
static u16 le16(const u8 *p)
{
    return (u16)(p[0] | p[1] << 8);
}

static u32 le32(const u8 *p)
{
    return (u32)p[0] | (u32)p[1] << 8 | (u32)p[2] << 16 | (u32)p[3] << 24;
}

/*
## Saying what went wrong

Every function here returns `NULL` on success or a sentence on failure, and
the sentence should name the file, the cluster, the number that was wrong.
Without `snprintf`, we keep a tiny formatter that knows just what our messages
need: `%s`, `%.*s` (a string of given length, for one component of a path),
`%u` for a `u32` and `%lu` for a `u64`. The message lives in a static buffer,
valid until the next error; a long path is cut short rather than overflow it.
The `format` attribute lets the compiler check each call as if it were
`printf`.
*/
static char fat_message[256];

static void msg_put(size_t *n, char c)
{
    if (*n < sizeof(fat_message) - 1)
        fat_message[(*n)++] = c;
}

static void msg_put_number(size_t *n, u64 v)
{
    char digits[20];
    int i = 0;
    do {
        digits[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        msg_put(n, digits[--i]);
}

static const char *fat_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
static const char *fat_error(const char *fmt, ...)
{
    va_list ap;
    size_t n = 0;

    va_start(ap, fmt);
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            msg_put(&n, *f);
        } else if (f[1] == 's') {
            for (const char *s = va_arg(ap, const char *); *s; s++)
                msg_put(&n, *s);
            f++;
        } else if (f[1] == '.' && f[2] == '*' && f[3] == 's') {
            int len = va_arg(ap, int);
            const char *s = va_arg(ap, const char *);
            for (int i = 0; i < len; i++)
                msg_put(&n, s[i]);
            f += 3;
        } else if (f[1] == 'u') {
            msg_put_number(&n, va_arg(ap, unsigned int));
            f++;
        } else if (f[1] == 'l' && f[2] == 'u') {
            msg_put_number(&n, va_arg(ap, unsigned long));
            f += 2;
        } else {
            msg_put(&n, '%');   // not a conversion we know: print it as is
        }
    }
    va_end(ap);
    fat_message[n] = '\0';
    return fat_message;
}

/*
## Reading sectors

All disk reads go through `read_sectors`. Before calling the block reader it
checks that the whole request lies inside the volume. Everything that leads to
a read has been validated already (the layout at mount, every cluster number
against `cluster_count`), so this check should never fire; it is the last line
of defence, and it costs one comparison.
*/
static const char *read_sectors(const struct fat_fs *fs, u64 sector, u32 count,
                                void *buf)
{
    if (sector >= fs->total_sectors || count > fs->total_sectors - sector)
        return fat_error(
            "FAT: refusing to read sectors %lu..%lu, beyond the end of the "
            "volume (%lu sectors)",
            sector, sector + count - 1, fs->total_sectors);
    if (fs->read(fs->ctx, sector, count, buf) != 0)
        return fat_error(
            "FAT: the disk could not read %u sector(s) at sector %lu", count,
            sector);
    return NULL;
}

/*
## Mounting: believing the boot sector, carefully

`fat_mount` reads sector 0 and turns its BPB into the fields of `struct
fat_fs`. It checks each field before it uses it, in the order the
specification describes them, and then derives the layout:

```
RootDirSectors  = ceil(RootEntCnt * 32 / BytsPerSec)      (0 on FAT32)
FirstDataSector = RsvdSecCnt + NumFATs * FATSz + RootDirSectors
CountofClusters = (TotSec - FirstDataSector) / SecPerClus
```

**Which FAT is it?** "FAT Type Determination" is blunt: the type depends on
the count of clusters and on nothing else. Not the `"FAT32   "` label at
offset 82, not the size of the disk:

| `CountofClusters` | type |
|---|---|
| < 4085 | FAT12 |
| 4085 .. 65524 | FAT16 |
| >= 65525 | FAT32 |

That is why a FAT32 volume must be at least about 32 MiB with 512-byte
clusters. A boot sector whose fields say FAT32 (no fixed root, `FATSz16` zero)
but whose cluster count says FAT16 is contradicting itself, and we refuse it
rather than guess.

**Is the FAT big enough?** Each cluster needs an entry, so one FAT must hold
at least `CountofClusters + 2` entries of 12, 16 or 32 bits. A smaller FAT
would send us reading past it.

**Is the disk big enough?** The block reader cannot tell us the size of the
disk, but it can fail. So, as a last step, we read the volume's last sector:
if that fails, the image was cut short, and it is kinder to say so now than
when a file happens to lie at the end.

When the FATs are mirrored (the usual case) we read the first copy. A FAT32
volume may instead say in `BPB_ExtFlags` that only one copy is live; then we
read that one, because the others may be stale.
*/
const char *fat_mount(struct fat_fs *fs, block_read_fn read, void *ctx)
{
    struct fat_fs v;
    const u8 *b = cluster_buf;
    const char *err;

    memset(fs, 0, sizeof(*fs));   // a failed mount leaves nothing usable behind
    memset(&v, 0, sizeof(v));
    v.read = read;
    v.ctx = ctx;
    v.total_sectors = 1;          // enough to read the boot sector
    fat_cache_fs = NULL;          // a new volume: forget the old FAT sector

    if (read_sectors(&v, 0, 1, cluster_buf) != NULL)
        return "FAT: the disk could not read its first sector "
               "(the boot sector)";
    if (b[BOOT_SIGNATURE] != 0x55 || b[BOOT_SIGNATURE + 1] != 0xAA)
        return "FAT: sector 0 does not end with the boot signature 0x55 0xAA, "
               "so it is not a FAT boot sector "
               "(is the disk empty or partitioned?)";

    u32 bps = le16(b + BPB_BYTS_PER_SEC);
    if (bps != 512 && bps != 1024 && bps != 2048 && bps != 4096)
        return fat_error(
            "FAT: bytes per sector is %u; FAT allows only 512, 1024, 2048 "
            "or 4096",
            bps);
    u32 spc = b[BPB_SEC_PER_CLUS];
    if (spc == 0 || (spc & (spc - 1)) != 0)
        return fat_error(
            "FAT: sectors per cluster is %u; it must be a power of two "
            "from 1 to 128",
            spc);
    if (bps * spc > MAX_CLUSTER_BYTES)
        return fat_error(
            "FAT: clusters of %u bytes are larger than 32 KiB, which the "
            "specification forbids and this reader cannot buffer",
            bps * spc);
    u32 reserved = le16(b + BPB_RSVD_SEC_CNT);
    if (reserved == 0)
        return "FAT: the reserved sector count is 0, but the boot sector "
               "itself is reserved, so it must be at least 1";
    u32 nfats = b[BPB_NUM_FATS];
    if (nfats == 0)
        return "FAT: the number of FATs is 0; a volume needs at least one FAT";

    u32 root_entries = le16(b + BPB_ROOT_ENT_CNT);
    u32 fat_size16 = le16(b + BPB_FAT_SZ16);
    u64 fat_size = fat_size16 ? fat_size16 : le32(b + BPB_FAT_SZ32);
    u64 total = le16(b + BPB_TOT_SEC16) ? le16(b + BPB_TOT_SEC16)
                                        : le32(b + BPB_TOT_SEC32);
    if (fat_size == 0)
        return "FAT: the FAT size is 0 sectors in both BPB_FATSz16 and "
               "BPB_FATSz32";
    if (total == 0)
        return "FAT: the total sector count is 0 in both BPB_TotSec16 and "
               "BPB_TotSec32";

    u64 root_sectors = ((u64)root_entries * 32 + bps - 1) / bps;
    u64 first_data = reserved + nfats * fat_size + root_sectors;
    if (first_data >= total)
        return fat_error(
            "FAT: the reserved sectors, %u FAT(s) of %lu sectors and the "
            "root directory take %lu sectors, but the volume has only %lu",
            nfats, fat_size, first_data, total);
    u64 clusters = (total - first_data) / spc;
    if (clusters == 0)
        return "FAT: the volume has no room for even one cluster of data";

    u32 type = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
    if (type == 32 && (fat_size16 != 0 || root_entries != 0))
        return fat_error(
            "FAT: the volume has %lu clusters, which makes it FAT32, but its "
            "boot sector has FAT12/16 fields (BPB_FATSz16 %u, BPB_RootEntCnt "
            "%u)",
            clusters, fat_size16, root_entries);
    if (type != 32 && (fat_size16 == 0 || root_entries == 0))
        return fat_error(
            "FAT: the boot sector looks like FAT32 (no BPB_FATSz16 or no fixed "
            "root directory), but the volume has only %lu clusters, which "
            "makes it FAT%u by the specification",
            clusters, type);
    // Keep clear of the marker values at the top of the FAT32 range.
    if (type == 32 && clusters > FAT32_MASK - 10)
        return fat_error("FAT: %lu clusters are more than FAT32 can number",
                         clusters);

    u64 fat_bytes_needed = ((clusters + 2) * type + 7) / 8;
    if (fat_size * bps < fat_bytes_needed)
        return fat_error(
            "FAT: one FAT of %lu sectors is too small for %lu clusters "
            "(FAT%u needs %lu bytes)",
            fat_size, clusters, type, fat_bytes_needed);

    u32 active = 0;
    if (type == 32) {
        u32 flags = le16(b + BPB_EXT_FLAGS);
        if (le16(b + BPB_FS_VER) != 0)
            return fat_error(
                "FAT: FAT32 version %u.%u is newer than 0.0, the only one "
                "this reader knows",
                (u32)b[BPB_FS_VER + 1], (u32)b[BPB_FS_VER]);
        if (flags & EXT_FLAGS_ONE_FAT)
            active = flags & EXT_FLAGS_ACTIVE;
        if (active >= nfats)
            return fat_error(
                "FAT: BPB_ExtFlags names FAT #%u as the live one, but the "
                "volume has only %u FAT(s)",
                active, nfats);
        v.root_cluster = le32(b + BPB_ROOT_CLUS);
        if (v.root_cluster < 2 || v.root_cluster > clusters + 1)
            return fat_error(
                "FAT: the root directory starts at cluster %u, outside the "
                "volume (clusters are 2..%lu)",
                v.root_cluster, clusters + 1);
    }

    // Every count in device sectors from here on; see "Two kinds of sector".
    u32 ratio = bps / SECTOR_SIZE;
    if (fat_size * ratio > 0xFFFFFFFFu)
        return fat_error("FAT: one FAT of %lu sectors is impossibly large",
                         fat_size);
    v.bytes_per_sector = bps;
    v.cluster_bytes = bps * spc;
    v.fat_type = type;
    v.fat_start = (reserved + active * fat_size) * ratio;
    v.fat_sectors = (u32)(fat_size * ratio);
    v.root_start = (reserved + nfats * fat_size) * ratio;
    v.root_entries = type == 32 ? 0 : root_entries;
    v.data_start = first_data * ratio;
    v.cluster_count = (u32)clusters;
    v.total_sectors = total * ratio;

    if ((err = read_sectors(&v, v.total_sectors - 1, 1, cluster_buf)) != NULL)
        return fat_error(
            "FAT: the volume should have %lu sectors, but its last sector "
            "cannot be read: is the disk image truncated?",
            v.total_sectors);
    *fs = v;
    return NULL;
}

/*
## Reading one FAT entry

Where is the entry of cluster `n`? At byte `n * 4` of the FAT on FAT32 and
`n * 2` on FAT16. FAT12 packs two 12-bit entries into three bytes, so entry
`n` starts at byte `n + n / 2`:

```
byte:      0        1        2
        +--------+--------+--------+
        |  n0 lo | n1 lo  | n1 hi  |       n0 = byte0 | (byte1 & 0x0f) << 8
        |  8 bits| n0 hi  | 8 bits |       n1 = byte1 >> 4 | byte2 << 4
        +--------+--------+--------+
```

So an even entry is the low 12 bits of the 16-bit word at that offset and an
odd entry the high 12. A FAT12 entry can straddle two sectors ("FAT Data
Structure" warns about exactly this), which is why `fat_byte` reads the FAT a
byte at a time through the one-sector cache: the straddle then needs no
special case at all.

The caller guarantees `2 <= n <= cluster_count + 1`, and `fat_mount` checked
that the FAT has an entry for every such `n`, so these reads stay inside the
FAT.
*/
static const char *fat_byte(const struct fat_fs *fs, u64 offset, u8 *out)
{
    u64 sector = fs->fat_start + offset / SECTOR_SIZE;
    if (fat_cache_fs != fs || fat_cache_sector != sector) {
        fat_cache_fs = NULL;    // the buffer is about to change
        const char *err = read_sectors(fs, sector, 1, fat_cache);
        if (err)
            return err;
        fat_cache_fs = fs;
        fat_cache_sector = sector;
    }
    *out = fat_cache[offset % SECTOR_SIZE];
    return NULL;
}

static const char *fat_entry(const struct fat_fs *fs, u32 n, u32 *value)
{
    u8 b[4] = {0, 0, 0, 0};
    u64 offset = fs->fat_type == 32   ? (u64)n * 4
                 : fs->fat_type == 16 ? (u64)n * 2
                                      : n + n / 2;
    u32 width = fs->fat_type == 32 ? 4 : 2;
    const char *err;

    for (u32 i = 0; i < width; i++)
        if ((err = fat_byte(fs, offset + i, &b[i])) != NULL)
            return err;
    *value = le32(b);
    if (fs->fat_type == 32)
        *value &= FAT32_MASK;
    else if (fs->fat_type == 12)
        *value = (n & 1) ? *value >> 4 : *value & 0xFFF;
    return NULL;
}

/*
## Following a cluster chain

A chain is a linked list stored on disk, and a hostile disk can link it into a
circle. Counting steps against `cluster_count` would stop a circle eventually,
but on a large volume "eventually" is hundreds of millions of FAT reads. We
use Brent's cycle detection instead (R. P. Brent, "An improved Monte Carlo
factorization algorithm", BIT 20, 1980), which needs two extra variables:

* remember one cluster, the `mark`;
* walk on, and if we ever meet `mark` again, the chain is a circle;
* after 1, 2, 4, 8 ... steps, move `mark` to where we are now.

Once the walk is inside the circle and the step budget has grown past the
circle's length, the next `mark` is met again within one trip around. So a
circle is found after at most a few times as many steps as the chain is long,
and an honest chain, whose clusters are all different, is never accused.

`chain_next` moves one step. Besides circles it rejects, with the cluster it
came from, an entry that points to a free cluster (0), to the reserved value
1, to a cluster marked bad, or past the last cluster of the volume. An
end-of-chain value sets `*end`.
*/
struct chain {
    const char *what;   // the path we are reading, for messages
    u32 cluster;        // where we are
    u32 mark;           // Brent's remembered cluster
    u64 steps, budget;  // steps since the mark moved; when it moves next
    u64 length;         // clusters in the chain so far
};

static const char *chain_start(const struct fat_fs *fs, struct chain *ch,
                               const char *what, u32 first)
{
    if (first < 2 || first > fs->cluster_count + 1)
        return fat_error(
            "FAT: %s starts at cluster %u, outside the volume (clusters are "
            "2..%u)",
            what, first, fs->cluster_count + 1);
    ch->what = what;
    ch->cluster = ch->mark = first;
    ch->steps = 0;
    ch->budget = 1;
    ch->length = 1;
    return NULL;
}

static const char *chain_next(const struct fat_fs *fs, struct chain *ch,
                              bool *end)
{
    u32 eoc = fs->fat_type == 32   ? FAT32_EOC
              : fs->fat_type == 16 ? FAT16_EOC
                                   : FAT12_EOC;
    u32 next;
    const char *err = fat_entry(fs, ch->cluster, &next);

    *end = false;
    if (err)
        return err;
    if (next >= eoc) {
        *end = true;
        return NULL;
    }
    if (next == eoc - 1)
        return fat_error(
            "FAT: the cluster chain of %s runs into a cluster marked bad "
            "(after cluster %u)",
            ch->what, ch->cluster);
    if (next < 2)
        return fat_error(
            "FAT: the cluster chain of %s is broken: cluster %u is followed "
            "by FAT entry value %u, a free or reserved cluster",
            ch->what, ch->cluster, next);
    if (next > fs->cluster_count + 1)
        return fat_error(
            "FAT: the cluster chain of %s points outside the volume: "
            "cluster %u is followed by %u, but the last cluster is %u",
            ch->what, ch->cluster, next, fs->cluster_count + 1);
    if (next == ch->mark)
        return fat_error(
            "FAT: the cluster chain of %s loops back on itself (cluster %u)",
            ch->what, next);
    if (++ch->steps == ch->budget) { // Brent: move the mark, double the budget
        ch->mark = next;
        ch->steps = 0;
        ch->budget *= 2;
    }
    ch->cluster = next;
    ch->length++;
    return NULL;
}

/* The first device sector of cluster `n` (valid `n` only). */
static u64 cluster_sector(const struct fat_fs *fs, u32 n)
{
    return fs->data_start + (u64)(n - 2) * (fs->cluster_bytes / SECTOR_SIZE);
}

/*
## Directory entries

A directory is a file made of 32-byte entries ("FAT Directory Structure"):

| offset | size | field |
|---|---|---|
| 0 | 11 | `DIR_Name`: 8 characters of name, 3 of extension, space-padded |
| 11 | 1 | `DIR_Attr`: attribute bits, below |
| 20 | 2 | `DIR_FstClusHI`: high 16 bits of the first cluster (FAT32 only) |
| 26 | 2 | `DIR_FstClusLO`: low 16 bits of the first cluster |
| 28 | 4 | `DIR_FileSize`: size in bytes (0 for a directory) |

The attribute bits are 0x01 read-only, 0x02 hidden, 0x04 system, 0x08
volume label, 0x10 directory and 0x20 archive.

The first byte of the name doubles as a status: `0xE5` means the entry was
deleted, `0x00` means it and every entry after it are free (the directory ends
here), and `0x05` stands for a real `0xE5` in the name, a Kanji lead byte that
would otherwise look deleted. Every directory but the root starts with `.` and
`..`, ordinary entries with those names; `..` with cluster 0 means "the root".

**Long file names** hide in the same array. An entry whose attribute is
`0x0F` (read-only, hidden, system and volume label at once, a combination no
old system would use for a file) holds 13 UCS-2 characters of a long name
("FAT Long Directory Entries"):

| offset | size | field |
|---|---|---|
| 0 | 1 | `LDIR_Ord`: sequence number 1..20, or-ed with 0x40 on the last piece |
| 1 | 10 | `LDIR_Name1`: characters 1-5 |
| 11 | 1 | `LDIR_Attr`: 0x0F |
| 13 | 1 | `LDIR_Chksum`: checksum of the short name this belongs to |
| 14 | 12 | `LDIR_Name2`: characters 6-11 |
| 28 | 4 | `LDIR_Name3`: characters 12-13 |

The pieces come *before* the short entry they belong to, last piece first:
for "A Rather Long Kernel Name.elf" (29 characters, three pieces) the
directory holds `0x43`, `0x02`, `0x01`, then the short entry `ARATHE~1ELF`. A
name that does not fill its last piece ends with a 0x0000 character and is
padded with 0xFFFF. Every piece carries the checksum of the short name, so a
system that knows nothing of long names and renames or deletes the short entry
leaves behind pieces whose checksum no longer matches: *orphans*, which must
be ignored. That is the point of the checksum.
*/
#define DIR_ENTRY_SIZE 32
#define DIR_NAME 0
#define DIR_ATTR 11
#define DIR_FST_CLUS_HI 20
#define DIR_FST_CLUS_LO 26
#define DIR_FILE_SIZE 28

#define ATTR_VOLUME_ID 0x08
#define ATTR_DIRECTORY 0x10
#define ATTR_LONG_NAME 0x0F
#define ATTR_LONG_NAME_MASK 0x3F

#define ENTRY_END 0x00
#define ENTRY_DELETED 0xE5
#define ENTRY_KANJI_E5 0x05

#define LDIR_CHKSUM 13
#define LAST_LONG_ENTRY 0x40
#define LFN_MAX_PIECES 20   // 20 * 13 = 260 >= 255, the longest long name
#define LFN_CHARS 13

/* Where the 13 characters of a piece sit inside its 32 bytes. */
static const u8 lfn_char_offset[LFN_CHARS] = {1,  3,  5,  7,  9,  14, 16,
                                              18, 20, 22, 24, 28, 30};

/*
The checksum is the one from "FAT Long Directory Entries": rotate the sum
right by one bit, add the next byte of the 11-byte short name.
*/
static u8 short_name_checksum(const u8 *name)
{
    u8 sum = 0;
    for (int i = 0; i < 11; i++)
        sum = (u8)(((sum & 1) << 7) + (sum >> 1) + name[i]);
    return sum;
}

/*
`struct long_name` collects the pieces of a long name while the directory is
scanned. `next` is the sequence number we expect next: each piece must carry
exactly that number and the same checksum as the first, otherwise the name is
broken and we forget it. When `next` reaches 0 the name is complete, and it
belongs to the short entry that follows, if that entry's checksum agrees.
*/
struct long_name {
    u16 chars[LFN_MAX_PIECES * LFN_CHARS];
    u32 pieces;     // how many pieces the name has; 0 = no name in progress
    u32 next;       // the sequence number of the piece we expect next
    u8 checksum;
};

static void long_name_add(struct long_name *ln, const u8 *e)
{
    u32 seq = e[0] & ~LAST_LONG_ENTRY;

    if (e[0] & LAST_LONG_ENTRY) { // the first piece we meet starts a name
        ln->pieces = seq;
        ln->next = seq;
        ln->checksum = e[LDIR_CHKSUM];
    }
    if (seq < 1 || seq > LFN_MAX_PIECES || ln->pieces == 0 || seq != ln->next ||
        e[LDIR_CHKSUM] != ln->checksum) {
        ln->pieces = 0;                     // an orphan or a broken sequence
        return;
    }
    for (int i = 0; i < LFN_CHARS; i++)
        ln->chars[(seq - 1) * LFN_CHARS + i] = le16(e + lfn_char_offset[i]);
    ln->next = seq - 1;
}

/*
## Matching a name

"Name Matching In Short & Long Names" says a file can be found by either of
its names, and that matching ignores case. Our paths are ASCII, so both
comparisons fold `a`..`z` to upper case; a long name with a character beyond
ASCII simply does not match (full Unicode case folding is an exercise for the
reader).

The short name is rebuilt the way a user types it: `KERNEL  ELF` becomes
`KERNEL.ELF`, `GKERNEL    ` becomes `GKERNEL`, and `.` and `..` come out as
themselves. A name like `readme.txt`, all in lower case but otherwise a valid
8.3 name, usually gets no long name at all: Windows NT (and mtools) store it
as `README  TXT` and set two bits in byte 12 of the entry meaning "show the
name, or the extension, in lower case". Since we ignore case anyway, we can
ignore those bits too.
*/
static char upper(char c)
{
    return c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
}

static bool match_long(const struct long_name *ln, const u8 *short_entry,
                       const char *name, size_t len)
{
    if (ln->pieces == 0 || ln->next != 0 ||
        ln->checksum != short_name_checksum(short_entry))
        return false;
    size_t n = 0, max = ln->pieces * LFN_CHARS;
    while (n < max && ln->chars[n] != 0)
        n++;
    if (n != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (ln->chars[i] >= 0x80 || upper((char)ln->chars[i]) != upper(name[i]))
            return false;
    return true;
}

static bool match_short(const u8 *e, const char *name, size_t len)
{
    char s[12];
    size_t n = 0;
    int base = 8, ext = 3;

    while (base > 0 && e[base - 1] == ' ')
        base--;
    while (ext > 0 && e[8 + ext - 1] == ' ')
        ext--;
    for (int i = 0; i < base; i++)
        s[n++] = (char)(i == 0 && e[0] == ENTRY_KANJI_E5 ? 0xE5 : e[i]);
    if (ext > 0)
        s[n++] = '.';
    for (int i = 0; i < ext; i++)
        s[n++] = (char)e[8 + i];
    if (n != len)
        return false;
    for (size_t i = 0; i < len; i++)
        if (upper(s[i]) != upper(name[i]))
            return false;
    return true;
}

/*
## Searching a directory

`scan_entries` looks through `count` entries in memory for `name` and keeps
the long name state in `ln`, so that a long name split across two clusters is
still put together. It answers "found", "the directory ends here" or "keep
going". What we need of an entry we keep in a `struct entry`: we must copy it
out, because the buffer it came from is reused for the next cluster.
*/
struct entry {
    u8 attr;
    u32 cluster;
    u32 size;
};

enum scan { SCAN_MORE, SCAN_FOUND, SCAN_END };

static enum scan scan_entries(const struct fat_fs *fs, const u8 *p, u32 count,
                              struct long_name *ln, const char *name,
                              size_t len, struct entry *out)
{
    for (u32 i = 0; i < count; i++, p += DIR_ENTRY_SIZE) {
        if (p[DIR_NAME] == ENTRY_END)
            return SCAN_END;
        if (p[DIR_NAME] == ENTRY_DELETED) {
            ln->pieces = 0;
            continue;
        }
        if ((p[DIR_ATTR] & ATTR_LONG_NAME_MASK) == ATTR_LONG_NAME) {
            long_name_add(ln, p);
            continue;
        }
        bool found =
            !(p[DIR_ATTR] & ATTR_VOLUME_ID) &&
            (match_long(ln, p, name, len) || match_short(p, name, len));
        ln->pieces = 0; // a long name belongs to the very next short entry only
        if (found) {
            out->attr = p[DIR_ATTR];
            out->cluster = le16(p + DIR_FST_CLUS_LO);
            if (fs->fat_type == 32)
                out->cluster |= (u32)le16(p + DIR_FST_CLUS_HI) << 16;
            out->size = le32(p + DIR_FILE_SIZE);
            return SCAN_FOUND;
        }
    }
    return SCAN_MORE;
}

/*
`dir_find` feeds a whole directory through `scan_entries`. There are two
kinds of directory. The FAT12/16 root is a fixed run of sectors after the
FATs, which we read 32 KiB at a time; we give it the number 0, the cluster
number `..` uses for the root. Every other directory, and the FAT32 root, is
a cluster chain, read one cluster at a time, with all the care of
`chain_next`: a directory whose chain loops would otherwise be searched
forever.

`path` is only for messages.
*/
static const char *dir_find(const struct fat_fs *fs, u32 dir, const char *path,
                            const char *name, size_t len, struct entry *out,
                            bool *found)
{
    struct long_name ln;
    enum scan r = SCAN_MORE;
    const char *err;

    ln.pieces = 0;
    *found = false;
    if (dir == 0) {   // the fixed root directory of FAT12/16
        u32 left = fs->root_entries;
        u64 sector = fs->root_start;
        while (left > 0 && r == SCAN_MORE) {
            u32 n = left < sizeof(cluster_buf) / DIR_ENTRY_SIZE
                        ? left : (u32)(sizeof(cluster_buf) / DIR_ENTRY_SIZE);
            u32 sectors = (n * DIR_ENTRY_SIZE + SECTOR_SIZE - 1) / SECTOR_SIZE;
            if ((err = read_sectors(fs, sector, sectors, cluster_buf)) != NULL)
                return err;
            r = scan_entries(fs, cluster_buf, n, &ln, name, len, out);
            left -= n;
            sector += sectors;
        }
    } else {
        struct chain ch;
        bool end = false;
        if ((err = chain_start(fs, &ch, path, dir)) != NULL)
            return err;
        while (!end && r == SCAN_MORE) {
            if ((err = read_sectors(fs, cluster_sector(fs, ch.cluster),
                                    fs->cluster_bytes / SECTOR_SIZE,
                                    cluster_buf)) != NULL)
                return err;
            r = scan_entries(fs, cluster_buf,
                             fs->cluster_bytes / DIR_ENTRY_SIZE, &ln, name, len,
                             out);
            if (r == SCAN_MORE && (err = chain_next(fs, &ch, &end)) != NULL)
                return err;
        }
    }
    *found = r == SCAN_FOUND;
    return NULL;
}

/*
## Walking a path

A path is a list of names separated by `/`, looked up one directory at a
time starting from the root. Repeated slashes are harmless (`//sbin/gkernel`
works) and there is no depth limit, since each step needs only the entry it
found. Three things can go wrong, and each gets its own sentence: a name is
not in its directory, a name in the middle of the path is a file rather than a
directory, or the directory itself cannot be read.

The root has no directory entry of its own, so we invent one: a directory
starting at `root_cluster` on FAT32, or at the fixed root (0) on FAT12/16.
*/
static const char *lookup(const struct fat_fs *fs, const char *path,
                          struct entry *out)
{
    u32 root = fs->fat_type == 32 ? fs->root_cluster : 0;
    struct entry cur = {ATTR_DIRECTORY, root, 0};
    const char *p = path, *prev = "/";
    size_t prev_len = 1;
    const char *err;

    if (fs->cluster_count == 0)
        return "FAT: the volume is not mounted "
               "(fat_mount failed or was not called)";
    for (;;) {
        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        const char *name = p;
        while (*p != '\0' && *p != '/')
            p++;
        size_t len = (size_t)(p - name);

        if (!(cur.attr & ATTR_DIRECTORY))
            return fat_error(
                "FAT: cannot look up %s: \"%.*s\" is a file, not a directory",
                path, (int)prev_len, prev);
        // The directory we search, as a path, for messages: all before name.
        size_t dir_len = (size_t)(name - path);
        while (dir_len > 1 && path[dir_len - 1] == '/')
            dir_len--;
        bool found;
        if ((err = dir_find(fs, cur.cluster, path, name, len, &cur, &found)) !=
            NULL)
            return err;
        if (!found)
            return fat_error(
                "FAT: %s not found: there is no \"%.*s\" in directory \"%.*s\"",
                path, (int)len, name, dir_len ? (int)dir_len : 1,
                dir_len ? path : "/");
        if ((cur.attr & ATTR_DIRECTORY) && cur.cluster == 0)
            cur.cluster = root;   // ".." of a directory just below the root
        prev = name;
        prev_len = len;
    }
    *out = cur;
    return NULL;
}

/*
## The two calls the hypervisor makes

`fat_stat` finds a file and reports its size, so the caller can check that
the file fits before reading it. A directory is not a file here: its size
field is always 0 and reading it as one would make no sense.
*/
const char *fat_stat(struct fat_fs *fs, const char *path, u32 *size)
{
    struct entry e;
    const char *err = lookup(fs, path, &e);
    if (err)
        return err;
    if (e.attr & ATTR_DIRECTORY)
        return fat_error("FAT: %s is a directory, not a file", path);
    *size = e.size;
    return NULL;
}

/*
`fat_read_file` reads the whole file. It sets `*size` as soon as it knows the
size, even if the buffer then turns out too small, so the caller can say by
how much.

The file's size and its cluster chain are two separate records of the same
fact, and on a damaged disk they disagree. A file of `size` bytes needs
exactly `ceil(size / cluster_bytes)` clusters. We read that many, and:

* if the chain ends sooner, the file is *longer than its cluster chain*:
  the missing bytes are nowhere, so we stop with an error;
* if the chain goes on after the last cluster we need, we follow it to its end
  (still watching for loops) and report that the chain is longer than the
  file. We could ignore the extra clusters, but one of the two records is
  wrong and we cannot tell which, so loading this as a kernel would be a
  gamble.

Whole clusters are read straight into the caller's buffer, which is safe
because a whole cluster is only read while at least a cluster's worth of the
file remains. The last, partial cluster goes through `cluster_buf`, and only
the bytes of the file are copied out, so we never write past `size`.

A file written in one go usually lies in clusters that follow each other on
the disk, and each request to the disk has a fixed cost (under emulation,
tens of microseconds: a 33 MB Linux kernel in 512-byte clusters would be
66,000 requests, seconds of waiting). So whole clusters are not read one by
one: they are gathered into a *run* (`run_sector`, `run_count`) as long as
each starts where the run ends, up to `FAT_RUN_SECTORS` (1 MiB), and a run
is read with one call when the next cluster is elsewhere, the run is full,
or the file's last, partial cluster comes, and once more after the loop for
a file that ends on a cluster boundary. A chain that turns out broken further
on still stops the read with its error, and then the buffer's contents are
not to be used: the run gathered so far may not have been read yet.
*/
#define FAT_RUN_SECTORS 2048
const char *fat_read_file(struct fat_fs *fs, const char *path, void *buf,
                          size_t bufsize, u32 *size)
{
    struct entry e;
    struct chain ch = {0};
    const char *err = lookup(fs, path, &e);
    u32 done = 0;
    bool end = false;

    if (err)
        return err;
    if (e.attr & ATTR_DIRECTORY)
        return fat_error("FAT: %s is a directory, not a file", path);
    *size = e.size;
    if (e.size > bufsize)
        return fat_error("FAT: %s is %u bytes, but the buffer holds only %lu",
                         path, e.size, (u64)bufsize);
    if (e.size == 0)
        return NULL;   // an empty file owns no clusters
    if ((err = chain_start(fs, &ch, path, e.cluster)) != NULL)
        return err;

    u64 run_sector = 0;
    u32 run_count = 0, spc = fs->cluster_bytes / SECTOR_SIZE;
    u8 *run_dst = buf;
    for (;;) {
        u32 chunk = e.size - done < fs->cluster_bytes ? e.size - done
                                                      : fs->cluster_bytes;
        u64 sector = cluster_sector(fs, ch.cluster);
        if (chunk == fs->cluster_bytes && run_count &&
            sector == run_sector + run_count &&
            run_count + spc <= FAT_RUN_SECTORS) {
            run_count += spc; // this cluster continues the run
        } else {
            if (run_count &&
                (err = read_sectors(fs, run_sector, run_count, run_dst)))
                return err;
            run_count = 0;
            if (chunk == fs->cluster_bytes) { // a whole cluster: a new run
                run_sector = sector;
                run_count = spc;
                run_dst = (u8 *)buf + done;
            } else {
                err = read_sectors(fs, sector,
                                   (chunk + SECTOR_SIZE - 1) / SECTOR_SIZE,
                                   cluster_buf);
                if (err)
                    return err;
                memcpy((u8 *)buf + done, cluster_buf, chunk);
            }
        }
        done += chunk;
        if ((err = chain_next(fs, &ch, &end)) != NULL)
            return err;
        if (done == e.size)
            break;
        if (end)
            return fat_error(
                "FAT: %s is %u bytes, but its cluster chain ends after %lu "
                "cluster(s) (%u bytes): the file is longer than its chain",
                path, e.size, ch.length, done);
    }
    if (run_count && (err = read_sectors(fs, run_sector, run_count, run_dst)))
        return err;
    while (!end)
        if ((err = chain_next(fs, &ch, &end)) != NULL)
            return err;
    if (ch.length * fs->cluster_bytes - fs->cluster_bytes >= e.size)
        return fat_error(
            "FAT: %s is %u bytes, but its cluster chain has %lu clusters, more "
            "than the size needs: the size or the chain is wrong",
            path, e.size, ch.length);
    return NULL;
}
