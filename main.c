/* relorac: the driver. The only code that reads argv/env or calls exit().
 * Subcommands: check, dump-ir, build, run (see `relorac --help`). */
#include <stdio.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out,
        "usage: relorac <command> [options]\n"
        "\n"
        "commands:\n"
        "  check SPEC     check a model spec and report parameters, FLOPs and memory\n"
        "\n"
        "options:\n"
        "  -h, --help     show this help\n"
        "  --version      show the version\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("relorac %s\n", RELORAC_VERSION);
        return 0;
    }
    fprintf(stderr, "relorac: unknown command '%s' (see relorac --help)\n", argv[1]);
    return 2;
}
