/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "json.h"

#include <errno.h>
#include <string.h>

typedef const unsigned char *cptr;

static cptr skip_ws(cptr p, cptr end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
                p++;
        return p;
}

static int hexval(unsigned char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* Reads 4 hex digits at p (p+4 <= end checked by the caller). */
static int read_hex4(cptr p, cptr end, unsigned *out) {
        unsigned v = 0;
        if (end - p < 4)
                return -1;
        for (int i = 0; i < 4; i++) {
                int h = hexval(p[i]);
                if (h < 0)
                        return -1;
                v = (v << 4) | (unsigned) h;
        }
        *out = v;
        return 0;
}

/* Length of a valid UTF-8 sequence starting at p (first byte >= 0x80), 0 if invalid. */
static size_t utf8_seq(cptr p, cptr end) {
        unsigned char c = p[0];
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF;

        if (c >= 0xC2 && c <= 0xDF)
                n = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
                n = 3;
                if (c == 0xE0)
                        lo = 0xA0;
                else if (c == 0xED)
                        hi = 0x9F; /* no UTF-16 surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
                n = 4;
                if (c == 0xF0)
                        lo = 0x90;
                else if (c == 0xF4)
                        hi = 0x8F; /* nothing above U+10FFFF */
        } else
                return 0;

        if ((size_t) (end - p) < n)
                return 0;
        if (p[1] < lo || p[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if (p[i] < 0x80 || p[i] > 0xBF)
                        return 0;
        return n;
}

struct sink {
        unsigned char *out; /* NULL: only check */
        size_t size, len;
        bool overflow;
        bool nul;
};

static void sink_put(struct sink *s, const unsigned char *b, size_t n) {
        if (!s->out)
                return;
        if (s->overflow || n >= s->size - s->len) {
                s->overflow = true;
                return;
        }
        memcpy(s->out + s->len, b, n);
        s->len += n;
}

static void sink_codepoint(struct sink *s, unsigned cp) {
        unsigned char b[4];
        size_t n;

        if (cp == 0)
                s->nul = true;
        if (cp < 0x80) {
                b[0] = (unsigned char) cp;
                n = 1;
        } else if (cp < 0x800) {
                b[0] = (unsigned char) (0xC0 | (cp >> 6));
                b[1] = (unsigned char) (0x80 | (cp & 0x3F));
                n = 2;
        } else if (cp < 0x10000) {
                b[0] = (unsigned char) (0xE0 | (cp >> 12));
                b[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
                b[2] = (unsigned char) (0x80 | (cp & 0x3F));
                n = 3;
        } else {
                b[0] = (unsigned char) (0xF0 | (cp >> 18));
                b[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3F));
                b[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3F));
                b[3] = (unsigned char) (0x80 | (cp & 0x3F));
                n = 4;
        }
        sink_put(s, b, n);
}

/* p points at the opening quote. Returns the position after the closing quote, or NULL
 * if the string is malformed. Decoded bytes go to the sink. */
static cptr scan_string(cptr p, cptr end, struct sink *s) {
        if (p >= end || *p != '"')
                return NULL;
        p++;
        while (p < end) {
                unsigned char c = *p;

                if (c == '"')
                        return p + 1;
                if (c < 0x20)
                        return NULL;
                if (c == '\\') {
                        unsigned char e;
                        if (end - p < 2)
                                return NULL;
                        e = p[1];
                        p += 2;
                        switch (e) {
                        case '"': sink_codepoint(s, '"'); break;
                        case '\\': sink_codepoint(s, '\\'); break;
                        case '/': sink_codepoint(s, '/'); break;
                        case 'b': sink_codepoint(s, '\b'); break;
                        case 'f': sink_codepoint(s, '\f'); break;
                        case 'n': sink_codepoint(s, '\n'); break;
                        case 'r': sink_codepoint(s, '\r'); break;
                        case 't': sink_codepoint(s, '\t'); break;
                        case 'u': {
                                unsigned u, lo;
                                if (read_hex4(p, end, &u) < 0)
                                        return NULL;
                                p += 4;
                                if (u >= 0xDC00 && u <= 0xDFFF)
                                        return NULL; /* lone low surrogate */
                                if (u >= 0xD800 && u <= 0xDBFF) {
                                        if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
                                                return NULL;
                                        if (read_hex4(p + 2, end, &lo) < 0)
                                                return NULL;
                                        if (lo < 0xDC00 || lo > 0xDFFF)
                                                return NULL;
                                        p += 6;
                                        u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                                }
                                sink_codepoint(s, u);
                                break;
                        }
                        default:
                                return NULL;
                        }
                        continue;
                }
                if (c < 0x80) {
                        sink_put(s, p, 1);
                        p++;
                        continue;
                }
                size_t n = utf8_seq(p, end);
                if (n == 0)
                        return NULL;
                sink_put(s, p, n);
                p += n;
        }
        return NULL; /* unterminated */
}

static cptr scan_digits(cptr p, cptr end) {
        cptr start = p;
        while (p < end && *p >= '0' && *p <= '9')
                p++;
        return p == start ? NULL : p;
}

static cptr scan_number(cptr p, cptr end) {
        if (p < end && *p == '-')
                p++;
        if (p >= end)
                return NULL;
        if (*p == '0')
                p++;
        else if (*p >= '1' && *p <= '9')
                p = scan_digits(p, end);
        else
                return NULL;
        if (p < end && *p == '.') {
                p = scan_digits(p + 1, end);
                if (!p)
                        return NULL;
        }
        if (p < end && (*p == 'e' || *p == 'E')) {
                p++;
                if (p < end && (*p == '+' || *p == '-'))
                        p++;
                p = scan_digits(p, end);
        }
        return p;
}

static cptr scan_literal(cptr p, cptr end, const char *lit) {
        size_t n = strlen(lit);
        if ((size_t) (end - p) < n || memcmp(p, lit, n) != 0)
                return NULL;
        return p + n;
}

/* p points at the first character of a value (no white space). Returns the position
 * after it or NULL. depth counts the containers already open around it. */
static cptr scan_value(cptr p, cptr end, unsigned depth) {
        struct sink none = {0};

        if (p >= end)
                return NULL;

        switch (*p) {
        case '{':
        case '[': {
                bool object = *p == '{';
                unsigned char close = object ? '}' : ']';

                if (depth >= JSON_MAX_DEPTH)
                        return NULL;
                p = skip_ws(p + 1, end);
                if (p < end && *p == close)
                        return p + 1;
                for (;;) {
                        if (object) {
                                p = scan_string(p, end, &none);
                                if (!p)
                                        return NULL;
                                p = skip_ws(p, end);
                                if (p >= end || *p != ':')
                                        return NULL;
                                p = skip_ws(p + 1, end);
                        }
                        p = scan_value(p, end, depth + 1);
                        if (!p)
                                return NULL;
                        p = skip_ws(p, end);
                        if (p >= end)
                                return NULL;
                        if (*p == close)
                                return p + 1;
                        if (*p != ',')
                                return NULL;
                        p = skip_ws(p + 1, end);
                }
        }
        case '"':
                return scan_string(p, end, &none);
        case 't':
                return scan_literal(p, end, "true");
        case 'f':
                return scan_literal(p, end, "false");
        case 'n':
                return scan_literal(p, end, "null");
        default:
                if (*p == '-' || (*p >= '0' && *p <= '9'))
                        return scan_number(p, end);
                return NULL;
        }
}

int json_parse(const char *text, size_t len, json_val *root) {
        cptr p, end, start, after;

        if (!text || !root)
                return -EBADMSG;
        p = (cptr) text;
        end = p + len;
        start = skip_ws(p, end);
        after = scan_value(start, end, 0);
        if (!after)
                return -EBADMSG;
        if (skip_ws(after, end) != end)
                return -EBADMSG;
        root->p = (const char *) start;
        root->n = (size_t) (after - start);
        return 0;
}

json_type json_typeof(json_val v) {
        if (!v.p || v.n == 0)
                return JSON_INVALID;
        switch (v.p[0]) {
        case '{': return JSON_OBJECT;
        case '[': return JSON_ARRAY;
        case '"': return JSON_STRING;
        case 't': return JSON_TRUE;
        case 'f': return JSON_FALSE;
        case 'n': return JSON_NULL;
        default:
                if (v.p[0] == '-' || (v.p[0] >= '0' && v.p[0] <= '9'))
                        return JSON_NUMBER;
                return JSON_INVALID;
        }
}

int json_iter_init(json_iter *it, json_val c) {
        json_type t = json_typeof(c);

        if (t != JSON_OBJECT && t != JSON_ARRAY)
                return -EBADMSG;
        it->p = c.p + 1;
        it->end = c.p + c.n - 1; /* at the closing bracket */
        it->object = t == JSON_OBJECT;
        it->first = true;
        return 0;
}

int json_iter_next(json_iter *it, json_val *key, json_val *val) {
        cptr p = (cptr) it->p, end = (cptr) it->end, k, v;
        struct sink none = {0};

        p = skip_ws(p, end);
        if (p >= end)
                return 0;
        if (!it->first) {
                if (*p != ',')
                        return -EBADMSG;
                p = skip_ws(p + 1, end);
        }
        if (it->object) {
                k = p;
                p = scan_string(p, end, &none);
                if (!p)
                        return -EBADMSG;
                if (key) {
                        key->p = (const char *) k;
                        key->n = (size_t) (p - k);
                }
                p = skip_ws(p, end);
                if (p >= end || *p != ':')
                        return -EBADMSG;
                p = skip_ws(p + 1, end);
        }
        v = p;
        p = scan_value(p, end, 0);
        if (!p)
                return -EBADMSG;
        if (val) {
                val->p = (const char *) v;
                val->n = (size_t) (p - v);
        }
        it->p = (const char *) p;
        it->first = false;
        return 1;
}

int json_string_decode(json_val v, char *out, size_t outsz, size_t *outlen) {
        struct sink s = { .out = (unsigned char *) out, .size = outsz };
        cptr end;

        if (json_typeof(v) != JSON_STRING || !out || outsz == 0)
                return -EBADMSG;
        end = scan_string((cptr) v.p, (cptr) v.p + v.n, &s);
        if (!end || end != (cptr) v.p + v.n)
                return -EBADMSG;
        if (s.nul)
                return -EBADMSG;
        if (s.overflow)
                return -ERANGE;
        out[s.len] = 0;
        if (outlen)
                *outlen = s.len;
        return 0;
}

bool json_string_eq(json_val v, const char *str) {
        char buf[256];
        size_t l;

        if (strlen(str) >= sizeof buf)
                return false;
        if (json_string_decode(v, buf, sizeof buf, &l) < 0)
                return false;
        return l == strlen(str) && memcmp(buf, str, l) == 0;
}

int json_object_get(json_val obj, const char *key, json_val *out) {
        json_iter it;
        json_val k, v;
        int r, found = 0;

        if (json_typeof(obj) != JSON_OBJECT)
                return -EBADMSG;
        r = json_iter_init(&it, obj);
        if (r < 0)
                return r;
        while ((r = json_iter_next(&it, &k, &v)) > 0) {
                if (!json_string_eq(k, key))
                        continue;
                if (found)
                        return -EBADMSG; /* duplicate key: ambiguous */
                found = 1;
                if (out)
                        *out = v;
        }
        if (r < 0)
                return r;
        return found;
}

int json_get_int(json_val v, int64_t min, int64_t max, int64_t *out) {
        const char *p = v.p, *end = v.p + v.n;
        bool neg = false;
        uint64_t acc = 0, limit;

        if (json_typeof(v) != JSON_NUMBER)
                return -EBADMSG;
        if (*p == '-') {
                neg = true;
                p++;
        }
        if (p >= end)
                return -EBADMSG;
        limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;
        for (; p < end; p++) {
                unsigned d;
                if (*p < '0' || *p > '9')
                        return -EBADMSG; /* fraction or exponent: not an integer */
                d = (unsigned) (*p - '0');
                if (acc > (limit - d) / 10)
                        return -EBADMSG;
                acc = acc * 10 + d;
        }
        int64_t r;
        if (neg)
                r = acc == (uint64_t) INT64_MAX + 1 ? INT64_MIN : -(int64_t) acc;
        else
                r = (int64_t) acc;
        if (r < min || r > max)
                return -EBADMSG;
        if (out)
                *out = r;
        return 0;
}

int json_write_string(char *out, size_t outsz, const char *s) {
        static const char hex[] = "0123456789abcdef";
        size_t n = 0;

#define PUT(ch)                                 \
        do {                                    \
                if (n + 1 >= outsz)             \
                        return -ERANGE;         \
                out[n++] = (ch);                \
        } while (0)

        if (!out || outsz == 0)
                return -ERANGE;
        PUT('"');
        for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
                unsigned char c = *p;
                if (c == '"' || c == '\\') {
                        PUT('\\');
                        PUT((char) c);
                } else if (c < 0x20 || c == 0x7F) {
                        PUT('\\');
                        PUT('u');
                        PUT('0');
                        PUT('0');
                        PUT(hex[c >> 4]);
                        PUT(hex[c & 0xF]);
                } else
                        PUT((char) c);
        }
        PUT('"');
#undef PUT
        out[n] = 0;
        return (int) n;
}
