/*
 * test_mix.c - a random mix of dr_whereis (40%), dr_register (15%: new names
 * and value updates) and dr_unregister (45%) over one pool of 500 names, by
 * 4 processes, and by 8 threads of one process (4 with handles of their
 * own, 4 sharing one). Every value says which name, process and writer it
 * was written for and carries a checksum, so a lookup that returns a torn
 * value, another name's value or a value its owner never wrote is caught.
 * Each writer with a handle of its own also knows exactly which names it
 * holds: those must never change or vanish under it.
 */
#include <pthread.h>

#include "mixer.h"

TestSuite(mix, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define NNAMES 500
#define CAPACITY 2048
#define NPROC 4
#define NTHREADS 8
#define NEXACT 4 /* threads 0..3 have handles of their own, 4..7 share one */

static bool any_of(const void *arg, pid_t pid)
{
	const pid_t *pids = arg;

	for (int i = 0; i < NPROC; i++)
		if (pids[i] == pid)
			return true;
	return false;
}

/* ---------------------------------------------------------------------- */

struct procs {
	struct stress_report rep;
	struct stress_barrier bar;  /* NPROC children and the parent */
	const char *segment;
	uint64_t ops;
	pid_t pids[NPROC];
	struct holding h[NPROC];    /* each child's holdings at the end */
	unsigned long counts[NPROC][4];
};

static int child_id;

static int mix_child(void *arg)
{
	struct procs *s = arg;
	struct mixer *m = calloc(1, sizeof(*m));
	int rc;

	if (!m)
		CHILD_FAIL(&s->rep, "calloc");
	CHILD_BARRIER(&s->bar, &s->rep, "spawned"); /* s->pids is complete */
	rc = stress_open_opts(s->segment, CAPACITY, 0, &m->r);
	if (rc)
		CHILD_FAIL(&s->rep, "dr_open: %s", dr_strerror(rc));
	m->prefix = "mix.pool";
	m->nnames = NNAMES;
	m->id = child_id;
	m->exact = true;
	m->ntags = NPROC;
	m->pid_ok = any_of;
	m->pid_arg = s->pids;
	m->ops = s->ops;
	m->rep = &s->rep;
	CHILD_BARRIER(&s->bar, &s->rep, "opened");
	if (mix_run(m))
		_exit(1);
	s->h[m->id] = m->h;
	memcpy(s->counts[m->id], m->counts, sizeof(m->counts));
	CHILD_BARRIER(&s->bar, &s->rep, "done");
	CHILD_BARRIER(&s->bar, &s->rep, "checked"); /* the parent looked while we hold */
	dr_close(m->r);
	free(m);
	return 0;
}

struct walk {
	const struct procs *s;
	int n, bad;
	char why[256];
};

static int walk_fn(const struct dr_name_info *info, void *arg)
{
	struct walk *w = arg;
	struct stress_value v;
	char name[DR_NAME_MAX + 1], why[200];
	int k;

	w->n++;
	snprintf(name, sizeof(name), "%.*s", (int)info->name_len, (const char *)info->name);
	if (!info->alive) {
		snprintf(w->why, sizeof(w->why), "%s: owner pid %d not alive", name, (int)info->entry.pid);
		return ++w->bad;
	}
	if (!stress_value_check(&info->entry, name, &v, why, sizeof(why))) {
		snprintf(w->why, sizeof(w->why), "%s", why);
		return ++w->bad;
	}
	if (sscanf(name, "mix.pool.%d", &k) != 1 || k < 0 || k >= NNAMES || v.tag >= NPROC ||
	    !w->s->h[v.tag].owned[k] || w->s->pids[v.tag] != info->entry.pid ||
	    w->s->h[v.tag].seq[k] != v.seq || w->s->h[v.tag].regid[k] != info->entry.regid) {
		snprintf(w->why, sizeof(w->why), "%s: pid %d tag %u seq %llu is not what its writer holds",
			 name, (int)info->entry.pid, v.tag, (unsigned long long)v.seq);
		return ++w->bad;
	}
	return 0;
}

Test(mix, four_processes)
{
	struct procs *s = stress_shared(sizeof(*s));
	unsigned long total[4] = { 0 };
	struct walk w = { .s = s };
	struct dr_stats st;
	dr_registry *r;
	char msg[256];
	int rc, held = 0;

	s->segment = seg_new("mixp");
	s->ops = stress_iters(1500000, 60000);
	stress_barrier_init(&s->bar, NPROC + 1, &s->rep);
	for (int i = 0; i < NPROC; i++) {
		child_id = i;
		s->pids[i] = stress_spawn(mix_child, s);
	}
	PARENT_BARRIER(&s->bar, &s->rep, "spawned");
	PARENT_BARRIER(&s->bar, &s->rep, "opened");
	{
		/* No process may stop for good before the others: each does
		 * the same number of operations, bounded by the suite timeout. */
		int brc = stress_barrier_wait(&s->bar, STRESS_TIMEOUT);
		cr_assert_eq(brc, 0, "barrier done: %s; first report: %s", strerror(-brc), s->rep.msg);
	}
	ASSERT_REPORT_CLEAN(&s->rep);

	/* Everyone holds what it holds; nobody writes. */
	rc = stress_open_opts(s->segment, CAPACITY, 0, &r);
	cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));
	for (int p = 0; p < NPROC; p++) {
		for (int i = 0; i < NNAMES; i++)
			held += s->h[p].owned[i];
		for (int k = 0; k < 4; k++)
			total[k] += s->counts[p][k];
	}
	for (int i = 0; i < NNAMES; i++) {
		int owners = 0;
		for (int p = 0; p < NPROC; p++)
			owners += s->h[p].owned[i];
		cr_assert_leq(owners, 1, "name %d held by %d processes", i, owners);
	}
	rc = dr_foreach(r, walk_fn, &w);
	cr_assert_eq(rc, 0, "dr_foreach: %s", w.why);
	cr_assert_eq(w.n, held, "dr_foreach saw %d names, the writers hold %d", w.n, held);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, (uint32_t)held, "%u live names, the writers hold %d", st.live, held);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	cr_log_info("mix/4 processes: %lu lookups found, %lu registrations, %lu unregistrations, "
		    "%lu EEXIST; %d names held at the end",
		    total[0], total[1], total[2], total[3], held);
	cr_assert_gt(total[3], 0, "no collision between processes happened");

	PARENT_BARRIER(&s->bar, &s->rep, "checked");
	stress_wait_all(s->pids, NPROC, STRESS_WAIT_S, &s->rep);
	ASSERT_REPORT_CLEAN(&s->rep);
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live + st.dead, 0, "%u names left after every writer closed", st.live + st.dead);
	cr_assert_eq(st.free_entries, CAPACITY, "%u of %u entries free", st.free_entries, CAPACITY);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	dr_close(r);
	cr_assert_eq(dr_unlink(s->segment), 0);
}

