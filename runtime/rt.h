/* rt.h: the ABI between relorac-generated training code and the runtime library.
 * The compiler emits one object defining `const RtModel relorac_model`; the runtime supplies
 * main() (trainer_main.c), the trainer CLI (rt_main), a thread pool, a GEMM wrapper and a
 * counter-based RNG. This header depends on the C standard library only, so it builds with
 * -std=c11 -pedantic and can be included by the code generator and by user programs. */
#ifndef RELORAC_RT_H
#define RELORAC_RT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define RT_ABI_VERSION 7

/* Memory pools. The memory-plan pass assigns every tensor a pool and a byte offset; the
 * runtime makes one 64-byte-aligned, zero-filled allocation per pool and carves it, in host
 * memory or, for a model with a device layer (RtModel.device), in device memory. */
enum RtPool {
    RT_POOL_PARAMS,      /* trainable weights (full-rank and adapter factors); checkpointed */
    RT_POOL_FROZEN,      /* frozen base weights W of adapted linears; checkpointed */
    RT_POOL_OPTIM,       /* optimizer moments and counters; checkpointed */
    RT_POOL_ACTIVATIONS, /* unused by relorac's planner (activations are in RT_POOL_SCRATCH) */
    RT_POOL_SCRATCH,     /* gradients, the io tensors, and every buffer the planner shares by
                            liveness: activations, temporaries and the gradients and moments of
                            one training phase; checkpointed only per tensor flags */
    RT_POOL_COUNT
};

enum RtDtype {
    RT_F32,  /* IEEE binary32, safetensors "F32" */
    RT_BF16, /* bfloat16 (upper half of a binary32), safetensors "BF16" */
    RT_I32,  /* int32, safetensors "I32" */
    RT_DTYPE_COUNT
};

/* RtTensorInfo.flags */
enum RtTensorFlag {
    RT_T_PARAM = 1u << 0,     /* a model weight: exported to model.safetensors (RtModel.exports) */
    RT_T_TRAINABLE = 1u << 1, /* updated by the optimizer (informational) */
    RT_T_ADAPTER_A = 1u << 2, /* LoRA A factor [r, in] */
    RT_T_ADAPTER_B = 1u << 3, /* LoRA B factor [out, r] */
    RT_T_MOMENT = 1u << 4,    /* an optimizer moment (Adam m or v), checkpointed in any pool (the
                                 moments of one phase live in RT_POOL_SCRATCH); with
                                 RT_T_ADAPTER_A/B when it is a moment of that adapter factor */
    RT_T_STATE = 1u << 5,     /* other state needed to resume (counters); checkpointed in any pool */
    RT_T_IO = 1u << 6,        /* written or read by the runtime around the functions (RtModel.io) */
    /* Holds a value only in the full-rank phase (RT_T_PHASE_FULL: steps before warm_start)
     * or only in the ReLoRA phase (RT_T_PHASE_LORA: from the switch on, which initialises
     * it); its bytes belong to other tensors in the other phase. A checkpoint neither saves
     * nor loads it in the other phase. Neither flag: it holds a value throughout. */
    RT_T_PHASE_FULL = 1u << 7,
    RT_T_PHASE_LORA = 1u << 8,
    RT_T_GRAD = 1u << 9,      /* a gradient: with micro-steps (batch > micro_batch) the train
                                 functions add to it, and the runtime zeroes it first */
    RT_T_DECAY = 1u << 10     /* a trainable weight AdamW decays (RtOptim.weight_decay) */
};

/* One tensor of the model. Tensors live at pools[pool] + offset and are dense row-major. */
typedef struct RtTensorInfo {
    const char *name;    /* unique internal name; the key in trainer.safetensors */
    int dtype;           /* enum RtDtype */
    int rank;            /* 0..4; rank 0 is a scalar of one element */
    int64_t shape[4];    /* shape[0..rank) */
    int pool;            /* enum RtPool */
    size_t offset;       /* bytes from the pool base; a multiple of the element size */
    unsigned flags;      /* enum RtTensorFlag */
    /* For a frozen base weight W [out, in] with an adapter: the indices of A [r, in] and
     * B [out, r] in RtModel.tensors and the scale alpha/r; lora_a = lora_b = -1 otherwise.
     * The exported weight is W + lora_scale * B @ A (merged in f32). */
    int lora_a, lora_b;
    float lora_scale;
} RtTensorInfo;

/* One part of an exported tensor: model tensor `tensor` (an RT_T_PARAM tensor, merged with
 * its adapter: W + lora_scale * B @ A), or its transpose when `transpose` (a matrix). */
