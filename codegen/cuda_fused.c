/* The fused kernels as CUDA C: attention (forward and backward) and the LM head's loss,
 * each the algorithm kernel.h states for KAttention and KHeadLoss, with that kernel's
 * shapes, tiles and scale as constants.
 *
 * Attention forward: a block per (batch, head, query tile); the query tile, one key and
 * value tile at a time and the score tile live in shared memory (rows of K padded by one
 * float against bank conflicts), a thread owns a fixed set of the tile's output elements
 * in registers, and each row's running max and sum are a warp's. Backward: a block per
 * (batch, kv head), so the sums over queries and query heads into dk, dv (registers) and
 * over key tiles into dq (global memory, this block's rows only) each run in one thread
 * in one order, as the algorithm requires. These are plain f32 SIMT kernels: correct and
 * deterministic, not tensor-core fast (docs/cuda.md says what that costs).
 *
 * Head loss: per chunk of rows, three cuBLAS GEMMs (logits, dx, dw) around two kernels:
 * one block per row for the log-sum-exp, the row's loss and the gradient in place, and
 * one thread that adds the chunk's losses in row order to a double in the workspace. */
#include <string.h>

#include "cuda.h"

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

static bool f32_bufs(CuProgram *cp, const Kernel *k, const int *bufs, const char *const *what, int n)
{
    for (int i = 0; i < n; i++)
        if (bufs[i] >= 0 && (bufs[i] >= cp->p->n_bufs || cp->p->bufs[bufs[i]].dtype != IR_F32)) {
            diag_error(cp->d, k->loc, "kernel %s: the CUDA backend needs an f32 %s buffer", k->name, what[i]);
            return false;
        }
    return true;
}

/* Adds buffer parameter `name` (const unless written) to the draft and step s. */
static void buf_param(CuProgram *cp, CuKernel *dr, CuStep *s, CuText *t, int buf, bool written, const char *name,
                      bool first)
{
    const char *ty = written ? "float *" : "const float *";
    cu_printf(t, "%s%s__restrict__ %s", first ? "" : ", ", ty, name);
    cu_param_add(cp, dr, ty);
    cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_BUF, .buf = buf});
}

/* ---- attention ---- */

enum { ATT_THREADS = 256 };

