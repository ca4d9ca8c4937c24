/*
 * test_sigkill.c - workers run the checked random mix (mixer.h) on one pool
 * of names while the test SIGKILLs a random one after a random 0-2 ms and
 * starts a new worker in its place: about 3000 times in full mode, 1000 in
 * short mode. Kills land anywhere: in dr_open(), inside a registration,
 * mid-reclamation. Names of the dead stay visible until reaped and are
 * taken over by whoever registers them next. Every surviving worker's names
 * must stay exactly as it holds them the whole time, every lookup must
 * return a whole value of a worker that existed, and at the end, after
 * dr_reap(), dr_check() passes, exactly the survivors' names remain, and
 * once they have closed every entry can be registered again.
 */
#include "mixer.h"

TestSuite(sigkill, .timeout = STRESS_TIMEOUT, .fini = stress_fini);

#define NWORKERS 4
#define NNAMES 256
/* Small enough that the retired entries the dead leave behind fill it and
 * force full reclamation scans often; big enough for every name plus the
 * workers' in-flight allocations, so -ENOSPC is impossible. */
#define CAPACITY 320
#define PID_BITS (1u << 22) /* pid_max can be at most 4194304 */

struct sk {
	struct stress_report rep;
	struct stress_barrier bar; /* the workers and the parent, at the end */
	const char *segment;
	int stop;
	pid_t pids[NWORKERS];      /* the current worker of each slot */
	uint32_t started[NWORKERS]; /* incarnations of each slot */
	struct holding h[NWORKERS]; /* the survivors' holdings at the end */
	unsigned long counts[NWORKERS][4];
	int opened[NWORKERS];      /* the current incarnation got past dr_open() */
	uint8_t ever[PID_BITS / 8]; /* every pid a worker ever had */
};

static bool was_worker(const void *arg, pid_t pid)
{
	const struct sk *s = arg;

	return pid > 0 && (uint32_t)pid < PID_BITS &&
	       (__atomic_load_n(&s->ever[pid / 8], __ATOMIC_ACQUIRE) & (1u << (pid % 8)));
}

static void mark_worker(struct sk *s, pid_t pid)
{
	__atomic_fetch_or(&s->ever[pid / 8], (uint8_t)(1u << (pid % 8)), __ATOMIC_ACQ_REL);
}

static int worker_slot;

static int worker(void *arg)
{
	struct sk *s = arg;
	struct mixer *m = calloc(1, sizeof(*m));
	int id = worker_slot, rc;

	if (!m)
		CHILD_FAIL(&s->rep, "calloc");
	mark_worker(s, getpid());
	rc = stress_open_opts(s->segment, CAPACITY, 0, &m->r);
	if (rc)
		CHILD_FAIL(&s->rep, "worker %d: dr_open: %s", id, dr_strerror(rc));
	__atomic_store_n(&s->opened[id], 1, __ATOMIC_RELEASE);
	m->prefix = "sk";
	m->nnames = NNAMES;
	m->id = id;
	m->exact = true;
	m->ntags = NWORKERS;
	m->pid_ok = was_worker;
	m->pid_arg = s;
	m->ops = UINT64_MAX;
	m->stop = &s->stop;
	m->rep = &s->rep;
	if (mix_run(m))
		_exit(1);
	s->h[id] = m->h;
	memcpy(s->counts[id], m->counts, sizeof(m->counts));
	CHILD_BARRIER(&s->bar, &s->rep, "done");
	CHILD_BARRIER(&s->bar, &s->rep, "checked");
	dr_close(m->r);
	free(m);
	return 0;
}

static void start_worker(struct sk *s, int slot)
{
	pid_t pid;

	s->opened[slot] = 0;
	worker_slot = slot;
	pid = stress_spawn(worker, s);
	mark_worker(s, pid); /* the worker did too, before dr_open() */
	s->pids[slot] = pid;
	s->started[slot]++;
}

struct walk {
	const struct sk *s;
	int n;
	char why[256];
};

static int walk_fn(const struct dr_name_info *info, void *arg)
{
	struct walk *w = arg;
	const struct sk *s = w->s;
	struct stress_value v;
	char name[DR_NAME_MAX + 1], why[200];
	int k;

	w->n++;
	snprintf(name, sizeof(name), "%.*s", (int)info->name_len, (const char *)info->name);
	if (!info->alive) {
		snprintf(w->why, sizeof(w->why), "%s: owner pid %d dead after dr_reap()", name,
			 (int)info->entry.pid);
		return 1;
	}
	if (!stress_value_check(&info->entry, name, &v, why, sizeof(why))) {
		snprintf(w->why, sizeof(w->why), "%s", why);
		return 1;
	}
	if (sscanf(name, "sk.%d", &k) != 1 || k < 0 || k >= NNAMES || v.tag >= NWORKERS ||
	    s->pids[v.tag] != info->entry.pid || !s->h[v.tag].owned[k] ||
	    s->h[v.tag].seq[k] != v.seq || s->h[v.tag].regid[k] != info->entry.regid) {
		snprintf(w->why, sizeof(w->why), "%s: pid %d tag %u seq %llu is not what a survivor holds",
			 name, (int)info->entry.pid, v.tag, (unsigned long long)v.seq);
		return 1;
	}
	return 0;
}

