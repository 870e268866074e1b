/* The emulator behind cuda_emu.h: blocks in order, a block's threads as fibers
 * (makecontext/swapcontext) run from a scheduler context between rendezvous, in thread
 * order and in reverse order by turns (so a missing barrier shows), barriers and
 * warp rendezvous released by the scheduler when every participant waits. One launch at a
 * time (the state below is the one emulated GPU of the process). */
#define _GNU_SOURCE
#include "cuda_emu.h"

#include <stdio.h>
#include <stdlib.h>
#include <ucontext.h>

enum { T_RUN, T_BARRIER, T_WARP, T_DONE };
enum { W_SYNC, W_XOR, W_IDX };
enum { V_F, V_I, V_LL };
enum { STACK = 128 * 1024 };

typedef union Val {
    float f;
    int i;
    long long ll;
} Val;

typedef struct Thread {
    ucontext_t ctx;
    EmuDim3 tid;
    int state;
    int wkind, warg, vtype; /* the warp rendezvous it waits at */
    Val val, res;
} Thread;

static struct {
    Thread *t;
    int cap;
    char *stacks;
    int n;
    EmuDim3 block_idx, block_dim, grid_dim, direct_tid;
    float *smem;
    ucontext_t sched;
    int cur;
    int fibers;
    const EmuKernel *k;
    void **params;
    int failed;
} E;

/* The launch state lives as long as the shared object: freed when the test unloads it. */
__attribute__((destructor)) static void emu_fini(void)
{
    free(E.smem);
    free(E.t);
    free(E.stacks);
}

static void fail(const char *what)
{
    if (!E.failed)
        fprintf(stderr, "cuda_emu: kernel %s: %s\n", E.k ? E.k->name : "?", what);
    E.failed = 1;
}

const EmuDim3 *emu_thread_idx(void) { return E.fibers ? &E.t[E.cur].tid : &E.direct_tid; }
const EmuDim3 *emu_block_idx(void) { return &E.block_idx; }
const EmuDim3 *emu_block_dim(void) { return &E.block_dim; }
const EmuDim3 *emu_grid_dim(void) { return &E.grid_dim; }
float *emu_dynamic_smem(void) { return E.smem; }

/* Suspends the running fiber in state st until the scheduler releases it. */
static void wait_as(int st)
{
    if (!E.fibers) {
        fail("a barrier or shuffle in a kernel launched without fibers");
        return;
    }
    Thread *t = &E.t[E.cur];
    t->state = st;
    swapcontext(&t->ctx, &E.sched);
}

void emu_syncthreads(void) { wait_as(T_BARRIER); }

static Val warp_op(int kind, int arg, int vtype, Val v)
{
    if (!E.fibers) {
        fail("a warp operation in a kernel launched without fibers");
        return v;
    }
    Thread *t = &E.t[E.cur];
    t->wkind = kind;
    t->warg = arg;
    t->vtype = vtype;
    t->val = v;
    wait_as(T_WARP);
    return t->res;
}

void emu_syncwarp(void) { warp_op(W_SYNC, 0, V_I, (Val){.i = 0}); }

float emu_shfl_xor_f(unsigned mask, float v, int m)
{
    (void)mask;
    return warp_op(W_XOR, m, V_F, (Val){.f = v}).f;
}

float emu_shfl_f(unsigned mask, float v, int src)
{
    (void)mask;
    return warp_op(W_IDX, src, V_F, (Val){.f = v}).f;
}

int emu_shfl_i(unsigned mask, int v, int src)
{
    (void)mask;
    return warp_op(W_IDX, src, V_I, (Val){.i = v}).i;
}

long long emu_shfl_ll(unsigned mask, long long v, int src)
{
    (void)mask;
    return warp_op(W_IDX, src, V_LL, (Val){.ll = v}).ll;
}

static void entry(void)
{
    E.k->run(E.params);
    E.t[E.cur].state = T_DONE; /* returning resumes the scheduler (uc_link) */
}

