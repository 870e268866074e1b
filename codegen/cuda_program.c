/* The CUDA C translation unit of a kernel program and the steps of each function: the
 * prelude (the helpers every kernel may call: bf16, the counter RNG, warp and block
 * reductions), then each kernel as its emitter writes it, in function order. The source
 * is C that is also CUDA C++: NVRTC compiles it for the device, and the emulation test
 * compiles it with the host's cc and tests/unit/cuda_emu.h, which supplies threads,
 * shared memory, barriers and warp shuffles. Everything is a pure function of the
 * KProgram: names come from kernel names, never from addresses or hash order. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

/* ---- text ---- */

void cu_text_init(CuText *t, Arena *a)
{
    memset(t, 0, sizeof *t);
    t->a = a;
}

void cu_printf(CuText *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    IR_ASSERT(n >= 0);
    if (t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        t->s = arena_grow(t->a, t->s, t->len, cap, 1);
        t->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(t->s + t->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    t->len += (size_t)n;
}

/* ---- tables ---- */

void cu_kernel_draft(CuProgram *cp, CuKernel *draft, const Kernel *k, CuText *body)
{
    memset(draft, 0, sizeof *draft);
    draft->k = k;
    cu_text_init(body, cp->p->arena);
}

void cu_param_add(CuProgram *cp, CuKernel *draft, const char *ctype)
{
    draft->params = arena_grow(cp->p->arena, draft->params, (size_t)draft->n_params, (size_t)draft->n_params + 1,
                               sizeof *draft->params);
    draft->params[draft->n_params++] = ctype;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

int cu_kernel_finish(CuProgram *cp, CuKernel *draft, CuText *body, const char *name)
{
    const char *text = body->s ? body->s : "";
    uint64_t h = fnv1a(text);
    for (int i = 0; i < cp->n_kernels; i++)
        if (cp->kernels[i].hash == h && strcmp(cp->kernels[i].body, text) == 0)
            return i;
    if (cp->n_kernels == cp->cap_kernels) {
        int cap = cp->cap_kernels ? cp->cap_kernels * 2 : 64;
        cp->kernels = arena_grow(cp->p->arena, cp->kernels, (size_t)cp->n_kernels, (size_t)cap, sizeof *cp->kernels);
        cp->cap_kernels = cap;
    }
    CuKernel *ck = &cp->kernels[cp->n_kernels];
    *ck = *draft;
    ck->name = name;
    ck->body = text;
    ck->hash = h;
    /* the text with KNAME replaced by the name */
    for (const char *p = text; *p;) {
        const char *q = strstr(p, "KNAME");
        if (!q) {
            cu_printf(&cp->src, "%s", p);
            break;
        }
        cu_printf(&cp->src, "%.*s%s", (int)(q - p), p, name);
        p = q + 5;
    }
    return cp->n_kernels++;
}

void cu_emulation_wrappers(const CuProgram *cp, CuText *out)
{
    cu_printf(out, "\n/* host emulation entry points */\n");
    for (int i = 0; i < cp->n_kernels; i++) {
        const CuKernel *ck = &cp->kernels[i];
        cu_printf(out, "static void %s_emu(void **p)\n{\n    %s(", ck->name, ck->name);
        for (int j = 0; j < ck->n_params; j++)
            cu_printf(out, "%s*(%s *)p[%d]", j ? ", " : "", ck->params[j], j);
        cu_printf(out, ");\n}\n");
    }
    cu_printf(out, "const EmuKernel relorac_emu_kernels[] = {\n");
    for (int i = 0; i < cp->n_kernels; i++)
        cu_printf(out, "    {\"%s\", %s_emu},\n", cp->kernels[i].name, cp->kernels[i].name);
    cu_printf(out, "    {0, 0}\n};\n");
}

CuStep *cu_step_add(CuProgram *cp, CuFunc *cf, CuStepKind kind, const Kernel *k)
{
    if (cf->n_steps == cf->cap_steps) {
        int cap = cf->cap_steps ? cf->cap_steps * 2 : 32;
        cf->steps = arena_grow(cp->p->arena, cf->steps, (size_t)cf->n_steps, (size_t)cap, sizeof *cf->steps);
        cf->cap_steps = cap;
    }
    CuStep *s = &cf->steps[cf->n_steps++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->k = k;
    s->kernel = -1;
    return s;
}

void cu_arg_add(CuProgram *cp, CuStep *s, CuArg a)
{
    /* steps are built once and never grow after the next one starts: grow by one */
    s->args = arena_grow(cp->p->arena, s->args, (size_t)s->n_args, (size_t)s->n_args + 1, sizeof *s->args);
    s->args[s->n_args++] = a;
}

const char *cu_elem_type(IrDType t)
{
    switch (t) {
    case IR_F32: return "float";
    case IR_BF16: return "unsigned short";
    case IR_I32: return "int";
    }
    UNREACHABLE();
}

const char *cu_float_lit(Arena *a, double v)
{
    float f = (float)v;
    if (f != f)
        return "__uint_as_float(0x7fc00000u)";
    if (f == (float)INFINITY)
        return "__uint_as_float(0x7f800000u)";
    if (f == -(float)INFINITY)
        return "__uint_as_float(0xff800000u)";
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", (double)f);
    bool has_point = strpbrk(buf, ".e") != NULL;
    return arena_sprintf(a, "%s%sf", buf, has_point ? "" : ".0");
}

/* ---- the prelude ---- */

/* Helpers every kernel may use. k_rng_* are bit-exact with runtime/rng.c (rt.h states the
 * formulas); k_f2bf rounds to nearest even as rt_f32_to_bf16. A warp reduction's butterfly
 * gives every lane the same bits (each level adds two equal pairs in either order); a block
 * reduction then sums the warps' totals in warp order, in every thread. */
static const char prelude[] =
    "/* relorac: generated CUDA C. C that is also CUDA C++: NVRTC compiles it for the GPU,\n"
    " * tests/unit/cuda_emu.h for the host. */\n"
    "#ifdef __CUDACC__\n"
    "#pragma nv_diag_suppress 177 /* helpers of this prelude a program does not use */\n"
    "#define RELORAC_KERNEL extern \"C\" __global__\n"
    "#define RELORAC_DYN_SMEM(name) extern __shared__ float name[]\n"
    "#endif\n"
    "#define K_FULL 0xffffffffu\n"
    "\n"
    "static __device__ __forceinline__ float k_bf16(unsigned short h) { return __uint_as_float((unsigned)h << 16); }\n"
    "static __device__ __forceinline__ unsigned short k_f2bf(float f)\n"
    "{\n"
    "    unsigned u = __float_as_uint(f);\n"
    "    if ((u & 0x7F800000u) == 0x7F800000u && (u & 0x007FFFFFu))\n"
    "        return (unsigned short)((u >> 16) | 0x40u);\n"
    "    u += 0x7FFFu + ((u >> 16) & 1u);\n"
    "    return (unsigned short)(u >> 16);\n"
    "}\n"
    "static __device__ __forceinline__ unsigned long long k_splitmix64(unsigned long long x)\n"
    "{\n"
    "    x += 0x9E3779B97F4A7C15ull;\n"
    "    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;\n"
    "    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;\n"
    "    return x ^ (x >> 31);\n"
    "}\n"
    "/* key = splitmix64(seed ^ splitmix64(stream)); uniform = (splitmix64(key + c) >> 40) 2^-24 */\n"
    "static __device__ __forceinline__ float k_uniform(unsigned long long key, unsigned long long c)\n"
    "{\n"
    "    return (float)(k_splitmix64(key + c) >> 40) * 5.9604644775390625e-08f;\n"
    "}\n"
    "static __device__ __forceinline__ float k_normal(unsigned long long key, unsigned long long c)\n"
    "{\n"
    "    double u1 = (double)k_uniform(key, c * 2), u2 = (double)k_uniform(key, c * 2 + 1);\n"
    "    if (u1 < 1e-12)\n"
    "        u1 = 1e-12;\n"
    "    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));\n"
    "}\n"
    "static __device__ __forceinline__ float k_warp_sum(float v)\n"
    "{\n"
    "    for (int o = 16; o > 0; o >>= 1)\n"
    "        v += __shfl_xor_sync(K_FULL, v, o);\n"
    "    return v;\n"
    "}\n"
    "static __device__ __forceinline__ float k_warp_max(float v)\n"
    "{\n"
    "    for (int o = 16; o > 0; o >>= 1)\n"
    "        v = fmaxf(v, __shfl_xor_sync(K_FULL, v, o));\n"
    "    return v;\n"
    "}\n"
    "/* sh: 32 floats of shared memory, free on entry and on return */\n"
    "static __device__ __forceinline__ float k_block_sum(float v, float *sh)\n"
    "{\n"
    "    v = k_warp_sum(v);\n"
    "    if ((threadIdx.x & 31) == 0)\n"
    "        sh[threadIdx.x >> 5] = v;\n"
    "    __syncthreads();\n"
    "    float t = 0.0f;\n"
    "    for (int w = 0; w < (int)(blockDim.x >> 5); w++)\n"
    "        t += sh[w];\n"
    "    __syncthreads();\n"
    "    return t;\n"
    "}\n"
    "static __device__ __forceinline__ float k_block_max(float v, float *sh)\n"
    "{\n"
    "    v = k_warp_max(v);\n"
    "    if ((threadIdx.x & 31) == 0)\n"
    "        sh[threadIdx.x >> 5] = v;\n"
    "    __syncthreads();\n"
    "    float t = sh[0];\n"
    "    for (int w = 1; w < (int)(blockDim.x >> 5); w++)\n"
    "        t = fmaxf(t, sh[w]);\n"
    "    __syncthreads();\n"
    "    return t;\n"
    "}\n";

CuProgram *cu_program_build(const KProgram *p, Diags *d)
{
    Arena *a = p->arena;
    CuProgram *cp = ARENA_NEW(a, CuProgram);
    cp->p = p;
    cp->d = d;
    cp->workspace_bytes = 16;
    const IrGlobal *sg = p->m ? ir_global_find(p->m, "step") : NULL;
    int sb = sg && p->global_buf ? p->global_buf[sg->id] : -1;
    cp->step_buf = sb >= 0 && p->bufs[sb].dtype == IR_I32 ? sb : -1;
    cu_text_init(&cp->src, a);
    if (!cg_layout(p, d, &cp->layout))
        return NULL;
    int errors = d->n_errors;
    cu_printf(&cp->src, "%s", prelude);
    cp->funcs = ARENA_ARRAY(a, CuFunc, p->n_funcs + 1);
    for (int fi = 0; fi < p->n_funcs; fi++) {
        const KFunc *f = p->funcs[fi];
        CuFunc *cf = &cp->funcs[fi];
        cf->f = f;
        for (int ki = 0; ki < f->n_kernels; ki++) {
            const Kernel *k = f->kernels[ki];
            switch (k->kind) {
            case K_LOOP: cu_loop_emit(cp, cf, k); break;
            case K_GEMM: {
                CuStep *s = cu_step_add(cp, cf, CU_STEP_GEMM, k);
                s->gemm = k->gemm;
                if (s->gemm.batch <= 0)
                    s->gemm.batch = 1;
                break;
            }
            case K_CALL: {
                if (k->call != KC_PRUNE_MAGNITUDE && k->call != KC_PRUNE_RANDOM) {
                    diag_error(d, k->loc, "kernel %s: the CUDA backend has no runtime call %d", k->name, (int)k->call);
                    break;
                }
                if (k->n_call_bufs < 3 || p->bufs[k->call_bufs[0]].dtype != IR_F32 ||
                    p->bufs[k->call_bufs[1]].dtype != IR_I32 || p->bufs[k->call_bufs[2]].dtype != IR_F32) {
                    diag_error(d, k->loc, "kernel %s: pruning needs f32 x, i32 step and f32 fraction buffers", k->name);
                    break;
                }
                if (k->call == KC_PRUNE_RANDOM && !ir_attrs_get(&k->call_attrs, "stream")) {
                    diag_error(d, k->loc, "kernel %s: missing integer attribute 'stream'", k->name);
                    break;
                }
                cu_step_add(cp, cf, CU_STEP_PRUNE, k);
                break;
            }
            case K_ATTENTION: cu_attention_emit(cp, cf, k); break;
            case K_HEAD_LOSS: cu_head_loss_emit(cp, cf, k); break;
            }
        }
    }
    return d->n_errors > errors ? NULL : cp;
}

bool cu_emit_source(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d)
{
    (void)opt;
    CuProgram *cp = cu_program_build(p, d);
    if (!cp)
        return false;
    fwrite(cp->src.s, 1, cp->src.len, out);
    return true;
}
