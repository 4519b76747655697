/* common.c's load_guest_kernel calls the VirtIO block driver, which needs a
   real device. The unit tests never call load_guest_kernel, but the link
   needs the names; these stand-ins say plainly that there is no device. */
#include "common.h"

const char *virtio_blk_probe(uintptr_t base, uintptr_t stride, int count)
{
    (void)base;
    (void)stride;
    (void)count;
    return "virtio: no VirtIO device in the host unit tests";
}

u64 virtio_blk_capacity(void)
{
    return 0;
}

int virtio_blk_read(void *ctx, u64 sector, u32 count, void *buf)
{
    (void)ctx;
    (void)sector;
    (void)count;
    (void)buf;
    return -1;
}
