/* relorac: the driver. The only code that reads argv/env or calls exit().
 * Subcommands live in one table (name, summary, options, help, run) so that others
 * can add dump-ir, build and run next to check and sweep; each run gets its parsed
 * arguments and an arena. Exit codes: 0 ok, 1 diagnostics, 2 usage or I/O errors. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "arena.h"
#include "diag.h"
#include "cg.h"
#include "fe.h"
#include "fields.h"
#include "kernel.h"
#include "lower.h"
#include "memplan.h"
#include "plot.h"
#include "tokenize.h"
#include "pm.h"
#include "report.h"
#include "rt_internal.h" /* rt_mem_limits: what the trainer will allow */
#include "sweep_run.h"

enum { EXIT_OK = 0, EXIT_DIAG = 1, EXIT_USAGE = 2 };

#define RUNTIME_ARCHIVE "librelorac_rt.a"
#ifndef RELORAC_BUILD_ROOT /* meson.build defines these three */
#define RELORAC_BUILD_ROOT "."
#define RELORAC_RUNTIME_BUILD_LIB "runtime/" RUNTIME_ARCHIVE
#define RELORAC_RUNTIME_REL_DIR "../lib/relorac"
#endif

/* Options shared by the commands that read a spec. */
typedef struct SpecArgs {
    const char *path;
    const char *model;
    const char *sweep;
    const char **defines;
    int n_defines;
    bool is_json;
    bool is_help;
    bool is_training;
    const char *after;  /* dump-ir --after PASS|all */
    const char *passes; /* --passes a,b,c */
    const char *out;    /* build -o FILE */
    const char *cpu;    /* build --cpu NAME */
    const char *arch;   /* build --arch sm_80,sm_90 */
    const char *nvrtc;  /* build --nvrtc PATH */
    char target_define[64]; /* build --target T, as -D train.target=T */
    bool is_kernels;    /* dump-ir --kernels */
    const char *device; /* dump-ir --device TARGET: the device code of that backend */
    bool no_plan;       /* check --no-plan */
    const char **grids; /* sweep --grid key=[...] */
    int n_grids;
    int jobs, threads;  /* sweep --jobs N --threads N (0: not given) */
    bool is_list;       /* sweep --list */
    bool is_verbose;    /* build -v */
    const char *runtime_dir; /* build --runtime-dir DIR */
} SpecArgs;

/* Is s the long option name, alone or as name=VALUE? */
static bool is_option(const char *s, const char *name)
{
    size_t n = strlen(name);
    return !strncmp(s, name, n) && (s[n] == '\0' || s[n] == '=');
}

/* A positive integer option value (at most max); false after a message. */
static bool positive_option(const char *cmd, const char *name, const char *v, int max, int *out)
{
    char *end;
    errno = 0;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || n < 1 || n > max) {
        fprintf(stderr, "relorac %s: %s needs a whole number from 1 to %d (got '%s')\n", cmd, name, max, v ? v : "");
        return false;
    }
    *out = (int)n;
    return true;
}

/* The value of option `name` at argv[*i] (`--name V` or `--name=V`), or NULL when
 * argv[*i] is another option. Sets *missing when the value is absent. */
static const char *option_value(const char *name, int argc, char **argv, int *i, bool *missing)
{
    size_t n = strlen(name);
    const char *s = argv[*i];
    if (strncmp(s, name, n) != 0 || (s[n] != '\0' && s[n] != '='))
        return NULL;
    const char *val = s[n] == '=' ? s + n + 1 : (*i + 1 < argc ? argv[++*i] : NULL);
    *missing = !val || !*val;
    return *missing ? NULL : val;
}

/* Parses SPEC [-D key=value]... [--model NAME] [--json] [--sweep NAME]; false (after a
 * message) on a usage error. `allow` lists the long options the command accepts. */