typedef struct RtExportPart {
    int tensor;    /* index in RtModel.tensors */
    int transpose; /* 0 or 1 */
} RtExportPart;

/* One tensor of the exported model.safetensors: its parts concatenated along `axis` (every
 * other dimension equal), in the parts' dtype. A tensor under relorac's own name, or one a
 * family names one to one, is one part, not transposed; GPT-2's c_attn.weight [C, 3C] is
 * q^T, k^T, v^T along axis 1. Every RT_T_PARAM tensor is a part of exactly one export, so
 * --init-from reads every weight back through the same table. */
typedef struct RtExport {
    const char *name; /* key in model.safetensors */
    int axis;         /* 0 <= axis < the parts' rank */
    int n_parts;      /* >= 1 */
    const RtExportPart *parts;
} RtExport;

/* A config.json field that --init-from compares with the model (only models exported
 * under a Hugging Face family have them). Values are JSON text, compared as JSON values
 * (numbers numerically: "1e-05" equals 0.00001). */
typedef struct RtHfCheck {
    const char *key;    /* the field; "a|b.c": the first present of a and b.c (b.c: key c
                           of object b) */
    const char *what;   /* what it is in the spec: "vocab", "kv_heads", "norm eps" */
    const char *value;  /* the model's value: "256", "1e-05", "true", "\"silu\"", "null" */
    const char *absent; /* what transformers assumes when the field is absent or null;
                           NULL: the field is required */
} RtHfCheck;

/* RtStepStats.events */
enum RtEvent {
    RT_EV_RESET = 1u << 0,      /* ReLoRA restart: merged adapters into W, re-initialised them,
                                   pruned their optimizer moments */
    RT_EV_WARM_SWITCH = 1u << 1, /* full-rank warm start ended; training switched to ReLoRA */
    RT_EV_DIVERGED = 1u << 2     /* the loss or the gradient norm was not finite: the step's
                                    update was not applied and training stops */
};

/* What one training step reports (runtime/step.c). */
typedef struct RtStepStats {
    float loss;           /* mean cross-entropy of the batch (nats/token), before the update */
    float lr;             /* learning rate of this step's update */
    float grad_norm;      /* global L2 norm of the gradient, before clipping */
    unsigned events;      /* enum RtEvent: RT_EV_WARM_SWITCH ran before this step, RT_EV_RESET
                             after its update */
    float pruned_fraction;/* with RT_EV_RESET: fraction of the adapters' Adam moments that are
                             zero after the reset (0..1) */
} RtStepStats;

enum RtDataKind {
    RT_DATA_TEXT,    /* any file; each byte is one token (vocab >= 256 recommended) */
    RT_DATA_TOKENS,  /* llm.c .bin: 256 x int32 header {magic, version, count}, then the tokens:
                        magic 20240520 version 1 uint16, magic 20240801 version 7 uint32 */
    RT_DATA_NANOGPT, /* nanoGPT .bin: uint16 tokens, no header */
    RT_DATA_KIND_COUNT
};

/* Trainer defaults baked into the binary; every one has a CLI override. */
typedef struct RtTrainDefaults {
    int64_t eval_every;       /* validate every N steps; 0 = only at the end (--eval-every) */
    int64_t eval_batches;     /* validation batches per evaluation (--eval-batches) */
    int64_t checkpoint_every; /* checkpoint every N steps; 0 = only at the end */
    int64_t log_every;        /* plain-text progress line every N steps when not on a TTY */
    uint64_t seed;            /* --seed */
    int threads;              /* 0 = all online CPUs (--threads) */
    int data_kind;            /* enum RtDataKind */
    float val_fraction;       /* last fraction of --data used for validation without --val-data */
    const char *data_path;    /* --data; NULL = must be given */
    const char *val_path;     /* --val-data; NULL = split --data */
    const char *checkpoint_dir; /* --out */
    const char *init_from;    /* --init-from: a Hugging Face or relorac checkpoint directory
                                 a fresh run starts from; NULL = the model's own init */
} RtTrainDefaults;

enum RtScheduleKind { RT_SCHED_CONSTANT, RT_SCHED_COSINE, RT_SCHED_RELORA };

/* The training schedule: run-time data of the trainer. The spec's values are the binary's
 * defaults (RtModel.schedule); trainer options override them; the resolved schedule is
 * recorded in every checkpoint. Step fields count optimizer steps; step indices are
 * 0-based. The learning rate and the events follow docs/runtime.md "The schedule". */
