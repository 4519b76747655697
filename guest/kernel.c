/*
# The guest kernel: `guest/kernel.c`

This is the portable half of `gkernel`, the small operating system that hvbook
runs as its guest. It is written for a plain machine, not for a hypervisor:
it has no hypercalls of its own and no idea it may be virtualized. Everything
it needs from the hardware it asks of the platform layer declared in
`guest/guest.h`, which `guest/riscv64.c`, `guest/aarch64.c` and
`guest/x86_64.c` implement with firmware calls (SBI, PSCI), device registers
(PL011 and GICv3 on Arm, the 16550 UART and the local APIC on x86-64) and the
timers.

The kernel does three things, and prints as it goes, so that the output is
also the test:

1. a banner and a few facts about the machine;
2. the *virtual device test*: one 32-bit read from a flash bank, which must
   hold the magic bytes `pfld`;
3. the *preemption test*: two worker threads share a queue, and only a timer
   interrupt ever takes the CPU from a worker that has work to do.

When the guest runs bare on QEMU, the firmware and QEMU's devices answer. When
it runs under hvbook, the hypervisor answers instead: it forwards or emulates
the console, injects the timer interrupt, lets the guest read the flash and
catches the power-off. A correct hypervisor is one the guest cannot tell apart
from the machine, so both runs must print the same lines. A complete run looks
like:

```
 _          _                 _
| |____   _| |__   ___   ___ | | __
| '_ \ \ / / '_ \ / _ \ / _ \| |/ /
| | | \ V /| |_) | (_) | (_) |   <
|_| |_|\_/ |_.__/ \___/ \___/|_|\_\
gkernel: the hvbook guest kernel
arch = riscv64
platform = riscv64-qemu-virt
smp = 1

Virtual Device (vdev) Test
Reading PFlash at physical address 0x22000000...
Try to access pflash dev region [0x22000000], got 0x646c6670
Got pflash magic: pfld
Multi-task(Preemptible) is starting ...
Wait for workers to exit ...
worker1 [0]
...                 (worker1 and worker2 lines, interleaved by the timer)
worker2 [256]
worker2 ok!
worker1 ok!
Multi-task(Preemptible) ok!
Timer-driven context switches: 52
```

The number in the last line varies a little from run to run: it counts real
timer interrupts, and those follow the host's clock.
*/
#include "guest.h"

/*
## Memory helpers

GCC may call `memset` and `memcpy` on its own, for instance to zero a local
array, even in a freestanding program. There is no C library to provide them,
so here they are, one byte at a time. (The Makefile's
`-fno-tree-loop-distribute-patterns` stops GCC from "optimising" these very
loops back into calls to themselves.)
*/
void *memset(void *dst, int c, size_t n)
{
    unsigned char *d = dst;
    while (n--)
        *d++ = (unsigned char)c;
    return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    while (n--)
        *d++ = *s++;
    return dst;
}

/*
## `kprintf`

A `printf` small enough to read in one sitting. It formats into a buffer on
the stack and hands each finished line to `plat_console_write` with interrupts
masked. That matters once there are threads: if the timer could preempt a
thread half-way through a line, `worker1 [12]` and `worker2 [9]` would come out
as `workerworker2 [9]` and the output would no longer be a test. One write per
line is also kind to the hypervisor, which sees one console request per line
where the platform allows it (SBI DBCN) instead of one per character.

It understands `%s %c %d %u %x %p %%`, an `l` (or `ll`) length, and a field
width with optional `0` padding, which is everything this kernel prints.
*/
#define KPRINTF_BUF 160

struct kbuf {
    char buf[KPRINTF_BUF];
    size_t len;
};

static void kbuf_flush(struct kbuf *b)
{
    unsigned long flags = plat_irq_save();
    plat_console_write(b->buf, b->len);
    plat_irq_restore(flags);
    b->len = 0;
}

