/*
 * Helpers for the stress suite: iteration counts for the short (CI) and full
 * modes, segment names every test removes again, child processes that
 * report through shared memory and their exit status, a barrier that
 * releases processes at once, and self-checking values.
 *
 * A forked child never calls a Criterion assertion (the runner would count
 * its failure, or its exit, as the parent's): it writes one message into a
 * shared report and _exit()s with a nonzero status, and the parent asserts.
 * Every wait is bounded, so a hung or dead participant fails a test instead
 * of stalling the suite.
 */
#ifndef DR_STRESS_H
#define DR_STRESS_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <distreg.h>

#include "testutil.h"

/* Seconds for every stress suite. The slowest test takes about 100 s in
 * full mode on 2 cores; meson's timeout (900 s) is the backstop. */
#define STRESS_TIMEOUT 600.0

/* Small process tables: every reap and every liveness walk asks one lock
 * per slot, and 64 slots are enough for the most processes a test runs
 * (17 in test_create). */
#define STRESS_MAX_PROCS 64u
#define STRESS_MAX_THREADS 256u

/* Bounded waits: the longest a healthy step of any test takes is well under
 * a second; these only decide how long a broken one hangs. */
#define STRESS_WAIT_S 60.0

/* ---------------------------------------------------------------------- */
/* Modes */

/* DISTREG_STRESS_SHORT set (CI sets it): iteration counts sized for the
 * whole suite to finish in under 3 minutes on 2 cores. */
static inline bool stress_short(void)
{
	return getenv("DISTREG_STRESS_SHORT") != NULL;
}

/*
 * The count for a test's main loop: full or short by mode, unless
 * DISTREG_STRESS_ITERATIONS (meson option stress_iterations) overrides it.
 */
static inline unsigned stress_iters(unsigned full, unsigned short_mode)
{
	const char *s = getenv("DISTREG_STRESS_ITERATIONS");
	long n = s ? strtol(s, NULL, 10) : 0;

	if (n > 0)
		return (unsigned)n;
	return stress_short() ? short_mode : full;
}

static inline double stress_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void stress_sleep_us(unsigned us)
{
	struct timespec ts = { us / 1000000u, (long)(us % 1000000u) * 1000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* splitmix64: a tiny generator, one per process or thread. */
static inline uint64_t stress_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static inline uint64_t stress_seed(uint64_t salt)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^
	       ((uint64_t)ts.tv_sec << 20) ^ (salt * 0x9e3779b97f4a7c15ull);
}

/* ---------------------------------------------------------------------- */
/* Segments */

/* A new segment name, unique to this test, removed by stress_fini(). */
static inline const char *seg_new(const char *tag)
{
	const char *name = dr_test_seg_new(tag);

	cr_assert_not_null(name, "too many segments in one test");
	return name;
}

/* /dev/shm/distreg.<segment>, in a static buffer. */
static inline const char *seg_path_of(const char *segment)
{
	return dr_test_seg_path(segment);
}

/* Have stress_fini() remove a segment whose name the test made itself. */
static inline void seg_track(const char *segment)
{
	struct dr_test_segs *s = dr_test_segs();

	cr_assert_lt(s->n, DR_TEST_MAX_SEGS, "too many segments in one test");
	snprintf(s->name[s->n++], sizeof(s->name[0]), "%s", segment);
}

/*
 * Names of temporary files that creators of segment left in /dev/shm
 * (distreg.<segment>.tmp.*). With rm, remove them too. Returns how many
 * there were.
 */
static inline int seg_tmp_files(const char *segment, bool rm)
{
	char prefix[DR_SEGMENT_MAX + 32], path[DR_SEGMENT_MAX + 320];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(prefix, sizeof(prefix), "distreg.%s.tmp.", segment);
	d = opendir("/dev/shm");
	if (!d)
		return 0;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
			continue;
		n++;
		if (rm) {
			snprintf(path, sizeof(path), "/dev/shm/%s", de->d_name);
			unlink(path);
		}
	}
	closedir(d);
	return n;
}

