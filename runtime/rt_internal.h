/* rt_internal.h: the runtime's internal modules, one section per .c file. Not part of the
 * ABI (generated code includes rt.h only); unit tests include it to test each piece alone.
 * Fallible functions return false and fill an RtError; none of them prints or exits. */
#ifndef RELORAC_RT_INTERNAL_H
#define RELORAC_RT_INTERNAL_H

#include "rt.h"

#include <stdbool.h>
#include <stdio.h>
#include <sys/stat.h>
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
    RT_ERR_MISSING,     /* a file that does not exist, or a tensor the checkpoint lacks */
    RT_ERR_MISMATCH,    /* a tensor has the wrong dtype or shape */
    RT_ERR_OTHER_MODEL, /* checkpoint written by another model (model_hash) */
    RT_ERR_MODEL,       /* the RtModel table itself is inconsistent (a compiler bug) */
    RT_ERR_NOMEM,
    RT_ERR_DEVICE,      /* no device, no driver, an unsupported device or a device failure */
    RT_ERR_NONFINITE, /* a tensor to be saved holds NaN or infinity */
    RT_ERR_CPU,         /* the program needs instructions this CPU lacks */
    RT_ERR_GEMM         /* no usable GEMM library */
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
/* The shape of an exported tensor: its parts' (transposed where marked) concatenated along
 * the export's axis. False when they do not concatenate. */
typedef struct RtExportShape {
    int rank, dtype;
    int64_t shape[4];
} RtExportShape;
bool rt_export_shape(const RtModel *m, const RtExport *x, RtExportShape *out);
/* Checks names, dtypes, ranks, pool extents, adapter links and the export table of a
 * model table. */
bool rt_model_validate(const RtModel *m, RtError *e);
/* rt_model_validate, and that the model has every function and io tensor the step policy
 * calls (runtime/step.c) and a valid default schedule: what a trainer needs. */
bool rt_model_validate_program(const RtModel *m, RtError *e);

/* IEEE half precision, which safetensors files may hold ("F16"); read by --init-from only,
 * never a model tensor's dtype. */
#define RT_ST_F16 RT_DTYPE_COUNT
float rt_f16_to_f32(uint16_t h);

/* ---- ctx.c ---- */
/* Allocates the pools and starts n_threads - 1 workers (n_threads <= 0: online CPUs). */
bool rt_ctx_create(RtCtx **out, const RtModel *m, int n_threads, uint64_t seed, RtError *e);
void rt_ctx_destroy(RtCtx *ctx);
/* A tensor is checkpointed when it lives in PARAMS, FROZEN or OPTIM, or is flagged STATE. */
bool rt_tensor_is_persistent(const RtTensorInfo *t);

/* ---- device.c: host access to tensors, wherever the pools live ---- */
/* A device layer (RtModel.device). Addresses are as in ctx->pools. */
struct RtDist; /* dist.c */
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
    /* Zeroes n bytes at dst in stream order; NULL: a write of zeros. */
    void (*zero)(RtCtx *ctx, void *dst, size_t n);
    /* Data-parallel (NULL: the layer cannot): dist_open joins the devices of the job's
     * ranks (a no-op for one rank); sum replaces each device span x[k] ([n[k]] f32) by its
     * sum over the ranks, the same bits on every rank. */
    bool (*dist_open)(RtCtx *ctx, struct RtDist *dist, RtError *e);
    bool (*sum)(RtCtx *ctx, float *const *x, const int64_t *n, int count, RtError *e);
} RtDeviceOps;

/* Copies min(bytes, the tensor's size) from src into tensor i, or out of it into dst. */
void rt_tensor_write(RtCtx *ctx, int i, const void *src, size_t bytes);
void rt_tensor_read(RtCtx *ctx, int i, void *dst, size_t bytes);
/* Zeroes tensor i. */
void rt_tensor_zero(RtCtx *ctx, int i);
/* The host copy of checkpointed tensor i (rt_tensor_is_persistent): the tensor itself on
 * the host; on a device, its mirror, current after rt_ctx_pull and sent by rt_ctx_push. */
void *rt_tensor_host(const RtCtx *ctx, int i);
/* Device -> mirror and mirror -> device, every checkpointed tensor that holds a value after
 * `done` steps of s (rt_tensor_is_live: a tensor of the other phase shares its bytes with
 * live ones, and pushing it would overwrite them); no-ops on the host. rt_ctx_push then
 * runs RT_FN_REFRESH when the model has one (the copies derived from the loaded tensors). */
