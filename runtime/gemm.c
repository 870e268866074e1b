/* The GEMM engine behind rt_sgemm: BLIS's micro-kernel for this CPU, driven by our own loops
 * on the runtime's thread pool. Why not call a whole library GEMM: cutting a GEMM into
 * independent single-threaded library calls re-packs the shared operand for every call (21%
 * of the sgemm time in a perf profile of the dim-512 step, 64-row blocks), and a library's
 * own threads either spin beside our pool (OpenBLAS; oneDNN's and BLIS's collapse when
 * another process holds a CPU, bench/RESULTS.md) or may split the reduction dimension, which
 * makes results depend on the thread count. Here each operand is packed once per GEMM and
 * the pool splits only rows or columns of C.
 *
 * The loops are BLIS's (Van Zee & van de Geijn, "BLIS: A Framework for Rapidly Instantiating
 * BLAS Functionality", TOMS 2015): for each KC-slice of k, MR x KC and KC x NR panels feed a
 * micro-kernel that updates an MR x NR tile of C. Every element of C is computed by the same
 * sequence of micro-kernel calls (k-slices in order, beta on the first only) whatever thread
 * or path computes it, so the result does not depend on --threads.
 *
 * The library is loaded with dlopen: BLIS picks its kernel set once, at its first use, from
 * CPUID and the brand string, and falls back to AVX2 kernels when it cannot tell an AVX-512
 * part's FMA-unit count (a KVM guest's "Intel(R) Xeon(R) Processor"). We check its choice
 * against CPUID (rt_gemm_core_remedy) and, when it is wrong, reload it with BLIS_ARCH_TYPE
 * set. Without BLIS we fall back to OpenBLAS's cblas_sgemm (same check, OPENBLAS_CORETYPE),
 * split over the pool in fixed 64-row blocks. */
#include "rt_internal.h"

#include <blis.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define GEMM_AVX_PACK 1
#endif

enum { GEMM_BLIS = 1, GEMM_OPENBLAS = 2 };
enum { ROWS_OPENBLAS = 64 };       /* OpenBLAS fallback: fixed output-row blocks */
enum { SHARED_BYTES = 16 << 20 };  /* a pre-packed shared operand is cut to this size */

typedef void (*SgemmUkr)(dim_t m, dim_t n, dim_t k, float *alpha, float *a, float *b,
                         float *beta, float *c, inc_t rs_c, inc_t cs_c, auxinfo_t *data,
                         cntx_t *cntx);
typedef void (*CblasSgemm)(int order, int ta, int tb, int m, int n, int k, float alpha,
                           const float *a, int lda, const float *b, int ldb, float beta,
                           float *c, int ldc);

/* One part's packing buffers: `own` holds the panels of the operand this part splits,
 * `shared` a whole pre-packed operand (part 0's serves all parts of a single GEMM). */
typedef struct {
    float *own, *shared;
    size_t own_cap, shared_cap; /* floats */
} Scratch;

struct RtGemm {
    int kind;
    void *dl;
    cntx_t *cntx;
    SgemmUkr ukr;
    CblasSgemm cblas;
    int mr, nr, mc, kc, nc;
    bool c_rows; /* the micro-kernel prefers row-stored C tiles */
    bool avx;    /* pack with 8x8 AVX transposes */
    int n_parts;
    Scratch *scratch; /* [n_parts] */
    atomic_flag busy;  /* rt_gemm_acquire */
    bool trace;        /* RELORAC_GEMM_TRACE set: one line per GEMM to stderr (gemm_trace) */
    char desc[160];
    char note[384];
};

/* ---- which kernels ---- */

/* Kernel-set names per library, best first, with what each needs. */
typedef struct {
    const char *core;
    int isa; /* 3 AVX-512, 2 AVX2+FMA, 1 AVX, 0 older */
} Core;

static const Core blis_cores[] = {
    {"skx", 3}, {"knl", 3}, {"zen3", 2}, {"zen2", 2}, {"zen", 2}, {"haswell", 2},
    {"excavator", 2}, {"steamroller", 1}, {"piledriver", 1}, {"bulldozer", 1},
    {"sandybridge", 1}, {"penryn", 0}, {"generic", 0},
};
static const Core openblas_cores[] = {
    {"SkylakeX", 3}, {"Cooperlake", 3}, {"SapphireRapids", 3}, {"Haswell", 2}, {"Zen", 2},
    {"Excavator", 2}, {"Steamroller", 1}, {"Piledriver", 1}, {"Bulldozer", 1},
    {"Sandybridge", 1}, {"Nehalem", 0}, {"Core2", 0}, {"Penryn", 0}, {"Dunnington", 0},
    {"Prescott", 0}, {"Barcelona", 0}, {"Opteron", 0}, {"Atom", 0}, {"Katmai", 0},
};

static int cpu_isa_level(const RtCpu *cpu)
{
    const char *isa = rt_cpu_isa(cpu);
    return !strcmp(isa, "AVX-512") ? 3 : !strcmp(isa, "AVX2+FMA") ? 2 : !strcmp(isa, "AVX") ? 1 : 0;
}

static int core_isa(const Core *t, int n, const char *core)
{
    for (int i = 0; i < n; i++)
        if (!strcasecmp(t[i].core, core))
            return t[i].isa;
    return -1; /* a name this table does not know (a newer library): trust it */
}

const char *rt_gemm_core_remedy(const char *lib, const char *core, const RtCpu *cpu)
{
    bool blis = !strcmp(lib, "blis");
    const Core *t = blis ? blis_cores : openblas_cores;
    int n = blis ? (int)(sizeof blis_cores / sizeof *blis_cores)
                 : (int)(sizeof openblas_cores / sizeof *openblas_cores);
    int have = cpu_isa_level(cpu), got = core_isa(t, n, core ? core : "");
    if (have < 2 || got < 0 || got >= have)
        return NULL; /* nothing better exists for this CPU, or the library knows better */
    bool amd = !strcmp(cpu->vendor, "AuthenticAMD") || !strcmp(cpu->vendor, "HygonGenuine");
    if (have == 3)
        return blis ? "skx" : "SkylakeX";
    if (!blis)
        return amd ? "Zen" : "Haswell";
    if (!amd)
        return "haswell";
    return cpu->family >= 0x19 ? "zen3" : cpu->family == 0x17 && cpu->model >= 0x30 ? "zen2" : "zen";
}

