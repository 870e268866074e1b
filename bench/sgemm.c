/* sgemm.c: sgemm GFLOP/s of the GEMM candidates at the shapes a relorac trainer runs.
 * Build: cc -O2 -Iruntime -o sgemm bench/sgemm.c BUILD/runtime/librelorac_rt.a -ldl -lpthread -lm
 * Usage: sgemm [-b BACKEND] [-t THREADS] [-r REPS] [NAME:M,N,K[,TA,TB[,BATCH]]]...
 * Backends:
 *   relorac          rt_sgemm_strided: the runtime's engine (gemm.c) on its own pool
 *   blocks           OpenBLAS single-threaded on fixed 64-row blocks over the runtime's pool
 *                    (relorac's GEMM path before gemm.c)
 *   openblas[:CORE]  OpenBLAS's cblas_sgemm with its own THREADS threads; CORE sets
 *                    OPENBLAS_CORETYPE (Prescott reproduces Debian 0.3.21 on unknown CPUs)
 *   blis[:ID]        BLIS's cblas_sgemm with its own THREADS threads (libblis.so.4 must be the
 *                    pthread flavour for THREADS > 1); ID sets BLIS_ARCH_TYPE (0 skx, 3 haswell)
 *   dnnl             oneDNN's dnnl_sgemm with THREADS OpenMP threads
 * Each shape runs REPS times after one untimed call; the best rep is reported as one JSON line
 * {"backend","core","threads","name","m","n","k","ta","tb","batch","best_s","gflops",
 *  "cpu_gflops"}; flops = 2·M·N·K·BATCH; cpu_gflops uses the process CPU time of the best
 * rep instead of wall time (with one thread it is robust to other processes' load).
 * BATCH > 1 is one strided call for relorac, a loop of calls for the others. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rt_internal.h"

typedef void (*CblasSgemm)(int, int, int, int, int, int, float, const float *, int, const float *,
                           int, float, float *, int);
typedef int (*DnnlSgemm)(char, char, int64_t, int64_t, int64_t, float, const float *, int64_t,
                         const float *, int64_t, float, float *, int64_t);

typedef struct {
    const char *backend;
    char core[128];
    int threads;
    RtCtx ctx;
    CblasSgemm cblas;
    DnnlSgemm dnnl;
} Bench;

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *load(const char *lib, const char *sym_name, void *fn_out, size_t fn_size)
{
    void *dl = dlopen(lib, RTLD_NOW | RTLD_LOCAL);
    void *p = dl ? dlsym(dl, sym_name) : NULL;
    if (!p) {
        fprintf(stderr, "sgemm: cannot load %s from %s: %s\n", sym_name, lib, dlerror());
        exit(2);
    }
    memcpy(fn_out, &p, fn_size);
    return dl;
}

static void setup(Bench *b, const char *spec)
{
    char name[64];
    snprintf(name, sizeof name, "%s", spec);
    char *arg = strchr(name, ':');
    if (arg)
        *arg++ = 0;
    b->backend = strdup(name);
    if (!strcmp(name, "relorac") || !strcmp(name, "blocks")) {
        b->ctx.n_threads = b->threads;
        b->ctx.threads = b->threads > 1 ? rt_threads_create(b->threads - 1) : NULL;
        if (!strcmp(name, "relorac")) {
            RtError e = {0};
            if (!rt_gemm_create(&b->ctx.gemm, b->threads, &e)) {
                fprintf(stderr, "sgemm: %s\n", e.msg);
                exit(2);
            }
            snprintf(b->core, sizeof b->core, "%s", rt_gemm_describe(b->ctx.gemm));
            if (rt_gemm_note(b->ctx.gemm))
                fprintf(stderr, "sgemm: note: %s\n", rt_gemm_note(b->ctx.gemm));
            return;
        }
        name[0] = 0; /* blocks: OpenBLAS with its own detection, one thread */
    }
    if (!strcmp(b->backend, "openblas") || !strcmp(b->backend, "blocks")) {
        if (arg)
            setenv("OPENBLAS_CORETYPE", arg, 1);
        void *dl = load("libopenblas.so.0", "cblas_sgemm", &b->cblas, sizeof b->cblas);
        void (*set)(int);
        char *(*corename)(void);
        load("libopenblas.so.0", "openblas_set_num_threads", &set, sizeof set);
        load("libopenblas.so.0", "openblas_get_corename", &corename, sizeof corename);
        set(!strcmp(b->backend, "blocks") ? 1 : b->threads);
        snprintf(b->core, sizeof b->core, "%s", corename());
        (void)dl;
    } else if (!strcmp(name, "blis")) {
        if (arg)
            setenv("BLIS_ARCH_TYPE", arg, 1);
        load("libblis.so.4", "cblas_sgemm", &b->cblas, sizeof b->cblas);
        void (*set)(int64_t), (*init)(void);
        int (*query)(void);
        const char *(*arch)(int);
        load("libblis.so.4", "bli_thread_set_num_threads", &set, sizeof set);
        load("libblis.so.4", "bli_init", &init, sizeof init);
        load("libblis.so.4", "bli_arch_query_id", &query, sizeof query);
        load("libblis.so.4", "bli_arch_string", &arch, sizeof arch);
        init();
        set(b->threads);
        snprintf(b->core, sizeof b->core, "%s", arch(query()));
    } else if (!strcmp(name, "dnnl")) {
        load("libdnnl.so.2", "dnnl_sgemm", &b->dnnl, sizeof b->dnnl);
        void (*set)(int);
        load("libgomp.so.1", "omp_set_num_threads", &set, sizeof set);
        set(b->threads);
        snprintf(b->core, sizeof b->core, "oneDNN (OpenMP)");
    } else if (strcmp(name, "")) {
        fprintf(stderr, "sgemm: unknown backend '%s'\n", spec);
        exit(2);
    }
}

