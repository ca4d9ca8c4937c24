/*
 * test_chaos.c - global workers under random membership changes: four
 * hosts (bridges on ipc://), a factory of kind "echo" on each, and random
 * steps: a bridge killed (SIGKILL), stopped (SIGTERM: it leaves), frozen
 * past down-after (SIGSTOP, then SIGCONT: to the others a partition of that
 * host), brought back; and new workers started from a random host. After
 * every step, once the running bridges' views agree:
 *   - no name has two instances on hosts whose bridge runs;
 *   - every worker started and acknowledged, whose instance is on a host
 *     whose bridge runs, answers a call from a random running host, from
 *     its owner (it may have moved there);
 * and at the end, every bridge back: every worker, one instance each, on
 * its owner, answering. Factories never die: a bridge takes no workers
 * with it. All along, a process on host 0 keeps 16 asynchronous calls in
 * flight to the workers started so far: every call gets exactly one
 * answer within its timeout, and its status is 0 or one the header
 * documents for a host or bridge that is away (-ENOENT, -ENOTCONN,
 * -EHOSTUNREACH, -ETIMEDOUT).
 *
 * DISTREG_CHAOS_STEPS (default 12, the CI's short run; the soak suite runs
 * 100) and DISTREG_CHAOS_SEED (default: the pid; printed) pick the run.
 */
#include <signal.h>
#include <sys/mman.h>

#include "cluster.h"

TestSuite(chaos, .timeout = 1800);

#define NH 4
#define PER_START 8
#define MAXW 1024

static struct cl c;
/* Shared with the calling process: the names started so far. */
struct chaos_names {
	char v[MAXW][16];
	volatile int n;
	volatile int stop, done;
	long calls, ok, enoent, enotconn, ehostunreach, etimedout, other;
	int other_err;
};
static struct chaos_names *sh;
#define names_v (sh->v)
#define nnames (sh->n)

static uint64_t seed, seed0; /* the generator's state, and where it began */

static unsigned rnd(unsigned n)
{
	seed ^= seed << 13;
	seed ^= seed >> 7;
	seed ^= seed << 17;
	return (unsigned)(seed % n);
}

static int running(void)
{
	int n = 0;

	for (int i = 0; i < NH; i++)
		n += c.h[i].pid != 0;
	return n;
}

static int pick(bool want_running)
{
	int k = rnd(NH);

	for (int t = 0; t < NH; t++, k = (k + 1) % NH)
		if ((c.h[k].pid != 0) == want_running)
			return k;
	return -1;
}

/* Hosts with a running bridge that serve name; the last one in *where. */
static int live_instances(const char *name, int *where)
{
	int n = 0;

	for (int i = 0; i < NH; i++) {
		if (c.h[i].pid && cl_serves(&c, i, name)) {
			n++;
			*where = i;
		}
	}
	return n;
}

/* What is wrong now with worker k, or NULL. */
static const char *problem(int k, char *why, size_t len)
{
	const char *name = names_v[k];
	int where = -1, n = live_instances(name, &where), from = pick(true), owner;
	char reply[256], want[320];
	size_t rl = sizeof(reply) - 1;
	int rc;

	if (n > 1) {
		snprintf(why, len, "%.15s: %d live instances", name, n);
		return why;
	}
	if (n == 0)
		return NULL; /* on a host whose bridge is down: not reachable now */
	owner = cl_owner(&c, from, name);
	if (owner != where) {
		snprintf(why, len, "%.15s: on %s, owner %s", name, c.h[where].id,
			 owner >= 0 ? c.h[owner].id : "?");
		return why;
	}
	rc = dr_call_global(cl_reg(&c, from), name, "ping", 4, reply, &rl, 3000);
	if (rc) {
		/* From the host it is on, without a bridge on the way: is it
		 * the worker that does not answer, or the way there? */
		int local;

		rl = sizeof(reply) - 1;
		local = dr_call_global(cl_reg(&c, where), name, "ping", 4, reply, &rl, 1000);
		snprintf(why, len, "%.15s: call from %s: %s (from %s, where it is: %s)", name,
			 c.h[from].id, dr_strerror(rc), c.h[where].id, dr_strerror(local));
		return why;
	}
	reply[rl] = 0;
	snprintf(want, sizeof(want), "%s|%.15s|ping", c.h[where].id, name);
	if (strcmp(reply, want) != 0) {
		snprintf(why, len, "%.15s: answered '%.255s', want '%.299s'", name, reply, want);
		return why;
	}
	return NULL;
}

/* Wait until the running bridges agree and every worker is in order. */
static void settle(const char *after, int step)
{
	double deadline;
	char why[1024];
	const char *p = NULL;

	cl_wait_converged(&c, after);
	deadline = cl_now() + 20;
	for (;;) {
		p = NULL;
		for (int k = 0; k < nnames && !p; k++)
			p = problem(k, why, sizeof(why));
		if (!p)
			return;
		cr_assert_lt(cl_now(), deadline, "step %d (%s), seed %llu: %s, 20 s after the views "
			     "agreed", step, after, (unsigned long long)seed0, p);
		cl_sleep_ms(50);
	}
}

static void start_some(int step)
{
	int from = pick(true);

	for (int j = 0; j < PER_START && nnames < MAXW; j++) {
		struct dr_started st;
		int rc;

		snprintf(names_v[nnames], sizeof(names_v[0]), "ch.%d", nnames);
		rc = dr_start(cl_reg(&c, from), names_v[nnames], "echo", NULL, 0, &st, 5000);
		cr_assert_eq(rc, 0, "step %d, seed %llu: start %s from %s: %s\n%s", step,
			     (unsigned long long)seed0, names_v[nnames], c.h[from].id,
			     dr_strerror(rc), cl_log_tail(&c, from));
		nnames++;
	}
}

