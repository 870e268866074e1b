/* The LLVM module of a kernel program and what is done with it: types and runtime
 * declarations, the pool layout (layout.c), the target
 * machine for the host CPU (or --cpu), the new pass manager at default<O3>, verification in
 * ReturnStatus mode, object emission, linking with the runtime library through the system
 * `cc`, and MCJIT for tests. Each LLVM handle is owned by one struct and disposed there. */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <llvm-c/Analysis.h>
#include <llvm-c/Error.h>
#include <llvm-c/ExecutionEngine.h>
#include <llvm-c/Support.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>

#include "llvm_cg.h"

#ifndef RELORAC_RUNTIME_LIB
#define RELORAC_RUNTIME_LIB "librelorac_rt.a"
#endif
#ifndef RELORAC_RUNTIME_LINK_ARGS
#define RELORAC_RUNTIME_LINK_ARGS ""
#endif

/* ---- small helpers shared with the other files ---- */

LLVMValueRef cg_const_i64(CgCtx *c, int64_t v)
{
    return LLVMConstInt(c->t_i64, (unsigned long long)v, 1);
}

LLVMValueRef cg_const_i32(CgCtx *c, int32_t v)
{
    return LLVMConstInt(c->t_i32, (unsigned long long)(int64_t)v, 1);
}

LLVMValueRef cg_const_f32(CgCtx *c, double v)
{
    return LLVMConstReal(c->t_f32, (double)(float)v);
}

LLVMValueRef cg_const_str(CgCtx *c, const char *s)
{
    size_t n = strlen(s);
    LLVMValueRef init = LLVMConstStringInContext(c->llc, s, (unsigned)n, 0);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), ".str");
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetUnnamedAddress(gv, LLVMGlobalUnnamedAddr);
    return LLVMConstBitCast(gv, c->t_p8);
}

LLVMValueRef cg_const_bytes(CgCtx *c, const void *data, size_t n, const char *name)
{
    LLVMValueRef init = LLVMConstStringInContext(c->llc, data, (unsigned)n, 1);
    LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(init), name);
    LLVMSetInitializer(gv, init);
    LLVMSetGlobalConstant(gv, 1);
    LLVMSetLinkage(gv, LLVMPrivateLinkage);
    LLVMSetAlignment(gv, 16);
    return LLVMConstBitCast(gv, c->t_p8);
}

LLVMValueRef cg_buf_ptr(CgCtx *c, const CgFn *h, int buf)
{
    const CgBufLoc *l = &c->loc[buf];
    LLVMValueRef off = cg_const_i64(c, l->offset);
    return LLVMBuildInBoundsGEP2(c->b, c->t_i8, h->pools[l->pool], &off, 1, "");
}

LLVMValueRef cg_typed(CgCtx *c, LLVMValueRef p, LLVMTypeRef elem)
{
    return LLVMBuildBitCast(c->b, p, LLVMPointerType(elem, 0), "");
}

const char *cg_kernel_name(const Kernel *k)
{
    return k->name ? k->name : "?";
}

int64_t cg_kernel_rows(const Kernel *k)
{
    int64_t rows = 1;
    for (int i = 0; i < k->n_outer; i++)
        rows *= k->outer[i];
    return rows;
}

LLVMValueRef cg_intrinsic(CgCtx *c, const char *name, LLVMTypeRef ty, LLVMTypeRef *fty)
{
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    CG_ASSERT(id != 0);
    *fty = LLVMIntrinsicGetType(c->llc, id, &ty, 1);
    return LLVMGetIntrinsicDeclaration(c->mod, id, &ty, 1);
}

LLVMValueRef cg_declare(CgCtx *c, const char *name, LLVMTypeRef ret, LLVMTypeRef *params, unsigned n,
                        LLVMTypeRef *ty_out)
{
    *ty_out = LLVMFunctionType(ret, params, n, 0);
    return LLVMAddFunction(c->mod, name, *ty_out);
}

/* ---- context ---- */

static void layout(CgCtx *c)
{
    CgLayout l;
    if (!cg_layout(c->p, c->d, &l))
        c->failed = true;
    c->loc = l.loc;
    memcpy(c->pool_bytes, l.pool_bytes, sizeof c->pool_bytes);
}

/* LLVM's own diagnostics: errors become ours; warnings and remarks (a loop whose reductions
 * we allowed to reorder but that did not vectorise) are dropped. ctx is the Diags or NULL. */
