/*
 * The mix that runs while a process stands paused at a crash point
 * (test_crashpoints.c, stop mode): every path of the library, from other
 * processes, on the paused process's segment.
 *
 *   writers  the checked random mix of mixer.h on names of their own, with
 *            bursts that fill the table to -ENOSPC or -EBUSY and drain it
 *            (allocation slow paths: reclamation, reaping, finishing
 *            abandoned deletions);
 *   reader   dr_foreach (every value it sees must be whole and written for
 *            its name), lookups inside explicit read-side sections,
 *            dr_stats and dr_reap;
 *   opener   opens a handle, registers, closes it; every fourth round a
 *            child of it registers names and is SIGKILLed, leaving dead
 *            owners to reap and names to take over;
 *   echo     serves names through a mailbox, answers every call with its
 *            request and takes casts; reopens its mailbox now and then;
 *   caller   calls the echo worker (waiting and asynchronously) and casts
 *            to it, checking every answer.
 * Every name anyone registers in these tests carries a self-checking value
 * (stress.h), so a torn value or one from another registration is caught
 * wherever it is seen. When stopped, every mix process closes its handle,
 * so nothing of the mix is left but what reclamation takes back.
 */
#ifndef DR_STRESS_PAUSEMIX_H
#define DR_STRESS_PAUSEMIX_H

#include "mixer.h"

#define PMIX_WRITERS 2
#define PMIX_PROCS (PMIX_WRITERS + 4)

struct pmix {
	const char *seg;
	struct stress_report *rep;
	int stop;
	pid_t pids[PMIX_PROCS];
	unsigned long rounds[PMIX_PROCS];
};

static inline bool pmix_stopped(const struct pmix *x)
{
	return __atomic_load_n(&x->stop, __ATOMIC_ACQUIRE) ||
	       __atomic_load_n(&x->rep->nfail, __ATOMIC_ACQUIRE);
}

static inline dr_registry *pmix_open(struct pmix *x, const char *who)
{
	dr_registry *r;
	int rc = stress_open_opts(x->seg, 0, 0, &r);

	if (rc)
		CHILD_FAIL(x->rep, "mix %s: dr_open: %s", who, dr_strerror(rc));
	return r;
}

static int pmix_writer_id;

static inline int pmix_writer(void *arg)
{
	struct pmix *x = arg;
	int id = pmix_writer_id;
	struct mixer *m = calloc(1, sizeof(*m));
	char prefix[16], name[48];
	struct stress_value v;

	if (!m)
		CHILD_FAIL(x->rep, "calloc");
	snprintf(prefix, sizeof(prefix), "w%d", id);
	m->r = pmix_open(x, prefix);
	m->prefix = prefix;
	m->nnames = 24;
	m->exact = true;
	m->full_ok = true;
	m->ntags = 1;
	m->pid_ok = mix_pid_is_self;
	m->ops = 64;
	m->stop = &x->stop;
	m->rep = x->rep;
	while (!pmix_stopped(x)) {
		int got = 0, rc = 0;

		if (mix_run(m))
			_exit(1);
		/* A burst: fill what is left of the table, then drain it. */
		for (got = 0; got < 96; got++) {
			snprintf(name, sizeof(name), "f%d.%d", id, got);
			rc = dr_register(m->r, name, &v,
					 stress_value_make(&v, name, getpid(), 0, (uint64_t)got));
			if (rc)
				break;
		}
		if (rc && rc != -ENOSPC && rc != -EBUSY)
			CHILD_FAIL(x->rep, "mix writer %d: fill %s: %s", id, name, dr_strerror(rc));
		for (int i = 0; i < got; i++) {
			snprintf(name, sizeof(name), "f%d.%d", id, i);
			rc = dr_unregister(m->r, name);
			if (rc)
				CHILD_FAIL(x->rep, "mix writer %d: drain %s: %s", id, name,
					   dr_strerror(rc));
		}
		x->rounds[id]++;
	}
	dr_close(m->r);
	return 0;
}

static inline int pmix_check_visit(const struct dr_name_info *info, void *arg)
{
	struct pmix *x = arg;
	char name[DR_NAME_MAX + 1], why[200];

	memcpy(name, info->name, info->name_len);
	name[info->name_len] = 0;
	if (!stress_value_check(&info->entry, name, NULL, why, sizeof(why)))
		CHILD_FAIL(x->rep, "mix reader: dr_foreach: %s", why);
	return 0;
}

