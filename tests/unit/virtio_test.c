/* Unit tests for virtio.c against a model of a VirtIO-MMIO block device.

   virtio.c is compiled into this program (#include below) with
   HVBOOK_HOST_TEST defined, so its register accesses come here, to
   mmio_read and mmio_write, and its clock is time_us below. The model
   answers like QEMU's device does, records every access in order, and can
   be told to misbehave: a reset that takes a while (or forever), a device
   that refuses our features, a capacity that changes while it is read, a
   request answered late, never, or with a wrong used element.

   What this proves, and what it does not: it checks the *order* and the
   *values* of the driver's register accesses and its reaction to device
   answers that real QEMU never gives (QEMU resets at once, never changes a
   disk's capacity under us, always answers). It does not prove that the
   model behaves like any real device beyond what the VirtIO specification
   says; the end-to-end tests (tests/e2e.sh) run the same driver against
   QEMU's devices.

   The virtqueue lives in this process, so the model follows the driver's
   descriptor addresses as ordinary pointers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "virtio.c"

#define NSLOTS 8
#define STRIDE 0x200
static u8 window[NSLOTS * STRIDE]; /* only its addresses are used */
#define BASE ((uintptr_t)window)

enum answer { ANSWER_OK, ANSWER_NEVER, ANSWER_LATE, ANSWER_WRONG_ID, ANSWER_SHORT_LEN,
              ANSWER_IO_ERROR };

struct dev {
    u32 magic, version, device_id;
    u32 dev_features[2], feat_sel, drv_feat_sel, drv_features[2];
    u32 status, stale_status;
    int reset_reads;        /* status reads that still show the old value after a reset */
    bool reset_never;       /* the reset never completes */
    bool refuse_features;   /* clear FEATURES_OK when the driver sets it */
    bool ready_after_reset; /* QueueReady stays 1 after a reset (a broken device) */
    u32 queue_num_max, queue_num, queue_ready;
    u32 desc[2], avail[2], used[2];
    u64 capacity, capacity_next;
    bool change_capacity; /* change it (and the generation) after the low half is read */
    u32 generation;
    u16 last_avail, used_idx;
    enum answer answer;
    u64 late_after_us; /* ANSWER_LATE: answer once the clock has advanced this much */
};
static struct dev devs[NSLOTS];

struct access {
    int slot;
    char rw;
    u32 off, val;
};
#define MAX_LOG 100000
static struct access access_log[MAX_LOG];
static int nlog;

/* The fake clock: every call advances it by clock_step microseconds. */
static u64 clock_us, clock_step = 1000, clock_calls;
static bool late_pending;
static int late_slot;
static u64 late_at;

static void complete_requests(struct dev *d);

u64 time_us(void)
{
    clock_calls++;
    clock_us += clock_step;
    if (late_pending && clock_us >= late_at) {
        late_pending = false;
        devs[late_slot].answer = ANSWER_OK;
        complete_requests(&devs[late_slot]);
    }
    return clock_us;
}

static void record(int slot, char rw, u32 off, u32 val)
{
    if (nlog < MAX_LOG)
        access_log[nlog++] = (struct access){slot, rw, off, val};
}

static void device_reset(struct dev *d)
{
    d->stale_status = d->status;
    d->status = 0;
    d->queue_ready = d->ready_after_reset ? 1 : 0;
    d->queue_num = 0;
    d->last_avail = d->used_idx = 0;
    d->drv_features[0] = d->drv_features[1] = 0;
}

static u8 pattern(u64 sector, u32 i)
{
    return (u8)(sector * 7 + i * 13 + (i >> 9));
}

static void *ptr(const u32 half[2])
{
    return (void *)(uintptr_t)((u64)half[1] << 32 | half[0]);
}

/* What QEMU's device does on a notification: take each new chain from the
   available ring, fill the data buffer, write the status, and put a used
   element { head, bytes written } on the used ring. */
