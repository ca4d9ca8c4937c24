/*
 * Helpers shared by the test suites. Every test uses segment names unique
 * to its process and call, so suites run in parallel and never touch a
 * user's real segment; every name a test takes is recorded, so the suite's
 * .fini removes what a failed test left behind.
 */
#ifndef DR_TESTUTIL_H
#define DR_TESTUTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <distreg.h>

/*
 * "<pid>.<salt>", the salt random per process: what makes the names and
 * paths a test takes (segments, ipc sockets, logs) its own. A pid alone is
 * not enough: pids wrap within one CI run, and a test that failed or was
 * killed leaves its files behind; a segment of the same name was once
 * opened as a later test's own, with its old view.
 */
static inline const char *dr_test_uniq(void)
{
	static char buf[32];
	static pid_t made;

	if (made != getpid()) {
		unsigned salt;
		struct timespec ts;

		if (getrandom(&salt, sizeof(salt), 0) != (ssize_t)sizeof(salt)) {
			clock_gettime(CLOCK_REALTIME, &ts);
			salt = (unsigned)ts.tv_nsec ^ (unsigned)ts.tv_sec;
		}
		made = getpid();
		snprintf(buf, sizeof(buf), "%d.%08x", (int)made, salt);
	}
	return buf;
}

/* Write "t.<tag>.<pid>.<salt>.<n>" into buf (at least 64 bytes) and return
 * buf. */
static inline char *dr_test_segment(char *buf, size_t len, const char *tag)
{
	static unsigned counter;

	snprintf(buf, len, "t.%s.%s.%u", tag, dr_test_uniq(), counter++);
	return buf;
}

#define DR_TEST_MAX_SEGS 512

struct dr_test_segs {
	int n;
	char name[DR_TEST_MAX_SEGS][DR_SEGMENT_MAX + 1];
};

/* Each test runs in a process of its own, so this list is per test. */
static inline struct dr_test_segs *dr_test_segs(void)
{
	static struct dr_test_segs s;
	return &s;
}

/* A new unique segment name, recorded for dr_test_segs_unlink(), in a
 * buffer of DR_SEGMENT_MAX + 1 bytes; NULL when the list is full. */
static inline char *dr_test_seg_new(const char *tag)
{
	struct dr_test_segs *s = dr_test_segs();

	if (s->n == DR_TEST_MAX_SEGS)
		return NULL;
	return dr_test_segment(s->name[s->n++], sizeof(s->name[0]), tag);
}

/* Children dr_test_spawn() made in this process, for dr_test_segs_unlink(). */
#define DR_TEST_MAX_KIDS 1024

struct dr_test_kids {
	int n;
	pid_t pid[DR_TEST_MAX_KIDS];
};

static inline struct dr_test_kids *dr_test_kids(void)
{
	static struct dr_test_kids k;
	return &k;
}

/* Whether pid is a child of ours that still runs (not reaped, not a
 * zombie); never reaps it. */
static inline bool dr_test_kid_running(pid_t pid)
{
	siginfo_t si = { 0 };

	return waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
}

static inline void dr_test_kid_track(pid_t pid)
{
	struct dr_test_kids *k = dr_test_kids();

	if (k->n == DR_TEST_MAX_KIDS) { /* keep those not reaped yet */
		int m = 0;
		siginfo_t si;

		for (int i = 0; i < k->n; i++)
			if (waitid(P_PID, (id_t)k->pid[i], &si, WEXITED | WNOHANG | WNOWAIT) == 0)
				k->pid[m++] = k->pid[i];
		k->n = m;
	}
	if (k->n < DR_TEST_MAX_KIDS)
		k->pid[k->n++] = pid;
}

/*
 * Run fn(arg) in a child and _exit() with its result, so the child never
 * returns into the test runner. The child dies with the test process, so a
 * failed or timed-out test leaves no child behind; one still running when
 * the test's segments are removed is killed first (dr_test_segs_unlink).
 * Returns the pid, or -1 with errno set when fork() failed.
 */
typedef int (*dr_test_child_fn)(void *arg);

static inline pid_t dr_test_spawn(dr_test_child_fn fn, void *arg)
{
	pid_t parent = getpid();
	pid_t pid = fork();

	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(120);
		dr_test_kids()->n = 0; /* the parent's, not ours */
		_exit(fn(arg));
	}
	if (pid > 0)
		dr_test_kid_track(pid);
	return pid;
}

/*
 * Remove every recorded segment (those already gone are no error). A child
 * of the test that still runs (the test failed and left it waiting) is
 * killed and reaped first: it would create a segment again by opening it
 * once this removed it, and leave it behind. Children already ended, or
 * not yet reaped, are left to the test.
 */
static inline void dr_test_segs_unlink(void)
{
	struct dr_test_segs *s = dr_test_segs();
	struct dr_test_kids *k = dr_test_kids();

	for (int i = 0; i < k->n; i++)
		if (dr_test_kid_running(k->pid[i]) && kill(k->pid[i], SIGKILL) == 0)
			(void)waitpid(k->pid[i], NULL, 0);
	k->n = 0;
	for (int i = 0; i < s->n; i++)
		(void)dr_unlink(s->name[i]);
	s->n = 0;
}

/* /dev/shm/distreg.<segment>, in a static buffer. */
static inline const char *dr_test_seg_path(const char *segment)
{
	static char path[DR_SEGMENT_MAX + 64];

	snprintf(path, sizeof(path), "/dev/shm/distreg.%s", segment);
	return path;
}

#endif