void rt_ctx_pull(const RtCtx *ctx, const RtSchedule *s, int64_t done);
void rt_ctx_push(RtCtx *ctx, const RtSchedule *s, int64_t done);
/* Creates and frees the mirror of a device context (rt_ctx_create, rt_ctx_destroy). */
bool rt_mirror_create(RtCtx *ctx, RtError *e);
void rt_mirror_destroy(RtCtx *ctx);
/* n values of dtype `from` at src as dtype `to` at dst: f32 <-> bf16 (round to nearest
 * even), or a copy when the dtypes agree. False for i32 against a float type. */
bool rt_dtype_convert(void *dst, int to, const void *src, int from, int64_t n);

/* ---- cpu.c ---- */
/* This CPU's instruction sets, under LLVM's x86 target-feature names ("avx2", "avx512f",
 * "fma", ...; the table is in cpu.c). A feature counts only when CPUID reports it and the OS
 * saves its registers (XCR0). On other architectures nothing is detected. */
typedef struct RtCpu {
    char vendor[13]; /* "GenuineIntel", "AuthenticAMD", ...; "" when not x86 */
    char brand[49];  /* CPUID brand string, leading blanks removed */
    int family, model; /* as Linux's /proc/cpuinfo prints them */
    uint64_t has;    /* bit i: feature rt_cpu_feature_name(i) is usable */
} RtCpu;

void rt_cpu_detect(RtCpu *c);
int rt_cpu_feature_index(const char *name); /* -1 for a name cpu.c does not test */
const char *rt_cpu_feature_name(int index); /* NULL past the table */
bool rt_cpu_has(const RtCpu *c, const char *name);
/* "AVX-512" (F, BW, DQ and VL), "AVX2+FMA", "AVX", "SSE4.2", "SSE2" */
const char *rt_cpu_isa(const RtCpu *c);
/* required: an LLVM target-feature string, "+avx2,+fma,-avx512f,...". Fails with RT_ERR_CPU
 * naming every "+" feature that cpu.c can test and c lacks; "-" entries and names it cannot
 * test are ignored. NULL passes. */
bool rt_cpu_check_features(const RtCpu *c, const char *required, RtError *e);
/* The same against this machine's CPU. */
bool rt_cpu_check(const char *required_features, RtError *e);

/* ---- gemm.c ---- */
/* The GEMM engine (see gemm.c): BLIS's micro-kernel for this CPU under our own loops, or
 * OpenBLAS when BLIS is missing. Owns the library handle and the packing buffers of
 * n_parts pool parts. */
typedef struct RtGemm RtGemm;

bool rt_gemm_create(RtGemm **out, int n_parts, RtError *e);
/* The same with only lib, "blis" or "openblas" (NULL: BLIS, else OpenBLAS); for tests. */
bool rt_gemm_create_lib(RtGemm **out, int n_parts, const char *lib, RtError *e);
void rt_gemm_destroy(RtGemm *g);
/* One line: library, version, kernel set, e.g. "BLIS 0.9.0 skx micro-kernel (32x12), ..." */
const char *rt_gemm_describe(const RtGemm *g);
/* Why the kernel set differs from the library's own choice (or why it could not be
 * fixed); NULL when the library chose well by itself. */
const char *rt_gemm_note(const RtGemm *g);
/* The seam that decides: given a library ("blis" or "openblas"), the kernel set it picked
 * (BLIS's arch name, OpenBLAS's corename) and the CPU, the kernel set to force, or NULL when
 * the pick already uses the CPU's widest vector ISA (AVX-512, else AVX2+FMA) or is a name
 * we do not know (a newer library knows better). E.g. OpenBLAS "Prescott" on an AVX-512
 * CPU gives "SkylakeX". */
const char *rt_gemm_core_remedy(const char *lib, const char *core, const RtCpu *cpu);
/* Claims g for one GEMM; false while another call uses it (a GEMM issued from inside a
 * pool job), which then needs an engine of its own. */
bool rt_gemm_acquire(RtGemm *g);
void rt_gemm_release(RtGemm *g);
/* The same on the calling thread alone, with the process's library and packing buffers of
 * its own, sized to the problem: for ctx NULL, or while the context's engine is busy (a
 * GEMM issued from inside a pool job, e.g. one attention tile per task). */