typedef struct RtSchedule {
    int kind;               /* enum RtScheduleKind (compiled in: adapters exist or not) */
    int64_t steps;          /* N, the horizon: the cosine reaches its floor at step N */
    int64_t warmup;         /* W: the rate rises linearly from 0 over steps [0, W) */
    int64_t warm_start;     /* relora: steps [0, warm_start) train every weight at full rank */
    int64_t reset_every;    /* relora: R, steps between merges */
    int64_t restart_warmup; /* relora: Wr, linear ramp from 0 after the switch and each merge */
    double lr;              /* peak learning rate of the full-rank phase */
    double relora_lr;       /* peak learning rate of the ReLoRA phase */
    double min_lr_ratio;    /* m: the cosine ends at m times the peak */
    double prune;           /* relora: fraction of the adapters' Adam moments zeroed at a merge */
    /* When >= 0, the field was given as this percentage of `steps` and follows it when steps
     * is overridden (rounded down); -1 for a count. */
    double warmup_pct, warm_start_pct, reset_every_pct, restart_warmup_pct;
} RtSchedule;

/* The optimizer the compiled update_* functions apply (passes/optimizer.c): per parameter
 * p with gradient `<p>.grad` and moments `<p>.adam_m`, `<p>.adam_v`, with
 * gscale = min(1, clip / (grad_norm + 1e-6)) (1 when clip is 0) and t = ADAM_T:
 *   g = grad gscale; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2
 *   p = p - lr wd p - lr (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * with wd = weight_decay for tensors flagged RT_T_DECAY, else 0 (Loshchilov & Hutter,
 * "Decoupled Weight Decay Regularization", 2019, Algorithm 2). The runtime's sharded
 * update (runtime/zero.c) applies the same formula to one rank's slice. */
typedef struct RtOptim {
    double beta1, beta2, eps, weight_decay;
    double clip; /* train.clip: the maximum global gradient norm; 0: no clipping */
} RtOptim;

typedef struct RtCtx RtCtx;

/* The compiled functions, one per function of the program; the runtime's step policy
 * (runtime/step.c) decides which run when. Each takes the context only: inputs and
 * outputs are tensors of the table named by RtModel.io. */
typedef float (*RtFnPtr)(RtCtx *ctx);

enum RtFn {
    RT_FN_INIT,        /* @init: every parameter from ctx->seed (pools start zeroed) */
    RT_FN_TRAIN_FULL,  /* @train_full: forward + backward of the micro-batch in TOKENS/TARGETS;
                          stores every gradient (with several micro-steps, adds 1/k of it to
                          the stored one); returns the micro-batch's mean loss (nats/token) */
    RT_FN_NORM_FULL,   /* @norm_full: returns the global L2 norm of those gradients */
    RT_FN_UPDATE_FULL, /* @update_full: clipped AdamW with the rate in LR and Adam's step in ADAM_T */
    RT_FN_TRAIN_LORA,  /* @train_lora, @norm_lora, @update_lora: the same in the ReLoRA phase */
    RT_FN_NORM_LORA,
    RT_FN_UPDATE_LORA,
    RT_FN_SWITCH,      /* @switch: end of the warm start (zeroes the moments of what the ReLoRA phase trains) */
    RT_FN_RESET,       /* @relora_reset: W += s B A, A re-drawn, B = 0, the fraction PRUNE_FRACTION
                          of the adapters' moments zeroed; random draws use STEP */
    RT_FN_EVAL,        /* @eval: returns the mean loss of the micro-batch in TOKENS/TARGETS;
                          changes no state */
    RT_FN_LOGITS,      /* @logits: logits of the sequence in SAMPLE_TOKENS into LOGITS */
    RT_FN_REFRESH,     /* @refresh: the copies derived from the checkpointed tensors (precision
                          bf16: the bf16 copies of frozen weights); run after a checkpoint
                          load, absent when the program derives none */
    RT_FN_COUNT
};

/* Tensors the runtime writes before or reads after a function; RtModel.io[k] is the index
 * of the tensor in RtModel.tensors, or -1 when the program has none. */
enum RtIoSlot {
    RT_IO_TOKENS,         /* i32 [micro_batch, seq_len] */
    RT_IO_TARGETS,        /* i32 [micro_batch, seq_len], targets[b][t] = tokens[b][t+1] */
    RT_IO_STEP,           /* i32 []: the 0-based index of the step (RNG counters) */
    RT_IO_LR,             /* f32 []: the learning rate of the update */
    RT_IO_ADAM_T,         /* i32 []: Adam's 1-based step count */
    RT_IO_PRUNE_FRACTION, /* f32 []: the fraction pruned at a reset */
    RT_IO_SAMPLE_TOKENS,  /* i32 [1, seq_len]: the sequence of RT_FN_LOGITS */
    RT_IO_LOGITS,         /* f32 [seq_len, vocab]: its logits */
    RT_IO_MICRO_STEP,     /* i32 []: the index of the micro-step in the run, step x k + j for
                             micro-step j of the k = batch / micro_batch of a step (dropout's
                             RNG counter: keyed on each sequence's index in the step) */
    RT_IO_COUNT
};