/* ---- loading ---- */

static void *sym(void *dl, const char *name)
{
    return dl ? dlsym(dl, name) : NULL;
}

#define LOAD_FN(dst, dl, name) \
    do { \
        void *p_ = sym(dl, name); \
        memcpy(&(dst), &p_, sizeof(dst)); \
    } while (0)

/* Opens libblis and initialises it; returns its kernel-set name in *arch. */
static void *blis_open(const char **arch)
{
    void *dl = dlopen("libblis.so.4", RTLD_NOW | RTLD_LOCAL);
    void (*init)(void);
    arch_t (*query)(void);
    const char *(*name)(arch_t);
    LOAD_FN(init, dl, "bli_init");
    LOAD_FN(query, dl, "bli_arch_query_id");
    LOAD_FN(name, dl, "bli_arch_string");
    if (!init || !query || !name) {
        if (dl)
            dlclose(dl);
        return NULL;
    }
    init();
    *arch = name(query());
    return dl;
}

/* Keeps the library mapped until the process exits: BLIS's contexts and OpenBLAS's
 * threads outlive any one engine, and another engine may be using them. */
static void *keep_loaded(void *dl, const char *soname)
{
    void *again = dlopen(soname, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD | RTLD_NODELETE);
    if (again)
        dlclose(again);
    return dl;
}

/* Unloads a library we just loaded and initialised for a look at its choice. */
static void blis_close(void *dl)
{
    void (*fini)(void);
    LOAD_FN(fini, dl, "bli_finalize");
    if (fini)
        fini();
    dlclose(dl);
}

/* The BLIS arch id named `core` (ids are this library build's arch_t values). */
static int blis_arch_id(void *dl, const char *core)
{
    const char *(*name)(arch_t);
    LOAD_FN(name, dl, "bli_arch_string");
    for (int id = 0; name && id < BLIS_NUM_ARCHS; id++)
        if (!strcmp(name((arch_t)id), core))
            return id;
    return -1;
}

static bool load_blis(RtGemm *g, const RtCpu *cpu)
{
    const char *arch = NULL;
    void *dl = blis_open(&arch);
    if (!dl)
        return false;
    const char *user = getenv("BLIS_ARCH_TYPE");
    const char *want = rt_gemm_core_remedy("blis", arch, cpu);
    if (want && user && *user) {
        snprintf(g->note, sizeof g->note,
                 "BLIS_ARCH_TYPE=%s selects BLIS's %s kernels, but this CPU has %s", user, arch,
                 rt_cpu_isa(cpu));
    } else if (want) {
        int id = blis_arch_id(dl, want);
        char was[32]; /* arch points into the library, which the reload unmaps */
        snprintf(was, sizeof was, "%s", arch);
        if (id >= 0) {
            char v[16];
            snprintf(v, sizeof v, "%d", id);
            blis_close(dl);
            setenv("BLIS_ARCH_TYPE", v, 1); /* read once, by BLIS's initialisation */
            dl = blis_open(&arch);
            unsetenv("BLIS_ARCH_TYPE");
            if (!dl)
                return false;
        }
        if (strcmp(arch, want) != 0)
            snprintf(g->note, sizeof g->note,
                     "BLIS picked its %s kernels on this %s CPU and could not be made to use %s",
                     arch, rt_cpu_isa(cpu), want);
        else
            snprintf(g->note, sizeof g->note,
                     "BLIS picked its %s kernels on this %s CPU; using its %s kernels", was,
                     rt_cpu_isa(cpu), arch);
    }
    dl = keep_loaded(dl, "libblis.so.4");
    cntx_t *(*query_cntx)(void);
    LOAD_FN(query_cntx, dl, "bli_gks_query_cntx");
    char *(*version)(void);
    LOAD_FN(version, dl, "bli_info_get_version_str");
    cntx_t *cntx = query_cntx ? query_cntx() : NULL;
    if (!cntx) {
        dlclose(dl);
        return false;
    }
    g->kind = GEMM_BLIS;
    g->dl = dl;
    g->cntx = cntx;
    void_fp ukr = bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx);
    memcpy(&g->ukr, &ukr, sizeof g->ukr);
    g->mr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, cntx);
    g->nr = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, cntx);
    g->mc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MC, cntx);
    g->kc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_KC, cntx);
    g->nc = (int)bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NC, cntx);
    g->c_rows = bli_cntx_l3_nat_ukr_prefers_rows_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx);
    g->mc = g->mc / g->mr * g->mr;
    g->nc = g->nc / g->nr * g->nr;
    snprintf(g->desc, sizeof g->desc, "BLIS %s %s micro-kernel (%dx%d), packed once per GEMM",
             version ? version() : "?", arch, g->mr, g->nr);
    return true;
}