void rt_gemm_run_alone(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                       int64_t sb, float beta, float *c, int64_t ldc, int64_t sc, int64_t batch);
/* Two row-major GEMMs sharing a shape, as one (trans_a 0, no batch; op(X) = X^T when tb):
 *   cat_k == 0: C[:, 0:n] = alpha A op(B) + beta C[:, 0:n] and C[:, n:n+len2] = alpha A
 *     op(B2) + beta C[:, n:n+len2]; A: [m, k]; op(B): [k, n]; op(B2): [k, len2]; a2 unused;
 *     A is packed once (x [W; A]^T of a fused LoRA linear).
 *   cat_k == 1: C = alpha (A op(B) + A2 op(B2)) + beta C = alpha [A | A2] [op(B); op(B2)]
 *     + beta C; A: [m, k], A2: [m, len2], op(B): [k, n], op(B2): [len2, n]; the k-slices
 *     of the first part, then of the second, so each element equals the result of the two
 *     GEMMs run one after the other, the second with beta 1 (dy [W; A] of one).
 * Falls back to two rt_gemm_run calls without BLIS or for empty parts. */
void rt_gemm_run_pair(RtCtx *ctx, RtGemm *g, int parts, int cat_k, int tb, int64_t m, int64_t n,
                      int64_t k, int64_t len2, float alpha, const float *a, int64_t lda,
                      const float *a2, int64_t lda2, const float *b, int64_t ldb, const float *b2,
                      int64_t ldb2, float beta, float *c, int64_t ldc);
/* Start-up report: one line to out (when not NULL), "PROG: GEMM: <rt_gemm_describe>; CPU:
 * <brand>, <ISA>, N threads", and rt_gemm_note to err (when not NULL), so a library's poor
 * choice of kernels is never silent. ctx NULL (--help) probes the library. */
void rt_gemm_report(FILE *out, FILE *err, const char *prog, const RtCtx *ctx);
/* ---- gemm_bf16.c ---- */
/* Whether rt_sbgemm_strided runs on AVX512-BF16 here (else its scalar kernel). */
bool rt_sbgemm_native(void);
/* A row-major strided batch C_i = alpha op(A_i) op(B_i) + beta C_i (rt_sgemm_strided's
 * contract) on up to `parts` pool parts; results do not depend on parts. */
void rt_gemm_run(RtCtx *ctx, RtGemm *g, int parts, int ta, int tb, int64_t m, int64_t n,
                 int64_t k, float alpha, const float *a, int64_t lda, int64_t sa, const float *b,
                 int64_t ldb, int64_t sb, float beta, float *c, int64_t ldc, int64_t sc,
                 int64_t batch);

/* ---- pool.c ---- */
RtThreadPool *rt_threads_create(int n_workers);
void rt_threads_destroy(RtThreadPool *p);

/* ---- data.c ---- */
typedef struct RtData {
    char *path;
    int kind;                  /* enum RtDataKind */
    const unsigned char *toks; /* the tokens, little-endian, `width` bytes each */
    int width;                 /* bytes per token: 1 (text), 2 (uint16) or 4 (uint32) */
    const char *format;        /* what the file was read as ("llm.c's GPT-2 format, ...") */
    int64_t n;                 /* token count */
    unsigned char *buf;        /* the whole file, read at open (toks points into it) */
    size_t bytes;
} RtData;

/* A contiguous token range used for training or validation. */
typedef struct RtSplit {
    const RtData *d;
    int64_t begin, n;
} RtSplit;

/* Reads a data file into memory and validates it: a regular file (a FIFO is refused without
 * blocking), size, magic, version, count, a vocab the token type can reach (not above 65536
 * for uint16 ids), every token < vocab, and at least min_tokens tokens. Later changes to the
 * file do not reach the copy. The formats: docs/runtime.md "Data". */
bool rt_data_open(RtData *d, const char *path, int kind, int vocab, int64_t min_tokens,
                  RtError *e);
void rt_data_close(RtData *d);
int32_t rt_data_token(const RtData *d, int64_t i);
/* The number of ids d's token type can express: 256, 65536 or 2^32. */
int64_t rt_data_id_limit(const RtData *d);
/* "text", "tokens", "nanogpt" (the spec's call and --data-kind's words) and back (-1: none). */
const char *rt_data_kind_name(int kind);
int rt_data_kind_parse(const char *name);
/* Fills x, y: [batch, seq_len] with windows of s whose starts are drawn uniformly over the
 * s.n - seq_len valid starts from rt_rng_u64(seed, stream, index * batch + row). */
void rt_batch_fill(RtSplit s, int batch, int seq_len, uint64_t seed, uint64_t stream,
                   uint64_t index, int32_t *x, int32_t *y);

/* ---- dist.c ---- */
/* The ranks of a data-parallel job (Open MPI, loaded at run time). */
typedef struct RtDist RtDist;