typedef struct {
    const Bench *b;
    int ta, tb, m, n, k;
    const float *a, *bm;
    float *c;
} Blocks;

static void blocks_fn(void *arg, int64_t begin, int64_t end)
{
    const Blocks *j = arg;
    int lda = j->ta ? j->m : j->k, ldb = j->tb ? j->k : j->n;
    for (int64_t blk = begin; blk < end; blk++) {
        int r0 = (int)blk * 64, rows = j->m - r0 < 64 ? j->m - r0 : 64;
        j->b->cblas(101, j->ta ? 112 : 111, j->tb ? 112 : 111, rows, j->n, j->k, 1.0f,
                    j->ta ? j->a + r0 : j->a + (size_t)r0 * lda, lda, j->bm, ldb, 0.0f,
                    j->c + (size_t)r0 * j->n, j->n);
    }
}

static float *filled(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "sgemm: out of memory\n");
        exit(2);
    }
    for (size_t i = 0; i < n; i++)
        p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
    return p;
}

/* One shape: C[M,N] = op(A) op(B), row-major, op(A) [M,K], op(B) [K,N]. */
static void run_shape(Bench *b, const char *name, int m, int n, int k, int ta, int tb, int batch,
                      int reps)
{
    size_t sa = (size_t)m * k, sb = (size_t)k * n, sc = (size_t)m * n;
    float *a = filled(sa * batch), *bm = filled(sb * batch), *c = filled(sc * batch);
    int lda = ta ? m : k, ldb = tb ? k : n;
    double best = 1e30, best_cpu = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        if (!strcmp(b->backend, "relorac")) {
            rt_sgemm_strided(&b->ctx, ta, tb, m, n, k, 1.0f, a, lda, (int64_t)sa, bm, ldb,
                             (int64_t)sb, 0.0f, c, n, (int64_t)sc, batch);
        } else {
            for (int i = 0; i < batch; i++) {
                const float *ai = a + i * sa, *bi = bm + i * sb;
                float *ci = c + i * sc;
                if (b->dnnl) {
                    b->dnnl(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, 1.0f, ai, lda, bi, ldb, 0.0f,
                            ci, n);
                } else if (!strcmp(b->backend, "blocks")) {
                    Blocks j = {b, ta, tb, m, n, k, ai, bi, ci};
                    rt_parallel_for((RtCtx *)&b->ctx, (m + 63) / 64, blocks_fn, &j);
                } else {
                    b->cblas(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, 1.0f, ai, lda, bi, ldb,
                             0.0f, ci, n);
                }
            }
        }
        double dt = clock_s(CLOCK_MONOTONIC) - t0, dc = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        if (r > 0 && dt < best) /* rep 0 warms caches, buffers and thread pools */
            best = dt;
        if (r > 0 && dc < best_cpu)
            best_cpu = dc;
    }
    double flops = 2.0 * m * n * k * batch;
    printf("{\"backend\":\"%s\",\"core\":\"%s\",\"threads\":%d,\"name\":\"%s\",\"m\":%d,\"n\":%d,"
           "\"k\":%d,\"ta\":%d,\"tb\":%d,\"batch\":%d,\"best_s\":%.6g,\"gflops\":%.2f,"
           "\"cpu_gflops\":%.2f}\n",
           b->backend, b->core, b->threads, name, m, n, k, ta, tb, batch, best,
           flops / best * 1e-9, flops / best_cpu * 1e-9);
    fflush(stdout);
    free(a);
    free(bm);
    free(c);
}

int main(int argc, char **argv)
{
    Bench b = {.threads = 2};
    const char *backend = "relorac";
    int reps = 5, nshapes = 0, i = 1;
    for (; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            b.threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b") && i + 1 < argc)
            backend = argv[++i];
        else
            break;
    }
    if (b.threads < 1 || reps < 1) {
        fprintf(stderr, "sgemm: -t and -r must be >= 1\n");
        return 2;
    }
    setup(&b, backend);
    for (; i < argc; i++) {
        char name[64];
        int m, n, k, ta = 0, tb = 0, batch = 1;
        const char *colon = strchr(argv[i], ':');
        if (!colon || colon - argv[i] >= (long)sizeof name ||
            sscanf(colon + 1, "%d,%d,%d,%d,%d,%d", &m, &n, &k, &ta, &tb, &batch) < 3) {
            fprintf(stderr, "sgemm: bad shape '%s' (NAME:M,N,K[,TA,TB[,BATCH]])\n", argv[i]);
            return 2;
        }
        memcpy(name, argv[i], (size_t)(colon - argv[i]));
        name[colon - argv[i]] = 0;
        run_shape(&b, name, m, n, k, ta, tb, batch, reps);
        nshapes++;
    }
    if (nshapes == 0) {
        run_shape(&b, "square1024", 1024, 1024, 1024, 0, 0, 1, reps);
        run_shape(&b, "square2048", 2048, 2048, 2048, 0, 0, 1, reps);
    }
    return 0;
}
