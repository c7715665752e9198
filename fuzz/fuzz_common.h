/*
 * fuzz_common.h: what the libFuzzer harnesses share. Each harness feeds
 * untrusted bytes to the C of cfiam exactly as the module does, with a
 * real lua_State (liblua5.4), and aborts on any broken invariant so that
 * the fuzzer reports it like a crash.
 */
#ifndef CFIAM_FUZZ_COMMON_H
#define CFIAM_FUZZ_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lualib.h>
#include "../csrc/cfiam.h"

#define FUZZ_SECRET "fuzz-SECRET-token-0123456789abcdef"

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "invariant broken: %s (%s:%d)\n", #cond,       \
                    __FILE__, __LINE__);                                   \
            abort();                                                       \
        }                                                                  \
    } while (0)

/* The HTTP status a harness picks with one input byte (its low 4 bits:
 * '0' 200, '3' 400, '8' 429, '9' 500, 'b' 301, ...). */
static inline long fuzz_status(unsigned char b) {
    static const long statuses[16] = {200, 201, 204, 400, 401, 403, 404, 409,
                                      429, 500, 503, 301, 302, 100, 299, 599};
    return statuses[b & 15];
}

#endif
