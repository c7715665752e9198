/*
 * idhash.c: ids as 16-byte keys and their keyed hash, for the two
 * open-addressing id tables: the request body's de-duplication (body.c)
 * and the listing id set (idset.c). Callers check cfiam_is_id first.
 */
#include <stdint.h>
#include <time.h>
#include "cfiam.h"

static int hexval(char c) {
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

void cfiam_id_key(const char *id, unsigned char key[16]) {
    size_t i;
    for (i = 0; i < 16; i++)
        key[i] = (unsigned char)(hexval(id[2 * i]) << 4 | hexval(id[2 * i + 1]));
}

/* SipHash-1-3 of the 16 key bytes under a 128-bit secret seed: a keyed
 * mixing of every byte, so that ids alike in any part (sequential ids,
 * ids sharing a prefix) spread over the table, and so that a server or a
 * file cannot choose ids that collide without knowing the seed. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                           \
    do {                                                                   \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);          \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                             \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                             \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);          \
    } while (0)

static uint64_t load64(const unsigned char *p) { /* little endian */
    uint64_t x = 0;
    int i;
    for (i = 7; i >= 0; i--)
        x = x << 8 | p[i];
    return x;
}

size_t cfiam_id_slot(const unsigned char key[16], const cfiam_id_seed *seed,
                     size_t cap) {
    uint64_t v0 = seed->k0 ^ 0x736f6d6570736575ULL;
    uint64_t v1 = seed->k1 ^ 0x646f72616e646f6dULL;
    uint64_t v2 = seed->k0 ^ 0x6c7967656e657261ULL;
    uint64_t v3 = seed->k1 ^ 0x7465646279746573ULL;
    uint64_t m;
    int i;
    for (i = 0; i < 3; i++) { /* two words of id, then the length word */
        m = i < 2 ? load64(key + 8 * i) : (uint64_t)16 << 56;
        v3 ^= m;
        SIPROUND;
        v0 ^= m;
    }
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return (size_t)(v0 ^ v1 ^ v2 ^ v3) & (cap - 1);
}

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A fresh seed for one table. Not a cryptographic random source, but
 * nothing a server sees: the addresses of a static, a stack variable and
 * this code (address-space randomisation), the clock, the CPU time and a
 * counter. A racy counter in threads only costs two tables the same seed. */
void cfiam_id_seed_new(cfiam_id_seed *seed) {
    static uint64_t counter;
    volatile int local = 0;
    uint64_t x = ++counter;
    x ^= (uint64_t)(uintptr_t)&counter * 0x100000001b3ULL;
    x ^= (uint64_t)(uintptr_t)&local << 17;
    x ^= (uint64_t)(uintptr_t)&cfiam_id_seed_new >> 3;
    x = splitmix(&x) ^ (uint64_t)time(NULL);
    x = splitmix(&x) ^ (uint64_t)clock();
    seed->k0 = splitmix(&x);
    seed->k1 = splitmix(&x);
    (void)local;
}
