/* rt_internal.h: the runtime's internal modules, one section per .c file. Not part of the
 * ABI (generated code includes rt.h only); unit tests include it to test each piece alone.
 * Fallible functions return false and fill an RtError; none of them prints or exits. */
#ifndef RELORAC_RT_INTERNAL_H
#define RELORAC_RT_INTERNAL_H

#include "rt.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- error.c ---- */
enum RtErrCode {
    RT_OK,
    RT_ERR_USAGE,       /* bad command line */
    RT_ERR_IO,          /* open/read/write/rename failed */
    RT_ERR_NOSPC,       /* write failed for lack of space (ENOSPC, EDQUOT) */
    RT_ERR_EMPTY,       /* data file empty or shorter than seq_len + 1 tokens */
    RT_ERR_FORMAT,      /* malformed file: bad magic, bad header JSON, bad offsets */
    RT_ERR_TRUNCATED,   /* file shorter than its header says */
    RT_ERR_TOKEN,       /* token id >= vocab */
    RT_ERR_MISSING,     /* a tensor the model needs is not in the checkpoint */
    RT_ERR_MISMATCH,    /* a tensor has the wrong dtype or shape */
    RT_ERR_OTHER_MODEL, /* checkpoint written by another model (model_hash) */
    RT_ERR_MODEL,       /* the RtModel table itself is inconsistent (a compiler bug) */
    RT_ERR_NOMEM,
    RT_ERR_DEVICE       /* no device, no driver, an unsupported device or a device failure */
};

typedef struct RtError {
    int code; /* enum RtErrCode */
    char msg[768];
} RtError;

