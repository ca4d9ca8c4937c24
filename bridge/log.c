/*
 * log.c - leveled logging to stderr, and lines logged once per state.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static char prog_name[64] = "distreg-bridge";
static enum log_level cur_level = LOG_LEVEL_INFO;
static int out_fd = 2;

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const char *const level_tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_init(const char *prog, enum log_level level)
{
	if (prog) {
		const char *slash = strrchr(prog, '/');

		snprintf(prog_name, sizeof(prog_name), "%s", slash ? slash + 1 : prog);
	}
	log_set_level(level);
}

void log_set_level(enum log_level level)
{
	if (level >= LOG_LEVEL_ERROR && level <= LOG_LEVEL_DEBUG)
		cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

void log_set_fd(int fd)
{
	out_fd = fd;
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (int i = LOG_LEVEL_ERROR; i <= LOG_LEVEL_DEBUG; i++)
		if (s && strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	return -EINVAL;
}

const char *log_level_name(enum log_level level)
{
	if (level < LOG_LEVEL_ERROR || level > LOG_LEVEL_DEBUG)
		return "?";
	return level_names[level];
}

bool log_enabled(enum log_level level)
{
	return level <= cur_level;
}

static void write_all(const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(out_fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* nowhere to complain to */
		p += w;
		n -= (size_t)w;
	}
}

void log_vwrite(enum log_level level, const char *fmt, va_list ap)
{
	char line[LOG_LINE_MAX];
	struct timespec ts;
	struct tm tm;
	size_t n, start, room = sizeof(line) - 1; /* the newline's byte */
	int saved = errno, m;

	if (!log_enabled(level) || level < LOG_LEVEL_ERROR)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(line, room, "%Y-%m-%dT%H:%M:%S", &tm);
	m = snprintf(line + n, room - n, ".%03ldZ %s[%ld] %s: ", ts.tv_nsec / 1000000, prog_name,
		     (long)getpid(), level_tags[level]);
	n += m > 0 && (size_t)m < room - n ? (size_t)m : 0;
	start = n;
	m = vsnprintf(line + n, room - n, fmt, ap);
	if (m < 0)
		m = 0;
	if ((size_t)m >= room - n) {
		n = room;
		memcpy(line + n - 3, "...", 3);
	} else {
		n += (size_t)m;
	}
	for (size_t i = start; i < n; i++)
		if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
			line[i] = '?';
	line[n++] = '\n';
	write_all(line, n);
	errno = saved;
}

void log_write(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
}

#define LEVEL_FN(fn, level)                                                                        \
	void fn(const char *fmt, ...)                                                              \
	{                                                                                          \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		log_vwrite(level, fmt, ap);                                                        \
		va_end(ap);                                                                        \
	}

LEVEL_FN(log_error, LOG_LEVEL_ERROR)
LEVEL_FN(log_warn, LOG_LEVEL_WARN)
LEVEL_FN(log_info, LOG_LEVEL_INFO)
LEVEL_FN(log_debug, LOG_LEVEL_DEBUG)

/* ---------------------------------------------------------------------- */
/* Once per state. A linear scan with a hash to skip most compares: the
 * bridge calls this once per dial attempt (every 10 s per ignored address)
 * and per state change, a few hundred keys at most. */

static uint64_t fnv1a(const char *s, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ull;
	return h;
}

static struct log_once_entry *lookup(struct log_once *o, const char *key, size_t kl, uint64_t h)
{
	for (unsigned i = 0; i < o->n && i < LOG_ONCE_KEYS; i++) {
		struct log_once_entry *e = &o->e[i];

		if (e->hash == h && strncmp(e->key, key, kl) == 0 && e->key[kl] == '\0')
			return e;
	}
	return NULL;
}

void log_once_init(struct log_once *o)
{
	o->n = 0;
}

bool log_once(struct log_once *o, const char *key, int state, enum log_level level, const char *fmt,
	      ...)
{
	size_t kl = strnlen(key, LOG_ONCE_KEY_MAX);
	uint64_t h = fnv1a(key, kl);
	struct log_once_entry *e = lookup(o, key, kl, h);
	va_list ap;

	if (e && e->state == state)
		return false;
	if (!e && o->n < LOG_ONCE_KEYS) {
		e = &o->e[o->n++];
		e->hash = h;
		memcpy(e->key, key, kl);
		e->key[kl] = '\0';
	}
	if (e)
		e->state = state;
	va_start(ap, fmt);
	log_vwrite(level, fmt, ap);
	va_end(ap);
	return true;
}

void log_once_forget(struct log_once *o, const char *key)
{
	size_t kl = strnlen(key, LOG_ONCE_KEY_MAX);
	struct log_once_entry *e = lookup(o, key, kl, fnv1a(key, kl));

	if (e)
		*e = o->e[--o->n]; /* the last takes its place */
}