static inline int pmix_reader(void *arg)
{
	struct pmix *x = arg;
	dr_registry *r = pmix_open(x, "reader");
	uint64_t rng = stress_seed(77);
	char name[48], why[200];
	struct dr_stats st;
	struct dr_entry e;
	int rc;

	while (!pmix_stopped(x)) {
		rc = dr_foreach(r, pmix_check_visit, x);
		if (rc)
			CHILD_FAIL(x->rep, "mix reader: dr_foreach: %s", dr_strerror(rc));
		if ((rc = dr_read_lock(r)))
			CHILD_FAIL(x->rep, "mix reader: dr_read_lock: %s", dr_strerror(rc));
		for (int i = 0; i < 32; i++) {
			uint64_t z = stress_rand(&rng);

			snprintf(name, sizeof(name), "w%d.%d", (int)(z % PMIX_WRITERS),
				 (int)((z >> 8) % 24));
			rc = dr_whereis(r, name, &e);
			if (rc == 0 && !stress_value_check(&e, name, NULL, why, sizeof(why)))
				CHILD_FAIL(x->rep, "mix reader: whereis: %s", why);
			if (rc && rc != -ENOENT)
				CHILD_FAIL(x->rep, "mix reader: whereis %s: %s", name, dr_strerror(rc));
		}
		if ((rc = dr_read_unlock(r)))
			CHILD_FAIL(x->rep, "mix reader: dr_read_unlock: %s", dr_strerror(rc));
		if ((rc = dr_stats(r, &st)))
			CHILD_FAIL(x->rep, "mix reader: dr_stats: %s", dr_strerror(rc));
		if ((rc = dr_reap(r, NULL)))
			CHILD_FAIL(x->rep, "mix reader: dr_reap: %s", dr_strerror(rc));
		x->rounds[PMIX_WRITERS]++;
	}
	dr_close(r);
	return 0;
}

/* A child of the opener: registers two names and dies holding them. */
static inline int pmix_doomed(void *arg)
{
	struct pmix *x = arg;
	dr_registry *r = pmix_open(x, "doomed");
	struct stress_value v;
	char name[48];

	for (int i = 0; i < 2; i++) {
		snprintf(name, sizeof(name), "k%d.%d", (int)getpid(), i);
		(void)dr_register(r, name, &v, stress_value_make(&v, name, getpid(), 0, 1));
	}
	raise(SIGKILL);
	return 1;
}

static inline int pmix_opener(void *arg)
{
	struct pmix *x = arg;
	struct stress_value v;
	char name[48];
	int rc;

	for (unsigned k = 0; !pmix_stopped(x); k++) {
		dr_registry *r = pmix_open(x, "opener");

		for (int i = 0; i < 3; i++) {
			snprintf(name, sizeof(name), "o.%d", i);
			rc = dr_register(r, name, &v, stress_value_make(&v, name, getpid(), 0, k));
			if (rc && rc != -ENOSPC && rc != -EBUSY && rc != -EEXIST)
				CHILD_FAIL(x->rep, "mix opener: register %s: %s", name, dr_strerror(rc));
		}
		dr_close(r);
		if (k % 4 == 3) {
			pid_t pid = stress_spawn(pmix_doomed, x);

			if (stress_wait(pid, STRESS_WAIT_S) != 128 + SIGKILL)
				CHILD_FAIL(x->rep, "mix opener: a doomed child did not die as planned");
		}
		x->rounds[PMIX_WRITERS + 1]++;
	}
	return 0;
}

/* The echo worker: serves "mix.echo" from a mailbox it reopens every 200
 * messages, answering calls with their request. */
