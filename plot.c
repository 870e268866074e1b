/* `relorac plot DIR` (plot.h): reads the trainer's metrics.jsonl and has gnuplot draw it.
 * The trainer stays free of plotting code; gnuplot (Debian's gnuplot-nox) renders, and
 * this file only writes its data and script. The metrics lines are flat JSON objects,
 * so they are read with the small strict JSON reader below rather than a new library
 * dependency of the compiler: it accepts exactly RFC 8259 values (nesting at most 32
 * deep) and reports the line and column of the first thing that is not. */
#include "plot.h"

#include "fe.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* The longest metrics log read (bytes): about three million steps' lines. */
#define PLOT_LOG_MAX ((size_t)1 << 30)

/* ---- reading ---- */

typedef struct Reader {
    const char *start; /* the line's first byte */
    const char *p;
    const char *end;   /* the line's end (its '\n' or the end of the file) */
    char msg[160];     /* the error, when a parse function returned false */
    const char *err_at;
} Reader;

static bool fail(Reader *r, const char *at, const char *msg)
{
    r->err_at = at;
    snprintf(r->msg, sizeof r->msg, "%s", msg);
    return false;
}

static void skip_ws(Reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\r'))
        r->p++;
}

static bool expect_char(Reader *r, char c, const char *what)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == c) {
        r->p++;
        return true;
    }
    return fail(r, r->p, what);
}

