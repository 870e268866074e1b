/* rt_sbgemm_strided: GEMMs with bf16 operands and f32 accumulation (precision = bf16 on
 * the CPU target, docs/runtime.md "bf16 GEMMs"). Each operand is f32 or bf16 in memory;
 * packing writes bf16 pairs (an f32 element is rounded to nearest even there, as
 * rt_f32_to_bf16), and an AVX512-BF16 micro-kernel (vdpbf16ps) multiplies them into f32
 * accumulators.
 *
 * Why our own kernel and not a library's: Debian 12's OpenBLAS 0.3.21 has no cblas_sbgemm
 * (built without BUILD_BFLOAT16: `nm -D libopenblasp-r0.3.21.so` lists none), BLIS 0.9 has
 * no bf16 GEMM, and oneDNN (libdnnl 2.6) brings an OpenMP pool of its own beside ours and
 * may split the reduction dimension. The loops here are gemm.c's (BLIS's) shape, kept in a
 * file of their own: B is packed once per GEMM in NR-column panels, each part of the pool
 * takes whole MR-row panels of C (never a slice of k) and packs its own rows, and every
 * element of C is the same sequence of micro-kernel calls (k-slices in order, beta on the
 * first) on any number of threads. Without AVX512-BF16 a scalar kernel computes the same
 * sums (each bf16 product is exact in f32, so acc + a*b rounds once, as vdpbf16ps does,
 * except that the instruction flushes denormals); trainers built for bf16 refuse such CPUs
 * at start-up (cpu.c), so the scalar kernel serves tests and odd callers only. */
#include "rt_internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define SB_AVX512_BF16 1
#endif

enum { MR = 12, NR = 32 };  /* a tile of C: 12 rows x 32 columns (24 zmm accumulators) */
enum { KC = 512 };          /* k per slice (256 bf16 pairs): a B panel is 32 KiB */
enum { MC = 96 };           /* rows of X a part packs at once */

/* Whether this CPU runs vdpbf16ps: read once per process (CPUID does not change). */
static pthread_once_t sb_once = PTHREAD_ONCE_INIT;
static bool sb_has_bf16;

static void sb_detect(void)
{
    RtCpu cpu;
    rt_cpu_detect(&cpu);
    sb_has_bf16 = rt_cpu_has(&cpu, "avx512bf16");
}

bool rt_sbgemm_native(void)
{
    pthread_once(&sb_once, sb_detect);
    return sb_has_bf16;
}

/* One operand: element (i, p) at base + i*sr + p*sk, f32 or bf16. */
typedef struct {
    const void *base;
    bool bf16;
    int64_t sr, sk;
} Operand;

static uint16_t elem(const Operand *o, int64_t i, int64_t p)
{
    int64_t at = i * o->sr + p * o->sk;
    return o->bf16 ? ((const uint16_t *)o->base)[at] : rt_f32_to_bf16(((const float *)o->base)[at]);
}

/* Packs rows [r0, r0 + rows) x k-columns [p0, p0 + kc) into panels of R rows: panel q holds
 * the pair (k = p0 + 2s, p0 + 2s + 1) of row r0 + q*R + r in dst[q*ps + s*R + r], the even
 * k in the low half; a missing k (odd kc) and rows past the end are zero. */
static void pack(uint32_t *dst, const Operand *o, int64_t r0, int64_t rows, int64_t p0, int64_t kc, int R)
{
    int64_t kp = (kc + 1) / 2, ps = kp * R;
    for (int64_t q = 0; q * R < rows; q++) {
        uint32_t *d = dst + q * ps;
        int64_t n = rows - q * R < R ? rows - q * R : R;
        for (int64_t r = 0; r < R; r++)
            for (int64_t s = 0; s < kp; s++) {
                uint32_t lo = 0, hi = 0;
                if (r < n) {
                    lo = elem(o, r0 + q * R + r, p0 + 2 * s);
                    if (2 * s + 1 < kc)
                        hi = elem(o, r0 + q * R + r, p0 + 2 * s + 1);
                }
                d[s * R + r] = lo | hi << 16;
            }
    }
}

static float bf16_lo(uint32_t w) { return rt_bf16_to_f32((uint16_t)(w & 0xFFFFu)); }
static float bf16_hi(uint32_t w) { return rt_bf16_to_f32((uint16_t)(w >> 16)); }