static void complete_requests(struct dev *d)
{
    struct virtq_desc *desc = ptr(d->desc);
    struct virtq_avail *avail = ptr(d->avail);
    struct virtq_used *used = ptr(d->used);
    while (d->last_avail != avail->idx) {
        if (d->answer == ANSWER_NEVER || d->answer == ANSWER_LATE)
            return;
        u16 head = avail->ring[d->last_avail % d->queue_num];
        d->last_avail++;
        struct virtq_desc *h = &desc[head], *data = &desc[h->next], *st = &desc[data->next];
        struct virtio_blk_req *req = (void *)(uintptr_t)h->addr;
        u8 *buf = (void *)(uintptr_t)data->addr;
        for (u32 i = 0; i < data->len; i++)
            buf[i] = pattern(req->sector + i / SECTOR_SIZE, i % SECTOR_SIZE);
        *(u8 *)(uintptr_t)st->addr = d->answer == ANSWER_IO_ERROR ? 1 : 0;
        struct virtq_used_elem e = {head, data->len + 1};
        if (d->answer == ANSWER_WRONG_ID)
            e.id = (u32)(head + 1) % d->queue_num;
        if (d->answer == ANSWER_SHORT_LEN)
            e.len = data->len / 2;
        used->ring[d->used_idx % d->queue_num].id = e.id;
        used->ring[d->used_idx % d->queue_num].len = e.len;
        d->used_idx++;
        __atomic_thread_fence(__ATOMIC_SEQ_CST);
        used->idx = d->used_idx;
    }
}

u32 mmio_read(uintptr_t addr)
{
    int s = (int)((addr - BASE) / STRIDE);
    u32 off = (u32)((addr - BASE) % STRIDE), v = 0;
    struct dev *d = &devs[s];
    switch (off) {
    case VIRTIO_MMIO_MAGIC: v = d->magic; break;
    case VIRTIO_MMIO_VERSION: v = d->version; break;
    case VIRTIO_MMIO_DEVICE_ID: v = d->device_id; break;
    case VIRTIO_MMIO_DEVICE_FEATURES: v = d->feat_sel < 2 ? d->dev_features[d->feat_sel] : 0; break;
    case VIRTIO_MMIO_QUEUE_NUM_MAX: v = d->queue_num_max; break;
    case VIRTIO_MMIO_QUEUE_READY: v = d->queue_ready; break;
    case VIRTIO_MMIO_INTERRUPT_STATUS: v = 1; break;
    case VIRTIO_MMIO_STATUS:
        if (d->reset_never) {
            v = d->stale_status | 1;
        } else if (d->reset_reads > 0) {
            d->reset_reads--;
            v = d->stale_status | 1;
        } else {
            v = d->status;
        }
        break;
    case 0x0fc: v = d->generation; break; // ConfigGeneration
    case VIRTIO_MMIO_CONFIG:
        v = (u32)d->capacity;
        if (d->change_capacity) {
            d->change_capacity = false;
            d->capacity = d->capacity_next;
            d->generation++;
        }
        break;
    case VIRTIO_MMIO_CONFIG + 4: v = (u32)(d->capacity >> 32); break;
    }
    record(s, 'R', off, v);
    return v;
}

void mmio_write(uintptr_t addr, u32 v)
{
    int s = (int)((addr - BASE) / STRIDE);
    u32 off = (u32)((addr - BASE) % STRIDE);
    struct dev *d = &devs[s];
    record(s, 'W', off, v);
    switch (off) {
    case VIRTIO_MMIO_DEVICE_FEAT_SEL: d->feat_sel = v; break;
    case VIRTIO_MMIO_DRIVER_FEAT_SEL: d->drv_feat_sel = v; break;
    case VIRTIO_MMIO_DRIVER_FEATURES:
        if (d->drv_feat_sel < 2)
            d->drv_features[d->drv_feat_sel] = v;
        break;
    case VIRTIO_MMIO_QUEUE_NUM: d->queue_num = v; break;
    case VIRTIO_MMIO_QUEUE_READY: d->queue_ready = v; break;
    case VIRTIO_MMIO_QUEUE_DESC_LOW: d->desc[0] = v; break;
    case VIRTIO_MMIO_QUEUE_DESC_HIGH: d->desc[1] = v; break;
    case VIRTIO_MMIO_QUEUE_AVAIL_LOW: d->avail[0] = v; break;
    case VIRTIO_MMIO_QUEUE_AVAIL_HIGH: d->avail[1] = v; break;
    case VIRTIO_MMIO_QUEUE_USED_LOW: d->used[0] = v; break;
    case VIRTIO_MMIO_QUEUE_USED_HIGH: d->used[1] = v; break;
    case VIRTIO_MMIO_QUEUE_NOTIFY:
        if (d->answer == ANSWER_LATE && !late_pending) {
            late_pending = true;
            late_slot = s;
            late_at = clock_us + d->late_after_us;
        }
        complete_requests(d);
        break;
    case VIRTIO_MMIO_STATUS:
        if (v == 0) {
            device_reset(d);
        } else {
            d->status = v;
            if (d->refuse_features)
                d->status &= ~(u32)STATUS_FEATURES_OK;
        }
        break;
    }
}