static bool parse_spec_args(const char *cmd, int argc, char **argv, SpecArgs *a, const char *allow)
{
    const char *what = strstr(allow, "plot") ? "run directory" : "spec file";
    memset(a, 0, sizeof *a);
    a->defines = calloc((size_t)argc + 1, sizeof *a->defines);
    a->grids = calloc((size_t)argc + 1, sizeof *a->grids);
    if (!a->defines || !a->grids) {
        fprintf(stderr, "relorac: out of memory\n");
        return false;
    }
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            a->is_help = true;
        } else if (!strncmp(s, "-D", 2) && !strstr(allow, "plot")) {
            val = s[2] ? s + 2 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val) {
                fprintf(stderr, "relorac %s: -D needs key=value (e.g. -D train.steps=100)\n", cmd);
                return false;
            }
            a->defines[a->n_defines++] = val;
        } else if (!strncmp(s, "--model", 7) && strstr(allow, "model") && (s[7] == '\0' || s[7] == '=')) {
            val = s[7] == '=' ? s + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val || !*val) {
                fprintf(stderr, "relorac %s: --model needs a model name\n", cmd);
                return false;
            }
            a->model = val;
        } else if (!strncmp(s, "--sweep", 7) && strstr(allow, "sweep") && (s[7] == '\0' || s[7] == '=')) {
            val = s[7] == '=' ? s + 8 : (i + 1 < argc ? argv[++i] : NULL);
            if (!val || !*val) {
                fprintf(stderr, "relorac %s: --sweep needs a sweep name\n", cmd);
                return false;
            }
            a->sweep = val;
        } else if (strstr(allow, "runner") && (is_option(s, "--grid") || is_option(s, "--jobs") ||
                                                is_option(s, "--threads") || is_option(s, "--out"))) {
            /* sweep: --grid key=[v1, v2], --jobs N, --threads N, --out DIR */
            const char *name = is_option(s, "--grid")      ? "--grid"
                               : is_option(s, "--jobs")    ? "--jobs"
                               : is_option(s, "--threads") ? "--threads"
                                                           : "--out";
            bool missing = false;
            const char *v = option_value(name, argc, argv, &i, &missing);
            if (!v) {
                fprintf(stderr, "relorac %s: %s needs a value (see relorac %s --help)\n", cmd, name, cmd);
                return false;
            }
            if (!strcmp(name, "--grid"))
                a->grids[a->n_grids++] = v;
            else if (!strcmp(name, "--out"))
                a->out = v;
            else if (!positive_option(cmd, name, v, 1024, !strcmp(name, "--jobs") ? &a->jobs : &a->threads))
                return false;
        } else if (!strcmp(s, "--list") && strstr(allow, "runner")) {
            a->is_list = true;
        } else if (!strcmp(s, "--json") && strstr(allow, "json")) {
            a->is_json = true;
        } else if (!strcmp(s, "--train") && !strstr(allow, "plot")) {
            a->is_training = true;
        } else if (!strcmp(s, "--no-plan") && strstr(allow, "plan")) {
            a->no_plan = true;
        } else if (!strcmp(s, "--kernels") && strstr(allow, "kernels")) {
            a->is_kernels = true;
        } else if (!strncmp(s, "--device", 8) && (s[8] == '\0' || s[8] == '=') && strstr(allow, "kernels")) {
            bool missing = false;
            a->device = option_value("--device", argc, argv, &i, &missing);
            if (!a->device) {
                fprintf(stderr, "relorac %s: --device needs a target (cuda)\n", cmd);
                return false;
            }
        } else if (strstr(allow, "after") && (!strncmp(s, "--after", 7) || !strncmp(s, "--passes", 8))) {
            bool missing = false;
            const char *v = option_value("--after", argc, argv, &i, &missing);
            if (v)
                a->after = v;
            else if (!missing && (v = option_value("--passes", argc, argv, &i, &missing)))
                a->passes = v;
            if (missing || !v) {
                fprintf(stderr, "relorac %s: %s needs a pass name (see relorac %s --help)\n", cmd, s, cmd);
                return false;
            }
        } else if (strstr(allow, "output") && !strncmp(s, "--target", 8) && (s[8] == '\0' || s[8] == '=')) {
            bool missing = false;
            const char *v = option_value("--target", argc, argv, &i, &missing);
            if (!v || strlen(v) > 32) {
                fprintf(stderr, "relorac %s: --target needs cpu or cuda (see relorac %s --help)\n", cmd, cmd);
                return false;
            }
            /* the same check as the spec's own train.target (cpu | cuda) */
            snprintf(a->target_define, sizeof a->target_define, "train.target=%s", v);
            a->defines[a->n_defines++] = a->target_define;
        } else if (strstr(allow, "output") && (!strncmp(s, "--arch", 6) || !strncmp(s, "--nvrtc", 7)) &&
                   (s[s[2] == 'a' ? 6 : 7] == '\0' || s[s[2] == 'a' ? 6 : 7] == '=')) {
            bool missing = false;
            bool is_arch = s[2] == 'a';
            const char *v = option_value(is_arch ? "--arch" : "--nvrtc", argc, argv, &i, &missing);
            if (!v) {
                fprintf(stderr, "relorac %s: %s needs a value (see relorac %s --help)\n", cmd,
                        is_arch ? "--arch" : "--nvrtc", cmd);
                return false;
            }
            if (is_arch)
                a->arch = v;
            else
                a->nvrtc = v;
        } else if ((strstr(allow, "output") && !strcmp(s, "-o")) ||
                   ((strstr(allow, "output") || strstr(allow, "cpu")) && !strncmp(s, "--cpu", 5))) {
            bool missing = false;
            const char *v = !strcmp(s, "-o") ? (i + 1 < argc ? argv[++i] : NULL)
                                             : option_value("--cpu", argc, argv, &i, &missing);
            if (!v || !*v) {
                fprintf(stderr, "relorac %s: %s needs a value (see relorac %s --help)\n", cmd, s, cmd);
                return false;
            }
            if (!strcmp(s, "-o"))
                a->out = v;
            else
                a->cpu = v;
        } else if (strstr(allow, "plot") && !strcmp(s, "-o")) {
            a->out = i + 1 < argc ? argv[++i] : NULL;
            if (!a->out || !*a->out) {
                fprintf(stderr, "relorac %s: -o needs a file name ending in .png or .svg\n", cmd);
                return false;
            }
        } else if (strstr(allow, "output") && (!strcmp(s, "-v") || !strcmp(s, "--verbose"))) {
            a->is_verbose = true;
        } else if (strstr(allow, "output") && !strncmp(s, "--runtime-dir", 13) && (s[13] == '\0' || s[13] == '=')) {
            bool missing = false;
            a->runtime_dir = option_value("--runtime-dir", argc, argv, &i, &missing);
            if (!a->runtime_dir) {
                fprintf(stderr, "relorac %s: --runtime-dir needs a directory (see relorac %s --help)\n", cmd, cmd);
                return false;
            }
        } else if (s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "relorac %s: unknown option '%s' (see relorac %s --help)\n", cmd, s, cmd);
            return false;
        } else if (a->path) {
            fprintf(stderr, "relorac %s: more than one %s given ('%s' and '%s')\n", cmd, what, a->path, s);
            return false;
        } else {
            a->path = s;
        }
    }
    if (!a->path && !a->is_help) {
        fprintf(stderr, "relorac %s: no %s given (see relorac %s --help)\n", cmd, what, cmd);
        return false;
    }
    return true;
}