/* A JSON string; its first `cap - 1` bytes (escapes decoded, \u as '?') go to buf. */
static bool read_string(Reader *r, char *buf, size_t cap)
{
    size_t n = 0;
    const char *open = r->p;
    if (!expect_char(r, '"', "expected a string"))
        return false;
    while (r->p < r->end && *r->p != '"') {
        char c = *r->p;
        if ((unsigned char)c < 0x20)
            return fail(r, r->p, "control character in a string");
        if (c == '\\') {
            r->p++;
            if (r->p >= r->end)
                break;
            static const char simple[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
            const char *k = strchr(simple, *r->p);
            if (*r->p == 'u') {
                for (int i = 1; i <= 4; i++)
                    if (r->p + i >= r->end || !strchr("0123456789abcdefABCDEF", r->p[i]) || !r->p[i])
                        return fail(r, r->p - 1, "bad \\u escape in a string");
                r->p += 4;
                c = '?';
            } else if (k && *r->p) {
                c = decoded[k - simple];
            } else {
                return fail(r, r->p - 1, "bad escape in a string");
            }
        }
        if (buf && n + 1 < cap)
            buf[n++] = c;
        r->p++;
    }
    if (r->p >= r->end)
        return fail(r, open, "unterminated string");
    r->p++;
    if (buf)
        buf[n] = '\0';
    return true;
}

/* A JSON number (RFC 8259 grammar), converted with strtod. */
static bool read_number(Reader *r, double *v)
{
    const char *s = r->p, *q = s;
    if (q < r->end && *q == '-')
        q++;
    if (q < r->end && *q == '0')
        q++;
    else if (q < r->end && *q >= '1' && *q <= '9')
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    else
        return fail(r, s, "expected a value");
    if (q < r->end && *q == '.') {
        if (++q >= r->end || *q < '0' || *q > '9')
            return fail(r, q, "expected a digit after '.'");
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    if (q < r->end && (*q == 'e' || *q == 'E')) {
        q++;
        if (q < r->end && (*q == '+' || *q == '-'))
            q++;
        if (q >= r->end || *q < '0' || *q > '9')
            return fail(r, q, "expected a digit in the exponent");
        while (q < r->end && *q >= '0' && *q <= '9')
            q++;
    }
    char buf[64];
    size_t len = (size_t)(q - s);
    if (len >= sizeof buf)
        return fail(r, s, "number too long");
    memcpy(buf, s, len);
    buf[len] = '\0';
    *v = strtod(buf, NULL);
    r->p = q;
    return true;
}

static bool read_word(Reader *r, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(r->end - r->p) >= n && !memcmp(r->p, w, n)) {
        r->p += n;
        return true;
    }
    return fail(r, r->p, "expected a value");
}

/* Any JSON value, discarded. */
static bool skip_value(Reader *r, int depth)
{
    skip_ws(r);
    if (r->p >= r->end)
        return fail(r, r->p, "expected a value");
    if (depth > 32)
        return fail(r, r->p, "nested too deeply");
    double v;
    switch (*r->p) {
    case '"': return read_string(r, NULL, 0);
    case 't': return read_word(r, "true");
    case 'f': return read_word(r, "false");
    case 'n': return read_word(r, "null");
    case '[':
    case '{': {
        bool is_obj = *r->p == '{';
        char close = is_obj ? '}' : ']';
        r->p++;
        skip_ws(r);
        if (r->p < r->end && *r->p == close) {
            r->p++;
            return true;
        }
        for (;;) {
            if (is_obj && (!read_string(r, NULL, 0) || !expect_char(r, ':', "expected ':'")))
                return false;
            if (!skip_value(r, depth + 1))
                return false;
            skip_ws(r);
            if (r->p < r->end && *r->p == ',') {
                r->p++;
                skip_ws(r);
                continue;
            }
            return expect_char(r, close, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    default: return read_number(r, &v);
    }
}

/* A number or null (NaN) for key. */
static bool read_number_or_null(Reader *r, const char *key, double *v)
{
    skip_ws(r);
    if (r->p < r->end && *r->p == 'n')
        return (*v = NAN, read_word(r, "null"));
    const char *at = r->p;
    if (r->p < r->end && (*r->p == '-' || (*r->p >= '0' && *r->p <= '9')))
        return read_number(r, v);
    char msg[80];
    snprintf(msg, sizeof msg, "\"%s\" must be a number or null", key);
    return fail(r, at, msg);
}

/* "events": ["warm_switch", "reset"]; other names are ignored. */
static bool read_events(Reader *r, unsigned *events)
{
    const char *at = (skip_ws(r), r->p);
    if (r->p >= r->end || *r->p != '[')
        return fail(r, at, "\"events\" must be an array of strings");
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']')
        return (r->p++, true);
    for (;;) {
        char name[32];
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            return fail(r, r->p, "\"events\" must be an array of strings");
        if (!read_string(r, name, sizeof name))
            return false;
        if (!strcmp(name, "warm_switch"))
            *events |= PLOT_EV_WARM_SWITCH;
        else if (!strcmp(name, "reset"))
            *events |= PLOT_EV_RESET;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        return expect_char(r, ']', "expected ',' or ']'");
    }
}

/* One line: an object with "step" and optionally the plotted fields. */
static bool read_line(Reader *r, PlotPoint *pt)
{
    *pt = (PlotPoint){-1, NAN, NAN, NAN, 0};
    if (!expect_char(r, '{', "expected '{' (each line is one JSON object)"))
        return false;
    skip_ws(r);
    bool empty = r->p < r->end && *r->p == '}';
    while (!empty) {
        char key[32];
        skip_ws(r);
        if (!read_string(r, key, sizeof key) || !expect_char(r, ':', "expected ':'"))
            return false;
        skip_ws(r);
        const char *at = r->p;
        if (!strcmp(key, "step")) {
            double v;
            if (r->p >= r->end || *r->p < '0' || *r->p > '9' || !read_number(r, &v) || v != floor(v) || v > 9e15)
                return fail(r, at, "\"step\" must be a non-negative integer");
            pt->step = (int64_t)v;
        } else if (!strcmp(key, "loss") || !strcmp(key, "lr") || !strcmp(key, "val_loss")) {
            double *dst = key[0] == 'l' ? (key[1] == 'o' ? &pt->loss : &pt->lr) : &pt->val_loss;
            if (!read_number_or_null(r, key, dst))
                return false;
        } else if (!strcmp(key, "events")) {
            if (!read_events(r, &pt->events))
                return false;
        } else if (!skip_value(r, 1)) {
            return false;
        }
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        break;
    }
    if (!expect_char(r, '}', "expected ',' or '}'"))
        return false;
    skip_ws(r);
    if (r->p != r->end)
        return fail(r, r->p, "text after the object");
    if (pt->step < 0)
        return fail(r, r->start, "no \"step\" in this line");
    return true;
}

static char *read_all(Arena *a, const char *path, size_t *len, FILE *err)
{
    /* fe_read_file: a trainer's log may be a pipe it is writing (read to its end); a FIFO
     * without a writer reads as empty instead of blocking, and a device is refused (it
     * used to block forever, or read /dev/zero until memory ran out) */
    const char *why = NULL;
    char *text = fe_read_file(a, path, PLOT_LOG_MAX, len, &why);
    if (!text)
        fprintf(err, "relorac plot: cannot open %s: %s\n", path, why);
    return text;
}

int plot_metrics_read(Arena *a, const char *path, PlotMetrics *m, FILE *err)
{
    m->p = NULL;
    m->n = 0;
    size_t len;
    const char *text = read_all(a, path, &len, err);
    if (!text)
        return 2;
    int cap = 0;
    Reader r = {0};
    const char *end = text + len;
    int line = 0;
    for (const char *s = text; s < end;) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        line++;
        r.start = r.p = s;
        r.end = nl ? nl : end;
        s = nl ? nl + 1 : end;
        skip_ws(&r);
        if (r.p == r.end) /* blank */
            continue;
        PlotPoint pt;
        if (!read_line(&r, &pt)) {
            if (!nl) {
                fprintf(err, "%s:%d: warning: the last line is incomplete (%s); it is ignored\n", path, line, r.msg);
                break;
            }
            fprintf(err, "%s:%d:%d: error: %s\n", path, line, (int)(r.err_at - r.start) + 1, r.msg);
            return 1;
        }
        while (m->n > 0 && m->p[m->n - 1].step >= pt.step) /* a resumed run logs these steps again */
            m->n--;
        if (m->n == cap) {
            int ncap = cap ? cap * 2 : 256;
            m->p = arena_grow(a, m->p, (size_t)cap, (size_t)ncap, sizeof *m->p);
            cap = ncap;
        }
        m->p[m->n++] = pt;
    }
    if (m->n == 0) {
        fprintf(err, "%s: error: no metrics lines (the run logged no step yet)\n", path);
        return 1;
    }
    bool any = false;
    for (int i = 0; i < m->n; i++)
        any = any || isfinite(m->p[i].loss) || isfinite(m->p[i].val_loss) || isfinite(m->p[i].lr);
    if (!any) {
        fprintf(err, "%s: error: nothing to plot: no line has a \"loss\", \"val_loss\" or \"lr\" number\n", path);
        return 1;
    }
    return 0;
}

/* ---- drawing ---- */

/* s in gnuplot single quotes ('' stands for '). */
static const char *gp_quote(Arena *a, const char *s)
{
    size_t n = strlen(s), k = 0;
    char *q = ARENA_ARRAY(a, char, 2 * n + 3);
    q[k++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '\'')
            q[k++] = '\'';
        q[k++] = s[i] == '\n' ? ' ' : s[i];
    }
    q[k++] = '\'';
    return q;
}

static void put_num(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, " %.9g", v);
    else
        fputs(" ?", f);
}

