/*
 * test_race.c - 8 processes released at one instant race to register the
 * same 200 names: each name has exactly one winner, every other racer gets
 * -EEXIST, and every process then sees the winner's pid, regid and value.
 * Rounds repeat on the same segment with the names unregistered in between,
 * so later rounds race on recycled entries.
 */
#include "stress.h"

TestSuite(race, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define NPROC 8
#define NNAMES 200
#define CAPACITY 1024
#define MAX_ROUNDS 100000

struct view {
	int rc;
	pid_t pid;
	uint32_t tag;
	uint64_t seq;
	uint64_t regid;
};

struct race {
	struct stress_report rep;
	struct stress_barrier bar;        /* NPROC children and the parent */
	const char *segment;
	unsigned rounds;
	pid_t pid[NPROC];
	int rc[NPROC][NNAMES];            /* what each racer's dr_register returned */
	uint64_t won_regid[NPROC][NNAMES]; /* the winner's own lookup right after */
	struct view seen[NPROC][NNAMES];  /* every racer's lookup after the race */
	int unreg_rc[NPROC][NNAMES];      /* losers' dr_unregister of a won name */
};

static void name_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "race.name.%03d", i);
}

/* The order racer id registers in: the same for all in some rounds (the
 * most collisions on a link), reversed or rotated for some in others. */
static int order(unsigned round, int id, int k)
{
	switch (round % 3) {
	case 0:
		return k;
	case 1:
		return id & 1 ? NNAMES - 1 - k : k;
	default:
		return (k + id * (NNAMES / NPROC)) % NNAMES;
	}
}

/* Set by the parent before each fork: the child's index. */
static int racer_id;

static int racer(void *arg)
{
	struct race *s = arg;
	struct stress_value v;
	struct dr_entry e;
	dr_registry *r;
	char name[64], why[200];
	int id = racer_id, rc;

	rc = stress_open_opts(s->segment, CAPACITY, 0, &r);
	if (rc)
		CHILD_FAIL(&s->rep, "dr_open: %s", dr_strerror(rc));

	for (unsigned round = 0; round < s->rounds; round++) {
		CHILD_BARRIER(&s->bar, &s->rep, "start");
		for (int k = 0; k < NNAMES; k++) {
			int i = order(round, id, k);

			name_of(name, sizeof(name), i);
			rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), (uint32_t)id, round));
			s->rc[id][i] = rc;
			if (rc != 0 && rc != -EEXIST)
				CHILD_FAIL(&s->rep, "round %u: register %s: %s", round, name,
					   dr_strerror(rc));
			if (rc == 0) {
				rc = dr_whereis(r, name, &e);
				if (rc)
					CHILD_FAIL(&s->rep, "round %u: whereis own %s: %s", round, name,
						   dr_strerror(rc));
				if (e.pid != getpid() || !stress_value_check(&e, name, &v, why, sizeof(why)) ||
				    v.tag != (uint32_t)id || v.seq != round)
					CHILD_FAIL(&s->rep, "round %u: won %s but whereis shows pid %d: %s",
						   round, name, (int)e.pid, why);
				s->won_regid[id][i] = e.regid;
			}
		}
		CHILD_BARRIER(&s->bar, &s->rep, "raced");
		for (int i = 0; i < NNAMES; i++) {
			struct view *w = &s->seen[id][i];

			name_of(name, sizeof(name), i);
			memset(w, 0, sizeof(*w));
			w->rc = dr_whereis(r, name, &e);
			if (w->rc == 0) {
				if (!stress_value_check(&e, name, &v, why, sizeof(why)))
					CHILD_FAIL(&s->rep, "round %u: %s", round, why);
				w->pid = e.pid;
				w->tag = v.tag;
				w->seq = v.seq;
				w->regid = e.regid;
			}
		}
		CHILD_BARRIER(&s->bar, &s->rep, "looked");
		/* The parent has checked. Losers may not unregister a name a
		 * live process holds. */
		for (int i = 0; i < NNAMES; i++) {
			name_of(name, sizeof(name), i);
			s->unreg_rc[id][i] = s->rc[id][i] == 0 ? 0 : dr_unregister(r, name);
		}
		CHILD_BARRIER(&s->bar, &s->rep, "losers unregistered");
		for (int i = 0; i < NNAMES; i++) {
			if (s->rc[id][i] != 0)
				continue;
			name_of(name, sizeof(name), i);
			rc = dr_unregister(r, name);
			if (rc)
				CHILD_FAIL(&s->rep, "round %u: winner's unregister %s: %s", round, name,
					   dr_strerror(rc));
		}
		CHILD_BARRIER(&s->bar, &s->rep, "winners unregistered");
		for (int i = 0; i < NNAMES; i++) {
			name_of(name, sizeof(name), i);
			rc = dr_whereis(r, name, &e);
			if (rc != -ENOENT)
				CHILD_FAIL(&s->rep, "round %u: %s still found after its unregister: %s (pid %d)",
					   round, name, dr_strerror(rc), rc == 0 ? (int)e.pid : 0);
		}
	}
	CHILD_BARRIER(&s->bar, &s->rep, "end");
	dr_close(r);
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