/* ---------------------------------------------------------------------------
   Set-up. Every slot starts empty (magic right, device ID 0), as QEMU's
   unused slots are; a test then puts devices where it wants them. */
static void fresh(void)
{
    memset(devs, 0, sizeof(devs));
    for (int i = 0; i < NSLOTS; i++) {
        devs[i].magic = VIRTIO_MAGIC;
        devs[i].version = 2;
    }
    nlog = 0;
    clock_us = 1000000;
    clock_step = 1000;
    clock_calls = 0;
    late_pending = false;
    // The driver's own state, as after a boot.
    blk_base = 0;
    last_used = 0;
    capacity = 0;
    status_bits = 0;
    memset((void *)&vq, 0, sizeof(vq));
}

static struct dev *block_at(int slot)
{
    struct dev *d = &devs[slot];
    d->device_id = VIRTIO_DEVICE_BLOCK;
    d->dev_features[1] = VIRTIO_F_VERSION_1_BIT;
    d->queue_num_max = 256;
    d->capacity = 2048;
    return d;
}

static const char *probe(void)
{
    console_muted = true;
    const char *err = virtio_blk_probe(BASE, STRIDE, NSLOTS);
    console_muted = false;
    return err;
}

static int read_sectors(u64 sector, u32 count, u8 *buf)
{
    console_muted = true;
    int r = virtio_blk_read(NULL, sector, count, buf);
    console_muted = false;
    return r;
}

/* The accesses to one slot, in order, as a string like "R000 R004 R008". */
static void slot_trace(int slot, char *out, size_t n, int max)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < nlog && max > 0; i++) {
        if (access_log[i].slot != slot)
            continue;
        k += (size_t)snprintf(out + k, n - k, "%s%c%03x", k ? " " : "", access_log[i].rw,
                              access_log[i].off);
        if (k >= n)
            break;
        max--;
    }
}

/* ---------------------------------------------------------------------------
   4.2.3.1.1: MagicValue, then Version, then DeviceID; nothing more from a
   slot whose DeviceID is 0. */
static void test_probe_order(void)
{
    char t[256];
    fresh();
    devs[0].magic = 0x12345678;  // not a VirtIO slot at all
    devs[1].version = 0x99;      // a version we do not know
    /* slot 2: empty (device ID 0) */
    devs[3].device_id = 1;       // a network card
    block_at(4);
    expect_ok("virtio-probe-finds-slot-4", probe());
    if (blk_base != BASE + 4 * STRIDE)
        fail("virtio-probe-slot", "the driver chose slot %d", (int)((blk_base - BASE) / STRIDE));

    struct {
        const char *name;
        int slot;
        const char *want;
        bool exact;
    } cases[] = {
        {"virtio-probe-bad-magic-only-magic", 0, "R000", true},
        {"virtio-probe-bad-version-stops", 1, "R000 R004", true},
        {"virtio-probe-empty-slot-untouched", 2, "R000 R004 R008", true},
        {"virtio-probe-other-device-untouched", 3, "R000 R004 R008", true},
        {"virtio-probe-magic-version-deviceid", 4, "R000 R004 R008", false},
        {"virtio-probe-stops-at-first-disk", 5, "", true},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        slot_trace(cases[i].slot, t, sizeof(t), cases[i].exact ? 100 : 3);
        if (strcmp(t, cases[i].want) == 0)
            pass(cases[i].name);
        else
            fail(cases[i].name, "slot %d saw [%s], wanted [%s%s]", cases[i].slot, t,
                 cases[i].want, cases[i].exact ? "" : " ...");
    }
}

/* The status writes after the reset must only ever add bits (2.1.1: the
   driver MUST NOT clear a device status bit). Returns the last one. */
static bool status_writes_grow(int slot, u32 *last)
{
    u32 prev = 0;
    bool grew = true, after_reset = false;
    *last = 0;
    for (int i = 0; i < nlog; i++) {
        struct access *a = &access_log[i];
        if (a->slot != slot || a->rw != 'W' || a->off != VIRTIO_MMIO_STATUS)
            continue;
        if (a->val == 0) {
            after_reset = true;
            prev = 0;
            continue;
        }
        if (after_reset && (a->val & prev) != prev)
            grew = false;
        prev = a->val;
        *last = a->val;
    }
    return grew;
}

