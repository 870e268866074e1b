/* Pass manager: requirement checks, verification after each pass, dumps. */
#include "pm.h"

#include <string.h>

static const Pass *const pipeline[] = {
#define PASS(id) &pass_##id,
#include "passes.def"
#undef PASS
};

const Pass *const *pass_list(int *n)
{
    *n = (int)(sizeof pipeline / sizeof pipeline[0]);
    return pipeline;
}

const Pass *pass_find(const char *name)
{
    int n;
    const Pass *const *list = pass_list(&n);
    for (int i = 0; i < n; i++)
        if (strcmp(list[i]->name, name) == 0)
            return list[i];
    return NULL;
}

static bool selected(const PassOptions *opt, const Pass *p)
{
    if (!opt->only)
        return true;
    for (int i = 0; i < opt->n_only; i++)
        if (strcmp(opt->only[i], p->name) == 0)
            return true;
    return false;
}

bool pass_pipeline_run(PassCtx *ctx, const PassOptions *opt)
{
    int n;
    const Pass *const *list = pass_list(&n);
    for (int i = 0; i < n; i++) {
        const Pass *p = list[i];
        if (!selected(opt, p))
            continue;
        if ((ctx->props & p->requires) != p->requires) {
            diag_error(ctx->diags, srcloc_none(), "pass '%s' needs a property that no earlier pass provided", p->name);
            return false;
        }
        if (!p->run(ctx))
            return false;
        ctx->props = (ctx->props & ~p->invalidates) | p->provides;
        if (opt->verify_each && !ir_verify(ctx->m, ctx->diags)) {
            diag_note(ctx->diags, srcloc_none(), "the IR was broken by pass '%s'", p->name);
            return false;
        }
        if (opt->dump_after && (strcmp(opt->dump_after, "all") == 0 || strcmp(opt->dump_after, p->name) == 0)) {
            if (strcmp(opt->dump_after, "all") == 0)
                fprintf(opt->dump, "# after %s\n", p->name);
            ir_print(ctx->m, opt->dump);
        }
    }
    return true;
}
