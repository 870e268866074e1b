/* libFuzzer target: arbitrary bytes through the parser and the checker.
 * Any crash, sanitizer report, hang or leak is a bug: malformed specs must only ever
 * produce diagnostics. An exhausted arena longjmps back here, like in the driver. */
#include <setjmp.h>
#include <stddef.h>
#include <stdint.h>

#include "fe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__ubsan_default_options(void);

/* UBSan only prints by default, and libFuzzer would carry on: make any report a
 * crash (with its stack) so that it lands in the artifacts like an ASan one. */
const char *__ubsan_default_options(void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Arena a;
    arena_init(&a);
    jmp_buf oom;
    a.oom_jmp = &oom;
    if (setjmp(oom) == 0) {
        Diags d;
        diag_init(&d, &a);
        FeCtx ctx;
        fe_ctx_init(&ctx, &a, &d);
        fe_parse_buffer(&ctx, "fuzz.relora", (const char *)data, size);
        if (ctx.ast) {
            FeOptions opt = {0};
            fe_check(&a, &d, ctx.ast, NULL, 0, &opt);
        }
    }
    arena_fini(&a);
    return 0;
}
