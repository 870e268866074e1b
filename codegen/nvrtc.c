/* NVRTC: the CUDA C of a program compiled into one cubin per architecture, at build time,
 * with ptxas's register and spill figures of every kernel. libnvrtc is loaded with
 * dlopen when it is needed, so the compiler builds and runs without the CUDA toolkit and
 * only `--target cuda` asks for it. The few entry points used are declared here; when
 * <nvrtc.h> is at hand at build time (RELORAC_HAVE_NVRTC_H), their types are checked
 * against it. */
#include <ctype.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include "cuda.h"

#ifdef RELORAC_HAVE_NVRTC_H
#include <nvrtc.h>
#endif

typedef int NvResult; /* nvrtcResult: 0 is NVRTC_SUCCESS */
typedef struct NvProgram *NvProg;

typedef NvResult (*NvVersionFn)(int *major, int *minor);
typedef NvResult (*NvCreateFn)(NvProg *prog, const char *src, const char *name, int n_headers,
                               const char *const *headers, const char *const *include_names);
typedef NvResult (*NvCompileFn)(NvProg prog, int n_options, const char *const *options);
typedef NvResult (*NvSizeFn)(NvProg prog, size_t *size);
typedef NvResult (*NvGetFn)(NvProg prog, char *out);
typedef NvResult (*NvDestroyFn)(NvProg *prog);
typedef const char *(*NvErrorFn)(NvResult r);

#ifdef RELORAC_HAVE_NVRTC_H
/* our declarations are the header's, but for the opaque program type */
_Static_assert(_Generic(&nvrtcVersion, nvrtcResult (*)(int *, int *): 1, default: 0), "nvrtcVersion");
_Static_assert(_Generic(&nvrtcCompileProgram, nvrtcResult (*)(nvrtcProgram, int, const char *const *): 1, default: 0),
               "nvrtcCompileProgram");
_Static_assert(_Generic(&nvrtcGetCUBINSize, nvrtcResult (*)(nvrtcProgram, size_t *): 1, default: 0),
               "nvrtcGetCUBINSize");
_Static_assert(sizeof(nvrtcResult) == sizeof(NvResult) && NVRTC_SUCCESS == 0, "nvrtcResult");
#endif

/* The library and its entry points; one per compilation, closed when done. */
typedef struct Nvrtc {
    void *lib;
    NvVersionFn version;
    NvCreateFn create;
    NvCompileFn compile;
    NvSizeFn log_size, cubin_size;
    NvGetFn log, cubin;
    NvDestroyFn destroy;
    NvErrorFn error;
} Nvrtc;

