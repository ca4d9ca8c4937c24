/*
 * test_create.c - concurrent creation of a segment.
 *
 * 16 processes released at one instant dr_open() the same segment, which
 * does not exist yet, each asking for another geometry: all succeed, all
 * get the geometry of one of them, a name registered by any is seen by all,
 * and the losers of the creation race leave no temporary file. Repeated
 * with new segment names: 60 times in short mode, 400 in full mode (the
 * race below needs many repetitions to show).
 *
 * Creators SIGKILLed at random moments of their creation never leave a
 * segment nobody can open: a process arriving afterwards opens or creates
 * it and finds it sound, and the next creation removes what they left.
 */
#include "stress.h"

TestSuite(create, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define NPROC 16
#define MAX_REPS 400

struct geom {
	int rc;
	uint32_t capacity, nbuckets, max_procs, max_threads;
	uint64_t bytes;
	int seen;          /* names of the others found */
};

struct cr {
	struct stress_report rep;
	struct stress_barrier bar; /* NPROC children and the parent */
	int reps;
	char seg[MAX_REPS][64];
	pid_t pids[NPROC];
	struct geom g[MAX_REPS][NPROC];
};

static uint32_t want_capacity(int id)
{
	return 64u * (uint32_t)(1 + id % 4);
}

static uint32_t want_threads(int id)
{
	return 64u + 16u * (uint32_t)id;
}

static int child_id;

static int opener(void *arg)
{
	struct cr *s = arg;
	int id = child_id;
	char name[32];

	for (int k = 0; k < s->reps; k++) {
		struct geom *g = &s->g[k][id];
		struct dr_options o = {
			.segment = s->seg[k],
			.capacity = want_capacity(id),
			.max_procs = STRESS_MAX_PROCS,
			.max_threads = want_threads(id),
		};
		struct dr_stats st;
		struct dr_entry e;
		dr_registry *r = NULL;
		int rc;

		CHILD_BARRIER(&s->bar, &s->rep, "go");
		g->rc = dr_open(&o, &r);
		if (g->rc == 0) {
			rc = dr_stats(r, &st);
			if (rc)
				CHILD_FAIL(&s->rep, "rep %d: dr_stats: %s", k, dr_strerror(rc));
			g->capacity = st.capacity;
			g->nbuckets = st.nbuckets;
			g->max_procs = st.max_procs;
			g->max_threads = st.max_threads;
			g->bytes = st.segment_bytes;
			snprintf(name, sizeof(name), "p.%d", id);
			rc = dr_register(r, name, &id, sizeof(id));
			if (rc)
				CHILD_FAIL(&s->rep, "rep %d: register %s: %s", k, name, dr_strerror(rc));
		}
		CHILD_BARRIER(&s->bar, &s->rep, "registered");
		g->seen = 0;
		for (int j = 0; r && j < NPROC; j++) {
			snprintf(name, sizeof(name), "p.%d", j);
			if (dr_whereis(r, name, &e) == 0 && e.pid == s->pids[j] &&
			    e.value_len == sizeof(int) && memcmp(e.value, &j, sizeof(int)) == 0)
				g->seen++;
		}
		CHILD_BARRIER(&s->bar, &s->rep, "looked");
		dr_close(r);
		CHILD_BARRIER(&s->bar, &s->rep, "closed");
	}
	return 0;
}

Test(create, sixteen_processes_open_a_new_segment_at_once)
{
	struct cr *s = stress_shared(sizeof(*s));

	s->reps = (int)stress_iters(400, 60);
	if (s->reps > MAX_REPS)
		s->reps = MAX_REPS;
	for (int k = 0; k < s->reps; k++)
		snprintf(s->seg[k], sizeof(s->seg[k]), "%s", seg_new("create"));
	stress_barrier_init(&s->bar, NPROC + 1, &s->rep);
	for (int i = 0; i < NPROC; i++) {
		child_id = i;
		s->pids[i] = stress_spawn(opener, s);
	}
	for (int k = 0; k < s->reps; k++) {
		const struct geom *g0 = &s->g[k][0];
		bool asked = false;

		PARENT_BARRIER(&s->bar, &s->rep, "go");
		PARENT_BARRIER(&s->bar, &s->rep, "registered");
		PARENT_BARRIER(&s->bar, &s->rep, "looked");
		PARENT_BARRIER(&s->bar, &s->rep, "closed");
		for (int i = 0; i < NPROC; i++)
			cr_assert_eq(s->g[k][i].rc, 0, "rep %d: process %d: dr_open: %s", k, i,
				     dr_strerror(s->g[k][i].rc));
		for (int i = 0; i < NPROC; i++) {
			const struct geom *g = &s->g[k][i];

			cr_assert(g->capacity == g0->capacity && g->nbuckets == g0->nbuckets &&
				  g->max_procs == g0->max_procs && g->max_threads == g0->max_threads &&
				  g->bytes == g0->bytes,
				  "rep %d: process %d sees capacity %u/%u buckets, %u procs, %u threads, "
				  "%llu bytes; process 0 sees %u/%u, %u, %u, %llu", k, i, g->capacity,
				  g->nbuckets, g->max_procs, g->max_threads, (unsigned long long)g->bytes,
				  g0->capacity, g0->nbuckets, g0->max_procs, g0->max_threads,
				  (unsigned long long)g0->bytes);
			cr_assert_eq(g->seen, NPROC, "rep %d: process %d sees %d of the %d names", k, i,
				     g->seen, NPROC);
			if (want_capacity(i) == g->capacity && want_threads(i) == g->max_threads)
				asked = true;
		}
		cr_assert(asked, "rep %d: geometry %u/%u is nobody's request", k, g0->capacity,
			  g0->max_threads);
		cr_assert_eq(seg_tmp_files(s->seg[k], false), 0,
			     "rep %d: the creation race left temporary files", k);
		cr_assert_eq(dr_unlink(s->seg[k]), 0);
	}
	stress_wait_all(s->pids, NPROC, STRESS_WAIT_S, &s->rep);
	ASSERT_REPORT_CLEAN(&s->rep);
}

/* ---------------------------------------------------------------------- */

#define NCREATORS 4
/* About 5 MiB: allocating and prefaulting it takes a few milliseconds, a
 * window the random kills fall into. */
#define BIG_CAPACITY 16384

struct kc {
	struct stress_report rep;
	const char *segment;
};

static int creator(void *arg)
{
	struct kc *s = arg;
	dr_registry *r;
	int rc = stress_open_opts(s->segment, BIG_CAPACITY, 0, &r);

	if (rc)
		CHILD_FAIL(&s->rep, "creator: dr_open: %s", dr_strerror(rc));
	rc = dr_register(r, "creator", "x", 1);
	if (rc && rc != -EEXIST)
		CHILD_FAIL(&s->rep, "creator: register: %s", dr_strerror(rc));
	dr_close(r);
	return 0;
}

/* A newcomer: the segment must open (or be created) and be sound. */
static int newcomer(void *arg)
{
	struct kc *s = arg;
	struct dr_stats st;
	dr_registry *r;
	char msg[256];
	int rc = stress_open_opts(s->segment, BIG_CAPACITY, 0, &r);

	if (rc)
		CHILD_FAIL(&s->rep, "newcomer: dr_open after killed creators: %s", dr_strerror(rc));
	rc = dr_check(r, msg, sizeof(msg));
	if (rc)
		CHILD_FAIL(&s->rep, "newcomer: dr_check: %s", msg);
	rc = dr_stats(r, &st);
	if (rc || st.capacity != BIG_CAPACITY || st.live != 0 || st.dead != 0)
		CHILD_FAIL(&s->rep, "newcomer: dr_stats: %s, capacity %u, %u live, %u dead",
			   dr_strerror(rc), st.capacity, st.live, st.dead);
	rc = dr_register(r, "newcomer", "y", 1);
	if (rc)
		CHILD_FAIL(&s->rep, "newcomer: register: %s", dr_strerror(rc));
	rc = dr_whereis(r, "newcomer", NULL);
	if (rc)
		CHILD_FAIL(&s->rep, "newcomer: whereis: %s", dr_strerror(rc));
	dr_close(r);
	return 0;
}

Test(create, creators_killed_at_random_moments)
{
	struct kc *s = stress_shared(sizeof(*s));
	int reps = (int)stress_iters(150, 30);
	uint64_t rng = stress_seed(7);
	int existed = 0, leftovers = 0, finished = 0;

	for (int k = 0; k < reps; k++) {
		pid_t pids[NCREATORS];
		int st;

		s->segment = seg_new("killcreate");
		for (int i = 0; i < NCREATORS; i++)
			pids[i] = stress_spawn(creator, s);
		for (int i = 0; i < NCREATORS; i++) {
			stress_sleep_us((unsigned)(stress_rand(&rng) % 1500));
			kill(pids[i], SIGKILL);
		}
		for (int i = 0; i < NCREATORS; i++) {
			st = stress_wait(pids[i], STRESS_WAIT_S);
			cr_assert(st == 0 || st == 128 + SIGKILL, "rep %d: creator %d ended with %d: %s", k,
				  i, st, s->rep.msg);
			finished += st == 0;
		}
		ASSERT_REPORT_CLEAN(&s->rep);
		existed += access(seg_path_of(s->segment), F_OK) == 0;
		leftovers += seg_tmp_files(s->segment, false) > 0;

		st = stress_wait(stress_spawn(newcomer, s), STRESS_WAIT_S);
		ASSERT_REPORT_CLEAN(&s->rep);
		cr_assert_eq(st, 0, "rep %d: newcomer ended with %d", k, st);

		/* Whatever temporary files killed creators left, the next
		 * creation of the name removes them. */
		cr_assert_eq(dr_unlink(s->segment), 0);
		st = stress_wait(stress_spawn(newcomer, s), STRESS_WAIT_S);
		ASSERT_REPORT_CLEAN(&s->rep);
		cr_assert_eq(st, 0, "rep %d: second newcomer ended with %d", k, st);
		cr_assert_eq(seg_tmp_files(s->segment, false), 0,
			     "rep %d: temporary files of dead creators survived a new creation", k);
		cr_assert_eq(dr_unlink(s->segment), 0);
		stress_fini();
	}
	cr_log_info("create: %d reps; the segment existed after the kills in %d, temporary files "
		    "were left in %d; %d of %d creators finished before their kill",
		    reps, existed, leftovers, finished, reps * NCREATORS);
}
