/* `relorac tokenize`: text to token files the trainer reads (llm.c's format, docs/runtime.md
 * "Data"), with the tokenizer next to them. The tokenizer is trained with SentencePiece
 * (--vocab N) or an existing one is applied (--tokenizer FILE: a SentencePiece model or a
 * Hugging Face tokenizer.json), through the runtime's tokenizers (runtime/tokenizer.c), so
 * that the trainer's --tokenizer encodes prompts exactly as the data was encoded. */
#include "tokenize.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt_internal.h"

enum { TOK_OK = 0, TOK_USAGE = 2 };

static void help(FILE *out)
{
    fprintf(out,
            "usage: relorac tokenize TEXT... -o DIR (--vocab N [--model-type unigram|bpe] | --tokenizer FILE)\n"
            "                        [--val-fraction F]\n"
            "       relorac tokenize --decode TOKENS.bin --tokenizer FILE\n"
            "\n"
            "Encodes text files into token files for the trainer, in llm.c's format (uint16 tokens\n"
            "when the vocabulary has at most 65536 ids, else uint32), and puts the tokenizer next to\n"
            "them: DIR/train.bin, DIR/val.bin (with --val-fraction), DIR/tokenizer.model or\n"
            "DIR/tokenizer.json. Train with data = tokens(\"DIR/train.bin\") and the vocab it prints;\n"
            "sample with the trainer's --tokenizer DIR/tokenizer.model.\n"
            "\n"
            "options:\n"
            "  -o DIR             the folder to write (created)\n"
            "  --vocab N          train a SentencePiece model of N pieces on the text: byte fallback\n"
            "                     (any text encodes), no normalization and no dummy prefix (decoding\n"
            "                     gives the text back byte for byte); its log goes to DIR/tokenizer.log\n"
            "  --model-type T     with --vocab: unigram (the default) or bpe\n"
            "  --tokenizer FILE   apply an existing tokenizer: a SentencePiece .model or a Hugging\n"
            "                     Face tokenizer.json with a BPE model\n"
            "  --val-fraction F   the last fraction F (0 <= F < 1) of the text, cut at a line start,\n"
            "                     goes to DIR/val.bin and not into the tokenizer's training (default 0)\n"
            "  --decode FILE      print the text of a token file (llm.c's format) instead, token by\n"
            "                     token as the trainer prints samples\n"
            "  -h, --help         show this help\n"
            "\n"
            "SentencePiece models are encoded line by line (each line with its newline), as\n"
            "SentencePiece sees sentences; tokenizer.json files a whole file at once.\n"
            "\n"
            "exit status: 0 ok, 2 usage, I/O or tokenizer error\n");
}

typedef struct Args {
    const char **inputs;
    int n_inputs;
    const char *out, *tokenizer, *model_type, *decode;
    int64_t vocab;
    double val_fraction;
} Args;