static void attention_forward(CuProgram *cp, CuFunc *cf, const Kernel *k, const char *name)
{
    const KAttention *a = &k->attn;
    CuKernel dr;
    CuText body, *t = &body;
    cu_kernel_draft(cp, &dr, k, &body);
    int64_t tq = a->tile_q, tk = a->tile_k, D = a->head_dim, T = a->seq;
    int64_t acc_n = cdiv(tq * D, ATT_THREADS);
    int64_t smem = 4 * (tq * D + tk * (D + 1) + tk * D + tq * tk + 3 * tq);
    CuStep *s = cu_step_add(cp, cf, CU_STEP_LAUNCH, k);
    s->grid = a->batch * a->heads * cdiv(T, tq);
    s->block = ATT_THREADS;
    s->smem = (int)smem;
    dr.block = ATT_THREADS;
    dr.smem = (int)smem;
    dr.sync = true;
    cu_printf(t, "\n/* KNAME: attention forward B %lld H %lld Hkv %lld T %lld D %lld, tiles %lld x %lld%s */\n",
              (long long)a->batch, (long long)a->heads, (long long)a->kv_heads, (long long)T, (long long)D,
              (long long)tq, (long long)tk, a->causal ? ", causal" : "");
    cu_printf(t, "RELORAC_KERNEL void __launch_bounds__(%d) KNAME(", ATT_THREADS);
    buf_param(cp, &dr, s, t, a->q, false, "q", true);
    buf_param(cp, &dr, s, t, a->k, false, "k", false);
    buf_param(cp, &dr, s, t, a->v, false, "v", false);
    buf_param(cp, &dr, s, t, a->y, true, "y", false);
    if (a->lse >= 0)
        buf_param(cp, &dr, s, t, a->lse, true, "lse", false);
    cu_printf(t, ")\n{\n");
    cu_printf(t,
              "    enum { T = %lld, D = %lld, TQ = %lld, TK = %lld, KD = D + 1, H = %lld, G = %lld, NT = %d, ACC = %lld };\n"
              "    const float scale = %s;\n"
              "    RELORAC_DYN_SMEM(smem);\n"
              "    float *Qs = smem, *Ks = Qs + TQ * D, *Vs = Ks + TK * KD, *S = Vs + TK * D;\n"
              "    float *ms = S + TQ * TK, *ls = ms + TQ, *cs = ls + TQ;\n"
              "    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;\n"
              "    const int qt = (int)(blockIdx.x %% ((T + TQ - 1) / TQ)), bh = (int)(blockIdx.x / ((T + TQ - 1) / TQ));\n"
              "    const int h = bh %% H, b = bh / H, g = h / G;\n"
              "    const int i0 = qt * TQ, nr = T - i0 < TQ ? T - i0 : TQ;\n"
              "    const float *qb = q + ((long long)bh * T + i0) * D;\n"
              "    const float *kb = k + ((long long)(b * (H / G) + g) * T) * D;\n"
              "    const float *vb = v + ((long long)(b * (H / G) + g) * T) * D;\n"
              "    for (int e = tid; e < TQ * D; e += NT)\n"
              "        Qs[e] = e < nr * D ? qb[e] : 0.0f;\n"
              "    for (int r = tid; r < TQ; r += NT) {\n"
              "        ms[r] = __uint_as_float(0xff800000u);\n"
              "        ls[r] = 0.0f;\n"
              "    }\n"
              "    float acc[ACC];\n"
              "#pragma unroll\n"
              "    for (int u = 0; u < ACC; u++)\n"
              "        acc[u] = 0.0f;\n"
              "    const int last = %s;\n"
              "    for (int j0 = 0; j0 <= last; j0 += TK) {\n"
              "        const int nc = T - j0 < TK ? T - j0 : TK;\n"
              "        __syncthreads();\n"
              "        for (int e = tid; e < TK * D; e += NT) {\n"
              "            const int c = e / D, d = e %% D;\n"
              "            Ks[c * KD + d] = c < nc ? kb[(long long)(j0 + c) * D + d] : 0.0f;\n"
              "            Vs[e] = c < nc ? vb[(long long)(j0 + c) * D + d] : 0.0f;\n"
              "        }\n"
              "        __syncthreads();\n"
              "        for (int e = tid; e < TQ * TK; e += NT) {\n"
              "            const int r = e / TK, c = e %% TK;\n"
              "            float sv = __uint_as_float(0xff800000u);\n"
              "            if (r < nr && c < nc && %s) {\n"
              "                float sum = 0.0f;\n"
              "                for (int d = 0; d < D; d++)\n"
              "                    sum += Qs[r * D + d] * Ks[c * KD + d];\n"
              "                sv = scale * sum;\n"
              "            }\n"
              "            S[e] = sv;\n"
              "        }\n"
              "        __syncthreads();\n"
              "        for (int r = warp; r < TQ; r += NT / 32) {\n"
              "            const float m0 = ms[r];\n"
              "            float mx = m0;\n"
              "            for (int c = lane; c < TK; c += 32)\n"
              "                mx = fmaxf(mx, S[r * TK + c]);\n"
              "            mx = k_warp_max(mx);\n"
              "            const int dead = mx == __uint_as_float(0xff800000u); /* no key yet (padding rows) */\n"
              "            float sum = 0.0f;\n"
              "            for (int c = lane; c < TK; c += 32) {\n"
              "                const float p = dead ? 0.0f : expf(S[r * TK + c] - mx);\n"
              "                S[r * TK + c] = p;\n"
              "                sum += p;\n"
              "            }\n"
              "            sum = k_warp_sum(sum);\n"
              "            if (lane == 0) {\n"
              "                const float corr = dead ? 1.0f : expf(m0 - mx);\n"
              "                cs[r] = corr;\n"
              "                ls[r] = ls[r] * corr + sum;\n"
              "                ms[r] = mx;\n"
              "            }\n"
              "        }\n"
              "        __syncthreads();\n"
              "#pragma unroll\n"
              "        for (int u = 0; u < ACC; u++) {\n"
              "            const int e = tid + u * NT, r = e / D, d = e %% D;\n"
              "            if (e < TQ * D) {\n"
              "                float sum = 0.0f;\n"
              "                for (int c = 0; c < nc; c++)\n"
              "                    sum += S[r * TK + c] * Vs[c * D + d];\n"
              "                acc[u] = acc[u] * cs[r] + sum;\n"
              "            }\n"
              "        }\n"
              "    }\n"
              "    float *yb = y + ((long long)bh * T + i0) * D;\n"
              "#pragma unroll\n"
              "    for (int u = 0; u < ACC; u++) {\n"
              "        const int e = tid + u * NT, r = e / D;\n"
              "        if (e < TQ * D && r < nr)\n"
              "            yb[e] = acc[u] / ls[r];\n"
              "    }\n",
              (long long)T, (long long)D, (long long)tq, (long long)tk, (long long)a->heads,
              (long long)(a->heads / a->kv_heads), ATT_THREADS, (long long)acc_n, cu_float_lit(cp->p->arena, a->scale),
              a->causal ? "i0 + nr - 1" : "T - 1", a->causal ? "j0 + c <= i0 + r" : "1");
    if (a->lse >= 0)
        cu_printf(t, "    for (int r = tid; r < nr; r += NT)\n"
                     "        lse[(long long)bh * T + i0 + r] = ms[r] + logf(ls[r]);\n");
    cu_printf(t, "}\n");
    s->kernel = cu_kernel_finish(cp, &dr, &body, name);
}

