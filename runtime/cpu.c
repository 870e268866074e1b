/* What this CPU can execute: CPUID feature bits, masked by the register state the OS saves
 * (XCR0), under the names LLVM uses in target-feature strings ("+avx2,+fma,..."). The trainer
 * compares the features its generated code was compiled for with these before running any
 * of it (rt_cpu_check), so a binary moved to an older CPU says what is missing instead of
 * dying of SIGILL; the GEMM loader (gemm.c) picks its kernels from the same bits.
 * Sources: Intel SDM vol. 2A, CPUID leaves 01H, 07H (subleaves 0 and 1) and 80000001H;
 * XCR0 bits from SDM vol. 1 §13.3; AMD APM vol. 3 appendix E. */
#include "rt_internal.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define RT_CPU_X86 1
#endif

/* Which register state a feature needs the OS to save (XCR0 bits). */
enum {
    XS_NONE = 0,
    XS_AVX = (1u << 1) | (1u << 2),                   /* SSE + AVX (YMM) state */
    XS_AVX512 = XS_AVX | (1u << 5) | (1u << 6) | (1u << 7), /* + opmask, ZMM hi256, hi16 */
    XS_AMX = (1u << 17) | (1u << 18)                  /* XTILECFG, XTILEDATA */
};

enum { R_EAX, R_EBX, R_ECX, R_EDX };

typedef struct {
    const char *name;  /* LLVM's x86 feature name */
    unsigned leaf, sub;
    int reg, bit;
    unsigned xstate;   /* XCR0 bits the OS must enable */
} FeatureBit;

/* One row per feature we can test. LLVM feature names that are not CPUID bits (64bit,
 * cx8, fxsr, mmx, sse, sse2, slow-*, fast-*, tuning flags) are not listed: every x86-64
 * CPU has the ISA ones and the others do not change which instructions run. */
static const FeatureBit features[] = {
    {"sse3", 1, 0, R_ECX, 0, XS_NONE},
    {"pclmul", 1, 0, R_ECX, 1, XS_NONE},
    {"ssse3", 1, 0, R_ECX, 9, XS_NONE},
    {"fma", 1, 0, R_ECX, 12, XS_AVX},
    {"cx16", 1, 0, R_ECX, 13, XS_NONE},
    {"sse4.1", 1, 0, R_ECX, 19, XS_NONE},
    {"sse4.2", 1, 0, R_ECX, 20, XS_NONE},
    {"movbe", 1, 0, R_ECX, 22, XS_NONE},
    {"popcnt", 1, 0, R_ECX, 23, XS_NONE},
    {"aes", 1, 0, R_ECX, 25, XS_NONE},
    {"xsave", 1, 0, R_ECX, 26, XS_NONE},
    {"avx", 1, 0, R_ECX, 28, XS_AVX},
    {"f16c", 1, 0, R_ECX, 29, XS_AVX},
    {"rdrnd", 1, 0, R_ECX, 30, XS_NONE},
    {"fsgsbase", 7, 0, R_EBX, 0, XS_NONE},
    {"bmi", 7, 0, R_EBX, 3, XS_NONE},
    {"avx2", 7, 0, R_EBX, 5, XS_AVX},
    {"bmi2", 7, 0, R_EBX, 8, XS_NONE},
    {"avx512f", 7, 0, R_EBX, 16, XS_AVX512},
    {"avx512dq", 7, 0, R_EBX, 17, XS_AVX512},
    {"rdseed", 7, 0, R_EBX, 18, XS_NONE},
    {"adx", 7, 0, R_EBX, 19, XS_NONE},
    {"avx512ifma", 7, 0, R_EBX, 21, XS_AVX512},
    {"clflushopt", 7, 0, R_EBX, 23, XS_NONE},
    {"clwb", 7, 0, R_EBX, 24, XS_NONE},
    {"avx512cd", 7, 0, R_EBX, 28, XS_AVX512},
    {"sha", 7, 0, R_EBX, 29, XS_NONE},
    {"avx512bw", 7, 0, R_EBX, 30, XS_AVX512},
    {"avx512vl", 7, 0, R_EBX, 31, XS_AVX512},
    {"avx512vbmi", 7, 0, R_ECX, 1, XS_AVX512},
    {"avx512vbmi2", 7, 0, R_ECX, 6, XS_AVX512},
    {"gfni", 7, 0, R_ECX, 8, XS_NONE},
    {"vaes", 7, 0, R_ECX, 9, XS_AVX},
    {"vpclmulqdq", 7, 0, R_ECX, 10, XS_AVX},
    {"avx512vnni", 7, 0, R_ECX, 11, XS_AVX512},
    {"avx512bitalg", 7, 0, R_ECX, 12, XS_AVX512},
    {"avx512vpopcntdq", 7, 0, R_ECX, 14, XS_AVX512},
    {"rdpid", 7, 0, R_ECX, 22, XS_NONE},
    {"amx-bf16", 7, 0, R_EDX, 22, XS_AMX},
    {"avx512fp16", 7, 0, R_EDX, 23, XS_AVX512},
    {"amx-tile", 7, 0, R_EDX, 24, XS_AMX},
    {"amx-int8", 7, 0, R_EDX, 25, XS_AMX},
    {"avxvnni", 7, 1, R_EAX, 4, XS_AVX},
    {"avx512bf16", 7, 1, R_EAX, 5, XS_AVX512},
    {"sahf", 0x80000001u, 0, R_ECX, 0, XS_NONE},
    {"lzcnt", 0x80000001u, 0, R_ECX, 5, XS_NONE},
    {"sse4a", 0x80000001u, 0, R_ECX, 6, XS_NONE},
    {"prfchw", 0x80000001u, 0, R_ECX, 8, XS_NONE},
    {"xop", 0x80000001u, 0, R_ECX, 11, XS_AVX},
    {"fma4", 0x80000001u, 0, R_ECX, 16, XS_AVX},
};
enum { N_FEATURES = (int)(sizeof features / sizeof features[0]) };
_Static_assert(N_FEATURES <= 64, "RtCpu.has is a 64-bit set");