/* t[r*NR + j] = sum over kp pairs of a(r, pair) . b(pair, j), the high product first. */
static void ukr_scalar(int64_t kp, const uint32_t *a, const uint32_t *b, float *t)
{
    for (int r = 0; r < MR; r++)
        for (int j = 0; j < NR; j++) {
            float acc = 0.0f;
            for (int64_t s = 0; s < kp; s++) {
                uint32_t x = a[s * MR + r], y = b[s * NR + j];
                acc += bf16_hi(x) * bf16_hi(y); /* exact product: one rounding */
                acc += bf16_lo(x) * bf16_lo(y);
            }
            t[r * NR + j] = acc;
        }
}

#ifdef SB_AVX512_BF16
/* The same with vdpbf16ps: per pair, one broadcast of a row's pair against 32 columns. */
__attribute__((target("avx512f,avx512bf16"))) static void ukr_avx512(int64_t kp, const uint32_t *a,
                                                                    const uint32_t *b, float *t)
{
    __m512 c[MR][2];
    for (int r = 0; r < MR; r++)
        c[r][0] = c[r][1] = _mm512_setzero_ps();
    for (int64_t s = 0; s < kp; s++) {
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + s * NR);
        __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + s * NR + 16);
        for (int r = 0; r < MR; r++) {
            __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[s * MR + r]);
            c[r][0] = _mm512_dpbf16_ps(c[r][0], x, b0);
            c[r][1] = _mm512_dpbf16_ps(c[r][1], x, b1);
        }
    }
    for (int r = 0; r < MR; r++) {
        _mm512_storeu_ps(t + r * NR, c[r][0]);
        _mm512_storeu_ps(t + r * NR + 16, c[r][1]);
    }
}
#endif

/* C'[m', n'] (+)= alpha X Y, element (i, j) of C' at c + i*rs + j*cs. */
typedef struct {
    int64_t m, n, k;
    float alpha, beta;
    Operand x, y;
    float *c;
    int64_t rs, cs;
    const uint32_t *ypack; /* all of Y: slice-major, then NR panels */
    int parts;
    bool native;
    bool failed;           /* a part could not allocate its packing buffer */
} Job;

static int64_t slice_offset(const Job *j, int64_t p0)
{
    int64_t panels = (j->n + NR - 1) / NR;
    return panels * NR * (p0 / 2); /* each full slice before p0 holds KC / 2 pairs per column */
}

static void pack_y(void *arg, int64_t begin, int64_t end)
{
    const Job *j = arg;
    for (int64_t p0 = 0; p0 < j->k; p0 += KC) {
        int64_t kc = j->k - p0 < KC ? j->k - p0 : KC, kp = (kc + 1) / 2;
        uint32_t *base = (uint32_t *)j->ypack + slice_offset(j, p0);
        for (int64_t q = begin; q < end; q++) {
            int64_t cols = j->n - q * NR < NR ? j->n - q * NR : NR;
            pack(base + q * kp * NR, &j->y, q * NR, cols, p0, kc, NR);
        }
    }
}

static void compute_part(const Job *j, int t, uint32_t *xpack)
{
    int64_t panels = (j->m + MR - 1) / MR;
    int64_t lo = panels * t / j->parts * MR, hi = panels * (t + 1) / j->parts * MR;
    if (hi > j->m)
        hi = j->m;
    float tile[MR * NR];
    for (int64_t b0 = lo; b0 < hi; b0 += MC) {
        int64_t rows = hi - b0 < MC ? hi - b0 : MC;
        for (int64_t p0 = 0; p0 < j->k; p0 += KC) {
            int64_t kc = j->k - p0 < KC ? j->k - p0 : KC, kp = (kc + 1) / 2;
            float beta = p0 == 0 ? j->beta : 1.0f;
            pack(xpack, &j->x, b0, rows, p0, kc, MR);
            const uint32_t *yp = j->ypack + slice_offset(j, p0);
            for (int64_t jr = 0; jr < j->n; jr += NR) {
                const uint32_t *bp = yp + jr / NR * kp * NR;
                int64_t nr = j->n - jr < NR ? j->n - jr : NR;
                for (int64_t ir = 0; ir < rows; ir += MR) {
                    const uint32_t *ap = xpack + ir / MR * kp * MR;
                    int64_t mr = rows - ir < MR ? rows - ir : MR;
#ifdef SB_AVX512_BF16
                    if (j->native)
                        ukr_avx512(kp, ap, bp, tile);
                    else
#endif
                        ukr_scalar(kp, ap, bp, tile);
                    for (int64_t r = 0; r < mr; r++)
                        for (int64_t q = 0; q < nr; q++) {
                            float *cp = j->c + (b0 + ir + r) * j->rs + (jr + q) * j->cs;
                            float v = j->alpha * tile[r * NR + q];
                            *cp = beta == 0.0f ? v : v + beta * *cp;
                        }
                }
            }
        }
    }
}