/* When the process was started by an MPI launcher (OMPI_COMM_WORLD_SIZE, PMIX_SIZE or
 * PMI_SIZE in the environment), loads Open MPI's libmpi with dlopen, initialises it and
 * returns the job's world in *out; otherwise *out = NULL and nothing is loaded (a trainer
 * runs without MPI installed). Fails when the launcher is there and libmpi is not. */
bool rt_dist_create(RtDist **out, RtError *e);
/* Calls MPI_Finalize. NULL is a no-op. */
void rt_dist_destroy(RtDist *d);
/* Stops every rank of the job (MPI_Abort) with exit status code. */
void rt_dist_abort(RtDist *d, int code);
int rt_dist_rank(const RtDist *d); /* 0 for NULL */
int rt_dist_size(const RtDist *d); /* 1 for NULL */
/* The MPI library's version line ("Open MPI v4.1.4"); "none" for NULL. */
const char *rt_dist_library(const RtDist *d);
/* Payload bytes this rank has sent so far (each collective's data as its pattern moves it:
 * a reduction of S bytes sends 2 (N-1)/N S). */
uint64_t rt_dist_bytes_sent(const RtDist *d);
/* x[i]: [n[i]] f32, replaced on every rank by its sum over the ranks, added in rank order
 * 0, 1, ..., N-1 (the same bits on every rank, whatever MPI's algorithms). An MPI failure
 * (a lost rank) gives RT_ERR_IO. */
bool rt_dist_sum_spans(RtDist *d, float *const *x, const int64_t *n, int count, RtError *e);
/* ZeRO stage 1: the spans x[k] (n[k] floats each) as one flat vector of L = sum n[k]
 * elements, rank r owning [r L / N, (r + 1) L / N) (rt_dist_owned). reduce_scatter leaves
 * in the owned elements the sum over the ranks, added in rank order as rt_dist_sum_spans
 * does (the same bits), and the other elements as they were; allgather copies every
 * rank's owned elements to all ranks. Each sends (N-1)/N of the spans' bytes. */
void rt_dist_owned(const RtDist *d, int64_t total, int64_t *lo, int64_t *hi);
bool rt_dist_reduce_scatter_spans(RtDist *d, float *const *x, const int64_t *n, int count, RtError *e);
bool rt_dist_allgather_spans(RtDist *d, float *const *x, const int64_t *n, int count, RtError *e);
/* The ZeRO stage the steps run with (--zero): 0, every rank updates every parameter with
 * the compiled update_*; 1, each rank keeps the optimizer state of its owned slice only
 * (runtime/zero.c). Always 0 for NULL. */
void rt_dist_set_zero(RtDist *d, int stage);
int rt_dist_zero(const RtDist *d);
/* all: [N][bytes] gets every rank's `mine`, in rank order. */
bool rt_dist_allgather(RtDist *d, const void *mine, void *all, size_t bytes, RtError *e);

/* ---- zero.c ---- */
/* ZeRO stage 1 (--zero 1; the file's header): the gradients, parameters and moments of a
 * step's phase as one flat vector, rank r of N owning rt_dist_owned's slice. */
/* Whether m can run --zero 1: a host model with its AdamW hyperparameters (RtModel.optim)
 * and, for every gradient `<p>.grad`, f32 p, p.adam_m, p.adam_v of its shape. */
bool rt_zero_check(const RtModel *m, RtError *e);
/* Reduce-scatters the gradients of step `step`'s phase (the owned slice gets the rank-order
 * sum) and sets *norm to the global L2 norm of the summed gradient (the owned slices' sums
 * of squares in double, added in rank order). */
bool rt_zero_reduce(RtCtx *ctx, RtDist *dist, const RtSchedule *s, int64_t step, float *norm, RtError *e);
/* AdamW (rt.h RtOptim) with step `step`'s rate and Adam t on the owned slice of the phase's
 * parameters and moments, clipped by norm, then the parameters all-gathered. */
bool rt_zero_update(RtCtx *ctx, RtDist *dist, const RtSchedule *s, int64_t step, float norm, RtError *e);
/* All-gathers the phase's moments (each rank's owned slice to every rank): after it every
 * rank holds the moments an unsharded run would (before a merge prunes them, and before a
 * checkpoint). */
bool rt_zero_gather_moments(RtCtx *ctx, RtDist *dist, const RtSchedule *s, int64_t step, RtError *e);
/* The bytes of Adam moments (m and v, f32) rank `rank` of `ranks` keeps in step `step`'s
 * phase under --zero 1. */
int64_t rt_zero_moment_bytes(const RtModel *m, const RtSchedule *s, int64_t step, int ranks, int rank);

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

/* A parsed JSON value (RFC 8259; the reader refuses what json.c lists). Every value owns
 * what it points to; rt_json_free releases a tree. */
