/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A small, strict JSON reader (RFC 8259) for the replies of the mymachines daemon.
 *
 * json_parse() checks a whole text once: grammar, string escapes (including \uXXXX
 * and surrogate pairs), UTF-8 of raw string bytes, and a nesting limit. After that the
 * text is navigated in place: a json_val is a slice of the text holding one value.
 * Nothing is allocated. Every function is safe on any input bytes.
 */
#ifndef MYMACHINES_JSON_H
#define MYMACHINES_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 32

typedef enum json_type {
        JSON_INVALID = 0,
        JSON_OBJECT,
        JSON_ARRAY,
        JSON_STRING,
        JSON_NUMBER,
        JSON_TRUE,
        JSON_FALSE,
        JSON_NULL,
} json_type;

/* One value: p points at its first character, n is the length of its text. */
typedef struct json_val {
        const char *p;
        size_t n;
} json_val;

typedef struct json_iter {
        const char *p;   /* next position inside the container */
        const char *end; /* end of the container's text */
        bool object;
        bool first;
} json_iter;

/* Checks text[0..len) as one complete JSON value surrounded by optional white space.
 * Returns 0 and sets *root, or -EBADMSG. */
int json_parse(const char *text, size_t len, json_val *root);

json_type json_typeof(json_val v);

/* Iterates over the members of an object or the elements of an array obtained from
 * json_parse(). json_iter_next() returns 1 with the next member (key is left alone for
 * arrays and may be NULL), 0 at the end, -EBADMSG on a broken value. */
int json_iter_init(json_iter *it, json_val container);
int json_iter_next(json_iter *it, json_val *key, json_val *val);

/* Looks a key up in an object. Returns 1 and sets *out when found exactly once, 0 when
 * absent, -EBADMSG when v is no object or the key occurs more than once. */
int json_object_get(json_val obj, const char *key, json_val *out);

/* Decodes a string value into out (NUL-terminated, at most outsz-1 bytes).
 * -EBADMSG if v is no string or contains U+0000, -ERANGE if it does not fit. */
int json_string_decode(json_val v, char *out, size_t outsz, size_t *outlen);

/* 1 if v is a string equal to s (after decoding), 0 otherwise. */
bool json_string_eq(json_val v, const char *s);

/* Reads an integer number (no fraction, no exponent) within [min, max]. -EBADMSG otherwise. */
int json_get_int(json_val v, int64_t min, int64_t max, int64_t *out);

/* Writes s as a quoted JSON string into out (NUL-terminated). Returns the length written
 * (without NUL) or -ERANGE. Control characters, '"' and '\\' are escaped; other bytes
 * are copied (the callers only pass validated ASCII). */
int json_write_string(char *out, size_t outsz, const char *s);

#endif