/* Tries `lib` when given, else the usual sonames and the default toolkit's. */
static bool nvrtc_open(Nvrtc *n, const char *lib, char *why, size_t cap)
{
    memset(n, 0, sizeof *n);
    static const char *const names[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so",
                                        "/usr/local/cuda/lib64/libnvrtc.so"};
    /* RTLD_NODELETE: NVRTC brings libstdc++, whose exception pool must outlive dlclose
     * (unloaded, it reads as a leak to LeakSanitizer and is reloaded for every build) */
    if (lib)
        n->lib = dlopen(lib, RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    for (size_t i = 0; !lib && !n->lib && i < sizeof names / sizeof *names; i++)
        n->lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!n->lib) {
        snprintf(why, cap, "%s", dlerror());
        return false;
    }
    struct {
        void *slot;
        const char *name;
    } syms[] = {
        {&n->version, "nvrtcVersion"},         {&n->create, "nvrtcCreateProgram"},
        {&n->compile, "nvrtcCompileProgram"},  {&n->log_size, "nvrtcGetProgramLogSize"},
        {&n->log, "nvrtcGetProgramLog"},       {&n->cubin_size, "nvrtcGetCUBINSize"},
        {&n->cubin, "nvrtcGetCUBIN"},          {&n->destroy, "nvrtcDestroyProgram"},
        {&n->error, "nvrtcGetErrorString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *f = dlsym(n->lib, syms[i].name);
        if (!f) {
            snprintf(why, cap, "%s has no %s", lib ? lib : "libnvrtc", syms[i].name);
            dlclose(n->lib);
            n->lib = NULL;
            return false;
        }
        memcpy(syms[i].slot, &f, sizeof f); /* POSIX: a function pointer fits a void * */
    }
    return true;
}

bool cu_nvrtc_available(const char *nvrtc_lib, int *version)
{
    Nvrtc n;
    char why[256];
    if (!nvrtc_open(&n, nvrtc_lib, why, sizeof why))
        return false;
    int major = 0, minor = 0;
    bool ok = n.version(&major, &minor) == 0;
    if (version)
        *version = major * 1000 + minor * 10;
    dlclose(n.lib);
    return ok;
}

/* ---- the log ---- */

/* The NVRTC log with each error's source line quoted under it ("t.cu(123): error: ..."). */
static const char *annotate(Arena *a, const char *log, const char *src)
{
    CuText t;
    cu_text_init(&t, a);
    for (const char *p = log; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        cu_printf(&t, "%.*s\n", (int)len, p);
        char head[256];
        snprintf(head, sizeof head, "%.*s", (int)(len < sizeof head - 1 ? len : sizeof head - 1), p);
        const char *paren = strchr(head, '(');
        long line = paren ? strtol(paren + 1, NULL, 10) : 0;
        if (paren && line > 0 && strstr(head, "error")) {
            const char *s = src;
            for (long l = 1; l < line && s; l++) {
                s = strchr(s, '\n');
                s = s ? s + 1 : NULL;
            }
            if (s) {
                const char *se = strchr(s, '\n');
                cu_printf(&t, "  %5ld | %.*s\n", line, se ? (int)(se - s) : (int)strlen(s), s);
            }
        }
        p = e ? e + 1 : p + len;
    }
    return t.s ? t.s : "";
}

/* The number written just before `marker` in line ("12 bytes spill stores"), or 0. */
static int number_before(const char *line, const char *marker)
{
    const char *m = strstr(line, marker);
    if (!m)
        return 0;
    while (m > line && m[-1] == ' ')
        m--;
    while (m > line && isdigit((unsigned char)m[-1]))
        m--;
    return atoi(m);
}

/* ptxas -v, per entry function:
 *   ptxas info    : Compiling entry function 'NAME' for 'sm_90'
 *   ptxas info    : Function properties for NAME
 *   ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
 *   ptxas info    : Used 10 registers, used 1 barriers, 128 bytes smem */
static void parse_figures(Arena *a, const char *log, int arch, CuCompiled *out)
{
    CuFigures *cur = NULL;
    for (const char *p = log; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(len < sizeof line - 1 ? len : sizeof line - 1), p);
        const char *q;
        if ((q = strstr(line, "Compiling entry function '"))) {
            q += strlen("Compiling entry function '");
            const char *qe = strchr(q, '\'');
            out->figures = arena_grow(a, out->figures, (size_t)out->n_figures, (size_t)out->n_figures + 1,
                                      sizeof *out->figures);
            cur = &out->figures[out->n_figures++];
            memset(cur, 0, sizeof *cur);
            cur->kernel = arena_strndup(a, q, qe ? (size_t)(qe - q) : strlen(q));
            cur->arch = arch;
        } else if (cur && strstr(line, "bytes stack frame")) {
            cur->stack = number_before(line, "bytes stack frame");
            cur->spill_stores = number_before(line, "bytes spill stores");
            cur->spill_loads = number_before(line, "bytes spill loads");
        } else if (cur && (q = strstr(line, "Used "))) {
            cur->registers = atoi(q + 5);
            cur->smem = number_before(line, "bytes smem");
        }
        p = e ? e + 1 : p + len;
    }
}

bool cu_compile(const CuProgram *cp, const char *const *archs, int n_archs, const char *nvrtc_lib,
                CuCompiled *out, Diags *d)
{
    Arena *a = cp->p->arena;
    memset(out, 0, sizeof *out);
    Nvrtc n;
    char why[512];
    if (!nvrtc_open(&n, nvrtc_lib, why, sizeof why)) {
        diag_error(d, srcloc_none(),
                   "target = cuda needs NVRTC to compile its kernels, and it cannot be loaded (%s); install the CUDA "
                   "toolkit or name the library with --nvrtc PATH (or RELORAC_NVRTC)",
                   why);
        return false;
    }
    out->images = ARENA_ARRAY(a, CuImage, n_archs + 1);
    bool ok = true;
    for (int i = 0; ok && i < n_archs; i++) {
        const char *arch = archs[i];
        int num = strncmp(arch, "sm_", 3) == 0 ? atoi(arch + 3) : 0;
        if (num < 70) {
            diag_error(d, srcloc_none(), "unsupported CUDA architecture '%s' (expected sm_70 or above, e.g. sm_80, sm_90)",
                       arch);
            ok = false;
            break;
        }
        NvProg prog = NULL;
        NvResult r = n.create(&prog, cp->src.s, "relorac.cu", 0, NULL, NULL);
        if (r != 0) {
            diag_error(d, srcloc_none(), "NVRTC: cannot create a program: %s", n.error(r));
            ok = false;
            break;
        }
        const char *opts[] = {arena_sprintf(a, "--gpu-architecture=%s", arch), "--ptxas-options=-v",
                              "--std=c++17", "-DRELORAC_NVRTC"};
        r = n.compile(prog, 4, opts);
        size_t log_n = 0;
        n.log_size(prog, &log_n);
        char *log = arena_alloc(a, log_n + 1);
        n.log(prog, log);
        if (r != 0) {
            diag_error(d, srcloc_none(), "NVRTC could not compile the kernels for %s (%s):\n%s", arch, n.error(r),
                       annotate(a, log, cp->src.s));
            ok = false;
        } else {
            size_t size = 0;
            n.cubin_size(prog, &size);
            CuImage *img = &out->images[out->n_images++];
            img->arch = num;
            img->size = size;
            img->cubin = arena_alloc(a, size ? size : 1);
            n.cubin(prog, (char *)img->cubin);
            parse_figures(a, log, num, out);
        }
        n.destroy(&prog);
    }
    dlclose(n.lib);
    return ok;
}
