/* GEMM for generated code: row-major wrappers over single-threaded cblas_sgemm, split
 * over the runtime's own thread pool. OpenBLAS runs with one thread (ctx.c): with its own
 * workers spinning beside the pool, a 2-core machine lost a quarter of its cycles to the
 * scheduler. A GEMM is cut into fixed blocks of RT_GEMM_ROWS output rows (or a batch into
 * its matrices); the blocks do not depend on the thread count, and each output element is
 * accumulated over k in the same order whatever block it lands in, so results are
 * bit-identical for any --threads. */
#include "rt.h"

#include <cblas.h>
#include <stdbool.h>

enum { RT_GEMM_ROWS = 64 };
/* Below this many multiply-adds a GEMM runs on the calling thread. */
#define RT_GEMM_SERIAL_MACS ((int64_t)1 << 18)

static void gemm1(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (m <= 0 || n <= 0)
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
                (blasint)ldc);
}

typedef struct {
    int trans_a, trans_b;
    int64_t m, n, k;
    float alpha, beta;
    const float *a, *b;
    float *c;
    int64_t lda, ldb, ldc, stride_a, stride_b, stride_c, batch;
} Gemm;

/* Blocks [begin, end) of RT_GEMM_ROWS rows of one GEMM. Row i of op(A) is row i of A, or
 * column i when A is transposed. */
static void row_blocks(void *arg, int64_t begin, int64_t end)
{
    const Gemm *g = arg;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t r0 = blk * RT_GEMM_ROWS, rows = g->m - r0 < RT_GEMM_ROWS ? g->m - r0 : RT_GEMM_ROWS;
        const float *a = g->trans_a ? g->a + r0 : g->a + r0 * g->lda;
        gemm1(g->trans_a, g->trans_b, rows, g->n, g->k, g->alpha, a, g->lda, g->b, g->ldb, g->beta,
              g->c + r0 * g->ldc, g->ldc);
    }
}

/* Matrices [begin, end) of a batch. */
static void batch_items(void *arg, int64_t begin, int64_t end)
{
    const Gemm *g = arg;
    for (int64_t i = begin; i < end; i++)
        gemm1(g->trans_a, g->trans_b, g->m, g->n, g->k, g->alpha, g->a + i * g->stride_a, g->lda,
              g->b + i * g->stride_b, g->ldb, g->beta, g->c + i * g->stride_c, g->ldc);
}

void rt_sgemm_strided(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                      float alpha, const float *a, int64_t lda, int64_t stride_a, const float *b,
                      int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc,
                      int64_t stride_c, int64_t batch)
{
    if (m <= 0 || n <= 0 || batch <= 0)
        return;
    Gemm g = {trans_a, trans_b, m, n, k, alpha, beta, a, b, c, lda, ldb, ldc, stride_a, stride_b, stride_c, batch};
    bool parallel = ctx && ctx->n_threads > 1 && m * n * (k > 0 ? k : 1) * batch >= RT_GEMM_SERIAL_MACS;
    if (parallel && batch >= ctx->n_threads) {
        rt_parallel_for(ctx, batch, batch_items, &g);
        return;
    }
    for (int64_t i = 0; i < batch; i++) {
        g.a = a + i * stride_a;
        g.b = b + i * stride_b;
        g.c = c + i * stride_c;
        int64_t blocks = (m + RT_GEMM_ROWS - 1) / RT_GEMM_ROWS;
        if (parallel && blocks > 1)
            rt_parallel_for(ctx, blocks, row_blocks, &g);
        else
            row_blocks(&g, 0, blocks);
    }
}

void rt_sgemm(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc)
{
    rt_sgemm_strided(ctx, trans_a, trans_b, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0, 1);
}
