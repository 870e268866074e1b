/* The fake model (see fake_model.h). Shapes in model letters: V vocab, D width, R rank,
 * N = B*T rows. Forward: logits[i] = bigram[x_i] + W h_i + s B A h_i with h_i = embed[x_i].
 * Everything is deterministic: reductions run over fixed chunks, never per thread. */
#include "fake_model.h"

#include <math.h>
#include <string.h>

enum { V = FAKE_V, D = FAKE_D, R = FAKE_R, N = FAKE_B * FAKE_T };

#define CHUNK 4096     /* fixed reduction chunk */

/* pool byte offsets, in tensor order */
#define F4(n) ((size_t)(n) * 4)
#define O_BIGRAM 0
#define O_EMBED (O_BIGRAM + F4(V * V))
#define O_A (O_EMBED + F4(V * D))
#define O_B (O_A + F4(R * D))
#define P_PARAMS (O_B + F4(V * R))
#define P_FROZEN F4(V * D)
#define O_M_BIGRAM 0
#define O_V_BIGRAM (O_M_BIGRAM + F4(V * V))
#define O_M_EMBED (O_V_BIGRAM + F4(V * V))
#define O_V_EMBED (O_M_EMBED + F4(V * D))
#define O_M_W (O_V_EMBED + F4(V * D))
#define O_V_W (O_M_W + F4(V * D))
#define O_M_A (O_V_W + F4(V * D))
#define O_V_A (O_M_A + F4(R * D))
#define O_M_B (O_V_A + F4(R * D))
#define O_V_B (O_M_B + F4(V * R))
#define O_ADAM_T (O_V_B + F4(V * R))
#define P_OPTIM (O_ADAM_T + 4)
#define O_H 0
#define O_AH (O_H + F4(N * D))
#define O_LOGITS (O_AH + F4(N * R))
#define P_ACT (O_LOGITS + F4(N * V))
#define O_G_BIGRAM 0
#define O_G_EMBED (O_G_BIGRAM + F4(V * V))
#define O_G_W (O_G_EMBED + F4(V * D))
#define O_G_A (O_G_W + F4(V * D))
#define O_G_B (O_G_A + F4(R * D))
#define O_DH (O_G_B + F4(V * R))
#define O_DAH (O_DH + F4(N * D))
#define O_ROWLOSS (O_DAH + F4(N * R))
#define O_TOKENS (O_ROWLOSS + F4(N))
#define O_TARGETS (O_TOKENS + F4(N))
#define O_STEP (O_TARGETS + F4(N))
#define O_LR (O_STEP + 4)
#define O_ADAM_STEP (O_LR + 4)
#define O_PRUNE (O_ADAM_STEP + 4)
#define O_SAMPLE (O_PRUNE + 4)
#define O_OUT_LOGITS (O_SAMPLE + F4(FAKE_T))
#define O_GRAD_NORM (O_OUT_LOGITS + F4(FAKE_T * V))
#define P_SCRATCH (O_GRAD_NORM + 4)

#define MAT(name, hf, pool, off, d0, d1, flags) \
    {name, hf, RT_F32, 2, {d0, d1, 0, 0}, pool, off, flags, -1, -1, 0.0f}
#define TRAIN (RT_T_PARAM | RT_T_TRAINABLE)
#define IO(name, dtype, rank, d0, d1, off) {name, NULL, dtype, rank, {d0, d1, 0, 0}, RT_POOL_SCRATCH, off, RT_T_IO, -1, -1, 0.0f}

