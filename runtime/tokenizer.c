/* Tokenizers for sampling (--tokenizer: encode the prompt, decode the samples) and for
 * `relorac tokenize`: a SentencePiece model (the library, through librelorac_spm, a C shim
 * loaded here with dlopen) or a Hugging Face tokenizer.json (BPE, tok_hf.c). Loading at run
 * time keeps every trainer that is not asked to tokenize free of SentencePiece and of the
 * C++ runtime: they are needed only when a SentencePiece model is opened. */
#define _GNU_SOURCE /* dlinfo: the executable's library search path */
#include "rt_internal.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SPM_LIB "librelorac_spm.so"
#define SPM_ABI 1

/* librelorac_spm's functions (runtime/spm_shim.cc); err receives the library's message. */
typedef struct SpmApi {
    void *lib;
    int (*abi)(void);
    void *(*load)(const char *path, char *err, size_t cap);
    void (*free)(void *m);
    int (*vocab)(void *m);
    long (*encode)(void *m, const char *text, size_t len, int32_t **ids, char *err, size_t cap);
    long (*piece)(void *m, int id, char *buf, size_t cap);
    int (*train)(const char *const *inputs, int n_inputs, const char *const *keys, const char *const *values, int n,
                 char *err, size_t cap);
} SpmApi;

struct RtTokenizer {
    int kind; /* RT_TOK_SPM or RT_TOK_HF */
    char *path;
    int64_t vocab;
    SpmApi spm;
    void *spm_model;
    RtHfTok *hf;
};

/* Opens librelorac_spm (the executable's run path names relorac's runtime folder: relorac
 * build links trainers with -rpath to it) and checks its functions. */
/* name from the directories of the executable's own search path (its RUNPATH first). A
 * plain dlopen searches the RUNPATH of the object that calls it, and a sanitizer that
 * intercepts dlopen becomes that caller: then only this finds the library. NULL if absent. */
static void *open_from_exe_path(const char *name)
{
    void *self = dlopen(NULL, RTLD_NOW);
    Dl_serinfo size;
    if (!self || dlinfo(self, RTLD_DI_SERINFOSIZE, &size) != 0)
        return NULL;
    Dl_serinfo *info = malloc(size.dls_size);
    void *lib = NULL;
    if (info) {
        info->dls_size = size.dls_size;
        info->dls_cnt = size.dls_cnt;
        if (dlinfo(self, RTLD_DI_SERINFO, info) == 0)
            for (unsigned i = 0; !lib && i < info->dls_cnt; i++) {
                char path[4096];
                int n = snprintf(path, sizeof path, "%s/%s", info->dls_serpath[i].dls_name, name);
                if (n > 0 && (size_t)n < sizeof path && access(path, R_OK) == 0)
                    lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            }
        free(info);
    }
    return lib;
}

static bool spm_open(SpmApi *a, const char *why, RtError *e)
{
    memset(a, 0, sizeof *a);
    a->lib = dlopen(SPM_LIB, RTLD_NOW | RTLD_LOCAL);
    char first[512] = ""; /* the plain dlopen's reason, which the fallback would overwrite */
    if (!a->lib) {
        const char *why_not = dlerror();
        snprintf(first, sizeof first, "%s", why_not ? why_not : "");
        a->lib = open_from_exe_path(SPM_LIB);
    }
    if (!a->lib) {
        const char *msg = first[0] ? first : NULL;
        return rt_err(e, RT_ERR_MISSING,
                      "%s needs SentencePiece, which is not available: %s; install libsentencepiece-dev and "
                      "rebuild relorac (scripts/setup.sh does), which then builds %s next to the runtime library",
                      why, msg ? msg : "cannot load " SPM_LIB, SPM_LIB);
    }
    /* POSIX: a function pointer from dlsym's object pointer, through memcpy */
    static const char *const names[] = {"rspm_abi", "rspm_load", "rspm_free", "rspm_vocab",
                                        "rspm_encode", "rspm_piece", "rspm_train"};
    void (**slots[])(void) = {(void (**)(void))&a->abi,   (void (**)(void))&a->load,  (void (**)(void))&a->free,
                              (void (**)(void))&a->vocab, (void (**)(void))&a->encode, (void (**)(void))&a->piece,
                              (void (**)(void))&a->train};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        void *sym = dlsym(a->lib, names[i]);
        if (!sym) {
            dlclose(a->lib);
            a->lib = NULL;
            return rt_err(e, RT_ERR_MISSING, "%s: %s lacks %s: it is from another relorac", why, SPM_LIB, names[i]);
        }
        memcpy(slots[i], &sym, sizeof sym);
    }
    if (a->abi() != SPM_ABI) {
        dlclose(a->lib);
        a->lib = NULL;
        return rt_err(e, RT_ERR_MISSING, "%s: %s has interface %d, this runtime expects %d: it is from another "
                      "relorac", why, SPM_LIB, a->abi(), SPM_ABI);
    }
    return true;
}

