/*
 * test_pidreuse.c - a process registers names and dies; the test then forks
 * short-lived processes until one gets the dead process's pid and keeps
 * that one alive, outside the registry. The dead process's names must still
 * be treated as dead: liveness is the kernel's lock on the process slot,
 * not the pid. An observer that attached before the death (so its own
 * dr_open() reaped nothing) sees them as dead in dr_stats() and
 * dr_foreach(), takes one over with dr_register(), and reaps the rest.
 *
 * Reaching a given pid again means cycling through the whole pid space; if
 * that takes more than 40000 forks or 20 s (a large pid_max, or a busy
 * host), the test is skipped rather than failed.
 */
#include <sched.h>

#include "stress.h"

TestSuite(pidreuse, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define NX 8
#define CAPACITY 64
#define MAX_FORKS 40000
#define MAX_SECONDS 20.0
/* Other processes and threads on the host take pids too: runs of 10 taken
 * between two of our forks were seen. */
#define REAL_WINDOW 256

struct pr {
	struct stress_report rep;
	const char *segment;
	pid_t x_pid;
	int rd[2], wr[2];  /* observer: commands in, answers out */
	int hold[2];       /* the impostor waits on this */
};

static int x_child(void *arg)
{
	struct pr *s = arg;
	struct stress_value v;
	dr_registry *r;
	char name[32];
	int rc = stress_open_opts(s->segment, CAPACITY, 0, &r);

	if (rc)
		CHILD_FAIL(&s->rep, "X: dr_open: %s", dr_strerror(rc));
	for (int i = 0; i < NX; i++) {
		snprintf(name, sizeof(name), "x.%d", i);
		rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), 7, (uint64_t)i));
		if (rc)
			CHILD_FAIL(&s->rep, "X: register %s: %s", name, dr_strerror(rc));
	}
	if (stress_write_byte(s->wr[1], 'x'))
		CHILD_FAIL(&s->rep, "X: write");
	for (;;)
		pause(); /* SIGKILLed by the parent; dies with it otherwise */
}

struct walk {
	pid_t x_pid;
	int n, bad;
};

static int walk_fn(const struct dr_name_info *info, void *arg)
{
	struct walk *w = arg;

	w->n++;
	if (info->alive || info->entry.pid != w->x_pid || info->name_len < 3 ||
	    memcmp(info->name, "x.", 2) != 0)
		w->bad++;
	return 0;
}

#define O_CHECK(cond, ...)                                                                         \
	do {                                                                                       \
		if (!(cond))                                                                       \
			CHILD_FAIL(&s->rep, __VA_ARGS__);                                          \
	} while (0)

static int observer(void *arg)
{
	struct pr *s = arg;
	struct walk w = { 0 };
	struct stress_value v;
	struct dr_stats st;
	struct dr_entry e;
	dr_registry *r;
	char c = 0, msg[256];
	unsigned n = 0;
	int rc = stress_open_opts(s->segment, CAPACITY, 0, &r);

	O_CHECK(rc == 0, "O: dr_open: %s", dr_strerror(rc));
	O_CHECK(stress_write_byte(s->wr[1], 'r') == 0, "O: write");
	rc = stress_read_byte(s->rd[0], &c, STRESS_TIMEOUT);
	O_CHECK(rc == 1 && c == 'c', "O: waiting for the parent: %d", rc);
	w.x_pid = s->x_pid;
	/* The pid is in use again, by a process that never attached. */
	O_CHECK(kill(s->x_pid, 0) == 0, "O: impostor %d not alive", (int)s->x_pid);

	rc = dr_stats(r, &st);
	O_CHECK(rc == 0, "O: dr_stats: %s", dr_strerror(rc));
	O_CHECK(st.dead == NX && st.live == 0,
		"O: with pid %d reused, dr_stats counts %u dead and %u live names, want %d dead",
		(int)s->x_pid, st.dead, st.live, NX);
	O_CHECK(st.procs == 1, "O: %u live processes attached, want 1", st.procs);
	rc = dr_foreach(r, walk_fn, &w);
	O_CHECK(rc == 0 && w.n == NX && w.bad == 0,
		"O: dr_foreach: %d names, %d of them alive or not X's (rc %d)", w.n, w.bad, rc);
	rc = dr_whereis(r, "x.0", &e);
	O_CHECK(rc == 0 && e.pid == s->x_pid, "O: whereis x.0 before reaping: %s pid %d",
		dr_strerror(rc), rc ? 0 : (int)e.pid);

	rc = dr_register(r, "x.0", &v, stress_value_make(&v, "x.0", getpid(), 8, 0));
	O_CHECK(rc == 0, "O: taking over x.0 from dead pid %d (reused): %s", (int)s->x_pid,
		dr_strerror(rc));
	rc = dr_whereis(r, "x.0", &e);
	O_CHECK(rc == 0 && e.pid == getpid(), "O: x.0 after takeover: %s pid %d", dr_strerror(rc),
		rc ? 0 : (int)e.pid);
	rc = dr_unregister(r, "x.1");
	O_CHECK(rc == -ENOENT, "O: unregister dead x.1: %s, want -ENOENT", dr_strerror(rc));
	rc = dr_stats(r, &st);
	O_CHECK(rc == 0 && st.dead == NX - 2 && st.live == 1,
		"O: after takeover: %u dead, %u live, want %d and 1", st.dead, st.live, NX - 2);
	rc = dr_reap(r, &n);
	O_CHECK(rc == 0 && n == NX - 2, "O: dr_reap: %s, reaped %u, want %d", dr_strerror(rc), n,
		NX - 2);
	rc = dr_stats(r, &st);
	O_CHECK(rc == 0 && st.dead == 0 && st.live == 1, "O: after reap: %u dead, %u live",
		st.dead, st.live);
	rc = dr_whereis(r, "x.2", NULL);
	O_CHECK(rc == -ENOENT, "O: x.2 after reap: %s", dr_strerror(rc));
	rc = dr_check(r, msg, sizeof(msg));
	O_CHECK(rc == 0, "O: dr_check: %s", msg);
	dr_close(r);
	return 0;
}

