/* The graph IR: one module holds the model's state as globals (parameters, frozen
 * weights, adapter factors, optimizer moments, data, counters) and a few functions
 * over them (init, train steps, ReLoRA events, eval). A function is a list of SSA
 * nodes executed in order; each node yields one value, except effect ops, which
 * update their global operands in place. Shapes are static, resolved from the spec.
 * Every pass and both backends transform or consume this one representation. */
#ifndef RELORAC_IR_H
#define RELORAC_IR_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "arena.h"
#include "diag.h"

/* ---- types ------------------------------------------------------------------ */

typedef enum { IR_F32, IR_BF16, IR_I32 } IrDType;

#define IR_MAX_RANK 4

/* A tensor type. rank 0 is a scalar. Effect nodes have type {IR_F32, rank -1}. */
typedef struct IrType {
    IrDType dtype;
    int rank;
    int64_t dim[IR_MAX_RANK];
} IrType;

IrType ir_type_make(IrDType dtype, int rank, const int64_t *dims);
IrType ir_type_scalar(IrDType dtype);
int64_t ir_type_numel(IrType t);
bool ir_type_eq(IrType a, IrType b);
const char *ir_dtype_name(IrDType d); /* "f32", "bf16", "i32" */
/* Bytes of one element in memory: f32 and i32 4, bf16 2 (the upper half of an f32).
 * The one statement of it: the buffer planner, the emitters and the model table use it. */
int ir_dtype_bytes(IrDType d);
/* v as stored in an element of dtype d: bf16 rounds to nearest even through f32 (as
 * rt_f32_to_bf16); f32 and i32 keep v (the reference executors compute in f64). */
double ir_dtype_store(IrDType d, double v);
/* "f32[8,128,256]" (arena string), for messages. */
const char *ir_type_str(Arena *a, IrType t);

/* ---- operations --------------------------------------------------------------- */

typedef enum {
#define OP(id, name, nval, nglob, flags, doc) IR_OP_##id,
#include "ops.def"
#undef OP
    IR_OP_COUNT
} IrOpKind;

enum {
    OPF_DIFF = 1u << 0,
    OPF_ELEMWISE = 1u << 1,
    OPF_ROWWISE = 1u << 2,
    OPF_EFFECT = 1u << 3,
};

typedef struct IrOpInfo {
    const char *name;
    int n_values;  /* -1: variadic */
    int n_globals;
    unsigned flags;
    const char *doc;
} IrOpInfo;

extern const IrOpInfo ir_op_info[IR_OP_COUNT];
/* IR_OP_COUNT when name is not an op. */
IrOpKind ir_op_lookup(const char *name);

/* ---- attributes --------------------------------------------------------------- */

typedef enum { IR_ATTR_INT, IR_ATTR_FLOAT, IR_ATTR_STR, IR_ATTR_INTS } IrAttrKind;

typedef struct IrAttr {
    const char *key;
    IrAttrKind kind;
    int64_t i;
    double f;
    const char *s;
    const int64_t *ints;
    int n_ints;
} IrAttr;

/* A sorted (by key) attribute list; set replaces an existing key. */
typedef struct IrAttrs {
    IrAttr *items;
    int n, cap;
} IrAttrs;

void ir_attrs_set_int(Arena *a, IrAttrs *as, const char *key, int64_t v);
void ir_attrs_set_float(Arena *a, IrAttrs *as, const char *key, double v);
void ir_attrs_set_str(Arena *a, IrAttrs *as, const char *key, const char *v);
void ir_attrs_set_ints(Arena *a, IrAttrs *as, const char *key, const int64_t *v, int n);
const IrAttr *ir_attrs_get(const IrAttrs *as, const char *key);
/* Sets every attribute of src in dst (keeping dst's others). */
void ir_attrs_copy(Arena *a, IrAttrs *dst, const IrAttrs *src);
/* Typed getters return dflt when the key is absent; a float getter accepts an int attr. */
int64_t ir_attrs_int(const IrAttrs *as, const char *key, int64_t dflt);
double ir_attrs_float(const IrAttrs *as, const char *key, double dflt);
const char *ir_attrs_str(const IrAttrs *as, const char *key, const char *dflt);

/* ---- globals ------------------------------------------------------------------- */

/* Memory classes: what the planner lays out in separate pools. */
typedef enum {
    IR_CLASS_PARAM,       /* trainable parameters (full-rank trainables, adapter factors) */
    IR_CLASS_FROZEN,      /* frozen weights (ReLoRA base W) */
    IR_CLASS_GRAD,        /* gradients that live across the optimizer step */
    IR_CLASS_OPTIM,       /* optimizer state (Adam moments) */
    IR_CLASS_DATA,        /* scalars and inputs exchanged with the host each step (tokens, targets,
                             step, lr, adam_t, grad_norm, prune_fraction) */
    IR_CLASS_STATE,       /* counters and small host-visible state (step) */
    IR_CLASS_ACTIVATION,  /* values kept from forward for backward (planned, not globals) */
    IR_CLASS_SCRATCH,     /* short-lived temporaries (planned, not globals) */
    IR_CLASS_COUNT
} IrMemClass;

