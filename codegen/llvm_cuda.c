/* The CUDA target (cg_target_cuda) and backend (cg_backend_cuda). prepare() builds the
 * program's CUDA C and steps (cuda_*.c), compiles them with NVRTC for every architecture
 * asked for (nvrtc.c) and embeds the cubins, the kernel names and their shared memory as
 * the RtCudaCode the runtime's CUDA layer loads (runtime/rt_cuda.h); each kernel then
 * becomes its steps as calls of that layer in the host function: rt_cuda_launch with the
 * parameters in a stack array, rt_cuda_gemm (cuBLAS), rt_cuda_prune. The functions' return
 * values come back with rt_cuda_read. Trainers link librelorac_rt_cuda.a before the
 * runtime, and load the driver and cuBLAS at run time (no CUDA library at link time). */
#include <string.h>

#include "cuda.h"
#include "llvm_cg.h"
#include "rt_cuda.h"

#ifndef RELORAC_RUNTIME_CUDA_LIB
#define RELORAC_RUNTIME_CUDA_LIB "librelorac_rt_cuda.a"
#endif

typedef struct CudaState {
    CuProgram *cp;
    LLVMValueRef code; /* the RtCudaCode constant */
    LLVMValueRef f_launch, f_gemm, f_read, f_prune, f_ws;
    LLVMTypeRef t_launch, t_gemm, t_read, t_prune, t_ws;
    LLVMValueRef ws;   /* the workspace, loaded at each host function's entry */
} CudaState;

static CudaState *state(CgCtx *c) { return c->target_state; }

static const char *const default_archs[] = {"sm_80", "sm_90"};

/* A constant struct of the given fields (natural C layout, as rt_cuda.h's). */
static LLVMValueRef const_struct(CgCtx *c, LLVMValueRef *v, unsigned n)
{
    return LLVMConstStructInContext(c->llc, v, n, 0);
}

static LLVMValueRef private_global(CgCtx *c, LLVMValueRef init, const char *name)
{
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    return gv;
}

/* struct RtCudaCode { int abi; int n_images; const RtCudaImage *images; int n_kernels;
 *                     const char *const *names; const int *smem; size_t workspace_bytes; } */
static LLVMValueRef emit_code(CgCtx *c, const CuProgram *cp, const CuCompiled *cc)
{
    LLVMTypeRef t_img = LLVMStructTypeInContext(c->llc, (LLVMTypeRef[]){c->t_i32, c->t_p8, c->t_i64}, 3, 0);
    LLVMValueRef *imgs = ARENA_ARRAY(c->a, LLVMValueRef, cc->n_images + 1);
    for (int i = 0; i < cc->n_images; i++) {
        const CuImage *im = &cc->images[i];
        LLVMValueRef f[3] = {cg_const_i32(c, im->arch),
                             cg_const_bytes(c, im->cubin, im->size, arena_sprintf(c->a, "relorac_cubin_sm%d", im->arch)),
                             cg_const_i64(c, (int64_t)im->size)};
        imgs[i] = LLVMConstStructInContext(c->llc, f, 3, 0);
    }
    LLVMValueRef images = private_global(c, LLVMConstArray(t_img, imgs, (unsigned)cc->n_images), "relorac_cuda_images");
    LLVMValueRef *names = ARENA_ARRAY(c->a, LLVMValueRef, cp->n_kernels + 1);
    LLVMValueRef *smem = ARENA_ARRAY(c->a, LLVMValueRef, cp->n_kernels + 1);
    for (int i = 0; i < cp->n_kernels; i++) {
        names[i] = cg_const_str(c, cp->kernels[i].name);
        smem[i] = cg_const_i32(c, cp->kernels[i].smem);
    }
    LLVMValueRef gnames = private_global(c, LLVMConstArray(c->t_p8, names, (unsigned)cp->n_kernels), "relorac_cuda_names");
    LLVMValueRef gsmem = private_global(c, LLVMConstArray(c->t_i32, smem, (unsigned)cp->n_kernels), "relorac_cuda_smem");
    LLVMValueRef f[7] = {cg_const_i32(c, RT_CUDA_ABI),
                         cg_const_i32(c, cc->n_images),
                         LLVMConstBitCast(images, c->t_p8),
                         cg_const_i32(c, cp->n_kernels),
                         LLVMConstBitCast(gnames, c->t_p8),
                         LLVMConstBitCast(gsmem, c->t_p8),
                         cg_const_i64(c, cp->workspace_bytes)};
    LLVMValueRef gv = private_global(c, const_struct(c, f, 7), "relorac_cuda_code");
    return LLVMConstBitCast(gv, c->t_p8);
}