static long pid_max(void)
{
	FILE *f = fopen("/proc/sys/kernel/pid_max", "r");
	long n = 32768;

	if (f) {
		if (fscanf(f, "%ld", &n) != 1)
			n = 32768;
		fclose(f);
	}
	return n;
}

/* The body of a process that only takes a pid: it runs on its own stack in
 * our address space (CLONE_VM) while we wait (CLONE_VFORK). */
static char quick_stack[64 * 1024] __attribute__((aligned(64)));

static int just_exit(void *arg)
{
	(void)arg;
	return 0;
}

/*
 * Fork until a child gets pid target; that child waits on s->hold and the
 * others exit at once. Returns the pid (== target) or 0 if not reached
 * within the bounds; *forks gets the number of forks. Far from the target
 * it uses clone(CLONE_VM | CLONE_VFORK), whose children only exit: on the
 * 2-core test VM that is 23000 processes a second against 1400 for fork(),
 * whose copy of the page tables dominates. (Not vfork(): its child shares
 * our stack frame, and the compiler's spills in it corrupted our locals.) Within a few pids of the target it forks for real,
 * so the child can see its pid and stay.
 */
static pid_t cycle_to(struct pr *s, pid_t target, unsigned *forks)
{
	double deadline = stress_now() + MAX_SECONDS;
	long space = pid_max();
	pid_t last = getpid();

	for (*forks = 0; *forks < MAX_FORKS && stress_now() < deadline; ++*forks) {
		long dist = ((long)target - (long)last + space) % space;
		bool real = dist >= 1 && dist <= REAL_WINDOW;
		pid_t p;

		if (real) {
			p = fork();
			if (p == 0) {
				char c;

				if (getpid() != target)
					_exit(0);
				prctl(PR_SET_PDEATHSIG, SIGKILL);
				(void)stress_read_byte(s->hold[0], &c, STRESS_TIMEOUT);
				_exit(0);
			}
		} else {
			p = clone(just_exit, quick_stack + sizeof(quick_stack),
				  CLONE_VM | CLONE_VFORK | SIGCHLD, NULL);
		}
		if (p < 0) {
			if (errno != EAGAIN)
				return 0;
			stress_sleep_us(1000);
			continue;
		}
		if (p == target && real)
			return p;
		last = p; /* a quick child that got target has exited: go round */
		while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
			;
	}
	return 0;
}

Test(pidreuse, dead_owner_stays_dead_when_its_pid_returns)
{
	struct pr *s = stress_shared(sizeof(*s));
	pid_t o_pid, x_pid, impostor;
	unsigned forks;
	double t0;
	char c = 0;
	int st;

	s->segment = seg_new("pidreuse");
	cr_assert_eq(pipe(s->rd), 0);
	cr_assert_eq(pipe(s->wr), 0);
	cr_assert_eq(pipe(s->hold), 0);
	o_pid = stress_spawn(observer, s);
	st = stress_read_byte(s->wr[0], &c, STRESS_WAIT_S);
	cr_assert(st == 1 && c == 'r', "observer: %d; %s", st, s->rep.msg);

	x_pid = stress_spawn(x_child, s);
	st = stress_read_byte(s->wr[0], &c, STRESS_WAIT_S);
	cr_assert(st == 1 && c == 'x', "X: %d; %s", st, s->rep.msg);
	kill(x_pid, SIGKILL);
	st = stress_wait(x_pid, STRESS_WAIT_S);
	cr_assert_eq(st, 128 + SIGKILL, "X ended with %d", st);
	ASSERT_REPORT_CLEAN(&s->rep);

	t0 = stress_now();
	impostor = cycle_to(s, x_pid, &forks);
	if (!impostor) {
		kill(o_pid, SIGKILL);
		stress_wait(o_pid, STRESS_WAIT_S);
		stress_fini();
		cr_skip_test("pid %d did not come back within %u forks (%.1f s); pid_max too large "
			     "or the host too busy", (int)x_pid, forks, stress_now() - t0);
	}
	cr_log_info("pidreuse: pid %d came back after %u forks in %.1f s", (int)x_pid, forks,
		    stress_now() - t0);

	s->x_pid = x_pid;
	cr_assert_eq(stress_write_byte(s->rd[1], 'c'), 0);
	st = stress_wait(o_pid, STRESS_WAIT_S);
	ASSERT_REPORT_CLEAN(&s->rep);
	cr_assert_eq(st, 0, "observer ended with %d", st);

	cr_assert_eq(stress_write_byte(s->hold[1], 'q'), 0);
	st = stress_wait(impostor, STRESS_WAIT_S);
	cr_assert_eq(st, 0, "impostor ended with %d", st);
	cr_assert_eq(dr_unlink(s->segment), 0);
}
