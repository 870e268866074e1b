/* Spec: the checked, resolved and immutable description of one model + adapter +
 * training run. This is the interface between the frontend and the IR lowering:
 * every default is filled in, every name resolved, every shape computed, and every
 * object keeps the SrcLoc of the DSL text it came from. Every field of the language,
 * its type, default and where it lives here is a row of fields.def (docs/language.md
 * says what each means). Produced by fe_check/fe_load_spec; owned by the Arena. */
#ifndef RELORAC_SPEC_H
#define RELORAC_SPEC_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "diag.h"

typedef struct SpecModule SpecModule;
typedef struct SpecLinear SpecLinear;
typedef struct SpecNode SpecNode;

/* The enums a field stores (fields.def WORD and CALL fields) list their values in the
 * order of the field's words or call kinds. */
typedef enum { SPEC_NORM_RMSNORM, SPEC_NORM_LAYERNORM } SpecNormKind;
typedef enum { SPEC_POS_NONE, SPEC_POS_LEARNED } SpecPositions;

/* What a parameter tensor is, for trainable/no_decay groups and initialisation. */
typedef enum {
    SPEC_PARAM_EMBEDDING, /* embedding.weight [vocab, dim] */
    SPEC_PARAM_POSITIONS, /* positions.weight [context, dim] */
    SPEC_PARAM_HEAD,      /* head.weight [vocab, dim] (absent when tied) */
    SPEC_PARAM_LINEAR,    /* a block linear's weight [out, in] */
    SPEC_PARAM_BIAS,      /* a block linear's bias [out] */
    SPEC_PARAM_NORM,      /* a norm's weight [d] (block norms and the final norm) */
    SPEC_PARAM_NORM_BIAS, /* a layernorm's bias [d] */
} SpecParamRole;

/* One parameter tensor of the base model (LoRA factors are not listed here; they
 * follow from SpecLinear.is_adapted and the adapter rank). */
typedef struct SpecParam {
    const char *name;       /* full name; per-layer tensors read "layers.{i}.attention.q.weight" */
    const char *local_name; /* per-layer: "attention.q.weight"; global: same as name */
    bool is_per_layer;      /* one copy in each of model.layers blocks */
    SpecParamRole role;
    int ndim;               /* 1 or 2 */
    int64_t shape[2];       /* PyTorch layout: [out, in] for linears, [n] for vectors */
    int64_t numel;          /* elements of one copy */
    SpecModule *module;     /* owning block module; NULL for globals */
    SpecLinear *linear;     /* for LINEAR and BIAS roles */
    bool is_trainable_relora; /* trained at full rank in the ReLoRA phase (adapter.trainable) */
    bool has_decay;         /* weight decay applies (not in optimizer no_decay) */
    double init_std;        /* normal(0, init_std) for matrices; norms start at 1, biases at 0 */
    SrcLoc loc;             /* the module call, or the model field that created it */
} SpecParam;

/* A linear layer y = x W^T (+ b), W: [out, in]. */
struct SpecLinear {
    const char *name;      /* "q", "k", "v", "o", "gate", "up", "down"; for linear(): the module name */
    const char *full_name; /* what adapter targets match: "attention.q", "swiglu.down", "fc" */
    int64_t in, out;
    bool has_bias;
    bool is_adapted;       /* frozen W + LoRA (alpha/rank)·B·A in the ReLoRA phase */
    int64_t rank;          /* adapter rank when is_adapted, else 0; A: [rank, in], B: [out, rank] */
    SpecParam *weight, *bias; /* bias NULL when !has_bias */
    SpecModule *module;
};

typedef enum {
    SPEC_MOD_ATTENTION, /* causal multi-head attention; linears q, k, v, o */
    SPEC_MOD_SWIGLU,    /* down(silu(gate(x)) * up(x)); linears gate, up, down */
    SPEC_MOD_GEGLU,     /* down(gelu(gate(x)) * up(x)); linears gate, up, down */
    SPEC_MOD_LINEAR,    /* one linear */
    SPEC_MOD_RMSNORM,   /* x * rsqrt(mean(x^2) + eps) * w */
    SPEC_MOD_LAYERNORM, /* (x - mean) * rsqrt(var + eps) * w (+ b) */
} SpecModuleKind;