static const RtTensorInfo tensors[FK_COUNT] = {
    [FK_BIGRAM] = MAT("bigram", "bigram.weight", RT_POOL_PARAMS, O_BIGRAM, V, V, TRAIN),
    [FK_EMBED] = MAT("embed", "embed.weight", RT_POOL_PARAMS, O_EMBED, V, D, TRAIN),
    [FK_A] = MAT("proj.lora_A", NULL, RT_POOL_PARAMS, O_A, R, D,
                 RT_T_TRAINABLE | RT_T_ADAPTER_A),
    [FK_B] = MAT("proj.lora_B", NULL, RT_POOL_PARAMS, O_B, V, R,
                 RT_T_TRAINABLE | RT_T_ADAPTER_B),
    [FK_W] = {"proj", "proj.weight", RT_F32, 2, {V, D, 0, 0}, RT_POOL_FROZEN, 0, RT_T_PARAM,
              FK_A, FK_B, FAKE_SCALE},
    [FK_M_BIGRAM] = MAT("opt.m.bigram", NULL, RT_POOL_OPTIM, O_M_BIGRAM, V, V, RT_T_MOMENT),
    [FK_V_BIGRAM] = MAT("opt.v.bigram", NULL, RT_POOL_OPTIM, O_V_BIGRAM, V, V, RT_T_MOMENT),
    [FK_M_EMBED] = MAT("opt.m.embed", NULL, RT_POOL_OPTIM, O_M_EMBED, V, D, RT_T_MOMENT),
    [FK_V_EMBED] = MAT("opt.v.embed", NULL, RT_POOL_OPTIM, O_V_EMBED, V, D, RT_T_MOMENT),
    [FK_M_W] = MAT("opt.m.proj", NULL, RT_POOL_OPTIM, O_M_W, V, D, RT_T_MOMENT),
    [FK_V_W] = MAT("opt.v.proj", NULL, RT_POOL_OPTIM, O_V_W, V, D, RT_T_MOMENT),
    [FK_M_A] = MAT("opt.m.proj.lora_A", NULL, RT_POOL_OPTIM, O_M_A, R, D, RT_T_MOMENT | RT_T_ADAPTER_A),
    [FK_V_A] = MAT("opt.v.proj.lora_A", NULL, RT_POOL_OPTIM, O_V_A, R, D, RT_T_MOMENT | RT_T_ADAPTER_A),
    [FK_M_B] = MAT("opt.m.proj.lora_B", NULL, RT_POOL_OPTIM, O_M_B, V, R, RT_T_MOMENT | RT_T_ADAPTER_B),
    [FK_V_B] = MAT("opt.v.proj.lora_B", NULL, RT_POOL_OPTIM, O_V_B, V, R, RT_T_MOMENT | RT_T_ADAPTER_B),
    [FK_ADAM_T] = {"opt.t", NULL, RT_I32, 0, {0}, RT_POOL_OPTIM, O_ADAM_T, RT_T_STATE, -1, -1,
                   0.0f},
    [FK_H] = MAT("act.h", NULL, RT_POOL_ACTIVATIONS, O_H, N, D, 0),
    [FK_AH] = MAT("act.ah", NULL, RT_POOL_ACTIVATIONS, O_AH, N, R, 0),
    [FK_LOGITS] = MAT("act.logits", NULL, RT_POOL_ACTIVATIONS, O_LOGITS, N, V, 0),
    [FK_G_BIGRAM] = MAT("grad.bigram", NULL, RT_POOL_SCRATCH, O_G_BIGRAM, V, V, 0),
    [FK_G_EMBED] = MAT("grad.embed", NULL, RT_POOL_SCRATCH, O_G_EMBED, V, D, 0),
    [FK_G_W] = MAT("grad.proj", NULL, RT_POOL_SCRATCH, O_G_W, V, D, 0),
    [FK_G_A] = MAT("grad.proj.lora_A", NULL, RT_POOL_SCRATCH, O_G_A, R, D, 0),
    [FK_G_B] = MAT("grad.proj.lora_B", NULL, RT_POOL_SCRATCH, O_G_B, V, R, 0),
    [FK_DH] = MAT("grad.h", NULL, RT_POOL_SCRATCH, O_DH, N, D, 0),
    [FK_DAH] = MAT("grad.ah", NULL, RT_POOL_SCRATCH, O_DAH, N, R, 0),
    [FK_ROWLOSS] = {"scratch.rowloss", NULL, RT_F32, 1, {N, 0, 0, 0}, RT_POOL_SCRATCH,
                    O_ROWLOSS, 0, -1, -1, 0.0f},
    [FK_TOKENS] = IO("io.tokens", RT_I32, 2, FAKE_B, FAKE_T, O_TOKENS),
    [FK_TARGETS] = IO("io.targets", RT_I32, 2, FAKE_B, FAKE_T, O_TARGETS),
    [FK_STEP] = IO("io.step", RT_I32, 0, 0, 0, O_STEP),
    [FK_LR] = IO("io.lr", RT_F32, 0, 0, 0, O_LR),
    [FK_ADAM_STEP] = IO("io.adam_t", RT_I32, 0, 0, 0, O_ADAM_STEP),
    [FK_PRUNE] = IO("io.prune_fraction", RT_F32, 0, 0, 0, O_PRUNE),
    [FK_SAMPLE] = IO("io.sample_tokens", RT_I32, 2, 1, FAKE_T, O_SAMPLE),
    [FK_OUT_LOGITS] = IO("io.logits", RT_F32, 2, FAKE_T, V, O_OUT_LOGITS),
    [FK_GRAD_NORM] = {"scratch.grad_norm", NULL, RT_F32, 0, {0}, RT_POOL_SCRATCH, O_GRAD_NORM, 0, -1, -1, 0.0f},
};

