/* attention.c: fused attention (the `attention` op: K_ATTENTION kernels, runtime/rt_fused.c)
 * against the graph the lowering builds without attention-fuse (repeat_kv, batched GEMMs,
 * the scale and causal softmax as loop kernels), forward and backward, measured in one run.
 * Each variant is one function: y = attention(q, k, v), loss = sum(y * r), its gradient
 * stored into dq, dk, dv; it goes through the clean-up, fusion and memory-plan passes and
 * the LLVM backend at O3 (MCJIT), as in a trainer. Timings are the best of REPS calls after
 * one untimed call (the machine may be shared: the best rep is the least disturbed), and
 * the median is printed beside it. Also printed: the planned activation + scratch bytes.
 * Build: ninja -C build bench-attention (meson target in tests/meson.build)
 * Usage: bench-attention [-t THREADS] [-r REPS] [B,H,HKV,T,D ...]
 *        default: 2,8,8,256,64 and 2,8,8,1024,64
 * One JSON line per shape and variant:
 *   {"variant","B","H","Hkv","T","D","threads","best_s","median_s","planned_bytes"}
 * and a last line comparing the two. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cg.h"
#include "ir.h"
#include "kernel.h"
#include "pm.h"
#include "rt.h"
#include "rt_fused.h"
#include "rt_internal.h"
#include "rt_ops.h"
#include "tutil.h"

typedef struct {
    int64_t B, H, Hkv, T, D;
} Shape;

typedef struct {
    double best, median;
    int64_t planned;
} Result;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void die(Diags *d, const char *what)
{
    diag_print(d, stderr, false);
    fprintf(stderr, "bench-attention: %s failed\n", what);
    exit(2);
}

static IrGlobal *global(IrModule *m, const char *name, const int64_t *dims, IrMemClass cls)
{
    return ir_global_new(m, name, ir_type_make(IR_F32, 4, dims), cls, 0, srcloc_none());
}

/* The module of one variant: function "step". */
static IrModule *build(Arena *a, Diags *d, const Shape *s, bool fused)
{
    IrModule *m = ir_module_new(a, fused ? "fused" : "unfused");
    ir_attrs_set_int(a, &m->attrs, "batch", 1);
    ir_attrs_set_int(a, &m->attrs, "train.micro_batch", 1);
    ir_attrs_set_int(a, &m->attrs, "seq_len", 1);
    ir_attrs_set_int(a, &m->attrs, "vocab", 16);
    tu_program_attrs(a, m);
    int64_t dq[4] = {s->B, s->H, s->T, s->D}, dkv[4] = {s->B, s->Hkv, s->T, s->D};
    IrGlobal *wrt[3] = {global(m, "q", dq, IR_CLASS_PARAM), global(m, "k", dkv, IR_CLASS_PARAM),
                        global(m, "v", dkv, IR_CLASS_PARAM)};
    IrGlobal *r = global(m, "r", dq, IR_CLASS_PARAM);
    IrGlobal *out[3] = {global(m, "dq", dq, IR_CLASS_GRAD), global(m, "dk", dkv, IR_CLASS_GRAD),
                        global(m, "dv", dkv, IR_CLASS_GRAD)};
    IrFunc *f = ir_func_new(m, "step");
    IrBuilder b;
    ir_builder_init(&b, m, f, d);
    IrNode *q = ir_global_read(&b, wrt[0]), *k = ir_global_read(&b, wrt[1]), *v = ir_global_read(&b, wrt[2]);
    double scale = 1.0 / sqrt((double)s->D);
    IrNode *y;
    if (fused) {
        y = ir_attention(&b, q, k, v, scale, true);
    } else {
        if (s->Hkv != s->H) {
            k = ir_repeat_kv(&b, k, (int)(s->H / s->Hkv));
            v = ir_repeat_kv(&b, v, (int)(s->H / s->Hkv));
        }
        IrNode *sc = ir_scale(&b, ir_matmul(&b, q, k, false, true), scale);
        y = ir_matmul(&b, ir_softmax(&b, sc, true), v, false, false);
    }
    int64_t axes[4] = {0, 1, 2, 3};
    IrNode *loss = ir_sum(&b, ir_binary(&b, IR_OP_MUL, y, ir_global_read(&b, r)), 4, axes);
    IrNode *grads[3];
    if (b.failed || !ir_autodiff(m, f, loss, wrt, 3, grads, d))
        die(d, "building the graph");
    for (int i = 0; i < 3; i++) {
        IrNode *in[1] = {grads[i]};
        ir_build(&b, IR_OP_STORE, in, 1, &out[i], 1, NULL);
    }
    f->ret = loss;
    static const char *const clean[] = {"dce", "cse", "constfold", "fuse", "memplan"};
    PassCtx pc = {a, d, m, PROP_LOWERED | PROP_GRADS | PROP_OPTIM | PROP_RELORA};
    PassOptions po = {clean, 5, true, NULL, NULL};
    if (!pass_pipeline_run(&pc, &po))
        die(d, "the passes");
    return m;
}

