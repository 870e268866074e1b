/* The runtime's CUDA layer (rt_cuda.h): the device under a CUDA trainer. It loads the
 * driver (libcuda.so.1) and cuBLAS with dlopen when the context is created, so the binary
 * links no CUDA library and a machine without a GPU gets a message, never a crash:
 * "no CUDA driver found", "no CUDA device found", or an unsupported architecture, each
 * its own. Then: the primary context of device 0, one stream for everything, the module
 * of the cubin for the device's architecture (an exact match, else the newest of the same
 * major version no newer than the device), the pools and a workspace in device memory,
 * a cuBLAS handle on the stream, and pinned staging buffers so that the inputs of a step
 * (the batch, the step's scalars) are copied while the previous step's kernels still run.
 *
 * Why our own declarations of the driver API rather than <cuda.h>: the runtime builds
 * where no toolkit is installed, and a trainer must not need one to start. The driver's
 * C ABI is stable (the _v2 entry points); when <cuda.h> is at hand at build time
 * (RELORAC_HAVE_CUDA_H), the types below are checked against it. */
#include "rt_cuda.h"
#include "rt_internal.h"
#include "rt_ops.h"

#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef RELORAC_HAVE_CUDA_H
#include <cuda.h>
#endif

typedef int CuResult; /* CUresult: 0 CUDA_SUCCESS */
typedef int CuDevice;
typedef struct CuCtxS *CuContext;
typedef struct CuModS *CuModule;
typedef struct CuFuncS *CuFunction;
typedef struct CuStreamS *CuStream;
typedef struct CuEventS *CuEvent;
typedef unsigned long long CuPtr; /* CUdeviceptr */

enum {
    X_NO_DEVICE = 100,           /* CUDA_ERROR_NO_DEVICE */
    X_STUB = 34,                 /* CUDA_ERROR_STUB_LIBRARY */
    X_DRIVER_MISMATCH = 803,     /* CUDA_ERROR_SYSTEM_DRIVER_MISMATCH */
    X_NO_BINARY = 209,           /* CUDA_ERROR_NO_BINARY_FOR_GPU */
    X_PTX_VERSION = 222,         /* CUDA_ERROR_UNSUPPORTED_PTX_VERSION */
    X_ATTR_MAJOR = 75,           /* CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR */
    X_ATTR_MINOR = 76,
    X_FUNC_MAX_DYN_SMEM = 8,     /* CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES */
    X_STREAM_NON_BLOCKING = 1,   /* CU_STREAM_NON_BLOCKING */
    X_EVENT_DISABLE_TIMING = 2,  /* CU_EVENT_DISABLE_TIMING */
};

#ifdef RELORAC_HAVE_CUDA_H
_Static_assert(sizeof(CUdeviceptr) == sizeof(CuPtr) && sizeof(CUresult) == sizeof(CuResult), "CUDA types");
_Static_assert((int)CUDA_ERROR_NO_DEVICE == X_NO_DEVICE && (int)CUDA_ERROR_STUB_LIBRARY == X_STUB &&
                   (int)CUDA_ERROR_SYSTEM_DRIVER_MISMATCH == X_DRIVER_MISMATCH &&
                   (int)CUDA_ERROR_NO_BINARY_FOR_GPU == X_NO_BINARY &&
                   (int)CUDA_ERROR_UNSUPPORTED_PTX_VERSION == X_PTX_VERSION,
               "CUDA error codes");
_Static_assert((int)CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR == X_ATTR_MAJOR &&
                   (int)CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR == X_ATTR_MINOR &&
                   (int)CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES == X_FUNC_MAX_DYN_SMEM &&
                   (int)CU_STREAM_NON_BLOCKING == X_STREAM_NON_BLOCKING &&
                   (int)CU_EVENT_DISABLE_TIMING == X_EVENT_DISABLE_TIMING,
               "CUDA enums");
#endif

/* cuBLAS (cublas_api.h): row-major GEMMs become column-major ones of the transposes */
typedef struct CublasS *Cublas;
enum {
    CUBLAS_OP_N_ = 0,
    CUBLAS_OP_T_ = 1,
    CUDA_R_32F_ = 0,
    CUDA_R_16BF_ = 14,
    CUBLAS_COMPUTE_32F_ = 68,
    CUBLAS_GEMM_DEFAULT_ = -1,
};

