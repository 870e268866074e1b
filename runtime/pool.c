/* Persistent thread pool behind rt_parallel_for. Work is split into one contiguous range per
 * thread by index arithmetic alone, so which thread computes which index never depends on
 * timing; the caller thread runs range 0 and waits for the others.
 *
 * Hand-over: a compiled step issues hundreds of short jobs (tiny's has ~500 loop kernels
 * and GEMMs of 10-300 us each), and a futex sleep and wake-up per job and thread cost about
 * as much as a small job itself (14-21% of tiny's CPU samples sat in the kernel's
 * finish_task_switch, bench/RESULTS.md). So a worker that finishes a job, and the caller
 * waiting for the workers, first poll for a while, then sleep on the condition variable as
 * before. How long adapts per thread: a wait that ended while polling doubles the budget
 * (up to SPIN_MAX_NS), one that had to sleep quarters it (down to SPIN_MIN_NS). On an
 * oversubscribed machine the waits are long and polling would take CPU time from the
 * thread being waited for (measured: tiny's user time doubled at load 10 on 2 CPUs with a
 * fixed 100 us poll), so there the budget shrinks to almost nothing. Only timing changes;
 * which thread computes what does not. */
#include "rt_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

enum { SPIN_MAX_NS = 100000, SPIN_MIN_NS = 1000 }; /* bounds of a thread's polling budget */

typedef struct Worker {
    RtThreadPool *pool;
    int part; /* this worker's range index, 1..n_workers */
    pthread_t tid;
} Worker;

struct RtThreadPool {
    pthread_mutex_t mu;
    pthread_cond_t work_cv, done_cv;
    int n_workers;
    Worker *workers;
    atomic_uint_fast64_t generation; /* bumped for every job, after the job is written */
    atomic_int pending;              /* workers still running the current job */
    atomic_bool busy, stop;
    int64_t budget; /* the caller's polling budget (ns) while it waits for the workers */
    /* the current job: written by the caller before `generation` is bumped */
    int64_t n;
    void (*fn)(void *arg, int64_t begin, int64_t end);
    void *arg;
};

static void run_part(int64_t n, int parts, int part, void (*fn)(void *, int64_t, int64_t),
                     void *arg)
{
    int64_t begin = n * part / parts, end = n * (part + 1) / parts;
    if (begin < end)
        fn(arg, begin, end);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Polls until done(pool, x) or *budget ns have passed; true when done. Adapts *budget
 * (see the file comment). The clock is read every 64 polls only. */
static bool spin_until(RtThreadPool *p, bool (*done)(RtThreadPool *, uint64_t), uint64_t x,
                       int64_t *budget)
{
    int64_t t0 = 0;
    for (unsigned i = 1;; i++) {
        if (done(p, x)) {
            *budget = *budget * 2 < SPIN_MAX_NS ? *budget * 2 : SPIN_MAX_NS;
            return true;
        }
        CPU_RELAX();
        if (i % 64 == 0) {
            int64_t t = now_ns();
            if (!t0) {
                t0 = t;
            } else if (t - t0 > *budget) {
                *budget = *budget / 4 > SPIN_MIN_NS ? *budget / 4 : SPIN_MIN_NS;
                return false;
            }
        }
    }
}

static bool new_job(RtThreadPool *p, uint64_t seen)
{
    return atomic_load_explicit(&p->generation, memory_order_acquire) != seen ||
           atomic_load_explicit(&p->stop, memory_order_relaxed);
}

static bool all_done(RtThreadPool *p, uint64_t unused)
{
    (void)unused;
    return atomic_load_explicit(&p->pending, memory_order_acquire) == 0;
}

static void *worker_main(void *arg)
{
    Worker *w = arg;
    RtThreadPool *pool = w->pool;
    uint64_t seen = 0;
    int64_t budget = SPIN_MAX_NS;
    for (;;) {
        if (!spin_until(pool, new_job, seen, &budget)) {
            pthread_mutex_lock(&pool->mu);
            while (!new_job(pool, seen))
                pthread_cond_wait(&pool->work_cv, &pool->mu);
            pthread_mutex_unlock(&pool->mu);
        }
        if (atomic_load(&pool->stop))
            break;
        seen = atomic_load_explicit(&pool->generation, memory_order_acquire);
        run_part(pool->n, pool->n_workers + 1, w->part, pool->fn, pool->arg);
        if (atomic_fetch_sub_explicit(&pool->pending, 1, memory_order_acq_rel) == 1) {
            /* the caller may be asleep: it checks `pending` under the mutex before it waits */
            pthread_mutex_lock(&pool->mu);
            pthread_cond_signal(&pool->done_cv);
            pthread_mutex_unlock(&pool->mu);
        }
    }
    return NULL;
}

RtThreadPool *rt_threads_create(int n_workers)
{
    RtThreadPool *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->workers = calloc((size_t)n_workers, sizeof *p->workers);
    if (!p->workers) {
        free(p);
        return NULL;
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    atomic_init(&p->generation, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->busy, false);
    atomic_init(&p->stop, false);
    p->budget = SPIN_MAX_NS;
    for (int i = 0; i < n_workers; i++) {
        p->workers[i].pool = p;
        p->workers[i].part = i + 1;
        if (pthread_create(&p->workers[i].tid, NULL, worker_main, &p->workers[i]) != 0) {
            rt_threads_destroy(p);
            return NULL;
        }
        p->n_workers = i + 1;
    }
    return p;
}

void rt_threads_destroy(RtThreadPool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_workers; i++)
        pthread_join(p->workers[i].tid, NULL);
    pthread_cond_destroy(&p->done_cv);
    pthread_cond_destroy(&p->work_cv);
    pthread_mutex_destroy(&p->mu);
    free(p->workers);
    free(p);
}

void rt_parallel_for(RtCtx *ctx, int64_t n, void (*fn)(void *arg, int64_t begin, int64_t end),
                     void *arg)
{
    if (n <= 0)
        return;
    RtThreadPool *p = ctx->threads;
    if (!p || atomic_exchange(&p->busy, true)) { /* no pool, or a nested call from a job */
        fn(arg, 0, n);
        return;
    }
    p->n = n;
    p->fn = fn;
    p->arg = arg;
    atomic_store_explicit(&p->pending, p->n_workers, memory_order_relaxed);
    /* a worker checks `generation` under the mutex before it sleeps, so bumping it before
     * the broadcast wakes every sleeper; spinning workers see it at once */
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_release);
    pthread_mutex_lock(&p->mu);
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    run_part(n, p->n_workers + 1, 0, fn, arg);

    if (!spin_until(p, all_done, 0, &p->budget)) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load_explicit(&p->pending, memory_order_acquire) > 0)
            pthread_cond_wait(&p->done_cv, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
    atomic_store(&p->busy, false);
}