/* One primitive call in the block (the same in every layer). */
struct SpecModule {
    SpecModuleKind kind;
    const char *name;       /* "attention", "rmsnorm_1", "fc": unique within the block */
    SrcLoc loc;             /* the call */
    int64_t in_dim;         /* feature size of the input x: [B,T,in_dim] */
    int64_t out_dim;        /* feature size of the output */
    /* attention */
    int64_t heads, kv_heads, head_dim;
    bool has_rope;
    double rope_theta;      /* when has_rope */
    /* swiglu, geglu */
    int64_t hidden;
    /* linears (attention, swiglu, geglu, linear); layernorm: has a bias vector */
    bool has_bias;
    /* rmsnorm, layernorm */
    double eps;
    SpecLinear *linears;    /* attention: q,k,v,o; glu: gate,up,down; linear: 1 */
    int n_linears;
    SpecParam **params;     /* this module's tensors, in the order of model.params */
    int n_params;
};

typedef enum {
    SPEC_NODE_INPUT,  /* the block parameter x: [B,T,dim] */
    SPEC_NODE_LOCAL,  /* a reference to a local; a = its defining node (shared: the block is a DAG) */
    SPEC_NODE_ADD,    /* a + b (residual add) */
    SPEC_NODE_MUL,    /* a * b elementwise */
    SPEC_NODE_SCALE,  /* scale * a */
    SPEC_NODE_ACT,    /* act(a) */
    SPEC_NODE_MODULE, /* module(a) */
} SpecNodeKind;

typedef enum { SPEC_ACT_GELU, SPEC_ACT_RELU, SPEC_ACT_SILU } SpecActivation;

/* A value in the block's dataflow; every value is a [B,T,dim] tensor. */
struct SpecNode {
    SpecNodeKind kind;
    SrcLoc loc;          /* the operator, call or name */
    int64_t dim;         /* feature size of the result */
    SpecNode *a, *b;     /* operands (b only for ADD and MUL) */
    double scale;        /* SCALE */
    SpecActivation act;  /* ACT */
    SpecModule *module;  /* MODULE */
    const char *local;   /* LOCAL: the local's name */
    int id;              /* unique, in creation order (operands before users) */
};

typedef struct SpecLocal {
    const char *name;
    SrcLoc loc;          /* the assignment */
    SpecNode *value;
} SpecLocal;

/* The transformer block: out = f(x), applied model.layers times. */
typedef struct SpecBlock {
    const char *param;   /* the parameter's name ("x") */
    SrcLoc loc;          /* the `block` definition */
    SpecNode *ret;       /* the returned value; ret->dim == model.dim */
    SpecLocal *locals;
    int n_locals;
    SpecModule **modules; /* in source order */
    int n_modules;
    int n_nodes;
} SpecBlock;

typedef struct SpecModel {
    const char *name;
    const char *parent;  /* NULL when not a variant */
    SrcLoc loc;
    int64_t vocab, dim, layers, heads, kv_heads, context;
    double init_std;
    bool tied;           /* head reuses embedding.weight */
    SpecPositions positions;
    SpecNormKind norm;   /* final norm before the head */
    double norm_eps;
    bool norm_bias;      /* final layernorm has a bias */
    bool bias;           /* default `bias` of attention/glu/linear calls */
    SpecBlock block;
    SpecParam *params;   /* globals then one layer's tensors, in this order: embedding,
                            positions, block modules in source order, final norm, head */
    int n_params;
    SpecLinear **linears; /* every block linear, in source order */
    int n_linears;
} SpecModel;

/* A list of strings as written (globs or group names) and where each item was written. */
typedef struct SpecNames {
    const char **items;
    const SrcLoc *locs;
    int n;
} SpecNames;

typedef struct SpecAdapter {
    bool is_present;     /* an adapter was declared */
    const char *name;
    SrcLoc loc;
    int64_t rank;
    double alpha;
    double scaling;      /* alpha / rank */
    double dropout;      /* on the LoRA branch input */
    SpecNames targets;   /* globs over SpecLinear.full_name */
    SpecNames trainable; /* groups (embedding, positions, norms, head, biases) or linear globs */
} SpecAdapter;

typedef enum { SPEC_DATA_NONE, SPEC_DATA_TEXT, SPEC_DATA_TOKENS } SpecDataKind;