static void help_check(FILE *out)
{
    fprintf(out,
            "usage: relorac check SPEC [-D key=value]... [--model NAME] [--json] [--train]\n"
            "                     [--cpu NAME]\n"
            "\n"
            "Checks a .relora spec and reports parameter counts per module and per training\n"
            "phase, FLOPs per token, a memory estimate, the memory plan per phase, and the\n"
            "planned peak with each memory setting (train.recompute, train.micro_batch,\n"
            "phase-aware planning) changed alone (see docs/language.md section 7).\n"
            "\n"
            "options:\n"
            "  -D key=value   override a field, e.g. -D train.steps=100, -D model.dim=256,\n"
            "                 -D adapter.rank=16, -D train.schedule.reset_every=100,\n"
            "                 -D model.block.swiglu.hidden=688 (may be repeated)\n"
            "  --model NAME   the model to check (default: the last one declared)\n"
            "  --json         print the report as JSON\n"
            "  --train        check as for training: missing data files are errors\n"
            "  --cpu NAME     check for a trainer built with --cpu NAME (precision = bf16 on\n"
            "                 target = cpu needs AVX512-BF16); default: this machine's CPU\n"
            "  --no-plan      skip the passes and the memory plan (the planned-memory tables)\n"
            "  -h, --help     show this help\n"
            "\n"
            "exit status: 0 ok, 1 the spec has errors, 2 usage or I/O error\n");
}

static void help_sweep(FILE *out)
{
    fprintf(out,
            "usage: relorac sweep SPEC [--sweep NAME] [--grid key=[v1, v2, ...]]... [-D key=value]...\n"
            "                          [--jobs N] [--threads N] [--out DIR] [--list] [--model NAME]\n"
            "\n"
            "Expands the spec's sweeps into their variants (named variants crossed with grids,\n"
            "docs/language.md section 6), builds one training binary per distinct compiled\n"
            "model (variants that differ only in run-time settings share one), trains every\n"
            "variant and writes DIR/results.csv, DIR/results.md and DIR/val_loss.svg (the\n"
            "validation loss of every variant against tokens seen, drawn by gnuplot).\n"
            "Ctrl-C stops the running variants at a checkpoint; the same command again skips\n"
            "the finished variants and resumes the others. A variant that fails is recorded\n"
            "with its message and the others go on.\n"
            "\n"
            "options:\n"
            "  --sweep NAME   only this sweep (default: all)\n"
            "  --grid K=[..]  add a grid axis to every sweep (or form a sweep named 'grid'\n"
            "                 when the spec has none), e.g. --grid 'train.optimizer.lr=[1e-3, 2e-3]'\n"
            "  -D key=value   override a field in every variant (applied last)\n"
            "  --jobs N       variants (and builds) run at a time (default: 1)\n"
            "  --threads N    threads in all, divided among the jobs (default: all CPUs)\n"
            "  --out DIR      where builds, runs and results go (default: out/sweep-<SPEC name>)\n"
            "  --list         only list and check the variants and their builds\n"
            "  --model NAME   the model (default: the last one declared)\n"
            "  -h, --help     show this help\n"
            "\n"
            "exit status: 0 every variant finished, 1 the spec has errors or a variant failed,\n"
            "2 usage or I/O error, 130/143 stopped by SIGINT/SIGTERM\n");
}

/* Reads the spec file; prints and returns NULL on an I/O error. */
static char *read_spec(Arena *a, const char *path, size_t *len)
{
    const char *why = NULL;
    char *text = fe_read_file(a, path, FE_SPEC_MAX, len, &why);
    if (!text)
        fprintf(stderr, "relorac: cannot read '%s': %s\n", path, why);
    return text;
}

static const int fe_to_k_phase[FE_N_PHASES] = {[FE_PHASE_FULL] = K_PHASE_FULL, [FE_PHASE_RELORA] = K_PHASE_LORA};

/* Lowers the spec and runs the passes; NULL (quietly) when it cannot be compiled. */
static IrModule *compile_quietly(Arena *a, const Spec *spec)
{
    Diags d;
    diag_init(&d, a);
    IrModule *m = fe_lower(a, &d, spec);
    PassCtx pc = {a, &d, m, PROP_LOWERED};
    PassOptions po = {0};
    return m && pass_pipeline_run(&pc, &po) ? m : NULL;
}

/* One row of the settings table: spec compiled (or m, when given) and planned with o. */
static void plan_row(Arena *a, const Spec *spec, IrModule *m, const KPlanOptions *o, FePlanRow *row)
{
    if (!m)
        m = compile_quietly(a, spec);
    Diags d;
    diag_init(&d, a);
    int64_t bytes[IR_CLASS_COUNT];
    KPlan *plan;
    if (!m || !pass_memplan_compute(a, &d, m, o, bytes, &plan))
        return;
    row->ok = true;
    row->program = pass_memplan_total(bytes);
    static const char *const train[FE_N_PHASES] = {"train_full", "train_lora"};
    for (int ph = 0; ph < FE_N_PHASES; ph++) {
        row->has_phase[ph] = plan->has_phase[fe_to_k_phase[ph]];
        row->phase_total[ph] = pass_memplan_total(plan->phase_bytes[fe_to_k_phase[ph]]);
        row->extra_flops[ph] =
            ir_attrs_float(&m->attrs, arena_sprintf(a, "recompute.%s.flops_per_token", train[ph]), 0.0);
    }
}

/* The settings table: the spec with recomputation at each level, with micro-batches of
 * the batch halved while it divides (down to an eighth), and with one layout for both
 * phases instead of phase-aware planning; each changed alone. */