/* Releases warp w when all its lanes wait at the same rendezvous; 1 when released. */
static int release_warp(int w)
{
    int lo = w * 32, hi = lo + 32 < E.n ? lo + 32 : E.n;
    for (int i = lo; i < hi; i++)
        if (E.t[i].state != T_WARP || E.t[i].wkind != E.t[lo].wkind || E.t[i].vtype != E.t[lo].vtype)
            return 0;
    for (int i = lo; i < hi; i++) {
        Thread *t = &E.t[i];
        int src = t->wkind == W_XOR ? ((i - lo) ^ t->warg) : t->warg;
        if (t->wkind != W_SYNC) {
            if (src < 0 || lo + src >= hi) {
                fail("a shuffle reads a lane outside the warp");
                src = i - lo;
            }
            t->res = E.t[lo + src].val;
        }
    }
    for (int i = lo; i < hi; i++)
        E.t[i].state = T_RUN;
    return 1;
}

static int run_block(void)
{
    for (int i = 0; i < E.n; i++) {
        Thread *t = &E.t[i];
        t->tid = (EmuDim3){(unsigned)i, 0, 0};
        t->state = T_RUN;
        getcontext(&t->ctx);
        t->ctx.uc_stack.ss_sp = E.stacks + (size_t)i * STACK;
        t->ctx.uc_stack.ss_size = STACK;
        t->ctx.uc_link = &E.sched;
        makecontext(&t->ctx, entry, 0);
    }
    /* forward, then backward, then forward...: a read that misses the barrier after
     * another thread's write sees the old value in one of the two orders */
    for (int rev = 0;; rev = !rev) {
        for (int q = 0; q < E.n; q++) {
            int i = rev ? E.n - 1 - q : q;
            if (E.t[i].state == T_RUN) {
                E.cur = i;
                swapcontext(&E.sched, &E.t[i].ctx);
            }
        }
        int done = 0, barrier = 0, released = 0;
        for (int i = 0; i < E.n; i++) {
            done += E.t[i].state == T_DONE;
            barrier += E.t[i].state == T_BARRIER;
        }
        if (done == E.n)
            return 0;
        for (int w = 0; w * 32 < E.n; w++)
            released += release_warp(w);
        if (released)
            continue;
        if (barrier == E.n) {
            for (int i = 0; i < E.n; i++)
                E.t[i].state = T_RUN;
            continue;
        }
        char msg[160];
        snprintf(msg, sizeof msg, "deadlock in block %u: %d threads done, %d at a barrier, %d at a warp rendezvous",
                 E.block_idx.x, done, barrier, E.n - done - barrier);
        fail(msg);
        return -1;
    }
}

int emu_launch(const EmuKernel *k, unsigned grid, unsigned block, size_t smem, void **params, int fibers)
{
    E.k = k;
    E.params = params;
    E.failed = 0;
    E.fibers = fibers;
    E.n = (int)block;
    E.block_dim = (EmuDim3){block, 1, 1};
    E.grid_dim = (EmuDim3){grid, 1, 1};
    free(E.smem);
    E.smem = malloc(smem ? smem : 4);
    if (!E.smem) {
        fail("out of memory");
        return -1;
    }
    memset(E.smem, 0xFF, smem ? smem : 4); /* NaNs: a read of unwritten shared memory shows */
    if (fibers && E.cap < (int)block) {
        free(E.t);
        free(E.stacks);
        E.t = calloc(block, sizeof *E.t);
        E.stacks = malloc((size_t)block * STACK);
        E.cap = E.t && E.stacks ? (int)block : 0;
        if (!E.cap) {
            fail("out of memory");
            return -1;
        }
    }
    for (unsigned b = 0; b < grid && !E.failed; b++) {
        E.block_idx = (EmuDim3){b, 0, 0};
        if (fibers) {
            if (run_block() != 0)
                return -1;
        } else {
            for (unsigned i = 0; i < block && !E.failed; i++) {
                E.direct_tid = (EmuDim3){i, 0, 0};
                k->run(params);
            }
        }
    }
    return E.failed ? -1 : 0;
}
