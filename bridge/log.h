/*
 * log.h - the bridge's leveled logging to stderr.
 *
 * One line per call, written with one write(2) so that lines of two
 * processes sharing a terminal or a journal never interleave:
 *
 *     2025-12-01T16:58:03.123Z distreg-bridge[4242] WARN: message
 *
 * The time is UTC (CLOCK_REALTIME) to the millisecond. A message longer than
 * LOG_LINE_MAX is cut and ends in "..."; control characters in it (a peer's
 * bytes can reach a log line) are written as '?', so no message can forge
 * another line. Logging never fails and never changes errno.
 *
 * The state (program name, level, descriptor) is process-wide and set once
 * at start, before any other thread exists; the bridge has one thread.
 */
#ifndef DISTREG_BRIDGE_LOG_H
#define DISTREG_BRIDGE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

/* Most bytes of one line, newline included. */
#define LOG_LINE_MAX 1024

enum log_level {
	LOG_LEVEL_ERROR = 0, /* the bridge cannot go on, or lost something it had */
	LOG_LEVEL_WARN = 1,  /* a peer or a process misbehaves; the bridge goes on */
	LOG_LEVEL_INFO = 2,  /* membership changes, start and stop (the default) */
	LOG_LEVEL_DEBUG = 3, /* every frame dropped, every retry */
};

/*
 * Set the program name (copied; NULL keeps "distreg-bridge") and the level:
 * lines above it are not written. Defaults: "distreg-bridge", info, fd 2.
 */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Write lines to fd instead of 2 (tests capture them this way). */
void log_set_fd(int fd);

/* "error", "warn", "info", "debug" (exactly, lower case) into *out:
 * 0, or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
/* "error" .. "debug"; "?" out of range. */
const char *log_level_name(enum log_level level);
/* Whether a line of this level would be written (skip building costly
 * arguments when not). */
bool log_enabled(enum log_level level);

void log_write(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vwrite(enum log_level level, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * Lines that are written once per change of state, not once per try: "an
 * address with no bridge behind it is logged once" while it stays so, and
 * again when it answers, or fails in another way.
 *
 * A struct log_once remembers, for up to LOG_ONCE_KEYS keys (an address, a
 * host id: a key longer than LOG_ONCE_KEY_MAX bytes is told apart by its
 * first LOG_ONCE_KEY_MAX), the last state logged. The caller owns it (about
 * 100 KiB: keep it static or in the bridge's state, not on a stack).
 */
#define LOG_ONCE_KEYS 512
#define LOG_ONCE_KEY_MAX 191 /* an address (127), '/', a host id (63) */

struct log_once {
	unsigned n;
	struct log_once_entry {
		uint64_t hash;
		int state;
		char key[LOG_ONCE_KEY_MAX + 1];
	} e[LOG_ONCE_KEYS];
};

/* An empty set. A zeroed struct log_once is one too. */
void log_once_init(struct log_once *o);

/*
 * If key's last state is not state (or key is new), remember state and write
 * the line (when level is enabled); returns true. Otherwise write nothing
 * and return false. With LOG_ONCE_KEYS keys already remembered a new key's
 * line is always written and not remembered: too many lines rather than a
 * missing one.
 */
bool log_once(struct log_once *o, const char *key, int state, enum log_level level, const char *fmt,
	      ...) __attribute__((format(printf, 5, 6)));

/* Forget key (a peer removed from the configuration): its next line is
 * written whatever its state. */
void log_once_forget(struct log_once *o, const char *key);

#endif /* DISTREG_BRIDGE_LOG_H */
