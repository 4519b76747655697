/*
# Reading the disk: a VirtIO block driver

The guest kernel lives in a file on a disk image, and QEMU offers that disk as a
*VirtIO* block device: a paravirtual device, designed for virtual machines
rather than copied from real hardware, and described by an OASIS standard
("Virtual I/O Device (VIRTIO) Version 1.2", cited below as *VirtIO 1.2*). It is
the simplest disk a program can drive. Ironically, the hypervisor here is the
*guest* of QEMU's VirtIO device: QEMU plays the hypervisor role for us.

A VirtIO device has three parts, and this driver uses each once:

1. **A transport** to find the device and talk to its registers. On all three
   machines hvbook uses, it is *VirtIO over MMIO* (VirtIO 1.2, 4.2): a 512-byte
   window of 32-bit registers. QEMU places several such windows ("slots") at a
   fixed address; empty slots read a device ID of 0.
2. **A feature and status handshake** (VirtIO 1.2, 3.1.1) in which driver and
   device agree on what they both understand.
3. **A virtqueue** (VirtIO 1.2, 2.7): rings in ordinary memory through which
   the driver posts requests and the device posts completions. The device
   reads and writes that memory by itself (DMA); the driver only *notifies* it
   with one register write.

The driver is *polled*: after posting a request it watches the completion ring
until the answer arrives. A hypervisor that reads one file at boot has no reason
to take interrupts for it, and polling keeps the whole story in one function.

### The MMIO registers

Offsets into a slot, from VirtIO 1.2, 4.2.2 ("MMIO Device Register
Layout"). All are 32 bits wide and little-endian.
*/
#include "common.h"

#define VIRTIO_MMIO_MAGIC            0x000 /* "virt" = 0x74726976 */
#define VIRTIO_MMIO_VERSION          0x004 /* 2 = modern, 1 = legacy */
#define VIRTIO_MMIO_DEVICE_ID        0x008 /* 2 = block device, 0 = empty */
#define VIRTIO_MMIO_DEVICE_FEATURES  0x010
#define VIRTIO_MMIO_DEVICE_FEAT_SEL  0x014 /* which 32 feature bits to show */
#define VIRTIO_MMIO_DRIVER_FEATURES  0x020
#define VIRTIO_MMIO_DRIVER_FEAT_SEL  0x024
#define VIRTIO_MMIO_QUEUE_SEL        0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX    0x034
#define VIRTIO_MMIO_QUEUE_NUM        0x038
#define VIRTIO_MMIO_QUEUE_READY      0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY     0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK    0x064
#define VIRTIO_MMIO_STATUS           0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW   0x080 /* the three rings' addresses, */
#define VIRTIO_MMIO_QUEUE_DESC_HIGH  0x084 /* each as two 32-bit halves   */
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW  0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW   0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH  0x0a4
#define VIRTIO_MMIO_CONFIG_GEN       0x0fc /* changes with the configuration */
#define VIRTIO_MMIO_CONFIG           0x100 /* device-specific configuration */

#define VIRTIO_MAGIC 0x74726976
#define VIRTIO_DEVICE_BLOCK 2

/* Device status bits (VirtIO 1.2, 2.1). The driver sets them one by one as the
   handshake progresses; the device may set NEEDS_RESET if it gives up. */
#define STATUS_ACKNOWLEDGE 1   /* we have noticed the device */
#define STATUS_DRIVER      2   /* and we know how to drive it */
#define STATUS_DRIVER_OK   4   /* set-up is complete: the device may work */
#define STATUS_FEATURES_OK 8   /* we accept the features we wrote */
#define STATUS_NEEDS_RESET 64
#define STATUS_FAILED      128 /* we gave up */

/* Feature bit 32, VIRTIO_F_VERSION_1 (VirtIO 1.2, 6): "I follow VirtIO 1.x,
   not the legacy interface". It is bit 0 of the second 32-bit feature word. */
#define VIRTIO_F_VERSION_1_WORD 1
#define VIRTIO_F_VERSION_1_BIT  (1u << 0)

