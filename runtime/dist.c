/* Data-parallel communication between the ranks of a trainer launched by `mpirun`: the
 * gradient sum, small all-gathers (losses, votes, checksums) and abort. A trainer started
 * without a launcher never touches MPI, so it runs where MPI is not installed: libmpi is
 * loaded with dlopen only when the launcher's environment says we are a rank of a job.
 *
 * We load Open MPI (libmpi.so.40, the soname of Open MPI 3 to 5) through its ABI rather than
 * mpi.h: its predefined handles (MPI_COMM_WORLD, MPI_FLOAT, ...) are the addresses of
 * exported objects (ompi_mpi_comm_world, ...), so dlsym gives them; MPICH's integer handles
 * are a different ABI and are not supported.
 *
 * Why not MPI_Allreduce: the MPI standard only advises that a reduction give the same
 * result whatever the order its algorithm chooses, and Open MPI's tuned component picks the
 * algorithm (and so the order of the floating-point additions) by message size and rank
 * count. We move bytes with MPI and add them ourselves in rank order: a reduce-scatter as
 * MPI_Alltoallv (rank c receives chunk c of every rank's buffer) followed by a sum of the
 * N pieces in rank order 0, 1, ..., N-1, and an MPI_Allgatherv of the summed chunks. The
 * result depends only on N and the inputs, is the same bits on every rank, and costs what a
 * ring all-reduce costs: 2 (N-1)/N of the buffer sent per rank. */
#include "rt_internal.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

typedef void *Handle; /* an Open MPI predefined handle: the address of its object */

enum { MPI_OK = 0, MPI_THREAD_FUNNELED_ = 1, MPI_MAX_ERR = 256, MPI_MAX_LIB = 256 };
#define MPI_IN_PLACE_ ((void *)1) /* Open MPI's mpi.h: #define MPI_IN_PLACE ((void *) 1) */

/* Floats per reduction bucket: gradients are packed into a bucket, reduced and unpacked
 * one bucket at a time, so the buffers stay at 2 x 16 MiB whatever the model. */
enum { BUCKET = 4 << 20 };

struct RtDist {
    int rank, size;
    void *dl;
    Handle comm, byte_t, float_t;
    int (*init_thread)(int *, char ***, int, int *);
    int (*finalize)(void);
    int (*abort_)(Handle, int);
    int (*alltoallv)(const void *, const int *, const int *, Handle, void *, const int *,
                     const int *, Handle, Handle);
    int (*allgatherv)(const void *, int, Handle, void *, const int *, const int *, Handle,
                      Handle);
    int (*allgather)(const void *, int, Handle, void *, int, Handle, Handle);
    int (*error_string)(int, char *, int *);
    float *bucket, *recv;                 /* BUCKET floats each */
    int *scount, *sdispl, *rcount, *rdispl; /* [size] */
    uint64_t sent;                        /* payload bytes this rank has sent */
    int zero;                             /* the ZeRO stage (rt_dist_set_zero) */
    char lib[MPI_MAX_LIB];
};

/* The rank count the launcher announces, or 0 when we were not started by one. */
static int launcher_size(void)
{
    const char *keys[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        const char *v = getenv(keys[i]);
        if (v && *v)
            return atoi(v) > 0 ? atoi(v) : 1;
    }
    return getenv("PMIX_RANK") ? 1 : 0;
}

static bool mpi_fail(RtDist *d, int rc, const char *call, RtError *e)
{
    char msg[MPI_MAX_ERR] = "";
    int len = 0;
    if (d->error_string)
        d->error_string(rc, msg, &len);
    return rt_err(e, RT_ERR_IO, "rank %d: %s failed (%s): another rank has probably stopped", d->rank,
                  call, msg[0] ? msg : "no message");
}

