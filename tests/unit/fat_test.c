/* Unit tests for fat.c, run on the host against images made by mtools.

   Usage: fat_test IMAGE_DIR   (run.sh makes the images; see its comments)

   Good images are read through a file-backed block reader. Broken images are
   a good image plus *patches*: the block reader applies them to every sector
   it returns, so a test can corrupt any byte of the disk precisely, without
   copying a 2 GiB image and without any extra tool. The same reader can also
   pretend the image is shorter than it is, or that one sector cannot be read. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

static const char *img_dir;

/* ---------------------------------------------------------------------------
   A disk: an image file, an optional "end" (reads past it fail, as on a
   truncated image), an optional failing sector, and a list of patches. */
#define MAX_PATCHES 8
struct patch {
    u64 off;
    u32 len;
    u8 data[512];
};

struct disk {
    char path[512];
    int fd;
    u64 bytes;        /* reads past this fail */
    u64 fail_sector;  /* a read touching this sector fails; ~0 = none */
    int npatches;
    struct patch patches[MAX_PATCHES];
    u64 reads;
};

static int disk_read(void *ctx, u64 sector, u32 count, void *buf)
{
    struct disk *d = ctx;
    u64 off = sector * SECTOR_SIZE, len = (u64)count * SECTOR_SIZE;

    d->reads++;
    if (count == 0 || off > d->bytes || len > d->bytes - off)
        return -1;
    if (d->fail_sector >= sector && d->fail_sector - sector < count)
        return -1;
    if (pread(d->fd, buf, len, (off_t)off) != (ssize_t)len)
        return -1;
    for (int i = 0; i < d->npatches; i++) {
        struct patch *p = &d->patches[i];
        u64 lo = p->off > off ? p->off : off;
        u64 hi = p->off + p->len < off + len ? p->off + p->len : off + len;
        if (lo < hi)
            memcpy((u8 *)buf + (lo - off), p->data + (lo - p->off), hi - lo);
    }
    return 0;
}

static bool disk_open(struct disk *d, const char *image)
{
    struct stat st;
    memset(d, 0, sizeof(*d));
    snprintf(d->path, sizeof(d->path), "%s/%s", img_dir, image);
    d->fd = open(d->path, O_RDONLY);
    if (d->fd < 0 || fstat(d->fd, &st) != 0)
        return false;
    d->bytes = (u64)st.st_size;
    d->fail_sector = ~(u64)0;
    return true;
}

static void disk_reset(struct disk *d)
{
    struct stat st;
    d->npatches = 0;
    d->fail_sector = ~(u64)0;
    if (fstat(d->fd, &st) == 0)
        d->bytes = (u64)st.st_size;
}