static bool load_openblas(RtGemm *g, const RtCpu *cpu)
{
    void *dl = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
    char *(*corename)(void);
    LOAD_FN(corename, dl, "openblas_get_corename");
    LOAD_FN(g->cblas, dl, "cblas_sgemm");
    if (!corename || !g->cblas) {
        if (dl)
            dlclose(dl);
        return false;
    }
    const char *core = corename();
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *want = rt_gemm_core_remedy("openblas", core, cpu);
    if (want && !(user && *user)) {
        char was[32];
        snprintf(was, sizeof was, "%s", core);
        dlclose(dl);
        setenv("OPENBLAS_CORETYPE", want, 1);
        dl = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL);
        unsetenv("OPENBLAS_CORETYPE");
        LOAD_FN(corename, dl, "openblas_get_corename");
        LOAD_FN(g->cblas, dl, "cblas_sgemm");
        if (!corename || !g->cblas) {
            if (dl)
                dlclose(dl);
            return false;
        }
        core = corename();
        if (strcasecmp(core, want))
            snprintf(g->note, sizeof g->note, "OpenBLAS picked its %s kernels on this %s CPU "
                     "and could not be made to use %s", was, rt_cpu_isa(cpu), want);
        else
            snprintf(g->note, sizeof g->note, "OpenBLAS picked its %s kernels on this %s CPU; "
                     "using its %s kernels", was, rt_cpu_isa(cpu), core);
    } else if (want) {
        snprintf(g->note, sizeof g->note, "OPENBLAS_CORETYPE=%s selects OpenBLAS's %s kernels, "
                 "but this CPU has %s", user, core, rt_cpu_isa(cpu));
    }
    dl = keep_loaded(dl, "libopenblas.so.0");
    void (*set_threads)(int);
    LOAD_FN(set_threads, dl, "openblas_set_num_threads");
    if (set_threads)
        set_threads(1); /* its own workers would spin beside the pool */
    g->kind = GEMM_OPENBLAS;
    g->dl = dl;
    snprintf(g->desc, sizeof g->desc, "OpenBLAS %s kernels, single-threaded calls on %d-row "
             "blocks (BLIS not found: install libblis4)", core, ROWS_OPENBLAS);
    return true;
}

/* The process's GEMM library, loaded and checked once (BLIS fixes its kernel set once per
 * process, and loading it costs milliseconds) and read-only afterwards: the one piece of
 * file-scope state here, as the library itself is process-wide. Engines copy its fields. */
static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static RtGemm default_lib;
static bool default_ok;

static bool load_lib(RtGemm *g, const char *lib)
{
    RtCpu cpu;
    rt_cpu_detect(&cpu);
    g->avx = rt_cpu_has(&cpu, "avx");
    bool any = !lib;
    return ((any || !strcmp(lib, "blis")) && load_blis(g, &cpu)) ||
           ((any || !strcmp(lib, "openblas")) && load_openblas(g, &cpu));
}

static void default_load(void)
{
    default_ok = load_lib(&default_lib, NULL);
    default_lib.dl = NULL; /* kept loaded for the process (keep_loaded); no engine closes it */
}

/* Copies the default library's fields into g; false when there is none. */
static bool default_copy(RtGemm *g)
{
    pthread_once(&default_once, default_load);
    if (!default_ok)
        return false;
    memcpy(g->desc, default_lib.desc, sizeof g->desc);
    memcpy(g->note, default_lib.note, sizeof g->note);
    g->kind = default_lib.kind;
    g->dl = NULL;
    g->cntx = default_lib.cntx;
    g->ukr = default_lib.ukr;
    g->cblas = default_lib.cblas;
    g->mr = default_lib.mr;
    g->nr = default_lib.nr;
    g->mc = default_lib.mc;
    g->kc = default_lib.kc;
    g->nc = default_lib.nc;
    g->c_rows = default_lib.c_rows;
    g->avx = default_lib.avx;
    return true;
}

bool rt_gemm_create(RtGemm **out, int n_parts, RtError *e)
{
    return rt_gemm_create_lib(out, n_parts, NULL, e);
}