static void tally(int status)
{
	switch (status) {
	case 0: sh->ok++; break;
	case -ENOENT: sh->enoent++; break;
	case -ENOTCONN: sh->enotconn++; break;
	case -EHOSTUNREACH: sh->ehostunreach++; break;
	case -ETIMEDOUT: sh->etimedout++; break;
	default: sh->other++; sh->other_err = status; break;
	}
}

/* The calls all along (see the top): counts by status; 11 if an answer
 * does not come within 5 s of a call with a 3 s timeout, 12 if one comes
 * for no call in flight. */
static int chaos_caller(void *arg)
{
	struct dr_options o = { .segment = c.h[0].seg };
	uint64_t ids[16];
	int inflight = 0, k = 0;
	dr_registry *r;
	dr_mailbox *mb;

	(void)arg;
	if (dr_open(&o, &r) || dr_mailbox_open(r, &mb))
		return 10;
	while (!sh->stop || inflight) {
		struct dr_msg m;
		int rc, i;

		while (!sh->stop && inflight < 16 && sh->n > 0) {
			k = (k + 1) % sh->n;
			sh->calls++;
			rc = dr_call_async_global(mb, sh->v[k], "ping", 4, 3000, &ids[inflight]);
			if (rc == 0) {
				inflight++;
				continue;
			}
			tally(rc);
			cl_sleep_ms(1);
		}
		if (!inflight) {
			cl_sleep_ms(5);
			continue;
		}
		if (dr_recv(mb, &m, 5000))
			return 11;
		if (m.kind != DR_MSG_REPLY)
			continue;
		for (i = 0; i < inflight && ids[i] != m.call_id; i++)
			;
		if (i == inflight)
			return 12;
		ids[i] = ids[--inflight];
		tally(m.status);
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

Test(chaos, random_joins_leaves_kills_and_freezes_under_starts_and_calls)
{
	struct counters *cnt = counters_new();
	const char *env = getenv("DISTREG_CHAOS_STEPS"), *senv = getenv("DISTREG_CHAOS_SEED");
	int steps = env ? atoi(env) : 12, counts[5] = { 0 };
	pid_t fpids[NH];
	static const char *const what[] = { "kill", "leave", "freeze", "back", "start" };

	pid_t caller;
	int status;

	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(sh, MAP_FAILED);
	memset(sh, 0, sizeof(*sh));
	seed = seed0 = senv ? strtoull(senv, NULL, 10) : (uint64_t)getpid() * 2654435761u + 1;
	cr_log_info("chaos: %d steps, DISTREG_CHAOS_SEED=%llu", steps, (unsigned long long)seed);
	cl_init(&c, NH, "ch", false);
	c.seed_all = true;
	cl_start_all(&c);
	cl_wait_converged(&c, "start");
	for (int i = 0; i < NH; i++)
		fpids[i] = worker_spawn(&c, i, NULL, 0, cnt, "echo");
	start_some(0);
	settle("the first starts", 0);
	caller = dr_test_spawn(chaos_caller, NULL);
	cr_assert_gt(caller, 0);
	for (int step = 1; step <= steps; step++) {
		int kind = rnd(5), i = -1;

		/* At least two bridges keep running; a stopped one comes back. */
		if ((kind <= 2 && running() <= 2) || (kind == 3 && running() == NH))
			kind = 4;
		switch (kind) {
		case 0:
			i = pick(true);
			cl_stop(&c, i, SIGKILL);
			break;
		case 1:
			i = pick(true);
			cl_stop(&c, i, SIGTERM);
			break;
		case 2:
			i = pick(true);
			kill(c.h[i].pid, SIGSTOP);
			for (int j = 0; j < NH; j++)
				if (j != i && c.h[j].pid)
					cl_wait_state(&c, j, i, DR_HOST_DOWN, 10000);
			kill(c.h[i].pid, SIGCONT);
			break;
		case 3:
			i = pick(false);
			cl_start(&c, i);
			break;
		default:
			start_some(step);
			break;
		}
		counts[kind]++;
		cr_log_info("chaos: step %d: %s%s%s (%d bridges run, %d workers)", step, what[kind],
			    kind <= 3 ? " " : "", kind <= 3 ? c.h[i].id : "", running(), nnames);
		settle(what[kind], step);
	}
	/* Everyone back: every worker, once, on its owner. */
	for (int i = 0; i < NH; i++)
		if (!c.h[i].pid)
			cl_start(&c, i);
	settle("all back", steps + 1);
	sh->stop = 1;
	cr_assert_eq(waitpid(caller, &status, 0), caller);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		  "the caller: %d (11: a call got no answer within 5 s; 12: an answer for no "
		  "call)", status);
	cr_log_info("chaos: %ld calls all along: %ld answered, %ld -ENOENT, %ld -ENOTCONN, "
		    "%ld -EHOSTUNREACH, %ld -ETIMEDOUT, %ld other", sh->calls, sh->ok, sh->enoent,
		    sh->enotconn, sh->ehostunreach, sh->etimedout, sh->other);
	cr_assert_eq(sh->other, 0, "a call got %s", dr_strerror(sh->other_err));
	cr_assert_gt(sh->ok, 0);
	for (int k = 0; k < nnames; k++) {
		int where = -1;

		cr_assert_eq(live_instances(names_v[k], &where), 1, "%s lost", names_v[k]);
	}
	cr_log_info("chaos: %d kills, %d leaves, %d freezes, %d returns, %d start rounds; %d "
		    "workers, all placed once", counts[0], counts[1], counts[2], counts[3],
		    counts[4], nnames);
	for (int i = 0; i < NH; i++)
		reap_child(fpids[i]);
	cl_fini(&c);
}