int rt_cpu_feature_index(const char *name)
{
    for (int i = 0; i < N_FEATURES; i++)
        if (strcmp(features[i].name, name) == 0)
            return i;
    return -1;
}

const char *rt_cpu_feature_name(int index)
{
    return index >= 0 && index < N_FEATURES ? features[index].name : NULL;
}

bool rt_cpu_has(const RtCpu *c, const char *name)
{
    int i = rt_cpu_feature_index(name);
    return i >= 0 && (c->has >> i & 1);
}

#ifdef RT_CPU_X86
static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}
#endif

void rt_cpu_detect(RtCpu *c)
{
    memset(c, 0, sizeof *c);
#ifdef RT_CPU_X86
    unsigned r[4], max_leaf, max_ext;
    __cpuid(0, max_leaf, r[1], r[2], r[3]);
    memcpy(c->vendor, &r[1], 4); /* EBX, EDX, ECX spell the vendor */
    memcpy(c->vendor + 4, &r[3], 4);
    memcpy(c->vendor + 8, &r[2], 4);
    __cpuid(0x80000000u, max_ext, r[1], r[2], r[3]);
    if (max_ext >= 0x80000004u) {
        for (unsigned l = 0; l < 3; l++) {
            __cpuid(0x80000002u + l, r[0], r[1], r[2], r[3]);
            memcpy(c->brand + 16 * l, r, 16);
        }
        c->brand[48] = 0;
        size_t lead = strspn(c->brand, " ");
        memmove(c->brand, c->brand + lead, sizeof c->brand - lead);
    }
    uint64_t xcr0 = 0;
    if (max_leaf >= 1) {
        __cpuid(1, r[0], r[1], r[2], r[3]);
        int fam = (int)(r[0] >> 8 & 0xf), model = (int)(r[0] >> 4 & 0xf);
        if (fam == 0xf)
            fam += (int)(r[0] >> 20 & 0xff);
        if (fam == 0x6 || fam >= 0xf)
            model |= (int)(r[0] >> 16 & 0xf) << 4;
        c->family = fam;
        c->model = model;
        if (r[2] >> 27 & 1) /* OSXSAVE: XGETBV is usable */
            xcr0 = xgetbv0();
    }
    for (int i = 0; i < N_FEATURES; i++) {
        const FeatureBit *f = &features[i];
        unsigned top = f->leaf >= 0x80000000u ? max_ext : max_leaf;
        if (f->leaf > top)
            continue;
        if (f->leaf == 7 && f->sub == 1) {
            __cpuid_count(7, 0, r[0], r[1], r[2], r[3]);
            if (r[0] < 1) /* EAX of subleaf 0: the highest subleaf */
                continue;
        }
        __cpuid_count(f->leaf, f->sub, r[0], r[1], r[2], r[3]);
        if ((r[f->reg] >> f->bit & 1) && (xcr0 & f->xstate) == f->xstate)
            c->has |= (uint64_t)1 << i;
    }
#endif
}

const char *rt_cpu_isa(const RtCpu *c)
{
    if (rt_cpu_has(c, "avx512f") && rt_cpu_has(c, "avx512bw") && rt_cpu_has(c, "avx512dq") &&
        rt_cpu_has(c, "avx512vl"))
        return "AVX-512";
    if (rt_cpu_has(c, "avx2") && rt_cpu_has(c, "fma"))
        return "AVX2+FMA";
    if (rt_cpu_has(c, "avx"))
        return "AVX";
    if (rt_cpu_has(c, "sse4.2"))
        return "SSE4.2";
#ifdef RT_CPU_X86
    return "SSE2";
#else
    return "not x86";
#endif
}

bool rt_cpu_check_features(const RtCpu *c, const char *required, RtError *e)
{
    if (!required)
        return true;
    char missing[512] = "";
    size_t len = 0;
    int n_missing = 0;
    for (const char *s = required; *s;) {
        const char *end = strchr(s, ',');
        size_t n = end ? (size_t)(end - s) : strlen(s);
        char name[48];
        if (n > 1 && s[0] == '+' && n - 1 < sizeof name) {
            memcpy(name, s + 1, n - 1);
            name[n - 1] = 0;
            int i = rt_cpu_feature_index(name);
            if (i >= 0 && !(c->has >> i & 1)) {
                int w = snprintf(missing + len, sizeof missing - len, "%s%s", n_missing ? " " : "",
                                 name);
                if (w > 0 && (size_t)w < sizeof missing - len)
                    len += (size_t)w;
                n_missing++;
            }
        }
        s += n;
        if (*s == ',')
            s++;
    }
    if (n_missing == 0)
        return true;
    return rt_err(e, RT_ERR_CPU,
                  "this CPU (%s) lacks %s the program was compiled for: %s; rebuild it on this "
                  "machine, or with `relorac build --cpu` naming an older CPU",
                  c->brand[0] ? c->brand : c->vendor[0] ? c->vendor : "unknown",
                  n_missing == 1 ? "an instruction set" : "instruction sets", missing);
}

bool rt_cpu_check(const char *required_features, RtError *e)
{
    RtCpu c;
    rt_cpu_detect(&c);
    return rt_cpu_check_features(&c, required_features, e);
}