/* The suites' .fini: remove whatever a test (even a failed one) left. */
static inline void stress_fini(void)
{
	struct dr_test_segs *s = dr_test_segs();

	for (int i = 0; i < s->n; i++)
		(void)seg_tmp_files(s->name[i], true);
	dr_test_segs_unlink();
}

static inline int stress_open_opts(const char *segment, uint32_t capacity, uint32_t max_threads,
				   dr_registry **out)
{
	struct dr_options o = {
		.segment = segment,
		.capacity = capacity,
		.max_procs = STRESS_MAX_PROCS,
		.max_threads = max_threads ? max_threads : STRESS_MAX_THREADS,
		.max_lanes = 16, /* the default would add 16 MiB to every segment */
	};
	*out = NULL;
	return dr_open(&o, out);
}

/* ---------------------------------------------------------------------- */
/* Shared memory and reports from children */

/* Zeroed memory shared with every child forked afterwards. */
static inline void *stress_shared(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(p, MAP_FAILED, "mmap: %s", strerror(errno));
	return p;
}

/* The first failure any child reports, and how many reported one. */
struct stress_report {
	int nfail;
	int claimed;
	char msg[512];
};

__attribute__((format(printf, 2, 3)))
static inline void stress_note(struct stress_report *rep, const char *fmt, ...)
{
	va_list ap;

	if (__atomic_fetch_add(&rep->nfail, 1, __ATOMIC_ACQ_REL) == 0 &&
	    __atomic_exchange_n(&rep->claimed, 1, __ATOMIC_ACQ_REL) == 0) {
		int n = snprintf(rep->msg, sizeof(rep->msg), "[pid %d] ", (int)getpid());
		va_start(ap, fmt);
		vsnprintf(rep->msg + n, sizeof(rep->msg) - (size_t)n, fmt, ap);
		va_end(ap);
	}
}

/* Note a failure and end the child. */
#define CHILD_FAIL(rep, ...)                                                                       \
	do {                                                                                       \
		stress_note((rep), __VA_ARGS__);                                                   \
		_exit(1);                                                                          \
	} while (0)

/* The parent's view: no child reported anything. */
#define ASSERT_REPORT_CLEAN(rep)                                                                   \
	cr_assert_eq((rep)->nfail, 0, "%d failure(s) reported by children, first: %s",           \
		     (rep)->nfail, (rep)->msg)

/* fn(arg) in a child that exits with its result (testutil.h). */
typedef dr_test_child_fn stress_child_fn;

static inline pid_t stress_spawn(stress_child_fn fn, void *arg)
{
	pid_t pid = dr_test_spawn(fn, arg);

	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	return pid;
}

/* Exit status of a waitpid() status word, or 128 + the killing signal. */
static inline int stress_status(int st)
{
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Wait up to timeout_s for a child; if it has not ended by then, kill it
 * with SIGKILL and return -ETIMEDOUT. Else its status as stress_status().
 */
static inline int stress_wait(pid_t pid, double timeout_s)
{
	double deadline = stress_now() + timeout_s;
	unsigned nap = 50;
	int st;

	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			return stress_status(st);
		if (w < 0 && errno != EINTR)
			return -errno;
		if (stress_now() >= deadline) {
			kill(pid, SIGKILL);
			while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
				;
			return -ETIMEDOUT;
		}
		stress_sleep_us(nap);
		if (nap < 5000)
			nap *= 2;
	}
}

/* Wait for every child in pids[0..n); asserts each exited with status 0. */
static inline void stress_wait_all(const pid_t *pids, int n, double timeout_s,
				   const struct stress_report *rep)
{
	double deadline = stress_now() + timeout_s;

	for (int i = 0; i < n; i++) {
		double left = deadline - stress_now();
		int st = stress_wait(pids[i], left > 0.1 ? left : 0.1);

		cr_assert_eq(st, 0, "child %d (pid %d) ended with %d%s; first report: %s", i,
			     (int)pids[i], st, st == -ETIMEDOUT ? " (timed out, killed)" : "",
			     rep ? rep->msg : "");
	}
}