/* 2.4.2: after writing 0, wait for a read of 0 before going on. */
static void test_reset(void)
{
    fresh();
    struct dev *d = block_at(0);
    d->status = 0x0F; // a driver before us left it running
    d->reset_reads = 3;
    const char *err = probe();
    int reset_at = -1, zero_read_at = -1, ack_at = -1;
    for (int i = 0; i < nlog; i++) {
        struct access *a = &access_log[i];
        if (a->off != VIRTIO_MMIO_STATUS)
            continue;
        if (a->rw == 'W' && a->val == 0 && reset_at < 0)
            reset_at = i;
        else if (a->rw == 'R' && a->val == 0 && reset_at >= 0 && zero_read_at < 0)
            zero_read_at = i;
        else if (a->rw == 'W' && a->val == STATUS_ACKNOWLEDGE && ack_at < 0)
            ack_at = i;
    }
    if (err)
        fail("virtio-reset-waits-for-zero", "probe failed: %s", err);
    else if (reset_at < 0 || ack_at < 0)
        fail("virtio-reset-waits-for-zero", "no reset or no ACKNOWLEDGE written");
    else if (zero_read_at < 0 || zero_read_at > ack_at)
        fail("virtio-reset-waits-for-zero",
             "ACKNOWLEDGE was written before a read of Status returned 0 (2.4.2)");
    else
        pass("virtio-reset-waits-for-zero");

    fresh();
    d = block_at(0);
    d->status = 0x0F;
    d->reset_never = true;
    u64 start = clock_us;
    err = probe();
    bool acked = false;
    for (int i = 0; i < nlog; i++)
        acked |= access_log[i].rw == 'W' && access_log[i].off == VIRTIO_MMIO_STATUS &&
                 access_log[i].val != 0;
    if (!err)
        fail("virtio-reset-never-completes", "the probe succeeded on a device that never reset");
    else if (!strstr(err, "reset"))
        fail("virtio-reset-never-completes", "the message does not mention the reset: %s", err);
    else if (acked)
        fail("virtio-reset-never-completes", "the driver went on to write Status anyway");
    else if (clock_us - start < 100000 || clock_us - start > 60000000)
        fail("virtio-reset-never-completes", "gave up after %lu us of clock time",
             (unsigned long)(clock_us - start));
    else
        pass("virtio-reset-never-completes");
}

/* 3.1.1: set FAILED when giving up after ACKNOWLEDGE, without clearing the
   bits already set (2.1.1). */
static void test_failed(void)
{
    struct {
        const char *name, *want;
        void (*spoil)(struct dev *);
    } cases[] = {
        {"virtio-failed-no-version-1", "VIRTIO_F_VERSION_1", NULL},
        {"virtio-failed-features-refused", "refused our features", NULL},
        {"virtio-failed-queue-in-use", "already in use", NULL},
        {"virtio-failed-queue-too-small", "too small", NULL},
    };
    for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
        fresh();
        struct dev *d = block_at(0);
        switch (i) {
        case 0: d->dev_features[1] = 0; break;
        case 1: d->refuse_features = true; break;
        case 2: d->ready_after_reset = true; break;
        case 3: d->queue_num_max = 2; break;
        }
        const char *err = probe();
        u32 last;
        bool grew = status_writes_grow(0, &last);
        if (!err || !strstr(err, cases[i].want))
            fail(cases[i].name, "wanted an error with \"%s\", got %s", cases[i].want,
                 err ? err : "success");
        else if (!(last & STATUS_FAILED))
            fail(cases[i].name, "gave up without setting FAILED (last Status write 0x%x)", last);
        else if (!grew)
            fail(cases[i].name, "a Status write cleared a bit set before it (last 0x%x)", last);
        else if (read_sectors(0, 1, (u8[512]){0}) == 0)
            fail(cases[i].name, "the driver still reads from a device it gave up on");
        else
            pass(cases[i].name);
    }

    // And the good case: the bits grow to DRIVER_OK, with no FAILED.
    fresh();
    block_at(0);
    const char *err = probe();
    u32 last;
    bool grew = status_writes_grow(0, &last);
    if (err || !grew || last != (STATUS_ACKNOWLEDGE | STATUS_DRIVER | STATUS_FEATURES_OK |
                                 STATUS_DRIVER_OK))
        fail("virtio-status-sequence", "error %s, last Status write 0x%x, %s", err ? err : "none",
             last, grew ? "bits only added" : "a bit was cleared");
    else
        pass("virtio-status-sequence");
}

/* 2.5.1 / 4.2.2: a 64-bit field read as two halves, inside a
   ConfigGeneration loop. The model changes the capacity from 2^32 - 1 to
   2^32 right after the low half is read: a torn read gives 2^33 - 1. */