static bool cuda_prepare(CgCtx *c)
{
    CudaState *s = ARENA_NEW(c->a, CudaState);
    c->target_state = s;
    s->cp = cu_program_build(c->p, c->d);
    if (!s->cp)
        return false;
    const char *const *archs = c->opt->archs ? c->opt->archs : default_archs;
    int n_archs = c->opt->archs ? c->opt->n_archs : 2;
    CuCompiled cc;
    if (!cu_compile(s->cp, archs, n_archs, c->opt->nvrtc, &cc, c->d))
        return false;
    s->code = emit_code(c, s->cp, &cc);
    /* runtime/rt_cuda.h */
    LLVMTypeRef pp8 = LLVMPointerType(c->t_p8, 0);
    LLVMTypeRef la[6] = {c->t_pctx, c->t_i32, c->t_i32, c->t_i32, c->t_i32, pp8};
    s->f_launch = cg_declare(c, "rt_cuda_launch", c->t_void, la, 6, &s->t_launch);
    LLVMTypeRef ga[21] = {c->t_pctx, c->t_i32, c->t_i32, c->t_i64, c->t_i64, c->t_i64, c->t_f32,
                          c->t_p8,   c->t_i32, c->t_i64, c->t_i64, c->t_p8,  c->t_i32, c->t_i64,
                          c->t_i64,  c->t_f32, c->t_p8,  c->t_i32, c->t_i64, c->t_i64, c->t_i64};
    s->f_gemm = cg_declare(c, "rt_cuda_gemm", c->t_void, ga, 21, &s->t_gemm);
    LLVMTypeRef ra[3] = {c->t_pctx, c->t_p8, c->t_i32};
    s->f_read = cg_declare(c, "rt_cuda_read", c->t_f32, ra, 3, &s->t_read);
    LLVMTypeRef pa[7] = {c->t_pctx, c->t_i32, c->t_pf32, c->t_i64, c->t_pf32, c->t_pi32, c->t_i64};
    s->f_prune = cg_declare(c, "rt_cuda_prune", c->t_void, pa, 7, &s->t_prune);
    s->f_ws = cg_declare(c, "rt_cuda_workspace", c->t_p8, &c->t_pctx, 1, &s->t_ws);
    return true;
}

static void cuda_begin(CgCtx *c, CgFn *h)
{
    CudaState *s = state(c);
    s->ws = LLVMBuildCall2(c->b, s->t_ws, s->f_ws, &h->ctx, 1, "workspace");
}

static int rt_dtype_of(IrDType t) { return t == IR_F32 ? RT_F32 : t == IR_BF16 ? RT_BF16 : RT_I32; }

/* i8*: buffer buf + `elems` elements */
static LLVMValueRef buf_at(CgCtx *c, const CgFn *h, int buf, int64_t elems)
{
    LLVMValueRef off = cg_const_i64(c, elems * ir_dtype_bytes(c->p->bufs[buf].dtype));
    return LLVMBuildInBoundsGEP2(c->b, c->t_i8, cg_buf_ptr(c, h, buf), &off, 1, "");
}

static LLVMValueRef ws_at(CgCtx *c, int64_t bytes)
{
    LLVMValueRef off = cg_const_i64(c, bytes);
    return LLVMBuildInBoundsGEP2(c->b, c->t_i8, state(c)->ws, &off, 1, "");
}