static void plan_settings(Arena *a, const Spec *spec, IrModule *m, FeReport *r)
{
    const SpecTrain *t = &spec->train;
    int64_t micro[8];
    int n_micro = 0;
    for (int64_t b = t->batch; n_micro < 4 && b >= 1; b /= 2) {
        micro[n_micro++] = b;
        if (b % 2)
            break;
    }
    bool has_spec_micro = false;
    for (int i = 0; i < n_micro; i++)
        has_spec_micro = has_spec_micro || micro[i] == t->micro_batch;
    if (!has_spec_micro)
        micro[n_micro++] = t->micro_batch;
    r->plan_rows = ARENA_ARRAY(a, FePlanRow, 3 + n_micro + 2);
    static const char *const levels[] = {"none", "selective", "full"};
    for (int lv = 0; lv < 3; lv++) {
        FePlanRow *row = &r->plan_rows[r->n_plan_rows++];
        row->setting = "recompute";
        row->value = levels[lv];
        row->is_spec = (int)t->recompute == lv;
        Spec v = *spec;
        v.train.recompute = (SpecRecompute)lv;
        plan_row(a, &v, row->is_spec ? m : NULL, NULL, row);
    }
    for (int i = 0; i < n_micro; i++) {
        FePlanRow *row = &r->plan_rows[r->n_plan_rows++];
        row->setting = "micro_batch";
        row->value = arena_sprintf(a, "%lld", (long long)micro[i]);
        row->is_spec = micro[i] == t->micro_batch;
        Spec v = *spec;
        v.train.micro_batch = micro[i];
        plan_row(a, &v, row->is_spec ? m : NULL, NULL, row);
    }
    for (int off = 0; off < 2; off++) {
        FePlanRow *row = &r->plan_rows[r->n_plan_rows++];
        row->setting = "phase-aware planning";
        row->value = off ? "off" : "on";
        row->is_spec = !off;
        KPlanOptions o = {.no_phases = off == 1};
        plan_row(a, spec, m, &o, row);
    }
}

/* Runs the passes and the memory plan for `check`; false (quietly) when the spec
 * cannot be compiled yet (the check report stands without a plan). Each phase's own need
 * comes from the plan (ir/kernel.h, KPlan.phase_bytes); then the settings table. */
static bool check_plan(Arena *a, const Spec *spec, FeReport *r)
{
    Diags d;
    diag_init(&d, a);
    IrModule *m = compile_quietly(a, spec);
    KPlan *plan;
    if (!m || !pass_memplan_compute(a, &d, m, NULL, r->plan_program, &plan))
        return false;
    for (int ph = 0; ph < FE_N_PHASES; ph++) {
        r->plan_has_phase[ph] = plan->has_phase[fe_to_k_phase[ph]];
        memcpy(r->plan_phase[ph], plan->phase_bytes[fe_to_k_phase[ph]], sizeof r->plan_phase[ph]);
    }
    r->has_plan = true;
    plan_settings(a, spec, m, r);
    return true;
}

/* One line on stderr when a cpu plan exceeds what a process may use here: the trainer
 * would refuse to start (runtime/sysmem.c reads the same limits). */
static void warn_plan_memory(const Spec *spec, const FeReport *r)
{
    if (!r->has_plan || spec->train.target != SPEC_TARGET_CPU)
        return;
    uint64_t need = 0;
    for (int c = 0; c < IR_CLASS_COUNT; c++)
        need += (uint64_t)r->plan_program[c];
    RtMemLimits l;
    rt_mem_limits(&l);
    if (need <= l.available)
        return;
    char need_s[32], avail[768];
    rt_mem_bytes(need_s, sizeof need_s, need);
    rt_mem_describe(&l, avail, sizeof avail);
    fprintf(stderr, "relorac: warning: the memory plan needs %s, more than a process may use on this machine: %s; its trainer will refuse to start here\n", need_s, avail);
}

/* LLVM's names of the x86 CPUs with AVX512-BF16 (vdpbf16ps), as --cpu takes them: the
 * LLVM C API cannot list a named CPU's features. */
static const char *const bf16_cpus[] = {"cooperlake",  "sapphirerapids", "emeraldrapids", "graniterapids",
                                        "graniterapids-d", "diamondrapids", "znver4",   "znver5"};

/* What the CPU a target = cpu trainer will run on offers the checker: --cpu NAME, else this
 * machine's CPUID (the same detection the trainer makes at start-up, runtime/cpu.c). */
static void target_cpu(FeOptions *opt, const char *cpu, Arena *a)
{
    opt->cpu_has_bf16 = false;
    if (cpu && strcmp(cpu, "native") != 0) {
        opt->cpu_name = arena_sprintf(a, "--cpu %s", cpu);
        for (size_t i = 0; i < sizeof bf16_cpus / sizeof *bf16_cpus; i++)
            opt->cpu_has_bf16 |= !strcmp(cpu, bf16_cpus[i]);
        return;
    }
    RtCpu c;
    rt_cpu_detect(&c);
    opt->cpu_name = arena_sprintf(a, "this machine's %s", c.brand[0] ? c.brand : c.vendor[0] ? c.vendor : "CPU");
    opt->cpu_has_bf16 = rt_cpu_has(&c, "avx512bf16");
}

static int run_check(const SpecArgs *args, Arena *arena, Diags *diags)
{
    size_t len;
    char *text = read_spec(arena, args->path, &len);
    if (!text)
        return EXIT_USAGE;
    FeOptions opt = {.model_name = args->model,
                     .defines = args->defines,
                     .n_defines = args->n_defines,
                     .is_training = args->is_training};
    target_cpu(&opt, args->cpu, arena);
    const Spec *spec = fe_load_spec_buffer(arena, diags, args->path, text, len, &opt);
    diag_print(diags, stderr, false);
    if (!spec)
        return EXIT_DIAG;
    FeReport report;
    fe_report_compute(arena, spec, &report);
    if (!args->no_plan && check_plan(arena, spec, &report))
        warn_plan_memory(spec, &report);
    if (args->is_json)
        fe_report_print_json(stdout, spec, &report);
    else
        fe_report_print(stdout, spec, &report);
    return EXIT_OK;
}