/* ---------------------------------------------------------------------- */


Test(mix, eight_threads)
{
	const char *seg = seg_new("mixt");
	struct stress_report rep = { 0 };
	struct mixer *m = calloc(NTHREADS, sizeof(*m));
	dr_registry *h[NEXACT + 1], *r;
	struct dr_stats st;
	char msg[256];
	int rc;

	cr_assert_not_null(m);
	for (int i = 0; i <= NEXACT; i++) {
		rc = stress_open_opts(seg, CAPACITY, 0, &h[i]);
		cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));
	}
	for (int i = 0; i < NTHREADS; i++) {
		m[i].r = i < NEXACT ? h[i] : h[NEXACT];
		m[i].prefix = "mix.pool";
		m[i].nnames = NNAMES;
		m[i].id = i;
		m[i].exact = i < NEXACT;
		m[i].ntags = NTHREADS;
		m[i].pid_ok = mix_pid_is_self;
		m[i].ops = stress_iters(600000, 30000);
		m[i].rep = &rep;
	}
	mix_threads(m, NTHREADS);
	cr_assert_eq(rep.nfail, 0, "%d thread(s) failed, first: %s", rep.nfail, rep.msg);

	/* The threads with handles of their own hold exactly what they think. */
	rc = dr_check(h[0], msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	for (int k = 0; k < NEXACT; k++) {
		int n = 0;
		for (int i = 0; i < NNAMES; i++) {
			n += m[k].h.owned[i];
			cr_assert(mix_check(&m[k], i, "after join"), "%s", rep.msg);
		}
		cr_log_info("mix/threads: handle %d holds %d names", k, n);
	}
	for (int i = 0; i <= NEXACT; i++)
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