static void on_llvm_diag(LLVMDiagnosticInfoRef info, void *ctx)
{
    if (LLVMGetDiagInfoSeverity(info) != LLVMDSError)
        return;
    char *msg = LLVMGetDiagInfoDescription(info);
    if (ctx)
        diag_error(ctx, srcloc_none(), "LLVM: %s", msg);
    else
        fprintf(stderr, "relorac: LLVM error: %s\n", msg);
    LLVMDisposeMessage(msg);
}

static void ctx_init(CgCtx *c, const CgTarget *t, const KProgram *p, const CgOptions *opt, Diags *d)
{
    memset(c, 0, sizeof *c);
    c->target = t;
    c->p = p;
    c->opt = opt;
    c->d = d;
    c->a = p->arena;
    c->llc = LLVMContextCreate();
    LLVMContextSetDiagnosticHandler(c->llc, on_llvm_diag, d);
    c->mod = LLVMModuleCreateWithNameInContext(p->m && p->m->name ? p->m->name : "relorac", c->llc);
    c->b = LLVMCreateBuilderInContext(c->llc);
    LLVMContextRef x = c->llc;
    c->t_void = LLVMVoidTypeInContext(x);
    c->t_i1 = LLVMInt1TypeInContext(x);
    c->t_i8 = LLVMInt8TypeInContext(x);
    c->t_i16 = LLVMInt16TypeInContext(x);
    c->t_i32 = LLVMInt32TypeInContext(x);
    c->t_i64 = LLVMInt64TypeInContext(x);
    c->t_f32 = LLVMFloatTypeInContext(x);
    c->t_f64 = LLVMDoubleTypeInContext(x);
    c->t_p8 = LLVMPointerType(c->t_i8, 0);
    c->t_pf32 = LLVMPointerType(c->t_f32, 0);
    c->t_pi32 = LLVMPointerType(c->t_i32, 0);
    /* struct RtCtx { const RtModel *model; void *pools[N]; uint64_t seed; int n_threads;
     *                RtThreadPool *threads; void *user; void *device; RtMirror *mirror; } */
    c->t_ctx = LLVMStructCreateNamed(x, "RtCtx");
    LLVMTypeRef fc[8] = {c->t_p8, LLVMArrayType(c->t_p8, RT_POOL_COUNT), c->t_i64, c->t_i32,
                         c->t_p8, c->t_p8, c->t_p8, c->t_p8};
    LLVMStructSetBody(c->t_ctx, fc, 8, 0);
    c->t_pctx = LLVMPointerType(c->t_ctx, 0);
    LLVMTypeRef kp[3] = {c->t_p8, c->t_i64, c->t_i64};
    c->t_kernel_fn = LLVMFunctionType(c->t_void, kp, 3, 0);
    c->t_host_fn = LLVMFunctionType(c->t_f32, &c->t_pctx, 1, 0);

    layout(c);
}

static void ctx_fini(CgCtx *c)
{
    if (c->b)
        LLVMDisposeBuilder(c->b);
    if (c->mod)
        LLVMDisposeModule(c->mod);
    if (c->llc)
        LLVMContextDispose(c->llc);
    memset(c, 0, sizeof *c);
}

/* ---- target, passes, verification ---- */

static bool targets_init(Diags *d)
{
    if (LLVMInitializeNativeTarget() || LLVMInitializeNativeAsmPrinter() ||
        LLVMInitializeNativeAsmParser()) {
        diag_error(d, srcloc_none(), "LLVM has no native target for this host");
        return false;
    }
    return true;
}

static LLVMTargetMachineRef target_machine_create(const CgOptions *opt, Diags *d)
{
    if (!targets_init(d))
        return NULL;
    char *triple = LLVMGetDefaultTargetTriple();
    char *err = NULL;
    LLVMTargetRef target;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        diag_error(d, srcloc_none(), "LLVM target '%s': %s", triple, err ? err : "unknown");
        LLVMDisposeMessage(err);
        LLVMDisposeMessage(triple);
        return NULL;
    }
    char *host_cpu = NULL, *host_features = NULL;
    const char *cpu = opt->cpu, *features = opt->features;
    if (!cpu) {
        host_cpu = LLVMGetHostCPUName();
        cpu = host_cpu;
        if (!features) {
            host_features = LLVMGetHostCPUFeatures();
            features = host_features;
        }
    }
    LLVMTargetMachineRef tm =
        LLVMCreateTargetMachine(target, triple, cpu, features ? features : "",
                                LLVMCodeGenLevelAggressive, LLVMRelocPIC, LLVMCodeModelDefault);
    if (!tm)
        diag_error(d, srcloc_none(), "LLVM cannot create a target machine for cpu '%s'", cpu);
    LLVMDisposeMessage(host_cpu);
    LLVMDisposeMessage(host_features);
    LLVMDisposeMessage(triple);
    return tm;
}