/* ---------------------------------------------------------------------- */
/* A barrier for processes (or threads), in shared memory */

/*
 * n participants; the last to arrive wakes every waiter with one
 * FUTEX_WAKE, so all leave within microseconds of each other. A waiter
 * gives up with -ECANCELED as soon as any process has noted a failure in
 * rep (the failing one exits and will never arrive), and with -ETIMEDOUT
 * after timeout_s (a participant died silently).
 */
struct stress_barrier {
	uint32_t n;
	uint32_t count;
	uint32_t gen;
	const struct stress_report *rep;
};

static inline void stress_barrier_init(struct stress_barrier *b, uint32_t n,
				       const struct stress_report *rep)
{
	b->n = n;
	b->count = 0;
	b->gen = 0;
	b->rep = rep;
}

static inline int stress_barrier_wait(struct stress_barrier *b, double timeout_s)
{
	uint32_t gen = __atomic_load_n(&b->gen, __ATOMIC_ACQUIRE);
	double deadline;

	if (__atomic_add_fetch(&b->count, 1, __ATOMIC_ACQ_REL) == b->n) {
		__atomic_store_n(&b->count, 0, __ATOMIC_RELAXED);
		__atomic_add_fetch(&b->gen, 1, __ATOMIC_RELEASE);
		syscall(SYS_futex, &b->gen, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
		return 0;
	}
	deadline = stress_now() + timeout_s;
	while (__atomic_load_n(&b->gen, __ATOMIC_ACQUIRE) == gen) {
		double left = deadline - stress_now();
		struct timespec ts;

		if (b->rep && __atomic_load_n(&b->rep->nfail, __ATOMIC_ACQUIRE) > 0)
			return -ECANCELED;
		if (left <= 0)
			return -ETIMEDOUT;
		if (left > 0.05)
			left = 0.05;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		syscall(SYS_futex, &b->gen, FUTEX_WAIT, gen, &ts, NULL, 0);
	}
	return 0;
}

/* In a child: wait at the barrier or end the child (noting why, unless
 * another process already failed). */
#define CHILD_BARRIER(b, rep, what)                                                                \
	do {                                                                                       \
		int brc_ = stress_barrier_wait((b), STRESS_WAIT_S);                                \
		if (brc_ == -ECANCELED)                                                            \
			_exit(2);                                                                  \
		if (brc_)                                                                          \
			CHILD_FAIL((rep), "barrier %s: %s", (what), strerror(-brc_));             \
	} while (0)

/* In the parent: wait at the barrier or fail the test. */
#define PARENT_BARRIER(b, rep, what)                                                               \
	do {                                                                                       \
		int brc_ = stress_barrier_wait((b), STRESS_WAIT_S);                                \
		cr_assert_eq(brc_, 0, "barrier %s: %s; first report: %s", (what),                 \
			     strerror(-brc_), (rep)->msg);                                         \
	} while (0)

/* ---------------------------------------------------------------------- */
/* Pipes: one-byte messages with a bounded wait */

/* Read one byte within timeout_s: 1 read, 0 end of file (writer gone),
 * -ETIMEDOUT, or another negative errno. */
static inline int stress_read_byte(int fd, char *c, double timeout_s)
{
	double deadline = stress_now() + timeout_s;

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - stress_now();
		int rc;

		if (left <= 0)
			return -ETIMEDOUT;
		rc = poll(&p, 1, (int)(left * 1000) + 1);
		if (rc < 0 && errno != EINTR)
			return -errno;
		if (rc > 0) {
			ssize_t n = read(fd, c, 1);
			if (n >= 0)
				return (int)n;
			if (errno != EINTR && errno != EAGAIN)
				return -errno;
		}
	}
}