static void compute_parts(void *arg, int64_t begin, int64_t end)
{
    Job *j = arg;
    size_t bytes = (size_t)MC * (KC / 2) * sizeof(uint32_t);
    uint32_t *xpack = aligned_alloc(64, bytes);
    if (!xpack) {
        j->failed = true; /* a plain store: every writer writes true */
        return;
    }
    for (int64_t t = begin; t < end; t++)
        compute_part(j, (int)t, xpack);
    free(xpack);
}

static void oom(void)
{
    fprintf(stderr, "relorac runtime: out of memory for bf16 GEMM packing buffers\n");
    abort();
}

/* One GEMM: C'[m', n'] on `parts` parts. */
static void sb_one(RtCtx *ctx, int parts, int64_t m, int64_t n, int64_t k, float alpha, Operand x, Operand y,
                   float beta, float *c, int64_t rs, int64_t cs)
{
    Job j = {m, n, k, alpha, beta, x, y, c, rs, cs, NULL, parts, rt_sbgemm_native(), false};
    int64_t panels = (n + NR - 1) / NR;
    size_t words = (size_t)(panels * NR) * (size_t)((k + 1) / 2 + (k / KC + 1)); /* + odd pads */
    uint32_t *ypack = aligned_alloc(64, (words * sizeof(uint32_t) + 63) / 64 * 64);
    if (!ypack)
        oom();
    j.ypack = ypack;
    if (parts > 1) {
        rt_parallel_for(ctx, panels, pack_y, &j);
        rt_parallel_for(ctx, parts, compute_parts, &j);
    } else {
        pack_y(&j, 0, panels);
        compute_parts(&j, 0, 1);
    }
    free(ypack);
    if (j.failed)
        oom();
}

void rt_sbgemm_strided(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                       const void *a, int a_bf16, int64_t lda, int64_t stride_a, const void *b, int b_bf16,
                       int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc, int64_t stride_c,
                       int64_t batch)
{
    if (m <= 0 || n <= 0 || batch <= 0)
        return;
    /* the same rule as rt_sgemm: small GEMMs on the calling thread (the split never
     * changes the bits) */
    int parts = ctx && ctx->n_threads > 1 && m * n * (k > 0 ? k : 1) * batch >= ((int64_t)1 << 18)
                    ? ctx->n_threads
                    : 1;
    size_t ea = a_bf16 ? 2 : 4, eb = b_bf16 ? 2 : 4;
    for (int64_t i = 0; i < batch; i++) {
        const char *ai = (const char *)a + (size_t)(i * stride_a) * ea;
        const char *bi = (const char *)b + (size_t)(i * stride_b) * eb;
        float *ci = c + i * stride_c;
        if (k <= 0) {
            for (int64_t r = 0; r < m; r++)
                for (int64_t q = 0; q < n; q++)
                    ci[r * ldc + q] = beta == 0.0f ? 0.0f : beta * ci[r * ldc + q];
            continue;
        }
        /* op(A)(r, p) = a[r*am + p*ak], op(B)(p, q) = b[p*bk + q*bn] */
        Operand A = {ai, a_bf16 != 0, trans_a ? 1 : lda, trans_a ? lda : 1};
        Operand Bt = {bi, b_bf16 != 0, trans_b ? ldb : 1, trans_b ? 1 : ldb}; /* op(B)^T(q, p) */
        /* the parts split the longer side of C (a rule of the shape alone) */
        if (m >= n)
            sb_one(ctx, parts, m, n, k, alpha, A, Bt, beta, ci, ldc, 1);
        else
            sb_one(ctx, parts, n, m, k, alpha, Bt, A, beta, ci, 1, ldc);
    }
}