static bool verify(CgCtx *c, const char *when)
{
    char *msg = NULL;
    if (LLVMVerifyModule(c->mod, LLVMReturnStatusAction, &msg)) {
        diag_error(c->d, srcloc_none(), "internal error: LLVM module invalid %s: %s", when,
                   msg ? msg : "");
        LLVMDisposeMessage(msg);
        return false;
    }
    LLVMDisposeMessage(msg);
    return true;
}

/* Tells LLVM's vectoriser it may call glibc's libmvec (x86-64): exp, log, sin and cos
 * inside phase loops (softmax, SiLU, cross-entropy, RoPE) then run 8 lanes at a time
 * instead of one scalar call per element. LLVM keeps its command-line options in
 * process-wide state, parsed once per process; the flag below only guards that. The
 * linked binary gets -lmvec (cg_build_executable). */
static void use_libmvec(LLVMTargetMachineRef tm)
{
    static bool parsed; /* LLVM's options are process-global by its design */
    char *triple = LLVMGetTargetMachineTriple(tm);
    bool x86 = strncmp(triple, "x86_64", 6) == 0;
    LLVMDisposeMessage(triple);
    if (!x86 || parsed)
        return;
    const char *const argv[] = {"relorac", "-vector-library=LIBMVEC-X86"};
    LLVMParseCommandLineOptions(2, argv, NULL);
    parsed = true;
}

static bool optimize(CgCtx *c, LLVMTargetMachineRef tm)
{
    if (c->opt->no_opt)
        return true;
    use_libmvec(tm);
    int level = c->opt->opt_level > 0 && c->opt->opt_level <= 3 ? c->opt->opt_level : 3;
    char pipeline[32];
    snprintf(pipeline, sizeof pipeline, "default<O%d>", level);
    LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
    LLVMPassBuilderOptionsSetLoopVectorization(po, 1);
    LLVMPassBuilderOptionsSetSLPVectorization(po, 1);
    LLVMPassBuilderOptionsSetLoopInterleaving(po, 1);
    LLVMPassBuilderOptionsSetLoopUnrolling(po, 1);
    LLVMErrorRef err = LLVMRunPasses(c->mod, pipeline, tm, po);
    LLVMDisposePassBuilderOptions(po);
    if (err) {
        char *msg = LLVMGetErrorMessage(err);
        diag_error(c->d, srcloc_none(), "LLVM pass pipeline '%s': %s", pipeline, msg);
        LLVMDisposeErrorMessage(msg);
        return false;
    }
    return verify(c, "after optimisation");
}

/* Builds, verifies and optimises the module for tm; false after diagnostics. */
static bool module_build(CgCtx *c, LLVMTargetMachineRef tm, bool with_main)
{
    if (c->failed)
        return false;
    char *triple = LLVMGetTargetMachineTriple(tm);
    LLVMSetTarget(c->mod, triple);
    LLVMDisposeMessage(triple);
    LLVMTargetDataRef td = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(c->mod, td);
    LLVMDisposeTargetData(td);
    int errors = c->d->n_errors;
    if (!c->target->prepare(c) || c->d->n_errors > errors)
        return false;
    cg_host_emit(c, with_main);
    if (c->d->n_errors > errors)
        return false;
    /* the CPU travels with each function, so MCJIT (which picks a generic CPU) agrees */
    char *cpu = LLVMGetTargetMachineCPU(tm), *features = LLVMGetTargetMachineFeatureString(tm);
    for (LLVMValueRef f = LLVMGetFirstFunction(c->mod); f; f = LLVMGetNextFunction(f)) {
        if (LLVMIsDeclaration(f))
            continue;
        LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                LLVMCreateStringAttribute(c->llc, "target-cpu", 10, cpu,
                                                          (unsigned)strlen(cpu)));
        if (*features)
            LLVMAddAttributeAtIndex(f, LLVMAttributeFunctionIndex,
                                    LLVMCreateStringAttribute(c->llc, "target-features", 15,
                                                              features, (unsigned)strlen(features)));
    }
    /* the instruction sets the object needs: the runtime checks them against CPUID before
     * any generated code runs (runtime/cpu.c, rt_cpu_check) */
    if (with_main) {
        /* bf16 GEMMs (rt_sbgemm_strided) need AVX512-BF16: a CPU without it is refused at
         * start-up by name, also when --cpu left the feature string empty */
        const char *req = features;
        if (c->f_sbgemm && LLVMGetFirstUse(c->f_sbgemm) && !strstr(features, "+avx512bf16"))
            req = arena_sprintf(c->a, "%s%s+avx512bf16", features, *features ? "," : "");
        LLVMValueRef str = LLVMConstStringInContext(c->llc, req, (unsigned)strlen(req), 0);
        LLVMValueRef gv = LLVMAddGlobal(c->mod, LLVMTypeOf(str), "relorac_target_features");
        LLVMSetInitializer(gv, str);
        LLVMSetGlobalConstant(gv, 1);
    }
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    return verify(c, "as emitted") && optimize(c, tm);
}

