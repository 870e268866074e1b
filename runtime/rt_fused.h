/* rt_fused.h: the runtime routines behind the kernel IR's fused kernels, which generated
 * code calls: attention over tiles (K_ATTENTION) and the LM head's cross-entropy over row
 * chunks (K_HEAD_LOSS). The algorithms, and how they are split over threads, are
 * ir/kernel.h's (KAttention, KHeadLoss); ir/kinterp.c runs the same ones in f64. Depends on
 * the C standard library and rt.h only (this header ships with generated programs). */
#ifndef RELORAC_RT_FUSED_H
#define RELORAC_RT_FUSED_H

#include <stdint.h>

#include "rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Fused attention (the kernel IR's K_ATTENTION; the algorithm and its split over threads
 * are ir/kernel.h's KAttention). q, y, dy, dq: [B,H,T,D]; k, v, dk, dv: [B,Hkv,T,D];
 * lse: [B,H,T]; query head h reads kv head h / (H / Hkv); scores scale q . k, keys j > i
 * masked when causal. Forward: y, and lse (NULL: not stored) = log of each row's softmax
 * denominator. Backward: dq, dk, dv from dy and the forward's y and lse (dk or dv NULL:
 * not stored). tile_q, tile_k >= 1; the workers' stacks hold the tiles. */
void rt_attention_forward(RtCtx *ctx, int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t tile_q,
                          int64_t tile_k, int causal, float scale, const float *q, const float *k, const float *v,
                          float *y, float *lse);
void rt_attention_backward(RtCtx *ctx, int64_t B, int64_t H, int64_t Hkv, int64_t T, int64_t D, int64_t tile_q,
                           int64_t tile_k, int causal, float scale, const float *q, const float *k, const float *v,
                           const float *y, const float *lse, const float *dy, float *dq, float *dk, float *dv);

/* The LM head and its cross-entropy over chunks of `chunk` rows (the kernel IR's
 * K_HEAD_LOSS): x[N,C], w[V,C], targets[N] in [0, V). loss (NULL: not computed) =
 * mean_n (logsumexp(z_n) - z_n[t_n]), z = x w^T; dx[N,C] and dw[V,C] (NULL: not computed)
 * = the gradients of dloss times that mean, dloss = *dloss or, when dloss is NULL,
 * grad_scale. work: [chunk * V + chunk] floats. */
void rt_head_loss(RtCtx *ctx, int64_t N, int64_t C, int64_t V, int64_t chunk, const float *x, const float *w,
                  const int32_t *targets, float *loss, float *dx, float *dw, const float *dloss, float grad_scale,
                  float *work);

#ifdef __cplusplus
}
#endif
#endif
