/* Hugging Face tokenizer.json with a BPE model: encoding, and decoding one token at a time.
 * Written here because no C library reads this format: the reference implementation
 * (huggingface/tokenizers) is Rust without a C interface and Debian packages none, and
 * SentencePiece cannot read it. What it uses is a library: the split patterns are regular
 * expressions in Oniguruma's syntax, run with PCRE2 (the same syntax for these patterns,
 * with UTF and Unicode properties), loaded at run time from libpcre2-8.so.0 (on every
 * Debian system: grep needs it), so a trainer that never tokenizes needs nothing.
 * tests/hf/run.sh compares every encoding with transformers' tokenizer on real text.
 *
 * Read (anything else is refused, naming it):
 *   model        BPE: vocab, merges ("a b" strings or [a, b] pairs), unk_token, fuse_unk,
 *                byte_fallback, ignore_merges; no dropout, continuing_subword_prefix or
 *                end_of_word_suffix
 *   added_tokens matched in the raw text before anything else, longest first
 *   normalizer   null, Sequence, Prepend, Replace (a String pattern)
 *   pre_tokenizer null, Sequence, ByteLevel (GPT-2's pattern when use_regex), Split (a Regex
 *                or String pattern; Isolated, Removed, MergedWithPrevious, MergedWithNext),
 *                Metaspace (as the first step)
 *   decoder      null, Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace
 *   post_processor ignored: encoding is add_special_tokens=False (relorac's data has no
 *                special tokens)
 * BPE (tokenizers, models/bpe/word.rs): a word starts as its characters (for byte-level
 * models each byte as its bytes_to_unicode character); the adjacent pair with the lowest
 * merge rank is merged, the leftmost on ties, until no pair has a rank; a symbol outside the
 * vocabulary becomes its <0xNN> byte pieces (byte_fallback) or the unknown token. */
#include "rt_internal.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

/* ---- PCRE2 (pcre2.h, 10.x; the library's ABI is stable within libpcre2-8.so.0) ---- */
#define PCRE2_LIB "libpcre2-8.so.0"
#define X_PCRE2_UTF 0x00080000u
#define X_PCRE2_UCP 0x00020000u
#define X_PCRE2_NO_UTF_CHECK 0x40000000u
#define X_PCRE2_ERROR_NOMATCH (-1)

typedef struct Pcre {
    void *lib;
    void *(*compile)(const unsigned char *pattern, size_t len, uint32_t options, int *err, size_t *err_at,
                     void *ccontext);
    void *(*match_data)(const void *code, void *gcontext);
    int (*match)(const void *code, const unsigned char *subject, size_t len, size_t start, uint32_t options,
                 void *match_data, void *mcontext);
    size_t *(*ovector)(void *match_data);
    void (*code_free)(void *code);
    void (*match_data_free)(void *match_data);
    int (*error_message)(int err, unsigned char *buf, size_t cap);
} Pcre;

static bool pcre_open(Pcre *p, const char *path, RtError *e)
{
    if (p->lib)
        return true;
    p->lib = dlopen(PCRE2_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!p->lib) {
        const char *msg = dlerror();
        return rt_err(e, RT_ERR_MISSING, "%s: its split patterns need PCRE2, which is not available: %s (Debian: "
                      "libpcre2-8-0)", path, msg ? msg : "cannot load " PCRE2_LIB);
    }
    static const char *const names[] = {"pcre2_compile_8",          "pcre2_match_data_create_from_pattern_8",
                                        "pcre2_match_8",            "pcre2_get_ovector_pointer_8",
                                        "pcre2_code_free_8",        "pcre2_match_data_free_8",
                                        "pcre2_get_error_message_8"};
    void (**slots[])(void) = {(void (**)(void))&p->compile,   (void (**)(void))&p->match_data,
                              (void (**)(void))&p->match,     (void (**)(void))&p->ovector,
                              (void (**)(void))&p->code_free, (void (**)(void))&p->match_data_free,
                              (void (**)(void))&p->error_message};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        void *sym = dlsym(p->lib, names[i]);
        if (!sym)
            return rt_err(e, RT_ERR_MISSING, "%s: %s lacks %s", path, PCRE2_LIB, names[i]);
        memcpy(slots[i], &sym, sizeof sym);
    }
    return true;
}

/* ---- hash maps ---- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

/* Byte strings to int32, open addressing; keys are copied. */
typedef struct StrMap {
    char **keys;
    uint32_t *lens;
    int32_t *vals;
    size_t cap, n; /* cap a power of two, n < cap / 2 */
} StrMap;

