/* sgemm.c: this machine's OpenBLAS sgemm GFLOP/s at the shapes a relorac trainer runs, with
 * the trainer's thread count (rt_ctx_create calls openblas_set_num_threads(n_threads)).
 * Build: cc -O2 -o sgemm bench/sgemm.c -lopenblas
 * Usage: sgemm [-t THREADS] [-r REPS] [NAME:M,N,K[,TA,TB[,BATCH]]]...
 * Each shape is run REPS times after one untimed call; the best rep is reported as one JSON
 * line {"name","m","n","k","ta","tb","batch","best_s","gflops"}; flops = 2·M·N·K·BATCH.
 * BATCH > 1 loops over independent [M,K]x[K,N] problems, as rt_sgemm_strided does. */
#define _POSIX_C_SOURCE 200809L
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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
static void run_shape(const char *name, int m, int n, int k, int ta, int tb, int batch, int reps)
{
    size_t sa = (size_t)m * k, sb = (size_t)k * n, sc = (size_t)m * n;
    float *a = filled(sa * batch), *b = filled(sb * batch), *c = filled(sc * batch);
    int lda = ta ? m : k, ldb = tb ? k : n;
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
        for (int i = 0; i < batch; i++)
            cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                        m, n, k, 1.0f, a + i * sa, lda, b + i * sb, ldb, 0.0f, c + i * sc, n);
        double dt = now() - t0;
        if (r > 0 && dt < best) /* rep 0 warms caches and the thread pool */
            best = dt;
    }
    double flops = 2.0 * m * n * k * batch;
    printf("{\"name\":\"%s\",\"m\":%d,\"n\":%d,\"k\":%d,\"ta\":%d,\"tb\":%d,\"batch\":%d,"
           "\"best_s\":%.6g,\"gflops\":%.2f}\n",
           name, m, n, k, ta, tb, batch, best, flops / best * 1e-9);
    fflush(stdout);
    free(a);
    free(b);
    free(c);
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 5, nshapes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "-r") && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else {
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
            openblas_set_num_threads(threads);
            run_shape(name, m, n, k, ta, tb, batch, reps);
            nshapes++;
        }
    }
    if (nshapes == 0) {
        openblas_set_num_threads(threads);
        run_shape("square1024", 1024, 1024, 1024, 0, 0, 1, reps);
        run_shape("square2048", 2048, 2048, 2048, 0, 0, 1, reps);
    }
    return 0;
}