/*
### The virtqueue

A *split* virtqueue (VirtIO 1.2, 2.7) is three arrays in memory:

    descriptor table    what each buffer is: address, length, flags, next
    available ring      driver -> device: "descriptor chain i is ready"
    used ring           device -> driver: "I finished chain i, wrote n bytes"

One disk read is a *chain* of three descriptors (VirtIO 1.2, 5.2.6):

    desc 0: request header  {type = IN (read), sector}   device reads it
    desc 1: the data buffer                              device writes it
    desc 2: one status byte                              device writes it

The driver fills the descriptors, puts the index of the first into the next
free slot of the available ring, bumps the ring's `idx`, and writes the queue
number to `QUEUE_NOTIFY`. The device answers by appending an element to the
used ring and bumping *its* `idx`. Each side only ever writes its own ring,
which is why no lock is needed.

Our queue has 4 descriptors, all we need for one request at a time; the
structures below are laid out exactly as the specification's, with the
alignment it asks for (16 bytes for descriptors, 2 for the available ring,
4 for the used ring, VirtIO 1.2, 2.7).
*/
#define QUEUE_SIZE 4

#define VIRTQ_DESC_F_NEXT  1 /* the chain continues at `next` */
#define VIRTQ_DESC_F_WRITE 2 /* the device writes this buffer (else reads it) */

struct virtq_desc {
    u64 addr;
    u32 len;
    u16 flags;
    u16 next;
};

struct virtq_avail {
    u16 flags;
    u16 idx;
    u16 ring[QUEUE_SIZE];
    u16 used_event;
};

struct virtq_used_elem {
    u32 id;
    u32 len;
};

struct virtq_used {
    u16 flags;
    u16 idx;
    struct virtq_used_elem ring[QUEUE_SIZE];
    u16 avail_event;
};

/* The block request header (VirtIO 1.2, 5.2.6) and its status values. */
#define VIRTIO_BLK_T_IN 0 /* read sectors */
#define VIRTIO_BLK_S_OK 0

struct virtio_blk_req {
    u32 type;
    u32 reserved;
    u64 sector;
};

/*
All the driver's state is static: there is one disk. `volatile` on the rings
tells the compiler that the device changes them behind its back, so it must
really read `used.idx` each time round the polling loop.
*/
static struct {
    struct virtq_desc desc[QUEUE_SIZE] __attribute__((aligned(16)));
    struct virtq_avail avail __attribute__((aligned(2)));
    struct virtq_used used __attribute__((aligned(4)));
    struct virtio_blk_req req;
    u8 status;
} volatile vq __attribute__((aligned(PAGE_SIZE)));

static uintptr_t blk_base; /* the slot our device sits in, 0 if none */
static u16 last_used;      /* used.idx as we last saw it */
static u64 capacity;       /* in 512-byte sectors */
static u32 status_bits;    /* the status bits we have set since the reset */

/*
Every register access in this file goes through `mmio_read` and
`mmio_write`: on the machine, a plain 32-bit load or store through a
`volatile` pointer, so the compiler emits exactly one access of exactly
that width, in program order. The host unit tests compile this file with
`HVBOOK_HOST_TEST` defined and supply the pair themselves: a model of a
device that answers each access and records the order in which they came
(`tests/unit/virtio_test.c`), which is how the ordering rules below are
checked without real hardware.
*/
#ifdef HVBOOK_HOST_TEST
u32 mmio_read(uintptr_t addr);
void mmio_write(uintptr_t addr, u32 v);
#else
static u32 mmio_read(uintptr_t addr)
{
    return *(volatile u32 *)addr;
}

static void mmio_write(uintptr_t addr, u32 v)
{
    *(volatile u32 *)addr = v;
}
#endif

static u32 reg_read(u32 off)
{
    return mmio_read(blk_base + off);
}

static void reg_write(u32 off, u32 v)
{
    mmio_write(blk_base + off, v);
}

/*
### Waiting, measured in time

The driver waits for the device in three places: for a reset to finish, for
the configuration to hold still, and for the answer to a read. A wait
counted in loop iterations would last as long as the CPU takes to run the
loop, which differs a hundredfold between a fast host, QEMU on a busy laptop
and real hardware. So every wait is measured with `time_us`, the clock each
architecture provides (`common.h`), and ends after `VIRTIO_TIMEOUT_US`: five
seconds, thousands of times longer than QEMU takes to answer, and short
enough that a student is not left looking at a silent screen.
*/
#define VIRTIO_TIMEOUT_US 5000000u