static float *F(RtCtx *ctx, int i)
{
    return rt_tensor_data(ctx, i);
}

/* elements of tensor i (generated code knows these as constants; only rt.h is used) */
static int64_t numel(const RtCtx *ctx, int i)
{
    const RtTensorInfo *t = &ctx->model->tensors[i];
    int64_t n = 1;
    for (int d = 0; d < t->rank; d++)
        n *= t->shape[d];
    return n;
}

/* logits [n, V] (pre-softmax) and the activations backward needs. x: [n] */
static void forward(RtCtx *ctx, const int32_t *x, int64_t n)
{
    float *emb = F(ctx, FK_EMBED), *big = F(ctx, FK_BIGRAM), *h = F(ctx, FK_H);
    float *ah = F(ctx, FK_AH), *lg = F(ctx, FK_LOGITS);
    for (int64_t i = 0; i < n; i++) {
        memcpy(h + i * D, emb + (int64_t)x[i] * D, D * sizeof *h);
        memcpy(lg + i * V, big + (int64_t)x[i] * V, V * sizeof *lg);
    }
    rt_sgemm(ctx, 0, 1, n, R, D, 1.0f, h, D, F(ctx, FK_A), D, 0.0f, ah, R);       /* h A^T */
    rt_sgemm(ctx, 0, 1, n, V, D, 1.0f, h, D, F(ctx, FK_W), D, 1.0f, lg, V);       /* + h W^T */
    rt_sgemm(ctx, 0, 1, n, V, R, FAKE_SCALE, ah, R, F(ctx, FK_B), R, 1.0f, lg, V); /* + s ah B^T */
}

typedef struct SoftmaxJob {
    float *lg, *rowloss;
    const int32_t *y;
    float inv_n; /* 0: leave probabilities; else turn rows into dloss/dlogits */
} SoftmaxJob;

static void softmax_rows(void *arg, int64_t begin, int64_t end)
{
    SoftmaxJob *j = arg;
    for (int64_t i = begin; i < end; i++) {
        float *row = j->lg + i * V, max = row[0];
        for (int v = 1; v < V; v++)
            max = row[v] > max ? row[v] : max;
        double sum = 0;
        for (int v = 0; v < V; v++)
            sum += exp((double)(row[v] - max));
        j->rowloss[i] = (float)(log(sum) - (double)(row[j->y[i]] - max));
        if (j->inv_n == 0.0f)
            continue;
        for (int v = 0; v < V; v++)
            row[v] = (float)(exp((double)(row[v] - max)) / sum) * j->inv_n;
        row[j->y[i]] -= j->inv_n;
    }
}

/* Mean loss of rows [0, n); with grad, logits become dloss/dlogits. */
static float loss_rows(RtCtx *ctx, const int32_t *y, int64_t n, int grad)
{
    SoftmaxJob j = {F(ctx, FK_LOGITS), F(ctx, FK_ROWLOSS), y, grad ? 1.0f / (float)n : 0.0f};
    rt_parallel_for(ctx, n, softmax_rows, &j);
    double sum = 0;
    for (int64_t i = 0; i < n; i++)
        sum += j.rowloss[i];
    return (float)(sum / (double)n);
}