const char *ir_class_name(IrMemClass c); /* "param", "frozen", ... */

enum {
    IR_G_TRAINABLE = 1u << 0, /* receives a gradient and an optimizer update */
    IR_G_DECAY = 1u << 1,     /* AdamW weight decay applies */
    IR_G_EXPORT = 1u << 2,    /* part of the exported model checkpoint */
    IR_G_ADAPTER = 1u << 3,   /* a LoRA factor (A or B) */
    IR_G_MOMENT = 1u << 4,    /* an Adam moment */
};

typedef struct IrGlobal {
    int id;              /* index in IrModule.globals */
    const char *name;    /* "layers.0.attention.q.weight"; printed as @name */
    IrType type;
    IrMemClass cls;
    unsigned flags;      /* IR_G_* */
    IrAttrs attrs;       /* e.g. hf_name, lora_a / lora_b / lora_scale links, moment_of */
    SrcLoc loc;
} IrGlobal;

/* ---- nodes and functions --------------------------------------------------------- */

typedef struct IrNode {
    int id;              /* value number within its function: printed %id */
    IrOpKind op;
    IrType type;         /* result type (rank -1 for effect ops) */
    struct IrNode **in;  /* value operands */
    int n_in;
    IrGlobal **gl;       /* global operands */
    int n_gl;
    IrAttrs attrs;
    SrcLoc loc;          /* the DSL construct this node implements */
    const char *name;    /* optional human name ("layers.0.attention.q"), printed as a comment */
    int group;           /* fusion group id, -1 when none (set by the fusion pass) */
} IrNode;

typedef struct IrFunc {
    const char *name;    /* "init", "train_full", "train_lora", "relora_reset", "eval", ... */
    IrNode **nodes;      /* execution order; operands always precede their users */
    int n_nodes, cap_nodes;
    IrNode *ret;         /* returned value (the loss for train/eval) or NULL */
    int next_id;
} IrFunc;

typedef struct IrModule {
    Arena *arena;
    const char *name;
    IrGlobal **globals;
    int n_globals, cap_globals;
    IrFunc **funcs;
    int n_funcs, cap_funcs;
    IrAttrs attrs;       /* module attributes: schedule, batch, seq_len, seed defaults, ... */
} IrModule;

IrModule *ir_module_new(Arena *a, const char *name);
IrGlobal *ir_global_new(IrModule *m, const char *name, IrType type, IrMemClass cls, unsigned flags, SrcLoc loc);
IrGlobal *ir_global_find(const IrModule *m, const char *name);
IrFunc *ir_func_new(IrModule *m, const char *name);
IrFunc *ir_func_find(const IrModule *m, const char *name);

/* Appends a node (operands must already be in f). Its type is inferred from the op's
 * shape rule after attributes are set: call ir_node_infer once they are. */
IrNode *ir_node_new(IrModule *m, IrFunc *f, IrOpKind op, IrNode **in, int n_in, IrGlobal **gl, int n_gl, SrcLoc loc);
/* Applies the shape rule; on a mismatch records a diagnostic at n->loc and returns false. */
bool ir_node_infer(IrNode *n, Diags *d);
/* Results of a node: 0 for an effect, 1 for most ops; a multi-result op (attention:
 * y and lse; attention_grad: dq, dk, dv; linear_cross_entropy_grad: dx, dw) has extra
 * results, which its users read through `result` nodes ({index} >= 1). */
int ir_node_n_results(const IrNode *n);
/* The type of result `index` of n (0: n's own); false when n has no such result. */
bool ir_node_result_type(const IrNode *n, int index, IrType *t);
/* Appends to f a copy of n (op, globals, type, attributes, name, group, location)
 * whose value operands are in[0..n->n_in): how passes rebuild a function. */
IrNode *ir_node_copy(IrModule *m, IrFunc *f, const IrNode *n, IrNode *const *in);
/* The same with operand i replaced by map[n->in[i]->id] (old node id -> new node). */
IrNode *ir_node_copy_mapped(IrModule *m, IrFunc *f, const IrNode *n, IrNode *const *map);
/* Renumbers nodes 0..n-1 in order (after a pass rewrote the list). */
void ir_func_renumber(IrFunc *f);

/* ---- builder: one call per op, types inferred, location carried ------------------- */

