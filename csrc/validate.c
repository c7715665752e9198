/*
 * validate.c: the checks made before anything is sent. Pure functions over
 * byte ranges: no Lua, no allocation, so they can be fuzzed on their own.
 */
#include <stdio.h>
#include <string.h>
#include "cfiam.h"

static int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

/* An account, group or member id: exactly 32 hexadecimal characters. */
int cfiam_is_id(const char *s, size_t len) {
    size_t i;
    if (len != CFIAM_ID_LEN)
        return 0;
    for (i = 0; i < len; i++)
        if (!is_hex((unsigned char)s[i]))
            return 0;
    return 1;
}

/* Writes the 32 characters of a valid id in lower case, as the API writes
 * ids (paths and bodies alike). */
void cfiam_id_lower(char *out, const char *id) {
    size_t i;
    for (i = 0; i < CFIAM_ID_LEN; i++)
        out[i] = (char)(id[i] >= 'A' && id[i] <= 'F' ? id[i] | 0x20 : id[i]);
}

/* A printable, bounded rendering of a user value for messages:
 * "abc\x01..." (quoted, at most 40 bytes of the value). */
void cfiam_quote(char *out, size_t cap, const char *s, size_t len) {
    size_t o = 0, i;
    if (cap < 8) {
        if (cap) out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (i = 0; i < len && i < 40 && o + 6 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else
            out[o++] = (char)c;
    }
    if (i < len && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* A header value without control characters (TAB allowed where `tab`), so
 * that nothing can end a header line early. */
static const char *check_value(const char *v, size_t len, int tab) {
    size_t i;
    if (len == 0)
        return "is empty";
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)v[i];
        if ((c < 0x20 && !(tab && c == '\t')) || c == 0x7f)
            return tab ? "contains a control character (CR, LF or other)"
                       : "contains a control character (CR, LF, TAB or other)";
    }
    return NULL;
}

/* User agent and extra headers: TAB is legal inside a field value. */
const char *cfiam_check_header_value(const char *v, size_t len) {
    return check_value(v, len, 1);
}

/* Credentials: not even a TAB (a copy-paste slip that would be sent). */
const char *cfiam_check_credential(const char *v, size_t len) {
    return check_value(v, len, 0);
}

/* RFC 9110 token characters. */
int cfiam_is_header_name(const char *s, size_t len) {
    size_t i;
    if (len == 0)
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || strchr("!#$%&'*+-.^_`|~", c)))
            return 0;
    }
    return 1;
}

/* Headers that options.headers may not set: auth, content and framing. */
int cfiam_is_reserved_header(const char *s, size_t len) {
    static const char *const names[] = {
        "authorization", "x-auth-email", "x-auth-key",
        "x-auth-user-service-key", "content-type", "content-length",
        "transfer-encoding", "host", "connection", "expect", NULL};
    int i;
    for (i = 0; names[i]; i++) {
        size_t n = strlen(names[i]), k;
        if (n != len)
            continue;
        for (k = 0; k < n; k++) {
            char c = s[k];
            if (c >= 'A' && c <= 'Z')
                c = (char)(c - 'A' + 'a');
            if (c != names[i][k])
                break;
        }
        if (k == n)
            return 1;
    }
    return 0;
}

/* A request path: '/' then unreserved characters, '/' and %XX only. */
int cfiam_is_path(const char *s, size_t len) {
    size_t i;
    if (len == 0 || s[0] != '/')
        return 0;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
            (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
            c == '~' || c == '/')
            continue;
        if (c == '%' && i + 2 < len && is_hex((unsigned char)s[i + 1]) &&
            is_hex((unsigned char)s[i + 2]) &&
            !(s[i + 1] == '2' && (s[i + 2] | 0x20) == 'e')) {
            /* (%2e is refused: decoded, it could form a dot segment) */
            i += 2;
            continue;
        }
        return 0;
    }
    /* no dot segments: the API has none and they would escape the prefix */
    for (i = 0; i + 1 < len; i++)
        if (s[i] == '/' && s[i + 1] == '.' &&
            (i + 2 == len || s[i + 2] == '/' ||
             (s[i + 2] == '.' && (i + 3 == len || s[i + 3] == '/'))))
            return 0;
    return 1;
}

static int is_loopback(const cfiam_url *u) {
    const char *h = u->host;
    int parts = 0;
    if (u->ipv6)
        return strcmp(h, "::1") == 0;
    if (strcmp(h, "localhost") == 0)
        return 1;
    /* 127.0.0.0/8 as a dotted quad */
    if (strncmp(h, "127.", 4) != 0)
        return 0;
    while (*h) {
        int v = 0, digits = 0;
        while (*h >= '0' && *h <= '9' && digits < 4) {
            v = v * 10 + (*h++ - '0');
            digits++;
        }
        if (digits == 0 || digits > 3 || v > 255)
            return 0;
        parts++;
        if (*h == '.')
            h++;
        else if (*h)
            return 0;
    }
    return parts == 4;
}