Test(sigkill, random_kills_and_restarts)
{
	struct sk *s = stress_shared(sizeof(*s));
	unsigned kills = stress_iters(3000, 1000), in_open = 0;
	uint64_t rng = stress_seed(42);
	struct walk w = { .s = s };
	unsigned long total[4] = { 0 };
	struct dr_stats st;
	struct stress_value v;
	dr_registry *r;
	char msg[256], name[64];
	double t0 = stress_now();
	int rc, held = 0;

	s->segment = seg_new("sigkill");
	stress_barrier_init(&s->bar, NWORKERS + 1, &s->rep);
	for (int i = 0; i < NWORKERS; i++)
		start_worker(s, i);

	for (unsigned k = 0; k < kills; k++) {
		int slot = (int)(stress_rand(&rng) % NWORKERS), status;

		stress_sleep_us((unsigned)(stress_rand(&rng) % 2001));
		in_open += !__atomic_load_n(&s->opened[slot], __ATOMIC_ACQUIRE);
		kill(s->pids[slot], SIGKILL);
		status = stress_wait(s->pids[slot], STRESS_WAIT_S);
		ASSERT_REPORT_CLEAN(&s->rep);
		cr_assert_eq(status, 128 + SIGKILL, "kill %u: worker %d (pid %d) ended with %d", k, slot,
			     (int)s->pids[slot], status);
		start_worker(s, slot);
	}
	cr_log_info("sigkill: %u kills in %.1f s, %u of them before dr_open() returned", kills,
		    stress_now() - t0, in_open);

	/* Let the last incarnations run a little, then stop them. */
	stress_sleep_us(20000);
	__atomic_store_n(&s->stop, 1, __ATOMIC_RELEASE);
	PARENT_BARRIER(&s->bar, &s->rep, "done");
	ASSERT_REPORT_CLEAN(&s->rep);

	rc = stress_open_opts(s->segment, CAPACITY, 0, &r);
	cr_assert_eq(rc, 0, "dr_open: %s", dr_strerror(rc));
	cr_assert_eq(dr_reap(r, NULL), 0);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	for (int p = 0; p < NWORKERS; p++) {
		for (int i = 0; i < NNAMES; i++)
			held += s->h[p].owned[i];
		for (int k = 0; k < 4; k++)
			total[k] += s->counts[p][k];
	}
	rc = dr_foreach(r, walk_fn, &w);
	cr_assert_eq(rc, 0, "dr_foreach: %s", w.why);
	cr_assert_eq(w.n, held, "%d names registered, the survivors hold %d", w.n, held);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, (uint32_t)held);
	cr_assert_eq(st.dead, 0, "%u dead names after dr_reap()", st.dead);
	cr_assert_eq(st.procs, NWORKERS + 1, "%u live processes attached, want %d", st.procs,
		     NWORKERS + 1);
	cr_assert_eq(st.live + st.dead + st.retired + st.inflight + st.free_entries, CAPACITY,
		     "entries leaked: live %u dead %u retired %u inflight %u free %u", st.live,
		     st.dead, st.retired, st.inflight, st.free_entries);
	cr_log_info("sigkill: last incarnations: %lu lookups found, %lu registrations, "
		    "%lu unregistrations, %lu EEXIST; %d names held",
		    total[0], total[1], total[2], total[3], held);

	PARENT_BARRIER(&s->bar, &s->rep, "checked");
	stress_wait_all(s->pids, NWORKERS, STRESS_WAIT_S, &s->rep);
	ASSERT_REPORT_CLEAN(&s->rep);

	/* Everyone has left: every entry is usable again. */
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live + st.dead, 0, "%u names left after the survivors closed",
		     st.live + st.dead);
	cr_assert_eq(st.free_entries, CAPACITY, "%u of %u entries free (retired %u, inflight %u)",
		     st.free_entries, CAPACITY, st.retired, st.inflight);
	for (int i = 0; i < CAPACITY; i++) {
		snprintf(name, sizeof(name), "full.%d", i);
		rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), 0, (uint64_t)i));
		cr_assert_eq(rc, 0, "register %s (%d of %d): %s", name, i + 1, CAPACITY, dr_strerror(rc));
	}
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check of the full table: %s", msg);
	for (int i = 0; i < CAPACITY; i++) {
		snprintf(name, sizeof(name), "full.%d", i);
		cr_assert_eq(dr_unregister(r, name), 0);
	}
	dr_close(r);
	cr_assert_eq(dr_unlink(s->segment), 0);
}