/* Records the error (first one wins) and returns false, for `return rt_err(e, ...)`. */
bool rt_err(RtError *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
size_t rt_dtype_size(int dtype);
const char *rt_dtype_name(int dtype); /* "F32", "BF16", "I32" */
int64_t rt_tensor_numel(const RtTensorInfo *t);
/* Checks names, dtypes, ranks, pool extents and adapter links of a model table. */
bool rt_model_validate(const RtModel *m, RtError *e);
/* rt_model_validate, and that the model has every function and io tensor the step policy
 * calls (runtime/step.c) and a valid default schedule: what a trainer needs. */
bool rt_model_validate_program(const RtModel *m, RtError *e);

/* ---- ctx.c ---- */
/* Allocates the pools and starts n_threads - 1 workers (n_threads <= 0: online CPUs). */
bool rt_ctx_create(RtCtx **out, const RtModel *m, int n_threads, uint64_t seed, RtError *e);
void rt_ctx_destroy(RtCtx *ctx);
/* A tensor is checkpointed when it lives in PARAMS, FROZEN or OPTIM, or is flagged STATE. */
bool rt_tensor_is_persistent(const RtTensorInfo *t);

/* ---- device.c: host access to tensors, wherever the pools live ---- */
/* A device layer (RtModel.device). Addresses are as in ctx->pools. */
typedef struct RtDeviceOps {
    const char *name; /* "cuda" */
    /* Opens the device, allocates ctx->pools (zero-filled, m->pool_bytes each) in its
     * memory and sets ctx->device; false with RT_ERR_DEVICE (or RT_ERR_NOMEM) otherwise. */
    bool (*open)(RtCtx *ctx, RtError *e);
    void (*close)(RtCtx *ctx);
    /* Host -> device and device -> host copies of n bytes, ordered after all work the
     * functions have started; read returns when the bytes are on the host. A device
     * failure is reported on stderr once and turns later results into NaN. */
    void (*write)(RtCtx *ctx, void *dst, const void *src, size_t n);
    void (*read)(RtCtx *ctx, void *dst, const void *src, size_t n);
} RtDeviceOps;

/* Copies min(bytes, the tensor's size) from src into tensor i, or out of it into dst. */
void rt_tensor_write(RtCtx *ctx, int i, const void *src, size_t bytes);
void rt_tensor_read(RtCtx *ctx, int i, void *dst, size_t bytes);
/* The host copy of checkpointed tensor i (rt_tensor_is_persistent): the tensor itself on
 * the host; on a device, its mirror, current after rt_ctx_pull and sent by rt_ctx_push. */
void *rt_tensor_host(const RtCtx *ctx, int i);
/* Device -> mirror and mirror -> device, every checkpointed tensor (no-ops on the host);
 * rt_ctx_push then runs RT_FN_REFRESH when the model has one (the copies derived from the
 * loaded tensors). */
void rt_ctx_pull(const RtCtx *ctx);
void rt_ctx_push(RtCtx *ctx);
/* Creates and frees the mirror of a device context (rt_ctx_create, rt_ctx_destroy). */
bool rt_mirror_create(RtCtx *ctx, RtError *e);
void rt_mirror_destroy(RtCtx *ctx);
/* n values of dtype `from` at src as dtype `to` at dst: f32 <-> bf16 (round to nearest
 * even), or a copy when the dtypes agree. False for i32 against a float type. */
bool rt_dtype_convert(void *dst, int to, const void *src, int from, int64_t n);

/* ---- pool.c ---- */
RtThreadPool *rt_threads_create(int n_workers);
void rt_threads_destroy(RtThreadPool *p);

/* ---- data.c ---- */
typedef struct RtData {
    char *path;
    int kind;                  /* enum RtDataKind */
    const unsigned char *toks; /* token bytes (1 per token for text, 2 LE for tokens) */
    int64_t n;                 /* token count */
    void *map;
    size_t map_len;
} RtData;

/* A contiguous token range used for training or validation. */
typedef struct RtSplit {
    const RtData *d;
    int64_t begin, n;
} RtSplit;

/* Maps and validates a data file: size, magic, version, count, every token < vocab, and at
 * least min_tokens tokens. */
bool rt_data_open(RtData *d, const char *path, int kind, int vocab, int64_t min_tokens,
                  RtError *e);
void rt_data_close(RtData *d);
int32_t rt_data_token(const RtData *d, int64_t i);
/* Fills x, y: [batch, seq_len] with windows of s whose starts are drawn uniformly over the
 * s.n - seq_len valid starts from rt_rng_u64(seed, stream, index * batch + row). */
void rt_batch_fill(RtSplit s, int batch, int seq_len, uint64_t seed, uint64_t stream,
                   uint64_t index, int32_t *x, int32_t *y);

/* ---- json.c ---- */
typedef struct RtBuf {
    char *p;
    size_t len, cap;
    bool oom;
} RtBuf;

void rt_buf_fini(RtBuf *b);
void rt_buf_add(RtBuf *b, const void *s, size_t n);
void rt_buf_printf(RtBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rt_json_string(RtBuf *b, const char *s); /* a quoted, escaped JSON string */

/* ---- safetensors.c ---- */
typedef struct RtStMeta {
    const char *key, *value;
} RtStMeta;

/* A tensor to write. */
typedef struct RtStEntry {
    const char *name;
    int dtype, rank;
    int64_t shape[4];
    const void *data;
    /* When data is NULL: the writer calls fill(user, index, buf) to produce the bytes in a
     * buffer it owns, one tensor at a time (merged exports need no copy of every W). */
    void (*fill)(const void *user, int index, void *buf);
    const void *user;
    int index;
} RtStEntry;

/* Where bytes go: write(user, fd, buf, n) behaves like write(2). Tests inject failures. */
typedef struct RtIo {
    ssize_t (*write)(void *user, int fd, const void *buf, size_t n);
    void *user;
} RtIo;

/* Writes all n bytes through io (write(2) when io or io->write is NULL), retrying partial
 * writes and EINTR; ENOSPC and EDQUOT give RT_ERR_NOSPC. */
bool rt_write_all(int fd, const RtIo *io, const char *path, const void *buf, size_t n,
                  RtError *e);
/* Writes a safetensors file to fd: header keys sorted, data contiguous in the same order,
 * header padded with spaces so data starts 8-byte aligned. Entries need not be sorted. */
bool rt_st_write_fd(int fd, const RtIo *io, const char *path, const RtStEntry *t, int n,
                    const RtStMeta *meta, int n_meta, RtError *e);

typedef struct RtStTensor {
    char *name;
    int dtype, rank;
    int64_t shape[4];
    size_t offset; /* data_offsets[0]: bytes from the end of the header */
    size_t nbytes; /* data_offsets[1] - data_offsets[0] */
    const void *data; /* set by rt_st_open; NULL after rt_st_parse_header alone */
} RtStTensor;

typedef struct RtStFile {
    char *path;
    void *map;
    size_t size;
    int n;
    RtStTensor *t;
    int n_meta;
    RtStMeta *meta; /* strings owned by the file */
} RtStFile;

/* Maps and strictly parses a safetensors file (RT_ERR_TRUNCATED / RT_ERR_FORMAT). */
bool rt_st_open(RtStFile *f, const char *path, RtError *e);
void rt_st_close(RtStFile *f);
const RtStTensor *rt_st_find(const RtStFile *f, const char *name);
const char *rt_st_meta(const RtStFile *f, const char *key);
/* Parses a header (the JSON text after the 8-byte length) against data_len bytes of data.
 * Exposed for tests; rt_st_open calls it. */
bool rt_st_parse_header(RtStFile *f, const char *json, size_t len, size_t data_len, RtError *e);

/* ---- checkpoint.c ---- */
#define RT_CKPT_FORMAT "relorac-trainer-2"

/* How the run was started, kept in the trainer metadata so `--resume DIR` alone continues
 * with the same data. Empty strings mean "not set". */
typedef struct RtRunInfo {
    char data[1024], val_data[1024];
    int data_kind; /* enum RtDataKind */
    RtSchedule schedule; /* the resolved schedule of the run (metadata schedule.*) */
} RtRunInfo;

/* Writes model.safetensors (exported weights, adapters merged), config.json (when the model
 * has one) and trainer.safetensors (everything needed to resume, step = steps completed,
 * plus run when not NULL) to dir, each to a temp file first. Only when all are written and
 * synced are they renamed into place, so a failure leaves the previous checkpoint as it was. */
bool rt_checkpoint_save(const RtCtx *ctx, const char *dir, int64_t step, const RtRunInfo *run,
                        const RtIo *io, RtError *e);
/* Loads dir/trainer.safetensors into ctx; returns the saved step, seed and (run != NULL) the
 * run info. */
bool rt_checkpoint_load(RtCtx *ctx, const char *dir, int64_t *step, uint64_t *seed,
                        RtRunInfo *run, RtError *e);
/* out: [out, in] = W + scale * B @ A for tensor i (or a plain f32 copy without adapter). */
void rt_export_merged(const RtCtx *ctx, int i, float *out);
bool rt_mkdir_p(const char *dir, RtError *e);

/* ---- step.c ---- */
/* What the policy does at one step (docs/runtime.md "The schedule"). */
typedef struct RtStepPlan {
    bool lora;          /* run the ReLoRA-phase functions */
    bool switch_before; /* run RT_FN_SWITCH first: the first step after a full-rank warm start */
    bool reset_after;   /* run RT_FN_RESET after the update */
    int64_t adam_t;     /* Adam's 1-based step count, restarted at the switch */
    double lr;          /* the learning rate of the update */
} RtStepPlan;

enum RtStepResult {
    RT_STEP_OK,
    RT_STEP_LOSS_NONFINITE, /* the loss was NaN or inf: no update was applied */
    RT_STEP_NORM_NONFINITE  /* the gradient norm was NaN or inf: no update was applied */
};

/* The name of a function slot (the IR function it runs): "train_full", "relora_reset". */
const char *rt_fn_name(int fn);
/* Re-resolves the fields given as a percentage of steps (after steps changed). */
void rt_schedule_resolve(RtSchedule *s);
/* The rules of docs/language.md §5.3, and that m has the functions s needs (m may be NULL). */
bool rt_schedule_check(const RtSchedule *s, const RtModel *m, RtError *e);
/* The learning rate of step `step`: one global cosine from the peak down to min_lr_ratio at
 * `steps`, after a linear warmup; in the ReLoRA phase the peak is relora_lr and, after the
 * switch and after each merge, the rate restarts at 0 and ramps linearly over
 * restart_warmup steps to the cosine's value at the ramp's end (relora-notes §1.5). */
double rt_schedule_lr(const RtSchedule *s, int64_t step);
RtStepPlan rt_schedule_plan(const RtSchedule *s, int64_t step);
/* One line: every field of s. */
void rt_schedule_describe(const RtSchedule *s, char *buf, size_t n);
/* Copies up to the tensor's size of src into the io tensor (no-op when the model has none). */
void rt_io_write(RtCtx *ctx, int io, const void *src, size_t bytes);
void rt_set_batch(RtCtx *ctx, const int32_t *x, const int32_t *y);
/* Runs step `step` by the policy: writes the batch and the step's inputs, runs the switch
 * when due, train_* and norm_*, then, only when the loss and the norm are finite, update_*
 * and the reset when due. Returns enum RtStepResult. x, y: [batch, seq_len]. */
int rt_step(RtCtx *ctx, const RtSchedule *s, const int32_t *x, const int32_t *y, int64_t step, RtStepStats *out);
/* Initialises every parameter from ctx->seed (RT_FN_INIT at step 0). */
void rt_init(RtCtx *ctx);
/* The mean loss of one batch (nats/token); no state change. */
float rt_eval_loss(RtCtx *ctx, const int32_t *x, const int32_t *y);
/* The next-token logits after position pos of x: [seq_len]; out: [vocab]. */
void rt_logits(RtCtx *ctx, const int32_t *x, int64_t pos, float *out);

/* ---- trainer.c ---- */
typedef struct RtHooks {
    RtIo io;          /* used for checkpoint writes; write == NULL means write(2) */
    FILE *out, *err;  /* NULL means stdout / stderr */
} RtHooks;

/* rt_main with injectable I/O, for tests. */
int rt_main_hooked(int argc, char **argv, const RtModel *m, const RtHooks *hooks);

#endif
