/* test_fuzz.c: the fuzz_corpus suite.  Every fuzz target of tests/fuzz/targets.def runs on
 * every file of tests/fuzz/corpus/<target>/: the inputs that once crashed or misled slimnet
 * (the regressions), and a few of each kind's valid inputs, so that each target also runs
 * its accepting path.  A target checks its own invariants and aborts on a violation; under
 * `make test SANITIZE=1` (CI) AddressSanitizer and UBSan watch every input.  A target without
 * a corpus folder fails the suite. */
#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "testutil.h"

#define SN_FUZZ(name) int sn_fuzz_##name(const uint8_t *data, size_t size);
#include "fuzz/targets.def"
#undef SN_FUZZ

static const struct {
    const char *name;
    int (*run)(const uint8_t *data, size_t size);
} targets[] = {
#define SN_FUZZ(name) {#name, sn_fuzz_##name},
#include "fuzz/targets.def"
#undef SN_FUZZ
};

START_TEST(replay) {   /* _i: the target */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "tests/fuzz/corpus/%s", targets[_i].name);
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "fuzz target %s has no corpus folder %s", targets[_i].name, dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char path[2 * PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert_msg(f != NULL, "cannot open %s", path);
        fseek(f, 0, SEEK_END);
        long len = ftell(f);
        fseek(f, 0, SEEK_SET);
        uint8_t *buf = malloc(len > 0 ? (size_t)len : 1);
        ck_assert(buf && fread(buf, 1, (size_t)len, f) == (size_t)len);
        fclose(f);
        ck_assert_int_eq(targets[_i].run(buf, (size_t)len), 0);
        free(buf);
        n++;
    }
    closedir(d);
    ck_assert_msg(n > 0, "%s is empty", dir);
}
END_TEST

Suite *suite_fuzz_corpus(void) {
    Suite *s = suite_create("fuzz_corpus");
    TCase *tc = tcase_create("replay");
    tcase_add_loop_test(tc, replay, 0, (int)(sizeof targets / sizeof targets[0]));
    suite_add_tcase(s, tc);
    return s;
}