enum RtJsonKind { RT_JSON_NULL, RT_JSON_FALSE, RT_JSON_TRUE, RT_JSON_NUMBER, RT_JSON_STRING, RT_JSON_ARRAY,
                  RT_JSON_OBJECT };
typedef struct RtJson {
    int kind;        /* enum RtJsonKind */
    double num;      /* NUMBER */
    char *str;       /* STRING: UTF-8, NUL-terminated, len bytes (no NUL inside) */
    size_t len;
    int n;           /* ARRAY, OBJECT: the number of items */
    struct RtJson *items; /* ARRAY: the elements; OBJECT: the values, in file order */
    char **keys;     /* OBJECT: keys[i] names items[i]; keys are unique */
    size_t offset;   /* where the value starts: bytes from the start of the text */
} RtJson;

/* Parses len bytes of text; path names it in errors ("PATH:LINE:COL: malformed JSON: ..."). */
bool rt_json_parse(RtJson *out, const char *text, size_t len, const char *path, RtError *e);
/* Reads and parses a whole regular file ("what" names it in errors: "config.json"). */
bool rt_json_read_file(RtJson *out, const char *path, const char *what, RtError *e);
void rt_json_free(RtJson *v);
/* The value of key in an object (NULL: none, or not an object); a linear search. */
const RtJson *rt_json_get(const RtJson *obj, const char *key);
/* The value at a dotted path of keys ("rope_parameters.rope_theta"), or NULL. */
const RtJson *rt_json_path(const RtJson *obj, const char *path);
/* Equal as JSON values: numbers by value, strings by bytes, objects by keys. */
bool rt_json_equal(const RtJson *a, const RtJson *b);
/* v as compact JSON text (numbers with %.17g), for messages. */
void rt_json_write(RtBuf *b, const RtJson *v);
/* The body of a JSON string whose opening quote is just before *sp (RFC 8259 section 7:
 * escapes, surrogate pairs as UTF-8, no control characters, \u0000 refused), appended to
 * b; *sp moves past the closing quote. Returns NULL, or the problem ("bad escape in a
 * string") with *sp where it was found. The one string decoder of the JSON reader and of
 * the safetensors header parser. */
const char *rt_json_string_body(const char **sp, const char *end, RtBuf *b);

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
     * buffer it owns, one tensor at a time (merged exports need no copy of every W); false
     * when it ran out of memory. */
    bool (*fill)(const void *user, int index, void *buf);
    const void *user;
    int index;
} RtStEntry;

/* The file-system steps of a checkpoint save other than writing bytes (rt_checkpoint_save
 * lists their order). */
enum RtIoStep {
    RT_IO_MKDIR,     /* create the new checkpoint directory */
    RT_IO_OPEN,      /* create a file in it */
    RT_IO_FSYNC,     /* fsync a file */
    RT_IO_CLOSE,     /* close a file */
    RT_IO_FSYNC_DIR, /* fsync a directory */
    RT_IO_SYMLINK,   /* create a symlink under a temporary name */
    RT_IO_RENAME,    /* rename it into place */
    RT_IO_REMOVE     /* remove an old checkpoint directory or a leftover */
};

/* Where bytes go, and a fault injector for tests. write(user, fd, buf, n) behaves like
 * write(2) (NULL: write(2)). fault(user, step, path), when set, runs before each other step
 * (enum RtIoStep) on path; a non-zero return is an errno value the step then fails with. */
typedef struct RtIo {
    ssize_t (*write)(void *user, int fd, const void *buf, size_t n);
    int (*fault)(void *user, int step, const char *path);
    void *user;
} RtIo;

/* Writes all n bytes through io (write(2) when io or io->write is NULL), retrying partial
 * writes and EINTR; ENOSPC and EDQUOT give RT_ERR_NOSPC. */
bool rt_write_all(int fd, const RtIo *io, const char *path, const void *buf, size_t n,
                  RtError *e);
/* Writes a safetensors file to fd: header keys sorted, data contiguous in the same order,
 * header padded with spaces so data starts 8-byte aligned. Entries need not be sorted.
 * F32 and BF16 data is checked as it is written: a NaN or an infinity stops the write with
 * RT_ERR_NONFINITE, naming the tensor and the element. */
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
    size_t size;       /* file bytes when opened */
    uint64_t data_start; /* 8 + header length */
    int fd;
    bool has_fd;
    void *buf;         /* rt_st_open: the data bytes */
    int n;
    RtStTensor *t;     /* sorted by name */
    int n_meta;
    RtStMeta *meta;    /* sorted by key; strings owned by the file */
} RtStFile;

