/* flags.h: absl/TF-style command-line flags for the slimnet tools.
 *
 * A tool declares a table of flags (name, type, destination, help) and calls flags_parse.
 * Accepted forms: --name=value, --name value, and for booleans --name, --noname,
 * --name=true/false/1/0.  --help prints every flag with its default (and range); --version
 * prints the library version.  Every error names the flag; the tools exit with status 2 on
 * them. */
#ifndef SN_CMD_FLAGS_H
#define SN_CMD_FLAGS_H

#include <stddef.h>
#include <stdint.h>

typedef enum flag_type { FLAG_STRING, FLAG_INT, FLAG_INT64, FLAG_FLOAT, FLAG_DOUBLE,
                         FLAG_BOOL } flag_type;

typedef struct flag {
    const char *name;     /* without the dashes */
    flag_type type;
    void *dst;            /* const char **, int *, int64_t *, float *, double *, int * */
    const char *help;
    int set;              /* filled by flags_parse: 1 when given on the command line */
    const char *alias_of; /* non-NULL: this name is another spelling of that flag */
    /* The values a number may take, as an interval: "[1,65536]", "[0,)" (>= 0), "(0,1]";
     * NULL: any.  A value given outside it is an error naming the flag. */
    const char *range;
} flag;

/* Parses argv[1..] into the table (n entries).  Positional arguments (not starting with
 * "--") are collected into pos (up to max_pos; *n_pos receives their count; pos may be NULL
 * when none are accepted).  Returns 0 on success, 1 after printing --help or --version
 * (the tool exits 0), 2 on an error (printed to stderr with the tool's name). */
int flags_parse(const char *tool, const char *usage, flag *flags, int n, int argc,
                char **argv, const char **pos, int max_pos, int *n_pos);

/* The entry for name (after alias resolution), or NULL. */
flag *flags_find(flag *flags, int n, const char *name);

#endif