/* What the data has: each series is drawn only when it has a point (gnuplot refuses a
 * plot whose every value is missing). */
typedef struct Series {
    bool loss, mean, val, lr;
    int window; /* the running mean's length in steps (1: no running mean) */
} Series;

/* The data files: steps.dat "x loss mean lr" per step (x = steps done = step + 1),
 * val.dat "x val_loss" where validated. */
static Series write_data(const PlotMetrics *m, FILE *steps, FILE *val)
{
    Series has = {.window = m->n >= 200 ? m->n / 100 : 1};
    int w = has.window;
    double sum = 0;
    int in_sum = 0;
    for (int i = 0; i < m->n; i++) {
        const PlotPoint *pt = &m->p[i];
        if (isfinite(pt->loss))
            sum += pt->loss, in_sum++;
        if (i >= w && isfinite(m->p[i - w].loss))
            sum -= m->p[i - w].loss, in_sum--;
        double mean = i + 1 >= w && in_sum > 0 ? sum / in_sum : NAN;
        fprintf(steps, "%lld", (long long)pt->step + 1);
        put_num(steps, pt->loss);
        put_num(steps, mean);
        put_num(steps, pt->lr);
        fputc('\n', steps);
        if (isfinite(pt->val_loss))
            fprintf(val, "%lld %.9g\n", (long long)pt->step + 1, pt->val_loss);
        has.loss |= isfinite(pt->loss) != 0;
        has.mean |= w > 1 && isfinite(mean);
        has.val |= isfinite(pt->val_loss) != 0;
        has.lr |= isfinite(pt->lr) != 0;
    }
    return has;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static void write_script(Arena *a, FILE *f, const PlotMetrics *m, const char *title, const char *out,
                         const char *steps_path, const char *val_path, const Series *has)
{
    const char *steps = gp_quote(a, steps_path), *val = gp_quote(a, val_path);
    if (ends_with(out, ".svg"))
        fprintf(f, "set terminal svg size 1200,800 dynamic font 'sans,11' background '#ffffff'\n");
    else
        fprintf(f, "set terminal pngcairo size 1200,800 font 'sans,10' background '#ffffff'\n");
    fprintf(f, "set output %s\n", gp_quote(a, out));
    fprintf(f, "set datafile missing '?'\n"
               "set grid lc rgb '#dddddd'\n"
               "set lmargin 12\nset rmargin 4\n"
               "set xrange [%lld:%lld]\n",
            (long long)m->p[0].step, (long long)m->p[m->n - 1].step + 1);
    /* the events: the step after which they happened, in every panel */
    for (int i = 0; i < m->n; i++) {
        long long x = (long long)m->p[i].step + 1;
        if (m->p[i].events & PLOT_EV_RESET)
            fprintf(f, "set arrow from %lld, graph 0 to %lld, graph 1 nohead lc rgb '#7f7f7f' dt 3 lw 1\n", x, x);
        if (m->p[i].events & PLOT_EV_WARM_SWITCH)
            fprintf(f, "set arrow from %lld, graph 0 to %lld, graph 1 nohead lc rgb '#2ca02c' dt 2 lw 2\n", x, x);
    }
    bool losses = has->loss || has->val;
    fprintf(f, "set multiplot layout %d,1 title %s\n", losses && has->lr ? 2 : 1, gp_quote(a, title));
    /* legend entries for the event lines there are (as curves of no points) */
    unsigned seen = 0;
    for (int i = 0; i < m->n; i++)
        seen |= m->p[i].events;
    const char *events = "";
    if (seen & PLOT_EV_WARM_SWITCH)
        events = ", \\\n  NaN with lines lc rgb '#2ca02c' dt 2 lw 2 title 'warm start ends: switch to ReLoRA'";
    if (seen & PLOT_EV_RESET)
        events = arena_sprintf(a, "%s, \\\n  NaN with lines lc rgb '#7f7f7f' dt 3 lw 1 title 'merge + re-init + "
                               "prune'", events);
    if (losses) {
        /* every curve is preceded by ", \\\n  "; the first one's is cut off below */
        const char *plots = "";
        if (has->loss)
            plots = arena_sprintf(a, "%s, \\\n  %s using 1:2 with lines lc rgb '#9ecae1' lw 1 title 'training loss'",
                                  plots, steps);
        if (has->mean)
            plots = arena_sprintf(a, "%s, \\\n  %s using 1:3 with lines lc rgb '#08519c' lw 2 title 'training "
                                  "loss, mean of %d steps'", plots, steps, has->window);
        if (has->val)
            plots = arena_sprintf(a, "%s, \\\n  %s using 1:2 with linespoints pt 7 ps 0.7 lc rgb '#d62728' lw 2 "
                                  "title 'validation loss'", plots, val);
        fprintf(f, "set key top right opaque box lc rgb '#cccccc'\nset ylabel 'loss (nats per token)'\n%s"
                   "plot %s%s\n",
                has->lr ? "set format x ''\n" : "set xlabel 'steps done'\n", plots + 6, events);
    }
    if (has->lr)
        fprintf(f, "set ylabel 'learning rate'\nset xlabel 'steps done'\nset format x '%%g'\nset format y '%%.2g'\n"
                   "set key top right opaque box lc rgb '#cccccc'\n"
                   "plot %s using 1:4 with lines lc rgb '#ff7f0e' lw 1.5 title 'learning rate'%s\n",
                steps, losses ? "" : events);
    fprintf(f, "unset multiplot\n");
}

/* Runs `gnuplot script`; 0, or 2 after a message. A failed exec is reported through a
 * close-on-exec pipe, so "not installed" is told apart from gnuplot's own failures. */
static int run_gnuplot(const char *script, FILE *err)
{
    int fds[2];
    if (pipe(fds) != 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
        fprintf(err, "relorac plot: pipe: %s\n", strerror(errno));
        return 2;
    }
    fflush(err);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(err, "relorac plot: cannot start gnuplot: %s\n", strerror(errno));
        close(fds[0]);
        close(fds[1]);
        return 2;
    }
    if (pid == 0) {
        close(fds[0]);
        char *const argv[] = {"gnuplot", (char *)script, NULL};
        execvp(argv[0], argv);
        int e = errno;
        ssize_t wr = write(fds[1], &e, sizeof e);
        (void)wr;
        _exit(127);
    }
    close(fds[1]);
    int exec_errno = 0;
    ssize_t got;
    while ((got = read(fds[0], &exec_errno, sizeof exec_errno)) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            fprintf(err, "relorac plot: waiting for gnuplot: %s\n", strerror(errno));
            return 2;
        }
    if (got == (ssize_t)sizeof exec_errno) {
        if (exec_errno == ENOENT)
            fprintf(err, "relorac plot: gnuplot is not installed (on Debian: apt-get install gnuplot-nox)\n");
        else
            fprintf(err, "relorac plot: cannot run gnuplot: %s\n", strerror(exec_errno));
        return 2;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(err, "relorac plot: gnuplot failed (%s %d)\n", WIFEXITED(status) ? "exit status" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        return 2;
    }
    return 0;
}

int plot_draw(Arena *a, const PlotMetrics *m, const char *title, const char *out_path, const char *tmp_root,
              FILE *err)
{
    /* The output first: a folder that does not exist or cannot be written is our
     * message, not gnuplot's "cannot open file; output not changed" after a script line. */
    int ofd = open(out_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    bool created = ofd >= 0;
    if (ofd < 0 && errno == EEXIST)
        ofd = open(out_path, O_WRONLY | O_CLOEXEC);
    if (ofd < 0) {
        fprintf(err, "relorac plot: cannot write %s: %s\n", out_path, strerror(errno));
        return 2;
    }
    close(ofd);
    char *dir = arena_sprintf(a, "%s/relorac-plot-XXXXXX", tmp_root);
    if (!mkdtemp(dir)) {
        fprintf(err, "relorac plot: cannot make a temporary folder in %s: %s\n", tmp_root, strerror(errno));
        return 2;
    }
    const char *steps_path = arena_sprintf(a, "%s/steps.dat", dir), *val_path = arena_sprintf(a, "%s/val.dat", dir),
               *script_path = arena_sprintf(a, "%s/plot.gp", dir);
    FILE *steps = fopen(steps_path, "w"), *val = fopen(val_path, "w"), *script = fopen(script_path, "w");
    int rc = 2;
    if (steps && val && script) {
        Series has = write_data(m, steps, val);
        write_script(a, script, m, title, out_path, steps_path, val_path, &has);
        bool bad = ferror(steps) || ferror(val) || ferror(script);
        bad = (fclose(steps) != 0) | (fclose(val) != 0) | (fclose(script) != 0) | bad;
        steps = val = script = NULL;
        if (bad)
            fprintf(err, "relorac plot: cannot write in %s: %s\n", dir, strerror(errno));
        else
            rc = run_gnuplot(script_path, err);
    } else {
        fprintf(err, "relorac plot: cannot write in %s: %s\n", dir, strerror(errno));
    }
    if (steps)
        fclose(steps);
    if (val)
        fclose(val);
    if (script)
        fclose(script);
    unlink(steps_path);
    unlink(val_path);
    unlink(script_path);
    rmdir(dir);
    struct stat st;
    if (rc == 0 && (stat(out_path, &st) != 0 || st.st_size == 0)) {
        fprintf(err, "relorac plot: gnuplot wrote no %s\n", out_path);
        rc = 2;
    }
    if (rc != 0 && created)
        unlink(out_path);
    return rc;
}