/* The default --out of a sweep: out/sweep-<the spec's file name without .relora>. */
static const char *sweep_default_out(Arena *a, const char *spec_path)
{
    const char *base = strrchr(spec_path, '/') ? strrchr(spec_path, '/') + 1 : spec_path;
    size_t n = strlen(base);
    if (n > 7 && !strcmp(base + n - 7, ".relora"))
        n -= 7;
    return arena_sprintf(a, "out/sweep-%.*s", (int)n, base);
}

static const char *runtime_archive(Arena *a, const char *dir_opt, const char **from);
static const char *runtime_run_path(Arena *a, const char *runtime);

static int run_sweep(const SpecArgs *args, Arena *arena, Diags *diags)
{
    size_t len;
    char *text = read_spec(arena, args->path, &len);
    if (!text)
        return EXIT_USAGE;
    FeOptions opt = {.model_name = args->model,
                     .defines = args->defines,
                     .n_defines = args->n_defines,
                     .is_training = !args->is_list};
    target_cpu(&opt, NULL, arena);
    FeSweepOptions so = {.sweep_name = args->sweep, .grids = args->grids, .n_grids = args->n_grids};
    FeVariant *vars;
    int n;
    bool ok = fe_sweep_expand(arena, diags, args->path, text, len, &opt, &so, &vars, &n);
    diag_print(diags, stderr, false);
    if (!ok)
        return EXIT_DIAG;
    if (n == 0) {
        printf("no sweeps in %s\n", args->path);
        return EXIT_OK;
    }
    const char *runtime_from = NULL, *runtime = NULL;
    if (!args->is_list && !(runtime = runtime_archive(arena, NULL, &runtime_from)))
        return EXIT_USAGE;
    SweepRunOptions ro = {.spec_path = args->path,
                          .runtime_lib = runtime,
                          .link_args = runtime ? runtime_run_path(arena, runtime) : NULL,
                          .out_dir = args->out ? args->out : sweep_default_out(arena, args->path),
                          .jobs = args->jobs > 0 ? args->jobs : 1,
                          .threads = args->threads,
                          .is_list = args->is_list,
                          .is_tty = isatty(fileno(stdout)),
                          .out = stdout,
                          .err = stderr};
    return sweep_run(arena, vars, n, &ro);
}

static void help_dump_ir(FILE *out)
{
    int n;
    const Pass *const *list = pass_list(&n);
    fprintf(out,
            "usage: relorac dump-ir SPEC [--after PASS|all] [--passes a,b,...] [--kernels] [--device cuda]\n"
            "                            [-D key=value]... [--model NAME]\n"
            "\n"
            "Prints the IR of a spec: as lowered (no option), after a pass of the pipeline\n"
            "(--after), or as kernels after the whole pipeline (--kernels). docs/ir.md\n"
            "describes the text form.\n"
            "\n"
            "passes, in pipeline order:\n");
    for (int i = 0; i < n; i++)
        fprintf(out, "  %-12s %s\n", list[i]->name, list[i]->summary);
    fprintf(out,
            "\n"
            "options:\n"
            "  --after PASS   print the module after PASS (all: after every pass)\n"
            "  --passes LIST  run only these passes (comma-separated, pipeline order)\n"
            "  --kernels      print the loop-level kernels of every function\n"
            "  --device cuda  print the device code (CUDA C) of every kernel\n"
            "  -D key=value   override a field (see relorac check --help)\n"
            "  --model NAME   the model (default: the last one declared)\n");
}

static void help_opt(FILE *out)
{
    fprintf(out,
            "usage: relorac opt FILE.ir --passes a,b,...\n"
            "\n"
            "Parses IR in its text form, runs the given passes over it (verifying after\n"
            "each) and prints the result.\n");
}

/* Splits "a,b,c" into an arena array; checks every name is a pass. */
static bool split_passes(Arena *a, const char *list, const char ***out, int *n)
{
    *n = 0;
    *out = ARENA_ARRAY(a, const char *, strlen(list) + 1);
    const char *p = list;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *name = arena_strndup(a, p, len);
        if (!pass_find(name)) {
            fprintf(stderr, "relorac: unknown pass '%s' (relorac dump-ir --help lists them)\n", name);
            return false;
        }
        (*out)[(*n)++] = name;
        p += len + (e ? 1 : 0);
    }
    return true;
}

/* Spec -> lowered IR -> (some of) the pipeline. NULL after printing diagnostics. */
static IrModule *compile_spec(Arena *arena, Diags *diags, const SpecArgs *args, const PassOptions *po, bool run_passes)
{
    size_t len;
    char *text = read_spec(arena, args->path, &len);
    if (!text)
        return NULL;
    FeOptions opt = {.model_name = args->model,
                     .defines = args->defines,
                     .n_defines = args->n_defines,
                     .is_training = args->is_training};
    target_cpu(&opt, args->cpu, arena);
    const Spec *spec = fe_load_spec_buffer(arena, diags, args->path, text, len, &opt);
    IrModule *m = spec ? fe_lower(arena, diags, spec) : NULL;
    if (m && run_passes) {
        PassCtx pc = {arena, diags, m, PROP_LOWERED};
        if (!pass_pipeline_run(&pc, po))
            m = NULL;
    }
    diag_print(diags, stderr, false);
    return m;
}