static void emit_launch(CgCtx *c, const CgFn *h, const CuStep *st)
{
    CudaState *s = state(c);
    int n = st->n_args;
    /* one 8-byte slot per parameter, and the array of their addresses */
    LLVMTypeRef t_slots = LLVMArrayType(c->t_i64, (unsigned)(n > 0 ? n : 1));
    LLVMTypeRef t_ptrs = LLVMArrayType(c->t_p8, (unsigned)(n > 0 ? n : 1));
    LLVMValueRef slots = LLVMBuildAlloca(c->b, t_slots, "params");
    LLVMValueRef ptrs = LLVMBuildAlloca(c->b, t_ptrs, "param_ptrs");
    for (int i = 0; i < n; i++) {
        const CuArg *a = &st->args[i];
        LLVMValueRef idx[2] = {cg_const_i32(c, 0), cg_const_i32(c, i)};
        LLVMValueRef slot = LLVMBuildInBoundsGEP2(c->b, t_slots, slots, idx, 2, "");
        LLVMValueRef v = NULL;
        switch (a->kind) {
        case CU_ARG_BUF: v = buf_at(c, h, a->buf, a->i); break;
        case CU_ARG_STEP: v = s->cp->step_buf >= 0 ? buf_at(c, h, s->cp->step_buf, 0) : ws_at(c, 8); break;
        case CU_ARG_SEED: v = h->seed; break;
        case CU_ARG_I32: v = cg_const_i32(c, (int32_t)a->i); break;
        case CU_ARG_I64: v = cg_const_i64(c, a->i); break;
        case CU_ARG_F32: v = cg_const_f32(c, a->f); break;
        case CU_ARG_WORKSPACE: v = ws_at(c, a->i); break;
        }
        LLVMBuildStore(c->b, v, LLVMBuildBitCast(c->b, slot, LLVMPointerType(LLVMTypeOf(v), 0), ""));
        LLVMBuildStore(c->b, LLVMBuildBitCast(c->b, slot, c->t_p8, ""),
                       LLVMBuildInBoundsGEP2(c->b, t_ptrs, ptrs, idx, 2, ""));
    }
    LLVMValueRef zero[2] = {cg_const_i32(c, 0), cg_const_i32(c, 0)};
    LLVMValueRef args[6] = {h->ctx,
                            cg_const_i32(c, (int32_t)st->kernel),
                            cg_const_i32(c, (int32_t)st->grid),
                            cg_const_i32(c, st->block),
                            cg_const_i32(c, st->smem),
                            LLVMBuildInBoundsGEP2(c->b, t_ptrs, ptrs, zero, 2, "")};
    LLVMBuildCall2(c->b, s->t_launch, s->f_launch, args, 6, "");
}

static void emit_gemm(CgCtx *c, const CgFn *h, const CuStep *st)
{
    CudaState *s = state(c);
    const KGemm *g = &st->gemm;
    const KBuf *bufs = c->p->bufs;
    LLVMValueRef a[21] = {h->ctx,
                          cg_const_i32(c, g->trans_a),
                          cg_const_i32(c, g->trans_b),
                          cg_const_i64(c, g->m),
                          cg_const_i64(c, g->n),
                          cg_const_i64(c, g->k),
                          cg_const_f32(c, g->alpha),
                          buf_at(c, h, g->a, g->off_a),
                          cg_const_i32(c, rt_dtype_of(bufs[g->a].dtype)),
                          cg_const_i64(c, g->lda),
                          cg_const_i64(c, g->stride_a),
                          buf_at(c, h, g->b, g->off_b),
                          cg_const_i32(c, rt_dtype_of(bufs[g->b].dtype)),
                          cg_const_i64(c, g->ldb),
                          cg_const_i64(c, g->stride_b),
                          cg_const_f32(c, g->beta),
                          buf_at(c, h, g->c, g->off_c),
                          cg_const_i32(c, rt_dtype_of(bufs[g->c].dtype)),
                          cg_const_i64(c, g->ldc),
                          cg_const_i64(c, g->stride_c),
                          cg_const_i64(c, g->batch > 0 ? g->batch : 1)};
    LLVMBuildCall2(c->b, s->t_gemm, s->f_gemm, a, 21, "");
}

