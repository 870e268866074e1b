/* llvm_cg.h: state shared by the LLVM emitter's files: llvm_kernels.c (loop kernels),
 * llvm_host.c (per-function host code and the RtModel table) and llvm_module.c (types,
 * target machine, passes, object, link, JIT). Internal to codegen/. */
#ifndef RELORAC_LLVM_CG_H
#define RELORAC_LLVM_CG_H

#include <llvm-c/Core.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "cg.h"
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

/* A buffer's place at run time: pools[pool] + offset bytes. */
typedef struct CgBufLoc {
    int pool;       /* enum RtPool */
    int64_t offset; /* bytes from the pool base */
    int64_t bytes;
} CgBufLoc;

typedef struct CgCtx {
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
    LLVMValueRef f_parallel_for, f_sgemm, f_rng_normal, f_prune_mag, f_prune_rand, f_tanhf;
    LLVMTypeRef t_parallel_for, t_sgemm, t_rng_normal, t_prune_mag, t_prune_rand, t_tanhf;
    LLVMValueRef f_attn_fwd, f_attn_bwd, f_head_loss; /* runtime/rt_fused.h */
    LLVMTypeRef t_attn_fwd, t_attn_bwd, t_head_loss;
    /* layout */
    CgBufLoc *loc;             /* per buffer */
    int64_t pool_bytes[RT_POOL_COUNT];
    /* per KFunc: the host function */
    LLVMValueRef *host_fn;
    bool failed;
} CgCtx;

/* llvm_module.c */
LLVMValueRef cg_intrinsic(CgCtx *c, const char *name, LLVMTypeRef ty, LLVMTypeRef *fty);
LLVMValueRef cg_const_i64(CgCtx *c, int64_t v);
LLVMValueRef cg_const_i32(CgCtx *c, int32_t v);
LLVMValueRef cg_const_f32(CgCtx *c, double v);
/* A private constant C string; returns i8*. */
LLVMValueRef cg_const_str(CgCtx *c, const char *s);

/* llvm_kernels.c: defines the rt_parallel_for callback of a K_LOOP kernel and returns it.
 * args_ty gets the struct its `args` points to: {buffer pointers (i8*) in the order of
 * bufs, i64 seed, i64 step}; bufs and n_bufs the buffer ids (arena). serial is set when
 * rows must not run in parallel (a store whose address ignores the row). */
LLVMValueRef cg_kernel_emit(CgCtx *c, const KFunc *f, const Kernel *k, LLVMTypeRef *args_ty,
                            int **bufs, int *n_bufs, bool *serial);

/* llvm_kernels.c: a call of a fused kernel's runtime routine (K_ATTENTION, K_HEAD_LOSS:
 * runtime/rt_fused.h) at the builder's position, given the host function's ctx and loaded
 * pool bases. A buffer of the wrong dtype is a diagnostic. */
void cg_fused_emit(CgCtx *c, const Kernel *k, LLVMValueRef ctx, LLVMValueRef *pools);

/* llvm_host.c: the host function of every KFunc and the RtModel table; with_main adds
 * main(). */
void cg_host_emit(CgCtx *c, bool with_main);

#endif