static int run_dump_ir(const SpecArgs *args, Arena *arena, Diags *diags)
{
    if (args->after && strcmp(args->after, "all") != 0 && !pass_find(args->after)) {
        fprintf(stderr, "relorac dump-ir: unknown pass '%s' (relorac dump-ir --help lists them)\n", args->after);
        return EXIT_USAGE;
    }
    PassOptions po = {.verify_each = true, .dump_after = args->after, .dump = stdout};
    if (args->passes && !split_passes(arena, args->passes, (const char ***)&po.only, &po.n_only))
        return EXIT_USAGE;
    const CgBackend *be = NULL;
    if (args->device) {
        be = cg_backend_find(args->device);
        if (!be || !be->emit_device_source) {
            fprintf(stderr, "relorac dump-ir: --device %s: no backend with device code of that name (cuda)\n",
                    args->device);
            return EXIT_USAGE;
        }
    }
    bool run = args->after || args->passes || args->is_kernels || be;
    IrModule *m = compile_spec(arena, diags, args, &po, run);
    if (!m)
        return diags->n_errors ? EXIT_DIAG : EXIT_USAGE;
    if (args->is_kernels || be) {
        Diags kd;
        diag_init(&kd, arena);
        KProgram *p = k_program_build(arena, &kd, m);
        bool ok = p && (!be || be->emit_device_source(p, NULL, stdout, &kd));
        diag_print(&kd, stderr, false);
        if (!ok)
            return EXIT_DIAG;
        if (args->is_kernels)
            k_print(p, stdout);
    } else if (!run) {
        ir_print(m, stdout);
    }
    return EXIT_OK;
}

static int run_opt(const SpecArgs *args, Arena *arena, Diags *diags)
{
    PassOptions po = {.verify_each = true};
    if (args->passes && !split_passes(arena, args->passes, (const char ***)&po.only, &po.n_only))
        return EXIT_USAGE;
    size_t len;
    char *text = read_spec(arena, args->path, &len);
    if (!text)
        return EXIT_USAGE;
    int rc = EXIT_DIAG;
    IrModule *m = ir_parse(arena, diags, args->path, text, len);
    if (m && ir_verify(m, diags)) {
        PassCtx pc = {arena, diags, m, ~0u};
        if (pass_pipeline_run(&pc, &po)) {
            ir_print(m, stdout);
            rc = EXIT_OK;
        }
    }
    diag_print(diags, stderr, false);
    return rc;
}

static void help_build(FILE *out)
{
    fprintf(out,
            "usage: relorac build SPEC -o BIN [-D key=value]... [--model NAME] [--target cpu|cuda]\n"
            "                     [--cpu NAME] [--arch sm_80,sm_90] [--nvrtc PATH]\n"
            "\n"
            "Compiles the spec into a standalone training binary: the passes, the kernels\n"
            "(cpu: LLVM loops optimised for the host CPU or --cpu, GEMMs on BLIS's kernels,\n"
            "else OpenBLAS, loaded at start-up; cuda: CUDA C compiled by NVRTC into the\n"
            "binary for each --arch, cuBLAS), linked with the runtime.\n"
            "Run BIN --help for the trainer's options; its defaults come from the spec.\n"
            "\n"
            "options:\n"
            "  -o BIN         the executable to write\n"
            "  --target T     cpu or cuda (same as -D train.target=T; default: the spec's)\n"
            "  --cpu NAME     target CPU (e.g. skylake-avx512); default: this machine's\n"
            "  --arch LIST    cuda: GPU architectures, comma-separated (default sm_80,sm_90)\n"
            "  --nvrtc PATH   cuda: the libnvrtc to compile with (default: RELORAC_NVRTC,\n"
            "                 else libnvrtc.so.13/.12 from the loader's path or /usr/local/cuda)\n"
            "  -D key=value   override a field (see relorac check --help)\n"
            "  --model NAME   the model (default: the last one declared)\n"
            "  --runtime-dir DIR\n"
            "                 the folder holding the runtime library " RUNTIME_ARCHIVE " (default:\n"
            "                 $RELORAC_RUNTIME_DIR, else the build tree's when this relorac\n"
            "                 is the build tree's, else the installed one, found from this\n"
            "                 executable's folder as " RELORAC_RUNTIME_REL_DIR ")\n"
            "  -v, --verbose  say which runtime library the trainer is linked with\n"
            "\n"
            "exit status: 0 ok, 1 the spec has errors, 2 usage, I/O or toolchain error\n");
}

/* The runtime archive a trainer links against, and where it was found:
 *  1. --runtime-dir DIR, else $RELORAC_RUNTIME_DIR: DIR/librelorac_rt.a, which must exist;
 *  2. the build tree's, when this executable is the build tree's relorac;
 *  3. the installed one: <this executable's folder>/RELORAC_RUNTIME_REL_DIR (meson.build:
 *     the path from bindir to <libdir>/relorac), or that path when it is absolute.
 * NULL after a message naming the path it looked for. */
/* The linker argument that gives a trainer the runtime's folder as its run path, where it
 * finds librelorac_spm (--tokenizer with a SentencePiece model); NULL when the folder's
 * name cannot be passed (no folder, a space in it). */
static const char *runtime_run_path(Arena *a, const char *runtime)
{
    const char *slash = strrchr(runtime, '/');
    if (!slash || strchr(runtime, ' '))
        return NULL;
    return arena_sprintf(a, "-Wl,-rpath,%.*s", (int)(slash - runtime), runtime);
}