static void backward(RtCtx *ctx, const int32_t *x, int warm)
{
    float *dl = F(ctx, FK_LOGITS), *h = F(ctx, FK_H), *ah = F(ctx, FK_AH);
    float *gbig = F(ctx, FK_G_BIGRAM), *gemb = F(ctx, FK_G_EMBED), *dh = F(ctx, FK_DH);
    float *dah = F(ctx, FK_DAH);
    memset(gbig, 0, sizeof(float) * V * V);
    memset(gemb, 0, sizeof(float) * V * D);
    for (int64_t i = 0; i < N; i++)
        for (int v = 0; v < V; v++)
            gbig[(int64_t)x[i] * V + v] += dl[i * V + v];
    if (warm) /* dW [V, D] = dl^T h */
        rt_sgemm(ctx, 1, 0, V, D, N, 1.0f, dl, V, h, D, 0.0f, F(ctx, FK_G_W), D);
    /* dB [V, R] = s dl^T ah;  dah [N, R] = s dl B;  dA [R, D] = dah^T h */
    rt_sgemm(ctx, 1, 0, V, R, N, FAKE_SCALE, dl, V, ah, R, 0.0f, F(ctx, FK_G_B), R);
    rt_sgemm(ctx, 0, 0, N, R, V, FAKE_SCALE, dl, V, F(ctx, FK_B), R, 0.0f, dah, R);
    rt_sgemm(ctx, 1, 0, R, D, N, 1.0f, dah, R, h, D, 0.0f, F(ctx, FK_G_A), D);
    /* dh [N, D] = dl W + dah A */
    rt_sgemm(ctx, 0, 0, N, D, V, 1.0f, dl, V, F(ctx, FK_W), D, 0.0f, dh, D);
    rt_sgemm(ctx, 0, 0, N, D, R, 1.0f, dah, R, F(ctx, FK_A), D, 1.0f, dh, D);
    for (int64_t i = 0; i < N; i++)
        for (int d = 0; d < D; d++)
            gemb[(int64_t)x[i] * D + d] += dh[i * D + d];
}

/* The trainable set of a phase: {param, grad, m, v}. */
static const int warm_set[][4] = {{FK_BIGRAM, FK_G_BIGRAM, FK_M_BIGRAM, FK_V_BIGRAM},
                                  {FK_EMBED, FK_G_EMBED, FK_M_EMBED, FK_V_EMBED},
                                  {FK_W, FK_G_W, FK_M_W, FK_V_W}};
static const int relora_set[][4] = {{FK_BIGRAM, FK_G_BIGRAM, FK_M_BIGRAM, FK_V_BIGRAM},
                                    {FK_EMBED, FK_G_EMBED, FK_M_EMBED, FK_V_EMBED},
                                    {FK_A, FK_G_A, FK_M_A, FK_V_A},
                                    {FK_B, FK_G_B, FK_M_B, FK_V_B}};

typedef struct SumsqJob {
    const float *g;
    int64_t n;
    double partial[64];
} SumsqJob;

static void sumsq_chunks(void *arg, int64_t begin, int64_t end)
{
    SumsqJob *j = arg;
    for (int64_t c = begin; c < end; c++) {
        double s = 0;
        int64_t hi = (c + 1) * CHUNK < j->n ? (c + 1) * CHUNK : j->n;
        for (int64_t i = c * CHUNK; i < hi; i++)
            s += (double)j->g[i] * j->g[i];
        j->partial[c] = s;
    }
}

typedef struct AdamJob {
    float *p, *g, *m, *v;
    float lr, clip, b1c, b2c, wd;
} AdamJob;

static void adam_range(void *arg, int64_t begin, int64_t end)
{
    const AdamJob *j = arg;
    for (int64_t i = begin; i < end; i++) {
        float g = j->g[i] * j->clip;
        j->m[i] = 0.9f * j->m[i] + 0.1f * g;
        j->v[i] = 0.95f * j->v[i] + 0.05f * g * g;
        float mh = j->m[i] / j->b1c, vh = j->v[i] / j->b2c;
        j->p[i] -= j->lr * (mh / (sqrtf(vh) + 1e-8f) + j->wd * j->p[i]);
    }
}

static void init_a(RtCtx *ctx, uint64_t counter0)
{
    float *a = F(ctx, FK_A), bound = 1.0f / sqrtf((float)D); /* kaiming_uniform(a=sqrt 5) */
    for (int i = 0; i < R * D; i++)
        a[i] = bound * (2.0f * rt_rng_uniform(ctx->seed, FK_A, counter0 + (uint64_t)i) - 1.0f);
}

