/* The backends, one per train.target. Adding a target adds its files and one line here;
 * nothing else in the compiler names a target. */
#include <string.h>

#include "cg.h"

extern const CgBackend cg_backend_cpu;  /* llvm_kernels.c */
extern const CgBackend cg_backend_cuda; /* llvm_cuda.c */

static const CgBackend *const backends[] = {
    &cg_backend_cpu,
    &cg_backend_cuda,
};

const CgBackend *const *cg_backend_list(int *n)
{
    *n = (int)(sizeof backends / sizeof backends[0]);
    return backends;
}

const CgBackend *cg_backend_find(const char *name)
{
    for (size_t i = 0; i < sizeof backends / sizeof backends[0]; i++)
        if (name && strcmp(backends[i]->name, name) == 0)
            return backends[i];
    return NULL;
}