/* The model object emitted by the compiler. The runtime has validated everything the
 * functions read before it calls them; they never fail. */
typedef struct RtModel {
    int abi_version;         /* RT_ABI_VERSION */
    const char *name;        /* model name from the spec */
    const char *model_hash;  /* identity: the architecture and parameter set only; a checkpoint
                                of another model is rejected */
    const char *config_json; /* Hugging Face config.json text, or NULL */
    const char *export_note; /* why the export keeps relorac's names (no family computes the
                                model exactly), or NULL when config_json is set */
    const char *hf_prefix;   /* the family's base-model prefix ("model.", "transformer."):
                                --init-from also finds a tensor saved without it; or NULL */
    int n_exports;
    const RtExport *exports; /* model.safetensors, in this order */
    int n_hf_checks;
    const RtHfCheck *hf_checks; /* config.json fields --init-from compares */
    int vocab, batch, seq_len; /* batch: sequences per step (one optimizer update) */
    int micro_batch;         /* sequences per micro-step: the rows of TOKENS and TARGETS, the
                                unit the functions compute; batch is a multiple of it */
    int n_tensors;
    const RtTensorInfo *tensors;
    size_t pool_bytes[RT_POOL_COUNT];
    RtTrainDefaults defaults;
    RtSchedule schedule;     /* the default schedule (the spec's) */
    RtFnPtr fn[RT_FN_COUNT]; /* NULL where the program has no such function */
    int io[RT_IO_COUNT];     /* tensor index or -1 */
    /* NULL: the pools are host memory and the functions run on the host. Otherwise the
     * runtime layer the pools live on (runtime/cuda.c's rt_cuda_device): it opens the
     * device and allocates the pools when the context is created, and every host access
     * to a tensor is a copy through it. device_code is that layer's own data (the CUDA
     * kernels' images), NULL without a device. */
    const struct RtDeviceOps *device;
    const void *device_code;
    RtOptim optim; /* the update functions' hyperparameters (all 0 without them) */
} RtModel;

typedef struct RtThreadPool RtThreadPool;

/* Runtime state handed to the model functions. Created by the trainer. Generated code
 * addresses model, pools and seed by offset: their order is part of RT_ABI_VERSION. */
struct RtCtx {
    const RtModel *model;
    void *pools[RT_POOL_COUNT]; /* base of each pool (NULL when its size is 0) */
    uint64_t seed;              /* run seed: all model randomness derives from it */
    int n_threads;              /* workers in rt_parallel_for, including the caller */
    RtThreadPool *threads;      /* persistent workers; NULL when n_threads == 1 */
    void *user;                 /* free for the model's or a test's use; the runtime ignores it */
    void *device;               /* the device layer's state (RtModel.device); NULL on the host */
    struct RtMirror *mirror;    /* host copies of the checkpointed tensors of a device context */
    struct RtGemm *gemm;        /* the runtime's GEMM kernels and packing buffers (gemm.c) */
};

/* Address of tensor i of ctx->model: a device address when the model has a device (host
 * code then reads and writes it only through the runtime, runtime/device.c). */
static inline void *rt_tensor_data(const RtCtx *ctx, int i)
{
    const RtTensorInfo *t = &ctx->model->tensors[i];
    return (char *)ctx->pools[t->pool] + t->offset;
}

/* Run fn(arg, begin, end) over [0, n) split into ctx->n_threads contiguous ranges, range i
 * being [i*n/T, (i+1)*n/T); the caller runs range 0. Returns after all ranges finish. The
 * split depends only on n and T, never on timing. Nested calls run serially in the caller. */
void rt_parallel_for(RtCtx *ctx, int64_t n, void (*fn)(void *arg, int64_t begin, int64_t end),
                     void *arg);

/* C = alpha * op(A) @ op(B) + beta * C, row-major, op(X) = X^T when trans_x != 0.
 * op(A): [m, k], op(B): [k, n], C: [m, n]; lda/ldb/ldc are row strides in elements of the
 * stored (untransposed) matrices. ctx may be NULL (then one thread). The GEMM runs on
 * ctx's pool and its result does not depend on ctx->n_threads. */