typedef struct SpecData {
    SpecDataKind kind;   /* TEXT: bytes are tokens (vocab >= 256); TOKENS: llm.c .bin file */
    const char *path;    /* as written, relative to the working directory */
    bool exists;         /* the file could be opened when checked */
    SrcLoc loc;
} SpecData;

typedef enum { SPEC_OPT_ADAMW } SpecOptimizerKind;

typedef struct SpecOptimizer {
    SpecOptimizerKind kind;
    double lr, betas[2], eps, weight_decay;
    SpecNames no_decay;  /* groups (norms, biases, embedding, positions, head) or linear globs */
    SrcLoc loc;
} SpecOptimizer;

typedef enum { SPEC_SCHED_CONSTANT, SPEC_SCHED_COSINE, SPEC_SCHED_RELORA } SpecScheduleKind;
typedef enum { SPEC_RESET_MAGNITUDE, SPEC_RESET_RANDOM } SpecResetKind;

/* A step count of the schedule. Written as a percentage of train.steps it resolves to
 * n = floor(percent / 100 * steps) (docs/language.md §5.3), and percent keeps what was
 * written (also when the default is a percentage) so that a trainer can resolve it
 * again against another step count; percent < 0 when it was written as a count. */
typedef struct SpecSteps {
    int64_t n;
    double percent;
} SpecSteps;

/* Learning-rate schedule and ReLoRA restarts; all step counts are optimizer steps. */
typedef struct SpecSchedule {
    SpecScheduleKind kind;
    SpecSteps warmup;       /* linear warmup from 0 at the start of the run */
    double min_lr_ratio;    /* cosine floor (COSINE, RELORA; 1 for CONSTANT) */
    /* RELORA only */
    SpecSteps warm_start;   /* full-rank steps before the switch to LoRA */
    SpecSteps reset_every;  /* merge + re-init + optimizer prune period, counted from warm_start */
    SpecSteps restart_warmup; /* linear re-warm from 0 after the switch and after each reset */
    double prune;           /* fraction of the LoRA Adam moments zeroed at a reset */
    SpecResetKind reset;    /* MAGNITUDE: smallest |m|,|v| zeroed; RANDOM: random entries */
    double relora_lr;       /* peak lr of the ReLoRA phase */
    int64_t n_resets;       /* merges that happen before `steps` (derived) */
    SrcLoc loc;
} SpecSchedule;

typedef enum { SPEC_FP32, SPEC_BF16 } SpecPrecision;
typedef enum { SPEC_RECOMPUTE_NONE, SPEC_RECOMPUTE_SELECTIVE, SPEC_RECOMPUTE_FULL } SpecRecompute;
typedef enum { SPEC_TARGET_CPU, SPEC_TARGET_CUDA } SpecTarget;

typedef struct SpecTrain {
    bool is_present;        /* a train section was declared (else all defaults) */
    SrcLoc loc;
    SpecData data, val_data; /* val_data.kind == NONE: the last val_fraction of data */
    double val_fraction;
    int64_t batch, seq_len, steps;
    int64_t micro_batch;    /* sequences per micro-step; divides batch (gradient accumulation) */
    SpecRecompute recompute; /* activation recomputation (passes/recompute.c) */
    SpecOptimizer optimizer;
    double clip;            /* global grad-norm clip; 0 disables */
    SpecPrecision precision;
    int64_t seed;
    int64_t eval_every, eval_batches, checkpoint_every; /* 0: only at the end of a run */
    const char *checkpoint_dir;
    SpecTarget target;
    SpecSchedule schedule;
} SpecTrain;

typedef struct Spec {
    const char *file;
    SpecModel model;
    SpecAdapter adapter;
    SpecTrain train;
} Spec;

/* "layers.{i}.x.weight" with {i} replaced by layer; globals unchanged. */
const char *spec_param_name(Arena *a, const SpecParam *p, int64_t layer);
/* Total elements of p over all layers. */
int64_t spec_param_total(const SpecModel *m, const SpecParam *p);

const char *spec_module_kind_name(SpecModuleKind k);
const char *spec_node_kind_name(SpecNodeKind k);
const char *spec_act_name(SpecActivation a);
const char *spec_schedule_kind_name(SpecScheduleKind k);

#endif