static const CgSymbol rt_syms[] = {
    {"rt_parallel_for", (CgFnPtr)rt_parallel_for},
    {"rt_sgemm_strided", (CgFnPtr)rt_sgemm_strided},
    {"rt_sgemm_pair", (CgFnPtr)rt_sgemm_pair},
    {"rt_rng_normal", (CgFnPtr)rt_rng_normal},
    {"rt_prune_magnitude", (CgFnPtr)rt_prune_magnitude},
    {"rt_prune_random", (CgFnPtr)rt_prune_random},
    {"rt_attention_forward", (CgFnPtr)rt_attention_forward},
    {"rt_attention_backward", (CgFnPtr)rt_attention_backward},
    {"rt_head_loss", (CgFnPtr)rt_head_loss},
};

static Result measure(const Shape *s, bool fused, int threads, int reps)
{
    Arena a;
    Diags d;
    arena_init(&a);
    diag_init(&d, &a);
    IrModule *m = build(&a, &d, s, fused);
    KProgram *p = k_program_build(&a, &d, m);
    if (!p)
        die(&d, "kernelizing");
    CgJit *jit = cg_jit_create(p, NULL, rt_syms, (int)(sizeof rt_syms / sizeof rt_syms[0]), &d);
    if (!jit)
        die(&d, "compiling");
    const RtModel *md = (const RtModel *)cg_jit_lookup(jit, "relorac_model");
    RtCtx *ctx;
    RtError e = {0};
    if (!md || !rt_ctx_create(&ctx, md, threads, 1, &e)) {
        fprintf(stderr, "bench-attention: %s\n", e.msg);
        exit(2);
    }
    for (int i = 0; i < md->n_tensors; i++) { /* inputs in [-1, 1) */
        const RtTensorInfo *t = &md->tensors[i];
        float *x = rt_tensor_data(ctx, i);
        for (int64_t j = 0; j < rt_tensor_numel(t); j++)
            x[j] = 2.0f * rt_rng_uniform(7, (uint64_t)i, (uint64_t)j) - 1.0f;
    }
    RtFnPtr fn = (RtFnPtr)cg_jit_lookup(jit, "relorac_fn_step");
    fn(ctx);
    double *t = calloc((size_t)reps, sizeof *t);
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        fn(ctx);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    Result r = {t[0], t[reps / 2], p->pool_bytes[IR_CLASS_ACTIVATION] + p->pool_bytes[IR_CLASS_SCRATCH]};
    free(t);
    rt_ctx_destroy(ctx);
    cg_jit_destroy(jit);
    arena_fini(&a);
    return r;
}

int main(int argc, char **argv)
{
    int threads = 2, reps = 5, n_shapes = 0;
    Shape shapes[16];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else if (strcmp(argv[i], "-r") == 0 && i + 1 < argc) {
            reps = atoi(argv[++i]);
        } else if (n_shapes < 16) {
            Shape *s = &shapes[n_shapes];
            long long v[5];
            if (sscanf(argv[i], "%lld,%lld,%lld,%lld,%lld", &v[0], &v[1], &v[2], &v[3], &v[4]) != 5 || v[0] < 1 ||
                v[1] < 1 || v[2] < 1 || v[1] % v[2] != 0 || v[3] < 1 || v[4] < 1) {
                fprintf(stderr, "usage: bench-attention [-t THREADS] [-r REPS] [B,H,HKV,T,D ...] (H a multiple of HKV)\n");
                return 2;
            }
            *s = (Shape){v[0], v[1], v[2], v[3], v[4]};
            n_shapes++;
        }
    }
    if (threads < 1 || reps < 1) {
        fprintf(stderr, "bench-attention: -t and -r must be >= 1\n");
        return 2;
    }
    if (n_shapes == 0) {
        shapes[n_shapes++] = (Shape){2, 8, 8, 256, 64};
        shapes[n_shapes++] = (Shape){2, 8, 8, 1024, 64};
    }
    for (int i = 0; i < n_shapes; i++) {
        const Shape *s = &shapes[i];
        Result r[2];
        for (int fused = 0; fused < 2; fused++) {
            r[fused] = measure(s, fused, threads, reps);
            printf("{\"variant\": \"%s\", \"B\": %lld, \"H\": %lld, \"Hkv\": %lld, \"T\": %lld, \"D\": %lld, "
                   "\"threads\": %d, \"reps\": %d, \"best_s\": %.6f, \"median_s\": %.6f, \"planned_bytes\": %lld}\n",
                   fused ? "fused" : "unfused", (long long)s->B, (long long)s->H, (long long)s->Hkv, (long long)s->T,
                   (long long)s->D, threads, reps, r[fused].best, r[fused].median, (long long)r[fused].planned);
            fflush(stdout);
        }
        printf("# T=%lld: forward+backward best %.2f ms fused vs %.2f ms unfused (%.2fx); planned activation+scratch "
               "%.1f MiB vs %.1f MiB\n",
               (long long)s->T, 1e3 * r[1].best, 1e3 * r[0].best, r[0].best / r[1].best, r[1].planned / 1048576.0,
               r[0].planned / 1048576.0);
    }
    return 0;
}
