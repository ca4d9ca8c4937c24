/*
 * test_threads.c - many threads of one process.
 *
 * 16 threads hammer one pool of names with the checked random mix
 * (mixer.h): 4 through handles of their own, which know exactly what they
 * hold, and 12 through one shared handle.
 *
 * Thread exit gives the reader slot back: on a segment of 64 reader slots,
 * 5000 short-lived threads, up to 16 at a time, each look a name up once or
 * register and unregister a name of their own: none may fail with -EUSERS
 * (or anything else), and once they are gone only the main thread holds a
 * slot and everything they unregistered is reclaimable.
 */
#include <pthread.h>

#include "mixer.h"

TestSuite(threads, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define NNAMES 500
#define CAPACITY 65536
#define NTHREADS 16
#define NOWN 4

Test(threads, sixteen_threads_hammer_one_pool)
{
	const char *seg = seg_new("thr16");
	struct stress_report rep = { 0 };
	struct mixer *m = calloc(NTHREADS, sizeof(*m));
	dr_registry *h[NTHREADS + 1], *r;
	unsigned long found = 0, regs = 0, unregs = 0, eexist = 0;
	struct dr_stats st;
	char msg[256];
	int rc;

	cr_assert_not_null(m);
	for (int i = 0; i <= NOWN; i++) {
		rc = stress_open_opts(seg, CAPACITY, 0, &h[i]);
		cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));
	}
	for (int i = 0; i < NTHREADS; i++) {
		m[i].r = i < NOWN ? h[i] : h[NOWN];
		m[i].prefix = "thr";
		m[i].nnames = NNAMES;
		m[i].id = i;
		m[i].exact = i < NOWN;
		m[i].ntags = NTHREADS;
		m[i].pid_ok = mix_pid_is_self;
		m[i].ops = stress_iters(300000, 20000);
		m[i].rep = &rep;
	}
	mix_threads(m, NTHREADS);
	cr_assert_eq(rep.nfail, 0, "%d thread(s) failed, first: %s", rep.nfail, rep.msg);

	for (int i = 0; i < NTHREADS; i++) {
		found += m[i].counts[0];
		regs += m[i].counts[1];
		unregs += m[i].counts[2];
		eexist += m[i].counts[3];
	}
	cr_log_info("threads: %lu lookups found, %lu registrations, %lu unregistrations, %lu EEXIST",
		    found, regs, unregs, eexist);
	rc = dr_check(h[0], msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	for (int k = 0; k < NOWN; k++)
		for (int i = 0; i < NNAMES; i++)
			cr_assert(mix_check(&m[k], i, "after join"), "%s", rep.msg);
	for (int i = 0; i <= NOWN; i++)
		dr_close(h[i]);

	rc = stress_open_opts(seg, CAPACITY, 0, &r);
	cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live + st.dead, 0, "%u names left after every handle closed", st.live + st.dead);
	cr_assert_eq(st.free_entries, CAPACITY, "%u of %u entries free", st.free_entries, CAPACITY);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	dr_close(r);
	free(m);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */

#define SLOTS 64
#define SHORT_CAPACITY 64
#define WAVE 16

struct brief {
	dr_registry *r;
	unsigned n;
	int rc;          /* the first error */
	char what[64];
};

static void *brief_thread(void *p)
{
	struct brief *b = p;
	struct dr_entry e;
	char name[48];
	int rc;

	if (b->n % 2 == 0) {
		rc = dr_whereis(b->r, "main", &e);
		if (rc) {
			b->rc = rc;
			snprintf(b->what, sizeof(b->what), "whereis main");
		} else if (e.pid != getpid()) {
			b->rc = -EBADMSG;
			snprintf(b->what, sizeof(b->what), "whereis main: pid %d", (int)e.pid);
		}
		return NULL;
	}
	snprintf(name, sizeof(name), "brief.%u", b->n);
	rc = dr_register(b->r, name, "t", 1);
	if (rc) {
		b->rc = rc;
		snprintf(b->what, sizeof(b->what), "register %s", name);
		return NULL;
	}
	rc = dr_unregister(b->r, name);
	if (rc) {
		b->rc = rc;
		snprintf(b->what, sizeof(b->what), "unregister %s", name);
	}
	return NULL;
}

Test(threads, exited_threads_give_reader_slots_back)
{
	const char *seg = seg_new("thrslots");
	unsigned total = stress_iters(5000, 5000);
	struct brief b[WAVE];
	pthread_t tid[WAVE];
	struct dr_stats st;
	dr_registry *r;
	char msg[256];
	int rc;

	rc = stress_open_opts(seg, SHORT_CAPACITY, SLOTS, &r);
	cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));
	cr_assert_eq(dr_register(r, "main", "m", 1), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.max_threads, SLOTS);

	for (unsigned done = 0; done < total;) {
		unsigned n = total - done < WAVE ? total - done : WAVE;

		for (unsigned i = 0; i < n; i++) {
			b[i] = (struct brief){ .r = r, .n = done + i };
			cr_assert_eq(pthread_create(&tid[i], NULL, brief_thread, &b[i]), 0);
		}
		for (unsigned i = 0; i < n; i++) {
			cr_assert_eq(pthread_join(tid[i], NULL), 0);
			cr_assert_eq(b[i].rc, 0, "thread %u of %u: %s: %s", b[i].n + 1, total, b[i].what,
				     dr_strerror(b[i].rc));
		}
		done += n;
	}

	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.readers, 1, "%u reader slots held after %u threads exited, want 1 (main)",
		     st.readers, total);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(st.free_entries, SHORT_CAPACITY - 1,
		     "%u of %u entries free (retired %u, inflight %u)", st.free_entries,
		     SHORT_CAPACITY - 1, st.retired, st.inflight);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}