static bool parse_args(int argc, char **argv, Args *a, bool *is_help)
{
    memset(a, 0, sizeof *a);
    a->model_type = "unigram";
    a->inputs = calloc((size_t)argc + 1, sizeof *a->inputs);
    if (!a->inputs)
        return false;
    for (int i = 0; i < argc; i++) {
        const char *s = argv[i], *eq = strchr(s, '='), *val = NULL;
        size_t name_len = eq && s[0] == '-' ? (size_t)(eq - s) : strlen(s);
        bool takes = !strcmp(s, "-o") || (!strncmp(s, "--", 2) && strcmp(s, "--help"));
        if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
            *is_help = true;
            continue;
        }
        if (s[0] != '-') {
            a->inputs[a->n_inputs++] = s;
            continue;
        }
        if (takes) {
            val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
            if (!val || !*val) {
                fprintf(stderr, "relorac tokenize: %.*s needs a value (see relorac tokenize --help)\n",
                        (int)name_len, s);
                return false;
            }
        }
        char *end;
        if (!strcmp(s, "-o") || !strncmp(s, "-o=", 3)) {
            a->out = val;
        } else if (!strncmp(s, "--tokenizer", name_len) && name_len == 11) {
            a->tokenizer = val;
        } else if (!strncmp(s, "--decode", name_len) && name_len == 8) {
            a->decode = val;
        } else if (!strncmp(s, "--model-type", name_len) && name_len == 12) {
            if (strcmp(val, "unigram") && strcmp(val, "bpe")) {
                fprintf(stderr, "relorac tokenize: --model-type %s: expected unigram or bpe\n", val);
                return false;
            }
            a->model_type = val;
        } else if (!strncmp(s, "--vocab", name_len) && name_len == 7) {
            errno = 0;
            long long v = strtoll(val, &end, 10);
            if (errno || *end || v < 1 || v > INT32_MAX) {
                fprintf(stderr, "relorac tokenize: --vocab %s: expected an integer in 1..2147483647\n", val);
                return false;
            }
            a->vocab = v;
        } else if (!strncmp(s, "--val-fraction", name_len) && name_len == 14) {
            errno = 0;
            double v = strtod(val, &end);
            if (errno || *end || !(v >= 0 && v < 1)) {
                fprintf(stderr, "relorac tokenize: --val-fraction %s: expected a number in [0, 1)\n", val);
                return false;
            }
            a->val_fraction = v;
        } else {
            fprintf(stderr, "relorac tokenize: unknown option '%.*s' (see relorac tokenize --help)\n", (int)name_len,
                    s);
            return false;
        }
    }
    if (*is_help)
        return true;
    if (a->decode) {
        if (!a->tokenizer || a->n_inputs || a->out || a->vocab) {
            fprintf(stderr, "relorac tokenize: --decode TOKENS.bin takes --tokenizer FILE and nothing else\n");
            return false;
        }
        return true;
    }
    if (a->n_inputs == 0 || !a->out) {
        fprintf(stderr, "relorac tokenize: %s (see relorac tokenize --help)\n",
                a->n_inputs == 0 ? "no text files given" : "no output folder given (-o DIR)");
        return false;
    }
    if (!a->vocab == !a->tokenizer) {
        fprintf(stderr, "relorac tokenize: give either --vocab N (train a tokenizer) or --tokenizer FILE (use "
                        "one)\n");
        return false;
    }
    if (a->tokenizer && strcmp(a->model_type, "unigram") != 0) {
        fprintf(stderr, "relorac tokenize: --model-type goes with --vocab (a tokenizer to train)\n");
        return false;
    }
    return true;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The whole file into memory (regular files only: a FIFO is refused, not waited on). */
static char *slurp(const char *path, size_t *n, RtError *e)
{
    struct stat st;
    int fd = rt_open_regular(path, "text file", &st, e);
    if (fd < 0)
        return NULL;
    *n = (size_t)st.st_size;
    char *buf = malloc(*n + 1);
    if (!buf)
        rt_err(e, RT_ERR_NOMEM, "%s: cannot hold the text in memory (%zu bytes)", path, *n);
    else if (!rt_read_at(fd, path, buf, *n, 0, e)) {
        free(buf);
        buf = NULL;
    }
    close(fd);
    if (buf)
        buf[*n] = '\0';
    return buf;
}

static bool write_file(const char *path, const void *data, size_t n, RtError *e)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return rt_err(e, RT_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    bool ok = rt_write_all(fd, NULL, path, data, n, e);
    if (close(fd) != 0 && ok)
        ok = rt_err(e, RT_ERR_IO, "%s: cannot close: %s", path, strerror(errno));
    return ok;
}

/* Token ids, grown as text is encoded. */
typedef struct Ids {
    int32_t *p;
    int64_t n, cap;
} Ids;

static bool ids_add(Ids *v, const int32_t *ids, int64_t n, RtError *e)
{
    if (v->n + n > v->cap) {
        int64_t nc = v->cap ? v->cap : 1 << 16;
        while (nc < v->n + n)
            nc *= 2;
        int32_t *g = realloc(v->p, (size_t)nc * sizeof *g);
        if (!g)
            return rt_err(e, RT_ERR_NOMEM, "out of memory holding %" PRId64 " tokens", v->n + n);
        v->p = g;
        v->cap = nc;
    }
    memcpy(v->p + v->n, ids, (size_t)n * sizeof *ids);
    v->n += n;
    return true;
}

/* Encodes text[0..n) into v: SentencePiece line by line (each line with its newline),
 * tokenizer.json at once. */
