/* How much memory this process may use: physical RAM, the tightest memory limit of its
 * cgroups (v2 memory.max, v1 memory.limit_in_bytes, each level up to the mount's root) and
 * RLIMIT_AS. The trainer refuses a memory plan above it at start-up, before zero-filling
 * pools until the kernel kills it; `relorac check` warns with the same numbers.
 * Written here rather than taken from a library: no small, common C library reads cgroup
 * limits, and this is one file of plain reads. */
#include "rt_internal.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* root + path into buf. */
static void under(char *buf, size_t cap, const char *root, const char *path)
{
    snprintf(buf, cap, "%s%s", root, path);
}

/* The first line of a file, without its newline; false when it cannot be read. */
static bool read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return false;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

/* A limit file's value: "max" (v2) and v1's page-rounded LLONG_MAX mean none. */
static bool parse_limit(const char *s, uint64_t *out)
{
    if (strcmp(s, "max") == 0 || *s < '0' || *s > '9')
        return false;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || v >= (1ull << 62))
        return false;
    *out = v;
    return true;
}

/* A cgroup hierarchy: where it is mounted (under root) and which directory of it the mount
 * shows as its top. */
typedef struct Mount {
    char point[512], top[512];
    bool found;
} Mount;

/* Finds the cgroup2 mount and the v1 mount carrying the memory controller in mountinfo
 * ("id parent dev ROOT POINT opts... - TYPE source SUPEROPTS"). */
static void find_mounts(const char *root, Mount *v2, Mount *v1)
{
    char path[1024];
    under(path, sizeof path, root, "/proc/self/mountinfo");
    FILE *f = fopen(path, "re");
    char line[2048];
    while (f && fgets(line, sizeof line, f)) {
        char top[512], point[512], type[64], super[512];
        const char *dash = strstr(line, " - ");
        if (!dash || sscanf(line, "%*s %*s %*s %511s %511s", top, point) != 2 ||
            sscanf(dash + 3, "%63s %*s %511s", type, super) != 2)
            continue;
        Mount *m = NULL;
        if (strcmp(type, "cgroup2") == 0)
            m = v2;
        else if (strcmp(type, "cgroup") == 0)
            for (char *tok = strtok(super, ","); tok && !m; tok = strtok(NULL, ","))
                if (strcmp(tok, "memory") == 0)
                    m = v1;
        if (m && !m->found) {
            snprintf(m->point, sizeof m->point, "%s", point);
            snprintf(m->top, sizeof m->top, "%s", top);
            m->found = true;
        }
    }
    if (f)
        fclose(f);
    if (!v2->found) /* the usual places */
        snprintf(v2->point, sizeof v2->point, "/sys/fs/cgroup");
    if (!v1->found)
        snprintf(v1->point, sizeof v1->point, "/sys/fs/cgroup/memory");
    if (!v2->found)
        snprintf(v2->top, sizeof v2->top, "/");
    if (!v1->found)
        snprintf(v1->top, sizeof v1->top, "/");
}

/* The smallest limit in `file` from the process's cgroup `cg` up to the top of mount m;
 * updates l when it is below l->cgroup. */
static void walk_limits(RtMemLimits *l, const char *root, const Mount *m, const char *cg,
                        const char *file)
{
    /* the mount shows `top` as its root: strip it from the process's path */
    size_t tl = strlen(m->top);
    const char *rel = cg;
    if (strcmp(m->top, "/") != 0 && strncmp(cg, m->top, tl) == 0 && (cg[tl] == '/' || !cg[tl]))
        rel = cg + tl;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", rel);
    for (;;) {
        char path[2048], text[64];
        uint64_t v;
        snprintf(path, sizeof path, "%s%s%s/%s", root, m->point,
                 strcmp(dir, "/") == 0 ? "" : dir, file);
        if (read_line(path, text, sizeof text) && parse_limit(text, &v) && v < l->cgroup) {
            l->cgroup = v;
            snprintf(l->cgroup_file, sizeof l->cgroup_file, "%s", path + strlen(root));
        }
        char *slash = strrchr(dir, '/');
        if (!slash || (slash == dir && !dir[1]))
            break;
        if (slash == dir)
            dir[1] = '\0';
        else
            *slash = '\0';
    }
}

void rt_mem_limits_at(RtMemLimits *l, const char *root)
{
    memset(l, 0, sizeof *l);
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    l->ram = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : UINT64_MAX;
    l->cgroup = UINT64_MAX;
    struct rlimit rl;
    l->rlimit_as = getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                       ? (uint64_t)rl.rlim_cur
                       : UINT64_MAX;
    Mount v2 = {0}, v1 = {0};
    find_mounts(root, &v2, &v1);
    char path[1024], line[1024];
    under(path, sizeof path, root, "/proc/self/cgroup");
    FILE *f = fopen(path, "re");
    while (f && fgets(line, sizeof line, f)) { /* "id:controllers:path" */
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c1 = *c2 = '\0';
        const char *ctrls = c1 + 1, *cg = c2 + 1;
        if (*ctrls == '\0' && strcmp(line, "0") == 0) {
            walk_limits(l, root, &v2, cg, "memory.max");
            continue;
        }
        char list[256];
        snprintf(list, sizeof list, "%s", ctrls);
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
            if (strcmp(tok, "memory") == 0)
                walk_limits(l, root, &v1, cg, "memory.limit_in_bytes");
    }
    if (f)
        fclose(f);
    l->available = l->ram;
    if (l->cgroup < l->available)
        l->available = l->cgroup;
    if (l->rlimit_as < l->available)
        l->available = l->rlimit_as;
}

void rt_mem_limits(RtMemLimits *l)
{
    rt_mem_limits_at(l, "");
}

/* "12.3 GiB", "512.0 MiB" or "1234 bytes". */
static void human(char *buf, size_t cap, uint64_t b)
{
    if (b >= (1ull << 30))
        snprintf(buf, cap, "%.1f GiB", (double)b / (double)(1ull << 30));
    else if (b >= (1ull << 20))
        snprintf(buf, cap, "%.1f MiB", (double)b / (double)(1ull << 20));
    else
        snprintf(buf, cap, "%llu bytes", (unsigned long long)b);
}

void rt_mem_describe(const RtMemLimits *l, char *buf, size_t cap)
{
    char ram[32], cg[32], as[32], avail[32];
    human(avail, sizeof avail, l->available);
    if (l->ram == UINT64_MAX)
        snprintf(ram, sizeof ram, "unknown");
    else
        human(ram, sizeof ram, l->ram);
    human(cg, sizeof cg, l->cgroup);
    human(as, sizeof as, l->rlimit_as);
    bool has_cg = l->cgroup != UINT64_MAX;
    snprintf(buf, cap, "%s (RAM %s; cgroup limit %s%s%s; RLIMIT_AS %s)", avail, ram,
             has_cg ? cg : "none", has_cg ? " in " : "", has_cg ? l->cgroup_file : "",
             l->rlimit_as == UINT64_MAX ? "unlimited" : as);
}

void rt_mem_bytes(char *buf, size_t cap, uint64_t bytes)
{
    human(buf, cap, bytes);
}