static bool timed_out(u64 start)
{
    return time_us() - start > VIRTIO_TIMEOUT_US;
}

/*
### Finding the device and shaking hands

`virtio_blk_probe` looks through the slots for a VirtIO block device. The
order of the first three reads is the specification's (VirtIO 1.2,
4.2.3.1.1): `MagicValue`, then `Version`, and only if both are valid,
`DeviceID`. (Version 1, the legacy interface, counts as valid here: the
driver will not drive such a device, but it reads its ID so that it can
tell you a legacy disk is what it found.) A device ID of 0 marks an empty
slot, and the driver must not touch any other register of it.

Then it performs the initialisation sequence of VirtIO 1.2, 3.1.1, step by
step: reset, ACKNOWLEDGE, DRIVER, feature negotiation, FEATURES_OK (read
back: the device may refuse), queue set-up, reading the configuration,
DRIVER_OK. We ask for one feature only, VERSION_1, and the device must
offer it: a device that does not is a *legacy* device with a different
register layout. QEMU presents its VirtIO-MMIO devices as legacy ones unless
told otherwise, which is why `run.sh` passes
`-global virtio-mmio.force-legacy=false`.

Four rules of the specification shape the code:

- **A reset takes effect when Status reads 0.** Writing 0 asks for a reset;
  the driver must then wait for a read of the status to return 0 before it
  starts again (VirtIO 1.2, 2.4.2). QEMU resets at once; other devices may
  not.
- **Status bits are only ever added.** The driver must not clear a bit it
  has set (VirtIO 1.2, 2.1.1), so `set_status` keeps the bits set so far in
  `status_bits` and writes them all, plus the new one.
- **Giving up is said out loud.** If any step after ACKNOWLEDGE goes wrong,
  the driver sets FAILED (VirtIO 1.2, 3.1.1), so the device (and anyone
  debugging it) knows the driver has stopped using it. `give_up` does that,
  forgets the device, and returns the sentence for the caller.
- **Multi-word configuration is read inside a generation loop.** The
  capacity is 64 bits, read as two 32-bit halves; if the device changed it
  between the two reads we would get half of the old value and half of the
  new one. `ConfigGeneration` changes whenever the configuration does, so
  the driver reads it before and after, and reads again until the two agree
  (VirtIO 1.2, 2.5.1 and 4.2.2).
*/
static void set_status(u32 bit)
{
    status_bits |= bit;
    reg_write(VIRTIO_MMIO_STATUS, status_bits);
}

static const char *give_up(const char *why)
{
    set_status(STATUS_FAILED);
    blk_base = 0;
    return why;
}