/* Opens and strictly parses a safetensors file (RT_ERR_TRUNCATED / RT_ERR_FORMAT), and reads
 * all its data into memory: every tensor's `data` is set. */
bool rt_st_open(RtStFile *f, const char *path, RtError *e);
/* The same without reading the data: read each tensor with rt_st_read. */
bool rt_st_open_header(RtStFile *f, const char *path, RtError *e);
/* rt_st_open_header that also accepts F16 tensors (RT_ST_F16): a model's weights for
 * --init-from, which transformers may save in half precision. */
bool rt_st_open_model_header(RtStFile *f, const char *path, RtError *e);
/* Reads t->nbytes bytes of tensor t into dst; a file that shrank since it was opened gives
 * RT_ERR_TRUNCATED. */
bool rt_st_read(const RtStFile *f, const RtStTensor *t, void *dst, RtError *e);
void rt_st_close(RtStFile *f);
/* Binary searches (the parser sorts names and keys and rejects duplicates). */
const RtStTensor *rt_st_find(const RtStFile *f, const char *name);
const char *rt_st_meta(const RtStFile *f, const char *key);
/* Parses a header (the JSON text after the 8-byte length) against data_len bytes of data:
 * every shape's byte count is overflow-checked, names and keys are unique, the tensors
 * tile the data. O(n log n) in the number of keys. Exposed for tests. */
bool rt_st_parse_header(RtStFile *f, const char *json, size_t len, size_t data_len, RtError *e);

/* Opens path for reading if it is a regular file ("what" names it in errors: "data file").
 * Never blocks: a FIFO, device or directory is refused before anything is read. Returns the
 * descriptor (st filled) or -1. */
int rt_open_regular(const char *path, const char *what, struct stat *st, RtError *e);
/* Reads exactly n bytes at off (retrying short reads and EINTR); end of file first gives
 * RT_ERR_TRUNCATED ("the file changed after it was opened"). */
bool rt_read_at(int fd, const char *path, void *buf, size_t n, uint64_t off, RtError *e);

/* ---- checkpoint.c ---- */
#define RT_CKPT_FORMAT "relorac-trainer-2"

/* How the run was started, kept in the trainer metadata so `--resume DIR` alone continues
 * with the same data. Empty strings mean "not set". */
typedef struct RtRunInfo {
    char data[4096], val_data[4096]; /* PATH_MAX */
    char init_from[4096];            /* --init-from of the fresh run it continues, or empty */
    char tokenizer[4096];            /* --tokenizer given when training (for --sample), or empty */
    int data_kind; /* enum RtDataKind */
    RtSchedule schedule; /* the resolved schedule of the run (metadata schedule.*) */
} RtRunInfo;

/* A checkpoint directory DIR holds (docs/runtime.md, "Checkpoints"):
 *   ckpt-<step>.<6 chars>/  model.safetensors, config.json, trainer.safetensors
 *   latest                  symlink to the current ckpt-* directory
 *   model.safetensors, config.json, trainer.safetensors
 *                           symlinks to latest/<name>, for tools that open DIR/<name>
 * Saving writes a whole new ckpt-* directory, fsyncs each file and the directory, then
 * points `latest` at it with one rename (the commit), fsyncs DIR and removes the old
 * directory. At every instant `latest` names a complete checkpoint, old or new.
 * Errors say what is on disk: before the commit "the previous checkpoint in DIR is
 * unchanged" (or "DIR holds no checkpoint"), after it that the new one is in place. A NaN
 * or infinity in any float tensor abandons the save (RT_ERR_NONFINITE) before the commit.
 * step = steps completed; run (when not NULL) is stored in the trainer metadata. */
bool rt_checkpoint_save(const RtCtx *ctx, const char *dir, int64_t step, const RtRunInfo *run,
                        const RtIo *io, RtError *e);
/* Loads DIR/latest/trainer.safetensors (DIR/trainer.safetensors in a directory written
 * before `latest` existed) into ctx, reading each tensor straight into its pool; returns
 * the saved step, seed and (run != NULL) the run info. */
bool rt_checkpoint_load(RtCtx *ctx, const char *dir, int64_t *step, uint64_t *seed,
                        RtRunInfo *run, RtError *e);
/* Whether dir holds a checkpoint (its `latest` link, or trainer.safetensors). */
bool rt_checkpoint_exists(const char *dir);
/* out: [out, in] = W + scale * B @ A for tensor i (or a plain f32 copy without adapter);
 * false when out of memory. */
bool rt_export_merged(const RtCtx *ctx, int i, float *out);
bool rt_mkdir_p(const char *dir, RtError *e);