bool rt_gemm_create_lib(RtGemm **out, int n_parts, const char *lib, RtError *e)
{
    *out = NULL;
    RtGemm *g = calloc(1, sizeof *g);
    if (!g)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    atomic_flag_clear(&g->busy);
    const char *trace = getenv("RELORAC_GEMM_TRACE");
    g->trace = trace && *trace && strcmp(trace, "0") != 0;
    g->n_parts = n_parts > 0 ? n_parts : 1;
    g->scratch = calloc((size_t)g->n_parts, sizeof *g->scratch);
    if (!g->scratch) {
        free(g);
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    if (!(lib ? load_lib(g, lib) : default_copy(g))) {
        rt_gemm_destroy(g);
        return rt_err(e, RT_ERR_GEMM, "no GEMM library: %s", !lib ? "neither libblis.so.4 nor "
                      "libopenblas.so.0 can be loaded (install libblis4)"
                      : "cannot load the one asked for");
    }
    *out = g;
    return true;
}

void rt_gemm_destroy(RtGemm *g)
{
    if (!g)
        return;
    if (g->scratch)
        for (int i = 0; i < g->n_parts; i++) {
            free(g->scratch[i].own);
            free(g->scratch[i].shared);
        }
    free(g->scratch);
    if (g->dl)
        dlclose(g->dl); /* only drops our reference: see keep_loaded */
    free(g);
}

bool rt_gemm_acquire(RtGemm *g)
{
    return !atomic_flag_test_and_set(&g->busy);
}

void rt_gemm_release(RtGemm *g)
{
    atomic_flag_clear(&g->busy);
}

const char *rt_gemm_describe(const RtGemm *g)
{
    return g->desc;
}

const char *rt_gemm_note(const RtGemm *g)
{
    return g->note[0] ? g->note : NULL;
}

/* ---- the BLIS loops ---- */

/* An operand of the micro-kernel loops read from one or two matrices: element (r, p) (r
 * along m' or n', p along k) at p[0] + r*sr[0] + p*sk[0], except rows r >= cut_r (when
 * cut_r > 0), read at p[1] + (r - cut_r)*sr[1] + p*sk[1], or k-columns p >= cut_k (when
 * cut_k > 0), read at p[1] + r*sr[1] + (p - cut_k)*sk[1]. Two sources along the rows put
 * two GEMMs sharing the other operand into one (rt_gemm_run_pair). */
typedef struct {
    const float *p[2];
    int64_t sr[2], sk[2];
    int64_t cut_r, cut_k;
} Src;

/* The problem in micro-kernel terms: C'[m', n'] (+)= alpha X[m', k] Y[k, n'], element
 * (i, j) of C' at c + i*rs + j*cs, X(i, p) and Y(j, p) read through their Src. With
 * cut_k > 0 the k-slices end at cut_k, so no slice reads both sources. */
typedef struct {
    const RtGemm *g;
    int64_t m, n, k, cut_k;
    float alpha, beta;
    Src xs, ys;
    float *c;
    int64_t rs, cs;
    bool split_m;      /* the parts split m' (Y pre-packed) rather than n' (X pre-packed) */
    int64_t s0, s1;    /* the pre-packed chunk of the other dimension */
    const float *pre;  /* its panels */
    Scratch *scratch;  /* one per part */
    int parts;
} Job;

static int64_t round_up(int64_t v, int64_t to)
{
    return (v + to - 1) / to * to;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* Floats one packed panel of r rows and kc columns takes (a multiple of 64 bytes). */
static int64_t panel_floats(int64_t r, int64_t kc)
{
    return round_up(r * kc, 16);
}

#ifdef GEMM_AVX_PACK
/* d[q*R + r] = s[r*sr + q] for r, q < 8: eight rows of eight k-values become eight k-steps
 * of eight rows (the unpack/shuffle/permute transpose). */
__attribute__((target("avx"))) static void transpose8(const float *s, int64_t sr, float *d,
                                                       int64_t R)
{
    __m256 r0 = _mm256_loadu_ps(s), r1 = _mm256_loadu_ps(s + sr),
           r2 = _mm256_loadu_ps(s + 2 * sr), r3 = _mm256_loadu_ps(s + 3 * sr),
           r4 = _mm256_loadu_ps(s + 4 * sr), r5 = _mm256_loadu_ps(s + 5 * sr),
           r6 = _mm256_loadu_ps(s + 6 * sr), r7 = _mm256_loadu_ps(s + 7 * sr);
    __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
           t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
           t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
           t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
           u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
           u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
           u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + R, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * R, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * R, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * R, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * R, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * R, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * R, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#endif

#ifdef GEMM_AVX_PACK
/* d[q*R + r] = s[r*sr + q] for r, q < 4 (SSE's 4x4 transpose): the rows of a panel left
 * after the 8x8 blocks (4 of NR = 12). */
static void transpose4(const float *s, int64_t sr, float *d, int64_t R)
{
    __m128 r0 = _mm_loadu_ps(s), r1 = _mm_loadu_ps(s + sr), r2 = _mm_loadu_ps(s + 2 * sr),
           r3 = _mm_loadu_ps(s + 3 * sr);
    _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
    _mm_storeu_ps(d, r0);
    _mm_storeu_ps(d + R, r1);
    _mm_storeu_ps(d + 2 * R, r2);
    _mm_storeu_ps(d + 3 * R, r3);
}

/* d[0..n) = s[0..n), d[n..R) = 0, in 8-float AVX moves (a panel row of an m- or
 * n-contiguous operand). */
__attribute__((target("avx"))) static void copy_row(float *d, const float *s, int64_t n, int64_t R)
{
    int64_t r = 0;
    for (; r + 8 <= n; r += 8)
        _mm256_storeu_ps(d + r, _mm256_loadu_ps(s + r));
    for (; r < n; r++)
        d[r] = s[r];
    for (; r < R; r++)
        d[r] = 0.0f;
}
#endif

/* Packs rows [r0, r0 + rows) x k-columns [p0, p0 + kc) of a matrix whose element (i, p) is
 * src[i*sr + p*sk] into ceil(rows / R) panels at dst: panel q holds element (r0 + q*R + r,
 * p0 + p) at dst[q*ps + p*R + r], rows past the end zero-filled. Only data moves, so the
 * AVX path gives the same panels. Why vector code: with plain loops the copies of an
 * m-contiguous operand and the rows left after the 8x8 transposes (4 of each 12-row panel)
 * stayed scalar, and were 90% of pack()'s samples in a perf profile of dim512's shapes. */
static void pack(float *dst, const float *src, int64_t sr, int64_t sk, int64_t r0, int64_t rows,
                 int64_t p0, int64_t kc, int R, bool avx)
{
    int64_t ps = panel_floats(R, kc);
    for (int64_t q = 0; q * R < rows; q++) {
        float *d = dst + q * ps;
        int64_t n = min64(R, rows - q * R);
        const float *s = src + (r0 + q * R) * sr + p0 * sk;
        if (sr == 1) {
#ifdef GEMM_AVX_PACK
            if (avx) {
                for (int64_t p = 0; p < kc; p++)
                    copy_row(d + p * R, s + p * sk, n, R);
                continue;
            }
#endif
            for (int64_t p = 0; p < kc; p++) {
                const float *sp = s + p * sk;
                float *dp = d + p * R;
                for (int64_t r = 0; r < n; r++)
                    dp[r] = sp[r];
                for (int64_t r = n; r < R; r++)
                    dp[r] = 0.0f;
            }
        } else {
            int64_t r = 0;
#ifdef GEMM_AVX_PACK
            if (avx && sk == 1) {
                for (; r + 8 <= n; r += 8) {
                    int64_t p = 0;
                    for (; p + 8 <= kc; p += 8)
                        transpose8(s + r * sr + p, sr, d + p * R + r, R);
                    for (; p < kc; p++)
                        for (int64_t i = r; i < r + 8; i++)
                            d[p * R + i] = s[i * sr + p];
                }
                for (; r + 4 <= n; r += 4) {
                    int64_t p = 0;
                    for (; p + 4 <= kc; p += 4)
                        transpose4(s + r * sr + p, sr, d + p * R + r, R);
                    for (; p < kc; p++)
                        for (int64_t i = r; i < r + 4; i++)
                            d[p * R + i] = s[i * sr + p];
                }
            }
#else
            (void)avx;
#endif
            for (; r < n; r++) {
                const float *sp = s + r * sr;
                for (int64_t p = 0; p < kc; p++)
                    d[p * R + r] = sp[p * sk];
            }
            for (r = n; r < R; r++)
                for (int64_t p = 0; p < kc; p++)
                    d[p * R + r] = 0.0f;
        }
    }
}

/* Width of the k-slice starting at p0 (of k, cut at cut_k when cut_k > 0). */
static int64_t slice_kc(const RtGemm *g, int64_t k, int64_t cut_k, int64_t p0)
{
    return min64(g->kc, (cut_k > 0 && p0 < cut_k ? cut_k : k) - p0);
}

/* Floats the pre-packed panels of `len` rows of width R take over k-columns [0, k). */
static int64_t prepacked_floats(const RtGemm *g, int64_t len, int R, int64_t k, int64_t cut_k)
{
    int64_t total = 0;
    for (int64_t p0 = 0, kc; p0 < k; p0 += kc) {
        kc = slice_kc(g, k, cut_k, p0);
        total += (len + R - 1) / R * panel_floats(R, kc);
    }
    return total;
}

/* Where k-slice p0 of the pre-packed chunk starts. */
static int64_t prepacked_offset(const RtGemm *g, int64_t len, int R, int64_t p0, int64_t cut_k)
{
    return prepacked_floats(g, len, R, p0, cut_k);
}

/* pack() from a Src: rows [r0, r0 + rows) x k-columns [p0, p0 + kc), a slice on one side
 * of cut_k. A panel straddling cut_r is copied element by element (one per GEMM). */
static void pack_src(float *dst, const Src *s, int64_t r0, int64_t rows, int64_t p0, int64_t kc,
                     int R, bool avx)
{
    if (s->cut_k > 0 && p0 >= s->cut_k) {
        pack(dst, s->p[1], s->sr[1], s->sk[1], r0, rows, p0 - s->cut_k, kc, R, avx);
        return;
    }
    if (s->cut_r <= 0 || r0 + rows <= s->cut_r) {
        pack(dst, s->p[0], s->sr[0], s->sk[0], r0, rows, p0, kc, R, avx);
        return;
    }
    if (r0 >= s->cut_r) {
        pack(dst, s->p[1], s->sr[1], s->sk[1], r0 - s->cut_r, rows, p0, kc, R, avx);
        return;
    }
    int64_t ps = panel_floats(R, kc);
    for (int64_t q = 0; q * R < rows; q++) {
        int64_t a = r0 + q * R, n = min64(R, rows - q * R);
        float *d = dst + q * ps;
        if (a + n <= s->cut_r)
            pack(d, s->p[0], s->sr[0], s->sk[0], a, n, p0, kc, R, avx);
        else if (a >= s->cut_r)
            pack(d, s->p[1], s->sr[1], s->sk[1], a - s->cut_r, n, p0, kc, R, avx);
        else
            for (int64_t p = 0; p < kc; p++)
                for (int64_t r = 0; r < R; r++) {
                    int64_t i = a + r, h = i >= s->cut_r;
                    d[p * R + r] = r >= n ? 0.0f
                                          : s->p[h][(i - h * s->cut_r) * s->sr[h] + (p0 + p) * s->sk[h]];
                }
    }
}

/* Packs panels [begin, end) of the pre-packed chunk, for every k-slice. */
static void pack_shared(void *arg, int64_t begin, int64_t end)
{
    const Job *j = arg;
    const RtGemm *g = j->g;
    int R = j->split_m ? g->nr : g->mr;
    const Src *src = j->split_m ? &j->ys : &j->xs;
    int64_t len = j->s1 - j->s0;
    float *pre = (float *)j->pre;
    for (int64_t p0 = 0, kc; p0 < j->k; p0 += kc) {
        kc = slice_kc(g, j->k, j->cut_k, p0);
        int64_t ps = panel_floats(R, kc);
        float *base = pre + prepacked_offset(g, len, R, p0, j->cut_k);
        for (int64_t q = begin; q < end; q++)
            pack_src(base + q * ps, src, j->s0 + q * R, min64(R, len - q * R), p0, kc, R, g->avx);
    }
}

static void ukr_call(const Job *j, int64_t mr, int64_t nr, int64_t kc, float *a, float *b,
                     float beta, int64_t i, int64_t jj, auxinfo_t *aux)
{
    float alpha = j->alpha;
    j->g->ukr(mr, nr, kc, &alpha, a, b, &beta, j->c + i * j->rs + jj * j->cs, j->rs, j->cs, aux,
              j->g->cntx);
}

/* Part t of T computes its share of the split dimension against the pre-packed chunk. */
static void compute_part(const Job *j, int t)
{
    const RtGemm *g = j->g;
    Scratch *sc = &j->scratch[t];
    int MR = g->mr, NR = g->nr;
    int R = j->split_m ? MR : NR;           /* panel width along the split dimension */
    int64_t dim = j->split_m ? j->m : j->n; /* the split dimension */
    int64_t panels = (dim + R - 1) / R;
    int64_t lo = panels * t / j->parts * R, hi = min64(panels * (t + 1) / j->parts * R, dim);
    int64_t len = j->s1 - j->s0;
    int64_t block = j->split_m ? g->mc : g->nc; /* own rows packed at once */
    auxinfo_t aux;
    memset(&aux, 0, sizeof aux);
    bli_auxinfo_set_schema_a(BLIS_PACKED_ROW_PANELS, &aux);
    bli_auxinfo_set_schema_b(BLIS_PACKED_COL_PANELS, &aux);
    bli_auxinfo_set_is_a(1, &aux);
    bli_auxinfo_set_is_b(1, &aux);
    for (int64_t b0 = lo; b0 < hi; b0 += block) {
        int64_t rows = min64(block, hi - b0);
        for (int64_t p0 = 0, kc; p0 < j->k; p0 += kc) {
            kc = slice_kc(g, j->k, j->cut_k, p0);
            float beta = p0 == 0 ? j->beta : 1.0f;
            const float *pre = j->pre + prepacked_offset(g, len, j->split_m ? NR : MR, p0, j->cut_k);
            if (j->split_m) {
                /* own: X rows [b0, b0+rows) as MR panels; pre: Y columns as NR panels */
                int64_t psa = panel_floats(MR, kc), psb = panel_floats(NR, kc);
                pack_src(sc->own, &j->xs, b0, rows, p0, kc, MR, g->avx);
                bli_auxinfo_set_ps_a(psa, &aux);
                bli_auxinfo_set_ps_b(psb, &aux);
                for (int64_t jr = 0; jr < len; jr += NR) {
                    float *bp = (float *)pre + jr / NR * psb;
                    for (int64_t ir = 0; ir < rows; ir += MR) {
                        float *ap = sc->own + ir / MR * psa;
                        bli_auxinfo_set_next_a(ir + MR < rows ? ap + psa : sc->own, &aux);
                        bli_auxinfo_set_next_b(ir + MR < rows ? bp : bp + psb, &aux);
                        ukr_call(j, min64(MR, rows - ir), min64(NR, len - jr), kc, ap, bp, beta,
                                 b0 + ir, j->s0 + jr, &aux);
                    }
                }
            } else {
                /* own: Y columns [b0, b0+rows) as NR panels; pre: X rows as MR panels,
                 * walked in MC blocks so one block stays in L2 across the own panels */
                int64_t psa = panel_floats(MR, kc), psb = panel_floats(NR, kc);
                pack_src(sc->own, &j->ys, b0, rows, p0, kc, NR, g->avx);
                bli_auxinfo_set_ps_a(psa, &aux);
                bli_auxinfo_set_ps_b(psb, &aux);
                for (int64_t ic = 0; ic < len; ic += g->mc) {
                    int64_t mc = min64(g->mc, len - ic);
                    for (int64_t jr = 0; jr < rows; jr += NR) {
                        float *bp = sc->own + jr / NR * psb;
                        for (int64_t ir = 0; ir < mc; ir += MR) {
                            float *ap = (float *)pre + (ic + ir) / MR * psa;
                            bli_auxinfo_set_next_a(ir + MR < mc ? ap + psa : ap, &aux);
                            bli_auxinfo_set_next_b(ir + MR < mc ? bp : bp + psb, &aux);
                            ukr_call(j, min64(MR, mc - ir), min64(NR, rows - jr), kc, ap, bp,
                                     beta, j->s0 + ic + ir, b0 + jr, &aux);
                        }
                    }
                }
            }
        }
    }
}

static void compute_parts(void *arg, int64_t begin, int64_t end)
{
    for (int64_t t = begin; t < end; t++)
        compute_part(arg, (int)t);
}

static bool grow(float **buf, size_t *cap, size_t floats)
{
    if (*cap >= floats)
        return true;
    float *p = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
    if (!p)
        return false;
    free(*buf);
    *buf = p;
    *cap = floats;
    return true;
}

static void oom(void)
{
    fprintf(stderr, "relorac runtime: out of memory for GEMM packing buffers\n");
    abort();
}

/* Floats part t packs of its own operand for one pre-packed chunk: compute_part's ranges. */
static int64_t own_floats(const Job *j, int t)
{
    const RtGemm *g = j->g;
    int R = j->split_m ? g->mr : g->nr;
    int64_t dim = j->split_m ? j->m : j->n, panels = (dim + R - 1) / R;
    int64_t lo = panels * t / j->parts * R, hi = min64(panels * (t + 1) / j->parts * R, dim);
    int64_t block = j->split_m ? g->mc : g->nc, total = 0;
    for (int64_t b0 = lo; b0 < hi; b0 += block)
        total += prepacked_floats(g, min64(block, hi - b0), R, j->k, j->cut_k);
    return total;
}

/* C'[m', n'] on `parts` parts of the pool (parts == 1: the calling thread alone), using
 * scratch[0..parts). Adds the floats it packs (padding included) to *packed_pre (the
 * pre-packed operand) and *packed_own (the split operand, re-packed for every chunk). */
static void blis_gemm(RtCtx *ctx, const RtGemm *g, Scratch *scratch, int parts, int64_t m,
                      int64_t n, int64_t k, int64_t cut_k, float alpha, const Src *xs,
                      const Src *ys, float beta, float *c, int64_t rs, int64_t cs,
                      int64_t *packed_pre, int64_t *packed_own)
{
    Job j = {g, m, n, k, cut_k, alpha, beta, *xs, *ys, c, rs, cs, false, 0, 0, NULL, scratch,
             parts};
    j.split_m = m > n;
    int R = j.split_m ? g->nr : g->mr; /* panel width of the pre-packed operand */
    int64_t other = j.split_m ? n : m;
    int64_t chunk = round_up(SHARED_BYTES / (int64_t)sizeof(float) / (k > 0 ? k : 1), R);
    if (chunk < R)
        chunk = R;
    /* a part packs at most its share of the split dimension, a block at a time */
    int Ro = j.split_m ? g->mr : g->nr;
    int64_t dim = j.split_m ? m : n, panels = (dim + Ro - 1) / Ro;
    int64_t rows = min64(j.split_m ? g->mc : g->nc, (panels + parts - 1) / parts * Ro);
    int64_t own = (rows + Ro - 1) / Ro * panel_floats(Ro, min64(g->kc, k));
    for (int t = 0; t < parts; t++)
        if (!grow(&scratch[t].own, &scratch[t].own_cap, (size_t)own))
            oom();
    for (int64_t s0 = 0; s0 < other; s0 += chunk) {
        j.s0 = s0;
        j.s1 = min64(s0 + chunk, other);
        int64_t len = j.s1 - j.s0;
        if (!grow(&scratch[0].shared, &scratch[0].shared_cap,
                  (size_t)prepacked_floats(g, len, R, k, cut_k)))
            oom();
        j.pre = scratch[0].shared;
        *packed_pre += prepacked_floats(g, len, R, k, cut_k);
        for (int t = 0; t < parts; t++)
            *packed_own += own_floats(&j, t);
        int64_t panels = (len + R - 1) / R;
        if (parts > 1) {
            rt_parallel_for(ctx, panels, pack_shared, &j);
            rt_parallel_for(ctx, parts, compute_parts, &j);
        } else {
            pack_shared(&j, 0, panels);
            compute_part(&j, 0);
        }
    }
}

/* C = beta C, the whole GEMM when k == 0. */
static void scale_c(int64_t m, int64_t n, float beta, float *c, int64_t ldc)
{
    for (int64_t i = 0; i < m; i++)
        for (int64_t jj = 0; jj < n; jj++)
            c[i * ldc + jj] = beta == 0.0f ? 0.0f : beta * c[i * ldc + jj];
}

/* RELORAC_GEMM_TRACE: one line per GEMM (per matrix of a batch) to stderr, the counts that
 * do not depend on the machine's load: "relorac gemm: KIND m n k ta tb layout parts
 * packed_pre packed_own" with layout "rows" (C = op(A) op(B), the parts split m when
 * m > n) or "cols" (C^T = op(B)^T op(A)^T), packed counts in floats including padding. */
static void gemm_trace(const RtGemm *g, const char *kind, int ta, int tb, int64_t m, int64_t n,
                       int64_t k, bool rows, int parts, int64_t pre, int64_t own)
{
    (void)g;
    fprintf(stderr, "relorac gemm: %s %lld %lld %lld %d %d %s %d %lld %lld\n", kind,
            (long long)m, (long long)n, (long long)k, ta, tb, rows ? "rows" : "cols", parts,
            (long long)pre, (long long)own);
}

/* The micro-kernel's MR side goes along m (row-stored tiles: C = op(A) op(B)) or along n
 * (column-stored: C^T = op(B)^T op(A)^T); it prefers one. A side of 8 against MR = 32
 * wastes three quarters of each tile (rank-8 adapters), so the other layout is taken when
 * its padded tile area is clearly smaller. The choice depends on the shape alone. */
static bool prefer_rows(const RtGemm *g, int64_t m, int64_t n)
{
    int64_t rows_area = round_up(m, g->mr) * round_up(n, g->nr);
    int64_t cols_area = round_up(n, g->mr) * round_up(m, g->nr);
    return g->c_rows ? 10 * rows_area <= 11 * cols_area : 10 * cols_area > 11 * rows_area;
}

/* One row-major GEMM on `parts` parts using scratch[0..parts). */
static void gemm_one(RtCtx *ctx, const RtGemm *g, Scratch *scratch, int parts, int ta, int tb,
                     int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    if (k <= 0) {
        scale_c(m, n, beta, c, ldc);
        return;
    }
    /* op(A)(i, p) = a[i*am + p*ak], op(B)(p, j) = b[p*bk + j*bn] */
    int64_t am = ta ? 1 : lda, ak = ta ? lda : 1, bk = tb ? 1 : ldb, bn = tb ? ldb : 1;
    bool rows = prefer_rows(g, m, n);
    int64_t pre = 0, own = 0;
    Src as = {{a, NULL}, {am, 0}, {ak, 0}, 0, 0}, bs = {{b, NULL}, {bn, 0}, {bk, 0}, 0, 0};
    if (rows) /* C = op(A) op(B) with row-stored tiles */
        blis_gemm(ctx, g, scratch, parts, m, n, k, 0, alpha, &as, &bs, beta, c, ldc, 1, &pre,
                  &own);
    else /* C^T = op(B)^T op(A)^T with column-stored tiles */
        blis_gemm(ctx, g, scratch, parts, n, m, k, 0, alpha, &bs, &as, beta, c, 1, ldc, &pre,
                  &own);
    if (g->trace)
        gemm_trace(g, "gemm", ta, tb, m, n, k, rows, parts, pre, own);
}

/* ---- the OpenBLAS fallback ---- */

typedef struct {
    const RtGemm *g;
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc;
    float alpha, beta;
    const float *a, *b;
    float *c;
} CblasJob;

static void cblas_one(const CblasJob *j, int64_t m, const float *a, const float *b, float *c)
{
    j->g->cblas(101 /* CblasRowMajor */, j->ta ? 112 : 111, j->tb ? 112 : 111, (int)m, (int)j->n,
                (int)j->k, j->alpha, a, (int)j->lda, b, (int)j->ldb, j->beta, c, (int)j->ldc);
}

/* Fixed 64-row blocks [begin, end) of matrix 0 of the batch (whatever the thread count). */
static void cblas_rows(void *arg, int64_t begin, int64_t end)
{
    const CblasJob *j = arg;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t r0 = blk * ROWS_OPENBLAS, rows = min64(ROWS_OPENBLAS, j->m - r0);
        cblas_one(j, rows, j->ta ? j->a + r0 : j->a + r0 * j->lda, j->b, j->c + r0 * j->ldc);
    }
}

static void cblas_items(void *arg, int64_t begin, int64_t end)
{
    const CblasJob *j = arg;
    for (int64_t i = begin; i < end; i++) {
        CblasJob one = *j;
        one.a += i * j->sa;
        one.b += i * j->sb;
        one.c += i * j->sc;
        cblas_rows(&one, 0, (j->m + ROWS_OPENBLAS - 1) / ROWS_OPENBLAS);
    }
}

/* ---- rt_gemm_run ---- */

typedef struct {
    const RtGemm *g;
    int ta, tb;
    int64_t m, n, k, lda, ldb, ldc, sa, sb, sc, batch;
    float alpha, beta;
    const float *a, *b;
    float *c;
} BatchJob;

static void batch_items(void *arg, int64_t begin, int64_t end)
{
    const BatchJob *j = arg;
    for (int64_t t = begin; t < end; t++) {
        /* part t of n_parts takes a contiguous range of the matrices, on its own scratch */
        int parts = j->g->n_parts;
        for (int64_t i = j->batch * t / parts; i < j->batch * (t + 1) / parts; i++)
            gemm_one(NULL, j->g, &j->g->scratch[t], 1, j->ta, j->tb, j->m, j->n, j->k, j->alpha,
                     j->a + i * j->sa, j->lda, j->b + i * j->sb, j->ldb, j->beta, j->c + i * j->sc,
                     j->ldc);
    }
}

void rt_gemm_run(RtCtx *ctx, RtGemm *g, int parts, int ta, int tb, int64_t m, int64_t n,
                 int64_t k, float alpha, const float *a, int64_t lda, int64_t sa, const float *b,
                 int64_t ldb, int64_t sb, float beta, float *c, int64_t ldc, int64_t sc,
                 int64_t batch)
{
    if (parts > g->n_parts)
        parts = g->n_parts;
    if (parts < 1)
        parts = 1;
    if (g->kind == GEMM_OPENBLAS) {
        CblasJob j = {g, ta, tb, m, n, k, lda, ldb, ldc, sa, sb, sc, alpha, beta, a, b, c};
        int64_t blocks = (m + ROWS_OPENBLAS - 1) / ROWS_OPENBLAS;
        if (parts > 1 && batch >= parts)
            rt_parallel_for(ctx, batch, cblas_items, &j);
        else
            for (int64_t i = 0; i < batch; i++) {
                CblasJob one = j;
                one.a += i * sa;
                one.b += i * sb;
                one.c += i * sc;
                if (parts > 1)
                    rt_parallel_for(ctx, blocks, cblas_rows, &one);
                else
                    cblas_rows(&one, 0, blocks);
            }
        return;
    }
    if (parts > 1 && batch >= parts) {
        /* every part needs its own pre-packed operand */
        BatchJob j = {g, ta, tb, m, n, k, lda, ldb, ldc, sa, sb, sc, batch, alpha, beta, a, b, c};
        if (parts == g->n_parts) {
            rt_parallel_for(ctx, parts, batch_items, &j);
            return;
        }
    }
    for (int64_t i = 0; i < batch; i++)
        gemm_one(ctx, g, g->scratch, parts, ta, tb, m, n, k, alpha, a + i * sa, lda, b + i * sb,
                 ldb, beta, c + i * sc, ldc);
}

/* ---- two GEMMs as one (rt_sgemm_pair) ---- */

/* See rt_internal.h. Either form is one blis_gemm over a Src with two sources: the shared
 * operand is packed once (cat_k == 0: A, read once for both column ranges of C) and C is
 * visited once per k-slice of both parts (cat_k == 1). Element (i, j) of C sees the same
 * micro-kernel calls, k-slices in the same order, as under the two separate GEMMs
 * (cat_k == 1: the second with beta 1), so the results equal theirs. */
void rt_gemm_run_pair(RtCtx *ctx, RtGemm *g, int parts, int cat_k, int tb, int64_t m, int64_t n,
                      int64_t k, int64_t len2, float alpha, const float *a, int64_t lda,
                      const float *a2, int64_t lda2, const float *b, int64_t ldb, const float *b2,
                      int64_t ldb2, float beta, float *c, int64_t ldc)
{
    if (parts > g->n_parts)
        parts = g->n_parts;
    if (parts < 1)
        parts = 1;
    if (g->kind != GEMM_BLIS || k <= 0 || len2 <= 0 || m <= 0 || n <= 0) {
        rt_gemm_run(ctx, g, parts, 0, tb, m, n, k, alpha, a, lda, 0, b, ldb, 0, beta, c, ldc, 0,
                    1);
        if (cat_k)
            rt_gemm_run(ctx, g, parts, 0, tb, m, n, len2, alpha, a2, lda2, 0, b2, ldb2, 0, 1.0f,
                        c, ldc, 0, 1);
        else
            rt_gemm_run(ctx, g, parts, 0, tb, m, len2, k, alpha, a, lda, 0, b2, ldb2, 0, beta,
                        c + n, ldc, 0, 1);
        return;
    }
    /* op(B1)(p, j) = b[p*bk + j*bn], op(B2) likewise with ldb2 */
    int64_t bk = tb ? 1 : ldb, bn = tb ? ldb : 1, bk2 = tb ? 1 : ldb2, bn2 = tb ? ldb2 : 1;
    int64_t nt = cat_k ? n : n + len2, kt = cat_k ? k + len2 : k, cut_k = cat_k ? k : 0;
    Src as = {{a, a2}, {lda, lda2}, {1, 1}, 0, cut_k};
    Src bs = {{b, b2}, {bn, bn2}, {bk, bk2}, cat_k ? 0 : n, cut_k};
    if (!cat_k)
        as.p[1] = NULL;
    bool rows = prefer_rows(g, m, nt);
    int64_t pre = 0, own = 0;
    if (rows)
        blis_gemm(ctx, g, g->scratch, parts, m, nt, kt, cut_k, alpha, &as, &bs, beta, c, ldc, 1,
                  &pre, &own);
    else
        blis_gemm(ctx, g, g->scratch, parts, nt, m, kt, cut_k, alpha, &bs, &as, beta, c, 1, ldc,
                  &pre, &own);
    if (g->trace)
        gemm_trace(g, cat_k ? "pair_k" : "pair_n", 0, tb, m, nt, kt, rows, parts, pre, own);
}

/* ---- the start-up report ---- */

void rt_gemm_report(FILE *out, FILE *err, const char *prog, const RtCtx *ctx)
{
    RtGemm *g = ctx ? ctx->gemm : NULL, *probe = NULL;
    RtError e = {0};
    if (!g && rt_gemm_create(&probe, 1, &e))
        g = probe;
    RtCpu cpu;
    rt_cpu_detect(&cpu);
    if (out) {
        fprintf(out, "%s: GEMM: %s; CPU: %s, %s", prog, g ? g->desc : e.msg,
                cpu.brand[0] ? cpu.brand : cpu.vendor[0] ? cpu.vendor : "unknown",
                rt_cpu_isa(&cpu));
        if (ctx)
            fprintf(out, ", %d thread%s", ctx->n_threads, ctx->n_threads == 1 ? "" : "s");
        fputc('\n', out);
        fflush(out);
    }
    if (err && g && g->note[0])
        fprintf(err, "%s: note: %s\n", prog, g->note);
    rt_gemm_destroy(probe);
}

void rt_gemm_run_alone(int ta, int tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const float *a, int64_t lda, int64_t sa, const float *b, int64_t ldb,
                       int64_t sb, float beta, float *c, int64_t ldc, int64_t sc, int64_t batch)
{
    RtGemm g;
    memset(&g, 0, sizeof g);
    if (!default_copy(&g)) {
        fprintf(stderr, "relorac runtime: no GEMM library: neither libblis.so.4 nor "
                "libopenblas.so.0 can be loaded (install libblis4)\n");
        abort();
    }
    Scratch scratch = {0};
    g.n_parts = 1;
    g.scratch = &scratch;
    rt_gemm_run(NULL, &g, 1, ta, tb, m, n, k, alpha, a, lda, sa, b, ldb, sb, beta, c, ldc, sc,
                batch);
    free(scratch.own);
    free(scratch.shared);
}