static void attention_backward(CuProgram *cp, CuFunc *cf, const Kernel *k, const char *name)
{
    const KAttention *a = &k->attn;
    CuKernel dr;
    CuText body, *t = &body;
    cu_kernel_draft(cp, &dr, k, &body);
    int64_t tq = a->tile_q, tk = a->tile_k, D = a->head_dim, T = a->seq;
    int64_t acc_n = cdiv(tk * D, ATT_THREADS);
    /* Ks, Vs [TK][D+1]; Qs, dYs [TQ][D+1]; P, dS [TQ][TK]; lse, delta [TQ] */
    int64_t smem = 4 * (2 * tk * (D + 1) + 2 * tq * (D + 1) + 2 * tq * tk + 2 * tq);
    CuStep *s = cu_step_add(cp, cf, CU_STEP_LAUNCH, k);
    s->grid = a->batch * a->kv_heads;
    s->block = ATT_THREADS;
    s->smem = (int)smem;
    dr.block = ATT_THREADS;
    dr.smem = (int)smem;
    dr.sync = true;
    cu_printf(t, "\n/* KNAME: attention backward B %lld H %lld Hkv %lld T %lld D %lld, tiles %lld x %lld%s */\n",
              (long long)a->batch, (long long)a->heads, (long long)a->kv_heads, (long long)T, (long long)D,
              (long long)tq, (long long)tk, a->causal ? ", causal" : "");
    cu_printf(t, "RELORAC_KERNEL void __launch_bounds__(%d) KNAME(", ATT_THREADS);
    buf_param(cp, &dr, s, t, a->dy, false, "dy", true);
    buf_param(cp, &dr, s, t, a->q, false, "q", false);
    buf_param(cp, &dr, s, t, a->k, false, "k", false);
    buf_param(cp, &dr, s, t, a->v, false, "v", false);
    buf_param(cp, &dr, s, t, a->y, false, "y", false);
    buf_param(cp, &dr, s, t, a->lse, false, "lse", false);
    buf_param(cp, &dr, s, t, a->dq, true, "dq", false);
    if (a->dk >= 0)
        buf_param(cp, &dr, s, t, a->dk, true, "dk", false);
    if (a->dv >= 0)
        buf_param(cp, &dr, s, t, a->dv, true, "dv", false);
    cu_printf(t, ")\n{\n");
    cu_printf(t,
              "    enum { T = %lld, D = %lld, TQ = %lld, TK = %lld, RD = D + 1, H = %lld, G = %lld, NT = %d, ACC = %lld };\n"
              "    const float scale = %s;\n"
              "    RELORAC_DYN_SMEM(smem);\n"
              "    float *Ks = smem, *Vs = Ks + TK * RD, *Qs = Vs + TK * RD, *dYs = Qs + TQ * RD;\n"
              "    float *P = dYs + TQ * RD, *dS = P + TQ * TK, *lse_s = dS + TQ * TK, *delta_s = lse_s + TQ;\n"
              "    const int tid = (int)threadIdx.x, lane = tid & 31, warp = tid >> 5;\n"
              "    const int g = (int)(blockIdx.x %% (H / G)), b = (int)(blockIdx.x / (H / G));\n"
              "    const float *kb = k + ((long long)(b * (H / G) + g) * T) * D;\n"
              "    const float *vb = v + ((long long)(b * (H / G) + g) * T) * D;\n"
              "    for (int h = g * G; h < (g + 1) * G; h++)\n"
              "        for (int e = tid; e < T * D; e += NT)\n"
              "            dq[((long long)(b * H + h) * T) * D + e] = 0.0f;\n"
              "    for (int j0 = 0; j0 < T; j0 += TK) {\n"
              "        const int nc = T - j0 < TK ? T - j0 : TK;\n"
              "        __syncthreads();\n"
              "        for (int e = tid; e < TK * D; e += NT) {\n"
              "            const int c = e / D, d = e %% D;\n"
              "            Ks[c * RD + d] = c < nc ? kb[(long long)(j0 + c) * D + d] : 0.0f;\n"
              "            Vs[c * RD + d] = c < nc ? vb[(long long)(j0 + c) * D + d] : 0.0f;\n"
              "        }\n"
              "        float dK[ACC], dV[ACC];\n"
              "#pragma unroll\n"
              "        for (int u = 0; u < ACC; u++)\n"
              "            dK[u] = dV[u] = 0.0f;\n"
              "        for (int h = g * G; h < (g + 1) * G; h++) {\n"
              "            const long long hrow = (long long)(b * H + h) * T;\n"
              "            for (int i0 = %s; i0 < T; i0 += TQ) {\n"
              "                const int nr = T - i0 < TQ ? T - i0 : TQ;\n"
              "                __syncthreads();\n"
              "                for (int e = tid; e < TQ * D; e += NT) {\n"
              "                    const int r = e / D, d = e %% D;\n"
              "                    Qs[r * RD + d] = r < nr ? q[(hrow + i0 + r) * D + d] : 0.0f;\n"
              "                    dYs[r * RD + d] = r < nr ? dy[(hrow + i0 + r) * D + d] : 0.0f;\n"
              "                }\n"
              "                for (int r = warp; r < TQ; r += NT / 32) {\n"
              "                    float sum = 0.0f;\n"
              "                    for (int d = lane; d < D; d += 32)\n"
              "                        sum += r < nr ? dy[(hrow + i0 + r) * D + d] * y[(hrow + i0 + r) * D + d] : 0.0f;\n"
              "                    sum = k_warp_sum(sum);\n"
              "                    if (lane == 0) {\n"
              "                        delta_s[r] = sum;\n"
              "                        lse_s[r] = r < nr ? lse[hrow + i0 + r] : 0.0f;\n"
              "                    }\n"
              "                }\n"
              "                __syncthreads();\n"
              "                for (int e = tid; e < TQ * TK; e += NT) {\n"
              "                    const int r = e / TK, c = e %% TK;\n"
              "                    float p = 0.0f, ds = 0.0f;\n"
              "                    if (r < nr && c < nc && %s) {\n"
              "                        float qk = 0.0f, dp = 0.0f;\n"
              "                        for (int d = 0; d < D; d++) {\n"
              "                            qk += Qs[r * RD + d] * Ks[c * RD + d];\n"
              "                            dp += dYs[r * RD + d] * Vs[c * RD + d];\n"
              "                        }\n"
              "                        p = expf(scale * qk - lse_s[r]);\n"
              "                        ds = p * (dp - delta_s[r]);\n"
              "                    }\n"
              "                    P[e] = p;\n"
              "                    dS[e] = ds;\n"
              "                }\n"
              "                __syncthreads();\n"
              "#pragma unroll\n"
              "                for (int u = 0; u < ACC; u++) {\n"
              "                    const int e = tid + u * NT, c = e / D, d = e %% D;\n"
              "                    if (e < TK * D) {\n"
              "                        float sv = 0.0f, sk = 0.0f;\n"
              "                        for (int r = 0; r < nr; r++) {\n"
              "                            sv += P[r * TK + c] * dYs[r * RD + d];\n"
              "                            sk += dS[r * TK + c] * Qs[r * RD + d];\n"
              "                        }\n"
              "                        dV[u] += sv;\n"
              "                        dK[u] += scale * sk;\n"
              "                    }\n"
              "                }\n"
              "                for (int e = tid; e < nr * D; e += NT) {\n"
              "                    const int r = e / D, d = e %% D;\n"
              "                    float sum = 0.0f;\n"
              "                    for (int c = 0; c < nc; c++)\n"
              "                        sum += dS[r * TK + c] * Ks[c * RD + d];\n"
              "                    dq[(hrow + i0 + r) * D + d] += scale * sum;\n"
              "                }\n"
              "            }\n"
              "        }\n",
              (long long)T, (long long)D, (long long)tq, (long long)tk, (long long)a->heads,
              (long long)(a->heads / a->kv_heads), ATT_THREADS, (long long)acc_n, cu_float_lit(cp->p->arena, a->scale),
              a->causal ? "j0 / TQ * TQ" : "0", a->causal ? "j0 + c <= i0 + r" : "1");
    if (a->dk >= 0 || a->dv >= 0) {
        cu_printf(t, "#pragma unroll\n"
                     "        for (int u = 0; u < ACC; u++) {\n"
                     "            const int e = tid + u * NT, c = e / D, d = e %% D;\n"
                     "            if (e < TK * D && c < nc) {\n");
        if (a->dk >= 0)
            cu_printf(t, "                dk[((long long)(b * (H / G) + g) * T + j0 + c) * D + d] = dK[u];\n");
        if (a->dv >= 0)
            cu_printf(t, "                dv[((long long)(b * (H / G) + g) * T + j0 + c) * D + d] = dV[u];\n");
        cu_printf(t, "            }\n        }\n");
    }
    cu_printf(t, "    }\n}\n");
    s->kernel = cu_kernel_finish(cp, &dr, &body, name);
}

