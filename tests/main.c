/* main.c: runs every suite of suites.def.  Exit status 0 only if all pass. */
#include <check.h>
#include <stdlib.h>

#define SN_SUITE(name) Suite *suite_##name(void);
#include "suites.def"
#undef SN_SUITE

int main(void) {
    SRunner *sr = srunner_create(NULL);
#define SN_SUITE(name) srunner_add_suite(sr, suite_##name());
#include "suites.def"
#undef SN_SUITE
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