static void fake_init(RtCtx *ctx)
{
    float *big = F(ctx, FK_BIGRAM), *emb = F(ctx, FK_EMBED), *w = F(ctx, FK_W);
    for (int i = 0; i < V * V; i++)
        big[i] = 0.02f * rt_rng_normal(ctx->seed, FK_BIGRAM, (uint64_t)i);
    for (int i = 0; i < V * D; i++) {
        emb[i] = 0.1f * rt_rng_normal(ctx->seed, FK_EMBED, (uint64_t)i);
        w[i] = 0.1f * rt_rng_normal(ctx->seed, FK_W, (uint64_t)i);
    }
    init_a(ctx, 0);
    memset(F(ctx, FK_B), 0, sizeof(float) * V * R);
}

static int64_t io_step(RtCtx *ctx)
{
    return *(const int32_t *)rt_tensor_data(ctx, FK_STEP);
}

/* ReLoRA restart after the step in io.step: W += s B A, A re-drawn, B = 0, the fraction
 * io.prune_fraction of each adapter factor's moments zeroed at random, m and v with one
 * mask (as compiled models prune: passes/relora.c says why). */
static float fake_reset(RtCtx *ctx)
{
    int64_t step = io_step(ctx);
    float prune = *(const float *)rt_tensor_data(ctx, FK_PRUNE);
    rt_sgemm(ctx, 0, 0, V, D, R, FAKE_SCALE, F(ctx, FK_B), R, F(ctx, FK_A), D, 1.0f,
             F(ctx, FK_W), D);
    init_a(ctx, (uint64_t)(step + 1) * R * D);
    memset(F(ctx, FK_B), 0, sizeof(float) * V * R);
    const int moments[2][2] = {{FK_M_A, FK_V_A}, {FK_M_B, FK_V_B}};
    for (int k = 0; k < 2; k++) {
        float *m = F(ctx, moments[k][0]), *v = F(ctx, moments[k][1]);
        int64_t n = numel(ctx, moments[k][1]);
        for (int64_t i = 0; i < n; i++)
            if (rt_rng_uniform(ctx->seed, 0x100u + (uint64_t)moments[k][1],
                               (uint64_t)step * (uint64_t)n + (uint64_t)i) < prune)
                m[i] = v[i] = 0.0f;
    }
    return 0.0f;
}

/* The end of the warm start: every moment restarts from zero. */
static float fake_switch(RtCtx *ctx)
{
    memset(ctx->pools[RT_POOL_OPTIM], 0, O_ADAM_T);
    return 0.0f;
}

static float train_phase(RtCtx *ctx, int warm)
{
    const int32_t *x = rt_tensor_data(ctx, FK_TOKENS), *y = rt_tensor_data(ctx, FK_TARGETS);
    forward(ctx, x, N);
    float loss = loss_rows(ctx, y, N, 1);
    backward(ctx, x, warm);
    return loss;
}

static float norm_phase(RtCtx *ctx, int warm)
{
    const int(*set)[4] = warm ? warm_set : relora_set;
    int n_set = warm ? 3 : 4;
    double sumsq = 0;
    for (int k = 0; k < n_set; k++) {
        SumsqJob j = {F(ctx, set[k][1]), numel(ctx, set[k][1]), {0}};
        int64_t chunks = (j.n + CHUNK - 1) / CHUNK;
        rt_parallel_for(ctx, chunks, sumsq_chunks, &j);
        for (int64_t c = 0; c < chunks; c++)
            sumsq += j.partial[c];
    }
    float norm = (float)sqrt(sumsq);
    *F(ctx, FK_GRAD_NORM) = norm;
    return norm;
}

static float update_phase(RtCtx *ctx, int warm)
{
    const int(*set)[4] = warm ? warm_set : relora_set;
    int n_set = warm ? 3 : 4;
    float norm = *F(ctx, FK_GRAD_NORM), lr = *F(ctx, FK_LR);
    int32_t t = *(const int32_t *)rt_tensor_data(ctx, FK_ADAM_STEP);
    *(int32_t *)rt_tensor_data(ctx, FK_ADAM_T) += 1; /* updates applied: checkpointed state */
    for (int k = 0; k < n_set; k++) {
        const RtTensorInfo *p = &ctx->model->tensors[set[k][0]];
        AdamJob j = {F(ctx, set[k][0]), F(ctx, set[k][1]), F(ctx, set[k][2]), F(ctx, set[k][3]),
                     lr, norm > 1.0f ? 1.0f / norm : 1.0f,
                     1.0f - powf(0.9f, (float)t), 1.0f - powf(0.95f, (float)t),
                     p->rank == 2 ? 0.01f : 0.0f};
        rt_parallel_for(ctx, numel(ctx, set[k][0]), adam_range, &j);
    }
    return 0.0f;
}