static void disk_close(struct disk *d)
{
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

static void patch(struct disk *d, u64 off, const void *data, u32 len)
{
    if (d->npatches == MAX_PATCHES || len > sizeof(d->patches[0].data)) {
        fprintf(stderr, "fat_test: too many or too large patches\n");
        abort();
    }
    struct patch *p = &d->patches[d->npatches++];
    p->off = off;
    p->len = len;
    memcpy(p->data, data, len);
}

static void patch_u8(struct disk *d, u64 off, u8 v)
{
    patch(d, off, &v, 1);
}

static void patch_u16(struct disk *d, u64 off, u16 v)
{
    u8 b[2] = {(u8)v, (u8)(v >> 8)};
    patch(d, off, b, 2);
}

static void patch_u32(struct disk *d, u64 off, u32 v)
{
    u8 b[4] = {(u8)v, (u8)(v >> 8), (u8)(v >> 16), (u8)(v >> 24)};
    patch(d, off, b, 4);
}

/* Raw reads of the image, independent of fat.c (patches applied). */
static void raw(struct disk *d, u64 off, void *buf, u32 len)
{
    u8 sec[SECTOR_SIZE];
    for (u32 i = 0; i < len; i++) {
        u64 o = off + i;
        if (disk_read(d, o / SECTOR_SIZE, 1, sec) != 0) {
            fprintf(stderr, "fat_test: raw read at %llu failed\n", (unsigned long long)o);
            abort();
        }
        ((u8 *)buf)[i] = sec[o % SECTOR_SIZE];
    }
}

static u32 raw_u32(struct disk *d, u64 off)
{
    u8 b[4];
    raw(d, off, b, 4);
    return (u32)b[0] | (u32)b[1] << 8 | (u32)b[2] << 16 | (u32)b[3] << 24;
}

static u16 raw_u16(struct disk *d, u64 off)
{
    u8 b[2];
    raw(d, off, b, 2);
    return (u16)(b[0] | b[1] << 8);
}

/* ---------------------------------------------------------------------------
   An independent look at the on-disk structures, used to find what to
   corrupt and to check facts about the images (fragmentation, directory size).
   It trusts the geometry fat_mount computed, which the good-image tests check
   by reading files. FAT32 and FAT16 only. */
static u64 fat_entry_off(const struct fat_fs *fs, u32 c)
{
    return fs->fat_start * SECTOR_SIZE + (u64)c * (fs->fat_type == 32 ? 4 : 2);
}

static u32 raw_fat(struct disk *d, const struct fat_fs *fs, u32 c)
{
    if (fs->fat_type == 32)
        return raw_u32(d, fat_entry_off(fs, c)) & 0x0FFFFFFF;
    return raw_u16(d, fat_entry_off(fs, c));
}

static bool is_eoc(const struct fat_fs *fs, u32 v)
{
    return v >= (fs->fat_type == 32 ? 0x0FFFFFF8u : 0xFFF8u);
}

static void set_fat(struct disk *d, const struct fat_fs *fs, u32 c, u32 v)
{
    if (fs->fat_type == 32)
        patch_u32(d, fat_entry_off(fs, c), v);
    else
        patch_u16(d, fat_entry_off(fs, c), (u16)v);
}

static u64 cluster_off(const struct fat_fs *fs, u32 c)
{
    return (fs->data_start + (u64)(c - 2) * (fs->cluster_bytes / SECTOR_SIZE)) * SECTOR_SIZE;
}

/* Walk a chain from `first` into out[] (at most max), stopping at the end. */
static u32 raw_chain(struct disk *d, const struct fat_fs *fs, u32 first, u32 *out, u32 max)
{
    u32 n = 0, c = first;
    while (n < max) {
        out[n++] = c;
        u32 v = raw_fat(d, fs, c);
        if (is_eoc(fs, v) || v < 2 || v > fs->cluster_count + 1)
            break;
        c = v;
    }
    return n;
}

/* Find the short entry whose 11-byte name is `name11` in the directory
   starting at `dir` (0 = FAT16 fixed root), first cluster only. Returns the
   entry's byte offset in the image, or 0. */
static u64 raw_find(struct disk *d, const struct fat_fs *fs, u32 dir, const char *name11)
{
    u64 base = dir ? cluster_off(fs, dir) : fs->root_start * SECTOR_SIZE;
    u32 entries = dir ? fs->cluster_bytes / 32 : fs->root_entries;
    for (u32 i = 0; i < entries; i++) {
        u8 e[32];
        raw(d, base + i * 32, e, 32);
        if (e[0] == 0)
            break;
        if ((e[11] & 0x3F) != 0x0F && memcmp(e, name11, 11) == 0)
            return base + i * 32;
    }
    return 0;
}

static u32 entry_cluster(struct disk *d, const struct fat_fs *fs, u64 entry)
{
    u32 c = raw_u16(d, entry + 26);
    if (fs->fat_type == 32)
        c |= (u32)raw_u16(d, entry + 20) << 16;
    return c;
}

/* ---------------------------------------------------------------------------
   Checks on good images. */

/* Read `path` from the volume and compare it with the host file `host`
   (relative to the image directory). */
static void check_file(const char *name, struct fat_fs *fs, const char *path, const char *host)
{
    char hp[600];
    size_t want_size;
    snprintf(hp, sizeof(hp), "%s/%s", img_dir, host);
    u8 *want = load_file(hp, &want_size);
    if (!want) {
        fail(name, "cannot read the source file %s", hp);
        return;
    }
    u32 size = 0xdeadbeef, stat_size = 0xdeadbeef;
    const char *err = fat_stat(fs, path, &stat_size);
    if (err) {
        fail(name, "fat_stat(%s): %s", path, err);
        free(want);
        return;
    }
    if (stat_size != want_size) {
        fail(name, "fat_stat(%s) says %u bytes, the file has %zu", path, stat_size, want_size);
        free(want);
        return;
    }
    /* A buffer of exactly the file's size: one byte more written is an ASan report. */
    u8 *got = malloc(want_size ? want_size : 1);
    err = fat_read_file(fs, path, got, want_size, &size);
    if (err)
        fail(name, "fat_read_file(%s): %s", path, err);
    else if (size != want_size)
        fail(name, "fat_read_file(%s) says %u bytes, the file has %zu", path, size, want_size);
    else if (memcmp(got, want, want_size) != 0)
        fail(name, "the bytes read from %s differ from %s", path, host);
    else
        pass(name);
    free(got);
    free(want);
}

static bool mount(const char *name, struct fat_fs *fs, struct disk *d, const char *image)
{
    char n[128];
    snprintf(n, sizeof(n), "%s-mount", name);
    if (!disk_open(d, image)) {
        fail(n, "cannot open %s/%s (was it made?)", img_dir, image);
        return false;
    }
    return expect_ok(n, fat_mount(fs, disk_read, d));
}

static void check_geometry(const char *name, const struct fat_fs *fs, u32 type, u32 bps,
                           u32 cluster_bytes)
{
    if (fs->fat_type != type || fs->bytes_per_sector != bps || fs->cluster_bytes != cluster_bytes)
        fail(name, "expected FAT%u, %u bytes/sector, %u-byte clusters; got FAT%u, %u, %u",
             type, bps, cluster_bytes, fs->fat_type, fs->bytes_per_sector, fs->cluster_bytes);
    else
        pass(name);
}

/* The main FAT32 image: 64 MiB, 512-byte clusters, many kinds of names. */
static void test_fat32(void)
{
    struct disk d;
    struct fat_fs fs;
    if (!mount("fat32", &fs, &d, "fat32.img"))
        return;
    check_geometry("fat32-geometry", &fs, 32, 512, 512);
    check_file("fat32-gkernel", &fs, "/sbin/gkernel", "gkernel.bin");
    check_file("fat32-case-insensitive", &fs, "/SBIN/GKernel", "gkernel.bin");
    check_file("fat32-extra-slashes", &fs, "//sbin///gkernel", "gkernel.bin");
    check_file("fat32-no-leading-slash", &fs, "sbin/gkernel", "gkernel.bin");
    check_file("fat32-long-name", &fs, "/boot/A Rather Long Kernel Name.elf", "longname.bin");
    check_file("fat32-long-name-other-case", &fs, "/BOOT/a rather LONG kernel name.ELF",
               "longname.bin");
    check_file("fat32-deep-path", &fs, "/a/b/c/d/file.txt", "deep.txt");
    check_file("fat32-dot-and-dotdot", &fs, "/a/b/../b/./c/d/../d/file.txt", "deep.txt");
    check_file("fat32-dotdot-to-root", &fs, "/a/../sbin/gkernel", "gkernel.bin");
    check_file("fat32-lowercase-8.3", &fs, "/readme.txt", "readme.txt");
    check_file("fat32-lowercase-8.3-upper", &fs, "/README.TXT", "readme.txt");
    check_file("fat32-empty-file", &fs, "/empty.txt", "empty.txt");
    check_file("fat32-exact-clusters", &fs, "/exact.bin", "exact.bin");
    check_file("fat32-many-first", &fs, "/many/entry number 001.txt", "many/entry number 001.txt");
    check_file("fat32-many-last", &fs, "/many/entry number 150.txt", "many/entry number 150.txt");

    /* The long name is stored only in LFN entries: its short alias is
       something like ARATHE~1.ELF. Find the alias on disk and look it up too. */
    u64 boot = raw_find(&d, &fs, fs.root_cluster, "BOOT       ");
    u32 bootc = boot ? entry_cluster(&d, &fs, boot) : 0;
    char alias[16] = "";
    if (bootc) {
        u64 base = cluster_off(&fs, bootc);
        for (u32 i = 0; i < fs.cluster_bytes / 32; i++) {
            u8 e[32];
            raw(&d, base + i * 32, e, 32);
            if (e[0] == 0)
                break;
            if ((e[11] & 0x3F) == 0x0F || e[0] == '.' || e[0] == 0xE5)
                continue;
            int n = 0;
            for (int k = 0; k < 8 && e[k] != ' '; k++)
                alias[n++] = (char)e[k];
            alias[n++] = '.';
            for (int k = 8; k < 11 && e[k] != ' '; k++)
                alias[n++] = (char)e[k];
            alias[n] = 0;
            break;
        }
    }
    if (!alias[0] || strchr(alias, ' ') || !strchr(alias, '~')) {
        fail("fat32-long-name-only-in-lfn", "no ~ alias found in /boot (alias \"%s\")", alias);
    } else {
        pass("fat32-long-name-only-in-lfn");
        char p[40];
        snprintf(p, sizeof(p), "/boot/%s", alias);
        check_file("fat32-short-alias", &fs, p, "longname.bin");

        /* Spoil the checksum of the piece holding "A Rathe": the long name is
           then an orphan and must not match, but the alias still does. */
        u64 base = cluster_off(&fs, bootc);
        static const u8 piece[] = {'A', 0, ' ', 0, 'R', 0, 'a', 0, 't', 0};
        u64 at = 0;
        for (u32 i = 0; i < fs.cluster_bytes / 32 && !at; i++) {
            u8 e[32];
            raw(&d, base + i * 32, e, 32);
            if ((e[11] & 0x3F) == 0x0F && memcmp(e + 1, piece, sizeof(piece)) == 0)
                at = base + i * 32;
        }
        if (!at) {
            fail("fat32-lfn-bad-checksum", "the LFN piece with \"A Rathe\" is not in /boot");
        } else {
            u8 sum;
            raw(&d, at + 13, &sum, 1);
            patch_u8(&d, at + 13, (u8)(sum ^ 0x5A));
            fat_mount(&fs, disk_read, &d);
            u32 size;
            expect_error("fat32-lfn-bad-checksum", fat_stat(&fs, "/boot/A Rather Long Kernel Name.elf",
                                                            &size), "not found");
            expect_ok("fat32-lfn-bad-checksum-alias-still-works", fat_stat(&fs, p, &size));
            disk_reset(&d);

            /* Pieces out of order: the middle piece (sequence 2) claims to be
               number 1, so the sequence 3, 1, 1 is broken. */
            for (u32 i = 0; i < fs.cluster_bytes / 32; i++) {
                u8 e[32];
                raw(&d, base + i * 32, e, 32);
                if (e[0] == 0x02 && (e[11] & 0x3F) == 0x0F)
                    patch_u8(&d, base + i * 32, 0x01);
            }
            fat_mount(&fs, disk_read, &d);
            expect_error("fat32-lfn-broken-sequence",
                         fat_stat(&fs, "/boot/A Rather Long Kernel Name.elf", &size), "not found");
            disk_reset(&d);

            /* Now give every piece the same wrong checksum, as if a system
               without long names had renamed the short entry: the pieces
               agree with each other but not with the short name, so the
               long name is orphaned. */
            for (u32 i = 0; i < fs.cluster_bytes / 32; i++) {
                u8 e[32];
                raw(&d, base + i * 32, e, 32);
                if (e[0] != 0xE5 && (e[11] & 0x3F) == 0x0F)
                    patch_u8(&d, base + i * 32 + 13, (u8)(e[13] ^ 0x5A));
            }
            fat_mount(&fs, disk_read, &d);
            expect_error("fat32-lfn-orphaned-by-rename",
                         fat_stat(&fs, "/boot/A Rather Long Kernel Name.elf", &size), "not found");
            disk_reset(&d);
            fat_mount(&fs, disk_read, &d);
        }
    }

    /* /many holds 150 files with long names: 450 entries of 32 bytes, so
       with 512-byte clusters the directory spans many clusters. */
    u64 many = raw_find(&d, &fs, fs.root_cluster, "MANY       ");
    u32 chain[4096];
    u32 n = many ? raw_chain(&d, &fs, entry_cluster(&d, &fs, many), chain, 4096) : 0;
    if (n < 4)
        fail("fat32-many-spans-clusters", "/many has %u cluster(s), expected several", n);
    else
        pass("fat32-many-spans-clusters");

    /* The 0x00 entry ends a directory: nothing after it counts, even an
       entry that looks valid. Make ".." of /sbin the end; gkernel follows. */
    u64 sbin = raw_find(&d, &fs, fs.root_cluster, "SBIN       ");
    u64 dotdot = sbin ? raw_find(&d, &fs, entry_cluster(&d, &fs, sbin), "..         ") : 0;
    if (!dotdot) {
        fail("fat32-nothing-after-end-marker", "cannot find .. in /sbin");
    } else {
        u32 size;
        patch_u8(&d, dotdot, 0x00);
        fat_mount(&fs, disk_read, &d);
        expect_error("fat32-nothing-after-end-marker", fat_stat(&fs, "/sbin/gkernel", &size),
                     "not found");
        disk_reset(&d);
        fat_mount(&fs, disk_read, &d);
    }

    /* Errors a caller makes, on a good volume. */
    u32 size;
    const char *err = fat_stat(&fs, "/sbin/nothere", &size);
    expect_error("fat32-missing-file", err, "not found");
    expect_error("fat32-missing-file-names-dir", err, "no \"nothere\" in directory \"/sbin\"");
    expect_error("fat32-missing-dir", fat_stat(&fs, "/nodir/gkernel", &size),
                 "no \"nodir\" in directory \"/\"");
    expect_error("fat32-path-through-file", fat_stat(&fs, "/sbin/gkernel/x", &size),
                 "\"gkernel\" is a file, not a directory");
    expect_error("fat32-directory-as-file", fat_stat(&fs, "/sbin", &size), "is a directory");
    expect_error("fat32-root-as-file", fat_stat(&fs, "/", &size), "is a directory");
    u8 *small = malloc(1000);
    expect_error("fat32-buffer-too-small",
                 fat_read_file(&fs, "/sbin/gkernel", small, 1000, &size), "buffer holds only 1000");
    free(small);
    struct fat_fs unmounted;
    memset(&unmounted, 0, sizeof(unmounted));
    expect_error("fat32-not-mounted", fat_stat(&unmounted, "/sbin/gkernel", &size), "not mounted");
    disk_close(&d);
}

/* Fragmentation: run.sh deleted every other small file and copied gkernel
   into the holes. Check that the chain really jumps, then read it. */
static void test_fragmented(void)
{
    struct disk d;
    struct fat_fs fs;
    static u32 chain[1 << 16];
    if (!mount("fragmented", &fs, &d, "frag.img"))
        return;
    u64 sbin = raw_find(&d, &fs, fs.root_cluster, "SBIN       ");
    u64 gk = sbin ? raw_find(&d, &fs, entry_cluster(&d, &fs, sbin), "GKERNEL    ") : 0;
    u32 n = gk ? raw_chain(&d, &fs, entry_cluster(&d, &fs, gk), chain, 1 << 16) : 0;
    u32 jumps = 0;
    for (u32 i = 1; i < n; i++)
        jumps += chain[i] != chain[i - 1] + 1;
    if (jumps < 5)
        fail("fragmented-is-fragmented", "gkernel's chain of %u clusters has %u jumps", n, jumps);
    else
        pass("fragmented-is-fragmented");
    check_file("fragmented-gkernel", &fs, "/sbin/gkernel", "gkernel.bin");
    disk_close(&d);
}

/* FAT32 with every cluster size from 512 B to 32 KiB (mformat -c 1..64). */
static void test_cluster_sizes(void)
{
    for (u32 spc = 1; spc <= 64; spc *= 2) {
        struct disk d;
        struct fat_fs fs;
        char name[64], image[32];
        snprintf(name, sizeof(name), "fat32-cluster-%u", spc * 512);
        snprintf(image, sizeof(image), "clus%u.img", spc);
        if (!mount(name, &fs, &d, image))
            continue;
        char n2[80];
        snprintf(n2, sizeof(n2), "%s-geometry", name);
        check_geometry(n2, &fs, 32, 512, spc * 512);
        snprintf(n2, sizeof(n2), "%s-gkernel", name);
        check_file(n2, &fs, "/sbin/gkernel", "gkernel.bin");
        disk_close(&d);
    }
}

/* Other FAT types and sector sizes. */
static void test_other_types(void)
{
    struct disk d;
    struct fat_fs fs;
    if (mount("fat16", &fs, &d, "fat16.img")) {
        check_geometry("fat16-geometry", &fs, 16, 512, 2048);
        check_file("fat16-gkernel", &fs, "/sbin/gkernel", "gkernel.bin");
        check_file("fat16-deep-path", &fs, "/x/y/z.txt", "deep.txt");
        check_file("fat16-root-long-name", &fs, "/entry number 100.txt", "many/entry number 100.txt");
        check_file("fat16-dotdot-to-root", &fs, "/x/y/../../sbin/gkernel", "gkernel.bin");
        u32 size;
        expect_error("fat16-missing-file", fat_stat(&fs, "/nothere", &size), "not found");

        /* A FAT16 chain pointing past the last cluster. */
        u64 sbin = raw_find(&d, &fs, 0, "SBIN       ");
        u64 gk = sbin ? raw_find(&d, &fs, entry_cluster(&d, &fs, sbin), "GKERNEL    ") : 0;
        u32 chain[4096];
        u32 n = gk ? raw_chain(&d, &fs, entry_cluster(&d, &fs, gk), chain, 4096) : 0;
        if (n < 8) {
            fail("fat16-chain-outside", "cannot find gkernel's chain (%u clusters)", n);
        } else {
            u8 *buf = malloc(1 << 20);
            /* fs stays usable for the next images: remount on a copy. */
            struct fat_fs f2;
            set_fat(&d, &fs, chain[3], fs.cluster_count + 2);
            fat_mount(&f2, disk_read, &d);
            expect_error("fat16-chain-outside",
                         fat_read_file(&f2, "/sbin/gkernel", buf, 1 << 20, &size),
                         "points outside the volume");
            disk_reset(&d);
            set_fat(&d, &fs, chain[n - 1], chain[0]);
            fat_mount(&f2, disk_read, &d);
            expect_error("fat16-chain-loop", fat_read_file(&f2, "/sbin/gkernel", buf, 1 << 20, &size),
                         "loops back on itself");
            disk_reset(&d);
            /* FAT16 has no high cluster word: DIR_FstClusHI is reserved
               there (OS/2 kept extended attributes in it) and must be
               ignored. */
            patch_u16(&d, gk + 20, 0x1234);
            fat_mount(&f2, disk_read, &d);
            expect_ok("fat16-ignores-cluster-hi", fat_read_file(&f2, "/sbin/gkernel", buf, 1 << 20, &size));
            disk_reset(&d);
            free(buf);
        }
        disk_close(&d);
    }
    if (mount("fat12", &fs, &d, "fat12.img")) {
        check_geometry("fat12-geometry", &fs, 12, 512, 512);
        check_file("fat12-gkernel", &fs, "/sbin/gkernel", "gkernel.bin");
        check_file("fat12-long-name", &fs, "/A Rather Long Kernel Name.elf", "longname.bin");
        disk_close(&d);
    }
    if (mount("sector4096", &fs, &d, "sec4096.img")) {
        check_geometry("sector4096-geometry", &fs, 32, 4096, 4096);
        check_file("sector4096-gkernel", &fs, "/sbin/gkernel", "gkernel.bin");
        check_file("sector4096-deep-path", &fs, "/a/b/c/d/file.txt", "deep.txt");
        disk_close(&d);
    }
    if (mount("sector1024-fat16", &fs, &d, "sec1024.img")) {
        check_geometry("sector1024-fat16-geometry", &fs, 16, 1024, 1024);
        check_file("sector1024-fat16-gkernel", &fs, "/sbin/gkernel", "gkernel.bin");
        disk_close(&d);
    }

    /* Two volumes at once: the FAT sector cache must not mix them up. */
    struct disk d1, d2;
    struct fat_fs f1, f2;
    d1.fd = d2.fd = -1;
    if (mount("two-volumes-a", &f1, &d1, "frag.img") && mount("two-volumes-b", &f2, &d2, "fat16.img")) {
        check_file("two-volumes-read-a", &f1, "/sbin/gkernel", "gkernel.bin");
        check_file("two-volumes-read-b", &f2, "/sbin/gkernel", "gkernel.bin");
        check_file("two-volumes-read-a-again", &f1, "/sbin/gkernel", "gkernel.bin");
    }
    disk_close(&d1);
    disk_close(&d2);
}

/* ---------------------------------------------------------------------------
   Broken images: fat32.img with patches. */
static void test_broken(void)
{
    struct disk d;
    struct fat_fs fs, good;
    u32 size;
    u8 *buf = malloc(1 << 20);
    u8 zero[512] = {0};

    if (!mount("broken-base", &good, &d, "fat32.img")) {
        free(buf);
        return;
    }

    /* The boot sector. */
    patch(&d, 0, zero, 512);
    expect_error("bad-zeroed-boot-sector", fat_mount(&fs, disk_read, &d), "0x55 0xAA");
    disk_reset(&d);
    patch_u16(&d, 11, 768);
    expect_error("bad-bytes-per-sector", fat_mount(&fs, disk_read, &d), "bytes per sector is 768");
    disk_reset(&d);
    patch_u16(&d, 11, 256);
    expect_error("bad-bytes-per-sector-256", fat_mount(&fs, disk_read, &d), "bytes per sector is 256");
    disk_reset(&d);
    patch_u8(&d, 13, 3);
    expect_error("bad-sectors-per-cluster", fat_mount(&fs, disk_read, &d), "power of two");
    disk_reset(&d);
    patch_u8(&d, 13, 0);
    expect_error("bad-sectors-per-cluster-0", fat_mount(&fs, disk_read, &d), "power of two");
    disk_reset(&d);
    patch_u8(&d, 13, 128);
    expect_error("bad-cluster-64k", fat_mount(&fs, disk_read, &d), "larger than 32 KiB");
    disk_reset(&d);
    patch_u16(&d, 14, 0);
    expect_error("bad-reserved-0", fat_mount(&fs, disk_read, &d), "reserved sector count is 0");
    disk_reset(&d);
    patch_u8(&d, 16, 0);
    expect_error("bad-no-fats", fat_mount(&fs, disk_read, &d), "number of FATs is 0");
    disk_reset(&d);
    patch_u32(&d, 36, 10);
    expect_error("bad-fat-too-small", fat_mount(&fs, disk_read, &d), "too small for");
    disk_reset(&d);
    patch_u32(&d, 36, 0);
    expect_error("bad-fat-size-0", fat_mount(&fs, disk_read, &d), "FAT size is 0");
    disk_reset(&d);
    patch_u32(&d, 32, 0);
    expect_error("bad-total-0", fat_mount(&fs, disk_read, &d), "total sector count is 0");
    disk_reset(&d);
    patch_u32(&d, 32, 1000);
    expect_error("bad-total-too-small", fat_mount(&fs, disk_read, &d), "but the volume has only 1000");
    disk_reset(&d);
    /* A FAT32-shaped boot sector over too few clusters: by the spec that
       is FAT16, and the two do not agree. */
    patch_u32(&d, 32, (u32)(good.data_start + 20000));
    expect_error("bad-fat32-too-few-clusters", fat_mount(&fs, disk_read, &d), "makes it FAT16");
    disk_reset(&d);
    patch_u32(&d, 44, 0x0FFFFFF0);
    expect_error("bad-root-cluster", fat_mount(&fs, disk_read, &d), "root directory starts at cluster");
    disk_reset(&d);
    patch_u16(&d, 42, 0x0100);
    expect_error("bad-fs-version", fat_mount(&fs, disk_read, &d), "version 1.0");
    disk_reset(&d);
    patch_u16(&d, 40, 0x0083);
    expect_error("bad-active-fat", fat_mount(&fs, disk_read, &d), "FAT #3");
    disk_reset(&d);
    patch_u32(&d, 32, (u32)(good.total_sectors + 100));
    expect_error("bad-total-beyond-disk", fat_mount(&fs, disk_read, &d), "truncated");
    disk_reset(&d);
    d.bytes /= 2;
    expect_error("bad-truncated-image", fat_mount(&fs, disk_read, &d), "truncated");
    disk_reset(&d);
    d.bytes = 0;
    expect_error("bad-empty-disk", fat_mount(&fs, disk_read, &d), "could not read its first sector");
    disk_reset(&d);
    expect_ok("bad-none-mount-again", fat_mount(&fs, disk_read, &d));

    /* The second FAT copy is live (ExtFlags bit 7, active FAT 1): mirror-off
       volumes must be read from the FAT they name. Spoil FAT #1 only. */
    u64 sbin = raw_find(&d, &good, good.root_cluster, "SBIN       ");
    u64 gk = sbin ? raw_find(&d, &good, entry_cluster(&d, &good, sbin), "GKERNEL    ") : 0;
    static u32 chain[1 << 16];
    u32 n = gk ? raw_chain(&d, &good, entry_cluster(&d, &good, gk), chain, 1 << 16) : 0;
    if (n < 20) {
        fail("bad-chain-setup", "cannot find gkernel's chain (%u clusters)", n);
        goto out;
    }
    set_fat(&d, &good, chain[5], 0);
    patch_u16(&d, 40, 0x0081);
    if (expect_ok("fat32-second-fat-live-mount", fat_mount(&fs, disk_read, &d)))
        expect_ok("fat32-second-fat-live-read", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size));
    disk_reset(&d);

    /* Cluster chains. Each case spoils one or two FAT entries of gkernel. */
    struct {
        const char *name;
        u32 at, value;  /* set FAT[chain[at]] = value; at = ~0: the last one */
        const char *want;
    } cases[] = {
        {"bad-chain-loop-to-start", ~0u, chain[0], "loops back on itself"},
        {"bad-chain-loop-middle", 10, chain[3], "loops back on itself"},
        {"bad-chain-self-loop", 0, chain[0], "loops back on itself"},
        {"bad-chain-outside-fat", 5, good.cluster_count + 2, "points outside the volume"},
        {"bad-chain-huge-cluster", 5, 0x0FFFFFF0, "points outside the volume"},
        {"bad-chain-free-cluster", 5, 0, "free or reserved"},
        {"bad-chain-reserved-1", 5, 1, "free or reserved"},
        {"bad-chain-bad-cluster", 5, 0x0FFFFFF7, "marked bad"},
        {"bad-file-longer-than-chain", 5, 0x0FFFFFFF, "longer than its chain"},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        u32 at = cases[i].at == ~0u ? n - 1 : cases[i].at;
        set_fat(&d, &good, chain[at], cases[i].value);
        const char *err = fat_mount(&fs, disk_read, &d);
        if (err)
            fail(cases[i].name, "the volume no longer mounts: %s", err);
        else
            expect_error(cases[i].name, fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size),
                         cases[i].want);
        disk_reset(&d);
    }
    /* The top 4 bits of a FAT32 entry are reserved: a set bit there must
       not change the cluster number. */
    set_fat(&d, &good, chain[5], 0xF0000000u | chain[6]);
    fat_mount(&fs, disk_read, &d);
    expect_ok("fat32-reserved-top-bits-ignored", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size));
    disk_reset(&d);

    /* A chain longer than the file: the last cluster points to a free one
       at the far end of the volume, which ends the chain. */
    u32 far = good.cluster_count + 1;
    set_fat(&d, &good, chain[n - 1], far);
    set_fat(&d, &good, far, 0x0FFFFFFF);
    fat_mount(&fs, disk_read, &d);
    expect_error("bad-chain-longer-than-file", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size),
                 "more than the size needs");
    disk_reset(&d);
    /* ... and one that goes on into a loop. */
    set_fat(&d, &good, chain[n - 1], far);
    set_fat(&d, &good, far, far - 1);
    set_fat(&d, &good, far - 1, far);
    fat_mount(&fs, disk_read, &d);
    expect_error("bad-chain-loop-after-end", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size),
                 "loops back on itself");
    disk_reset(&d);

    /* The directory entry: first cluster out of range, size past the chain. */
    patch_u16(&d, gk + 20, 0x0FFF);
    fat_mount(&fs, disk_read, &d);
    expect_error("bad-first-cluster", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size),
                 "starts at cluster");
    disk_reset(&d);
    patch_u32(&d, gk + 28, raw_u32(&d, gk + 28) + 5 * good.cluster_bytes);
    fat_mount(&fs, disk_read, &d);
    expect_error("bad-size-longer-than-chain", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size),
                 "longer than its chain");
    disk_reset(&d);

    /* A disk error in the middle of the file. */
    d.fail_sector = cluster_off(&good, chain[7]) / SECTOR_SIZE;
    fat_mount(&fs, disk_read, &d);
    expect_error("bad-read-error-mid-file", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size),
                 "could not read");
    disk_reset(&d);
    /* ... and in the FAT itself. */
    d.fail_sector = fat_entry_off(&good, chain[n - 1]) / SECTOR_SIZE;
    fat_mount(&fs, disk_read, &d);
    expect_error("bad-read-error-in-fat", fat_read_file(&fs, "/sbin/gkernel", buf, 1 << 20, &size),
                 "could not read");
    disk_reset(&d);

    /* A directory whose chain loops: a lookup that never finds its name
       must still end. The loop starts before the last cluster, because the
       last one holds the 0x00 entry that ends the directory. */
    u64 many = raw_find(&d, &good, good.root_cluster, "MANY       ");
    static u32 mchain[4096];
    u32 mn = many ? raw_chain(&d, &good, entry_cluster(&d, &good, many), mchain, 4096) : 0;
    if (mn < 4) {
        fail("bad-directory-loop", "cannot find /many's chain");
    } else {
        set_fat(&d, &good, mchain[mn - 2], mchain[1]);
        fat_mount(&fs, disk_read, &d);
        expect_error("bad-directory-loop", fat_stat(&fs, "/many/not there", &size),
                     "loops back on itself");
        disk_reset(&d);
    }