static inline int stress_write_byte(int fd, char c)
{
	ssize_t n;

	do
		n = write(fd, &c, 1);
	while (n < 0 && errno == EINTR);
	return n == 1 ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* Self-checking values */

static inline uint64_t stress_fnv(const void *p, size_t len, uint64_t h)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

static inline uint64_t stress_name_hash(const char *name)
{
	return stress_fnv(name, strlen(name), 0xcbf29ce484222325ull);
}

/*
 * A value says whose it is and that it is whole: the hash of the name it was
 * written for, the writer's pid, a tag (thread or worker), a sequence
 * number, and padding derived from all of them, so its length (32 to 64
 * bytes, by seq) varies too; a checksum covers every other byte.
 */
struct stress_value {
	uint64_t name_hash;
	uint32_t pid;
	uint32_t tag;
	uint64_t seq;
	uint64_t sum;
	uint8_t pad[DR_VALUE_MAX - 32];
};

_Static_assert(sizeof(struct stress_value) == DR_VALUE_MAX, "value layout");

static inline size_t stress_value_len(uint64_t seq)
{
	return 32 + (size_t)(seq % (DR_VALUE_MAX - 32 + 1));
}

static inline uint64_t stress_value_sum(const struct stress_value *v, size_t len)
{
	uint64_t h = stress_fnv(v, offsetof(struct stress_value, sum), 0x84222325cbf29ce4ull);

	h = stress_fnv(v->pad, len - 32, h);
	return h ^ (uint64_t)len;
}

/* Fill *v; returns its length. */
static inline size_t stress_value_make(struct stress_value *v, const char *name, pid_t pid,
				       uint32_t tag, uint64_t seq)
{
	size_t len = stress_value_len(seq);

	memset(v, 0, sizeof(*v));
	v->name_hash = stress_name_hash(name);
	v->pid = (uint32_t)pid;
	v->tag = tag;
	v->seq = seq;
	for (size_t i = 0; i < len - 32; i++)
		v->pad[i] = (uint8_t)((seq * 131 + i * 7 + tag) ^ (v->name_hash >> (i % 56)));
	v->sum = stress_value_sum(v, len);
	return len;
}

/*
 * Check what a lookup of name returned: a value written for this very name
 * by the process the entry names, whole. On failure write why into why
 * (at least 160 bytes) and return false. *out gets the decoded value.
 */
static inline bool stress_value_check(const struct dr_entry *e, const char *name,
				      struct stress_value *out, char *why, size_t why_len)
{
	struct stress_value v, want;

	if (e->value_len < 32 || e->value_len > DR_VALUE_MAX) {
		snprintf(why, why_len, "%s: value length %zu out of range", name, e->value_len);
		return false;
	}
	memset(&v, 0, sizeof(v));
	memcpy(&v, e->value, e->value_len);
	if (v.name_hash != stress_name_hash(name)) {
		snprintf(why, why_len, "%s: value written for another name (hash %#llx, pid %u, seq %llu)",
			 name, (unsigned long long)v.name_hash, v.pid, (unsigned long long)v.seq);
		return false;
	}
	if (stress_value_len(v.seq) != e->value_len ||
	    stress_value_make(&want, name, (pid_t)v.pid, v.tag, v.seq) != e->value_len ||
	    memcmp(&want, e->value, e->value_len) != 0 || stress_value_sum(&v, e->value_len) != v.sum) {
		snprintf(why, why_len, "%s: torn value (len %zu, seq %llu, pid %u, tag %u)", name,
			 e->value_len, (unsigned long long)v.seq, v.pid, v.tag);
		return false;
	}
	if ((pid_t)v.pid != e->pid) {
		snprintf(why, why_len, "%s: value written by pid %u but entry owned by pid %d", name,
			 v.pid, (int)e->pid);
		return false;
	}
	if (e->regid == 0) {
		snprintf(why, why_len, "%s: regid 0", name);
		return false;
	}
	if (out)
		*out = v;
	return true;
}

#endif