static const char *runtime_archive(Arena *a, const char *dir_opt, const char **from)
{
    const char *dir = dir_opt ? dir_opt : getenv("RELORAC_RUNTIME_DIR");
    if (dir && *dir) {
        *from = dir_opt ? "--runtime-dir" : "RELORAC_RUNTIME_DIR";
        const char *path = arena_sprintf(a, "%s/%s", dir, RUNTIME_ARCHIVE);
        if (access(path, R_OK) == 0)
            return path;
        fprintf(stderr, "relorac build: %s%s%s: cannot read %s: %s\n", *from, dir_opt ? " " : "=", dir, path,
                strerror(errno));
        return NULL;
    }
    char exe[PATH_MAX], exe_dir[PATH_MAX], build_root[PATH_MAX];
    if (!realpath("/proc/self/exe", exe)) {
        fprintf(stderr, "relorac build: cannot resolve /proc/self/exe to find the runtime library: %s; set "
                        "RELORAC_RUNTIME_DIR to the folder holding %s\n", strerror(errno), RUNTIME_ARCHIVE);
        return NULL;
    }
    snprintf(exe_dir, sizeof exe_dir, "%s", exe);
    char *slash = strrchr(exe_dir, '/');
    if (slash)
        *slash = '\0';
    if (realpath(RELORAC_BUILD_ROOT, build_root) && !strcmp(build_root, exe_dir) &&
        access(RELORAC_RUNTIME_BUILD_LIB, R_OK) == 0) {
        *from = "the build tree";
        return RELORAC_RUNTIME_BUILD_LIB;
    }
    const char *rel = RELORAC_RUNTIME_REL_DIR;
    const char *dir_path = rel[0] == '/' ? rel : arena_sprintf(a, "%s/%s", exe_dir, rel);
    char norm[PATH_MAX];
    const char *path = arena_sprintf(a, "%s/%s", realpath(dir_path, norm) ? norm : dir_path, RUNTIME_ARCHIVE);
    *from = arena_sprintf(a, "installed with %s", exe);
    if (access(path, R_OK) == 0)
        return path;
    fprintf(stderr, "relorac build: cannot find the runtime library: %s: %s (looked next to %s); set "
                    "RELORAC_RUNTIME_DIR or --runtime-dir to the folder holding %s\n",
            path, strerror(errno), exe, RUNTIME_ARCHIVE);
    return NULL;
}

static int run_build(const SpecArgs *args, Arena *arena, Diags *diags)
{
    if (!args->out) {
        fprintf(stderr, "relorac build: no output given (-o BIN)\n");
        return EXIT_USAGE;
    }
    const char *runtime_from = NULL;
    const char *runtime = runtime_archive(arena, args->runtime_dir, &runtime_from);
    if (!runtime)
        return EXIT_USAGE;
    if (args->is_verbose)
        fprintf(stderr, "relorac build: runtime library %s (%s)\n", runtime, runtime_from);
    PassOptions po = {0};
    IrModule *m = compile_spec(arena, diags, args, &po, true);
    if (!m)
        return diags->n_errors ? EXIT_DIAG : EXIT_USAGE;
    const char *hf_note = ir_attrs_str(&m->attrs, "hf.export_note", NULL);
    if (hf_note)
        fprintf(stderr, "relorac build: note: %s; checkpoints keep relorac's tensor names and have no config.json\n",
                hf_note);
    const char *target = ir_attrs_str(&m->attrs, "train.target", NULL);
    if (!target) {
        fprintf(stderr, "relorac build: internal error: the module has no train.target attribute\n");
        return EXIT_DIAG;
    }
    const CgBackend *be = cg_backend_find(target);
    if (!be || !be->build_executable) {
        fprintf(stderr, "relorac build: target = %s is not available yet (no backend for it in this version)\n",
                target);
        return EXIT_DIAG;
    }
    /* the CUDA layer's archive (librelorac_rt_cuda.a) lies next to the runtime's */
    const char *slash = strrchr(runtime, '/');
    const char *cuda_lib = arena_sprintf(arena, "%.*slibrelorac_rt_cuda.a", slash ? (int)(slash - runtime + 1) : 0,
                                         runtime);
    CgOptions co = {.cpu = args->cpu,
                    .runtime_lib = runtime,
                    .runtime_cuda_lib = access(cuda_lib, R_OK) == 0 ? cuda_lib : NULL,
                    .nvrtc = args->nvrtc ? args->nvrtc : getenv("RELORAC_NVRTC")};
    if (args->arch) { /* "sm_80,sm_90" */
        int n = 0;
        const char **archs = ARENA_ARRAY(arena, const char *, strlen(args->arch) + 1);
        for (const char *s = args->arch; *s;) {
            const char *e = strchr(s, ',');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            if (len)
                archs[n++] = arena_strndup(arena, s, len);
            s += len + (e ? 1 : 0);
        }
        if (n == 0) {
            fprintf(stderr, "relorac build: --arch needs architectures such as sm_80,sm_90\n");
            return EXIT_USAGE;
        }
        co.archs = archs;
        co.n_archs = n;
    }
    Diags cd;
    diag_init(&cd, arena);
    KProgram *p = k_program_build(arena, &cd, m);
    co.link_args = runtime_run_path(arena, runtime);
    bool ok = p && be->build_executable(p, &co, args->out, &cd);
    diag_print(&cd, stderr, false);
    return ok ? EXIT_OK : EXIT_USAGE;
}

static void help_plot(FILE *out)
{
    fprintf(out,
            "usage: relorac plot DIR [-o FILE]\n"
            "\n"
            "Draws a training run from DIR/metrics.jsonl (DIR is the trainer's --out; DIR may\n"
            "also be a metrics file): the training loss and its running mean, the validation\n"
            "loss and the learning rate against steps done, with the end of the warm start\n"
            "and every ReLoRA merge marked. Uses gnuplot (Debian: gnuplot-nox).\n"
            "\n"
            "options:\n"
            "  -o FILE        the picture to write, .png or .svg (default: DIR/metrics.png)\n"
            "  -h, --help     show this help\n"
            "\n"
            "exit status: 0 ok, 1 the metrics file is malformed, 2 usage or I/O error or no\n"
            "gnuplot\n");
}

