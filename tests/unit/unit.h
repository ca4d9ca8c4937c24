/*
 * Helpers for the unit suites: segment names that every test removes again,
 * opening with small geometries, and child processes that report through
 * their exit status (a forked child must never call a Criterion assertion:
 * the runner would count its failure, or its exit, as the parent's).
 */
#ifndef DR_UNIT_H
#define DR_UNIT_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <distreg.h>

#include "testutil.h"

/* Seconds for every unit suite; the slowest test takes well under one. */
#define UNIT_TIMEOUT 30.0

/* Small by default: 64 process slots and 256 reader slots keep a segment of
 * capacity 64 near 90 KiB, and each reap asks 64 locks, not 1024. */
#define UNIT_MAX_PROCS 64u
#define UNIT_MAX_THREADS 256u
/* And few, small lanes: the defaults would add 16 MiB to every segment. */
#define UNIT_MAX_MAILBOXES 8u
#define UNIT_MAX_LANES 8u
#define UNIT_LANE_BYTES 4096u

/* A new segment name, unique to this test, removed again by unit_fini(). */
static inline const char *seg_new(const char *tag)
{
	const char *name = dr_test_seg_new(tag);

	cr_assert_not_null(name, "too many segments in one test");
	return name;
}

/* The suites' .fini: remove whatever segment a test (even a failed one)
 * left behind. Tests also remove their segments themselves at the end. */
static inline void unit_fini(void)
{
	dr_test_segs_unlink();
}

/* /dev/shm/distreg.<segment> */
static inline const char *seg_path(const char *segment)
{
	return dr_test_seg_path(segment);
}

static inline int seg_open_opts(const char *segment, uint32_t capacity,
				dr_registry **out)
{
	struct dr_options o = {
		.segment = segment,
		.capacity = capacity,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = UNIT_MAX_THREADS,
		.max_mailboxes = UNIT_MAX_MAILBOXES,
		.max_lanes = UNIT_MAX_LANES,
		.lane_bytes = UNIT_LANE_BYTES,
	};
	*out = NULL;
	return dr_open(&o, out);
}

/* Open (creating if needed) a segment of 64 names with this mailbox
 * geometry. */
static inline int open_geo(const char *seg, uint32_t max_mailboxes, uint32_t max_lanes,
			   uint32_t lane_bytes, dr_registry **r)
{
	struct dr_options o = {
		.segment = seg,
		.capacity = 64,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = UNIT_MAX_THREADS,
		.max_mailboxes = max_mailboxes,
		.max_lanes = max_lanes,
		.lane_bytes = lane_bytes,
	};
	*r = NULL;
	return dr_open(&o, r);
}

/* Open (creating if needed) with the small geometry; asserts success. */
static inline dr_registry *seg_open(const char *segment, uint32_t capacity)
{
	dr_registry *r = NULL;
	int rc = seg_open_opts(segment, capacity, &r);

	cr_assert_eq(rc, 0, "dr_open(%s): %s", segment, dr_strerror(rc));
	cr_assert_not_null(r);
	return r;
}

/* fn(arg) in a child that exits with its result (testutil.h). */
typedef dr_test_child_fn unit_child_fn;

static inline pid_t spawn(unit_child_fn fn, void *arg)
{
	pid_t pid = dr_test_spawn(fn, arg);

	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	return pid;
}

/* SIGKILL a child and reap it: once this returns, the kernel has let go of
 * everything the child held (its locks, its robust mutexes). */
static inline void kill_reaped(pid_t pid)
{
	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(waitpid(pid, NULL, 0), pid);
}

/* Wait for a child: its exit status, or 128 + the signal that killed it. */
static inline int wait_child(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Read one byte from fd, retrying on EINTR: 1 read, 0 end of file, <0. */
static inline int read_byte(int fd, char *c)
{
	ssize_t n;

	do
		n = read(fd, c, 1);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : (int)n;
}

static inline int write_byte(int fd, char c)
{
	ssize_t n;

	do
		n = write(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* Read one byte within ms milliseconds: 1 read, 0 end of file (the writer
 * is gone), -ETIMEDOUT, or another negative errno. */
static inline int read_byte_within(int fd, char *c, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int rc;

	do
		rc = poll(&p, 1, ms);
	while (rc < 0 && errno == EINTR);
	if (rc < 0)
		return -errno;
	if (rc == 0)
		return -ETIMEDOUT;
	return read_byte(fd, c);
}

/* How long a test waits for a child's next step. */
#define WAIT_MS 10000

/* A child's pipes to and from the test process. */
struct link {
	int up[2];   /* child -> parent */
	int down[2]; /* parent -> child */
};

static inline void link_init(struct link *l)
{
	cr_assert_eq(pipe(l->up), 0);
	cr_assert_eq(pipe(l->down), 0);
}

static inline void link_close(struct link *l)
{
	close(l->up[0]);
	close(l->up[1]);
	close(l->down[0]);
	close(l->down[1]);
}

/* The parent's side: the next byte from the child, which must be want. */
static inline void expect_byte(struct link *l, char want, pid_t pid, const char *what)
{
	char c = 0;
	int rc = read_byte_within(l->up[0], &c, WAIT_MS);

	cr_assert(rc == 1 && c == want, "%s: child sent %d '%c', want '%c' (child status %d)", what,
		  rc, c, want, rc == 1 ? -1 : wait_child(pid));
}

/*
 * Wait up to ms milliseconds for child pid to stop (a crash point in stop
 * mode raises SIGSTOP). 0 once stopped; if it ended instead, its status as
 * wait_child() gives it, plus 1000; -ETIMEDOUT.
 */
static inline int wait_stopped(pid_t pid, int ms)
{
	for (int waited = 0; waited <= ms; waited++) {
		int st;
		pid_t w = waitpid(pid, &st, WUNTRACED | WNOHANG);

		if (w == pid && WIFSTOPPED(st))
			return 0;
		if (w == pid)
			return 1000 + (WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
		if (w < 0 && errno != EINTR)
			return -errno;
		usleep(1000);
	}
	return -ETIMEDOUT;
}

/* In a child of a test linked with the crash-point library (distreg_crash):
 * arm the point for this process only. mode: "kill", "stop" or "sleep:<ms>". */
static inline void crash_arm(const char *point, const char *mode, int skip)
{
	char buf[16];

	snprintf(buf, sizeof(buf), "%d", skip);
	setenv("DISTREG_CRASH_AT", point, 1);
	setenv("DISTREG_CRASH_MODE", mode, 1);
	setenv("DISTREG_CRASH_SKIP", buf, 1);
}

#endif