/* The driver and cuBLAS entry points we use. */
typedef struct Api {
    void *cuda, *cublas;
    CuResult (*Init)(unsigned);
    CuResult (*DriverGetVersion)(int *);
    CuResult (*DeviceGetCount)(int *);
    CuResult (*DeviceGet)(CuDevice *, int);
    CuResult (*DeviceGetAttribute)(int *, int, CuDevice);
    CuResult (*DeviceGetName)(char *, int, CuDevice);
    CuResult (*DevicePrimaryCtxRetain)(CuContext *, CuDevice);
    CuResult (*DevicePrimaryCtxRelease)(CuDevice);
    CuResult (*CtxSetCurrent)(CuContext);
    CuResult (*StreamCreate)(CuStream *, unsigned);
    CuResult (*StreamDestroy)(CuStream);
    CuResult (*StreamSynchronize)(CuStream);
    CuResult (*ModuleLoadData)(CuModule *, const void *);
    CuResult (*ModuleUnload)(CuModule);
    CuResult (*ModuleGetFunction)(CuFunction *, CuModule, const char *);
    CuResult (*FuncSetAttribute)(CuFunction, int, int);
    CuResult (*MemAlloc)(CuPtr *, size_t);
    CuResult (*MemFree)(CuPtr);
    CuResult (*MemGetInfo)(size_t *, size_t *);
    CuResult (*MemsetD8Async)(CuPtr, unsigned char, size_t, CuStream);
    CuResult (*MemcpyHtoDAsync)(CuPtr, const void *, size_t, CuStream);
    CuResult (*MemcpyDtoHAsync)(void *, CuPtr, size_t, CuStream);
    CuResult (*MemAllocHost)(void **, size_t);
    CuResult (*MemFreeHost)(void *);
    CuResult (*EventCreate)(CuEvent *, unsigned);
    CuResult (*EventRecord)(CuEvent, CuStream);
    CuResult (*EventSynchronize)(CuEvent);
    CuResult (*EventDestroy)(CuEvent);
    CuResult (*LaunchKernel)(CuFunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned,
                             CuStream, void **, void **);
    CuResult (*GetErrorString)(CuResult, const char **);
    int (*BlasCreate)(Cublas *);
    int (*BlasDestroy)(Cublas);
    int (*BlasSetStream)(Cublas, CuStream);
    int (*BlasGemmStridedBatchedEx)(Cublas, int, int, int, int, int, const void *, const void *, int, int, long long,
                                    const void *, int, int, long long, const void *, void *, int, int, long long, int,
                                    int, int);
} Api;

enum { STAGE_SLOTS = 16 };

/* The layer's state (RtCtx.device). */
typedef struct Cuda {
    Api api;
    const RtCudaCode *code;
    CuDevice dev;
    CuContext cuctx;
    CuStream stream;
    CuModule module;
    CuFunction *fn;
    CuPtr pool[RT_POOL_COUNT], ws;
    Cublas blas;
    /* pinned staging for small host -> device copies, reused in turn */
    unsigned char *stage;
    size_t slot_bytes;
    CuEvent slot_done[STAGE_SLOTS];
    int next_slot;
    bool failed; /* a device call failed: reported once, the rest is skipped */
    /* NCCL (data-parallel under mpirun with N > 1 ranks; cuda_dist_open) */
    void *nccl_dl;
    void *nccl; /* ncclComm_t */
    int (*nccl_all_reduce)(const void *, void *, size_t, int, int, void *, CuStream);
    int (*nccl_group_start)(void), (*nccl_group_end)(void);
    int (*nccl_destroy)(void *);
    const char *(*nccl_error)(int);
} Cuda;

static Cuda *cu(const RtCtx *ctx) { return ctx->device; }

static const char *cu_error(const Api *a, CuResult r)
{
    const char *s = NULL;
    if (a->GetErrorString)
        a->GetErrorString(r, &s);
    return s ? s : "unknown CUDA error";
}

/* A failure during training: once on stderr; results are NaN from now on. */
static bool ok_or_fail(Cuda *c, CuResult r, const char *what)
{
    if (r == 0)
        return true;
    if (!c->failed)
        fprintf(stderr, "train: CUDA error in %s: %s (code %d); stopping\n", what, cu_error(&c->api, r), r);
    c->failed = true;
    return false;
}