Test(race, eight_processes_register_the_same_names)
{
	struct race *s = stress_shared(sizeof(*s));
	uint64_t *all_regids;
	size_t nregids = 0;
	struct dr_stats st;
	dr_registry *r;
	char msg[256];
	int rc;

	s->segment = seg_new("race");
	s->rounds = stress_iters(400, 60);
	cr_assert_leq(s->rounds, MAX_ROUNDS);
	stress_barrier_init(&s->bar, NPROC + 1, &s->rep);
	all_regids = calloc((size_t)s->rounds * NNAMES, sizeof(*all_regids));
	cr_assert_not_null(all_regids);

	for (int i = 0; i < NPROC; i++) {
		racer_id = i;
		s->pid[i] = stress_spawn(racer, s);
	}
	rc = stress_open_opts(s->segment, CAPACITY, 0, &r);
	cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));

	for (unsigned round = 0; round < s->rounds; round++) {
		PARENT_BARRIER(&s->bar, &s->rep, "start");
		PARENT_BARRIER(&s->bar, &s->rep, "raced");
		PARENT_BARRIER(&s->bar, &s->rep, "looked");
		for (int i = 0; i < NNAMES; i++) {
			int winner = -1, nwin = 0;
			char name[64];

			name_of(name, sizeof(name), i);
			for (int p = 0; p < NPROC; p++) {
				if (s->rc[p][i] == 0) {
					winner = p;
					nwin++;
				} else {
					cr_assert_eq(s->rc[p][i], -EEXIST, "round %u, %s, racer %d: %s",
						     round, name, p, dr_strerror(s->rc[p][i]));
				}
			}
			cr_assert_eq(nwin, 1, "round %u: %s has %d winners", round, name, nwin);
			for (int p = 0; p < NPROC; p++) {
				const struct view *w = &s->seen[p][i];

				cr_assert_eq(w->rc, 0, "round %u: racer %d cannot find %s: %s", round, p,
					     name, dr_strerror(w->rc));
				cr_assert_eq(w->pid, s->pid[winner],
					     "round %u: racer %d sees %s owned by pid %d, winner is %d",
					     round, p, name, (int)w->pid, (int)s->pid[winner]);
				cr_assert_eq(w->regid, s->won_regid[winner][i],
					     "round %u: racer %d sees %s with regid %llu, winner got %llu",
					     round, p, name, (unsigned long long)w->regid,
					     (unsigned long long)s->won_regid[winner][i]);
				cr_assert(w->tag == (uint32_t)winner && w->seq == round,
					  "round %u: racer %d sees %s with the value of racer %u round %llu, "
					  "winner is %d", round, p, name, w->tag,
					  (unsigned long long)w->seq, winner);
			}
			all_regids[nregids++] = s->won_regid[winner][i];
		}
		rc = dr_stats(r, &st);
		cr_assert_eq(rc, 0, "dr_stats: %s", dr_strerror(rc));
		cr_assert_eq(st.live, NNAMES, "round %u: %u live names, want %d", round, st.live, NNAMES);
		cr_assert_eq(st.dead, 0);
		PARENT_BARRIER(&s->bar, &s->rep, "losers unregistered");
		for (int i = 0; i < NNAMES; i++)
			for (int p = 0; p < NPROC; p++)
				cr_assert_eq(s->unreg_rc[p][i], s->rc[p][i] == 0 ? 0 : -EPERM,
					     "round %u: racer %d's dr_unregister of name %d it lost: %s",
					     round, p, i, dr_strerror(s->unreg_rc[p][i]));
		PARENT_BARRIER(&s->bar, &s->rep, "winners unregistered");
	}
	PARENT_BARRIER(&s->bar, &s->rep, "end");
	stress_wait_all(s->pid, NPROC, STRESS_WAIT_S, &s->rep);
	ASSERT_REPORT_CLEAN(&s->rep);

	/* Registration ids are never reused. */
	qsort(all_regids, nregids, sizeof(*all_regids), cmp_u64);
	for (size_t i = 1; i < nregids; i++)
		cr_assert_neq(all_regids[i], all_regids[i - 1], "regid %llu given twice",
			      (unsigned long long)all_regids[i]);
	free(all_regids);

	cr_assert_eq(dr_reap(r, NULL), 0);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live + st.dead, 0, "%u names left", st.live + st.dead);
	cr_assert_eq(st.free_entries, CAPACITY, "%u of %u entries free after reap", st.free_entries,
		     CAPACITY);
	dr_close(r);
	cr_assert_eq(dr_unlink(s->segment), 0);
}
