/* A stand-in for the NVIDIA driver (libcuda.so.1) with no GPU behind it, for checking how a
 * CUDA trainer reports a machine it cannot run on (tests/cuda.sh). FAKE_CUDA picks what
 * it reports: "nodevice" (cuInit: CUDA_ERROR_NO_DEVICE), "zero" (no devices), "sm75" and
 * "sm86" (one device of that compute capability); everything past the device query fails
 * with CUDA_ERROR_UNKNOWN (999). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef int R;
enum { OK = 0, NO_DEVICE = 100, UNKNOWN = 999 };

static const char *mode(void)
{
    const char *m = getenv("FAKE_CUDA");
    return m ? m : "nodevice";
}

R cuInit(unsigned flags)
{
    (void)flags;
    return strcmp(mode(), "nodevice") == 0 ? NO_DEVICE : OK;
}

R cuDriverGetVersion(int *v)
{
    *v = 13000;
    return OK;
}

R cuDeviceGetCount(int *n)
{
    *n = strcmp(mode(), "zero") == 0 ? 0 : 1;
    return OK;
}

R cuDeviceGet(int *d, int i)
{
    *d = i;
    return OK;
}

R cuDeviceGetAttribute(int *v, int attr, int dev)
{
    (void)dev;
    int sm = strcmp(mode(), "sm86") == 0 ? 86 : 75;
    *v = attr == 75 ? sm / 10 : attr == 76 ? sm % 10 : 0;
    return OK;
}

R cuDeviceGetName(char *name, int len, int dev)
{
    (void)dev;
    strncpy(name, "Fake GPU", (size_t)len);
    return OK;
}

R cuGetErrorString(R r, const char **s)
{
    *s = r == NO_DEVICE ? "no CUDA-capable device is detected" : "unknown error";
    return OK;
}

/* the rest: present (the layer loads them all) and failing */
#define FAIL(name)                                                                                                     \
    R name(void) { return UNKNOWN; }
FAIL(cuDevicePrimaryCtxRetain)
FAIL(cuDevicePrimaryCtxRelease_v2)
FAIL(cuCtxSetCurrent)
FAIL(cuStreamCreate)
FAIL(cuStreamDestroy_v2)
FAIL(cuStreamSynchronize)
FAIL(cuModuleLoadData)
FAIL(cuModuleUnload)
FAIL(cuModuleGetFunction)
FAIL(cuFuncSetAttribute)
FAIL(cuMemAlloc_v2)
FAIL(cuMemFree_v2)
FAIL(cuMemGetInfo_v2)
FAIL(cuMemsetD8Async)
FAIL(cuMemcpyHtoDAsync_v2)
FAIL(cuMemcpyDtoHAsync_v2)
FAIL(cuMemAllocHost_v2)
FAIL(cuMemFreeHost)
FAIL(cuEventCreate)
FAIL(cuEventRecord)
FAIL(cuEventSynchronize)
FAIL(cuEventDestroy_v2)
FAIL(cuLaunchKernel)
