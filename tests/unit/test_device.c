/* The runtime's device hook (runtime/device.c): the fake model with its pools behind a fake
 * device layer (host memory that only the layer's copies touch from the runtime's side)
 * trains, checkpoints, resumes and samples exactly like the same model on the host: the
 * files are byte-identical, a device checkpoint resumes on the host and a host one on the
 * device, and every runtime access went through the layer. A layer that cannot open a
 * device makes the trainer exit 2 with the layer's message. A checkpoint whose float
 * tensors are bf16 loads into the f32 model converted (dtypes are not identity). */
#include <check.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_internal.h"
/* The suite loop compiles one source per suite, so the fake model comes in by inclusion. */
#include "fake_model.c"

/* ---- the fake device layer ---- */

typedef struct FakeDevice {
    bool fail_open;
    int opens, closes;
    long writes, reads; /* copies through the layer */
} FakeDevice;

static FakeDevice fake_dev;

static bool fd_open(RtCtx *ctx, RtError *e)
{
    if (fake_dev.fail_open)
        return rt_err(e, RT_ERR_DEVICE, "no CUDA device found (the fake layer)");
    for (int p = 0; p < RT_POOL_COUNT; p++) {
        size_t bytes = (ctx->model->pool_bytes[p] + 63) / 64 * 64;
        ctx->pools[p] = bytes ? aligned_alloc(64, bytes) : NULL;
        ck_assert(bytes == 0 || ctx->pools[p]);
        if (bytes)
            memset(ctx->pools[p], 0, bytes);
    }
    ctx->device = &fake_dev;
    fake_dev.opens++;
    return true;
}

static void fd_close(RtCtx *ctx)
{
    for (int p = 0; p < RT_POOL_COUNT; p++)
        free(ctx->pools[p]);
    ck_assert_ptr_eq(ctx->device, &fake_dev);
    fake_dev.closes++;
}

static void fd_write(RtCtx *ctx, void *dst, const void *src, size_t n)
{
    ck_assert_ptr_eq(ctx->device, &fake_dev);
    memcpy(dst, src, n);
    fake_dev.writes++;
}

static void fd_read(RtCtx *ctx, void *dst, const void *src, size_t n)
{
    ck_assert_ptr_eq(ctx->device, &fake_dev);
    memcpy(dst, src, n);
    fake_dev.reads++;
}

static const RtDeviceOps fake_device_ops = {"fake", fd_open, fd_close, fd_write, fd_read, NULL, NULL, NULL};

static RtModel device_model(void)
{
    RtModel m = fake_model;
    m.device = &fake_device_ops;
    return m;
}

/* ---- running the trainer ---- */

static char dir[64];
static char data_path[128];

