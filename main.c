/* relorac: the driver. The only code that reads argv/env or calls exit().
 * Subcommands live in one table (name, summary, help, run) so that others can add
 * dump-ir, build and run next to check and sweep. Exit codes: 0 ok, 1 diagnostics,
 * 2 usage or I/O errors. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "diag.h"
#include "fe.h"
#include "report.h"

enum { EXIT_OK = 0, EXIT_DIAG = 1, EXIT_USAGE = 2 };

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
} SpecArgs;

/* Parses SPEC [-D key=value]... [--model NAME] [--json] [--sweep NAME]; false (after a
 * message) on a usage error. `allow` lists the long options the command accepts. */
static bool parse_spec_args(const char *cmd, int argc, char **argv, SpecArgs *a, const char *allow)
{
    memset(a, 0, sizeof *a);
    a->defines = calloc((size_t)argc + 1, sizeof *a->defines);
    if (!a->defines) {
        fprintf(stderr, "relorac: out of memory\n");
        return false;
    }
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i];
        const char *val = NULL;
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            a->is_help = true;
        } else if (!strncmp(s, "-D", 2)) {
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
        } else if (!strcmp(s, "--json") && strstr(allow, "json")) {
            a->is_json = true;
        } else if (!strcmp(s, "--train")) {
            a->is_training = true;
        } else if (s[0] == '-' && s[1] != '\0') {
            fprintf(stderr, "relorac %s: unknown option '%s' (see relorac %s --help)\n", cmd, s, cmd);
            return false;
        } else if (a->path) {
            fprintf(stderr, "relorac %s: more than one spec file given ('%s' and '%s')\n", cmd, a->path, s);
            return false;
        } else {
            a->path = s;
        }
    }
    if (!a->path && !a->is_help) {
        fprintf(stderr, "relorac %s: no spec file given (see relorac %s --help)\n", cmd, cmd);
        return false;
    }
    return true;
}

static void help_check(FILE *out)
{
    fprintf(out,
            "usage: relorac check SPEC [-D key=value]... [--model NAME] [--json] [--train]\n"
            "\n"
            "Checks a .relora spec and reports parameter counts per module and per training\n"
            "phase, FLOPs per token and a memory estimate (see docs/language.md).\n"
            "\n"
            "options:\n"
            "  -D key=value   override a field, e.g. -D train.steps=100, -D model.dim=256,\n"
            "                 -D adapter.rank=16, -D train.schedule.reset_every=100,\n"
            "                 -D model.block.swiglu.hidden=688 (may be repeated)\n"
            "  --model NAME   the model to check (default: the last one declared)\n"
            "  --json         print the report as JSON\n"
            "  --train        check as for training: missing data files are errors\n"
            "  -h, --help     show this help\n"
            "\n"
            "exit status: 0 ok, 1 the spec has errors, 2 usage or I/O error\n");
}

static void help_sweep(FILE *out)
{
    fprintf(out,
            "usage: relorac sweep SPEC [--sweep NAME] [-D key=value]... [--model NAME]\n"
            "\n"
            "Expands the spec's sweeps into their grid of variants, checks each and lists\n"
            "them with their parameter counts.\n"
            "\n"
            "options:\n"
            "  --sweep NAME   only this sweep (default: all)\n"
            "  -D key=value   override a field in every variant\n"
            "  --model NAME   the model (default: the last one declared)\n"
            "  -h, --help     show this help\n");
}

/* Reads the spec file; prints and returns NULL on an I/O error. */
static char *read_spec(Arena *a, const char *path, size_t *len)
{
    char *text = fe_read_file(a, path, len);
    if (!text)
        fprintf(stderr, "relorac: cannot read '%s': %s\n", path, strerror(errno));
    return text;
}

static int run_check(int argc, char **argv)
{
    SpecArgs args;
    if (!parse_spec_args("check", argc, argv, &args, "model json")) {
        free(args.defines);
        return EXIT_USAGE;
    }
    if (args.is_help) {
        help_check(stdout);
        free(args.defines);
        return EXIT_OK;
    }
    Arena arena;
    arena_init(&arena);
    jmp_buf oom;
    int rc;
    if (setjmp(oom)) {
        fprintf(stderr, "relorac: out of memory\n");
        rc = EXIT_USAGE;
        goto done;
    }
    arena.oom_jmp = &oom;
    Diags diags;
    diag_init(&diags, &arena);
    size_t len;
    char *text = read_spec(&arena, args.path, &len);
    if (!text) {
        rc = EXIT_USAGE;
        goto done;
    }
    FeOptions opt = {.model_name = args.model,
                     .defines = args.defines,
                     .n_defines = args.n_defines,
                     .is_training = args.is_training};
    const Spec *spec = fe_load_spec_buffer(&arena, &diags, args.path, text, len, &opt);
    diag_print(&diags, stderr, false);
    if (!spec) {
        rc = EXIT_DIAG;
        goto done;
    }
    FeReport report;
    fe_report_compute(&arena, spec, &report);
    if (args.is_json)
        fe_report_print_json(stdout, spec, &report);
    else
        fe_report_print(stdout, spec, &report);
    rc = EXIT_OK;
done:
    arena_fini(&arena);
    free(args.defines);
    return rc;
}

static int run_sweep(int argc, char **argv)
{
    SpecArgs args;
    if (!parse_spec_args("sweep", argc, argv, &args, "model sweep")) {
        free(args.defines);
        return EXIT_USAGE;
    }
    if (args.is_help) {
        help_sweep(stdout);
        free(args.defines);
        return EXIT_OK;
    }
    Arena arena;
    arena_init(&arena);
    jmp_buf oom;
    int rc;
    if (setjmp(oom)) {
        fprintf(stderr, "relorac: out of memory\n");
        rc = EXIT_USAGE;
        goto done;
    }
    arena.oom_jmp = &oom;
    Diags diags;
    diag_init(&diags, &arena);
    size_t len;
    char *text = read_spec(&arena, args.path, &len);
    if (!text) {
        rc = EXIT_USAGE;
        goto done;
    }
    FeOptions opt = {.model_name = args.model, .defines = args.defines, .n_defines = args.n_defines};
    FeVariant *vars;
    int n;
    bool ok = fe_sweep_expand(&arena, &diags, args.path, text, len, &opt, args.sweep, &vars, &n);
    diag_print(&diags, stderr, false);
    if (!ok) {
        rc = EXIT_DIAG;
        goto done;
    }
    if (n == 0)
        printf("no sweeps in %s\n", args.path);
    rc = EXIT_OK;
    for (int i = 0; i < n; i++) {
        if (!vars[i].spec) {
            printf("%-40s error\n", vars[i].name);
            rc = EXIT_DIAG;
            continue;
        }
        FeReport r;
        fe_report_compute(&arena, vars[i].spec, &r);
        printf("%-40s params %13lld  relora trainable %13lld  flops/token %15lld\n", vars[i].name, (long long)r.total,
               (long long)(r.has_relora ? r.trainable_relora : r.total),
               (long long)(r.has_relora ? r.flops_relora : r.flops_full));
    }
done:
    arena_fini(&arena);
    free(args.defines);
    return rc;
}

typedef struct Command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv after the command name */
} Command;

static const Command commands[] = {
    {"check", "check a spec; report parameters, FLOPs and memory", run_check},
    {"sweep", "list and check the variants of the spec's sweeps", run_sweep},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: relorac <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
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
            return commands[i].run(argc - 2, argv + 2);
    fprintf(stderr, "relorac: unknown command '%s' (see relorac --help)\n", argv[1]);
    return EXIT_USAGE;
}