static void emit_prune(CgCtx *c, const CgFn *h, const CuStep *st)
{
    CudaState *s = state(c);
    const Kernel *k = st->k;
    LLVMValueRef a[7] = {h->ctx,
                         cg_const_i32(c, k->call == KC_PRUNE_RANDOM),
                         cg_typed(c, buf_at(c, h, k->call_bufs[0], 0), c->t_f32),
                         cg_const_i64(c, c->p->bufs[k->call_bufs[0]].numel),
                         cg_typed(c, buf_at(c, h, k->call_bufs[2], 0), c->t_f32),
                         cg_typed(c, buf_at(c, h, k->call_bufs[1], 0), c->t_i32),
                         cg_const_i64(c, ir_attrs_int(&k->call_attrs, "stream", 0))};
    LLVMBuildCall2(c->b, s->t_prune, s->f_prune, a, 7, "");
}

/* Every step of kernel k (a head loss is a dozen; the steps of one kernel are adjacent). */
static void cuda_kernel(CgCtx *c, CgFn *h, const KFunc *f, const Kernel *k)
{
    const CuProgram *cp = state(c)->cp;
    const CuFunc *cf = NULL;
    for (int i = 0; i < c->p->n_funcs && !cf; i++)
        if (c->p->funcs[i] == f)
            cf = &cp->funcs[i];
    CG_ASSERT(cf);
    for (int i = 0; i < cf->n_steps; i++) {
        const CuStep *st = &cf->steps[i];
        if (st->k != k)
            continue;
        switch (st->kind) {
        case CU_STEP_LAUNCH: emit_launch(c, h, st); break;
        case CU_STEP_GEMM: emit_gemm(c, h, st); break;
        case CU_STEP_PRUNE: emit_prune(c, h, st); break;
        }
    }
}

static LLVMValueRef cuda_ret(CgCtx *c, CgFn *h, int buf)
{
    CudaState *s = state(c);
    LLVMValueRef a[3] = {h->ctx, buf_at(c, h, buf, 0), cg_const_i32(c, rt_dtype_of(c->p->bufs[buf].dtype))};
    return LLVMBuildCall2(c->b, s->t_read, s->f_read, a, 3, "ret");
}

static void cuda_device(CgCtx *c, LLVMValueRef out[2])
{
    LLVMTypeRef t_ops = LLVMStructCreateNamed(c->llc, "RtDeviceOps");
    LLVMValueRef ops = LLVMAddGlobal(c->mod, t_ops, "rt_cuda_device"); /* runtime/cuda.c */
    LLVMSetGlobalConstant(ops, 1);
    out[0] = LLVMConstBitCast(ops, c->t_p8);
    out[1] = state(c)->code;
}

static const char *cuda_archive(const CgOptions *opt)
{
    return opt->runtime_cuda_lib ? opt->runtime_cuda_lib : RELORAC_RUNTIME_CUDA_LIB;
}

/* the runtime loads its GEMM library (runtime/gemm.c) and the CUDA layer the driver and
 * cuBLAS with dlopen: nothing GPU-side is linked */
static const char *const cuda_libs[] = {"-lpthread", "-ldl", "-lm", NULL};

const CgTarget cg_target_cuda = {
    .name = "cuda",
    .prepare = cuda_prepare,
    .begin = cuda_begin,
    .kernel = cuda_kernel,
    .ret = cuda_ret,
    .device = cuda_device,
    .archive = cuda_archive,
    .libs = cuda_libs,
};

static bool cuda_build_executable(const KProgram *p, const CgOptions *opt, const char *out_path, Diags *d)
{
    return cg_module_executable(&cg_target_cuda, p, opt, out_path, d);
}

static bool cuda_emit_host_ir(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d)
{
    return cg_module_text(&cg_target_cuda, p, opt, out, d);
}

const CgBackend cg_backend_cuda = {
    .name = "cuda",
    .summary = "NVIDIA GPUs: CUDA C kernels compiled by NVRTC into the binary, cuBLAS GEMMs",
    .build_executable = cuda_build_executable,
    .emit_host_ir = cuda_emit_host_ir,
    .emit_device_source = cu_emit_source,
};