/* ---- public API ---- */

static const CgOptions *opts_or_default(const CgOptions *opt, CgOptions *tmp)
{
    if (opt)
        return opt;
    memset(tmp, 0, sizeof *tmp);
    return tmp;
}

bool cg_module_text(const CgTarget *t, const KProgram *p, const CgOptions *opt, FILE *out, Diags *d)
{
    CgOptions dflt;
    opt = opts_or_default(opt, &dflt);
    LLVMTargetMachineRef tm = target_machine_create(opt, d);
    if (!tm)
        return false;
    CgCtx c;
    ctx_init(&c, t, p, opt, d);
    bool ok = module_build(&c, tm, false);
    if (ok) {
        char *text = LLVMPrintModuleToString(c.mod);
        fputs(text, out);
        LLVMDisposeMessage(text);
    }
    ctx_fini(&c);
    LLVMDisposeTargetMachine(tm);
    return ok;
}

bool cg_module_object(const CgTarget *t, const KProgram *p, const CgOptions *opt, const char *obj_path,
                      bool with_main, Diags *d)
{
    CgOptions dflt;
    opt = opts_or_default(opt, &dflt);
    LLVMTargetMachineRef tm = target_machine_create(opt, d);
    if (!tm)
        return false;
    CgCtx c;
    ctx_init(&c, t, p, opt, d);
    bool ok = module_build(&c, tm, with_main);
    if (ok) {
        char *err = NULL;
        /* the API takes a mutable path */
        char *path = arena_strdup(p->arena, obj_path);
        if (LLVMTargetMachineEmitToFile(tm, c.mod, path, LLVMObjectFile, &err)) {
            diag_error(d, srcloc_none(), "cannot write object '%s': %s", obj_path, err ? err : "");
            ok = false;
        }
        LLVMDisposeMessage(err);
    }
    ctx_fini(&c);
    LLVMDisposeTargetMachine(tm);
    return ok;
}

bool cg_emit_llvm_ir(const KProgram *p, const CgOptions *opt, FILE *out, Diags *d)
{
    return cg_module_text(&cg_target_cpu, p, opt, out, d);
}

bool cg_emit_object(const KProgram *p, const CgOptions *opt, const char *obj_path, Diags *d)
{
    return cg_module_object(&cg_target_cpu, p, opt, obj_path, false, d);
}

/* Splits space-separated args into argv (arena copies). */
static int split_args(Arena *a, const char *s, const char **argv, int max)
{
    int n = 0;
    while (s && *s && n < max) {
        while (*s == ' ')
            s++;
        const char *e = s;
        while (*e && *e != ' ')
            e++;
        if (e > s)
            argv[n++] = arena_strndup(a, s, (size_t)(e - s));
        s = e;
    }
    return n;
}

/* Runs argv[0] with argv, without a shell; true when it exits 0. */
static bool run_cmd(const char *const *argv, Diags *d)
{
    pid_t pid = fork();
    if (pid < 0) {
        diag_error(d, srcloc_none(), "cannot start '%s': %s", argv[0], strerror(errno));
        return false;
    }
    if (pid == 0) {
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "relorac: cannot run '%s': %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            diag_error(d, srcloc_none(), "waiting for '%s': %s", argv[0], strerror(errno));
            return false;
        }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        diag_error(d, srcloc_none(), "linking failed: '%s' exited with status %d", argv[0],
                   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return false;
    }
    return true;
}

