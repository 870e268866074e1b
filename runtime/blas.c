/* rt_sgemm for generated code: the entry points of the GEMM engine (gemm.c) on the
 * runtime's pool. Small GEMMs run on the calling thread; the engine computes every output
 * element the same way on any number of threads, so results are bit-identical for any
 * --threads. A call without a context, or made while the context's engine is busy (from
 * inside a pool job: rt_fused.c's attention tiles), runs on the calling thread alone. */
#include "rt_internal.h"

/* Below this many multiply-adds a GEMM runs on the calling thread. */
#define RT_GEMM_SERIAL_MACS ((int64_t)1 << 18)

void rt_sgemm_strided(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                      float alpha, const float *a, int64_t lda, int64_t stride_a, const float *b,
                      int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc,
                      int64_t stride_c, int64_t batch)
{
    if (m <= 0 || n <= 0 || batch <= 0)
        return;
    RtGemm *g = ctx ? ctx->gemm : NULL;
    if (!g || !rt_gemm_acquire(g)) {
        rt_gemm_run_alone(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b,
                          beta, c, ldc, stride_c, batch);
        return;
    }
    int parts = ctx->n_threads > 1 && m * n * (k > 0 ? k : 1) * batch >= RT_GEMM_SERIAL_MACS
                    ? ctx->n_threads
                    : 1;
    rt_gemm_run(ctx, g, parts, trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb,
                stride_b, beta, c, ldc, stride_c, batch);
    rt_gemm_release(g);
}

void rt_sgemm(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc)
{
    rt_sgemm_strided(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}

void rt_sgemm_pair(RtCtx *ctx, int cat_k, int trans_b, int64_t m, int64_t n, int64_t k,
                   int64_t len2, float alpha, const float *a, int64_t lda, const float *a2,
                   int64_t lda2, const float *b, int64_t ldb, const float *b2, int64_t ldb2,
                   float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    RtGemm *g = ctx ? ctx->gemm : NULL;
    if (!g || !rt_gemm_acquire(g)) { /* the two GEMMs, each on the calling thread */
        rt_sgemm(NULL, 0, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        if (cat_k)
            rt_sgemm(NULL, 0, trans_b, m, n, len2, alpha, a2, lda2, b2, ldb2, 1.0f, c, ldc);
        else
            rt_sgemm(NULL, 0, trans_b, m, len2, k, alpha, a, lda, b2, ldb2, beta, c + n, ldc);
        return;
    }
    int64_t macs = m * (cat_k ? n * (k + len2) : (n + len2) * k);
    int parts = ctx->n_threads > 1 && macs >= RT_GEMM_SERIAL_MACS ? ctx->n_threads : 1;
    rt_gemm_run_pair(ctx, g, parts, cat_k, trans_b, m, n, k, len2, alpha, a, lda, a2, lda2, b,
                     ldb, b2, ldb2, beta, c, ldc);
    rt_gemm_release(g);
}