static void test_capacity(void)
{
    fresh();
    struct dev *d = block_at(0);
    d->capacity = 0xFFFFFFFFull;
    d->capacity_next = 0x100000000ull;
    d->change_capacity = true;
    const char *err = probe();
    if (err)
        fail("virtio-capacity-generation", "probe failed: %s", err);
    else if (virtio_blk_capacity() != 0x100000000ull)
        fail("virtio-capacity-generation", "capacity 0x%lx, the device's is now 0x100000000",
             (unsigned long)virtio_blk_capacity());
    else
        pass("virtio-capacity-generation");

    fresh();
    d = block_at(0);
    d->capacity = 0x123456789ull;
    err = probe();
    if (err || virtio_blk_capacity() != 0x123456789ull)
        fail("virtio-capacity-64-bit", "capacity 0x%lx (error %s)",
             (unsigned long)virtio_blk_capacity(), err ? err : "none");
    else
        pass("virtio-capacity-64-bit");
}

/* Reads: good ones, and 2.7.8's used element checked. */
static bool buffer_ok(const u8 *buf, u64 sector, u32 count)
{
    for (u32 i = 0; i < count * SECTOR_SIZE; i++)
        if (buf[i] != pattern(sector + i / SECTOR_SIZE, i % SECTOR_SIZE))
            return false;
    return true;
}

static void test_reads(void)
{
    static u8 buf[300 * SECTOR_SIZE];
    fresh();
    block_at(0);
    if (!expect_ok("virtio-read-probe", probe()))
        return;
    if (read_sectors(5, 3, buf) != 0 || !buffer_ok(buf, 5, 3))
        fail("virtio-read-3-sectors", "read failed or wrong data");
    else
        pass("virtio-read-3-sectors");
    if (read_sectors(100, 300, buf) != 0 || !buffer_ok(buf, 100, 300))
        fail("virtio-read-300-sectors", "read failed or wrong data");
    else
        pass("virtio-read-300-sectors");
    if (read_sectors(2047, 2, buf) == 0)
        fail("virtio-read-past-end", "a read past the last sector succeeded");
    else
        pass("virtio-read-past-end");

    struct {
        const char *name;
        enum answer answer;
    } bad[] = {
        {"virtio-read-io-error", ANSWER_IO_ERROR},
        {"virtio-read-used-id-wrong", ANSWER_WRONG_ID},
        {"virtio-read-used-len-short", ANSWER_SHORT_LEN},
    };
    for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
        fresh();
        struct dev *d = block_at(0);
        probe();
        d->answer = bad[i].answer;
        if (read_sectors(7, 2, buf) == 0)
            fail(bad[i].name, "the read succeeded although the device's answer was wrong");
        else
            pass(bad[i].name);
    }
}

/* The wait for an answer is measured by the clock: a device that answers
   after 2 s of clock time is waited for, one that never answers is given up
   on after a few seconds of clock time. */
static void test_timeout(void)
{
    static u8 buf[2 * SECTOR_SIZE];
    fresh();
    struct dev *d = block_at(0);
    probe();
    d->answer = ANSWER_NEVER;
    u64 start = clock_us, calls = clock_calls;
    int r = read_sectors(7, 2, buf);
    u64 waited = clock_us - start;
    if (r == 0)
        fail("virtio-timeout-by-clock", "a read the device never answered succeeded");
    else if (clock_calls == calls)
        fail("virtio-timeout-by-clock", "the driver gave up without ever reading the clock");
    else if (waited < 1000000 || waited > 60000000)
        fail("virtio-timeout-by-clock", "gave up after %lu us of clock time",
             (unsigned long)waited);
    else
        printf("PASS virtio-timeout-by-clock (gave up after %lu ms)\n",
               (unsigned long)(waited / 1000));

    fresh();
    d = block_at(0);
    probe();
    d->answer = ANSWER_LATE;
    d->late_after_us = 2000000;
    if (read_sectors(9, 2, buf) != 0 || !buffer_ok(buf, 9, 2))
        fail("virtio-slow-device-waited-for", "a device that answers after 2 s was given up on");
    else
        pass("virtio-slow-device-waited-for");
}

static void test_legacy(void)
{
    fresh();
    block_at(1)->version = 1;
    expect_error("virtio-legacy-refused", probe(), "legacy");
    fresh();
    expect_error("virtio-no-device", probe(), "no block device");
}

int main(void)
{
    harness_start(60);
    test_probe_order();
    test_reset();
    test_failed();
    test_capacity();
    test_reads();
    test_timeout();
    test_legacy();
    return 0;
}