bool cg_module_executable(const CgTarget *t, const KProgram *p, const CgOptions *opt, const char *out_path,
                          Diags *d)
{
    CgOptions dflt;
    opt = opts_or_default(opt, &dflt);
    const char *obj = arena_sprintf(p->arena, "%s.o", out_path);
    if (!cg_module_object(t, p, opt, obj, true, d))
        return false;
    const char *argv[80];
    int n = 0;
    argv[n++] = opt->cc ? opt->cc : "cc";
    argv[n++] = "-o";
    argv[n++] = out_path;
    argv[n++] = obj;
    const char *archive = t->archive ? t->archive(opt) : NULL;
    if (archive)
        argv[n++] = archive;
    argv[n++] = opt->runtime_lib ? opt->runtime_lib : RELORAC_RUNTIME_LIB;
    n += split_args(p->arena, RELORAC_RUNTIME_LINK_ARGS, argv + n, 16);
    n += split_args(p->arena, opt->link_args, argv + n, 32);
    for (int i = 0; t->libs && t->libs[i] && n < 78; i++)
        argv[n++] = t->libs[i];
    argv[n] = NULL;
    bool ok = run_cmd(argv, d);
    if (!opt->keep_object)
        unlink(obj);
    return ok;
}

bool cg_build_executable(const KProgram *p, const CgOptions *opt, const char *out_path, Diags *d)
{
    return cg_module_executable(&cg_target_cpu, p, opt, out_path, d);
}

/* ---- JIT ---- */

struct CgJit {
    LLVMContextRef llc;
    LLVMExecutionEngineRef ee; /* owns the module */
};

CgJit *cg_jit_create(const KProgram *p, const CgOptions *opt, const CgSymbol *syms, int n_syms,
                     Diags *d)
{
    CgOptions dflt;
    opt = opts_or_default(opt, &dflt);
    LLVMTargetMachineRef tm = target_machine_create(opt, d);
    if (!tm)
        return NULL;
#if defined(__x86_64__) && defined(__linux__)
    /* vectorised loops call libmvec (use_libmvec): make it visible to the JIT's
     * in-process symbol lookup, as -lmvec does for a linked binary */
    dlopen("libmvec.so.1", RTLD_NOW | RTLD_GLOBAL);
#endif
    CgCtx c;
    ctx_init(&c, &cg_target_cpu, p, opt, d);
    bool ok = module_build(&c, tm, false);
    LLVMDisposeTargetMachine(tm);
    if (!ok) {
        ctx_fini(&c);
        return NULL;
    }
    LLVMLinkInMCJIT();
    for (int i = 0; i < n_syms; i++) {
        void *addr; /* POSIX: function pointers fit in void * */
        memcpy(&addr, &syms[i].fn, sizeof addr);
        LLVMAddSymbol(syms[i].name, addr);
    }
    struct LLVMMCJITCompilerOptions mo;
    LLVMInitializeMCJITCompilerOptions(&mo, sizeof mo);
    mo.OptLevel = 2;
    LLVMExecutionEngineRef ee;
    char *err = NULL;
    if (LLVMCreateMCJITCompilerForModule(&ee, c.mod, &mo, sizeof mo, &err)) {
        diag_error(d, srcloc_none(), "MCJIT: %s", err ? err : "unknown error");
        LLVMDisposeMessage(err);
        ctx_fini(&c);
        return NULL;
    }
    c.mod = NULL; /* owned by ee now */
    LLVMContextSetDiagnosticHandler(c.llc, on_llvm_diag, NULL); /* d may not outlive the JIT */
    LLVMDisposeBuilder(c.b);
    CgJit *j = calloc(1, sizeof *j);
    CG_ASSERT(j);
    j->llc = c.llc;
    j->ee = ee;
    return j;
}

uintptr_t cg_jit_lookup(CgJit *j, const char *name)
{
    uint64_t addr = LLVMGetGlobalValueAddress(j->ee, name);
    if (!addr)
        addr = LLVMGetFunctionAddress(j->ee, name);
    return (uintptr_t)addr;
}

void cg_jit_destroy(CgJit *j)
{
    if (!j)
        return;
    LLVMDisposeExecutionEngine(j->ee);
    LLVMContextDispose(j->llc);
    free(j);
}