static void strmap_free(StrMap *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static int32_t *strmap_slot(const StrMap *m, const char *k, size_t n, bool *found)
{
    size_t i = (size_t)hash_bytes(k, n) & (m->cap - 1);
    while (m->keys[i] && !(m->lens[i] == n && memcmp(m->keys[i], k, n) == 0))
        i = (i + 1) & (m->cap - 1);
    *found = m->keys[i] != NULL;
    return &m->vals[i];
}

static bool strmap_grow(StrMap *m)
{
    StrMap g = {0};
    g.cap = m->cap ? m->cap * 2 : 1024;
    g.keys = calloc(g.cap, sizeof *g.keys);
    g.lens = calloc(g.cap, sizeof *g.lens);
    g.vals = calloc(g.cap, sizeof *g.vals);
    if (!g.keys || !g.lens || !g.vals) {
        strmap_free(&g);
        return false;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            bool f;
            int32_t *v = strmap_slot(&g, m->keys[i], m->lens[i], &f);
            size_t j = (size_t)(v - g.vals);
            g.keys[j] = m->keys[i];
            g.lens[j] = m->lens[i];
            *v = m->vals[i];
            g.n++;
        }
    free(m->keys);
    free(m->lens);
    free(m->vals);
    *m = g;
    return true;
}

/* Sets k -> v (replacing); false when out of memory. */
static bool strmap_put(StrMap *m, const char *k, size_t n, int32_t v)
{
    if ((m->n + 1) * 2 > m->cap && !strmap_grow(m))
        return false;
    bool found;
    int32_t *slot = strmap_slot(m, k, n, &found);
    if (!found) {
        size_t j = (size_t)(slot - m->vals);
        if (!(m->keys[j] = malloc(n + 1)))
            return false;
        memcpy(m->keys[j], k, n);
        m->keys[j][n] = '\0';
        m->lens[j] = (uint32_t)n;
        m->n++;
    }
    *slot = v;
    return true;
}

static bool strmap_get(const StrMap *m, const char *k, size_t n, int32_t *v)
{
    if (!m->cap)
        return false;
    bool found;
    int32_t *slot = strmap_slot(m, k, n, &found);
    if (found)
        *v = *slot;
    return found;
}

/* Pairs of token ids to (merge rank, merged id). */
typedef struct PairMap {
    uint64_t *keys; /* (a << 32 | b) + 1; 0 = empty */
    int32_t *rank, *merged;
    size_t cap, n;
} PairMap;

static size_t pair_slot(const PairMap *m, uint64_t key)
{
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (m->cap - 1);
    while (m->keys[i] && m->keys[i] != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static bool pairmap_init(PairMap *m, size_t n)
{
    m->cap = 1024;
    while (m->cap < 2 * n + 2)
        m->cap *= 2;
    m->keys = calloc(m->cap, sizeof *m->keys);
    m->rank = calloc(m->cap, sizeof *m->rank);
    m->merged = calloc(m->cap, sizeof *m->merged);
    return m->keys && m->rank && m->merged;
}

static uint64_t pair_key(int32_t a, int32_t b)
{
    return ((uint64_t)(uint32_t)a << 32 | (uint32_t)b) + 1;
}

/* ---- the tokenizer ---- */

enum { NORM_PREPEND, NORM_REPLACE };
typedef struct NormStep {
    int kind;
    char *a, *b; /* PREPEND: a; REPLACE: a -> b */
} NormStep;

enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_METASPACE };
enum { SPLIT_ISOLATED, SPLIT_REMOVED, SPLIT_PREVIOUS, SPLIT_NEXT };
typedef struct PreStep {
    int kind;
    void *re, *md;   /* SPLIT with a Regex, and BYTELEVEL with use_regex: the compiled pattern */
    char *literal;   /* SPLIT with a String */
    int behavior;    /* SPLIT */
    bool prefix_space; /* BYTELEVEL add_prefix_space */
    char *mark;      /* METASPACE replacement (U+2581) */
    int prepend;     /* METASPACE: 0 never, 1 first, 2 always */
    bool split;      /* METASPACE */
} PreStep;

typedef struct Span {
    size_t at, len;
} Span;

struct RtHfTok {
    char *path;
    StrMap vocab;       /* token -> id */
    char **token;       /* id -> token text (NULL: no such id) */
    int32_t n_ids;      /* 1 + the largest id */
    PairMap merges;
    int32_t unk;        /* -1: none */
    bool byte_fallback, fuse_unk, ignore_merges, byte_level;
    int32_t byte_id[256]; /* byte_fallback: the ids of <0x00>..<0xFF>, -1 when absent */
    char byte_char[256][3]; /* bytes_to_unicode: byte b as a UTF-8 character ... */
    uint8_t byte_char_len[256];
    int16_t char_byte[324]; /* ... and back (code points below 324), -1 elsewhere */
    NormStep *norm;
    int n_norm;
    PreStep *pre;
    int n_pre;
    char **added;       /* added tokens, longest first */
    size_t *added_len;
    int32_t *added_id;
    int n_added;
    bool added_first[256];
    /* decoding one token */
    bool dec_byte_level, dec_byte_fallback;
    char **dec_from, **dec_to; /* Replace steps (Metaspace: its mark -> " ") */
    int n_dec;
    Pcre pcre;
    StrMap cache;       /* word -> index into cache_ids (start) */
    int32_t *cache_ids; /* [count, ids...] runs */
    size_t cache_len, cache_cap;
};

/* GPT-2's pre-tokenizer pattern, which ByteLevel(use_regex = true) applies (tokenizers,
 * pre_tokenizers/byte_level.rs). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void put_cp(char *out, uint8_t *len, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        *len = 1;
    } else {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        *len = 2;
    }
}

/* bytes_to_unicode (GPT-2, encoder.py): printable bytes ('!'..'~', 0xA1..0xAC, 0xAE..0xFF)
 * stand for themselves, the other 68 for code points 256, 257, ... in byte order. */
static void byte_map(RtHfTok *t)
{
    unsigned next = 256;
    for (int i = 0; i < 324; i++)
        t->char_byte[i] = -1;
    for (unsigned b = 0; b < 256; b++) {
        bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        unsigned cp = printable ? b : next++;
        put_cp(t->byte_char[b], &t->byte_char_len[b], cp);
        t->char_byte[cp] = (int16_t)b;
    }
}

static const char *jstr(const RtJson *o, const char *key)
{
    const RtJson *v = rt_json_get(o, key);
    return v && v->kind == RT_JSON_STRING ? v->str : NULL;
}

static bool jbool(const RtJson *o, const char *key, bool dflt)
{
    const RtJson *v = rt_json_get(o, key);
    return v && v->kind == RT_JSON_TRUE ? true : v && v->kind == RT_JSON_FALSE ? false : dflt;
}

static bool unsupported(const char *path, const char *where, const char *what, RtError *e)
{
    return rt_err(e, RT_ERR_FORMAT, "%s: %s %s is not supported (tok_hf.c lists what is)", path, where,
                  what ? what : "of this form");
}

static bool compile_re(RtHfTok *t, const char *pattern, PreStep *s, RtError *e)
{
    if (!pcre_open(&t->pcre, t->path, e))
        return false;
    int err;
    size_t at;
    s->re = t->pcre.compile((const unsigned char *)pattern, strlen(pattern), X_PCRE2_UTF | X_PCRE2_UCP, &err, &at,
                            NULL);
    if (!s->re) {
        unsigned char msg[256];
        t->pcre.error_message(err, msg, sizeof msg);
        return rt_err(e, RT_ERR_FORMAT, "%s: split pattern '%s': %s at offset %zu", t->path, pattern, msg, at);
    }
    s->md = t->pcre.match_data(s->re, NULL);
    return s->md || rt_err(e, RT_ERR_NOMEM, "out of memory");
}

/* One pre-tokenizer (not a Sequence) into t->pre. */
static bool add_pre(RtHfTok *t, const RtJson *p, RtError *e)
{
    const char *type = jstr(p, "type");
    PreStep s = {0};
    if (!type)
        return unsupported(t->path, "a pre_tokenizer without a type", NULL, e);
    if (!strcmp(type, "ByteLevel")) {
        s.kind = PRE_BYTELEVEL;
        s.prefix_space = jbool(p, "add_prefix_space", true);
        t->byte_level = true;
        if (jbool(p, "use_regex", true) && !compile_re(t, GPT2_PATTERN, &s, e))
            return false;
    } else if (!strcmp(type, "Split")) {
        s.kind = PRE_SPLIT;
        const RtJson *pat = rt_json_get(p, "pattern");
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String"), *beh = jstr(p, "behavior");
        if (jbool(p, "invert", false))
            return unsupported(t->path, "pre_tokenizer Split with", "invert = true", e);
        if (!beh || (strcmp(beh, "Isolated") && strcmp(beh, "Removed") && strcmp(beh, "MergedWithPrevious") &&
                     strcmp(beh, "MergedWithNext")))
            return unsupported(t->path, "pre_tokenizer Split with behavior", beh, e);
        s.behavior = !strcmp(beh, "Isolated")             ? SPLIT_ISOLATED
                     : !strcmp(beh, "Removed")            ? SPLIT_REMOVED
                     : !strcmp(beh, "MergedWithPrevious") ? SPLIT_PREVIOUS
                                                          : SPLIT_NEXT;
        if (re) {
            if (!compile_re(t, re, &s, e))
                return false;
        } else if (lit && *lit) {
            if (!(s.literal = strdup(lit)))
                return rt_err(e, RT_ERR_NOMEM, "out of memory");
        } else {
            return unsupported(t->path, "pre_tokenizer Split with", "a pattern that is neither Regex nor String", e);
        }
    } else if (!strcmp(type, "Metaspace")) {
        if (t->n_pre > 0)
            return unsupported(t->path, "pre_tokenizer Metaspace", "after another pre-tokenizer", e);
        s.kind = PRE_METASPACE;
        const char *mark = jstr(p, "replacement"), *scheme = jstr(p, "prepend_scheme");
        s.mark = strdup(mark ? mark : "\xE2\x96\x81");
        s.prepend = scheme ? (!strcmp(scheme, "always") ? 2 : !strcmp(scheme, "first") ? 1 : 0)
                           : (jbool(p, "add_prefix_space", true) ? 2 : 0);
        s.split = jbool(p, "split", true);
        if (!s.mark)
            return rt_err(e, RT_ERR_NOMEM, "out of memory");
    } else {
        return unsupported(t->path, "pre_tokenizer", type, e);
    }
    PreStep *g = realloc(t->pre, (size_t)(t->n_pre + 1) * sizeof *g);
    if (!g)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    t->pre = g;
    t->pre[t->n_pre++] = s;
    return true;
}

static bool add_norm(RtHfTok *t, const RtJson *n, RtError *e)
{
    const char *type = jstr(n, "type");
    NormStep s = {0};
    if (type && !strcmp(type, "Prepend")) {
        s.kind = NORM_PREPEND;
        s.a = strdup(jstr(n, "prepend") ? jstr(n, "prepend") : "");
    } else if (type && !strcmp(type, "Replace")) {
        const char *lit = jstr(rt_json_get(n, "pattern"), "String"), *content = jstr(n, "content");
        if (!lit || !*lit || !content)
            return unsupported(t->path, "normalizer Replace with", "a pattern that is not a String", e);
        s.kind = NORM_REPLACE;
        s.a = strdup(lit);
        s.b = strdup(content);
    } else {
        return unsupported(t->path, "normalizer", type, e);
    }
    NormStep *g = realloc(t->norm, (size_t)(t->n_norm + 1) * sizeof *g);
    if (!g || !s.a || (s.kind == NORM_REPLACE && !s.b)) {
        free(s.a);
        free(s.b);
        if (g)
            t->norm = g;
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    t->norm = g;
    t->norm[t->n_norm++] = s;
    return true;
}

static bool add_dec_replace(RtHfTok *t, const char *from, const char *to, RtError *e)
{
    char **f = realloc(t->dec_from, (size_t)(t->n_dec + 1) * sizeof *f);
    if (f)
        t->dec_from = f;
    char **g = realloc(t->dec_to, (size_t)(t->n_dec + 1) * sizeof *g);
    if (g)
        t->dec_to = g;
    if (!f || !g)
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    t->dec_from[t->n_dec] = strdup(from);
    t->dec_to[t->n_dec] = strdup(to);
    t->n_dec++;
    return (t->dec_from[t->n_dec - 1] && t->dec_to[t->n_dec - 1]) || rt_err(e, RT_ERR_NOMEM, "out of memory");
}

static bool add_decoder(RtHfTok *t, const RtJson *d, RtError *e)
{
    const char *type = jstr(d, "type");
    if (!type)
        return unsupported(t->path, "a decoder without a type", NULL, e);
    if (!strcmp(type, "Sequence")) {
        const RtJson *list = rt_json_get(d, "decoders");
        for (int i = 0; list && list->kind == RT_JSON_ARRAY && i < list->n; i++)
            if (!add_decoder(t, &list->items[i], e))
                return false;
        return true;
    }
    if (!strcmp(type, "ByteLevel"))
        t->dec_byte_level = true;
    else if (!strcmp(type, "ByteFallback"))
        t->dec_byte_fallback = true;
    else if (!strcmp(type, "Replace")) {
        const char *lit = jstr(rt_json_get(d, "pattern"), "String"), *content = jstr(d, "content");
        if (!lit || !content)
            return unsupported(t->path, "decoder Replace with", "a pattern that is not a String", e);
        return add_dec_replace(t, lit, content, e);
    } else if (!strcmp(type, "Metaspace")) {
        const char *mark = jstr(d, "replacement");
        return add_dec_replace(t, mark ? mark : "\xE2\x96\x81", " ", e);
    } else if (strcmp(type, "Fuse") && strcmp(type, "Strip")) {
        /* Fuse joins the pieces, Strip trims the text's ends: nothing to do token by token */
        return unsupported(t->path, "decoder", type, e);
    }
    return true;
}

/* merges: "a b" strings (tokenizers < 0.20) or [a, b] pairs. */
static bool load_merges(RtHfTok *t, const RtJson *merges, RtError *e)
{
    if (!merges || merges->kind != RT_JSON_ARRAY)
        return rt_err(e, RT_ERR_FORMAT, "%s: model.merges is not a list", t->path);
    if (!pairmap_init(&t->merges, (size_t)merges->n))
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    for (int r = 0; r < merges->n; r++) {
        const RtJson *m = &merges->items[r];
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        char *sp = NULL;
        if (m->kind == RT_JSON_STRING && (sp = strchr(m->str, ' '))) {
            a = m->str;
            la = (size_t)(sp - m->str);
            b = sp + 1;
            lb = strlen(b);
        } else if (m->kind == RT_JSON_ARRAY && m->n == 2 && m->items[0].kind == RT_JSON_STRING &&
                   m->items[1].kind == RT_JSON_STRING) {
            a = m->items[0].str;
            la = m->items[0].len;
            b = m->items[1].str;
            lb = m->items[1].len;
        } else {
            return rt_err(e, RT_ERR_FORMAT, "%s: merge %d is neither \"a b\" nor [a, b]", t->path, r);
        }
        int32_t ia, ib, im;
        char *joined = malloc(la + lb + 1);
        if (!joined)
            return rt_err(e, RT_ERR_NOMEM, "out of memory");
        memcpy(joined, a, la);
        memcpy(joined + la, b, lb);
        bool known = strmap_get(&t->vocab, a, la, &ia) && strmap_get(&t->vocab, b, lb, &ib) &&
                     strmap_get(&t->vocab, joined, la + lb, &im);
        free(joined);
        if (!known)
            return rt_err(e, RT_ERR_FORMAT, "%s: merge %d (%.*s + %.*s) names a token outside the vocabulary",
                          t->path, r, (int)la, a, (int)lb, b);
        uint64_t key = pair_key(ia, ib);
        size_t slot = pair_slot(&t->merges, key);
        if (!t->merges.keys[slot]) { /* the first (lowest) rank of a pair counts */
            t->merges.keys[slot] = key;
            t->merges.rank[slot] = r;
            t->merges.merged[slot] = im;
            t->merges.n++;
        }
    }
    return true;
}

bool rt_hf_tok_load(RtHfTok **out, const char *path, RtError *e)
{
    *out = NULL;
    RtHfTok *t = calloc(1, sizeof *t);
    if (!t || !(t->path = strdup(path))) {
        free(t);
        return rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    t->unk = -1;
    byte_map(t);
    RtJson j;
    bool ok = rt_json_read_file(&j, path, "tokenizer", e);
    if (!ok) {
        rt_hf_tok_free(t);
        return false;
    }
    const RtJson *model = rt_json_get(&j, "model");
    const char *type = jstr(model, "type");
    if (!model || (type && strcmp(type, "BPE")))
        ok = unsupported(path, "model", type ? type : "(none)", e);
    else if (!rt_json_get(model, "merges") && type == NULL)
        ok = unsupported(path, "model", "without merges", e);
    const RtJson *vocab = ok ? rt_json_get(model, "vocab") : NULL;
    if (ok && (!vocab || vocab->kind != RT_JSON_OBJECT))
        ok = rt_err(e, RT_ERR_FORMAT, "%s: model.vocab is not an object", path);
    const RtJson *drop = ok ? rt_json_get(model, "dropout") : NULL;
    if (ok && drop && drop->kind == RT_JSON_NUMBER && drop->num > 0)
        ok = unsupported(path, "model", "with dropout", e);
    if (ok && ((jstr(model, "continuing_subword_prefix") && *jstr(model, "continuing_subword_prefix")) ||
               (jstr(model, "end_of_word_suffix") && *jstr(model, "end_of_word_suffix"))))
        ok = unsupported(path, "model", "with a continuing_subword_prefix or end_of_word_suffix", e);
    /* the vocabulary, and the added tokens (ids may lie beyond it) */
    const RtJson *added = ok ? rt_json_get(&j, "added_tokens") : NULL;
    int32_t max_id = -1;
    for (int i = 0; ok && i < vocab->n; i++) {
        const RtJson *v = &vocab->items[i];
        if (v->kind != RT_JSON_NUMBER || v->num < 0 || v->num > INT32_MAX - 1 || v->num != (double)(int32_t)v->num)
            ok = rt_err(e, RT_ERR_FORMAT, "%s: model.vocab[\"%s\"] is not a token id", path, vocab->keys[i]);
        else if (!strmap_put(&t->vocab, vocab->keys[i], strlen(vocab->keys[i]), (int32_t)v->num))
            ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
        else if ((int32_t)v->num > max_id)
            max_id = (int32_t)v->num;
    }
    if (ok && added && added->kind == RT_JSON_ARRAY) {
        t->added = calloc((size_t)added->n + 1, sizeof *t->added);
        t->added_len = calloc((size_t)added->n + 1, sizeof *t->added_len);
        t->added_id = calloc((size_t)added->n + 1, sizeof *t->added_id);
        ok = (t->added && t->added_len && t->added_id) || rt_err(e, RT_ERR_NOMEM, "out of memory");
        for (int i = 0; ok && i < added->n; i++) {
            const char *content = jstr(&added->items[i], "content");
            const RtJson *id = rt_json_get(&added->items[i], "id");
            if (!content || !*content || !id || id->kind != RT_JSON_NUMBER || id->num < 0 || id->num > INT32_MAX - 1)
                ok = rt_err(e, RT_ERR_FORMAT, "%s: added_tokens[%d] lacks a content or an id", path, i);
            else if (!(t->added[t->n_added] = strdup(content)))
                ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
            else {
                t->added_len[t->n_added] = strlen(content);
                t->added_id[t->n_added] = (int32_t)id->num;
                t->added_first[(unsigned char)content[0]] = true;
                if ((int32_t)id->num > max_id)
                    max_id = (int32_t)id->num;
                t->n_added++;
            }
        }
        /* longest first, so that "<|end|>" wins over "<|" (insertion sort: few tokens) */
        for (int i = 1; ok && i < t->n_added; i++)
            for (int k = i; k > 0 && t->added_len[k] > t->added_len[k - 1]; k--) {
                char *s = t->added[k];
                size_t l = t->added_len[k];
                int32_t d = t->added_id[k];
                t->added[k] = t->added[k - 1], t->added_len[k] = t->added_len[k - 1], t->added_id[k] = t->added_id[k - 1];
                t->added[k - 1] = s, t->added_len[k - 1] = l, t->added_id[k - 1] = d;
            }
    }
    if (ok) {
        t->n_ids = max_id + 1;
        t->token = calloc((size_t)t->n_ids + 1, sizeof *t->token);
        ok = t->token || rt_err(e, RT_ERR_NOMEM, "out of memory");
        for (int i = 0; ok && i < vocab->n; i++)
            if (!t->token[(int32_t)vocab->items[i].num])
                ok = (t->token[(int32_t)vocab->items[i].num] = strdup(vocab->keys[i])) ||
                     rt_err(e, RT_ERR_NOMEM, "out of memory");
        for (int i = 0; ok && i < t->n_added; i++)
            if (!t->token[t->added_id[i]])
                ok = (t->token[t->added_id[i]] = strdup(t->added[i])) || rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    if (ok) {
        const char *unk = jstr(model, "unk_token");
        if (unk && !strmap_get(&t->vocab, unk, strlen(unk), &t->unk))
            ok = rt_err(e, RT_ERR_FORMAT, "%s: unk_token '%s' is not in the vocabulary", path, unk);
        t->byte_fallback = jbool(model, "byte_fallback", false);
        t->fuse_unk = jbool(model, "fuse_unk", false);
        t->ignore_merges = jbool(model, "ignore_merges", false);
        for (int b = 0; b < 256; b++) {
            char piece[8];
            snprintf(piece, sizeof piece, "<0x%02X>", b);
            if (!strmap_get(&t->vocab, piece, 6, &t->byte_id[b]))
                t->byte_id[b] = -1;
        }
        ok = ok && load_merges(t, rt_json_get(model, "merges"), e);
    }
    /* the pipeline */
    const RtJson *norm = ok ? rt_json_get(&j, "normalizer") : NULL;
    if (norm && norm->kind == RT_JSON_OBJECT) {
        const char *nt = jstr(norm, "type");
        const RtJson *list = nt && !strcmp(nt, "Sequence") ? rt_json_get(norm, "normalizers") : NULL;
        if (list && list->kind == RT_JSON_ARRAY)
            for (int i = 0; ok && i < list->n; i++)
                ok = add_norm(t, &list->items[i], e);
        else
            ok = add_norm(t, norm, e);
    }
    const RtJson *pre = ok ? rt_json_get(&j, "pre_tokenizer") : NULL;
    if (pre && pre->kind == RT_JSON_OBJECT) {
        const char *pt = jstr(pre, "type");
        const RtJson *list = pt && !strcmp(pt, "Sequence") ? rt_json_get(pre, "pretokenizers") : NULL;
        if (list && list->kind == RT_JSON_ARRAY)
            for (int i = 0; ok && i < list->n; i++)
                ok = add_pre(t, &list->items[i], e);
        else
            ok = add_pre(t, pre, e);
    }
    const RtJson *dec = ok ? rt_json_get(&j, "decoder") : NULL;
    if (dec && dec->kind == RT_JSON_OBJECT)
        ok = add_decoder(t, dec, e);
    rt_json_free(&j);
    if (!ok) {
        rt_hf_tok_free(t);
        return false;
    }
    *out = t;
    return true;
}

void rt_hf_tok_free(RtHfTok *t)
{
    if (!t)
        return;
    strmap_free(&t->vocab);
    strmap_free(&t->cache);
    for (int32_t i = 0; t->token && i < t->n_ids; i++)
        free(t->token[i]);
    free(t->token);
    free(t->merges.keys);
    free(t->merges.rank);
    free(t->merges.merged);
    for (int i = 0; i < t->n_norm; i++) {
        free(t->norm[i].a);
        free(t->norm[i].b);
    }
    free(t->norm);
    for (int i = 0; i < t->n_pre; i++) {
        if (t->pre[i].md)
            t->pcre.match_data_free(t->pre[i].md);
        if (t->pre[i].re)
            t->pcre.code_free(t->pre[i].re);
        free(t->pre[i].literal);
        free(t->pre[i].mark);
    }
    free(t->pre);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i]);
    free(t->added);
    free(t->added_len);
    free(t->added_id);
    for (int i = 0; i < t->n_dec; i++) {
        free(t->dec_from[i]);
        free(t->dec_to[i]);
    }
    free(t->dec_from);
    free(t->dec_to);
    free(t->cache_ids);
    if (t->pcre.lib)
        dlclose(t->pcre.lib);
    free(t->path);
    free(t);
}

int64_t rt_hf_tok_vocab(const RtHfTok *t)
{
    return t->n_ids;
}

/* ---- encoding ---- */

/* Appends to out the bytes of s with every `from` replaced by `to`. */
static void replace_into(RtBuf *out, const char *s, size_t n, const char *from, const char *to)
{
    size_t lf = strlen(from), lt = strlen(to);
    for (size_t i = 0; i < n;) {
        if (lf && i + lf <= n && memcmp(s + i, from, lf) == 0) {
            rt_buf_add(out, to, lt);
            i += lf;
        } else {
            rt_buf_add(out, s + i, 1);
            i++;
        }
    }
}

/* The length of the UTF-8 character at s (1 for a stray byte). */
static size_t utf8_len(const char *s, size_t n)
{
    unsigned char c = (unsigned char)s[0];
    size_t l = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return l <= n ? l : 1;
}

typedef struct Spans {
    Span *s;
    size_t n, cap;
    bool oom;
} Spans;

static void spans_add(Spans *v, size_t at, size_t len)
{
    if (len == 0 || v->oom)
        return;
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 64;
        Span *g = realloc(v->s, nc * sizeof *g);
        if (!g) {
            v->oom = true;
            return;
        }
        v->s = g;
        v->cap = nc;
    }
    v->s[v->n++] = (Span){at, len};
}

/* Splits span sp of text by step s (Isolated: matches and the text between them are
 * pieces; Removed: only the text between; MergedWithPrevious / Next: each match joins the
 * piece before / after it). */
static bool split_span(RtHfTok *t, const PreStep *s, const char *text, Span sp, Spans *out, RtError *e)
{
    size_t at = sp.at, end = sp.at + sp.len, gap = sp.at; /* gap: start of the text not yet emitted */
    size_t pending = (size_t)-1;                           /* MergedWithNext: a match waiting for its piece */
    while (at <= end) {
        size_t mb, me;
        if (s->re) {
            int rc = t->pcre.match(s->re, (const unsigned char *)text + sp.at, sp.len, at - sp.at,
                                   at > sp.at ? X_PCRE2_NO_UTF_CHECK : 0, s->md, NULL);
            if (rc == X_PCRE2_ERROR_NOMATCH)
                break;
            if (rc < 0) {
                unsigned char msg[256];
                t->pcre.error_message(rc, msg, sizeof msg);
                return rt_err(e, RT_ERR_FORMAT, "the text cannot be split by %s's pattern: %s (near byte %zu)", t->path,
                              msg, at);
            }
            size_t *ov = t->pcre.ovector(s->md);
            mb = sp.at + ov[0];
            me = sp.at + ov[1];
        } else {
            const char *hit = NULL;
            size_t ll = strlen(s->literal);
            for (size_t i = at; !hit && i + ll <= end; i++)
                if (memcmp(text + i, s->literal, ll) == 0)
                    hit = text + i;
            if (!hit)
                break;
            mb = (size_t)(hit - text);
            me = mb + ll;
        }
        if (me == mb) { /* an empty match splits nothing: move on one character */
            at = me + (me < end ? utf8_len(text + me, end - me) : 1);
            continue;
        }
        switch (s->behavior) {
        case SPLIT_ISOLATED:
            spans_add(out, gap, mb - gap);
            spans_add(out, mb, me - mb);
            gap = me;
            break;
        case SPLIT_REMOVED:
            spans_add(out, gap, mb - gap);
            gap = me;
            break;
        case SPLIT_PREVIOUS:
            spans_add(out, gap, me - gap);
            gap = me;
            break;
        case SPLIT_NEXT:
            if (pending != (size_t)-1)
                spans_add(out, pending, mb - pending);
            else
                spans_add(out, gap, mb - gap);
            pending = mb;
            gap = me;
            break;
        }
        at = me;
    }
    if (s->behavior == SPLIT_NEXT && pending != (size_t)-1)
        spans_add(out, pending, end - pending);
    else
        spans_add(out, gap, end - gap);
    return !out->oom || rt_err(e, RT_ERR_NOMEM, "out of memory");
}

/* BPE of one word (bytes w[0..n)): its ids appended to ids. */
static bool bpe_word(RtHfTok *t, const char *w, size_t n, int32_t **ids, int64_t *nids, int64_t *cap, RtError *e)
{
    /* the symbols: strings in sym (mapped bytes for byte-level models), with their ids */
    RtBuf sym = {0};
    size_t ns = 0, *start = malloc((n + 1) * sizeof *start), *len = malloc((n + 1) * sizeof *len);
    int32_t *id = malloc((n + 1) * sizeof *id);
    bool ok = start && len && id;
    for (size_t i = 0; ok && i < n;) {
        size_t l = t->byte_level ? 1 : utf8_len(w + i, n - i);
        start[ns] = sym.len;
        if (t->byte_level)
            rt_buf_add(&sym, t->byte_char[(unsigned char)w[i]], t->byte_char_len[(unsigned char)w[i]]);
        else
            rt_buf_add(&sym, w + i, l);
        len[ns] = sym.len - start[ns];
        ns++;
        i += l;
    }
    ok = ok && !sym.oom;
    if (ok && t->ignore_merges && strmap_get(&t->vocab, sym.p, sym.len, &id[0])) {
        ns = 1;
        len[0] = sym.len;
    } else if (ok) {
        for (size_t i = 0; i < ns; i++)
            if (!strmap_get(&t->vocab, sym.p + start[i], len[i], &id[i]))
                id[i] = -1;
        for (;;) { /* merge the lowest-ranked pair, the leftmost on ties */
            size_t best = ns;
            int32_t best_rank = INT32_MAX, merged = -1;
            for (size_t i = 0; i + 1 < ns; i++) {
                if (id[i] < 0 || id[i + 1] < 0)
                    continue;
                size_t slot = pair_slot(&t->merges, pair_key(id[i], id[i + 1]));
                if (t->merges.keys[slot] && t->merges.rank[slot] < best_rank) {
                    best = i;
                    best_rank = t->merges.rank[slot];
                    merged = t->merges.merged[slot];
                }
            }
            if (best == ns)
                break;
            id[best] = merged;
            len[best] += len[best + 1];
            memmove(start + best + 1, start + best + 2, (ns - best - 2) * sizeof *start);
            memmove(len + best + 1, len + best + 2, (ns - best - 2) * sizeof *len);
            memmove(id + best + 1, id + best + 2, (ns - best - 2) * sizeof *id);
            ns--;
        }
    }
    bool last_unk = false;
    for (size_t i = 0; ok && i < ns; i++) {
        int32_t out[4 * 8];
        int k = 0;
        if (id[i] >= 0) {
            out[k++] = id[i];
            last_unk = false;
        } else if (t->byte_fallback && len[i] <= 8) {
            for (size_t b = 0; b < len[i]; b++) {
                int32_t bid = t->byte_id[(unsigned char)sym.p[start[i] + b]];
                out[k++] = bid >= 0 ? bid : t->unk;
            }
            last_unk = false;
        } else if (t->unk >= 0) {
            if (!(t->fuse_unk && last_unk))
                out[k++] = t->unk;
            last_unk = true;
        } else {
            ok = rt_err(e, RT_ERR_FORMAT, "%s cannot encode '%.*s': it is not in the vocabulary and the model has no "
                        "unk_token or byte fallback", t->path, (int)len[i], sym.p + start[i]);
            break;
        }
        for (int j = 0; j < k; j++) {
            if (out[j] < 0) {
                ok = rt_err(e, RT_ERR_FORMAT, "%s cannot encode a byte of '%.*s'", t->path, (int)len[i],
                            sym.p + start[i]);
                break;
            }
            if (*nids == *cap) {
                int64_t nc = *cap ? *cap * 2 : 256;
                int32_t *g = realloc(*ids, (size_t)nc * sizeof *g);
                if (!g) {
                    ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
                    break;
                }
                *ids = g;
                *cap = nc;
            }
            (*ids)[(*nids)++] = out[j];
        }
    }
    if (!start || !len || !id || sym.oom)
        ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
    free(start);
    free(len);
    free(id);
    rt_buf_fini(&sym);
    return ok;
}

/* One word through the cache (words repeat: a corpus is mostly the same few thousand). */
static bool encode_word(RtHfTok *t, const char *w, size_t n, int32_t **ids, int64_t *nids, int64_t *cap, RtError *e)
{
    int32_t at;
    if (n <= 64 && strmap_get(&t->cache, w, n, &at)) {
        int32_t k = t->cache_ids[at];
        for (int32_t i = 0; i < k; i++) {
            if (*nids == *cap) {
                int64_t nc = *cap ? *cap * 2 : 256;
                int32_t *g = realloc(*ids, (size_t)nc * sizeof *g);
                if (!g)
                    return rt_err(e, RT_ERR_NOMEM, "out of memory");
                *ids = g;
                *cap = nc;
            }
            (*ids)[(*nids)++] = t->cache_ids[at + 1 + i];
        }
        return true;
    }
    int64_t before = *nids;
    if (!bpe_word(t, w, n, ids, nids, cap, e))
        return false;
    int64_t k = *nids - before;
    if (n <= 64 && t->cache.n < (1u << 20) && t->cache_len + (size_t)k + 1 <= INT32_MAX) {
        if (t->cache_len + (size_t)k + 1 > t->cache_cap) {
            size_t nc = t->cache_cap ? t->cache_cap * 2 : 4096;
            while (nc < t->cache_len + (size_t)k + 1)
                nc *= 2;
            int32_t *g = realloc(t->cache_ids, nc * sizeof *g);
            if (!g)
                return true; /* no cache: still correct */
            t->cache_ids = g;
            t->cache_cap = nc;
        }
        if (strmap_put(&t->cache, w, n, (int32_t)t->cache_len)) {
            t->cache_ids[t->cache_len] = (int32_t)k;
            memcpy(t->cache_ids + t->cache_len + 1, *ids + before, (size_t)k * sizeof **ids);
            t->cache_len += (size_t)k + 1;
        }
    }
    return true;
}

/* A section of text without added tokens: normalize, pre-tokenize, BPE each piece. */
static bool encode_section(RtHfTok *t, const char *text, size_t len, bool first, int32_t **ids, int64_t *nids,
                           int64_t *cap, RtError *e)
{
    RtBuf cur = {0}, next = {0};
    rt_buf_add(&cur, text, len);
    for (int i = 0; i < t->n_norm; i++) {
        const NormStep *s = &t->norm[i];
        next.len = 0;
        if (s->kind == NORM_PREPEND) {
            if (cur.len)
                rt_buf_add(&next, s->a, strlen(s->a));
            rt_buf_add(&next, cur.p ? cur.p : "", cur.len);
        } else {
            replace_into(&next, cur.p ? cur.p : "", cur.len, s->a, s->b);
        }
        RtBuf tmp = cur;
        cur = next;
        next = tmp;
    }
    Spans a = {0}, b = {0};
    bool ok = !cur.oom || rt_err(e, RT_ERR_NOMEM, "out of memory");
    if (ok && t->n_pre > 0 && t->pre[0].kind == PRE_METASPACE) { /* rewrites the text first */
        const PreStep *s = &t->pre[0];
        next.len = 0;
        size_t lm = strlen(s->mark);
        bool starts = cur.len >= lm && memcmp(cur.p, s->mark, lm) == 0;
        if (cur.len && !starts && (s->prepend == 2 || (s->prepend == 1 && first)))
            rt_buf_add(&next, s->mark, lm);
        replace_into(&next, cur.p ? cur.p : "", cur.len, " ", s->mark);
        RtBuf tmp = cur;
        cur = next;
        next = tmp;
        ok = !cur.oom || rt_err(e, RT_ERR_NOMEM, "out of memory");
    }
    bool prefix_space = false; /* ByteLevel(add_prefix_space): every section, as tokenizers does */
    for (int i = 0; i < t->n_pre; i++)
        prefix_space = prefix_space || (t->pre[i].kind == PRE_BYTELEVEL && t->pre[i].prefix_space);
    if (ok && prefix_space && cur.len && cur.p[0] != ' ') {
        next.len = 0;
        rt_buf_add(&next, " ", 1);
        rt_buf_add(&next, cur.p, cur.len);
        RtBuf tmp = cur;
        cur = next;
        next = tmp;
    }
    spans_add(&a, 0, cur.len);
    for (int i = 0; ok && i < t->n_pre; i++) {
        const PreStep *s = &t->pre[i];
        PreStep split = *s;
        if (s->kind == PRE_METASPACE) {
            if (!s->split)
                continue;
            split.literal = s->mark; /* each piece starts with the mark */
            split.re = NULL;
            split.behavior = SPLIT_NEXT;
        } else if (s->kind == PRE_BYTELEVEL) {
            if (!s->re)
                continue;
            split.behavior = SPLIT_ISOLATED;
        }
        b.n = 0;
        for (size_t k = 0; ok && k < a.n; k++)
            ok = split_span(t, &split, cur.p, a.s[k], &b, e);
        Spans tmp = a;
        a = b;
        b = tmp;
    }
    for (size_t k = 0; ok && k < a.n; k++)
        ok = encode_word(t, cur.p + a.s[k].at, a.s[k].len, ids, nids, cap, e);
    free(a.s);
    free(b.s);
    rt_buf_fini(&cur);
    rt_buf_fini(&next);
    return ok;
}

bool rt_hf_tok_encode(RtHfTok *t, const char *text, size_t len, int32_t **ids, int64_t *n, RtError *e)
{
    *ids = NULL;
    *n = 0;
    int64_t cap = 0;
    size_t sec = 0;
    bool ok = true, first = true;
    for (size_t i = 0; ok && i <= len; i++) {
        int hit = -1;
        if (i < len && t->added_first[(unsigned char)text[i]])
            for (int k = 0; hit < 0 && k < t->n_added; k++)
                if (i + t->added_len[k] <= len && memcmp(text + i, t->added[k], t->added_len[k]) == 0)
                    hit = k;
        if (hit < 0 && i < len)
            continue;
        if (i > sec)
            ok = encode_section(t, text + sec, i - sec, first, ids, n, &cap, e);
        first = false;
        if (ok && hit >= 0) {
            if (*n == cap) {
                int64_t nc = cap ? cap * 2 : 256;
                int32_t *g = realloc(*ids, (size_t)nc * sizeof *g);
                if (!g) {
                    ok = rt_err(e, RT_ERR_NOMEM, "out of memory");
                    break;
                }
                *ids = g;
                cap = nc;
            }
            (*ids)[(*n)++] = t->added_id[hit];
            i += t->added_len[hit] - 1;
            sec = i + 1;
        }
    }
    if (!ok) {
        free(*ids);
        *ids = NULL;
        *n = 0;
    }
    return ok;
}

/* ---- decoding one token ---- */

bool rt_hf_tok_piece(RtHfTok *t, int32_t id, RtBuf *out)
{
    if (id < 0 || id >= t->n_ids || !t->token[id])
        return false;
    const char *s = t->token[id];
    size_t n = strlen(s);
    for (int i = 0; i < t->n_added; i++)
        if (t->added_id[i] == id) {
            rt_buf_add(out, s, n);
            return true;
        }
    if (t->dec_byte_level) { /* each character stands for a byte (bytes_to_unicode) */
        for (size_t i = 0; i < n;) {
            size_t l = utf8_len(s + i, n - i);
            unsigned cp = l == 1 ? (unsigned char)s[i] : l == 2 ? ((unsigned)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F)) : 0;
            if (l <= 2 && cp < 324 && t->char_byte[cp] >= 0) {
                unsigned char b = (unsigned char)t->char_byte[cp];
                rt_buf_add(out, &b, 1);
            } else {
                rt_buf_add(out, s + i, l);
            }
            i += l;
        }
        return true;
    }
    unsigned hex;
    char tail;
    if (t->dec_byte_fallback && n == 6 && sscanf(s, "<0x%2X%c", &hex, &tail) == 2 && tail == '>') {
        unsigned char b = (unsigned char)hex;
        rt_buf_add(out, &b, 1);
        return true;
    }
    RtBuf cur = {0}, next = {0};
    rt_buf_add(&cur, s, n);
    for (int i = 0; i < t->n_dec; i++) {
        next.len = 0;
        replace_into(&next, cur.p, cur.len, t->dec_from[i], t->dec_to[i]);
        RtBuf tmp = cur;
        cur = next;
        next = tmp;
    }
    rt_buf_add(out, cur.p ? cur.p : "", cur.len);
    rt_buf_fini(&cur);
    rt_buf_fini(&next);
    return true;
}