typedef struct IrBuilder {
    IrModule *m;
    IrFunc *f;
    SrcLoc loc;          /* location given to every node built */
    Diags *diags;        /* shape errors go here */
    bool failed;         /* a shape rule failed */
} IrBuilder;

void ir_builder_init(IrBuilder *b, IrModule *m, IrFunc *f, Diags *d);
IrNode *ir_global_read(IrBuilder *b, IrGlobal *g);
IrNode *ir_const(IrBuilder *b, IrType t, double value);
IrNode *ir_unary(IrBuilder *b, IrOpKind op, IrNode *x);          /* silu gelu relu softmax ... */
IrNode *ir_binary(IrBuilder *b, IrOpKind op, IrNode *a, IrNode *x2); /* add sub mul ... */
IrNode *ir_scale(IrBuilder *b, IrNode *x, double alpha);
IrNode *ir_matmul(IrBuilder *b, IrNode *a, IrNode *w, bool trans_a, bool trans_b);
IrNode *ir_embedding(IrBuilder *b, IrNode *table, IrNode *idx);
IrNode *ir_rmsnorm(IrBuilder *b, IrNode *x, IrNode *w, double eps);
IrNode *ir_layernorm(IrBuilder *b, IrNode *x, IrNode *w, IrNode *bias, double eps);
IrNode *ir_rope(IrBuilder *b, IrNode *x, double theta);
IrNode *ir_softmax(IrBuilder *b, IrNode *x, bool causal);
IrNode *ir_repeat_kv(IrBuilder *b, IrNode *x, int times);
IrNode *ir_reshape(IrBuilder *b, IrNode *x, int rank, const int64_t *dims);
IrNode *ir_transpose(IrBuilder *b, IrNode *x, int rank, const int64_t *perm);
IrNode *ir_slice(IrBuilder *b, IrNode *x, int axis, int64_t start, int64_t end);
IrNode *ir_concat(IrBuilder *b, IrNode *x, IrNode *y, int axis);
IrNode *ir_sum(IrBuilder *b, IrNode *x, int n_axes, const int64_t *axes);
IrNode *ir_dropout(IrBuilder *b, IrNode *x, IrNode *step, double p, int64_t stream);
IrNode *ir_cross_entropy(IrBuilder *b, IrNode *logits, IrNode *targets);
/* q[B,H,T,D], k, v [B,Hkv,T,D] -> [B,H,T,D]: softmax(scale q k^T) v, causal or not. */
IrNode *ir_attention(IrBuilder *b, IrNode *q, IrNode *k, IrNode *v, double scale, bool causal);
/* x[N,C], w[V,C], targets[N] -> f32[]: cross_entropy(x w^T, targets). */
IrNode *ir_linear_cross_entropy(IrBuilder *b, IrNode *x, IrNode *w, IrNode *targets);
/* The index-th extra result (index >= 1) of multi-result node x. */
IrNode *ir_result(IrBuilder *b, IrNode *x, int index);
/* Generic form for everything else: attributes are set on the result before inference. */
IrNode *ir_build(IrBuilder *b, IrOpKind op, IrNode **in, int n_in, IrGlobal **gl, int n_gl, const IrAttrs *attrs);

/* ---- text form, verification --------------------------------------------------- */

/* Deterministic text: globals sorted by id, functions in order, attributes sorted. */
void ir_print(const IrModule *m, FILE *out);
void ir_print_func(const IrModule *m, const IrFunc *f, FILE *out);
/* Print options; NULL or a zeroed struct gives the default form (the one golden files use). */
typedef struct IrPrintOpts {
    bool locs; /* append loc("file":line:col) to globals and nodes that have a location */
} IrPrintOpts;
void ir_print_with(const IrModule *m, const IrPrintOpts *o, FILE *out);
void ir_print_func_with(const IrModule *m, const IrFunc *f, const IrPrintOpts *o, FILE *out);
/* Parses the text form; errors go to d with locations in `name`. NULL on error.
 * Only syntax, names and arity are checked: run ir_verify on the result. */
IrModule *ir_parse(Arena *a, Diags *d, const char *name, const char *text, size_t len);
/* Checks every invariant a pass may rely on; records one diagnostic per violation. */
bool ir_verify(const IrModule *m, Diags *d);

/* ---- autodiff ------------------------------------------------------------------ */

/* Appends to f the reverse-mode gradient of the scalar `loss` (a node of f) with
 * respect to each global in wrt (read in f through GLOBAL nodes). grads[i] gets the
 * gradient node of wrt[i] (a zero CONST when loss does not depend on it). Gradients
 * are only built for values on a path from a wrt global to the loss. */
