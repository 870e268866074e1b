/* cg.h: code generation. A backend turns a kernel program (ir/kernel.h) into a standalone
 * training binary: one native object that defines `const RtModel relorac_model`
 * (runtime/rt.h), linked with the runtime library. Backends are a table (CgBackend), one
 * per train.target, picked by name; the driver never names one. Each backend is files of
 * its own: cpu is llvm_kernels.c (host loops, BLAS), cuda is cuda_*.c (CUDA C), nvrtc.c
 * and llvm_cuda.c (host launches); both share the LLVM host module (llvm_host.c,
 * llvm_module.c). No LLVM or CUDA type appears here. */
#ifndef RELORAC_CG_H
#define RELORAC_CG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kernel.h"

typedef struct CgOptions {
    const char *cpu;         /* target CPU ("skylake-avx512"); NULL: the host CPU */
    const char *features;    /* target features; NULL: the host's when cpu is NULL, else "" */
    int opt_level;           /* 0: no IR optimisation; 1..3: default<On> (default 3 when 0 and
                                !no_opt) */
    bool no_opt;             /* skip the IR pipeline entirely (opt_level ignored) */
    const char *cc;          /* linker driver; NULL: "cc" */
    const char *runtime_lib; /* librelorac_rt.a; NULL: the build tree's (RELORAC_RUNTIME_LIB) */
    const char *link_args;   /* extra space-separated linker arguments, or NULL */
    bool keep_object;        /* keep OUT.o next to the executable */
    int64_t serial_below;    /* loop kernels with fewer elements run without rt_parallel_for;
                                0: 16384 */
    /* cuda */
    const char *const *archs;     /* GPU architectures ("sm_80"); NULL: sm_80 and sm_90 */
    int n_archs;
    const char *nvrtc;            /* libnvrtc to load; NULL: the usual names */
    const char *runtime_cuda_lib; /* librelorac_rt_cuda.a; NULL: the build tree's */
} CgOptions;

/* A backend: one value of train.target. */
typedef struct CgBackend {
    const char *name;    /* "cpu", "cuda" */
    const char *summary; /* one line for --help */
    /* p -> the executable out_path (the host object linked with the runtime). False after
     * diagnostics. */
    bool (*build_executable)(const KProgram *p, const CgOptions *opt, const char *out_path, Diags *d);
    /* The host module as LLVM text (optimised unless opt->no_opt). */
    bool (*emit_host_ir)(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d);
    /* The device code as source text (CUDA C), or NULL when the backend has none. */
    bool (*emit_device_source)(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d);
} CgBackend;

/* The backend of that name, or NULL. */
const CgBackend *cg_backend_find(const char *name);
/* Every backend, in the order --help lists them; *n gets the count. */
const CgBackend *const *cg_backend_list(int *n);

/* ---- the CPU backend's entry points (also used by tests) ---- */

/* Emits, optimises, verifies and compiles p into an object and links it with the runtime
 * (the object also defines main(), which calls rt_main). False after diagnostics. */
bool cg_build_executable(const KProgram *p, const CgOptions *opt, const char *out_path, Diags *d);
/* Only the object file (no main()). */
bool cg_emit_object(const KProgram *p, const CgOptions *opt, const char *obj_path, Diags *d);
/* Writes the module as LLVM text; optimised unless opt->no_opt. */
bool cg_emit_llvm_ir(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d);

/* In-process compilation (MCJIT) of the same module, for tests. The module references the
 * runtime symbols rt_parallel_for, rt_sgemm_strided, rt_sgemm_pair, rt_rng_normal,
 * rt_prune_magnitude, rt_prune_random, rt_attention_forward, rt_attention_backward,
 * rt_head_loss and libm; syms maps those the process does not export. */
typedef void (*CgFnPtr)(void);
typedef struct CgSymbol {
    const char *name;
    CgFnPtr fn; /* cast any function to CgFnPtr */
} CgSymbol;

typedef struct CgJit CgJit;
CgJit *cg_jit_create(const KProgram *p, const CgOptions *opt, const CgSymbol *syms, int n_syms,
                     Diags *d);
/* Address of a defined symbol: "relorac_model" or "relorac_fn_<func>", a host function
 * `float (RtCtx *ctx)` (rt.h RtFnPtr) that runs one KFunc; 0 when absent. */
uintptr_t cg_jit_lookup(CgJit *j, const char *name);
void cg_jit_destroy(CgJit *j);

/* The runtime pool a memory class lives in (enum RtPool). */
int cg_class_pool(IrMemClass c);

#endif