/* ---- loading ---- */

static bool load_sym(void *lib, const char *name, void *slot)
{
    void *f = dlsym(lib, name);
    memcpy(slot, &f, sizeof f); /* POSIX: a function pointer fits a void * */
    return f != NULL;
}

static bool api_load(Api *a, RtError *e)
{
    /* RTLD_NODELETE here and for cuBLAS: C++ inside them keeps allocations (libstdc++'s
     * exception pool) that must outlive a dlclose on a failed start-up */
    a->cuda = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!a->cuda)
        return rt_err(e, RT_ERR_DEVICE,
                      "no CUDA driver found (libcuda.so.1: %s): this trainer was built for target = cuda and needs "
                      "an NVIDIA GPU with its driver; build with --target cpu to train on this machine",
                      dlerror());
    struct {
        void *slot;
        const char *name;
    } syms[] = {
        {&a->Init, "cuInit"},
        {&a->DriverGetVersion, "cuDriverGetVersion"},
        {&a->DeviceGetCount, "cuDeviceGetCount"},
        {&a->DeviceGet, "cuDeviceGet"},
        {&a->DeviceGetAttribute, "cuDeviceGetAttribute"},
        {&a->DeviceGetName, "cuDeviceGetName"},
        {&a->DevicePrimaryCtxRetain, "cuDevicePrimaryCtxRetain"},
        {&a->DevicePrimaryCtxRelease, "cuDevicePrimaryCtxRelease_v2"},
        {&a->CtxSetCurrent, "cuCtxSetCurrent"},
        {&a->StreamCreate, "cuStreamCreate"},
        {&a->StreamDestroy, "cuStreamDestroy_v2"},
        {&a->StreamSynchronize, "cuStreamSynchronize"},
        {&a->ModuleLoadData, "cuModuleLoadData"},
        {&a->ModuleUnload, "cuModuleUnload"},
        {&a->ModuleGetFunction, "cuModuleGetFunction"},
        {&a->FuncSetAttribute, "cuFuncSetAttribute"},
        {&a->MemAlloc, "cuMemAlloc_v2"},
        {&a->MemFree, "cuMemFree_v2"},
        {&a->MemGetInfo, "cuMemGetInfo_v2"},
        {&a->MemsetD8Async, "cuMemsetD8Async"},
        {&a->MemcpyHtoDAsync, "cuMemcpyHtoDAsync_v2"},
        {&a->MemcpyDtoHAsync, "cuMemcpyDtoHAsync_v2"},
        {&a->MemAllocHost, "cuMemAllocHost_v2"},
        {&a->MemFreeHost, "cuMemFreeHost"},
        {&a->EventCreate, "cuEventCreate"},
        {&a->EventRecord, "cuEventRecord"},
        {&a->EventSynchronize, "cuEventSynchronize"},
        {&a->EventDestroy, "cuEventDestroy_v2"},
        {&a->LaunchKernel, "cuLaunchKernel"},
        {&a->GetErrorString, "cuGetErrorString"},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++)
        if (!load_sym(a->cuda, syms[i].name, syms[i].slot))
            return rt_err(e, RT_ERR_DEVICE, "the CUDA driver (libcuda.so.1) has no %s: update the NVIDIA driver",
                          syms[i].name);
    return true;
}

static bool blas_load(Api *a, RtError *e)
{
    static const char *const names[] = {"libcublas.so.13", "libcublas.so.12", "libcublas.so"};
    for (size_t i = 0; !a->cublas && i < sizeof names / sizeof *names; i++)
        a->cublas = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NODELETE);
    if (!a->cublas)
        return rt_err(e, RT_ERR_DEVICE, "cuBLAS cannot be loaded (libcublas.so.13 or .12: %s): install the CUDA "
                      "runtime libraries or add their folder to LD_LIBRARY_PATH", dlerror());
    if (!load_sym(a->cublas, "cublasCreate_v2", &a->BlasCreate) ||
        !load_sym(a->cublas, "cublasDestroy_v2", &a->BlasDestroy) ||
        !load_sym(a->cublas, "cublasSetStream_v2", &a->BlasSetStream) ||
        !load_sym(a->cublas, "cublasGemmStridedBatchedEx", &a->BlasGemmStridedBatchedEx))
        return rt_err(e, RT_ERR_DEVICE, "the cuBLAS library found lacks cublasGemmStridedBatchedEx");
    return true;
}