static float fake_train_full(RtCtx *ctx) { return train_phase(ctx, 1); }
static float fake_norm_full(RtCtx *ctx) { return norm_phase(ctx, 1); }
static float fake_update_full(RtCtx *ctx) { return update_phase(ctx, 1); }
static float fake_train_lora(RtCtx *ctx) { return train_phase(ctx, 0); }
static float fake_norm_lora(RtCtx *ctx) { return norm_phase(ctx, 0); }
static float fake_update_lora(RtCtx *ctx) { return update_phase(ctx, 0); }

static float fake_init_fn(RtCtx *ctx)
{
    fake_init(ctx);
    return 0.0f;
}

static float fake_eval(RtCtx *ctx)
{
    forward(ctx, rt_tensor_data(ctx, FK_TOKENS), N);
    return loss_rows(ctx, rt_tensor_data(ctx, FK_TARGETS), N, 0);
}

/* Logits of every position of io.sample_tokens into io.logits. */
static float fake_logits(RtCtx *ctx)
{
    forward(ctx, rt_tensor_data(ctx, FK_SAMPLE), FAKE_T);
    memcpy(F(ctx, FK_OUT_LOGITS), F(ctx, FK_LOGITS), sizeof(float) * FAKE_T * V);
    return 0.0f;
}

const RtModel FAKE_MODEL_SYMBOL = {
    .abi_version = RT_ABI_VERSION,
    .name = "fake-bigram",
    .model_hash = "fake-bigram-0001",
    .config_json = "{\"hidden_size\": 16, \"model_type\": \"fake-bigram\", \"vocab_size\": 256}\n",
    .vocab = V,
    .batch = FAKE_B,
    .micro_batch = FAKE_B,
    .seq_len = FAKE_T,
    .n_tensors = FK_COUNT,
    .tensors = tensors,
    .pool_bytes = {[RT_POOL_PARAMS] = P_PARAMS, [RT_POOL_FROZEN] = P_FROZEN,
                   [RT_POOL_OPTIM] = P_OPTIM, [RT_POOL_ACTIVATIONS] = P_ACT,
                   [RT_POOL_SCRATCH] = P_SCRATCH},
    .defaults = {.eval_every = 20, .eval_batches = 4, .checkpoint_every = 0,
                 .log_every = 10, .seed = 1337, .threads = 0, .data_kind = RT_DATA_TEXT,
                 .val_fraction = 0.1f, .data_path = NULL, .val_path = NULL,
                 .checkpoint_dir = "checkpoints"},
    .schedule = {.kind = RT_SCHED_RELORA, .steps = FAKE_STEPS, .warmup = 5, .warm_start = FAKE_WARM,
                 .reset_every = FAKE_RESET_EVERY, .restart_warmup = 5, .lr = 0.05, .relora_lr = 0.05,
                 .min_lr_ratio = 0.1, .prune = 0.99, .warmup_pct = -1, .warm_start_pct = -1,
                 .reset_every_pct = -1, .restart_warmup_pct = -1},
    .fn = {[RT_FN_INIT] = fake_init_fn, [RT_FN_TRAIN_FULL] = fake_train_full,
           [RT_FN_NORM_FULL] = fake_norm_full, [RT_FN_UPDATE_FULL] = fake_update_full,
           [RT_FN_TRAIN_LORA] = fake_train_lora, [RT_FN_NORM_LORA] = fake_norm_lora,
           [RT_FN_UPDATE_LORA] = fake_update_lora, [RT_FN_SWITCH] = fake_switch,
           [RT_FN_RESET] = fake_reset, [RT_FN_EVAL] = fake_eval, [RT_FN_LOGITS] = fake_logits},
    .io = {[RT_IO_TOKENS] = FK_TOKENS, [RT_IO_TARGETS] = FK_TARGETS, [RT_IO_STEP] = FK_STEP,
           [RT_IO_LR] = FK_LR, [RT_IO_ADAM_T] = FK_ADAM_STEP, [RT_IO_PRUNE_FRACTION] = FK_PRUNE,
           [RT_IO_SAMPLE_TOKENS] = FK_SAMPLE, [RT_IO_LOGITS] = FK_OUT_LOGITS, [RT_IO_MICRO_STEP] = -1},
};