bool rt_dist_create(RtDist **out, RtError *e)
{
    *out = NULL;
    int want = launcher_size();
    if (want == 0)
        return true;
    RtDist *d = calloc(1, sizeof *d);
    if (!d)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    /* RTLD_GLOBAL: Open MPI's plugins (mca_*.so) resolve libmpi's symbols globally */
    const char *names[] = {"libmpi.so.40", "libmpi.so"};
    for (size_t i = 0; i < 2 && !d->dl; i++)
        d->dl = dlopen(names[i], RTLD_NOW | RTLD_GLOBAL);
    if (!d->dl) {
        free(d);
        return rt_err(e, RT_ERR_USAGE,
                      "started by an MPI launcher (%d ranks) but Open MPI's libmpi.so.40 cannot "
                      "be loaded: %s; install Open MPI (Debian: openmpi-bin) or run without mpirun",
                      want, dlerror());
    }
    struct {
        const char *name;
        void **slot;
    } syms[] = {
        {"ompi_mpi_comm_world", &d->comm},
        {"ompi_mpi_byte", &d->byte_t},
        {"ompi_mpi_float", &d->float_t},
        {"MPI_Init_thread", (void **)&d->init_thread},
        {"MPI_Finalize", (void **)&d->finalize},
        {"MPI_Abort", (void **)&d->abort_},
        {"MPI_Alltoallv", (void **)&d->alltoallv},
        {"MPI_Allgatherv", (void **)&d->allgatherv},
        {"MPI_Allgather", (void **)&d->allgather},
        {"MPI_Error_string", (void **)&d->error_string},
    };
    for (size_t i = 0; i < sizeof syms / sizeof *syms; i++)
        if (!(*syms[i].slot = dlsym(d->dl, syms[i].name))) {
            rt_err(e, RT_ERR_USAGE, "the MPI library lacks %s: only Open MPI is supported",
                   syms[i].name);
            dlclose(d->dl);
            free(d);
            return false;
        }
    int (*comm_rank)(Handle, int *), (*comm_size)(Handle, int *);
    int (*set_errh)(Handle, Handle), (*lib_version)(char *, int *);
    *(void **)&comm_rank = dlsym(d->dl, "MPI_Comm_rank");
    *(void **)&comm_size = dlsym(d->dl, "MPI_Comm_size");
    *(void **)&set_errh = dlsym(d->dl, "MPI_Comm_set_errhandler");
    *(void **)&lib_version = dlsym(d->dl, "MPI_Get_library_version");
    Handle errors_return = dlsym(d->dl, "ompi_mpi_errors_return");
    int provided = 0, rc;
    /* funneled: only the main thread calls MPI; the pool's workers never do */
    if (!comm_rank || !comm_size ||
        (rc = d->init_thread(NULL, NULL, MPI_THREAD_FUNNELED_, &provided)) != MPI_OK) {
        rt_err(e, RT_ERR_USAGE, "MPI_Init_thread failed");
        dlclose(d->dl);
        free(d);
        return false;
    }
    comm_rank(d->comm, &d->rank);
    comm_size(d->comm, &d->size);
    /* errors come back to us, so a lost peer gives a message rather than an abort */
    if (set_errh && errors_return)
        set_errh(d->comm, errors_return);
    char lib[MPI_MAX_LIB] = "MPI";
    int len = 0;
    if (lib_version && lib_version(lib, &len) == MPI_OK) {
        char *nl = strpbrk(lib, ",\n");
        if (nl)
            *nl = '\0';
    }
    snprintf(d->lib, sizeof d->lib, "%s", lib);
    size_t n = (size_t)d->size;
    d->bucket = malloc(sizeof(float) * BUCKET);
    d->recv = malloc(sizeof(float) * BUCKET);
    d->scount = calloc(4 * n, sizeof(int));
    if (!d->bucket || !d->recv || !d->scount) {
        rt_dist_destroy(d);
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    d->sdispl = d->scount + n;
    d->rcount = d->scount + 2 * n;
    d->rdispl = d->scount + 3 * n;
    *out = d;
    return true;
}

int rt_dist_rank(const RtDist *d)
{
    return d ? d->rank : 0;
}

int rt_dist_size(const RtDist *d)
{
    return d ? d->size : 1;
}

const char *rt_dist_library(const RtDist *d)
{
    return d ? d->lib : "none";
}

void rt_dist_set_zero(RtDist *d, int stage)
{
    if (d)
        d->zero = stage;
}

int rt_dist_zero(const RtDist *d)
{
    return d ? d->zero : 0;
}

uint64_t rt_dist_bytes_sent(const RtDist *d)
{
    return d ? d->sent : 0;
}

/* Sums bucket[0, n) over the ranks in rank order (the file's header). */
/* The bucket's chunks (d->scount, d->sdispl) exchanged so each rank receives its own
 * chunk from every rank, summed in rank order ((g0 + g1) + g2) + ... into its place in
 * the bucket: the fixed-order sum both the all-reduce and ZeRO's reduce-scatter use. */
static bool scatter_sum(RtDist *d, RtError *e)
{
    int N = d->size, mine = d->scount[d->rank];
    for (int q = 0; q < N; q++) {
        d->rcount[q] = mine;
        d->rdispl[q] = q * mine;
    }
    int rc = d->alltoallv(d->bucket, d->scount, d->sdispl, d->float_t, d->recv, d->rcount, d->rdispl,
                          d->float_t, d->comm);
    if (rc != MPI_OK)
        return mpi_fail(d, rc, "MPI_Alltoallv", e);
    float *acc = d->bucket + d->sdispl[d->rank];
    for (int i = 0; i < mine; i++) {
        float s = d->recv[i];
        for (int q = 1; q < N; q++)
            s += d->recv[(size_t)q * (size_t)mine + (size_t)i];
        acc[i] = s;
    }
    return true;
}

static bool reduce_bucket(RtDist *d, int n, RtError *e)
{
    int N = d->size, r = d->rank;
    for (int c = 0; c < N; c++) { /* chunk c: [c n / N, (c + 1) n / N) */
        int lo = (int)((int64_t)c * n / N), hi = (int)((int64_t)(c + 1) * n / N);
        d->scount[c] = hi - lo;
        d->sdispl[c] = lo;
    }
    int mine = d->scount[r];
    if (!scatter_sum(d, e))
        return false;
    int rc = d->allgatherv(MPI_IN_PLACE_, 0, d->float_t, d->bucket, d->scount, d->sdispl, d->float_t, d->comm);
    if (rc != MPI_OK)
        return mpi_fail(d, rc, "MPI_Allgatherv", e);
    d->sent += sizeof(float) * ((uint64_t)(n - mine) + (uint64_t)mine * (uint64_t)(N - 1));
    return true;
}

bool rt_dist_sum_spans(RtDist *d, float *const *x, const int64_t *n, int count, RtError *e)
{
    if (!d || d->size == 1)
        return true;
    int fill = 0;
    int first = 0;        /* the span where the bucket's data starts */
    int64_t first_at = 0; /* and its element */
    int k = 0;
    int64_t at = 0;
    while (k < count || fill > 0) {
        /* pack until the bucket is full or the spans end */
        while (k < count && fill < BUCKET) {
            int64_t take = n[k] - at < BUCKET - fill ? n[k] - at : BUCKET - fill;
            memcpy(d->bucket + fill, x[k] + at, sizeof(float) * (size_t)take);
            fill += (int)take;
            at += take;
            if (at == n[k]) {
                k++;
                at = 0;
            }
        }
        if (!reduce_bucket(d, fill, e))
            return false;
        /* unpack in the same order */
        int used = 0;
        while (used < fill) {
            int64_t take = n[first] - first_at < fill - used ? n[first] - first_at : fill - used;
            memcpy(x[first] + first_at, d->bucket + used, sizeof(float) * (size_t)take);
            used += (int)take;
            first_at += take;
            if (first_at == n[first]) {
                first++;
                first_at = 0;
            }
        }
        fill = 0;
    }
    return true;
}

/* ---- the sharded (ZeRO stage 1) exchanges: spans as one flat vector, rank c owning
 * elements [c L / N, (c + 1) L / N) of its L ---- */

void rt_dist_owned(const RtDist *d, int64_t total, int64_t *lo, int64_t *hi)
{
    int N = rt_dist_size(d), r = rt_dist_rank(d);
    *lo = total * r / N;
    *hi = total * (r + 1) / N;
}

/* Copies flat elements [from, from + len) of the spans to buf (to_buf) or back. */
static void flat_copy(float *const *x, const int64_t *n, int count, int64_t from, int len, float *buf, bool to_buf)
{
    int64_t base = 0;
    for (int k = 0; k < count && len > 0; k++) {
        if (from >= base + n[k]) {
            base += n[k];
            continue;
        }
        int64_t at = from - base, take = n[k] - at < len ? n[k] - at : len;
        if (to_buf)
            memcpy(buf, x[k] + at, sizeof(float) * (size_t)take);
        else
            memcpy(x[k] + at, buf, sizeof(float) * (size_t)take);
        buf += take;
        from += take;
        len -= (int)take;
        base += n[k];
    }
}

/* The counts and displacements, in a window [a, a + len) of the flat vector, of each
 * rank's owned part. */
static void window_parts(RtDist *d, int64_t total, int64_t a, int len)
{
    int N = d->size;
    for (int c = 0; c < N; c++) {
        int64_t lo = total * c / N, hi = total * (c + 1) / N;
        int64_t s = lo > a ? lo : a, t = hi < a + len ? hi : a + len;
        d->scount[c] = t > s ? (int)(t - s) : 0;
        d->sdispl[c] = t > s ? (int)(s - a) : 0;
    }
}

bool rt_dist_reduce_scatter_spans(RtDist *d, float *const *x, const int64_t *n, int count, RtError *e)
{
    if (!d || d->size == 1)
        return true;
    int r = d->rank;
    int64_t total = 0;
    for (int k = 0; k < count; k++)
        total += n[k];
    for (int64_t a = 0; a < total; a += BUCKET) {
        int len = total - a < BUCKET ? (int)(total - a) : BUCKET;
        flat_copy(x, n, count, a, len, d->bucket, true);
        window_parts(d, total, a, len);
        int mine = d->scount[r];
        if (!scatter_sum(d, e))
            return false;
        if (mine > 0)
            flat_copy(x, n, count, a + d->sdispl[r], mine, d->bucket + d->sdispl[r], false);
        d->sent += sizeof(float) * (uint64_t)(len - mine);
    }
    return true;
}

bool rt_dist_allgather_spans(RtDist *d, float *const *x, const int64_t *n, int count, RtError *e)
{
    if (!d || d->size == 1)
        return true;
    int r = d->rank;
    int64_t total = 0;
    for (int k = 0; k < count; k++)
        total += n[k];
    for (int64_t a = 0; a < total; a += BUCKET) {
        int len = total - a < BUCKET ? (int)(total - a) : BUCKET;
        window_parts(d, total, a, len);
        int mine = d->scount[r];
        if (mine > 0)
            flat_copy(x, n, count, a + d->sdispl[r], mine, d->bucket + d->sdispl[r], true);
        int rc = d->allgatherv(MPI_IN_PLACE_, 0, d->float_t, d->bucket, d->scount, d->sdispl, d->float_t,
                               d->comm);
        if (rc != MPI_OK)
            return mpi_fail(d, rc, "MPI_Allgatherv", e);
        flat_copy(x, n, count, a, len, d->bucket, false);
        d->sent += sizeof(float) * (uint64_t)mine * (uint64_t)(d->size - 1);
    }
    return true;
}

bool rt_dist_allgather(RtDist *d, const void *mine, void *all, size_t bytes, RtError *e)
{
    if (!d || d->size == 1) {
        memmove(all, mine, bytes);
        return true;
    }
    int rc = d->allgather(mine, (int)bytes, d->byte_t, all, (int)bytes, d->byte_t, d->comm);
    if (rc != MPI_OK)
        return mpi_fail(d, rc, "MPI_Allgather", e);
    d->sent += bytes * (uint64_t)(d->size - 1);
    return true;
}

void rt_dist_abort(RtDist *d, int code)
{
    if (d)
        d->abort_(d->comm, code);
}

void rt_dist_destroy(RtDist *d)
{
    if (!d)
        return;
    d->finalize();
    free(d->bucket);
    free(d->recv);
    free(d->scount);
    /* libmpi stays loaded: Open MPI's atexit handlers and threads may still refer to it */
    free(d);
}
