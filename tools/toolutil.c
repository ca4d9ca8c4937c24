/*
 * toolutil.c - see toolutil.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "toolutil.h"

static int collect(const struct dr_name_info *info, void *arg)
{
	struct name_list *l = arg;
	struct name_rec *rec;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct name_rec *v = realloc(l->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM; /* stops the walk; dr_foreach returns it */
		l->v = v;
		l->cap = cap;
	}
	rec = &l->v[l->n++];
	rec->entry = info->entry;
	rec->alive = info->alive;
	rec->global = info->global;
	l->global += info->global != 0;
	rec->name_len = info->name_len;
	memcpy(rec->name, info->name, info->name_len);
	if (info->alive)
		l->live++;
	else
		l->dead++;
	return 0;
}

/* Byte order, then length: the order a reader of the listing expects; a
 * local name before the global one of the same bytes. */
static int rec_cmp(const void *pa, const void *pb)
{
	const struct name_rec *a = pa, *b = pb;
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, n);

	if (c)
		return c;
	if (a->name_len != b->name_len)
		return (a->name_len > b->name_len) - (a->name_len < b->name_len);
	return (a->global > b->global) - (a->global < b->global);
}

const char *host_state_name(int state)
{
	switch (state) {
	case DR_HOST_UP: return "up";
	case DR_HOST_SUSPECT: return "suspect";
	case DR_HOST_DOWN: return "down";
	case DR_HOST_IGNORED: return "ignored";
	default: return "?";
	}
}

int names_gather(dr_registry *r, struct name_list *l)
{
	int err = dr_foreach(r, collect, l);

	if (err)
		return err;
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(l->v[0]), rec_cmp);
	return 0;
}

void names_free(struct name_list *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void put_hex(FILE *f, const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

static bool starts_0x(const unsigned char *p, size_t n)
{
	return n >= 2 && p[0] == '0' && p[1] == 'x';
}

/* Length of the UTF-8 sequence at p (at most n bytes), 0 if it is not a
 * valid one: no overlong form, no surrogate, nothing above U+10FFFF. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	size_t len;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool utf8_valid(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t k = utf8_seq(p + i, n - i);

		if (!k)
			return false;
		i += k;
	}
	return true;
}

/* Whether the byte is escaped in a listing: C0 controls, DEL, the
 * backslash (the escape's own character), and in names the space (columns
 * are split on white space). */
static bool escaped(unsigned char c, bool name)
{
	return c < 0x20 || c == 0x7f || c == '\\' || (name && c == ' ');
}

/* Columns p takes when printed by put_text: a code point each, four for
 * an escape (\xNN), two for a backslash (\\). */
size_t text_width(const unsigned char *p, size_t n, bool name)
{
	size_t w = 0;

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\')
			w += 2;
		else if (escaped(p[i], name))
			w += 4;
		else if ((p[i] & 0xc0) != 0x80)
			w++;
	}
	return w;
}

static void put_text(FILE *f, const unsigned char *p, size_t n, bool name)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\\')
			fputs("\\\\", f);
		else if (escaped(p[i], name))
			fprintf(f, "\\x%02x", p[i]);
		else
			putc(p[i], f);
	}
}

/* Valid UTF-8 (control characters are escaped when printed), not to be
 * mistaken for hex. */
bool name_is_text(const unsigned char *p, size_t n)
{
	return utf8_valid(p, n) && !starts_0x(p, n);
}

/* Values are the last column, so spaces are fine; "-" stands for empty. */
bool value_is_text(const unsigned char *p, size_t n)
{
	return n > 0 && !(n == 1 && p[0] == '-') && !starts_0x(p, n) && utf8_valid(p, n);
}

void put_name(FILE *f, const unsigned char *p, size_t n)
{
	if (name_is_text(p, n)) {
		put_text(f, p, n, true);
	} else {
		fputs("0x", f);
		put_hex(f, p, n);
	}
}

void put_value(FILE *f, const unsigned char *p, size_t n)
{
	if (n == 0) {
		putc('-', f);
	} else if (value_is_text(p, n)) {
		put_text(f, p, n, false);
	} else {
		fputs("0x", f);
		put_hex(f, p, n);
	}
}

void json_str(FILE *f, const void *data, size_t n)
{
	const unsigned char *p = data;

	putc('"', f);
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '"' || p[i] == '\\')
			fprintf(f, "\\%c", p[i]);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(f, "\\u%04x", p[i]);
		else
			putc(p[i], f);
	}
	putc('"', f);
}

/* Valid UTF-8: json_str escapes quotes, backslashes and controls. */
bool json_is_text(const unsigned char *p, size_t n)
{
	return utf8_valid(p, n);
}

void json_bytes(FILE *f, const char *key, const unsigned char *p, size_t n)
{
	bool text = json_is_text(p, n);

	fprintf(f, "\"%s\": ", key);
	if (text) {
		json_str(f, p, n);
	} else {
		putc('"', f);
		put_hex(f, p, n);
		putc('"', f);
	}
	fprintf(f, ", \"%s_encoding\": \"%s\"", key, text ? "text" : "hex");
}