void rt_sgemm(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha,
              const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
              int64_t ldc);
/* The same over `batch` matrices spaced stride_a/stride_b/stride_c elements apart. */
void rt_sgemm_strided(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                      float alpha, const float *a, int64_t lda, int64_t stride_a, const float *b,
                      int64_t ldb, int64_t stride_b, float beta, float *c, int64_t ldc,
                      int64_t stride_c, int64_t batch);
/* rt_sgemm_strided with bf16 operands and f32 accumulation (precision = bf16, gemm_bf16.c):
 * a holds bf16 (uint16_t, the upper half of a binary32) elements when a_bf16 != 0, else f32
 * elements that are rounded to bf16 (nearest even, as rt_f32_to_bf16) as they are packed;
 * b likewise. Each product of two bf16 values is exact in f32; sums are f32 in k order (in
 * slices of 512, pairs of k per instruction), C = alpha * sum + beta * C. Strides and
 * leading dimensions in elements of each operand's own type. Runs on AVX512-BF16
 * (vdpbf16ps) when the CPU has it, else on a scalar kernel with the same sums; the result
 * does not depend on ctx->n_threads. */
void rt_sbgemm_strided(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                       float alpha, const void *a, int a_bf16, int64_t lda, int64_t stride_a,
                       const void *b, int b_bf16, int64_t ldb, int64_t stride_b, float beta,
                       float *c, int64_t ldc, int64_t stride_c, int64_t batch);

/* Two GEMMs that share an operand or their C, as one (a fused LoRA linear; trans_a 0, no
 * batch; op(X) = X^T when trans_b != 0):
 *   cat_k == 0: C[m, 0:n] = alpha A op(B) + beta C and C[m, n:n+len2] = alpha A op(B2) +
 *               beta C, A: [m, k] (packed once), op(B): [k, n], op(B2): [k, len2];
 *               a2, lda2 unused.
 *   cat_k == 1: C[m, n] = alpha (A op(B) + A2 op(B2)) + beta C, A: [m, k], A2: [m, len2],
 *               op(B): [k, n], op(B2): [len2, n] (C visited once for both).
 * Each element of C equals what the two rt_sgemm calls give (cat_k == 1: the second with
 * beta 1), on any number of threads. */
void rt_sgemm_pair(RtCtx *ctx, int cat_k, int trans_b, int64_t m, int64_t n, int64_t k,
                   int64_t len2, float alpha, const float *a, int64_t lda, const float *a2,
                   int64_t lda2, const float *b, int64_t ldb, const float *b2, int64_t ldb2,
                   float beta, float *c, int64_t ldc);

/* Counter-based RNG, bit-exact with the compiler's reference executor:
 *   splitmix64(x): x += 0x9E3779B97F4A7C15; x = (x ^ x>>30) * 0xBF58476D1CE4E5B9;
 *                  x = (x ^ x>>27) * 0x94D049BB133111EB; return x ^ x>>31
 *   u64(seed, stream, counter) = splitmix64(splitmix64(seed ^ splitmix64(stream)) + counter)
 *   uniform = (u64 >> 40) * 2^-24 in [0, 1)
 *   normal  = sqrt(-2 ln max(u1, 1e-12)) * cos(2 pi u2), u1 = uniform(2c), u2 = uniform(2c+1),
 *             computed in double, returned as float.
 * Streams >= RT_STREAM_RUNTIME are reserved for the runtime. */
#define RT_STREAM_RUNTIME 0xFFFFFFFF00000000ull
#define RT_STREAM_TRAIN_BATCH (RT_STREAM_RUNTIME + 1)
#define RT_STREAM_VAL_BATCH (RT_STREAM_RUNTIME + 2)
#define RT_STREAM_SAMPLE (RT_STREAM_RUNTIME + 3)

uint64_t rt_splitmix64(uint64_t x);
uint64_t rt_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
float rt_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);
float rt_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

/* bfloat16 conversions (round to nearest even; NaN stays NaN). */
float rt_bf16_to_f32(uint16_t h);
uint16_t rt_f32_to_bf16(float f);

/* The trainer CLI (see docs/runtime.md). Returns the process exit status: 0 ok, 1 the loss
 * became NaN/inf (last checkpoint kept), 2 usage, data or checkpoint error, 130/143 after
 * SIGINT/SIGTERM (a checkpoint was written). Never calls exit(). */
int rt_main(int argc, char **argv, const RtModel *m);

#ifdef __cplusplus
}
#endif
#endif