static bool encode(RtTokenizer *tok, const char *text, size_t n, Ids *v, RtError *e)
{
    bool by_line = strcmp(rt_tok_kind(tok), "SentencePiece model") == 0;
    for (size_t at = 0; at < n;) {
        size_t len = n - at;
        if (by_line) {
            const char *nl = memchr(text + at, '\n', n - at);
            len = nl ? (size_t)(nl - (text + at)) + 1 : n - at;
        }
        int32_t *ids;
        int64_t k;
        if (!rt_tok_encode(tok, text + at, len, &ids, &k, e))
            return false;
        bool ok = ids_add(v, ids, k, e);
        free(ids);
        if (!ok)
            return false;
        at += len;
    }
    return true;
}

/* llm.c's token file (dev/data/data_common.py write_datafile): 256 int32 {magic, version,
 * count, 0...}, then the tokens, uint16 (magic 20240520, version 1) or uint32 (magic
 * 20240801, version 7). */
static bool write_tokens(const char *path, const Ids *v, bool wide, RtError *e)
{
    if (v->n > INT32_MAX)
        return rt_err(e, RT_ERR_USAGE, "%s: %" PRId64 " tokens; an llm.c token file holds fewer than 2^31", path,
                      v->n);
    size_t w = wide ? 4 : 2, bytes = 1024 + (size_t)v->n * w;
    unsigned char *buf = calloc(1, bytes);
    if (!buf)
        return rt_err(e, RT_ERR_NOMEM, "out of memory writing %s", path);
    uint32_t hdr[3] = {wide ? 20240801u : 20240520u, wide ? 7u : 1u, (uint32_t)v->n};
    for (int i = 0; i < 3; i++)
        for (int b = 0; b < 4; b++)
            buf[4 * i + b] = (unsigned char)(hdr[i] >> (8 * b));
    for (int64_t i = 0; i < v->n; i++)
        for (size_t b = 0; b < w; b++)
            buf[1024 + (size_t)i * w + b] = (unsigned char)((uint32_t)v->p[i] >> (8 * b));
    bool ok = write_file(path, buf, bytes, e);
    free(buf);
    return ok;
}

/* Trains DIR/tokenizer.model on the files, SentencePiece's log going to DIR/tokenizer.log. */
static bool train(const Args *a, const char *const *files, int n_files, RtError *e)
{
    char *prefix = join(a->out, "tokenizer"), *log = join(a->out, "tokenizer.log");
    char vocab[32], threads[32];
    snprintf(vocab, sizeof vocab, "%" PRId64, a->vocab);
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    snprintf(threads, sizeof threads, "%ld", cpus > 0 ? cpus : 1);
    /* spm_train's options (sentencepiece/src/spec_parser.h): everything a text can hold
     * encodes and decodes back exactly; no special tokens but the unknown one (relorac's
     * data has none) */
    const char *keys[] = {"model_prefix", "vocab_size", "model_type", "character_coverage", "byte_fallback",
                          "normalization_rule_name", "remove_extra_whitespaces", "add_dummy_prefix", "split_digits",
                          "bos_id", "eos_id", "pad_id", "unk_id", "input_sentence_size", "shuffle_input_sentence",
                          "num_threads"};
    const char *values[] = {prefix, vocab, a->model_type, "1.0", "true", "identity", "false", "false", "true",
                            "-1", "-1", "-1", "0", "2000000", "true", threads};
    bool ok = prefix && log;
    int saved = -1, fd = -1;
    if (ok) {
        fflush(stderr);
        fd = open(log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        saved = fd >= 0 ? dup(2) : -1;
        if (saved >= 0)
            dup2(fd, 2);
    }
    ok = ok && rt_tok_train_spm(files, n_files, keys, values, (int)(sizeof keys / sizeof *keys), e);
    if (saved >= 0) {
        fflush(stderr);
        dup2(saved, 2);
        close(saved);
    }
    if (fd >= 0)
        close(fd);
    if (!ok && e->code == RT_OK)
        rt_err(e, RT_ERR_NOMEM, "out of memory");
    else if (!ok && log)
        snprintf(e->msg + strlen(e->msg), sizeof e->msg - strlen(e->msg), " (SentencePiece's log: %s)", log);
    free(prefix);
    free(log);
    return ok;
}

static void thousands(char *buf, size_t cap, int64_t v)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%" PRId64, v);
    size_t n = strlen(raw), at = 0;
    for (size_t i = 0; i < n && at + 2 < cap; i++) {
        if (i && (n - i) % 3 == 0)
            buf[at++] = ',';
        buf[at++] = raw[i];
    }
    buf[at] = '\0';
}

