/* Runtime routines behind the kernel IR's fused kernels (ir/kernel.h): attention over
 * tiles with an online softmax (K_ATTENTION) and the LM head's cross-entropy over row
 * chunks (K_HEAD_LOSS). Each follows the algorithm kernel.h states, step for step, so the
 * kernel interpreter (f64) is its reference. Why our own code: no BLAS has fused
 * attention or a chunked linear cross-entropy; the tile products are BLAS calls
 * (cblas_sgemm through rt_sgemm, one thread per tile), and what lies between them (the
 * softmax rows, exponentials included) is vector code below.
 *
 * Exponentials: a Cephes-style expf on 8-float vectors (GCC/Clang vector extensions),
 * compiled twice, for AVX2 and for the x86-64 baseline, and picked at run time; both give
 * the same bits (no contraction into FMA in ISO C mode). Relative error below 2e-7 on
 * [-87.3, 88.4]; below -87.3 it returns 0 (masked scores are -inf).
 *
 * Threads: work is split over tasks that each own their outputs (forward: a query tile of
 * one head; backward: one kv head with all its query heads; head loss: rows of a chunk),
 * sums run in a fixed order inside one task, so results do not depend on the thread
 * count. Scratch tiles live on the worker's stack: tile_q tile_k + tile_q (D + 2) floats in
 * the forward, 2 tile_q tile_k + 2 tile_k D + tile_q in the backward (98 KiB at tiles of 64
 * and D = 128). */
#include "rt_fused.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "rt.h"

/* ---- vector exponentials and row helpers ---- */

/* The helpers pass 32-byte vectors by value; they are always inlined, so GCC's note that
 * such an ABI differs with and without AVX concerns no call that exists. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wpsabi"
#endif

typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));

#define ALWAYS_INLINE static inline __attribute__((always_inline))

ALWAYS_INLINE v8f splat(float x) { return (v8f){x, x, x, x, x, x, x, x}; }

ALWAYS_INLINE v8f vsel(v8i m, v8f a, v8f b) { return (v8f)((m & (v8i)a) | (~m & (v8i)b)); }

ALWAYS_INLINE v8f vload(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

ALWAYS_INLINE void vstore(float *p, v8f v) { memcpy(p, &v, sizeof v); }

/* Cephes expf: exp(x) = 2^n exp(r), n = round(x log2 e), r = x - n ln 2 (ln 2 in two
 * parts), exp(r) by a degree-7 polynomial. NaN stays NaN (a diverged loss must show);
 * the integer steps only ever see clamped, finite values. */
ALWAYS_INLINE v8f vexp(v8f x0)
{
    v8i under = x0 < splat(-87.33654f), nan = x0 != x0;
    v8f x = vsel(x0 > splat(88.37626f), splat(88.37626f), x0);
    x = vsel(under | nan, splat(0.0f), x);
    v8f fx = x * splat(1.44269504088896341f) + splat(0.5f);
    v8i t = __builtin_convertvector(fx, v8i);
    v8f tf = __builtin_convertvector(t, v8f);
    v8i over = tf > fx; /* truncation rounded up: floor is one less */
    t = t + over;
    tf = __builtin_convertvector(t, v8f);
    v8f r = x - tf * splat(0.693359375f) - tf * splat(-2.12194440e-4f);
    v8f p = splat(1.9875691500e-4f);
    p = p * r + splat(1.3981999507e-3f);
    p = p * r + splat(8.3334519073e-3f);
    p = p * r + splat(4.1665795894e-2f);
    p = p * r + splat(1.6666665459e-1f);
    p = p * r + splat(5.0000001201e-1f);
    p = p * (r * r) + r + splat(1.0f);
    v8f pow2 = (v8f)((v8u)(t + 127) << 23);
    return vsel(nan, x0, vsel(under, splat(0.0f), p * pow2));
}

/* The same for one float, through lane 0 (tails of rows). */
ALWAYS_INLINE float sexp(float x) { return vexp(splat(x))[0]; }

ALWAYS_INLINE float hsum(v8f v) { return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7])); }