/* The image for compute capability major.minor: exact, else the newest with the same major
 * and a minor no newer (cubins run on later minor versions of their major). */
static const RtCudaImage *pick_image(const RtCudaCode *code, int major, int minor)
{
    const RtCudaImage *best = NULL;
    for (int i = 0; i < code->n_images; i++) {
        const RtCudaImage *im = &code->images[i];
        if (im->arch == major * 10 + minor)
            return im;
        if (im->arch / 10 == major && im->arch % 10 <= minor && (!best || im->arch > best->arch))
            best = im;
    }
    return best;
}

static void cuda_close(RtCtx *ctx);

#define DEV_CHECK(call, what)                                                                                     \
    do {                                                                                                          \
        CuResult r_ = (call);                                                                                     \
        if (r_ != 0) {                                                                                            \
            rt_err(e, RT_ERR_DEVICE, "CUDA: %s failed: %s (code %d)", what, cu_error(&c->api, r_), r_);           \
            goto fail;                                                                                            \
        }                                                                                                         \
    } while (0)

static bool cuda_open(RtCtx *ctx, RtError *e)
{
    const RtModel *m = ctx->model;
    const RtCudaCode *code = m->device_code;
    if (!code || code->abi != RT_CUDA_ABI)
        return rt_err(e, RT_ERR_MODEL, "the trainer's CUDA code table is missing or of another version");
    Cuda *c = calloc(1, sizeof *c);
    if (!c)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    c->code = code;
    ctx->device = c;
    if (!api_load(&c->api, e))
        goto fail;
    CuResult r = c->api.Init(0);
    if (r == X_NO_DEVICE) {
        rt_err(e, RT_ERR_DEVICE, "no CUDA device found: this trainer was built for target = cuda and needs an NVIDIA "
               "GPU; build with --target cpu to train on this machine");
        goto fail;
    }
    if (r == X_STUB) {
        rt_err(e, RT_ERR_DEVICE, "no CUDA driver found (libcuda.so.1 is the toolkit's stub, not a driver): this "
               "trainer needs an NVIDIA GPU with its driver");
        goto fail;
    }
    if (r == X_DRIVER_MISMATCH) {
        rt_err(e, RT_ERR_DEVICE, "the NVIDIA kernel driver and libcuda.so.1 are of different versions: %s",
               cu_error(&c->api, r));
        goto fail;
    }
    DEV_CHECK(r, "cuInit");
    int n_dev = 0;
    DEV_CHECK(c->api.DeviceGetCount(&n_dev), "cuDeviceGetCount");
    if (n_dev == 0) {
        rt_err(e, RT_ERR_DEVICE, "no CUDA device found: this trainer was built for target = cuda and needs an NVIDIA "
               "GPU; build with --target cpu to train on this machine");
        goto fail;
    }
    /* under mpirun, rank L of this machine takes device L: NCCL needs one device per rank */
    const char *lr = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    int local = lr && *lr ? atoi(lr) : 0;
    if (local >= n_dev) {
        rt_err(e, RT_ERR_DEVICE, "mpirun started more ranks on this machine than it has CUDA devices (%d): the rank "
               "of local index %d has none; a CUDA trainer runs one rank per GPU, so a single-GPU machine runs one "
               "rank", n_dev, local);
        goto fail;
    }
    DEV_CHECK(c->api.DeviceGet(&c->dev, local), "cuDeviceGet");
    int major = 0, minor = 0;
    DEV_CHECK(c->api.DeviceGetAttribute(&major, X_ATTR_MAJOR, c->dev), "cuDeviceGetAttribute");
    DEV_CHECK(c->api.DeviceGetAttribute(&minor, X_ATTR_MINOR, c->dev), "cuDeviceGetAttribute");
    const RtCudaImage *img = pick_image(code, major, minor);
    if (!img) {
        char name[128] = "?", have[128] = "";
        c->api.DeviceGetName(name, sizeof name, c->dev);
        for (int i = 0; i < code->n_images; i++)
            snprintf(have + strlen(have), sizeof have - strlen(have), "%s sm_%d", i ? "," : "", code->images[i].arch);
        rt_err(e, RT_ERR_DEVICE, "unsupported GPU architecture sm_%d%d (%s): this trainer has kernels for%s; rebuild "
               "with relorac build --target cuda --arch sm_%d%d", major, minor, name, have, major, minor);
        goto fail;
    }
    if (!blas_load(&c->api, e))
        goto fail;
    DEV_CHECK(c->api.DevicePrimaryCtxRetain(&c->cuctx, c->dev), "cuDevicePrimaryCtxRetain");
    DEV_CHECK(c->api.CtxSetCurrent(c->cuctx), "cuCtxSetCurrent");
    DEV_CHECK(c->api.StreamCreate(&c->stream, X_STREAM_NON_BLOCKING), "cuStreamCreate");
    r = c->api.ModuleLoadData(&c->module, img->cubin);
    if (r == X_NO_BINARY || r == X_PTX_VERSION) {
        int v = 0;
        c->api.DriverGetVersion(&v);
        rt_err(e, RT_ERR_DEVICE, "the NVIDIA driver (CUDA %d.%d) cannot load this trainer's sm_%d kernels: %s; update "
               "the driver", v / 1000, v % 1000 / 10, img->arch, cu_error(&c->api, r));
        goto fail;
    }
    DEV_CHECK(r, "loading the kernels (cuModuleLoadData)");
    c->fn = calloc((size_t)code->n_kernels + 1, sizeof *c->fn);
    if (!c->fn) {
        rt_err(e, RT_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < code->n_kernels; i++) {
        DEV_CHECK(c->api.ModuleGetFunction(&c->fn[i], c->module, code->names[i]), code->names[i]);
        if (code->smem[i] > 48 * 1024)
            DEV_CHECK(c->api.FuncSetAttribute(c->fn[i], X_FUNC_MAX_DYN_SMEM, code->smem[i]),
                      "allowing a kernel its shared memory (cuFuncSetAttribute)");
    }
    for (int p = 0; p < RT_POOL_COUNT; p++) {
        size_t bytes = (m->pool_bytes[p] + 255) / 256 * 256;
        if (bytes == 0)
            continue;
        if (c->api.MemAlloc(&c->pool[p], bytes) != 0) {
            size_t free_b = 0, total = 0;
            c->api.MemGetInfo(&free_b, &total);
            rt_err(e, RT_ERR_NOMEM, "out of GPU memory: pool %d needs %zu bytes, %zu of %zu are free", p, bytes, free_b,
                   total);
            goto fail;
        }
        DEV_CHECK(c->api.MemsetD8Async(c->pool[p], 0, bytes, c->stream), "cuMemsetD8Async");
        ctx->pools[p] = (void *)(uintptr_t)c->pool[p];
    }
    size_t ws = code->workspace_bytes > 16 ? code->workspace_bytes : 16;
    DEV_CHECK(c->api.MemAlloc(&c->ws, ws), "cuMemAlloc (workspace)");
    DEV_CHECK(c->api.MemsetD8Async(c->ws, 0, ws, c->stream), "cuMemsetD8Async");
    /* staging: as large as the largest io tensor */
    for (int k = 0; k < RT_IO_COUNT; k++) {
        int i = m->io[k];
        if (i < 0)
            continue;
        size_t b = (size_t)rt_tensor_numel(&m->tensors[i]) * rt_dtype_size(m->tensors[i].dtype);
        c->slot_bytes = b > c->slot_bytes ? b : c->slot_bytes;
    }
    c->slot_bytes = (c->slot_bytes + 255) / 256 * 256;
    DEV_CHECK(c->api.MemAllocHost((void **)&c->stage, c->slot_bytes * STAGE_SLOTS), "cuMemAllocHost");
    for (int s = 0; s < STAGE_SLOTS; s++)
        DEV_CHECK(c->api.EventCreate(&c->slot_done[s], X_EVENT_DISABLE_TIMING), "cuEventCreate");
    if (c->api.BlasCreate(&c->blas) != 0 || c->api.BlasSetStream(c->blas, c->stream) != 0) {
        rt_err(e, RT_ERR_DEVICE, "cuBLAS: cannot create a handle");
        goto fail;
    }
    DEV_CHECK(c->api.StreamSynchronize(c->stream), "cuStreamSynchronize");
    return true;
fail:
    cuda_close(ctx);
    ctx->device = NULL;
    return false;
}

static void cuda_close(RtCtx *ctx)
{
    Cuda *c = cu(ctx);
    if (!c)
        return;
    Api *a = &c->api;
    if (c->stream)
        a->StreamSynchronize(c->stream);
    if (c->nccl)
        c->nccl_destroy(c->nccl);
    if (c->blas)
        a->BlasDestroy(c->blas);
    for (int s = 0; s < STAGE_SLOTS; s++)
        if (c->slot_done[s])
            a->EventDestroy(c->slot_done[s]);
    if (c->stage)
        a->MemFreeHost(c->stage);
    for (int p = 0; p < RT_POOL_COUNT; p++) {
        if (c->pool[p])
            a->MemFree(c->pool[p]);
        ctx->pools[p] = NULL;
    }
    if (c->ws)
        a->MemFree(c->ws);
    if (c->module)
        a->ModuleUnload(c->module);
    if (c->stream)
        a->StreamDestroy(c->stream);
    if (c->cuctx)
        a->DevicePrimaryCtxRelease(c->dev);
    free(c->fn);
    if (a->cublas)
        dlclose(a->cublas);
    if (a->cuda)
        dlclose(a->cuda);
    free(c);
    ctx->device = NULL;
}

/* ---- copies ---- */

static void cuda_write(RtCtx *ctx, void *dst, const void *src, size_t n)
{
    Cuda *c = cu(ctx);
    if (c->failed || n == 0)
        return;
    if (n <= c->slot_bytes) {
        /* through a pinned slot: returns at once, the copy runs in stream order */
        int s = c->next_slot;
        c->next_slot = (s + 1) % STAGE_SLOTS;
        if (!ok_or_fail(c, c->api.EventSynchronize(c->slot_done[s]), "cuEventSynchronize"))
            return;
        unsigned char *slot = c->stage + (size_t)s * c->slot_bytes;
        memcpy(slot, src, n);
        if (ok_or_fail(c, c->api.MemcpyHtoDAsync((CuPtr)(uintptr_t)dst, slot, n, c->stream), "cuMemcpyHtoDAsync"))
            ok_or_fail(c, c->api.EventRecord(c->slot_done[s], c->stream), "cuEventRecord");
        return;
    }
    /* a large copy (a checkpoint's tensors): from pageable memory, then wait */
    if (ok_or_fail(c, c->api.MemcpyHtoDAsync((CuPtr)(uintptr_t)dst, src, n, c->stream), "cuMemcpyHtoDAsync"))
        ok_or_fail(c, c->api.StreamSynchronize(c->stream), "cuStreamSynchronize");
}

static void cuda_read(RtCtx *ctx, void *dst, const void *src, size_t n)
{
    Cuda *c = cu(ctx);
    if (c->failed) {
        memset(dst, 0xFF, n); /* NaNs */
        return;
    }
    if (ok_or_fail(c, c->api.MemcpyDtoHAsync(dst, (CuPtr)(uintptr_t)src, n, c->stream), "cuMemcpyDtoHAsync") &&
        ok_or_fail(c, c->api.StreamSynchronize(c->stream), "cuStreamSynchronize"))
        return;
    memset(dst, 0xFF, n);
}

static void cuda_zero(RtCtx *ctx, void *dst, size_t n)
{
    Cuda *c = cu(ctx);
    if (!c->failed && n > 0)
        ok_or_fail(c, c->api.MemsetD8Async((CuPtr)(uintptr_t)dst, 0, n, c->stream), "cuMemsetD8Async");
}

/* ---- data-parallel: NCCL ----
 * Why NCCL's all-reduce and not the CPU path's fixed-order sum: the gradients live in device
 * memory, and NCCL moves and adds them there over NVLink or the network without a host copy.
 * Its algorithm (ring or tree, chosen by size and topology) fixes the order of the additions
 * for a given machine, N and NCCL version; NCCL_ALGO and NCCL_PROTO pin it. NCCL is loaded
 * with dlopen (libnccl.so.2, the system's or the CUDA toolkit's) only when N > 1, and
 * ncclUniqueId (128 bytes, NCCL_UNIQUE_ID_BYTES) goes from rank 0 to the others over MPI. */

enum { NCCL_ID_BYTES = 128, NCCL_FLOAT32 = 7, NCCL_SUM = 0 }; /* nccl.h: ncclFloat32, ncclSum */

static bool nccl_fail(Cuda *c, int r, const char *call, RtError *e)
{
    return rt_err(e, RT_ERR_DEVICE, "NCCL: %s failed: %s (code %d)", call,
                  c->nccl_error ? c->nccl_error(r) : "no message", r);
}

/* Loads NCCL's entry points into c (false with e filled). */
static bool nccl_load(Cuda *c, int rank, int N, int (**get_id)(void *), int (**init_rank)(void **, int, const char *, int),
                      RtError *e)
{
    const char *names[] = {"libnccl.so.2", "/usr/local/cuda/lib64/libnccl.so.2", "/usr/local/cuda/lib/libnccl.so.2"};
    for (size_t i = 0; i < sizeof names / sizeof *names && !c->nccl_dl; i++)
        c->nccl_dl = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!c->nccl_dl)
        return rt_err(e, RT_ERR_DEVICE, "rank %d: a CUDA trainer under mpirun with %d ranks sums gradients with NCCL, and "
                      "libnccl.so.2 cannot be loaded (%s): install NCCL (Debian: libnccl2; or the CUDA toolkit's) or "
                      "run one rank", rank, N, dlerror());
    struct {
        const char *name;
        void *slot;
    } syms[] = {{"ncclGetUniqueId", get_id},           {"ncclCommInitRank", init_rank},
                {"ncclAllReduce", &c->nccl_all_reduce}, {"ncclGroupStart", &c->nccl_group_start},
                {"ncclGroupEnd", &c->nccl_group_end},   {"ncclCommDestroy", &c->nccl_destroy},
                {"ncclGetErrorString", &c->nccl_error}};
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
        void *f = dlsym(c->nccl_dl, syms[i].name);
        if (!f)
            return rt_err(e, RT_ERR_DEVICE, "rank %d: libnccl.so.2 lacks %s (NCCL 2.x is needed)", rank, syms[i].name);
        memcpy(syms[i].slot, &f, sizeof f);
    }
    return true;
}

