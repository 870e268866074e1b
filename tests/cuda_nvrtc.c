/* cuda_nvrtc EXAMPLES_DIR [NAME...]: every kernel of every example (at its real shapes)
 * compiles with NVRTC for sm_80 and sm_90, and ptxas's figures of the kernels a training
 * step runs (train, norm and update of both phases) are printed: registers, spill stores
 * and loads, stack frame, shared memory. A hot kernel that spills to local memory fails
 * the check. Exits 77 (meson: skipped) when NVRTC cannot be loaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"
#include "fe.h"
#include "lower.h"
#include "pm.h"

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (!s || fread(s, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(s);
        return NULL;
    }
    s[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return s;
}

/* Whether CUDA kernel ki runs in a training step. */
static bool is_hot(const CuProgram *cp, int ki)
{
    static const char *const step_fns[] = {"train_full", "norm_full", "update_full",
                                           "train_lora", "norm_lora", "update_lora"};
    for (int f = 0; f < cp->p->n_funcs; f++) {
        bool step = false;
        for (size_t i = 0; i < sizeof step_fns / sizeof *step_fns; i++)
            step |= strcmp(cp->p->funcs[f]->name, step_fns[i]) == 0;
        for (int s = 0; step && s < cp->funcs[f].n_steps; s++)
            if (cp->funcs[f].steps[s].kind == CU_STEP_LAUNCH && cp->funcs[f].steps[s].kernel == ki)
                return true;
    }
    return false;
}

static const CuFigures *figures_of(const CuCompiled *cc, const char *kernel, int arch)
{
    for (int i = 0; i < cc->n_figures; i++)
        if (cc->figures[i].arch == arch && strcmp(cc->figures[i].kernel, kernel) == 0)
            return &cc->figures[i];
    return NULL;
}

static const char *map_name(const CuKernel *k)
{
    if (k->k->kind == K_ATTENTION)
        return k->k->attn.backward ? "attn-bwd" : "attn-fwd";
    if (k->k->kind == K_HEAD_LOSS)
        return "head-loss";
    return (const char *[]){"flat", "warp", "block", "serial"}[k->map];
}

/* Compiles one example; returns the number of failures. */
static int check(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.relora", dir, name);
    size_t len;
    char *text = slurp(path, &len);
    if (!text) {
        fprintf(stderr, "cuda_nvrtc: cannot read %s\n", path);
        return 1;
    }
    Arena a;
    arena_init(&a);
    Diags d;
    diag_init(&d, &a);
    FeOptions opt = {0};
    const Spec *spec = fe_load_spec_buffer(&a, &d, path, text, len, &opt);
    IrModule *m = spec ? fe_lower(&a, &d, spec) : NULL;
    PassCtx pc = {&a, &d, m, PROP_LOWERED};
    PassOptions po = {0};
    KProgram *p = m && pass_pipeline_run(&pc, &po) ? k_program_build(&a, &d, m) : NULL;
    CuProgram *cp = p ? cu_program_build(p, &d) : NULL;
    static const char *const archs[] = {"sm_80", "sm_90"};
    CuCompiled cc;
    bool ok = cp && cu_compile(cp, archs, 2, NULL, &cc, &d);
    int failures = 0;
    if (!ok) {
        diag_print(&d, stderr, false);
        printf("FAIL %s: the CUDA C does not compile\n", name);
        failures++;
    } else {
        int max_regs = 0, hot = 0;
        printf("%s: %d CUDA kernels, cubins %zu (sm_80) and %zu (sm_90) bytes\n", name, cp->n_kernels,
               cc.images[0].size, cc.images[1].size);
        printf("  %-46s %-9s %5s | %4s %5s %5s %5s | %4s %5s %5s %5s\n", "hot kernel", "shape", "block", "r80",
               "st80", "ld80", "smem", "r90", "st90", "ld90", "smem");
        for (int i = 0; i < cp->n_kernels; i++) {
            const CuKernel *k = &cp->kernels[i];
            const CuFigures *f8 = figures_of(&cc, k->name, 80), *f9 = figures_of(&cc, k->name, 90);
            if (!f8 || !f9) {
                printf("FAIL %s: no ptxas figures for %s\n", name, k->name);
                failures++;
                continue;
            }
            max_regs = f8->registers > max_regs ? f8->registers : max_regs;
            if (!is_hot(cp, i))
                continue;
            hot++;
            printf("  %-46s %-9s %5d | %4d %5d %5d %5d | %4d %5d %5d %5d\n", k->name, map_name(k), k->block,
                   f8->registers, f8->spill_stores, f8->spill_loads, f8->smem + k->smem, f9->registers,
                   f9->spill_stores, f9->spill_loads, f9->smem + k->smem);
            if (f8->spill_stores || f8->spill_loads || f9->spill_stores || f9->spill_loads) {
                printf("FAIL %s: hot kernel %s spills to local memory\n", name, k->name);
                failures++;
            }
        }
        printf("  %d hot kernels; at most %d registers in any kernel (sm_80)\n", hot, max_regs);
    }
    arena_fini(&a);
    free(text);
    return failures;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: cuda_nvrtc EXAMPLES_DIR [NAME...]\n");
        return 2;
    }
    int version = 0;
    if (!cu_nvrtc_available(NULL, &version)) {
        printf("NVRTC cannot be loaded: skipped (install the CUDA toolkit to run this check)\n");
        return 77;
    }
    printf("NVRTC %d.%d\n", version / 1000, version % 1000 / 10);
    static const char *const all[] = {"tiny", "llama-60m", "llama-130m", "llama-250m", "llama-350m", "llama-1b3",
                                      "gpt2-small", "parallel"};
    int failures = 0;
    if (argc > 2)
        for (int i = 2; i < argc; i++)
            failures += check(argv[1], argv[i]);
    else
        for (size_t i = 0; i < sizeof all / sizeof *all; i++)
            failures += check(argv[1], all[i]);
    printf("%s\n", failures ? "FAILED" : "all examples compile for sm_80 and sm_90; no hot kernel spills");
    return failures ? 1 : 0;
}
