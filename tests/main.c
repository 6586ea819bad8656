/* main.c: runs every suite of suites.def, or those SN_SUITES names (space-separated, e.g.
 * SN_SUITES="data ckpt tools", as CI's sanitizer run does).  Exit status 0 only if all
 * pass. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SN_SUITE(name) Suite *suite_##name(void);
#include "suites.def"
#undef SN_SUITE

/* Whether name is a word of the space-separated list (NULL or empty: every suite). */
static int wanted(const char *list, const char *name) {
    if (!list || !*list) return 1;
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return 1;
    return 0;
}

int main(void) {
    const char *list = getenv("SN_SUITES");
    SRunner *sr = srunner_create(NULL);
    int added = 0;
#define SN_SUITE(name) \
    if (wanted(list, #name)) srunner_add_suite(sr, suite_##name()), added++;
#include "suites.def"
#undef SN_SUITE
    if (!added) {
        fprintf(stderr, "run_tests: SN_SUITES='%s' names no suite of tests/suites.def\n", list);
        srunner_free(sr);
        return EXIT_FAILURE;
    }
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