static bool cuda_dist_open(RtCtx *ctx, RtDist *dist, RtError *e)
{
    Cuda *c = cu(ctx);
    int N = rt_dist_size(dist), rank = rt_dist_rank(dist);
    if (N == 1)
        return true;
    int (*get_id)(void *) = NULL, (*init_rank)(void **, int, const char *, int) = NULL;
    /* each rank sends [ready, id]: rank 0's id, and whether every rank loaded NCCL (and rank
     * 0 made an id), so that no rank enters ncclCommInitRank to wait for one that failed */
    char mine[1 + NCCL_ID_BYTES] = {0}, *all = malloc((size_t)N * sizeof mine);
    if (!all)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    bool loaded = nccl_load(c, rank, N, &get_id, &init_rank, e);
    int r = 0;
    if (loaded && rank == 0 && (r = get_id(mine + 1)) != 0)
        loaded = nccl_fail(c, r, "ncclGetUniqueId", e);
    mine[0] = loaded;
    RtError ce = {0};
    bool ok = rt_dist_allgather(dist, mine, all, sizeof mine, &ce);
    if (!ok && loaded)
        *e = ce;
    for (int q = 0; ok && loaded && q < N; q++)
        if (!all[(size_t)q * sizeof mine])
            ok = rt_err(e, RT_ERR_DEVICE, "rank %d could not set up NCCL (its message is above)", q);
    if (ok && loaded && (r = init_rank(&c->nccl, N, all + 1, rank)) != 0)
        ok = nccl_fail(c, r, "ncclCommInitRank", e);
    free(all);
    return ok && loaded;
}