/* "[v6]" at host (up to hend): copies the address without brackets.
 * Returns where the authority goes on (after ']'), or NULL with *why. */
static const char *parse_ipv6(const char *host, const char *hend,
                              cfiam_url *out, const char **why) {
    const char *rb = memchr(host, ']', (size_t)(hend - host));
    size_t i, hl;
    if (rb == NULL) {
        *why = "has an unterminated IPv6 address";
        return NULL;
    }
    hl = (size_t)(rb - host - 1);
    if (hl == 0 || hl >= sizeof(out->host)) {
        *why = "has an invalid host";
        return NULL;
    }
    memcpy(out->host, host + 1, hl);
    for (i = 0; i < hl; i++)
        if (!is_hex((unsigned char)out->host[i]) && out->host[i] != ':' &&
            out->host[i] != '.') {
            *why = "has an invalid IPv6 address";
            return NULL;
        }
    out->ipv6 = 1;
    return rb + 1;
}

/* A host name or IPv4 address at host (up to ':' or hend), copied in
 * lower case. Returns where the authority goes on, or NULL with *why. */
static const char *parse_name(const char *host, const char *hend,
                              cfiam_url *out, const char **why) {
    const char *colon = memchr(host, ':', (size_t)(hend - host));
    const char *he = colon ? colon : hend;
    size_t i, hl = (size_t)(he - host);
    if (hl == 0 || hl >= sizeof(out->host)) {
        *why = "has an empty or too long host";
        return NULL;
    }
    for (i = 0; i < hl; i++) {
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              (c >= '0' && c <= '9') || c == '-' || c == '.')) {
            *why = "has an invalid host";
            return NULL;
        }
        out->host[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    return he;
}

/* What follows the host: nothing or ":port". NULL when fine. */
static const char *parse_port(const char *p, const char *hend,
                              cfiam_url *out) {
    int port = 0, digits = 0;
    if (p == hend)
        return NULL;
    if (*p != ':')
        return "has an invalid host";
    for (p++; p < hend; p++, digits++) {
        if (*p < '0' || *p > '9' || digits >= 5)
            return "has an invalid port";
        port = port * 10 + (*p - '0');
    }
    if (digits == 0 || port < 1 || port > 65535)
        return "has an invalid port";
    out->port = port;
    return NULL;
}

/* The scheme: fills https and the default port. Returns the length of
 * "https://" or "http://", or 0. */
static size_t parse_scheme(const char *url, size_t len, cfiam_url *out) {
    if (len >= 8 && strncmp(url, "https://", 8) == 0) {
        out->https = 1;
        out->port = 443;
        return 8;
    }
    if (len >= 7 && strncmp(url, "http://", 7) == 0) {
        out->port = 80;
        return 7;
    }
    return 0;
}

/* base_url: https://host[:port][/prefix], or http:// to loopback only.
 * No credentials, query or fragment in it. Fills `out`. */
const char *cfiam_check_base_url(const char *url, size_t len, cfiam_url *out) {
    const char *p, *end = url + len, *host, *hend, *why = NULL;
    size_t i, skip;
    memset(out, 0, sizeof(*out));
    for (i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || (unsigned char)url[i] >= 0x7f)
            return "contains a space, control or non-ASCII character";
    if ((skip = parse_scheme(url, len, out)) == 0)
        return "must start with https:// (or http:// to a loopback host)";
    host = p = url + skip;
    while (p < end && *p != '/' && *p != '?' && *p != '#')
        p++;
    hend = p; /* authority is [host, hend) */
    if (memchr(host, '@', (size_t)(hend - host)))
        return "must not contain credentials (user@host)";
    if (memchr(p, '?', (size_t)(end - p)) || memchr(p, '#', (size_t)(end - p)))
        return "must not contain a query or fragment";
    host = (host < hend && *host == '[') ? parse_ipv6(host, hend, out, &why)
                                         : parse_name(host, hend, out, &why);
    if (host == NULL)
        return why;
    if ((why = parse_port(host, hend, out)) != NULL)
        return why;
    if (p < end && !cfiam_is_path(p, (size_t)(end - p)))
        return "has an invalid path";
    if (!out->https && !is_loopback(out))
        return "uses http:// to a host that is not loopback (127.0.0.0/8, "
               "[::1], localhost): use https://";
    out->prefix_off = (size_t)(hend - url);
    return NULL;
}
