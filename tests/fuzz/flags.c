/* flags.c: fuzz target for the tools' flag parser (cmd/common/flags.c).  The input is the
 * command line, its arguments separated by NUL bytes, parsed against a table with a flag of
 * every type, ranges and an alias.  Whatever the parser accepts lies in its range.  Its
 * messages (to stdout and stderr) go to /dev/null. */
#include <fcntl.h>
#include <string.h>
#include <unistd.h>
#include "../../cmd/common/flags.h"
#include "fuzz.h"

#define MAX_ARGS 64

SN_FUZZ_TARGET(flags) {
    char *copy = malloc(size + 1);
    FZ_CHECK(copy != NULL);
    memcpy(copy, data, size);
    copy[size] = '\0';
    char *argv[MAX_ARGS + 1] = {"fuzz"};
    int argc = 1;
    for (char *p = copy; argc < MAX_ARGS && p < copy + size; p += strlen(p) + 1)
        argv[argc++] = p;
    const char *name = NULL, *pos[4];
    int count = 7, on = 0, npos = 0;
    int64_t steps = 0;
    float rate = 0.5f;
    double decay = 0;
    flag fl[] = {
        {"name", FLAG_STRING, &name, "a string", 0, 0, 0},
        {"count", FLAG_INT, &count, "an int", 0, 0, "[1,100]"},
        {"steps", FLAG_INT64, &steps, "an int64", 0, 0, "[0,)"},
        {"rate", FLAG_FLOAT, &rate, "a float", 0, 0, "(0,1]"},
        {"decay", FLAG_DOUBLE, &decay, "a double", 0, 0, "(,0]"},
        {"on", FLAG_BOOL, &on, "a boolean", 0, 0, 0},
        {"alias", FLAG_INT, &count, "another name of count", 0, "count", 0},
    };
    int saved_out = dup(1), saved_err = dup(2), null = open("/dev/null", O_WRONLY);
    fflush(stdout);
    fflush(stderr);
    dup2(null, 1);
    dup2(null, 2);
    int rc = flags_parse("fuzz", "usage: fuzz [flags]", fl, 7, argc, argv, pos, 4, &npos);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    close(null);
    FZ_CHECK(rc == 0 || rc == 1 || rc == 2);
    if (rc == 0) {
        FZ_CHECK(count >= 1 && count <= 100 && steps >= 0 && rate > 0 && rate <= 1 &&
                 decay <= 0 && (on == 0 || on == 1) && npos >= 0 && npos <= 4);
        if (name) FZ_CHECK(name >= copy && name <= copy + size);
    }
    free(copy);
    return 0;
}