bool ir_autodiff(IrModule *m, IrFunc *f, IrNode *loss, IrGlobal **wrt, int n_wrt, IrNode **grads, Diags *d);
/* True when op has a gradient rule (a test checks every OPF_DIFF op has one). */
bool ir_autodiff_has_rule(IrOpKind op);

/* ---- the reference executor -------------------------------------------------------- */

/* Plain loops, f64 storage and accumulation. Only a test oracle. */
typedef struct IrInterp IrInterp;

IrInterp *ir_interp_create(const IrModule *m, uint64_t seed);
void ir_interp_destroy(IrInterp *it);
/* The storage of a global (numel doubles); writable, e.g. to set data or perturb a weight. */
double *ir_interp_global(IrInterp *it, const IrGlobal *g);
/* Runs f; returns its ret value's first element (0 when none). Values of the last run
 * stay readable until the next run. */
double ir_interp_run(IrInterp *it, const IrFunc *f);
/* A node's value from the last run of its function (NULL for effect ops). */
const double *ir_interp_value(const IrInterp *it, const IrNode *n);

/* ---- the training schedule (ir/schedule.c) ------------------------------------------ */

typedef enum { IR_SCHED_CONSTANT, IR_SCHED_COSINE, IR_SCHED_RELORA } IrSchedKind;

/* The schedule a trainer starts from: the module's schedule attributes (docs/ir.md
 * "Module attributes"). Steps are 0-based step indices; rates are per optimizer step. */
typedef struct IrSchedule {
    IrSchedKind kind;
    int64_t steps;          /* N: optimizer steps in the whole run (the horizon) */
    int64_t warmup;         /* W: linear warmup from 0 over steps [0, W) */
    int64_t warm_start;     /* relora: steps [0, warm_start) train at full rank */
    int64_t reset_every;    /* relora: R, steps between merges */
    int64_t restart_warmup; /* relora: Wr, the LR ramp after the switch and after each merge */
    double lr;              /* peak LR of the full-rank phase (optim.lr) */
    double relora_lr;       /* peak LR of the ReLoRA phase (relora.lr) */
    double min_lr_ratio;    /* m: the cosine ends at m times the peak */
    double prune;           /* relora: fraction of the adapters' Adam moments zeroed at a merge */
    /* the percentage of steps a field was given as in the spec (re-resolved when a trainer
     * overrides steps), or -1 when it was given as a count */
    double warmup_pct, warm_start_pct, reset_every_pct, restart_warmup_pct;
} IrSchedule;

/* What the host does at one step (docs/ir.md "Step policy"). */
typedef struct IrStepPlan {
    bool lora;          /* run the ReLoRA-phase functions (train_lora, norm_lora, update_lora) */
    bool switch_before; /* run @switch first: the first step after a full-rank warm start */
    bool reset_after;   /* run @relora_reset after the update */
    int64_t adam_t;     /* Adam's 1-based step count, restarted at the switch */
    double lr;          /* the learning rate of the update */
} IrStepPlan;

/* One step run in the reference executor. */
typedef struct IrStepResult {
    double loss, grad_norm, lr;
    bool switched, reset;
} IrStepResult;

const char *ir_sched_kind_name(IrSchedKind k);
/* Reads the schedule attributes; a missing one is an error (no second default). */
bool ir_schedule_from_module(const IrModule *m, IrSchedule *s, Diags *d);
/* The rules of docs/language.md §5.3; false with the broken rule in why. */
bool ir_schedule_check(const IrSchedule *s, char *why, size_t n);
/* The learning rate of step `step`: one global cosine, re-warmed linearly from 0 after the
 * switch and after each merge (docs/ir.md "Learning rate"; relora-notes §1.5). */
double ir_schedule_lr(const IrSchedule *s, int64_t step);
IrStepPlan ir_schedule_plan(const IrSchedule *s, int64_t step);
/* Runs step `step` of module m (after lowering and the pipeline) in it, as a trainer does:
 * writes @step, @lr, @adam_t and @prune_fraction, runs @switch when due, train_* once per
 * micro-step (k = batch / train.micro_batch of them: micro-step j gets rows [j b, (j+1) b)
 * of x and y in @tokens and @targets and @micro_step = step k + j, the gradients it stores
 * zeroed first when k > 1), norm_*, and unless the loss (the mean of the micro-steps') or
 * the gradient norm is not finite, update_* and @relora_reset when due. x, y: the step's
 * batch [batch, seq_len]. False when the step diverged (the update was not applied). */
bool ir_interp_train_step(IrInterp *it, const IrModule *m, const IrSchedule *s, const int32_t *x, const int32_t *y,
                          int64_t step, IrStepResult *r);

/* Counter-based RNG shared bit-for-bit with runtime/rt.h (see docs/ir.md). */
uint64_t ir_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);
double ir_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter); /* [0,1), 24 bits */
double ir_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

#endif
