/* cuda.h: the CUDA backend's device side, free of LLVM and CUDA types. cu_program_build
 * turns a kernel program into one CUDA C translation unit (every loop kernel, the fused
 * attention and the head loss's row kernels) and, per function, the steps that run it:
 * launches of those kernels, GEMMs (cuBLAS) and pruning (on the host). The LLVM host code
 * (llvm_cuda.c) turns the steps into calls of the runtime's CUDA layer, nvrtc.c compiles
 * the source into cubins, and the emulation test (tests/unit/test_cuda.c) runs the same
 * steps with the source compiled for the host (tests/unit/cuda_emu.h). docs/cuda.md. */
#ifndef RELORAC_CUDA_H
#define RELORAC_CUDA_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cg.h"
#include "kernel.h"
#include "layout.h"

/* Growing text in the program's arena. */
typedef struct CuText {
    Arena *a;
    char *s;
    size_t len, cap;
} CuText;

void cu_text_init(CuText *t, Arena *a);
void cu_printf(CuText *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A kernel parameter, in the order of the __global__ function's parameters. */
typedef enum {
    CU_ARG_BUF,       /* T *: buffer `buf` + `i` elements */
    CU_ARG_STEP,      /* const int *: the @step buffer (the kernel reads the step on the device),
                         or workspace + 8 (a zero) when the program has none */
    CU_ARG_SEED,      /* unsigned long long: ctx->seed */
    CU_ARG_I32,       /* int: i */
    CU_ARG_I64,       /* long long: i */
    CU_ARG_F32,       /* float: f */
    CU_ARG_WORKSPACE, /* double *: the device workspace + i bytes (CuProgram.workspace_bytes) */
} CuArgKind;

typedef struct CuArg {
    CuArgKind kind;
    int buf;
    int64_t i;
    double f;
} CuArg;

typedef enum {
    CU_STEP_LAUNCH, /* kernels[kernel]<<<grid, block, smem>>>(args) on the stream */
    CU_STEP_GEMM,   /* gemm, row-major as KGemm, operands of their buffers' dtypes, f32 accumulation */
    CU_STEP_PRUNE,  /* a K_CALL: the runtime prunes on the host between two copies */
} CuStepKind;

typedef struct CuStep {
    CuStepKind kind;
    const Kernel *k; /* the kernel IR kernel it implements (locations, names) */
    /* CU_STEP_LAUNCH */
    int kernel;
    int64_t grid;
    int block, smem;
    CuArg *args;
    int n_args;
    /* CU_STEP_GEMM: buffers, element offsets, strides as KGemm */
    KGemm gemm;
} CuStep;

/* The steps of one KFunc (same index as KProgram.funcs). */
typedef struct CuFunc {
    const KFunc *f;
    CuStep *steps;
    int n_steps, cap_steps;
} CuFunc;

/* How a loop kernel maps onto threads (docs/cuda.md "Loop kernels"). */
typedef enum {
    CU_MAP_FLAT,  /* one thread per (row, column), grid-stride: elementwise kernels */
    CU_MAP_WARP,  /* a warp per row, columns strided over its lanes, warp-shuffle reductions */
    CU_MAP_BLOCK, /* a block per row, columns strided over its threads, block reductions */
    CU_MAP_SERIAL /* a thread per row, columns in order (stores that columns could share) */
} CuMap;

/* One __global__ function of the source. Kernels whose text is the same but for the name
 * (the same layer's kernel in every layer) are one kernel: the first one's. */
typedef struct CuKernel {
    const char *name;
    const Kernel *k;     /* the first kernel IR kernel it runs */
    const char *body;    /* its text with the name written KNAME (the identity of the kernel) */
    uint64_t hash;
    CuMap map;         /* loop kernels */
    bool rows_in_order; /* loop kernels: one group runs every row, in order */
    int block;         /* threads per block (its __launch_bounds__) */
    bool sync;         /* it uses barriers or warp shuffles */
    int smem;          /* dynamic shared memory, bytes */
    const char **params; /* the C type of each parameter (emulation wrappers) */
    int n_params;
} CuKernel;

typedef struct CuProgram {
    const KProgram *p;
    Diags *d;
    CgLayout layout;
    CuText src;         /* the CUDA C translation unit */
    CuKernel *kernels;
    int n_kernels, cap_kernels;
    CuFunc *funcs;      /* per KProgram.funcs */
    /* Device scratch the steps use (CU_ARG_WORKSPACE), zero-filled once: bytes [0, 8) the
     * head loss's running total (a double), [8, 12) a zero step for programs without @step. */
    int64_t workspace_bytes;
    int step_buf; /* the buffer of @step (i32[]), or -1: CU_ARG_STEP is then workspace + 8 */
} CuProgram;

/* Builds the source and the steps; NULL after diagnostics (a kernel the backend cannot
 * run, named at its location). */
CuProgram *cu_program_build(const KProgram *p, Diags *d);

/* The source as text (CgBackend.emit_device_source of the CUDA backend). */
bool cu_emit_source(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d);

/* cuda_kernels.c: the __global__ function of loop kernel k (appended to cp->src) and the
 * launch step that runs it. */
void cu_loop_emit(CuProgram *cp, CuFunc *cf, const Kernel *k);
/* cuda_fused.c: K_ATTENTION (forward, backward) and K_HEAD_LOSS as kernels and steps. */
void cu_attention_emit(CuProgram *cp, CuFunc *cf, const Kernel *k);
void cu_head_loss_emit(CuProgram *cp, CuFunc *cf, const Kernel *k);

/* cuda_program.c: the emulation entry points (tests/unit/cuda_emu.h): per kernel a
 * wrapper `void NAME_emu(void **params)` and the table relorac_emu_kernels[]. */
void cu_emulation_wrappers(const CuProgram *cp, CuText *out);

/* cuda_program.c: shared by the emitters. A kernel is drafted (cu_kernel_draft: its text
 * into draft->body written with the name KNAME, its parameters), then finished: appended to
 * the source under `name`, or, when a kernel with the same text exists, that kernel. */
void cu_kernel_draft(CuProgram *cp, CuKernel *draft, const Kernel *k, CuText *body);
void cu_param_add(CuProgram *cp, CuKernel *draft, const char *ctype);
int cu_kernel_finish(CuProgram *cp, CuKernel *draft, CuText *body, const char *name);
CuStep *cu_step_add(CuProgram *cp, CuFunc *cf, CuStepKind kind, const Kernel *k);
void cu_arg_add(CuProgram *cp, CuStep *s, CuArg a);
/* The C element type of a buffer: "float", "unsigned short" (bf16), "int". */
const char *cu_elem_type(IrDType t);
/* A float literal that C and CUDA read as the f32 nearest v. */
const char *cu_float_lit(Arena *a, double v);

/* ---- NVRTC (nvrtc.c) ---- */

/* What ptxas reported for one kernel on one architecture. */
typedef struct CuFigures {
    const char *kernel;
    int arch;            /* 80, 90 */
    int registers;
    int spill_stores, spill_loads; /* bytes */
    int stack;           /* bytes of stack frame (local memory) */
    int smem;            /* static shared memory, bytes */
} CuFigures;

/* The compiled images, one per architecture. */
typedef struct CuImage {
    int arch;
    unsigned char *cubin; /* arena */
    size_t size;
} CuImage;

typedef struct CuCompiled {
    CuImage *images;
    int n_images;
    CuFigures *figures; /* every kernel on every architecture */
    int n_figures;
} CuCompiled;

/* Compiles src for each architecture ("sm_80", "sm_90") with NVRTC, loaded from
 * nvrtc_lib (NULL: the usual names and RELORAC_CUDA_HOME-less defaults, see nvrtc.c).
 * False after a diagnostic: NVRTC missing (say so and how to point at it), or its log
 * with the numbered source lines it names. */
bool cu_compile(const CuProgram *cp, const char *const *archs, int n_archs, const char *nvrtc_lib,
                CuCompiled *out, Diags *d);
/* Whether NVRTC can be loaded (tests skip without it); *version gets major * 1000 + minor * 10. */
bool cu_nvrtc_available(const char *nvrtc_lib, int *version);

#endif
