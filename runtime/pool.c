/* Persistent thread pool behind rt_parallel_for. Work is split into one contiguous range per
 * thread by index arithmetic alone, so which thread computes which index never depends on
 * timing; the caller thread runs range 0 and waits for the others. */
#include "rt_internal.h"

#include <pthread.h>
#include <stdlib.h>

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
    uint64_t generation; /* bumped for every job */
    int pending;         /* workers still running the current job */
    bool busy, stop;
    /* the current job */
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

static void *worker_main(void *p)
{
    Worker *w = p;
    RtThreadPool *pool = w->pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (pool->generation == seen && !pool->stop)
            pthread_cond_wait(&pool->work_cv, &pool->mu);
        if (pool->stop)
            break;
        seen = pool->generation;
        int64_t n = pool->n;
        void (*fn)(void *, int64_t, int64_t) = pool->fn;
        void *arg = pool->arg;
        pthread_mutex_unlock(&pool->mu);
        run_part(n, pool->n_workers + 1, w->part, fn, arg);
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->done_cv);
    }
    pthread_mutex_unlock(&pool->mu);
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
    p->stop = true;
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
    if (!p) {
        fn(arg, 0, n);
        return;
    }
    pthread_mutex_lock(&p->mu);
    if (p->busy) { /* nested call from inside a job */
        pthread_mutex_unlock(&p->mu);
        fn(arg, 0, n);
        return;
    }
    p->busy = true;
    p->n = n;
    p->fn = fn;
    p->arg = arg;
    p->pending = p->n_workers;
    p->generation++;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);

    run_part(n, p->n_workers + 1, 0, fn, arg);

    pthread_mutex_lock(&p->mu);
    while (p->pending > 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    p->busy = false;
    pthread_mutex_unlock(&p->mu);
}