/* ---- hfimport.c ---- */
/* What rt_hf_import read. */
typedef struct RtImportInfo {
    char family[64];     /* the config's architecture ("LlamaForCausalLM"), or "relorac" */
    char dtypes[32];     /* the dtypes read: "F32", "BF16", "F16, F32" */
    int n_read;          /* tensors read */
    int n_files;         /* safetensors files (shards) opened */
    int n_unused;        /* tensors in the files that are no part of the model */
    char unused[256];    /* the first of them, for a note */
} RtImportInfo;

/* A fresh run's weights from the checkpoint directory dir (docs/runtime.md "Starting from
 * pretrained weights"): dir/config.json, compared field by field with the model's config
 * checks (RtModel.hf_checks; every mismatch in one message naming the spec's field, the
 * config's key and both values), and dir/model.safetensors or the shards that
 * dir/model.safetensors.index.json names, read through the export table (the inverse of
 * the export: each tensor found by its name, or without the family's prefix, split into
 * its parts, transposed back, converted from F32, BF16 or F16 to the tensor's dtype).
 * Only the model weights change: call it after rt_init, so adapters and the optimizer
 * state are fresh (B = 0, so the model is exactly the imported one). It writes the host
 * copies (rt_tensor_host): on a device, rt_ctx_pull before it and rt_ctx_push after. */
bool rt_hf_import(RtCtx *ctx, const char *dir, RtImportInfo *info, RtError *e);

/* ---- tokenizer.c, tok_hf.c ---- */
enum RtTokKind { RT_TOK_SPM, RT_TOK_HF };
typedef struct RtTokenizer RtTokenizer;
typedef struct RtHfTok RtHfTok;

/* Opens a tokenizer by its content: a JSON file is a Hugging Face tokenizer.json (BPE:
 * tok_hf.c), anything else a SentencePiece model, read by the SentencePiece library through
 * librelorac_spm, which is loaded now (a missing library is an error that says how to get
 * it). docs/runtime.md "Tokenizers". */
bool rt_tok_open(RtTokenizer **out, const char *path, RtError *e);
void rt_tok_close(RtTokenizer *t);
const char *rt_tok_kind(const RtTokenizer *t); /* "SentencePiece model", "tokenizer.json (BPE)" */
int64_t rt_tok_vocab(const RtTokenizer *t);    /* ids are 0 .. vocab - 1 */
/* The ids of text (*ids malloc'd, *n of them), as the library (or transformers' tokenizer
 * with add_special_tokens=False) encodes it. */
bool rt_tok_encode(RtTokenizer *t, const char *text, size_t len, int32_t **ids, int64_t *n, RtError *e);
/* Appends the bytes token id adds to decoded text after other tokens (a word-boundary mark
 * as a space, a byte piece as its byte); false for an id outside the vocabulary. Decoding a
 * sequence piece by piece this way equals the library's decoding but for the start of the
 * text, where SentencePiece drops the first piece's space. */
bool rt_tok_piece(RtTokenizer *t, int32_t id, RtBuf *out);
/* Trains a SentencePiece model on the lines of the input files with spm_train's options
 * (keys[i]=values[i]: model_prefix, vocab_size, ...). */
bool rt_tok_train_spm(const char *const *inputs, int n_inputs, const char *const *keys, const char *const *values,
                      int n, RtError *e);

/* tokenizer.json: what tok_hf.c reads (its header lists the components). */
bool rt_hf_tok_load(RtHfTok **out, const char *path, RtError *e);
void rt_hf_tok_free(RtHfTok *t);
int64_t rt_hf_tok_vocab(const RtHfTok *t);
bool rt_hf_tok_encode(RtHfTok *t, const char *text, size_t len, int32_t **ids, int64_t *n, RtError *e);
bool rt_hf_tok_piece(RtHfTok *t, int32_t id, RtBuf *out);

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
    RT_STEP_NORM_NONFINITE, /* the gradient norm was NaN or inf: no update was applied */
    RT_STEP_COMM_FAILED     /* a collective with the other ranks failed (the RtError says) */
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
/* Whether t holds a value once `done` steps of s have run: a tensor of one phase only
 * (RT_T_PHASE_FULL, RT_T_PHASE_LORA) in that phase. The state after `done` steps is
 * ReLoRA-phase state when s is a relora schedule and done > warm_start (or warm_start is
 * 0); before that, full-rank state. */
