/*
 * buf.c: a growable byte buffer. Its owner (a client userdata) frees it;
 * growth failures are reported, never raised, so that it can be used from
 * inside libcurl callbacks.
 */
#include <stdlib.h>
#include <string.h>
#include "cfiam.h"

/* Makes room for `extra` more bytes. Returns 0 when out of memory. */
int cfiam_buf_reserve(cfiam_buf *b, size_t extra) {
    size_t need, cap;
    char *p;
    if (extra > (size_t)-1 - b->len)
        return 0;
    need = b->len + extra;
    if (need <= b->cap)
        return 1;
    cap = b->cap ? b->cap : 1024;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        return 0;
    b->data = p;
    b->cap = cap;
    return 1;
}

int cfiam_buf_append(cfiam_buf *b, const char *s, size_t n) {
    if (n == 0) /* b->data may still be NULL: no memcpy(NULL, s, 0) */
        return 1;
    if (!cfiam_buf_reserve(b, n))
        return 0;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 1;
}

void cfiam_buf_free(cfiam_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
