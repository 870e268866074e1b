/* llvm_cg.h: state shared by the LLVM host module's files: llvm_host.c (per-function host
 * code and the RtModel table, for every target), llvm_module.c (types, target machine,
 * passes, object, link, JIT), and one file per target that says what a kernel becomes in
 * the host function: llvm_kernels.c (CPU: loop kernels in LLVM, BLAS, runtime calls) and
 * llvm_cuda.c (CUDA: launches of NVRTC-compiled kernels, cuBLAS). Internal to codegen/. */
#ifndef RELORAC_LLVM_CG_H
#define RELORAC_LLVM_CG_H

#include <llvm-c/Core.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "cg.h"
#include "layout.h"
#include "rt.h"

/* Internal bug: print the call site and abort, in every build type. */
#define CG_ASSERT(c)                                                                           \
    do {                                                                                       \
        if (!(c)) {                                                                            \
            fprintf(stderr, "%s:%d: internal error: assertion '%s' failed\n", __FILE__,        \
                    __LINE__, #c);                                                             \
            abort();                                                                           \
        }                                                                                      \
    } while (0)

typedef struct CgCtx CgCtx;

/* One host function being emitted: float relorac_fn_<func>(RtCtx *ctx). */
typedef struct CgFn {
    LLVMValueRef fn, ctx;
    LLVMValueRef pools[RT_POOL_COUNT]; /* ctx->pools[], loaded at entry */
    LLVMValueRef seed;                 /* ctx->seed */
    int step_buf;                      /* the buffer of @step (i32[]), or -1 */
    LLVMValueRef step;                 /* the target's, e.g. @step loaded at entry (CPU) */
} CgFn;

/* What a target makes of kernels in the host module. The host code around them (one
 * function per KFunc, the model table, main) is the same for every target (llvm_host.c). */
typedef struct CgTarget {
    const char *name;
    /* Before any host function: the runtime declarations the target calls, device code.
     * False after diagnostics. */
    bool (*prepare)(CgCtx *c);
    /* At the entry of host function h (optional). */
    void (*begin)(CgCtx *c, CgFn *h);
    /* Kernel k of f, at the builder's position. Bad kernels are diagnostics. */
    void (*kernel)(CgCtx *c, CgFn *h, const KFunc *f, const Kernel *k);
    /* The f32 value of element 0 of buffer buf (a function's returned scalar). */
    LLVMValueRef (*ret)(CgCtx *c, CgFn *h, int buf);
    /* RtModel.device and device_code (i8* constants); NULL: both null (the host). */
    void (*device)(CgCtx *c, LLVMValueRef out[2]);
    /* An archive linked before the runtime's (the target's runtime layer), or NULL. */
    const char *(*archive)(const CgOptions *opt);
    /* Linker arguments after the runtime archive (NULL-terminated). */
    const char *const *libs;
} CgTarget;

extern const CgTarget cg_target_cpu;  /* llvm_kernels.c */
extern const CgTarget cg_target_cuda; /* llvm_cuda.c */

struct CgCtx {
    const CgTarget *target;
    const KProgram *p;
    const CgOptions *opt;
    Diags *d;
    Arena *a; /* p->arena: names and small tables */
    LLVMContextRef llc;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    /* types */
    LLVMTypeRef t_void, t_i1, t_i8, t_i16, t_i32, t_i64, t_f32, t_f64, t_p8, t_pf32, t_pi32;
    LLVMTypeRef t_ctx, t_pctx;     /* struct RtCtx (fields up to seed are used) */
    LLVMTypeRef t_kernel_fn;       /* void (i8 *args, i64 begin, i64 end) */
    LLVMTypeRef t_host_fn;         /* float (RtCtx *): one KFunc (rt.h RtFnPtr) */
    /* runtime declarations and their types */
    LLVMValueRef f_parallel_for, f_sgemm, f_sbgemm, f_rng_normal, f_prune_mag, f_prune_rand, f_tanhf;
    LLVMTypeRef t_parallel_for, t_sgemm, t_sbgemm, t_rng_normal, t_prune_mag, t_prune_rand, t_tanhf;
    LLVMValueRef f_sgemm_pair; /* rt_sgemm_pair: two GEMMs of a fused LoRA linear as one */
    LLVMTypeRef t_sgemm_pair;
    LLVMValueRef f_attn_fwd, f_attn_bwd, f_head_loss; /* runtime/rt_fused.h */
    LLVMTypeRef t_attn_fwd, t_attn_bwd, t_head_loss;
    /* layout */
    CgBufLoc *loc;             /* per buffer */
    int64_t pool_bytes[RT_POOL_COUNT];
    /* per KFunc: the host function */
    LLVMValueRef *host_fn;
    void *target_state; /* the target's own (arena) */
    bool failed;
};

/* llvm_module.c */
LLVMValueRef cg_intrinsic(CgCtx *c, const char *name, LLVMTypeRef ty, LLVMTypeRef *fty);
LLVMValueRef cg_const_i64(CgCtx *c, int64_t v);
LLVMValueRef cg_const_i32(CgCtx *c, int32_t v);
LLVMValueRef cg_const_f32(CgCtx *c, double v);
/* A private constant C string; returns i8*. */
LLVMValueRef cg_const_str(CgCtx *c, const char *s);
/* A private constant byte array; returns i8*. */
LLVMValueRef cg_const_bytes(CgCtx *c, const void *data, size_t n, const char *name);
/* Declares `ret name(params...)` and sets *ty_out to its type. */
LLVMValueRef cg_declare(CgCtx *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, unsigned n,
                        LLVMTypeRef *ty_out);
/* i8* to buffer buf: h->pools[pool] + offset (a device address on a device target). */
LLVMValueRef cg_buf_ptr(CgCtx *c, const CgFn *h, int buf);
/* p cast to elem*. */
LLVMValueRef cg_typed(CgCtx *c, LLVMValueRef p, LLVMTypeRef elem);
/* A kernel's name for messages. */
const char *cg_kernel_name(const Kernel *k);
/* The rows of a loop kernel: the product of its outer extents. */
int64_t cg_kernel_rows(const Kernel *k);

/* llvm_host.c: the host function of every KFunc and the RtModel table; with_main adds
 * main(). */
void cg_host_emit(CgCtx *c, bool with_main);

/* llvm_module.c: the module of p for target t, verified and optimised for the host CPU,
 * written as an object (with main() when with_main) or as LLVM text, or linked into an
 * executable. False after diagnostics. */
bool cg_module_object(const CgTarget *t, const KProgram *p, const CgOptions *opt, const char *obj_path,
                      bool with_main, Diags *d);
bool cg_module_text(const CgTarget *t, const KProgram *p, const CgOptions *opt, FILE *out, Diags *d);
bool cg_module_executable(const CgTarget *t, const KProgram *p, const CgOptions *opt, const char *out_path,
                          Diags *d);

#endif
