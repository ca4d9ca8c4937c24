/*
 * test_threads.c - one handle shared by the threads of a process: private
 * and shared names registered, looked up and unregistered concurrently.
 */
#include <pthread.h>
#include <sched.h>
#include <time.h>

#include "unit.h"

TestSuite(threads, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

#define MAX_THREADS 32
#define OWN_NAMES 32
#define SHARED_NAMES 16
#define MAX_ROUNDS 1000

struct worker {
	dr_registry *r;
	int id, nthreads, rounds;
	pthread_barrier_t *start;
	int unexpected;          /* errors the contract does not allow here */
	int wrong_value;         /* a lookup returned another name's value */
	char first_error[160];
};

static void note(struct worker *w, int *counter, const char *what, const char *name, int rc)
{
	if ((*counter)++ == 0 && w->first_error[0] == 0)
		snprintf(w->first_error, sizeof(w->first_error), "thread %d: %s %s: %d (%s)",
			 w->id, what, name, rc, dr_strerror(rc));
}

/* Every value starts with its name and a '|', then says who wrote it. */
static size_t make_value(char *v, const char *name, int id, int round)
{
	int n = snprintf(v, DR_VALUE_MAX, "%s|%d.%d", name, id, round);
	return (size_t)n < DR_VALUE_MAX ? (size_t)n : DR_VALUE_MAX - 1;
}

/* The value is whole and one that was written for this name: it parses as
 * "<name>|<id>.<round>" and has exactly the length its writer gave it. */
static int value_belongs(const struct dr_entry *e, const char *name)
{
	char want[DR_VALUE_MAX], got[DR_VALUE_MAX + 1];
	size_t n = strlen(name);
	int id, round;

	if (e->value_len <= n || e->value_len >= sizeof(got) ||
	    memcmp(e->value, name, n) != 0 || e->value[n] != '|')
		return 0;
	memcpy(got, e->value, e->value_len);
	got[e->value_len] = 0;
	if (sscanf(got + n + 1, "%d.%d", &id, &round) != 2 || id < 0 || id >= MAX_THREADS ||
	    round < 0 || round >= MAX_ROUNDS)
		return 0;
	return make_value(want, name, id, round) == e->value_len &&
	       memcmp(want, e->value, e->value_len) == 0;
}

static void *worker_main(void *p)
{
	struct worker *w = p;
	char name[48], val[DR_VALUE_MAX];
	struct dr_entry e;
	pid_t self = getpid();
	int rc;

	pthread_barrier_wait(w->start);
	for (int round = 0; round < w->rounds; round++) {
		/* Own names: every call must succeed. */
		for (int i = 0; i < OWN_NAMES; i++) {
			snprintf(name, sizeof(name), "t%d.own%d", w->id, i);
			rc = dr_register(w->r, name, val, make_value(val, name, w->id, round));
			if (rc)
				note(w, &w->unexpected, "register", name, rc);
		}
		for (int i = 0; i < OWN_NAMES; i++) {
			snprintf(name, sizeof(name), "t%d.own%d", w->id, i);
			rc = dr_whereis(w->r, name, &e);
			if (rc)
				note(w, &w->unexpected, "whereis", name, rc);
			else if (!value_belongs(&e, name) || e.pid != self)
				note(w, &w->wrong_value, "whereis (wrong value)", name, 0);
		}
		/* Shared names and other threads' names: present or not. */
		for (int i = 0; i < SHARED_NAMES; i++) {
			snprintf(name, sizeof(name), "shared%d", (i + w->id) % SHARED_NAMES);
			rc = dr_register(w->r, name, val, make_value(val, name, w->id, round));
			if (rc)
				note(w, &w->unexpected, "register", name, rc);
			snprintf(name, sizeof(name), "shared%d", (i + 3 * w->id) % SHARED_NAMES);
			rc = dr_whereis(w->r, name, &e);
			if (rc && rc != -ENOENT)
				note(w, &w->unexpected, "whereis", name, rc);
			else if (rc == 0 && !value_belongs(&e, name))
				note(w, &w->wrong_value, "whereis (wrong value)", name, 0);
			snprintf(name, sizeof(name), "t%d.own%d", (w->id + 1 + i) % w->nthreads,
				 (i * 7 + round) % OWN_NAMES);
			rc = dr_whereis(w->r, name, &e);
			if (rc && rc != -ENOENT)
				note(w, &w->unexpected, "whereis", name, rc);
			else if (rc == 0 && !value_belongs(&e, name))
				note(w, &w->wrong_value, "whereis (wrong value)", name, 0);
			if ((i + round) % 4 == 0) {
				snprintf(name, sizeof(name), "shared%d", (i + 5 * w->id) % SHARED_NAMES);
				rc = dr_unregister(w->r, name);
				if (rc && rc != -ENOENT)
					note(w, &w->unexpected, "unregister", name, rc);
			}
		}
		for (int i = 0; i < OWN_NAMES; i++) {
			snprintf(name, sizeof(name), "t%d.own%d", w->id, i);
			rc = dr_unregister(w->r, name);
			if (rc)
				note(w, &w->unexpected, "unregister", name, rc);
		}
	}
	return NULL;
}

/* nthreads threads share one handle to a table of 4 entries per live name
 * they can hold at once; each runs `rounds` rounds. */
static void share_one_handle(const char *seg, int nthreads, int rounds)
{
	dr_registry *r = seg_open(seg, 4 * (nthreads * OWN_NAMES + SHARED_NAMES));
	struct worker w[MAX_THREADS];
	pthread_t tid[MAX_THREADS];
	pthread_barrier_t start;
	char name[48], msg[256];
	int rc;

	cr_assert_eq(pthread_barrier_init(&start, NULL, (unsigned)nthreads), 0);
	for (int i = 0; i < nthreads; i++) {
		w[i] = (struct worker){ .r = r, .id = i, .nthreads = nthreads, .rounds = rounds,
					.start = &start };
		cr_assert_eq(pthread_create(&tid[i], NULL, worker_main, &w[i]), 0);
	}
	for (int i = 0; i < nthreads; i++)
		cr_assert_eq(pthread_join(tid[i], NULL), 0);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < nthreads; i++) {
		cr_expect_eq(w[i].unexpected, 0, "%d unexpected errors, first: %s",
			     w[i].unexpected, w[i].first_error);
		cr_expect_eq(w[i].wrong_value, 0, "%d lookups returned another name's value, first: %s",
			     w[i].wrong_value, w[i].first_error);
	}

	/* Quiet again: own names all gone, the table consistent. */
	for (int t = 0; t < nthreads; t++) {
		for (int i = 0; i < OWN_NAMES; i++) {
			snprintf(name, sizeof(name), "t%d.own%d", t, i);
			cr_assert_eq(dr_whereis(r, name, NULL), -ENOENT, "%s left behind", name);
		}
	}
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(threads, eight_threads_share_one_handle)
{
	share_one_handle(seg_new("threads"), 8, MAX_ROUNDS);
}

/*
 * Thirty-two threads on one CPU: a thread is often preempted inside a
 * read-side section for tens of milliseconds, the readers that hold reuse
 * back keep changing, and other threads take what is freed first. None of
 * that is a stalled reader or a full table: every dr_register succeeds.
 * (An allocation used to give up with -EBUSY 50 ms after the readers it
 * first waited for had all left, and with -ENOSPC when it had freed entries
 * that other threads took.)
 */
Test(threads, thirty_two_threads_on_one_cpu)
{
	cpu_set_t one;

	CPU_ZERO(&one);
	CPU_SET(sched_getcpu() < 0 ? 0 : sched_getcpu(), &one);
	cr_assert_eq(sched_setaffinity(0, sizeof(one), &one), 0, "sched_setaffinity: %s",
		     strerror(errno));
	share_one_handle(seg_new("threads32"), 32, 250);
}

#define CHURN_THREADS 4
/* How long the threads churn: the race needs many rounds to show. */
#define CHURN_SECONDS 1.5

struct churner {
	dr_registry *r;
	int id;
	pthread_barrier_t *start;
	const struct timespec *deadline;
	long cycles;
	int nospc, other;
	int first_other;
};

static int before(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < deadline->tv_sec ||
	       (now.tv_sec == deadline->tv_sec && now.tv_nsec < deadline->tv_nsec);
}

static void *churn_main(void *p)
{
	struct churner *c = p;
	char name[16];
	int rc;

	snprintf(name, sizeof(name), "churn%d", c->id);
	pthread_barrier_wait(c->start);
	for (int i = 0; (i & 1023) || before(c->deadline); i++) {
		c->cycles++;
		rc = dr_register(c->r, name, &i, sizeof(i));
		if (rc == 0)
			rc = dr_unregister(c->r, name);
		if (rc == -ENOSPC)
			c->nospc++;
		else if (rc != 0 && c->other++ == 0)
			c->first_other = rc;
	}
	return NULL;
}

/*
 * Regression: threads churning one name each on a table of 64 hold at most
 * 4 live names, yet dr_register() answered -ENOSPC ("capacity live names
 * exist"), at times with all 64 entries RETIRED and none live: its single
 * reclaim pass had collected RETIRED entries that other threads then freed,
 * reused and retired again at a later epoch, so the pass freed nothing, and
 * that was taken for a full table.
 */
Test(threads, concurrent_churn_never_gets_enospc_below_capacity)
{
	const char *seg = seg_new("churn");
	struct dr_options o = { .segment = seg, .capacity = 64, .max_procs = 16,
				.max_threads = 64 };
	dr_registry *r = NULL;
	struct churner c[CHURN_THREADS];
	pthread_t tid[CHURN_THREADS];
	pthread_barrier_t start;
	struct timespec deadline;
	long cycles = 0;
	int nospc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += (time_t)CHURN_SECONDS;
	deadline.tv_nsec += (long)((CHURN_SECONDS - (double)(time_t)CHURN_SECONDS) * 1e9);
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	cr_assert_eq(dr_open(&o, &r), 0);
	cr_assert_eq(pthread_barrier_init(&start, NULL, CHURN_THREADS), 0);
	for (int i = 0; i < CHURN_THREADS; i++) {
		c[i] = (struct churner){ .r = r, .id = i, .start = &start, .deadline = &deadline };
		cr_assert_eq(pthread_create(&tid[i], NULL, churn_main, &c[i]), 0);
	}
	for (int i = 0; i < CHURN_THREADS; i++)
		cr_assert_eq(pthread_join(tid[i], NULL), 0);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < CHURN_THREADS; i++) {
		nospc += c[i].nospc;
		cycles += c[i].cycles;
		cr_expect_eq(c[i].other, 0, "thread %d: %d errors, first %s", i, c[i].other,
			     dr_strerror(c[i].first_other));
	}
	cr_assert_eq(nospc, 0, "%d of %ld registrations got -ENOSPC with at most %d live names of 64",
		     nospc, cycles, CHURN_THREADS);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}
