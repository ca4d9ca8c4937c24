/*
 * test_fill.c - 4 processes fill a table of 20000 entries with 24000
 * distinct names at once: exactly 20000 registrations succeed and every
 * other one fails with -ENOSPC. They drain it and fill it again, which
 * needs every unregistered entry reclaimed, for several cycles; at the end
 * the table is consistent and, once reaped, every entry is free.
 */
#include "stress.h"

TestSuite(fill, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define CAPACITY 20000
#define NPROC 4
#define PER_PROC 6000 /* 24000 attempts for 20000 entries */

struct fill {
	struct stress_report rep;
	struct stress_barrier bar; /* NPROC children and the parent */
	const char *segment;
	unsigned cycles;
	pid_t pids[NPROC];
	uint8_t ok[NPROC][PER_PROC];    /* this cycle's registration succeeded */
	unsigned nok[NPROC];
	unsigned first_fail[NPROC];     /* index of the first -ENOSPC */
};

static void name_of(char *buf, size_t len, unsigned cycle, int p, int i)
{
	snprintf(buf, len, "fill.c%u.p%d.%05d", cycle, p, i);
}

static int child_id;

static int filler(void *arg)
{
	struct fill *s = arg;
	int id = child_id, rc;
	struct stress_value v;
	dr_registry *r;
	char name[64];

	rc = stress_open_opts(s->segment, CAPACITY, 0, &r);
	if (rc)
		CHILD_FAIL(&s->rep, "dr_open: %s", dr_strerror(rc));
	for (unsigned c = 0; c < s->cycles; c++) {
		CHILD_BARRIER(&s->bar, &s->rep, "fill");
		s->nok[id] = 0;
		s->first_fail[id] = PER_PROC;
		for (int i = 0; i < PER_PROC; i++) {
			name_of(name, sizeof(name), c, id, i);
			rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), (uint32_t)id, (uint64_t)i));
			s->ok[id][i] = rc == 0;
			if (rc == 0) {
				s->nok[id]++;
			} else if (rc == -ENOSPC) {
				if (s->first_fail[id] == PER_PROC)
					s->first_fail[id] = (unsigned)i;
			} else {
				CHILD_FAIL(&s->rep, "cycle %u: register %s: %s", c, name, dr_strerror(rc));
			}
		}
		CHILD_BARRIER(&s->bar, &s->rep, "filled");
		CHILD_BARRIER(&s->bar, &s->rep, "drain"); /* the parent has looked */
		for (int i = 0; i < PER_PROC; i++) {
			if (!s->ok[id][i])
				continue;
			name_of(name, sizeof(name), c, id, i);
			rc = dr_unregister(r, name);
			if (rc)
				CHILD_FAIL(&s->rep, "cycle %u: unregister %s: %s", c, name, dr_strerror(rc));
		}
		CHILD_BARRIER(&s->bar, &s->rep, "drained");
	}
	dr_close(r);
	return 0;
}

Test(fill, four_processes_fill_drain_refill)
{
	struct fill *s = stress_shared(sizeof(*s));
	struct dr_stats st;
	struct dr_entry e;
	dr_registry *r;
	char msg[256], name[64], why[200];
	int rc;

	s->segment = seg_new("fill");
	s->cycles = stress_iters(20, 3);
	stress_barrier_init(&s->bar, NPROC + 1, &s->rep);
	for (int i = 0; i < NPROC; i++) {
		child_id = i;
		s->pids[i] = stress_spawn(filler, s);
	}
	rc = stress_open_opts(s->segment, CAPACITY, 0, &r);
	cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));

	for (unsigned c = 0; c < s->cycles; c++) {
		unsigned total = 0;

		PARENT_BARRIER(&s->bar, &s->rep, "fill");
		{
			int brc = stress_barrier_wait(&s->bar, STRESS_TIMEOUT);
			cr_assert_eq(brc, 0, "barrier filled: %s; first report: %s", strerror(-brc),
				     s->rep.msg);
		}
		for (int p = 0; p < NPROC; p++) {
			total += s->nok[p];
			/* Nothing is freed while filling: once full, full. */
			for (unsigned i = s->first_fail[p]; i < PER_PROC; i++)
				cr_assert(!s->ok[p][i], "cycle %u: process %d registered name %u after "
					  "-ENOSPC at %u", c, p, i, s->first_fail[p]);
		}
		cr_log_info("fill: cycle %u: %u + %u + %u + %u registered", c, s->nok[0], s->nok[1],
			    s->nok[2], s->nok[3]);
		cr_assert_eq(total, CAPACITY, "cycle %u: %u registrations succeeded, capacity is %u", c,
			     total, CAPACITY);
		cr_assert_eq(dr_stats(r, &st), 0);
		cr_assert_eq(st.live, CAPACITY, "cycle %u: %u live", c, st.live);
		cr_assert_eq(st.free_entries, 0, "cycle %u: %u free in a full table", c, st.free_entries);
		for (int p = 0; p < NPROC; p++) {
			for (int i = 0; i < PER_PROC; i++) {
				name_of(name, sizeof(name), c, p, i);
				rc = dr_whereis(r, name, &e);
				if (!s->ok[p][i]) {
					cr_assert_eq(rc, -ENOENT, "cycle %u: %s failed to register but is found",
						     c, name);
					continue;
				}
				cr_assert_eq(rc, 0, "cycle %u: whereis %s: %s", c, name, dr_strerror(rc));
				cr_assert(stress_value_check(&e, name, NULL, why, sizeof(why)), "%s", why);
				cr_assert_eq(e.pid, s->pids[p]);
			}
		}
		rc = dr_check(r, msg, sizeof(msg));
		cr_assert_eq(rc, 0, "cycle %u, full: dr_check: %s", c, msg);
		PARENT_BARRIER(&s->bar, &s->rep, "drain");
		PARENT_BARRIER(&s->bar, &s->rep, "drained");
		cr_assert_eq(dr_stats(r, &st), 0);
		cr_assert_eq(st.live + st.dead, 0, "cycle %u: %u names left after the drain", c,
			     st.live + st.dead);
		cr_assert_eq(st.live + st.dead + st.retired + st.inflight + st.free_entries, CAPACITY,
			     "cycle %u: entries unaccounted for: live %u dead %u retired %u inflight %u "
			     "free %u", c, st.live, st.dead, st.retired, st.inflight, st.free_entries);
		if (st.inflight)
			cr_log_info("fill: cycle %u: %u entries marked but still linked after the drain",
				    c, st.inflight);
	}
	stress_wait_all(s->pids, NPROC, STRESS_WAIT_S, &s->rep);
	ASSERT_REPORT_CLEAN(&s->rep);

	cr_assert_eq(dr_reap(r, NULL), 0);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.free_entries, CAPACITY, "%u of %u entries free after drain and reap "
		     "(retired %u, inflight %u)", st.free_entries, CAPACITY, st.retired, st.inflight);
	dr_close(r);
	cr_assert_eq(dr_unlink(s->segment), 0);
}
