/* flags.c: see flags.h. */
#include "flags.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../../lib/slimnet.h"

flag *flags_find(flag *flags, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(flags[i].name, name))
            return flags[i].alias_of ? flags_find(flags, n, flags[i].alias_of) : &flags[i];
    return NULL;
}

static void print_default(const flag *f) {
    switch (f->type) {
    case FLAG_STRING: {
        const char *s = *(const char **)f->dst;
        printf(s ? "'%s'" : "None", s);
        break;
    }
    case FLAG_INT: printf("%d", *(int *)f->dst); break;
    case FLAG_INT64: printf("%lld", (long long)*(int64_t *)f->dst); break;
    case FLAG_FLOAT: printf("%g", (double)*(float *)f->dst); break;
    case FLAG_DOUBLE: printf("%g", *(double *)f->dst); break;
    case FLAG_BOOL: printf("%s", *(int *)f->dst ? "true" : "false"); break;
    }
}

static void print_help(const char *usage, const flag *flags, int n) {
    printf("%s\nflags (--name=value or --name value; booleans also --name / --noname):\n",
           usage);
    for (int i = 0; i < n; i++) {
        const flag *f = &flags[i];
        if (f->alias_of) {
            printf("  --%s: alias of --%s\n", f->name, f->alias_of);
            continue;
        }
        printf("  --%s: %s\n    (default: ", f->name, f->help);
        print_default(f);
        if (f->range) printf("; in %s", f->range);
        printf(")\n");
    }
    printf("  --help, --version\n");
}

/* Whether x lies in the interval r ("[lo,hi]", "(lo,)", ...; an empty end is unbounded).
 * A malformed r is the tool's bug: it accepts nothing, so every test of the flag fails. */
static int in_range(const char *r, double x) {
    const char *comma = strchr(r, ','), *end = r + strlen(r);
    if (!comma || end - r < 3) return 0;
    char open_c = r[0], close_c = end[-1];
    char *stop;
    if (comma > r + 1) {
        double lo = strtod(r + 1, &stop);
        if (stop != comma || (open_c == '[' ? x < lo : open_c == '(' ? x <= lo : 1)) return 0;
    }
    if (end - 1 > comma + 1) {
        double hi = strtod(comma + 1, &stop);
        if (stop != end - 1 || (close_c == ']' ? x > hi : close_c == ')' ? x >= hi : 1))
            return 0;
    }
    return 1;
}

static int check_range(const char *tool, const flag *f, const char *shown, const char *v) {
    double x;
    switch (f->type) {
    case FLAG_INT: x = *(int *)f->dst; break;
    case FLAG_INT64: x = (double)*(int64_t *)f->dst; break;
    case FLAG_FLOAT: x = *(float *)f->dst; break;
    case FLAG_DOUBLE: x = *(double *)f->dst; break;
    default: return 0;
    }
    if (!f->range || in_range(f->range, x)) return 0;
    fprintf(stderr, "%s: --%s=%s: must be in %s\n", tool, shown, v, f->range);
    return 2;
}

static int set_value(const char *tool, flag *f, const char *shown, const char *v) {
    char *end = NULL;
    errno = 0;
    switch (f->type) {
    case FLAG_STRING:
        /* "None", as absl prints an unset string flag, means unset. */
        *(const char **)f->dst = strcmp(v, "None") ? v : NULL;
        break;
    case FLAG_INT: {
        long x = strtol(v, &end, 10);
        if (!*v || *end || errno || x < -2147483647L - 1 || x > 2147483647L) goto bad;
        *(int *)f->dst = (int)x;
        break;
    }
    case FLAG_INT64: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno) goto bad;
        *(int64_t *)f->dst = x;
        break;
    }
    case FLAG_FLOAT:
    case FLAG_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || errno || !isfinite(x)) goto bad;
        if (f->type == FLAG_FLOAT) *(float *)f->dst = (float)x;
        else *(double *)f->dst = x;
        break;
    }
    case FLAG_BOOL:
        if (!strcmp(v, "true") || !strcmp(v, "True") || !strcmp(v, "1")) *(int *)f->dst = 1;
        else if (!strcmp(v, "false") || !strcmp(v, "False") || !strcmp(v, "0"))
            *(int *)f->dst = 0;
        else goto bad;
        break;
    }
    f->set = 1;
    return check_range(tool, f, shown, v);
bad:
    fprintf(stderr, "%s: --%s=%s: not a valid %s\n", tool, shown, v,
            f->type == FLAG_BOOL ? "boolean (true/false)"
            : f->type == FLAG_FLOAT || f->type == FLAG_DOUBLE ? "finite number"
                                                               : "integer");
    return 2;
}

int flags_parse(const char *tool, const char *usage, flag *flags, int n, int argc,
                char **argv, const char **pos, int max_pos, int *n_pos) {
    if (n_pos) *n_pos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || !a[2]) {
            if (!pos || !n_pos || *n_pos >= max_pos) {
                fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", tool, a);
                return 2;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        char key[128];
        size_t klen = eq ? (size_t)(eq - name) : strlen(name);
        if (klen >= sizeof key) {
            fprintf(stderr, "%s: unknown flag '%.40s...'\n", tool, a);
            return 2;
        }
        memcpy(key, name, klen);
        key[klen] = 0;
        if (!strcmp(key, "help") || !strcmp(key, "helpfull")) {
            print_help(usage, flags, n);
            return 1;
        }
        if (!strcmp(key, "version")) {
            printf("%s (slimnet %s)\n", tool, sn_version());
            return 1;
        }
        flag *f = flags_find(flags, n, key);
        if (!f && !eq && !strncmp(key, "no", 2)) {   /* --noname for a boolean */
            flag *b = flags_find(flags, n, key + 2);
            if (b && b->type == FLAG_BOOL) {
                *(int *)b->dst = 0;
                b->set = 1;
                continue;
            }
        }
        if (!f) {
            fprintf(stderr, "%s: unknown flag --%s (see --help)\n", tool, key);
            return 2;
        }
        const char *v;
        if (eq) v = eq + 1;
        else if (f->type == FLAG_BOOL) v = "true";
        else if (i + 1 < argc) v = argv[++i];
        else {
            fprintf(stderr, "%s: flag --%s needs a value\n", tool, key);
            return 2;
        }
        int rc = set_value(tool, f, key, v);
        if (rc) return rc;
    }
    return 0;
}