const char *virtio_blk_probe(uintptr_t base, uintptr_t stride, int count)
{
    bool saw_legacy = false;

    blk_base = 0;
    for (int i = 0; i < count && !blk_base; i++) {
        uintptr_t slot = base + (uintptr_t)i * stride;
        if (mmio_read(slot + VIRTIO_MMIO_MAGIC) != VIRTIO_MAGIC)
            continue;
        u32 version = mmio_read(slot + VIRTIO_MMIO_VERSION);
        if (version != 1 && version != 2)
            continue;
        // Empty slots (ID 0) and other kinds of device: leave them alone.
        if (mmio_read(slot + VIRTIO_MMIO_DEVICE_ID) != VIRTIO_DEVICE_BLOCK)
            continue;
        if (version == 1) {
            saw_legacy = true;
            continue;
        }
        blk_base = slot;
    }
    if (!blk_base && saw_legacy)
        return "VirtIO: found only a legacy (version 1) block device; "
               "start QEMU with -global virtio-mmio.force-legacy=false";
    if (!blk_base)
        return "VirtIO: no block device attached "
               "(no disk image given to QEMU?)";

    reg_write(VIRTIO_MMIO_STATUS, 0); // reset
    u64 start = time_us();
    while (reg_read(VIRTIO_MMIO_STATUS) != 0) {
        if (timed_out(start)) {
            blk_base = 0;
            return "VirtIO: the block device did not finish its reset "
                   "(Status never read 0)";
        }
    }
    status_bits = 0;
    set_status(STATUS_ACKNOWLEDGE);
    set_status(STATUS_DRIVER);

    reg_write(VIRTIO_MMIO_DEVICE_FEAT_SEL, VIRTIO_F_VERSION_1_WORD);
    if (!(reg_read(VIRTIO_MMIO_DEVICE_FEATURES) & VIRTIO_F_VERSION_1_BIT))
        return give_up(
            "VirtIO: the block device does not offer VIRTIO_F_VERSION_1");
    // Accept VERSION_1 and nothing else: the low word stays all zero.
    reg_write(VIRTIO_MMIO_DRIVER_FEAT_SEL, 0);
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES, 0);
    reg_write(VIRTIO_MMIO_DRIVER_FEAT_SEL, VIRTIO_F_VERSION_1_WORD);
    reg_write(VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_F_VERSION_1_BIT);
    set_status(STATUS_FEATURES_OK);
    if (!(reg_read(VIRTIO_MMIO_STATUS) & STATUS_FEATURES_OK))
        return give_up("VirtIO: the block device refused our features "
                       "(FEATURES_OK not kept)");

    // Queue 0 is the block device's only request queue (VirtIO 1.2, 5.2.2).
    reg_write(VIRTIO_MMIO_QUEUE_SEL, 0);
    if (reg_read(VIRTIO_MMIO_QUEUE_READY) != 0)
        return give_up("VirtIO: queue 0 is already in use after a reset");
    if (reg_read(VIRTIO_MMIO_QUEUE_NUM_MAX) < QUEUE_SIZE)
        return give_up(
            "VirtIO: the device's queue is too small for one request");
    reg_write(VIRTIO_MMIO_QUEUE_NUM, QUEUE_SIZE);
    uintptr_t d = (uintptr_t)vq.desc, a = (uintptr_t)&vq.avail,
              u = (uintptr_t)&vq.used;
    reg_write(VIRTIO_MMIO_QUEUE_DESC_LOW, (u32)d);
    reg_write(VIRTIO_MMIO_QUEUE_DESC_HIGH, (u32)((u64)d >> 32));
    reg_write(VIRTIO_MMIO_QUEUE_AVAIL_LOW, (u32)a);
    reg_write(VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (u32)((u64)a >> 32));
    reg_write(VIRTIO_MMIO_QUEUE_USED_LOW, (u32)u);
    reg_write(VIRTIO_MMIO_QUEUE_USED_HIGH, (u32)((u64)u >> 32));
    reg_write(VIRTIO_MMIO_QUEUE_READY, 1);
    last_used = 0;

    // The block device's configuration space starts with its capacity in
    // 512-byte sectors, a 64-bit value (VirtIO 1.2, 5.2.4): two halves,
    // read again until ConfigGeneration is the same before and after.
    start = time_us();
    for (;;) {
        u32 gen = reg_read(VIRTIO_MMIO_CONFIG_GEN);
        capacity = reg_read(VIRTIO_MMIO_CONFIG) |
                   (u64)reg_read(VIRTIO_MMIO_CONFIG + 4) << 32;
        if (reg_read(VIRTIO_MMIO_CONFIG_GEN) == gen)
            break;
        if (timed_out(start))
            return give_up(
                "VirtIO: the block device's configuration never held still");
    }

    set_status(STATUS_DRIVER_OK);
    return NULL;
}

u64 virtio_blk_capacity(void)
{
    return capacity;
}

/*
### One read request

`virtio_blk_read` is the `block_read_fn` the FAT reader calls. It reads large
requests in pieces of at most 64 KiB, one three-descriptor chain at a time.

Two orderings matter, and the compiler and CPU would otherwise be free to
change them. The descriptors must be in memory *before* the device can see
the new `avail.idx`, and both before the notifying register write; and the
device's writes to the buffer must be seen *after* we see its new `used.idx`.
`io_barrier()`, which each architecture provides (see `common.h`), orders
memory and device accesses both ways, as VirtIO 1.2, 2.7.13 ("Supplying
Buffers to The Device") asks: the driver must make the ring entry visible
with a memory barrier before it updates the index.

The answer is checked before it is believed. The device's used element
(VirtIO 1.2, 2.7.8) names the head of the chain it finished (`id`: ours
always starts at descriptor 0) and how many bytes it wrote (`len`), and the
driver may not assume anything about bytes beyond `len`. Our chain gives the
device `count` sectors of data and one status byte to write, so anything
less than `count * 512 + 1` means the buffer is not what we asked for. A
device that answers with the wrong chain, too few bytes, more answers than
we asked for, or not at all within the timeout is broken: the driver sets
FAILED and stops using it. A status byte other than OK is a different
matter, an honest "I could not read that sector", and only fails the read.
*/
#define MAX_SECTORS_PER_REQUEST 128

