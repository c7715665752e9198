/*
 * fuzz/validate.c: the checks made on user and environment values before
 * anything is sent (validate.c, with idhash.c's id keys): ids, base URLs,
 * paths, credentials, header names and values, and the quoting of bad
 * values into messages.
 *
 * Input: the whole input is the value (every check runs on it: they are
 * cheap), copied into an exact-size allocation so ASan sees overreads.
 * Invariants: an accepted base URL has a NUL-terminated host, a port in
 * 1..65535, a prefix that is empty or a valid path, and uses http only to
 * loopback; an accepted id is 32 hex digits, with one key and one hash
 * slot for either case; an accepted path starts with
 * '/' and has no "/../" (nor an encoded dot); an accepted header value has
 * no CR/LF, a credential no control character at all; quoting
 * fits its buffer and is printable.
 */
#include "fuzz_common.h"

static int is_hexdigit(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size) {
    char *s = malloc(size ? size : 1);
    cfiam_url u;
    const char *why;
    size_t i;
    memcpy(s, data, size);

    if (cfiam_is_id(s, size)) {
        unsigned char key[16], key2[16];
        char lower[32];
        cfiam_id_seed seed;
        CHECK(size == 32);
        for (i = 0; i < size; i++) {
            CHECK(is_hexdigit(s[i]));
            lower[i] = (char)(s[i] >= 'A' && s[i] <= 'F' ? s[i] | 0x20 : s[i]);
        }
        /* either case is one key, and one slot within the table */
        cfiam_id_key(s, key);
        cfiam_id_key(lower, key2);
        CHECK(memcmp(key, key2, 16) == 0);
        cfiam_id_seed_new(&seed);
        for (i = 1; i <= ((size_t)1 << 20); i <<= 5) {
            size_t slot = cfiam_id_slot(key, &seed, i);
            CHECK(slot < i && slot == cfiam_id_slot(key2, &seed, i));
        }
    }

    why = cfiam_check_base_url(s, size, &u);
    if (why == NULL) {
        CHECK(memchr(u.host, '\0', sizeof(u.host)) != NULL);
        CHECK(u.host[0] != '\0');
        CHECK(u.port >= 1 && u.port <= 65535);
        CHECK(u.prefix_off <= size);
        CHECK(u.prefix_off == size ||
              cfiam_is_path(s + u.prefix_off, size - u.prefix_off));
        CHECK(memchr(s, '@', size) == NULL);
        if (!u.https)
            CHECK(strcmp(u.host, "localhost") == 0 || strcmp(u.host, "::1") == 0 ||
                  strncmp(u.host, "127.", 4) == 0);
    } else {
        CHECK(strlen(why) > 0);
    }

    if (cfiam_is_path(s, size)) {
        CHECK(size > 0 && s[0] == '/');
        for (i = 0; i + 3 < size; i++)
            CHECK(memcmp(s + i, "/../", 4) != 0);
        for (i = 0; i + 2 < size; i++)
            CHECK(!(s[i] == '%' && s[i + 1] == '2' && (s[i + 2] | 0x20) == 'e'));
        for (i = 0; i < size; i++)
            CHECK((unsigned char)s[i] > 0x20 && (unsigned char)s[i] < 0x7f &&
                  s[i] != '?' && s[i] != '#');
    }

    if (cfiam_check_header_value(s, size) == NULL) {
        CHECK(size > 0);
        CHECK(memchr(s, '\r', size) == NULL && memchr(s, '\n', size) == NULL &&
              memchr(s, '\0', size) == NULL);
    }
    if (cfiam_check_credential(s, size) == NULL) {
        CHECK(size > 0);
        for (i = 0; i < size; i++)
            CHECK((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] != 0x7f);
        CHECK(cfiam_check_header_value(s, size) == NULL);
    }
    if (cfiam_is_header_name(s, size))
        CHECK(memchr(s, ':', size) == NULL && memchr(s, ' ', size) == NULL);
    (void)cfiam_is_reserved_header(s, size);

    {
        static const size_t caps[] = {0, 1, 7, 8, 9, 12, 17, 64};
        for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
            size_t cap = caps[i], k, n;
            char *out = malloc(cap ? cap : 1); /* exact size for ASan */
            cfiam_quote(out, cap, s, size);
            if (cap) {
                n = strnlen(out, cap);
                CHECK(n < cap);
                for (k = 0; k < n; k++)
                    CHECK((unsigned char)out[k] >= 0x20 && (unsigned char)out[k] < 0x7f);
            }
            free(out);
        }
    }
    free(s);
    return 0;
}