bool rt_tensor_is_live(const RtTensorInfo *t, const RtSchedule *s, int64_t done);
/* One line: every field of s. */
void rt_schedule_describe(const RtSchedule *s, char *buf, size_t n);
/* Copies up to the tensor's size of src into the io tensor (no-op when the model has none). */
void rt_io_write(RtCtx *ctx, int io, const void *src, size_t bytes);
/* Writes one micro-batch x, y [micro_batch, seq_len] into TOKENS and TARGETS. */
void rt_set_batch(RtCtx *ctx, const int32_t *x, const int32_t *y);
/* Runs step `step` by the policy: writes the step's inputs, runs the switch when due,
 * train_* once per micro-step (batch / micro_batch of them, each on its rows of x, y,
 * gradients zeroed first when there are several) and norm_*, then, only when the loss and
 * the norm are finite, update_* and the reset when due. Returns enum RtStepResult.
 * x, y: [batch, seq_len]. */
int rt_step(RtCtx *ctx, const RtSchedule *s, const int32_t *x, const int32_t *y, int64_t step, RtStepStats *out);
/* rt_step as rank rt_dist_rank(dist) of rt_dist_size(dist) ranks (dist NULL: alone, exactly
 * rt_step): runs its k/N micro-steps of the step's batch x, y [batch, seq_len] (N divides k =
 * batch / micro_batch), sums the gradients of the step's phase and the loss over the ranks
 * (rt_dist_sum_spans), then, on the same sum on every rank, norm_*, update_* and the reset.
 * RT_STEP_COMM_FAILED fills e. */
int rt_step_dist(RtCtx *ctx, RtDist *dist, const RtSchedule *s, const int32_t *x, const int32_t *y,
                 int64_t step, RtStepStats *out, RtError *e);
/* Whether step `step` reduces tensor t across ranks: a gradient (RT_T_GRAD) of the step's
 * phase. */
bool rt_grad_is_reduced(const RtTensorInfo *t, const RtSchedule *s, int64_t step);
/* The bytes of the gradients step `step` reduces (those of its phase). */
int64_t rt_grad_reduced_bytes(const RtModel *m, const RtSchedule *s, int64_t step);
/* rt_eval_loss over the ranks: each evaluates its k/N micro-batches; *out is the batch's
 * mean on every rank. */
bool rt_eval_loss_dist(RtCtx *ctx, RtDist *dist, const int32_t *x, const int32_t *y, float *out, RtError *e);
/* Initialises every parameter from ctx->seed (RT_FN_INIT at step 0). */
void rt_init(RtCtx *ctx);
/* The mean loss of one batch [batch, seq_len] (nats/token), micro-batch by micro-batch;
 * no state change. */
float rt_eval_loss(RtCtx *ctx, const int32_t *x, const int32_t *y);
/* The next-token logits after position pos of x: [seq_len]; out: [vocab]. */
void rt_logits(RtCtx *ctx, const int32_t *x, int64_t pos, float *out);
/* ---- sysmem.c ---- */
/* What this process may allocate. Sizes in bytes; UINT64_MAX means "no limit" (or unknown
 * RAM). */
typedef struct RtMemLimits {
    uint64_t ram;          /* physical memory, sysconf(_SC_PHYS_PAGES) * page size */
    uint64_t cgroup;       /* the tightest cgroup memory limit on the way to the root */
    char cgroup_file[512]; /* the file that set it */
    uint64_t rlimit_as;    /* RLIMIT_AS soft limit */
    uint64_t available;    /* the smallest of the three */
} RtMemLimits;

/* Reads RAM, the cgroup limits (v2 memory.max and v1 memory.limit_in_bytes of the process's
 * cgroup and each parent, found through /proc/self/mountinfo and /proc/self/cgroup) and
 * RLIMIT_AS. */
void rt_mem_limits(RtMemLimits *l);
/* The same with /proc and the cgroup mounts read under root (a test's fake tree). */
void rt_mem_limits_at(RtMemLimits *l, const char *root);
/* "22.9 GiB (RAM 22.9 GiB; cgroup limit none; RLIMIT_AS unlimited)". */
void rt_mem_describe(const RtMemLimits *l, char *buf, size_t cap);
/* bytes as "1.5 GiB", "3.0 MiB" or "512 bytes". */
void rt_mem_bytes(char *buf, size_t cap, uint64_t bytes);

/* ---- trainer.c ---- */
typedef struct RtHooks {
    RtIo io;          /* used for checkpoint writes; write == NULL means write(2) */
    FILE *out, *err;  /* NULL means stdout / stderr */
} RtHooks;

/* rt_main with injectable I/O, for tests. */
int rt_main_hooked(int argc, char **argv, const RtModel *m, const RtHooks *hooks);

#endif