static int read_chunk(u64 sector, u32 count, void *buf)
{
    vq.req.type = VIRTIO_BLK_T_IN;
    vq.req.reserved = 0;
    vq.req.sector = sector;
    vq.status = 0xff; // anything but OK, in case the device never writes it

    vq.desc[0].addr = (uintptr_t)&vq.req;
    vq.desc[0].len = sizeof(vq.req);
    vq.desc[0].flags = VIRTQ_DESC_F_NEXT;
    vq.desc[0].next = 1;
    vq.desc[1].addr = (uintptr_t)buf;
    vq.desc[1].len = count * SECTOR_SIZE;
    vq.desc[1].flags = VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT;
    vq.desc[1].next = 2;
    vq.desc[2].addr = (uintptr_t)&vq.status;
    vq.desc[2].len = 1;
    vq.desc[2].flags = VIRTQ_DESC_F_WRITE;
    vq.desc[2].next = 0;

    vq.avail.ring[vq.avail.idx % QUEUE_SIZE] = 0; // chain starts at desc 0
    io_barrier(); // descriptors and ring entry before the index
    vq.avail.idx = vq.avail.idx + 1;
    io_barrier(); // the index before the notification
    reg_write(VIRTIO_MMIO_QUEUE_NOTIFY, 0);

    u64 start = time_us();
    while (vq.used.idx == last_used) {
        if (timed_out(start)) {
            printf("VirtIO: the block device did not answer a read of sector "
                   "%lu within %u ms\n",
                   sector, VIRTIO_TIMEOUT_US / 1000);
            give_up(NULL);
            return -1;
        }
    }
    io_barrier(); // the device's data, status and used element after its index
    u16 idx = vq.used.idx;
    u32 id = vq.used.ring[last_used % QUEUE_SIZE].id;
    u32 len = vq.used.ring[last_used % QUEUE_SIZE].len;
    last_used++;
    // We never asked for interrupts, but acknowledge the one the device
    // raised anyway, so the line does not stay asserted.
    reg_write(VIRTIO_MMIO_INTERRUPT_ACK,
              reg_read(VIRTIO_MMIO_INTERRUPT_STATUS));

    if (idx != last_used || id != 0 || len < count * SECTOR_SIZE + 1) {
        printf("VirtIO: the block device's answer to a read of sector %lu "
               "is wrong (used.idx %u, expected %u; used.id %u, expected 0; "
               "used.len %u, expected %u)\n",
               sector, idx, last_used, id, len, count * SECTOR_SIZE + 1);
        give_up(NULL);
        return -1;
    }
    if (vq.status != VIRTIO_BLK_S_OK) {
        printf("VirtIO: reading sector %lu failed (device status %u)\n", sector,
               vq.status);
        return -1;
    }
    return 0;
}

int virtio_blk_read(void *ctx, u64 sector, u32 count, void *buf)
{
    (void)ctx;
    if (!blk_base)
        return -1;
    if (sector > capacity || count > capacity - sector) {
        printf("VirtIO: read of %u sectors at %lu is past the end of the disk "
               "(%lu sectors)\n",
               count, sector, capacity);
        return -1;
    }
    u8 *p = buf;
    while (count) {
        u32 n =
            count < MAX_SECTORS_PER_REQUEST ? count : MAX_SECTORS_PER_REQUEST;
        if (read_chunk(sector, n, p) != 0)
            return -1;
        sector += n;
        count -= n;
        p += (size_t)n * SECTOR_SIZE;
    }
    return 0;
}