/* Whether the file looks like JSON (a tokenizer.json): its first non-blank byte is '{'. */
static bool looks_like_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    int c = EOF;
    if (f) {
        while ((c = fgetc(f)) == ' ' || c == '\t' || c == '\n' || c == '\r')
            ;
        fclose(f);
    }
    return c == '{';
}

bool rt_tok_open(RtTokenizer **out, const char *path, RtError *e)
{
    *out = NULL;
    struct stat st;
    int fd = rt_open_regular(path, "tokenizer", &st, e);
    if (fd < 0)
        return false;
    close(fd);
    RtTokenizer *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    bool ok;
    if (looks_like_json(path)) {
        t->kind = RT_TOK_HF;
        ok = rt_hf_tok_load(&t->hf, path, e);
        t->vocab = ok ? rt_hf_tok_vocab(t->hf) : 0;
    } else {
        t->kind = RT_TOK_SPM;
        char why[600], err[512] = "";
        snprintf(why, sizeof why, "%s (not JSON, so a SentencePiece model)", path);
        ok = spm_open(&t->spm, why, e);
        if (ok && !(t->spm_model = t->spm.load(path, err, sizeof err)))
            ok = rt_err(e, RT_ERR_FORMAT, "%s: not a SentencePiece model (nor a tokenizer.json): %s", path, err);
        t->vocab = ok ? t->spm.vocab(t->spm_model) : 0;
    }
    if (!ok) {
        rt_tok_close(t);
        return false;
    }
    *out = t;
    return true;
}

void rt_tok_close(RtTokenizer *t)
{
    if (!t)
        return;
    if (t->spm_model)
        t->spm.free(t->spm_model);
    if (t->spm.lib)
        dlclose(t->spm.lib);
    rt_hf_tok_free(t->hf);
    free(t->path);
    free(t);
}

const char *rt_tok_kind(const RtTokenizer *t)
{
    return t->kind == RT_TOK_SPM ? "SentencePiece model" : "tokenizer.json (BPE)";
}

int64_t rt_tok_vocab(const RtTokenizer *t)
{
    return t->vocab;
}

bool rt_tok_encode(RtTokenizer *t, const char *text, size_t len, int32_t **ids, int64_t *n, RtError *e)
{
    *ids = NULL;
    *n = 0;
    if (t->kind == RT_TOK_HF)
        return rt_hf_tok_encode(t->hf, text, len, ids, n, e);
    char err[512] = "";
    long got = t->spm.encode(t->spm_model, text, len, ids, err, sizeof err);
    if (got < 0)
        return rt_err(e, RT_ERR_FORMAT, "%s: SentencePiece cannot encode the text: %s", t->path, err);
    *n = got;
    return true;
}

bool rt_tok_piece(RtTokenizer *t, int32_t id, RtBuf *out)
{
    if (t->kind == RT_TOK_HF)
        return rt_hf_tok_piece(t->hf, id, out);
    char buf[256];
    long n = t->spm.piece(t->spm_model, id, buf, sizeof buf);
    if (n < 0)
        return false;
    if ((size_t)n > sizeof buf) { /* a piece longer than any SentencePiece writes: ask again */
        char *big = malloc((size_t)n);
        if (!big)
            return false;
        t->spm.piece(t->spm_model, id, big, (size_t)n);
        rt_buf_add(out, big, (size_t)n);
        free(big);
        return true;
    }
    rt_buf_add(out, buf, (size_t)n);
    return true;
}

bool rt_tok_train_spm(const char *const *inputs, int n_inputs, const char *const *keys, const char *const *values,
                      int n, RtError *e)
{
    SpmApi a;
    if (!spm_open(&a, "training a tokenizer", e))
        return false;
    char err[768] = "";
    bool ok = a.train(inputs, n_inputs, keys, values, n, err, sizeof err) == 0 ||
              rt_err(e, RT_ERR_FORMAT, "SentencePiece could not train: %s", err);
    dlclose(a.lib);
    return ok;
}