static bool cuda_sum(RtCtx *ctx, float *const *x, const int64_t *n, int count, RtError *e)
{
    Cuda *c = cu(ctx);
    if (!c->nccl)
        return true; /* one rank */
    if (c->failed)
        return rt_err(e, RT_ERR_DEVICE, "CUDA: an earlier device call failed");
    int r = c->nccl_group_start();
    for (int k = 0; r == 0 && k < count; k++)
        r = c->nccl_all_reduce(x[k], x[k], (size_t)n[k], NCCL_FLOAT32, NCCL_SUM, c->nccl, c->stream);
    int r2 = c->nccl_group_end();
    if (r != 0 || r2 != 0)
        return nccl_fail(c, r ? r : r2, "ncclAllReduce", e);
    CuResult cr = c->api.StreamSynchronize(c->stream);
    if (cr != 0)
        return rt_err(e, RT_ERR_DEVICE, "CUDA: cuStreamSynchronize after the gradient sum failed: %s",
                      cu_error(&c->api, cr));
    return true;
}

const RtDeviceOps rt_cuda_device = {"cuda", cuda_open, cuda_close, cuda_write, cuda_read, cuda_zero, cuda_dist_open,
                                    cuda_sum};

/* ---- the generated code's entry points ---- */

void rt_cuda_launch(RtCtx *ctx, int kernel, uint32_t grid, uint32_t block, uint32_t smem, void **params)
{
    Cuda *c = cu(ctx);
    if (c->failed)
        return;
    ok_or_fail(c, c->api.LaunchKernel(c->fn[kernel], grid, 1, 1, block, 1, 1, smem, c->stream, params, NULL),
               c->code->names[kernel]);
}