static inline int pmix_echo(void *arg)
{
	struct pmix *x = arg;
	dr_registry *r = pmix_open(x, "echo");
	struct stress_value v;
	struct dr_msg m;
	dr_mailbox *mb = NULL;
	int rc, n = 0;

	while (!pmix_stopped(x)) {
		if (!mb) {
			if ((rc = dr_mailbox_open(r, &mb)))
				CHILD_FAIL(x->rep, "mix echo: dr_mailbox_open: %s", dr_strerror(rc));
			rc = dr_serve(mb, "mix.echo", &v, stress_value_make(&v, "mix.echo", getpid(), 0, 1));
			if (rc == -ENOSPC || rc == -EBUSY) {
				dr_mailbox_close(mb);
				mb = NULL;
				stress_sleep_us(1000);
				continue;
			}
			if (rc)
				CHILD_FAIL(x->rep, "mix echo: dr_serve: %s", dr_strerror(rc));
		}
		rc = dr_recv(mb, &m, 20);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc)
			CHILD_FAIL(x->rep, "mix echo: dr_recv: %s", dr_strerror(rc));
		if (m.kind == DR_MSG_CALL) {
			rc = dr_reply(mb, &m, m.data, m.len);
			if (rc && rc != -ENOENT && rc != -EAGAIN)
				CHILD_FAIL(x->rep, "mix echo: dr_reply: %s", dr_strerror(rc));
		}
		if (++n % 200 == 0) {
			dr_mailbox_close(mb);
			mb = NULL;
		}
		x->rounds[PMIX_WRITERS + 2]++;
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

/* The caller: calls (waiting and not) and casts to the echo worker; an
 * answer must be the request itself. The worker reopens its mailbox, so
 * -ENOENT and -EOWNERDEAD are answers too. */
static inline int pmix_caller(void *arg)
{
	struct pmix *x = arg;
	dr_registry *r = pmix_open(x, "caller");
	uint64_t seq = 0, id, sent[1024] = { 0 }; /* the request of call id % 1024 */
	struct dr_msg m;
	dr_mailbox *mb;
	int rc;

	if ((rc = dr_mailbox_open(r, &mb)))
		CHILD_FAIL(x->rep, "mix caller: dr_mailbox_open: %s", dr_strerror(rc));
	while (!pmix_stopped(x)) {
		uint64_t got = 0;
		size_t len = sizeof(got);

		seq++;
		rc = dr_call(r, "mix.echo", &seq, sizeof(seq), &got, &len, 200);
		if (rc == 0 && (len != sizeof(seq) || got != seq))
			CHILD_FAIL(x->rep, "mix caller: call %llu answered %llu",
				   (unsigned long long)seq, (unsigned long long)got);
		if (rc && rc != -ENOENT && rc != -EOWNERDEAD && rc != -ETIMEDOUT && rc != -EAGAIN &&
		    rc != -EUSERS)
			CHILD_FAIL(x->rep, "mix caller: dr_call: %s", dr_strerror(rc));
		(void)dr_cast(r, "mix.echo", &seq, sizeof(seq), 0);
		for (int k = 0; k < 8; k++) {
			uint64_t req = seq * 8 + (uint64_t)k;

			if (dr_call_async(mb, "mix.echo", &req, sizeof(req), 200, &id) == 0)
				sent[id % 1024] = req;
		}
		while ((rc = dr_recv(mb, &m, 0)) == 0) {
			if (m.kind != DR_MSG_REPLY)
				CHILD_FAIL(x->rep, "mix caller: a message of kind %d", m.kind);
			if (m.status == 0 && (m.len != sizeof(seq) ||
					      memcmp(m.data, &sent[m.call_id % 1024], sizeof(seq)) != 0))
				CHILD_FAIL(x->rep, "mix caller: call %llu answered with another's request",
					   (unsigned long long)m.call_id);
		}
		if (rc != -EAGAIN)
			CHILD_FAIL(x->rep, "mix caller: dr_recv: %s", dr_strerror(rc));
		x->rounds[PMIX_WRITERS + 3]++;
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

/* Start the mix on seg, reporting into rep. */
static inline void pmix_start(struct pmix *x, const char *seg, struct stress_report *rep)
{
	x->seg = seg;
	x->rep = rep;
	__atomic_store_n(&x->stop, 0, __ATOMIC_RELEASE);
	for (int i = 0; i < PMIX_WRITERS; i++) {
		pmix_writer_id = i;
		x->pids[i] = stress_spawn(pmix_writer, x);
	}
	x->pids[PMIX_WRITERS] = stress_spawn(pmix_reader, x);
	x->pids[PMIX_WRITERS + 1] = stress_spawn(pmix_opener, x);
	x->pids[PMIX_WRITERS + 2] = stress_spawn(pmix_echo, x);
	x->pids[PMIX_WRITERS + 3] = stress_spawn(pmix_caller, x);
}

/* Let it run for ms, stop it, and wait until every mix process has left
 * the segment. Asserts that each made progress and none failed. */
static inline void pmix_run_stop(struct pmix *x, unsigned ms)
{
	stress_sleep_us(ms * 1000u);
	/* Each process has done a round at least, so every path ran. */
	for (int i = 0; i < PMIX_PROCS; i++)
		for (int waited = 0; x->rounds[i] == 0 && waited < 10000 && !x->rep->nfail; waited++)
			stress_sleep_us(1000);
	__atomic_store_n(&x->stop, 1, __ATOMIC_RELEASE);
	stress_wait_all(x->pids, PMIX_PROCS, STRESS_WAIT_S, x->rep);
	ASSERT_REPORT_CLEAN(x->rep);
}

#endif