static int run_plot(const SpecArgs *args, Arena *arena, Diags *diags)
{
    (void)diags;
    struct stat st;
    if (stat(args->path, &st) != 0) {
        fprintf(stderr, "relorac plot: cannot open %s: %s\n", args->path, strerror(errno));
        return EXIT_USAGE;
    }
    bool is_dir = S_ISDIR(st.st_mode);
    const char *metrics = is_dir ? arena_sprintf(arena, "%s/metrics.jsonl", args->path) : args->path;
    const char *dir = args->path;
    if (!is_dir) {
        const char *slash = strrchr(args->path, '/');
        dir = slash ? arena_strndup(arena, args->path, (size_t)(slash - args->path)) : ".";
    }
    const char *out = args->out ? args->out : arena_sprintf(arena, "%s/metrics.png", dir);
    size_t n = strlen(out);
    if (n < 5 || (strcmp(out + n - 4, ".png") != 0 && strcmp(out + n - 4, ".svg") != 0)) {
        fprintf(stderr, "relorac plot: -o %s: the file name must end in .png or .svg\n", out);
        return EXIT_USAGE;
    }
    PlotMetrics m;
    int rc = plot_metrics_read(arena, metrics, &m, stderr);
    if (rc != 0)
        return rc == 1 ? EXIT_DIAG : EXIT_USAGE;
    const char *tmp = getenv("TMPDIR");
    if (plot_draw(arena, &m, arena_sprintf(arena, "relorac: %s", metrics), out, tmp && *tmp ? tmp : "/tmp",
                  stderr) != 0)
        return EXIT_USAGE;
    int n_val = 0, n_merge = 0;
    for (int i = 0; i < m.n; i++) {
        n_val += !isnan(m.p[i].val_loss);
        n_merge += (m.p[i].events & PLOT_EV_RESET) != 0;
    }
    printf("relorac plot: wrote %s (%d steps, %d validations, %d merges)\n", out, m.n, n_val, n_merge);
    return EXIT_OK;
}

/* A command: the long options it accepts (`allow`, as parse_spec_args takes them), its
 * --help, and its work, which gets the parsed arguments, the compilation's arena and
 * diagnostics in it, and returns the exit code. */
typedef struct Command {
    const char *name;
    const char *summary;
    const char *allow;
    void (*help)(FILE *out);
    int (*run)(const SpecArgs *args, Arena *arena, Diags *diags);
} Command;

static const Command commands[] = {
    {"check", "check a spec; report parameters, FLOPs and memory", "model json plan cpu", help_check, run_check},
    {"sweep", "build and train every variant of the spec's sweeps; tables and a plot", "model sweep runner",
     help_sweep, run_sweep},
    {"build", "compile a spec into a standalone training binary", "model output", help_build, run_build},
    {"dump-ir", "print the IR of a spec, as lowered or after a pass", "model after kernels", help_dump_ir,
     run_dump_ir},
    {"opt", "run passes over IR in its text form", "after", help_opt, run_opt},
    {"plot", "draw a training run's losses and learning rate (gnuplot)", "plot", help_plot, run_plot},
};

/* c->run, with the arena's out-of-memory handler set here: running out ends the
 * command with a message and EXIT_USAGE. The arena belongs to the caller, so no local
 * of this function changes between setjmp and longjmp (nothing needs volatile). */
static int run_guarded(const Command *c, const SpecArgs *args, Arena *arena)
{
    jmp_buf oom;
    if (setjmp(oom)) {
        fprintf(stderr, "relorac: out of memory\n");
        return EXIT_USAGE;
    }
    arena->oom_jmp = &oom;
    Diags diags;
    diag_init(&diags, arena);
    return c->run(args, arena, &diags);
}

/* Parses the command's arguments (argv after its name); prints its help for -h or
 * --help, or runs it in a fresh arena that is freed when it returns. */
static int run_command(const Command *c, int argc, char **argv)
{
    SpecArgs args;
    int rc;
    if (!parse_spec_args(c->name, argc, argv, &args, c->allow)) {
        rc = EXIT_USAGE;
    } else if (args.is_help) {
        c->help(stdout);
        rc = EXIT_OK;
    } else {
        Arena arena;
        arena_init(&arena);
        rc = run_guarded(c, &args, &arena);
        arena_fini(&arena);
    }
    free(args.defines);
    free(args.grids);
    return rc;
}

/* `relorac fields [--markdown SECTION]`: every field of the language with its type,
 * default and meaning (frontend/fields.def). Not in --help: docs/language.md's field
 * tables are this command's markdown, and tests/check_docs.py keeps them equal. */
static int run_fields(int argc, char **argv)
{
    if (argc == 0) {
        fe_fields_print_text(stdout);
        return EXIT_OK;
    }
    bool help = argc == 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"));
    FieldSection s = argc == 2 && !strcmp(argv[0], "--markdown") ? fe_section_find(argv[1]) : FS_COUNT;
    if (s == FS_COUNT) { /* --help is asked for: its text goes to stdout with exit 0 */
        FILE *out = help ? stdout : stderr;
        fprintf(out, "usage: relorac fields [--markdown SECTION]  (SECTION:");
        for (int i = 0; i < FS_COUNT; i++)
            fprintf(out, " %s", fe_sections[i].name);
        fprintf(out, ")\n");
        return help ? EXIT_OK : EXIT_USAGE;
    }
    fe_fields_print_markdown(stdout, s);
    return EXIT_OK;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: relorac <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "  %-14s %s\n", "tokenize", "text into token files, with a trained or given tokenizer");
    fprintf(out,
            "\n"
            "options:\n"
            "  -h, --help     show this help (relorac <command> --help for a command's)\n"
            "  --version      show the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return EXIT_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("relorac %s\n", RELORAC_VERSION);
        return EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return run_command(&commands[i], argc - 2, argv + 2);
    if (!strcmp(argv[1], "fields"))
        return run_fields(argc - 2, argv + 2);
    if (!strcmp(argv[1], "tokenize"))
        return tokenize_main(argc - 2, argv + 2);
    fprintf(stderr, "relorac: unknown command '%s' (see relorac --help)\n", argv[1]);
    return EXIT_USAGE;
}