static int blas_type(int dtype) { return dtype == RT_BF16 ? CUDA_R_16BF_ : CUDA_R_32F_; }

void rt_cuda_gemm(RtCtx *ctx, int trans_a, int trans_b, int64_t m, int64_t n, int64_t k, float alpha, const void *a,
                  int a_dtype, int64_t lda, int64_t stride_a, const void *b, int b_dtype, int64_t ldb, int64_t stride_b,
                  float beta, void *cc, int c_dtype, int64_t ldc, int64_t stride_c, int64_t batch)
{
    Cuda *c = cu(ctx);
    if (c->failed)
        return;
    /* row-major C [m, n] = op(A) op(B) is column-major C^T [n, m] = op(B)^T op(A)^T */
    int st = c->api.BlasGemmStridedBatchedEx(
        c->blas, trans_b ? CUBLAS_OP_T_ : CUBLAS_OP_N_, trans_a ? CUBLAS_OP_T_ : CUBLAS_OP_N_, (int)n, (int)m, (int)k,
        &alpha, b, blas_type(b_dtype), (int)ldb, stride_b, a, blas_type(a_dtype), (int)lda, stride_a, &beta, cc,
        blas_type(c_dtype), (int)ldc, stride_c, (int)batch, CUBLAS_COMPUTE_32F_, CUBLAS_GEMM_DEFAULT_);
    if (st != 0) {
        if (!c->failed)
            fprintf(stderr, "train: cuBLAS error %d in a GEMM [%lld x %lld x %lld] x %lld; stopping\n", st, (long long)m,
                    (long long)n, (long long)k, (long long)batch);
        c->failed = true;
    }
}