out:
    disk_close(&d);
    free(buf);
}

/* ---------------------------------------------------------------------------
   A small fuzzer: random bytes over the boot sector, the FAT entries of
   gkernel and the directories. Whatever fat.c answers, it must not crash
   (ASan/UBSan watch), hang (the watchdog watches) or write past the buffer. */
static u64 rng = 0x9E3779B97F4A7C15ull;
static u64 next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_fuzz(void)
{
    struct disk d;
    struct fat_fs fs, good;
    u32 size, mounted = 0, read = 0, rounds = 400;
    if (!mount("fuzz-base", &good, &d, "fat32.img"))
        return;
    u64 sbin = raw_find(&d, &good, good.root_cluster, "SBIN       ");
    u32 sbinc = entry_cluster(&d, &good, sbin);
    u64 gk = raw_find(&d, &good, sbinc, "GKERNEL    ");
    u32 first = entry_cluster(&d, &good, gk);
    u64 regions[][2] = {
        {0, 512},                                         /* boot sector */
        {fat_entry_off(&good, first), 4096},              /* gkernel's FAT entries */
        {cluster_off(&good, good.root_cluster), 512},     /* root directory */
        {cluster_off(&good, sbinc), 512},                 /* /sbin */
    };
    u32 bufsize = 400 * 1024;
    u8 *buf = malloc(bufsize);
    for (u32 r = 0; r < rounds; r++) {
        disk_reset(&d);
        int k = 1 + (int)(next_random() % 4);
        for (int i = 0; i < k; i++) {
            u64 *reg = regions[next_random() % ARRAY_SIZE(regions)];
            u64 off = reg[0] + next_random() % reg[1];
            u8 v[4];
            u64 x = next_random();
            memcpy(v, &x, 4);
            patch(&d, off, v, 1 + (u32)(next_random() % 4));
        }
        if (fat_mount(&fs, disk_read, &d) != NULL)
            continue;
        mounted++;
        if (fat_read_file(&fs, "/sbin/gkernel", buf, bufsize, &size) == NULL)
            read++;
        fat_stat(&fs, "/many/entry number 150.txt", &size);
        fat_stat(&fs, "/boot/A Rather Long Kernel Name.elf", &size);
    }
    free(buf);
    disk_close(&d);
    /* Reaching this line is the test: no crash, no hang, no sanitizer report. */
    printf("PASS fuzz-%u-corrupted-images\n", rounds);
    fprintf(stderr, "fuzz: %u of %u corrupted images mounted, %u read gkernel whole\n", mounted,
            rounds, read);
}

int main(int argc, char **argv)
{
    harness_start(20);
    if (argc != 2) {
        fail("fat-test-usage", "usage: fat_test IMAGE_DIR");
        return 1;
    }
    img_dir = argv[1];
    test_fat32();
    test_fragmented();
    test_cluster_sizes();
    test_other_types();
    test_broken();
    test_fuzz();
    return 0;
}
