/*
 * toolutil.h - what shmdump and distreg share: the names of a segment
 * gathered out of dr_foreach(), and printing bytes as text, hex or JSON.
 * Public API only.
 */
#ifndef DR_TOOLUTIL_H
#define DR_TOOLUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <distreg.h>

/* A copy of one name, taken inside dr_foreach() and printed after it. */
struct name_rec {
	struct dr_entry entry;
	int alive;
	int global;             /* a global name (dr_serve_global) */
	size_t name_len;
	unsigned char name[DR_NAME_MAX];
};

/*
 * The copies, about 240 bytes per name: less than the segment itself spends
 * on each entry, so a full segment of the default capacity costs about
 * 15 MiB here.
 */
struct name_list {
	struct name_rec *v;
	size_t n, cap;
	unsigned live, dead, global;
};

/* Every name of r into l (appended), sorted by bytes, then length, local
 * before global. Nothing
 * is printed from inside the walk: a reader blocked on a full pipe there
 * would hold back the reuse of every entry unregistered meanwhile. */
int names_gather(dr_registry *r, struct name_list *l);
void names_free(struct name_list *l);

/* "up", "suspect", "down", "ignored" for DR_HOST_*; "?" otherwise. */
const char *host_state_name(int state);

void put_hex(FILE *f, const unsigned char *p, size_t n);
/* Whether n bytes at p are valid UTF-8 (no overlong form, surrogate, or
 * code point above U+10FFFF). */
bool utf8_valid(const unsigned char *p, size_t n);
/* Valid UTF-8 that cannot be mistaken for hex: printed as is in a listing,
 * but for control characters, DEL and the backslash, which are escaped
 * (\xNN, \\), and in names the space (columns stay split on white
 * space). */
bool name_is_text(const unsigned char *p, size_t n);
/* Columns a name (name) or value printed as text takes. */
size_t text_width(const unsigned char *p, size_t n, bool name);
bool value_is_text(const unsigned char *p, size_t n);
/* p as text if name_is_text/value_is_text says so, else 0x and hex; an
 * empty value as "-". */
void put_name(FILE *f, const unsigned char *p, size_t n);
void put_value(FILE *f, const unsigned char *p, size_t n);

/* A JSON string of bytes that are text (json_is_text): valid UTF-8, with
 * quotes, backslashes and control characters escaped. */
void json_str(FILE *f, const void *data, size_t n);
bool json_is_text(const unsigned char *p, size_t n);
/* "key": "text", "key_encoding": "text" -- or the bytes in hex. */
void json_bytes(FILE *f, const char *key, const unsigned char *p, size_t n);

#endif