float rt_cuda_read(RtCtx *ctx, const void *src, int dtype)
{
    unsigned char b[4] = {0};
    cuda_read(ctx, b, src, dtype == RT_BF16 ? 2 : 4);
    if (cu(ctx)->failed)
        return NAN;
    if (dtype == RT_I32) {
        int32_t i;
        memcpy(&i, b, 4);
        return (float)i;
    }
    if (dtype == RT_BF16) {
        uint16_t h;
        memcpy(&h, b, 2);
        return rt_bf16_to_f32(h);
    }
    float f;
    memcpy(&f, b, 4);
    return f;
}

void rt_cuda_prune(RtCtx *ctx, int mode, float *x, int64_t n, const float *fraction, const int32_t *step, int64_t stream)
{
    Cuda *c = cu(ctx);
    float *h = malloc(sizeof *h * (size_t)(n > 0 ? n : 1)), frac = 0;
    int32_t s = 0;
    if (!h) {
        if (!c->failed)
            fprintf(stderr, "train: out of memory pruning %lld moments; stopping\n", (long long)n);
        c->failed = true;
        return;
    }
    cuda_read(ctx, &frac, fraction, sizeof frac);
    cuda_read(ctx, &s, step, sizeof s);
    cuda_read(ctx, h, x, sizeof *h * (size_t)n);
    if (!c->failed) {
        if (mode == 0)
            rt_prune_magnitude(h, n, frac);
        else
            rt_prune_random(h, n, frac, ctx->seed, (uint64_t)stream, s);
        cuda_write(ctx, x, h, sizeof *h * (size_t)n);
    }
    free(h);
}

void *rt_cuda_workspace(RtCtx *ctx) { return (void *)(uintptr_t)cu(ctx)->ws; }