ALWAYS_INLINE float hmax(v8f v)
{
    float m = v[0];
    for (int i = 1; i < 8; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

/* max(m0, max of x[0..n)) */
ALWAYS_INLINE float row_max(const float *x, int64_t n, float m0)
{
    int64_t i = 0;
    float m = m0;
    if (n >= 8) {
        v8f vm = splat(m0);
        for (; i + 8 <= n; i += 8) {
            v8f v = vload(x + i);
            vm = vsel(v > vm, v, vm);
        }
        m = hmax(vm);
    }
    for (; i < n; i++)
        m = x[i] > m ? x[i] : m;
    return m;
}

/* x[i] = exp(a x[i] - b); returns their sum. */
ALWAYS_INLINE float exp_row(float *x, int64_t n, float a, float b)
{
    int64_t i = 0;
    v8f vs = splat(0.0f), va = splat(a), vb = splat(b);
    for (; i + 8 <= n; i += 8) {
        v8f e = vexp(vload(x + i) * va - vb);
        vstore(x + i, e);
        vs += e;
    }
    float s = hsum(vs);
    for (; i < n; i++) {
        x[i] = sexp(x[i] * a - b);
        s += x[i];
    }
    return s;
}

/* x[i] = p[i] (x[i] - b) */
ALWAYS_INLINE void dsoftmax_row(float *x, const float *p, int64_t n, float b)
{
    int64_t i = 0;
    v8f vb = splat(b);
    for (; i + 8 <= n; i += 8)
        vstore(x + i, vload(p + i) * (vload(x + i) - vb));
    for (; i < n; i++)
        x[i] = p[i] * (x[i] - b);
}

ALWAYS_INLINE float dot_row(const float *x, const float *y, int64_t n)
{
    int64_t i = 0;
    v8f vs = splat(0.0f);
    for (; i + 8 <= n; i += 8)
        vs += vload(x + i) * vload(y + i);
    float s = hsum(vs);
    for (; i < n; i++)
        s += x[i] * y[i];
    return s;
}

ALWAYS_INLINE void scale_row(float *x, int64_t n, float a)
{
    int64_t i = 0;
    v8f va = splat(a);
    for (; i + 8 <= n; i += 8)
        vstore(x + i, vload(x + i) * va);
    for (; i < n; i++)
        x[i] *= a;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* One tile product on the calling thread: C = alpha op(A) op(B) + beta C. */
static void gemm(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                 const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    rt_sgemm(NULL, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

/* ---- attention ---- */

typedef struct {
    int64_t B, H, Hkv, T, D, tq, tk;
    int causal;
    float scale;
    const float *q, *k, *v, *y, *lse, *dy;
    float *out, *lse_out, *dq, *dk, *dv;
} Attn;

static int64_t q_off(const Attn *a, int64_t b, int64_t h, int64_t i) { return ((b * a->H + h) * a->T + i) * a->D; }
static int64_t kv_off(const Attn *a, int64_t b, int64_t g, int64_t j) { return ((b * a->Hkv + g) * a->T + j) * a->D; }

/* Masks the causal part of a score tile (rows i0.., keys j0..): entries with j > i. */
ALWAYS_INLINE void mask_tile(float *S, int64_t ldS, int64_t nr, int64_t nc, int64_t i0, int64_t j0, float value)
{
    for (int64_t r = 0; r < nr; r++)
        for (int64_t c = i0 + r - j0 + 1; c < nc; c++)
            if (c >= 0)
                S[r * ldS + c] = value;
}

/* Forward tasks [begin, end) of (b, h, query tile), kernel.h's algorithm. */
ALWAYS_INLINE void attn_forward_impl(const Attn *a, int64_t begin, int64_t end)
{
    int64_t tq = a->tq, tk = a->tk, D = a->D, T = a->T, nq = (T + tq - 1) / tq;
    float S[tq * tk], acc[tq * D], m[tq], l[tq];
    for (int64_t task = begin; task < end; task++) {
        int64_t bh = task / nq, b = bh / a->H, h = bh % a->H, g = h / (a->H / a->Hkv);
        int64_t i0 = task % nq * tq, i1 = min64(T, i0 + tq), nr = i1 - i0;
        int64_t last = a->causal ? i1 - 1 : T - 1;
        const float *Q = a->q + q_off(a, b, h, i0);
        for (int64_t r = 0; r < nr; r++) {
            m[r] = -INFINITY;
            l[r] = 0;
        }
        memset(acc, 0, sizeof(float) * (size_t)(nr * D));
        for (int64_t j0 = 0; j0 <= last; j0 += tk) {
            int64_t nc = min64(T, j0 + tk) - j0;
            gemm(0, 1, nr, nc, D, a->scale, Q, D, a->k + kv_off(a, b, g, j0), D, 0.0f, S, tk);
            if (a->causal && j0 + nc - 1 > i0)
                mask_tile(S, tk, nr, nc, i0, j0, -INFINITY);
            for (int64_t r = 0; r < nr; r++) {
                float *s = S + r * tk;
                float mnew = row_max(s, nc, m[r]);
                float corr = sexp(m[r] - mnew);
                float sum = exp_row(s, nc, 1.0f, mnew);
                l[r] = l[r] * corr + sum;
                scale_row(acc + r * D, D, corr);
                m[r] = mnew;
            }
            gemm(0, 0, nr, D, nc, 1.0f, S, tk, a->v + kv_off(a, b, g, j0), D, 1.0f, acc, D);
        }
        for (int64_t r = 0; r < nr; r++) {
            float *yr = a->out + q_off(a, b, h, i0 + r);
            for (int64_t d = 0; d < D; d++)
                yr[d] = acc[r * D + d] / l[r];
            if (a->lse_out)
                a->lse_out[(b * a->H + h) * T + i0 + r] = m[r] + logf(l[r]);
        }
    }
}

/* Backward tasks [begin, end) of (b, kv head). */
ALWAYS_INLINE void attn_backward_impl(const Attn *a, int64_t begin, int64_t end)
{
    int64_t tq = a->tq, tk = a->tk, D = a->D, T = a->T, G = a->H / a->Hkv;
    float P[tq * tk], dS[tq * tk], dK[tk * D], dV[tk * D], delta[tq];
    for (int64_t task = begin; task < end; task++) {
        int64_t b = task / a->Hkv, g = task % a->Hkv;
        for (int64_t h = g * G; h < (g + 1) * G; h++)
            memset(a->dq + q_off(a, b, h, 0), 0, sizeof(float) * (size_t)(T * D));
        for (int64_t j0 = 0; j0 < T; j0 += tk) {
            int64_t nc = min64(T, j0 + tk) - j0;
            const float *K = a->k + kv_off(a, b, g, j0), *V = a->v + kv_off(a, b, g, j0);
            memset(dK, 0, sizeof(float) * (size_t)(nc * D));
            memset(dV, 0, sizeof(float) * (size_t)(nc * D));
            for (int64_t h = g * G; h < (g + 1) * G; h++)
                for (int64_t i0 = a->causal ? j0 / tq * tq : 0; i0 < T; i0 += tq) {
                    int64_t nr = min64(T, i0 + tq) - i0;
                    const float *Q = a->q + q_off(a, b, h, i0), *dY = a->dy + q_off(a, b, h, i0);
                    const float *lse = a->lse + (b * a->H + h) * T + i0;
                    gemm(0, 1, nr, nc, D, 1.0f, Q, D, K, D, 0.0f, P, tk);
                    for (int64_t r = 0; r < nr; r++) {
                        exp_row(P + r * tk, nc, a->scale, lse[r]);
                        delta[r] = dot_row(dY + r * D, a->y + q_off(a, b, h, i0 + r), D);
                    }
                    if (a->causal && j0 + nc - 1 > i0)
                        mask_tile(P, tk, nr, nc, i0, j0, 0.0f);
                    gemm(1, 0, nc, D, nr, 1.0f, P, tk, dY, D, 1.0f, dV, D);
                    gemm(0, 1, nr, nc, D, 1.0f, dY, D, V, D, 0.0f, dS, tk);
                    for (int64_t r = 0; r < nr; r++)
                        dsoftmax_row(dS + r * tk, P + r * tk, nc, delta[r]);
                    gemm(0, 0, nr, D, nc, a->scale, dS, tk, K, D, 1.0f, a->dq + q_off(a, b, h, i0), D);
                    gemm(1, 0, nc, D, nr, a->scale, dS, tk, Q, D, 1.0f, dK, D);
                }
            if (a->dk)
                memcpy(a->dk + kv_off(a, b, g, j0), dK, sizeof(float) * (size_t)(nc * D));
            if (a->dv)
                memcpy(a->dv + kv_off(a, b, g, j0), dV, sizeof(float) * (size_t)(nc * D));
        }
    }
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_CLONES 1
#define AVX2 __attribute__((target("avx2,fma")))
static AVX2 void attn_forward_avx2(void *a, int64_t b, int64_t e) { attn_forward_impl(a, b, e); }
static AVX2 void attn_backward_avx2(void *a, int64_t b, int64_t e) { attn_backward_impl(a, b, e); }
static bool have_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
static bool have_avx2(void) { return false; }
#endif
static void attn_forward_base(void *a, int64_t b, int64_t e) { attn_forward_impl(a, b, e); }
static void attn_backward_base(void *a, int64_t b, int64_t e) { attn_backward_impl(a, b, e); }

/* ---- the LM head's cross-entropy ---- */

typedef struct {
    float *Z, *row_loss; /* the chunk's logits [n, V] and row losses [n] */
    const int32_t *t;    /* the chunk's targets */
    int64_t V;
    float g; /* dloss / N */
    bool grads;
} HeadRows;

/* Rows [begin, end) of a chunk: the row's loss, and for gradients Z = g (softmax - onehot).
 * A target outside [0, V) (the data loader rejects them) gives a NaN loss, not a stray
 * read. */
ALWAYS_INLINE void head_rows_impl(const HeadRows *h, int64_t begin, int64_t end)
{
    for (int64_t r = begin; r < end; r++) {
        float *z = h->Z + r * h->V;
        int64_t t = h->t[r];
        bool ok = t >= 0 && t < h->V;
        float mx = row_max(z, h->V, -INFINITY), zt = ok ? z[t] : NAN;
        float s = exp_row(z, h->V, 1.0f, mx);
        h->row_loss[r] = mx + logf(s) - zt;
        if (!h->grads)
            continue;
        scale_row(z, h->V, h->g / s);
        if (ok)
            z[t] -= h->g;
    }
}

#ifdef HAVE_AVX2_CLONES
static AVX2 void head_rows_avx2(void *h, int64_t b, int64_t e) { head_rows_impl(h, b, e); }
#endif
static void head_rows_base(void *h, int64_t b, int64_t e) { head_rows_impl(h, b, e); }

void rt_head_loss(RtCtx *ctx, int64_t N, int64_t C, int64_t V, int64_t chunk, const float *x, const float *w,
                  const int32_t *targets, float *loss, float *dx, float *dw, const float *dloss, float grad_scale,
                  float *work)
{
    void (*fn)(void *, int64_t, int64_t) = head_rows_base;
#ifdef HAVE_AVX2_CLONES
    if (have_avx2())
        fn = head_rows_avx2;
#endif
    HeadRows h = {work, work + chunk * V, NULL, V, (dloss ? *dloss : grad_scale) / (float)N, dx || dw};
    double total = 0;
    for (int64_t r0 = 0; r0 < N; r0 += chunk) {
        int64_t n = min64(chunk, N - r0);
        rt_sgemm(ctx, 0, 1, n, V, C, 1.0f, x + r0 * C, C, w, C, 0.0f, work, V);
        h.t = targets + r0;
        rt_parallel_for(ctx, n, fn, &h);
        for (int64_t r = 0; r < n; r++)
            total += h.row_loss[r];
        if (dx)
            rt_sgemm(ctx, 0, 0, n, C, V, 1.0f, work, V, w, C, 0.0f, dx + r0 * C, C);
        if (dw)
            rt_sgemm(ctx, 1, 0, V, C, n, 1.0f, work, V, x + r0 * C, C, r0 > 0 ? 1.0f : 0.0f, dw, C);
    }
    if (loss)
        *loss = (float)(total / (double)N);
}

void rt_attention_forward(RtCtx *ctx, int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t tile_q,
                          int64_t tile_k, int causal, float scale, const float *q, const float *k, const float *v,
                          float *y, float *lse)
{
    Attn a = {B, H, Hkv, T, D, tile_q, tile_k, causal, scale, q, k, v, NULL, NULL, NULL, y, lse, NULL, NULL, NULL};
    void (*fn)(void *, int64_t, int64_t) = attn_forward_base;
#ifdef HAVE_AVX2_CLONES
    if (have_avx2())
        fn = attn_forward_avx2;
#endif
    rt_parallel_for(ctx, B * H * ((T + tile_q - 1) / tile_q), fn, &a);
}

void rt_attention_backward(RtCtx *ctx, int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t tile_q,
                           int64_t tile_k, int causal, float scale, const float *q, const float *k, const float *v,
                           const float *y, const float *lse, const float *dy, float *dq, float *dk, float *dv)
{
    Attn a = {B, H, Hkv, T, D, tile_q, tile_k, causal, scale, q, k, v, y, lse, dy, NULL, NULL, dq, dk, dv};
    void (*fn)(void *, int64_t, int64_t) = attn_backward_base;
#ifdef HAVE_AVX2_CLONES
    if (have_avx2())
        fn = attn_backward_avx2;
#endif
    rt_parallel_for(ctx, B * Hkv, fn, &a);
}