static int run(const Args *a)
{
    RtError e = {0};
    size_t total = 0;
    char **texts = calloc((size_t)a->n_inputs, sizeof *texts);
    size_t *lens = calloc((size_t)a->n_inputs, sizeof *lens);
    RtTokenizer *tok = NULL;
    Ids train_ids = {0}, val_ids = {0};
    char *train_txt = NULL, *tok_path = NULL;
    bool ok = texts && lens && rt_mkdir_p(a->out, &e);
    for (int i = 0; ok && i < a->n_inputs; i++) {
        ok = (texts[i] = slurp(a->inputs[i], &lens[i], &e)) != NULL;
        total += ok ? lens[i] : 0;
    }
    /* the validation text: the last val_fraction of all text, from a line start on */
    int val_file = a->n_inputs;
    size_t val_at = 0;
    if (ok && a->val_fraction > 0) {
        size_t cut = total - (size_t)((double)total * a->val_fraction), seen = 0;
        for (int i = 0; i < a->n_inputs && val_file == a->n_inputs; i++) {
            if (seen + lens[i] > cut) {
                size_t at = cut - seen;
                while (at > 0 && at < lens[i] && texts[i][at - 1] != '\n')
                    at++;
                val_file = i;
                val_at = at;
            }
            seen += lens[i];
        }
    }
    const char *const *train_files = a->inputs;
    int n_train_files = a->n_inputs;
    if (ok && a->vocab) {
        if (a->val_fraction > 0) { /* the tokenizer learns from the training text only */
            train_txt = join(a->out, ".tokenize-train.txt");
            int fd = train_txt ? open(train_txt, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
            ok = fd >= 0 || rt_err(&e, RT_ERR_IO, "%s: cannot create: %s", train_txt, strerror(errno));
            for (int i = 0; ok && i <= val_file && i < a->n_inputs; i++)
                ok = rt_write_all(fd, NULL, train_txt, texts[i], i == val_file ? val_at : lens[i], &e);
            if (fd >= 0)
                close(fd);
            train_files = (const char *const *)&train_txt;
            n_train_files = 1;
        }
        ok = ok && train(a, train_files, n_train_files, &e);
        tok_path = join(a->out, "tokenizer.model");
    } else if (ok) {
        tok_path = strdup(a->tokenizer);
    }
    ok = ok && tok_path && rt_tok_open(&tok, tok_path, &e);
    if (ok && a->tokenizer) { /* the tokenizer goes next to the tokens */
        bool json = strcmp(rt_tok_kind(tok), "SentencePiece model") != 0;
        char *copy = join(a->out, json ? "tokenizer.json" : "tokenizer.model");
        char *src_real = realpath(a->tokenizer, NULL), *dst_real = copy ? realpath(copy, NULL) : NULL;
        size_t n;
        char *bytes = NULL;
        if (!copy)
            ok = rt_err(&e, RT_ERR_NOMEM, "out of memory");
        else if (!(src_real && dst_real && !strcmp(src_real, dst_real)))
            ok = (bytes = slurp(a->tokenizer, &n, &e)) && write_file(copy, bytes, n, &e);
        free(bytes);
        free(src_real);
        free(dst_real);
        free(tok_path);
        tok_path = copy;
    }
    for (int i = 0; ok && i < a->n_inputs; i++) {
        if (i < val_file)
            ok = encode(tok, texts[i], lens[i], &train_ids, &e);
        else if (i == val_file)
            ok = encode(tok, texts[i], val_at, &train_ids, &e) &&
                 encode(tok, texts[i] + val_at, lens[i] - val_at, &val_ids, &e);
        else
            ok = encode(tok, texts[i], lens[i], &val_ids, &e);
        if (!ok && !strstr(e.msg, a->inputs[i])) {
            char msg[sizeof e.msg];
            /* a long message loses its tail, never its file name */
            if (snprintf(msg, sizeof msg, "%s: %s", a->inputs[i], e.msg) >= (int)sizeof msg)
                msg[sizeof msg - 1] = '\0';
            memcpy(e.msg, msg, sizeof e.msg);
        }
    }
    int64_t vocab = ok ? rt_tok_vocab(tok) : 0;
    bool wide = vocab > 65536;
    char *train_bin = join(a->out, "train.bin"), *val_bin = join(a->out, "val.bin");
    ok = ok && train_bin && val_bin && write_tokens(train_bin, &train_ids, wide, &e);
    if (ok && a->val_fraction > 0)
        ok = write_tokens(val_bin, &val_ids, wide, &e);
    if (ok) {
        char tokens[32], bytes[32], vt[32];
        thousands(tokens, sizeof tokens, train_ids.n);
        thousands(bytes, sizeof bytes, (int64_t)total);
        thousands(vt, sizeof vt, val_ids.n);
        printf("relorac tokenize: %s, %s (%" PRId64 " ids)\n", tok_path, rt_tok_kind(tok), vocab);
        printf("relorac tokenize: %s: %s tokens, %s (llm.c magic %s)\n", train_bin, tokens,
               wide ? "uint32" : "uint16", wide ? "20240801" : "20240520");
        if (a->val_fraction > 0)
            printf("relorac tokenize: %s: %s tokens\n", val_bin, vt);
        printf("relorac tokenize: %s bytes of text, %.2f bytes per token\n", bytes,
               train_ids.n + val_ids.n ? (double)total / (double)(train_ids.n + val_ids.n) : 0.0);
        printf("relorac tokenize: train with vocab = %" PRId64 " and data = tokens(\"%s\")%s; sample with the "
               "trainer's --tokenizer %s\n",
               vocab, train_bin, a->val_fraction > 0 ? ", val_data = tokens(...val.bin)" : "", tok_path);
    } else {
        fprintf(stderr, "relorac tokenize: error: %s\n", e.msg);
    }
    if (train_txt)
        unlink(train_txt);
    for (int i = 0; texts && i < a->n_inputs; i++)
        free(texts[i]);
    free(texts);
    free(lens);
    free(train_ids.p);
    free(val_ids.p);
    free(train_txt);
    free(tok_path);
    free(train_bin);
    free(val_bin);
    rt_tok_close(tok);
    return ok ? TOK_OK : TOK_USAGE;
}

/* Prints the text of a token file, piece by piece. */
static int decode(const Args *a)
{
    RtError e = {0};
    RtTokenizer *tok = NULL;
    RtData d = {0};
    bool ok = rt_tok_open(&tok, a->tokenizer, &e) &&
              rt_data_open(&d, a->decode, RT_DATA_TOKENS, (int)rt_tok_vocab(tok), 0, &e);
    RtBuf b = {0};
    for (int64_t i = 0; ok && i < d.n; i++) {
        b.len = 0;
        if (!rt_tok_piece(tok, rt_data_token(&d, i), &b))
            ok = rt_err(&e, RT_ERR_TOKEN, "%s: token %d at index %" PRId64 " is not in %s", a->decode,
                        rt_data_token(&d, i), i, a->tokenizer);
        else if (b.oom)
            ok = rt_err(&e, RT_ERR_NOMEM, "out of memory");
        else if (fwrite(b.p ? b.p : "", 1, b.len, stdout) != b.len)
            ok = rt_err(&e, RT_ERR_IO, "cannot write to standard output: %s", strerror(errno));
    }
    if (ok && fflush(stdout) != 0)
        ok = rt_err(&e, RT_ERR_IO, "cannot write to standard output: %s", strerror(errno));
    if (!ok)
        fprintf(stderr, "relorac tokenize: error: %s\n", e.msg);
    rt_buf_fini(&b);
    rt_data_close(&d);
    rt_tok_close(tok);
    return ok ? TOK_OK : TOK_USAGE;
}

int tokenize_main(int argc, char **argv)
{
    Args a;
    bool is_help = false;
    bool ok = parse_args(argc, argv, &a, &is_help);
    int rc = !ok ? TOK_USAGE : is_help ? (help(stdout), TOK_OK) : a.decode ? decode(&a) : run(&a);
    free(a.inputs);
    return rc;
}
