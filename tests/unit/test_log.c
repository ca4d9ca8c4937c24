/*
 * test_log.c - bridge/log.c: the line's form, levels, what a message cannot
 * do to a line, and lines logged once per state.
 */
#include <errno.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "log.h"

TestSuite(log, .timeout = 30.0);

static int pipe_fd[2] = {-1, -1};

/* Lines go into a pipe; read() what came so far. */
static void capture(void)
{
	cr_assert_eq(pipe(pipe_fd), 0);
	log_set_fd(pipe_fd[1]);
}

static const char *captured(void)
{
	static char buf[8192];
	ssize_t n;

	close(pipe_fd[1]);
	n = read(pipe_fd[0], buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	close(pipe_fd[0]);
	capture();
	return buf;
}

static int count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

Test(log, the_form_of_a_line)
{
	regex_t re;
	char want[128];
	const char *out;

	capture();
	log_init("/usr/sbin/distreg-bridge", LOG_LEVEL_INFO);
	log_warn("peer %s is late by %d ms", "b", 40);
	out = captured();
	snprintf(want, sizeof(want),
		 "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "
		 "distreg-bridge\\[%d\\] WARN: peer b is late by 40 ms\n$",
		 (int)getpid());
	cr_assert_eq(regcomp(&re, want, REG_EXTENDED | REG_NOSUB), 0);
	cr_assert_eq(regexec(&re, out, 0, NULL, 0), 0, "line: %s", out);
	regfree(&re);
}

Test(log, levels)
{
	const char *out;

	capture();
	log_init(NULL, LOG_LEVEL_WARN);
	log_error("e");
	log_warn("w");
	log_info("i");
	log_debug("d");
	out = captured();
	cr_assert_eq(count_lines(out), 2, "%s", out);
	cr_assert_not_null(strstr(out, " ERROR: e\n"));
	cr_assert_not_null(strstr(out, " WARN: w\n"));
	cr_assert_not(log_enabled(LOG_LEVEL_INFO));

	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("d");
	log_write(LOG_LEVEL_INFO, "i%d", 2);
	out = captured();
	cr_assert_not_null(strstr(out, " DEBUG: d\n"));
	cr_assert_not_null(strstr(out, " INFO: i2\n"));
	cr_assert_eq(log_get_level(), LOG_LEVEL_DEBUG);
}

Test(log, level_names)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	enum log_level l;

	for (int i = 0; i < 4; i++) {
		cr_assert_eq(log_level_parse(names[i], &l), 0);
		cr_assert_eq((int)l, i);
		cr_assert_str_eq(log_level_name(l), names[i]);
	}
	cr_assert_eq(log_level_parse("Info", &l), -EINVAL);
	cr_assert_eq(log_level_parse("", &l), -EINVAL);
	cr_assert_eq(log_level_parse("warning", &l), -EINVAL);
	cr_assert_eq(log_level_parse(NULL, &l), -EINVAL);
}

Test(log, a_message_cannot_forge_a_line)
{
	const char *out;

	capture();
	log_init(NULL, LOG_LEVEL_INFO);
	log_info("host %s",
		 "evil\n2025-01-01T00:00:00.000Z distreg-bridge[1] ERROR: forged\r\x1b[2J");
	out = captured();
	cr_assert_eq(count_lines(out), 1, "%s", out);
	cr_assert_not_null(strstr(out, "evil?2025"));
	cr_assert_null(strchr(out, '\r'));
	cr_assert_null(strchr(out, '\x1b'));
}

Test(log, a_long_message_is_cut)
{
	static char big[4 * LOG_LINE_MAX];
	const char *out;

	memset(big, 'x', sizeof(big) - 1);
	capture();
	log_init(NULL, LOG_LEVEL_INFO);
	log_info("%s", big);
	out = captured();
	cr_assert_eq(strlen(out), LOG_LINE_MAX);
	cr_assert_eq(count_lines(out), 1);
	cr_assert_str_eq(out + LOG_LINE_MAX - 4, "...\n");
}

Test(log, errno_is_kept)
{
	capture();
	errno = EHOSTUNREACH;
	log_error("x");
	cr_assert_eq(errno, EHOSTUNREACH);
}

/* ---------------------------------------------------------------------- */

Test(log, once_per_state)
{
	static struct log_once once;
	const char *out;

	capture();
	log_init(NULL, LOG_LEVEL_INFO);
	log_once_init(&once);
	/* No bridge at the address, tried again and again: one line. */
	for (int i = 0; i < 5; i++)
		cr_assert_eq(log_once(&once, "tcp://10.0.0.9:7420", 1, LOG_LEVEL_WARN,
				      "no bridge at %s", "tcp://10.0.0.9:7420"),
			     i == 0);
	/* Another address is another key. */
	cr_assert(log_once(&once, "tcp://10.0.0.8:7420", 1, LOG_LEVEL_WARN, "no bridge at .8"));
	/* It answers: one line; it goes again: one more. */
	cr_assert(log_once(&once, "tcp://10.0.0.9:7420", 2, LOG_LEVEL_INFO, "bridge at .9"));
	cr_assert_not(log_once(&once, "tcp://10.0.0.9:7420", 2, LOG_LEVEL_INFO, "bridge at .9"));
	cr_assert(log_once(&once, "tcp://10.0.0.9:7420", 1, LOG_LEVEL_WARN, "no bridge at .9"));
	out = captured();
	cr_assert_eq(count_lines(out), 4, "%s", out);

	/* Forgotten: logged again in the same state. */
	log_once_forget(&once, "tcp://10.0.0.9:7420");
	cr_assert(log_once(&once, "tcp://10.0.0.9:7420", 1, LOG_LEVEL_WARN, "again"));
	cr_assert_not(log_once(&once, "tcp://10.0.0.8:7420", 1, LOG_LEVEL_WARN, "x"),
		      "the other key survives the forget");
	/* A change below the level is remembered but not written. */
	cr_assert(log_once(&once, "tcp://10.0.0.8:7420", 3, LOG_LEVEL_DEBUG, "quiet"));
	cr_assert_not(log_once(&once, "tcp://10.0.0.8:7420", 3, LOG_LEVEL_DEBUG, "quiet"));
	out = captured();
	cr_assert_eq(count_lines(out), 1, "%s", out);
}

Test(log, once_when_full_logs_rather_than_drops)
{
	static struct log_once once;
	char key[32];
	const char *out;

	capture();
	log_init(NULL, LOG_LEVEL_INFO);
	memset(&once, 0, sizeof(once));
	for (int i = 0; i < LOG_ONCE_KEYS; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		cr_assert(log_once(&once, key, 0, LOG_LEVEL_DEBUG, "%s", key));
	}
	cr_assert(log_once(&once, "one-more", 0, LOG_LEVEL_INFO, "one more"));
	cr_assert(log_once(&once, "one-more", 0, LOG_LEVEL_INFO, "one more"), "not remembered");
	cr_assert_not(log_once(&once, "k7", 0, LOG_LEVEL_INFO, "k7"), "the first ones still are");
	out = captured();
	cr_assert_eq(count_lines(out), 2);
}