static void kbuf_put(struct kbuf *b, char c)
{
    if (b->len == sizeof(b->buf))
        kbuf_flush(b);
    b->buf[b->len++] = c;
    if (c == '\n')
        kbuf_flush(b);
}

/* One number in base 10 or 16, right-aligned in `width` with `pad`. */
static void kbuf_num(struct kbuf *b, unsigned long long v, bool negative,
                     unsigned base, int width, char pad)
{
    char digits[24];
    int n = 0;

    do {
        digits[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (negative)
        digits[n++] = '-';
    while (width-- > n)
        kbuf_put(b, pad);
    while (n)
        kbuf_put(b, digits[--n]);
}

void kprintf(const char *fmt, ...)
{
    struct kbuf b;
    va_list ap;

    b.len = 0;
    va_start(ap, fmt);
    for (; *fmt; fmt++) {
        if (*fmt != '%') {
            kbuf_put(&b, *fmt);
            continue;
        }
        fmt++;
        char pad = ' ';
        int width = 0, longs = 0;
        if (*fmt == '0')
            pad = '0';
        while (*fmt >= '0' && *fmt <= '9')
            width = width * 10 + (*fmt++ - '0');
        while (*fmt == 'l') {
            longs++;
            fmt++;
        }

        unsigned long long u;
        long long s;
        switch (*fmt) {
        case 's': {
            const char *str = va_arg(ap, const char *);
            while (*str)
                kbuf_put(&b, *str++);
            break;
        }
        case 'c':
            kbuf_put(&b, (char)va_arg(ap, int));
            break;
        case 'd':
            s = longs ? va_arg(ap, long long) : va_arg(ap, int);
            kbuf_num(&b, s < 0 ? -(unsigned long long)s : (unsigned long long)s,
                     s < 0, 10, width, pad);
            break;
        case 'u':
        case 'x':
            u = longs ? va_arg(ap, unsigned long long)
                      : va_arg(ap, unsigned int);
            kbuf_num(&b, u, false, *fmt == 'u' ? 10 : 16, width, pad);
            break;
        case 'p':
            kbuf_put(&b, '0');
            kbuf_put(&b, 'x');
            kbuf_num(&b, (uintptr_t)va_arg(ap, void *), false, 16, width, pad);
            break;
        case '%':
            kbuf_put(&b, '%');
            break;
        default: /* an unknown conversion, or a '%' at the very end */
            kbuf_put(&b, '%');
            if (!*fmt)
                fmt--;
            else
                kbuf_put(&b, *fmt);
            break;
        }
    }
    va_end(ap);
    if (b.len)
        kbuf_flush(&b);
}

/*
## Threads

A thread is a stack and a saved stack pointer. The guest has exactly three:

+-----------+--------------------------------+---------------------------------+
| thread    | stack                          | runs                            |
+===========+================================+=================================+
| `main`    | the boot stack from `<arch>.S` | `kernel_main`, then waits for   |
|           |                                | the workers                     |
+-----------+--------------------------------+---------------------------------+
| `worker1` | `thread_stacks[0]`             | the producer                    |
+-----------+--------------------------------+---------------------------------+
| `worker2` | `thread_stacks[1]`             | the consumer                    |
+-----------+--------------------------------+---------------------------------+

A thread is `RUNNABLE` until its function returns; then it is `EXITED` and
never scheduled again. There is no blocked state: a thread that has to wait
(for the queue, or for another thread to finish) simply gives the CPU away
with `yield` and looks again when its turn comes back round.

Sixteen KiB of stack per thread is generous: the deepest path, a timer
interrupt in the middle of `kprintf` that switches threads, needs about 1 KiB
(`kprintf` and its helpers 450 bytes, the trap frame 272, the handler and the
switch frame the rest).
*/
#define MAX_THREADS 3
#define THREAD_STACK_SIZE (16 * 1024)

enum thread_state { THREAD_UNUSED, THREAD_RUNNABLE, THREAD_EXITED };

struct thread {
    void *sp;                     /* saved by ctx_switch while not running */
    volatile enum thread_state state;
    const char *name;
    void (*entry)(void);
};

static struct thread threads[MAX_THREADS] = {
    [0] = { .state = THREAD_RUNNABLE, .name = "main" },
};
static struct thread *current = &threads[0];
static uint8_t thread_stacks[MAX_THREADS - 1][THREAD_STACK_SIZE]
    __attribute__((aligned(16)));

/* Statistics for the last line of output. */
static unsigned long timer_ticks;
static unsigned long timer_switches;

/*
### Choosing and switching

The scheduler is round-robin: starting after the current thread, take the
first one that is runnable. If there is none, the current thread carries on
(and if the current thread has exited too, something is badly wrong).

`switch_to` is the only place that calls `ctx_switch`, and it is always called
with interrupts masked. That is the invariant that makes preemption safe: the
moment between "`current` says B" and "the CPU is running on B's stack" must
not be interrupted, or the timer handler would save A's registers as B's.
*/
static struct thread *pick_next(void)
{
    for (int i = 1; i <= MAX_THREADS; i++) {
        struct thread *t = &threads[(current - threads + i) % MAX_THREADS];
        if (t->state == THREAD_RUNNABLE)
            return t;
    }
    kprintf("scheduler: no runnable thread\n");
    plat_shutdown(false);
}

static void switch_to(struct thread *next)
{
    struct thread *prev = current;
    current = next;
    ctx_switch(&prev->sp, next->sp);
    // We are `prev` again: some later switch_to chose us and returned here.
}

/*
`yield` is the voluntary switch: a thread with nothing to do offers the CPU to
the next one. It masks interrupts around the switch and restores them when the
thread is eventually resumed.
*/
static void yield(void)
{
    unsigned long flags = plat_irq_save();
    struct thread *next = pick_next();
    if (next != current)
        switch_to(next);
    plat_irq_restore(flags);
}

/*
### Preemption: the timer tick

This is the heart of the preemption test. The platform's trap handler calls
`kernel_timer_tick` on every timer interrupt, after it has re-armed the timer
and acknowledged the interrupt. By then the interrupted thread's registers are
all saved in a *trap frame* on that thread's own stack, and we are running on
that stack with interrupts masked (the CPU masked them when it took the trap).

So a preemptive switch is an ordinary `switch_to` made from inside the
handler, exactly as xv6 does it. The interrupted thread's stack now holds, from
the top: its own frames, the trap frame, the handler's frames and the
callee-saved registers pushed by `ctx_switch`. Nothing else is needed to
resume it. When some later `switch_to` picks it again, `ctx_switch` returns
here, the handler returns, the trap-return code in `<arch>.S` reloads the trap
frame, and the thread continues at the very instruction it was interrupted at,
never knowing it was gone.

The other direction works just as well. The thread we switch *to* may itself be
sitting in a timer handler (it was preempted), in `yield` (it gave way), or it
may never have run at all (`thread_start` below). Each of those paths unmasks
interrupts on its own way out: the trap return restores the interrupted
thread's interrupt state, `yield` restores the flags it saved, and
`thread_start` enables them.

A tick counts as a *timer-driven context switch* only when it really moved
the CPU to another thread.
*/
void kernel_timer_tick(void)
{
    timer_ticks++;
    struct thread *next = pick_next();
    if (next != current) {
        timer_switches++;
        switch_to(next);
    }
}

/*
### Starting and ending a thread

`thread_spawn` gives a thread a stack whose top is a forged `ctx_switch` frame
returning into `thread_start` (see `plat_thread_stack`). So the first time the
scheduler picks the thread, it "returns" into `thread_start`. That happens
inside a `switch_to`, where interrupts are always masked, so the first thing a
new thread does is unmask them; then it runs its function. When the function
returns, the thread marks itself `EXITED` and switches away for good.
*/
static void thread_start(void)
{
    plat_irq_enable();
    current->entry();

    plat_irq_save();
    current->state = THREAD_EXITED;
    switch_to(pick_next());
    kprintf("thread %s: resumed after exit\n", current->name);
    plat_shutdown(false);
}

static struct thread *thread_spawn(const char *name, void (*entry)(void))
{
    for (int i = 1; i < MAX_THREADS; i++) {
        struct thread *t = &threads[i];
        if (t->state != THREAD_UNUSED)
            continue;
        t->name = name;
        t->entry = entry;
        t->sp = plat_thread_stack(thread_stacks[i - 1] + THREAD_STACK_SIZE,
                                  thread_start);
        t->state = THREAD_RUNNABLE; // last: from now on the timer may pick it
        return t;
    }
    kprintf("thread_spawn: no free thread for %s\n", name);
    plat_shutdown(false);
}

/* Wait (politely) until `t` has returned from its function. */
static void thread_join(struct thread *t)
{
    while (t->state != THREAD_EXITED)
        yield();
}

/*
## The workload: a producer, a consumer and a timer

worker1 produces the numbers 0 to 256 into a bounded queue; worker2 consumes
them. The queue is a ring of `QUEUE_SIZE` slots. It is shared by two threads
that can be preempted at any instruction, so each operation runs with
interrupts masked: on a single CPU that is a complete lock.

Neither worker ever yields while it has work to do. Each item costs a little
busy work (`WORK_US` of spinning on the clock, standing in for a real
computation), so a worker with a full plate would keep the CPU for its whole
plate. The only thing that takes the CPU from it is the timer, every
`TICK_US`. That makes the interleaving of `worker1 [...]` and `worker2 [...]`
lines in the output a direct picture of preemption: each change of speaker is
a timer interrupt (or a worker that ran out of work). With 257 items, 1 ms of
work per item for each worker and a 10 ms tick, a run takes about 0.6 s and
makes some fifty timer-driven switches.

A worker waits only when it cannot work: worker1 when the queue is full,
worker2 when it is empty (it says `worker2: nothing to do!` first).
*/
#define TICK_US 10000
#define WORK_US 1000
#define QUEUE_SIZE 16
#define LAST_ITEM 256

static struct {
    int slot[QUEUE_SIZE];
    unsigned head, count;         /* oldest item, and how many there are */
} queue;

static bool queue_push(int v)
{
    unsigned long flags = plat_irq_save();
    bool ok = queue.count < QUEUE_SIZE;
    if (ok) {
        queue.slot[(queue.head + queue.count) % QUEUE_SIZE] = v;
        queue.count++;
    }
    plat_irq_restore(flags);
    return ok;
}

static bool queue_pop(int *v)
{
    unsigned long flags = plat_irq_save();
    bool ok = queue.count > 0;
    if (ok) {
        *v = queue.slot[queue.head];
        queue.head = (queue.head + 1) % QUEUE_SIZE;
        queue.count--;
    }
    plat_irq_restore(flags);
    return ok;
}

static void busy_work(void)
{
    uint64_t until = plat_time_us() + WORK_US;
    while (plat_time_us() < until)
        ;
}

/*
worker1 announces each number, then queues it. The announcement comes first so
that `worker1 [n]` is always printed before `worker2 [n]`.

When it has queued the last number, worker1 does not leave at once: it waits
for worker2's receipt (`consumer_done`), the way a careful producer waits
for the acknowledgement of its last message. That fixes the order of the last
lines, `worker2 ok!` then `worker1 ok!`, whatever the timer does.
*/
static volatile bool consumer_done;

static void worker1(void)
{
    for (int i = 0; i <= LAST_ITEM; i++) {
        kprintf("worker1 [%d]\n", i);
        busy_work();
        while (!queue_push(i))
            yield(); // the queue is full: nothing to do until worker2 runs
    }
    while (!consumer_done)
        yield();
    kprintf("worker1 ok!\n");
}

static void worker2(void)
{
    for (;;) {
        int n;
        if (queue_pop(&n)) {
            kprintf("worker2 [%d]\n", n);
            busy_work();
            if (n == LAST_ITEM)
                break;
        } else {
            kprintf("worker2: nothing to do!\n");
            yield();
        }
    }
    kprintf("worker2 ok!\n");
    consumer_done = true;
}

/*
### The preemption test

The main thread starts the timer, spawns the two workers and waits for them.
Waiting is a `yield` loop, so main takes its turn in the round-robin like
everyone else; it just never has anything to do until both workers have
exited.

The test fails if not a single tick switched threads: the workers would then
have run to completion one after the other, and nothing would have been
preempted.
*/
static void multitask_test(void)
{
    kprintf("Multi-task(Preemptible) is starting ...\n");

    plat_timer_start(TICK_US);
    plat_irq_enable();

    struct thread *w1 = thread_spawn("worker1", worker1);
    struct thread *w2 = thread_spawn("worker2", worker2);

    kprintf("Wait for workers to exit ...\n");
    thread_join(w1);
    thread_join(w2);

    plat_irq_save();
    plat_timer_stop();
    kprintf("Multi-task(Preemptible) ok!\n");
    kprintf("Timer-driven context switches: %lu\n", timer_switches);
    if (timer_switches == 0) {
        kprintf("No timer interrupt ever preempted a worker (%lu ticks)\n",
                timer_ticks);
        plat_shutdown(false);
    }
}

/*
## The virtual device test

QEMU's `virt` machines have two CFI flash banks. The second one, `pflash1`,
holds an image we made for the test: 0xFF everywhere (erased flash) except the
four bytes `pfld` at offset 0. A flash bank in its reset state ("read array"
mode) reads like ROM, so one 32-bit load gets the magic. On x86-64 the flash is
the 4 MiB firmware window just below 4 GiB, whose lowest bytes hold the same
image. All three architectures are little-endian, so the bytes `p f l d` read
as the number 0x646c6670.

Under hvbook this load is the guest's first touch of a device outside its RAM:
the hypervisor lets it read the real flash (RISC-V, Arm) or answers it from
the flash's bytes itself (x86-64), and refuses any write.
*/
#define PFLASH_MAGIC 0x646c6670u /* "pfld", little-endian */

static void vdev_test(void)
{
    unsigned long base = plat_pflash_base;

    kprintf("Virtual Device (vdev) Test\n");
    kprintf("Reading PFlash at physical address 0x%08lx...\n", base);
    uint32_t v = *(volatile uint32_t *)plat_pflash_base;
    kprintf("Try to access pflash dev region [0x%08lx], got 0x%08x\n", base, v);
    if (v != PFLASH_MAGIC) {
        kprintf("Bad pflash magic: 0x%08x\n", v);
        plat_shutdown(false);
    }
    kprintf("Got pflash magic: %c%c%c%c\n", (char)v, (char)(v >> 8),
            (char)(v >> 16), (char)(v >> 24));
}

/*
## `kernel_main`

The entry code in `<arch>.S` arrives here on the boot stack, with interrupts
masked. From here on the boot stack is the stack of the `main` thread.
*/
static const char banner[] =
    " _          _                 _\n"
    "| |____   _| |__   ___   ___ | | __\n"
    "| '_ \\ \\ / / '_ \\ / _ \\ / _ \\| |/ /\n"
    "| | | \\ V /| |_) | (_) | (_) |   <\n"
    "|_| |_|\\_/ |_.__/ \\___/ \\___/|_|\\_\\\n"
    "gkernel: the hvbook guest kernel\n";

void kernel_main(void)
{
    plat_init();

    kprintf("%s", banner);
    kprintf("arch = %s\n", plat_arch);
    kprintf("platform = %s\n", plat_name);
    kprintf("smp = 1\n");
    plat_print_info();
    kprintf("\n");

    vdev_test();
    multitask_test();
    plat_shutdown(true);
}