static void setup(void)
{
    memset(&fake_dev, 0, sizeof fake_dev);
    strcpy(dir, "/tmp/rt_device_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(data_path, sizeof data_path, "%s/data.txt", dir);
    FILE *f = fopen(data_path, "w");
    ck_assert_ptr_nonnull(f);
    static const char *const words[] = {"the ", "cat ", "sat ", "on ", "a ", "mat. ", "and ", "ran\n"};
    for (int i = 0; i < 3000; i++)
        fputs(words[rt_rng_u64(9, 9, (uint64_t)i) % 8], f);
    fclose(f);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

static char *in_dir(const char *name)
{
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

typedef struct Run {
    int rc;
    char out[8192], err[4096];
} Run;

static void read_back(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static Run *run_model(const RtModel *m, const char *arg0, ...)
{
    char *argv[40] = {"fake-trainer"};
    int argc = 1;
    va_list ap;
    va_start(ap, arg0);
    for (const char *a = arg0; a; a = va_arg(ap, const char *))
        argv[argc++] = (char *)a;
    va_end(ap);
    Run *r = calloc(1, sizeof *r);
    RtHooks h = {.out = tmpfile(), .err = tmpfile()};
    r->rc = rt_main_hooked(argc, argv, m, &h);
    read_back(h.out, r->out, sizeof r->out);
    read_back(h.err, r->err, sizeof r->err);
    return r;
}
#define RUN(m, ...) run_model(m, __VA_ARGS__, (const char *)NULL)

static unsigned char *slurp(const char *p, size_t *n)
{
    FILE *f = fopen(p, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", p);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc(*n + 1);
    ck_assert_uint_eq(fread(b, 1, *n, f), *n);
    b[*n] = '\0';
    fclose(f);
    return b;
}

static void assert_same_file(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    ck_assert_msg(na == nb && memcmp(x, y, na) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* The metrics files agree in everything but the measured speed. */
static void assert_same_metrics(const char *a, const char *b)
{
    size_t na, nb;
    char *x = (char *)slurp(a, &na), *y = (char *)slurp(b, &nb);
    char *t[2] = {x, y};
    for (int k = 0; k < 2; k++) /* drop every "tokens_per_s":N, */
        for (char *p; (p = strstr(t[k], "\"tokens_per_s\":"));) {
            char *e = strchr(p, ',');
            ck_assert_ptr_nonnull(e);
            memmove(p, e + 1, strlen(e + 1) + 1);
        }
    ck_assert_msg(strlen(x) > 100 && strcmp(x, y) == 0, "%s and %s differ", a, b);
    free(x);
    free(y);
}

/* ---- tests ---- */

START_TEST(device_trainer_matches_host_byte_for_byte)
{
    RtModel dm = device_model();
    /* 30 steps cross the warm-start switch and a reset (pruned fraction read back) */
    Run *h = RUN(&fake_model, "--data", data_path, "--steps", "30", "--out", in_dir("h"), "--quiet");
    ck_assert_msg(h->rc == 0, "%s", h->err);
    Run *d = RUN(&dm, "--data", data_path, "--steps", "30", "--out", in_dir("d"), "--quiet");
    ck_assert_msg(d->rc == 0, "%s", d->err);
    assert_same_file(in_dir("h/trainer.safetensors"), in_dir("d/trainer.safetensors"));
    assert_same_file(in_dir("h/model.safetensors"), in_dir("d/model.safetensors"));
    assert_same_metrics(in_dir("h/metrics.jsonl"), in_dir("d/metrics.jsonl"));
    ck_assert_int_eq(fake_dev.opens, 1);
    ck_assert_int_eq(fake_dev.closes, 1);
    /* every step writes its batch and scalars through the layer; a save reads every
     * checkpointed tensor back */
    ck_assert_int_ge(fake_dev.writes, 30 * 6);
    ck_assert_int_ge(fake_dev.reads, 16);
    free(h);
    free(d);
}
END_TEST

START_TEST(device_checkpoints_resume_on_the_host_and_back)
{
    RtModel dm = device_model();
    Run *full = RUN(&fake_model, "--data", data_path, "--steps", "40", "--out", in_dir("full"), "--quiet");
    ck_assert_msg(full->rc == 0, "%s", full->err);
    /* device 0..17, host 17..28, device 28..40 */
    Run *a = RUN(&dm, "--data", data_path, "--steps", "17", "--out", in_dir("x"), "--quiet");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    Run *b = RUN(&fake_model, "--resume", in_dir("x"), "--steps", "28", "--quiet");
    ck_assert_msg(b->rc == 0, "%s", b->err);
    int pushes = fake_dev.writes;
    Run *c = RUN(&dm, "--resume", in_dir("x"), "--steps", "40", "--quiet");
    ck_assert_msg(c->rc == 0, "%s", c->err);
    ck_assert_int_gt(fake_dev.writes, pushes);
    assert_same_file(in_dir("full/trainer.safetensors"), in_dir("x/trainer.safetensors"));
    assert_same_file(in_dir("full/model.safetensors"), in_dir("x/model.safetensors"));
    /* sampling reads logits through the layer and agrees with the host */
    Run *sh = RUN(&fake_model, "--sample", "the cat", "--tokens", "20", "--resume", in_dir("x"));
    long reads = fake_dev.reads;
    Run *sd = RUN(&dm, "--sample", "the cat", "--tokens", "20", "--resume", in_dir("x"));
    ck_assert_msg(sh->rc == 0 && sd->rc == 0, "%s %s", sh->err, sd->err);
    ck_assert_str_eq(sh->out, sd->out);
    ck_assert_int_ge(fake_dev.reads - reads, 20);
    free(full);
    free(a);
    free(b);
    free(c);
    free(sh);
    free(sd);
}
END_TEST

START_TEST(device_that_cannot_open_stops_the_trainer_with_its_message)
{
    RtModel dm = device_model();
    fake_dev.fail_open = true;
    Run *r = RUN(&dm, "--data", data_path, "--steps", "3", "--out", in_dir("n"), "--quiet");
    ck_assert_int_eq(r->rc, 2);
    ck_assert_msg(strstr(r->err, "no CUDA device found") != NULL, "%s", r->err);
    ck_assert_int_eq(fake_dev.opens, 0);
    free(r);
}
END_TEST

/* The trainer checkpoint of `from` rewritten with every f32 tensor as bf16. */
static void rewrite_as_bf16(const char *from, const char *to)
{
    RtStFile f;
    RtError e = {0};
    ck_assert_msg(rt_st_open(&f, from, &e), "%s", e.msg);
    RtStEntry *t = calloc((size_t)f.n, sizeof *t);
    void **bufs = calloc((size_t)f.n, sizeof *bufs);
    for (int i = 0; i < f.n; i++) {
        const RtStTensor *s = &f.t[i];
        int64_t n = 1;
        for (int d = 0; d < s->rank; d++)
            n *= s->shape[d];
        t[i] = (RtStEntry){s->name, s->dtype, s->rank, {0}, s->data, NULL, NULL, 0};
        memcpy(t[i].shape, s->shape, sizeof t[i].shape);
        if (s->dtype == RT_F32) {
            bufs[i] = malloc((size_t)n * 2);
            ck_assert(rt_dtype_convert(bufs[i], RT_BF16, s->data, RT_F32, n));
            t[i].dtype = RT_BF16;
            t[i].data = bufs[i];
        }
    }
    FILE *out = fopen(to, "wb");
    ck_assert_ptr_nonnull(out);
    ck_assert_msg(rt_st_write_fd(fileno(out), NULL, to, t, f.n, f.meta, f.n_meta, &e), "%s", e.msg);
    fclose(out);
    for (int i = 0; i < f.n; i++)
        free(bufs[i]);
    free(bufs);
    free(t);
    rt_st_close(&f);
}

START_TEST(checkpoint_in_bf16_loads_converted)
{
    Run *a = RUN(&fake_model, "--data", data_path, "--steps", "12", "--out", in_dir("f"), "--quiet");
    ck_assert_msg(a->rc == 0, "%s", a->err);
    ck_assert_int_eq(mkdir(in_dir("b"), 0755), 0);
    rewrite_as_bf16(in_dir("f/trainer.safetensors"), in_dir("b/trainer.safetensors"));
    RtCtx *ref, *got;
    RtError e = {0};
    ck_assert(rt_ctx_create(&ref, &fake_model, 1, 1, &e));
    ck_assert(rt_ctx_create(&got, &fake_model, 1, 1, &e));
    int64_t s1, s2;
    uint64_t seed1, seed2;
    ck_assert_msg(rt_checkpoint_load(ref, in_dir("f"), &s1, &seed1, NULL, &e), "%s", e.msg);
    ck_assert_msg(rt_checkpoint_load(got, in_dir("b"), &s2, &seed2, NULL, &e), "%s", e.msg);
    ck_assert_int_eq(s1, 12);
    ck_assert_int_eq(s2, 12);
    /* W in f32 is the f32 value rounded to bf16 (7 mantissa bits): within 2^-8 relative */
    const float *w = rt_tensor_data(ref, FK_W), *wb = rt_tensor_data(got, FK_W);
    int64_t n = rt_tensor_numel(&fake_model.tensors[FK_W]), changed = 0;
    for (int64_t i = 0; i < n; i++) {
        ck_assert(wb[i] == rt_bf16_to_f32(rt_f32_to_bf16(w[i])));
        ck_assert(fabsf(wb[i] - w[i]) <= fabsf(w[i]) * 0x1p-8f);
        changed += wb[i] != w[i];
    }
    ck_assert_int_gt(changed, n / 2);
    /* i32 state is not a float: it stays */
    ck_assert_int_eq(*(const int32_t *)rt_tensor_data(got, FK_ADAM_T), *(const int32_t *)rt_tensor_data(ref, FK_ADAM_T));
    rt_ctx_destroy(ref);
    rt_ctx_destroy(got);
    free(a);
}
END_TEST

START_TEST(dtype_convert_rounds_and_refuses_int)
{
    float f[3] = {1.0f + 0x1p-8f, -2.5f, 3.14159265f}, back[3];
    uint16_t h[3];
    ck_assert(rt_dtype_convert(h, RT_BF16, f, RT_F32, 3));
    ck_assert_uint_eq(h[0], 0x3F80); /* a tie: to the even 1.0 */
    ck_assert_uint_eq(h[1], 0xC020);
    ck_assert_uint_eq(h[2], 0x4049);
    ck_assert(rt_dtype_convert(back, RT_F32, h, RT_BF16, 3));
    ck_assert(back[0] == 1.0f && back[1] == -2.5f && back[2] == 3.140625f);
    int32_t i[1] = {7};
    ck_assert(!rt_dtype_convert(f, RT_F32, i, RT_I32, 1));
}
END_TEST

Suite *device_suite(void)
{
    Suite *s = suite_create("device");
    TCase *tc = tcase_create("device");
    tcase_set_timeout(tc, 120);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, device_trainer_matches_host_byte_for_byte);
    tcase_add_test(tc, device_checkpoints_resume_on_the_host_and_back);
    tcase_add_test(tc, device_that_cannot_open_stops_the_trainer_with_its_message);
    tcase_add_test(tc, checkpoint_in_bf16_loads_converted);
    tcase_add_test(tc, dtype_convert_rounds_and_refuses_int);
    suite_add_tcase(s, tc);
    return s;
}
