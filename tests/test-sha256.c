/* SPDX-License-Identifier: LGPL-2.1-or-later */

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check-run.h"
#include "macro.h"
#include "sha256.h"

static void hex(const uint8_t d[static SHA256_DIGEST_SIZE], char out[static 2 * SHA256_DIGEST_SIZE + 1]) {
        for (size_t i = 0; i < SHA256_DIGEST_SIZE; i++)
                sprintf(out + 2 * i, "%02x", d[i]);
}

/* FIPS 180-4 example messages and their digests (NIST CSRC examples). */
static const struct {
        const char *msg;
        const char *digest;
} vectors[] = {
        { "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" },
        { "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" },
        { "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1" },
        { "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
          "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1" },
};

START_TEST(test_sha256_vectors) {
        for (size_t i = 0; i < ELEMENTSOF(vectors); i++) {
                uint8_t d[SHA256_DIGEST_SIZE];
                char s[2 * SHA256_DIGEST_SIZE + 1];

                sha256(vectors[i].msg, strlen(vectors[i].msg), d);
                hex(d, s);
                ck_assert_str_eq(s, vectors[i].digest);
        }
}
END_TEST

START_TEST(test_sha256_million_a) {
        static const char expected[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
        _cleanup_free_ char *buf = NULL;
        uint8_t d[SHA256_DIGEST_SIZE];
        char s[2 * SHA256_DIGEST_SIZE + 1];
        Sha256 st;

        buf = malloc(1000000);
        ck_assert_ptr_nonnull(buf);
        memset(buf, 'a', 1000000);

        sha256(buf, 1000000, d);
        hex(d, s);
        ck_assert_str_eq(s, expected);

        /* The same in chunks of 1000. */
        sha256_init(&st);
        for (size_t i = 0; i < 1000; i++)
                sha256_update(&st, buf, 1000);
        sha256_final(&st, d);
        hex(d, s);
        ck_assert_str_eq(s, expected);
}
END_TEST

/* Any split of a message into chunks gives its digest, across block boundaries and the padding edges. */
START_TEST(test_sha256_streaming) {
        static const size_t chunks[] = { 1, 3, 7, 55, 56, 63, 64, 65, 127, 129 };
        uint8_t data[1031], whole[SHA256_DIGEST_SIZE];

        for (size_t i = 0; i < sizeof(data); i++)
                data[i] = (uint8_t) (i * 131 + 7);

        for (size_t len = 0; len <= sizeof(data); len += (len < 130 ? 1 : 97)) {
                sha256(data, len, whole);

                for (size_t c = 0; c < ELEMENTSOF(chunks); c++) {
                        uint8_t d[SHA256_DIGEST_SIZE];
                        Sha256 st;

                        sha256_init(&st);
                        for (size_t pos = 0; pos < len; pos += chunks[c])
                                sha256_update(&st, data + pos, MIN(chunks[c], len - pos));
                        sha256_update(&st, NULL, 0);
                        sha256_final(&st, d);
                        ck_assert_mem_eq(d, whole, sizeof(d));
                }
        }

        /* 55 bytes fit the padding in one block, 56 do not: both known digests. */
        {
                char s[2 * SHA256_DIGEST_SIZE + 1];
                char m[57];

                memset(m, 'a', sizeof(m));
                sha256(m, 55, whole);
                hex(whole, s);
                ck_assert_str_eq(s, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318");
                sha256(m, 56, whole);
                hex(whole, s);
                ck_assert_str_eq(s, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a");
        }
}
END_TEST

static Suite *sha256_suite(void) {
        Suite *s = suite_create("sha256");
        TCase *tc;

        tc = tcase_create("vectors");
        tcase_add_test(tc, test_sha256_vectors);
        suite_add_tcase(s, tc);

        tc = tcase_create("million-a");
        tcase_add_test(tc, test_sha256_million_a);
        suite_add_tcase(s, tc);

        tc = tcase_create("streaming");
        tcase_add_test(tc, test_sha256_streaming);
        suite_add_tcase(s, tc);

        return s;
}

int main(void) {
        return check_run(sha256_suite());
}