void cu_attention_emit(CuProgram *cp, CuFunc *cf, const Kernel *k)
{
    const KAttention *a = &k->attn;
    const int bufs[9] = {a->q, a->k, a->v, a->y, a->lse, a->dy, a->dq, a->dk, a->dv};
    static const char *const what[9] = {"q", "k", "v", "y", "lse", "dy", "dq", "dk", "dv"};
    if (!f32_bufs(cp, k, bufs, what, 9))
        return;
    if (a->heads % a->kv_heads || a->tile_q < 1 || a->tile_k < 1 || (a->backward && (a->lse < 0 || a->dq < 0))) {
        diag_error(cp->d, k->loc, "kernel %s: attention shapes the CUDA backend cannot run", k->name);
        return;
    }
    if (a->backward)
        attention_backward(cp, cf, k, k->name);
    else
        attention_forward(cp, cf, k, k->name);
}

/* ---- head loss ---- */

void cu_head_loss_emit(CuProgram *cp, CuFunc *cf, const Kernel *k)
{
    const KHeadLoss *hl = &k->head;
    const int bufs[7] = {hl->x, hl->w, hl->loss, hl->dx, hl->dw, hl->dloss, hl->work};
    static const char *const what[7] = {"x", "w", "loss", "dx", "dw", "dloss", "work"};
    if (!f32_bufs(cp, k, bufs, what, 7))
        return;
    if (hl->targets < 0 || cp->p->bufs[hl->targets].dtype != IR_I32) {
        diag_error(cp->d, k->loc, "kernel %s: the CUDA backend needs i32 targets", k->name);
        return;
    }
    Arena *ar = cp->p->arena;
    CuKernel dr;
    CuText body, *t = &body;
    cu_kernel_draft(cp, &dr, k, &body);
    int64_t N = hl->rows, C = hl->dim, V = hl->vocab, R = hl->chunk;
    bool grads = hl->dx >= 0 || hl->dw >= 0;
    int block = 64;
    while (block < 1024 && block * 8 < V)
        block *= 2;
    /* the row kernel: Z [n, V] at work, per-row losses at work + R V */
    const char *rows = arena_sprintf(ar, "%s_rows", k->name);
    dr.block = block;
    dr.sync = true;
    cu_printf(t, "\n/* KNAME: head loss rows of a chunk, V %lld, %s */\n", (long long)V,
              grads ? "loss and gradient" : "loss");
    bool z16 = grads && hl->work16 >= 0; /* precision bf16: the gradient rows also in bf16 */
    cu_printf(t, "RELORAC_KERNEL void __launch_bounds__(%d) KNAME(float *__restrict__ Z, const int *__restrict__ targets%s%s, int r0)\n{\n",
              block, hl->dloss >= 0 ? ", const float *__restrict__ dloss" : "",
              z16 ? ", unsigned short *__restrict__ Z16" : "");
    cu_param_add(cp, &dr, "float *");
    cu_param_add(cp, &dr, "const int *");
    if (hl->dloss >= 0)
        cu_param_add(cp, &dr, "const float *");
    if (z16)
        cu_param_add(cp, &dr, "unsigned short *");
    cu_param_add(cp, &dr, "int");
    cu_printf(t,
              "    enum { V = %lld, R = %lld };\n"
              "    __shared__ float k_red[32];\n"
              "    const int r = (int)blockIdx.x, tid = (int)threadIdx.x;\n"
              "    float *z = Z + (long long)r * V;\n"
              "    const int tg = targets[r0 + r];\n"
              "    const float zt = z[tg];\n"
              "    float mx = __uint_as_float(0xff800000u);\n"
              "    for (int j = tid; j < V; j += %d)\n"
              "        mx = fmaxf(mx, z[j]);\n"
              "    mx = k_block_max(mx, k_red);\n"
              "    float s = 0.0f;\n"
              "    for (int j = tid; j < V; j += %d)\n"
              "        s += expf(z[j] - mx);\n"
              "    s = k_block_sum(s, k_red);\n"
              "    const float lse = mx + logf(s);\n"
              "    if (tid == 0)\n"
              "        Z[(long long)R * V + r] = lse - zt;\n",
              (long long)V, (long long)R, block, block);
    if (grads)
        cu_printf(t,
                  "    const float gs = %s / %lld.0f;\n"
                  "    for (int j = tid; j < V; j += %d) {\n"
                  "        const float g = gs * (expf(z[j] - lse) - (j == tg ? 1.0f : 0.0f));\n"
                  "        z[j] = g;\n%s"
                  "    }\n",
                  hl->dloss >= 0 ? "dloss[0]" : cu_float_lit(ar, hl->grad_scale), (long long)N, block,
                  z16 ? "        Z16[(long long)r * V + j] = k_f2bf(g);\n" : "");
    cu_printf(t, "}\n");
    int kr = cu_kernel_finish(cp, &dr, &body, rows);
    int ks = -1;
    const char *sum = arena_sprintf(ar, "%s_sum", k->name);
    if (hl->loss >= 0) {
        cu_kernel_draft(cp, &dr, k, &body);
        dr.block = 1;
        cu_printf(t, "\n/* KNAME: the chunk's losses added in row order; the mean after the last chunk */\n");
        cu_printf(t,
                  "RELORAC_KERNEL void __launch_bounds__(1) KNAME(const float *__restrict__ rl, double *__restrict__ total, "
                  "float *__restrict__ loss, int n, int first, int last)\n{\n"
                  "    double s = first ? 0.0 : total[0];\n"
                  "    for (int r = 0; r < n; r++)\n"
                  "        s += (double)rl[r];\n"
                  "    total[0] = s;\n"
                  "    if (last)\n"
                  "        loss[0] = (float)(s / %lld.0);\n"
                  "}\n",
                  (long long)N);
        const char *const params[6] = {"const float *", "double *", "float *", "int", "int", "int"};
        for (int i = 0; i < 6; i++)
            cu_param_add(cp, &dr, params[i]);
        ks = cu_kernel_finish(cp, &dr, &body, sum);
    }
    /* the GEMMs' operands: bf16 copies under precision bf16 */
    int gx = hl->x16 >= 0 ? hl->x16 : hl->x, gw = hl->w16 >= 0 ? hl->w16 : hl->w, gz = z16 ? hl->work16 : hl->work;
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t n = N - r0 < R ? N - r0 : R;
        /* Z [n, V] = X_chunk [n, C] W^T */
        CuStep *g = cu_step_add(cp, cf, CU_STEP_GEMM, k);
        g->gemm = (KGemm){.trans_a = false, .trans_b = true, .m = n, .n = V, .k = C, .batch = 1,
                          .a = gx, .b = gw, .c = hl->work, .off_a = r0 * C, .lda = C, .ldb = C, .ldc = V,
                          .alpha = 1.0, .beta = 0.0};
        CuStep *s = cu_step_add(cp, cf, CU_STEP_LAUNCH, k);
        s->kernel = kr;
        s->grid = n;
        s->block = block;
        cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_BUF, .buf = hl->work});
        cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_BUF, .buf = hl->targets});
        if (hl->dloss >= 0)
            cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_BUF, .buf = hl->dloss});
        if (z16)
            cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_BUF, .buf = hl->work16});
        cu_arg_add(cp, s, (CuArg){.kind = CU_ARG_I32, .buf = -1, .i = r0});
        if (ks >= 0) {
            CuStep *u = cu_step_add(cp, cf, CU_STEP_LAUNCH, k);
            u->kernel = ks;
            u->grid = 1;
            u->block = 1;
            cu_arg_add(cp, u, (CuArg){.kind = CU_ARG_BUF, .buf = hl->work, .i = R * V});
            cu_arg_add(cp, u, (CuArg){.kind = CU_ARG_WORKSPACE, .buf = -1, .i = 0});
            cu_arg_add(cp, u, (CuArg){.kind = CU_ARG_BUF, .buf = hl->loss});
            cu_arg_add(cp, u, (CuArg){.kind = CU_ARG_I32, .buf = -1, .i = n});
            cu_arg_add(cp, u, (CuArg){.kind = CU_ARG_I32, .buf = -1, .i = r0 == 0});
            cu_arg_add(cp, u, (CuArg){.kind = CU_ARG_I32, .buf = -1, .i = r0 + R >= N});
        }
        if (hl->dx >= 0) { /* dx rows [n, C] = Z [n, V] W [V, C] */
            CuStep *x = cu_step_add(cp, cf, CU_STEP_GEMM, k);
            x->gemm = (KGemm){.m = n, .n = C, .k = V, .batch = 1, .a = gz, .b = gw, .c = hl->dx,
                              .off_c = r0 * C, .lda = V, .ldb = C, .ldc = C, .alpha = 1.0, .beta = 0.0};
        }
        if (hl->dw >= 0) { /* dw [V, C] (+)= Z^T [V, n] X_chunk [n, C] */
            CuStep *w = cu_step_add(cp, cf, CU_STEP_GEMM, k);
            w->gemm = (KGemm){.trans_a = true, .m = V, .n = C, .k = n, .batch = 1, .a = gz, .b = gx,
                              .c = hl->dw, .off_b = r0 * C, .lda = V, .ldb = C, .ldc = C, .alpha = 1.0,
                              .beta = r0 == 0 ? 0.0 : 1.0};
        }
    }
}
