/*
 * The random writer shared by test_mix.c and test_sigkill.c: a mix of
 * dr_whereis (40%), dr_register (15%: new names and value updates) and
 * dr_unregister (45%) over a pool of names, where every lookup is checked.
 *
 * Values are self-checking (stress.h), so a torn value, another name's
 * value or one its owner never wrote is caught. A writer with a handle of
 * its own ("exact") also knows exactly which names it holds, with their
 * regids and latest values: those must never change or vanish under it,
 * every update of them must succeed, and it must never unregister a name
 * it does not hold.
 */
#ifndef DR_STRESS_MIXER_H
#define DR_STRESS_MIXER_H

#include <pthread.h>

#include "stress.h"

#define MIX_MAX_NAMES 512

/* What one writer holds, name by name. */
struct holding {
	bool owned[MIX_MAX_NAMES];
	uint64_t seq[MIX_MAX_NAMES];
	uint64_t regid[MIX_MAX_NAMES];
};

struct mixer {
	dr_registry *r;
	const char *prefix;        /* names are "<prefix>.<i>" */
	int nnames;                /* at most MIX_MAX_NAMES */
	int id;                    /* the value's tag */
	bool exact;                /* the handle is ours alone: track holdings */
	bool full_ok;              /* -ENOSPC and -EBUSY are answers, not failures
				    * (a small table shared with other writers) */
	uint32_t ntags;            /* tags are 0..ntags-1 */
	/* Whether pid may own a name of the pool (nonzero) */
	bool (*pid_ok)(const void *arg, pid_t pid);
	const void *pid_arg;
	uint64_t ops;              /* stop after this many operations */
	const int *stop;           /* or once *stop is nonzero (may be NULL) */
	struct stress_report *rep;
	struct holding h;
	unsigned long counts[4];   /* lookups found, registered, unregistered, EEXIST */
};

static inline void mix_name(const struct mixer *m, char *buf, size_t len, int i)
{
	snprintf(buf, len, "%s.%d", m->prefix, i);
}

/* One lookup of name i, checked against what this writer knows. false:
 * noted in m->rep. */
static inline bool mix_check(struct mixer *m, int i, const char *ctx)
{
	struct stress_value v;
	struct dr_entry e;
	char name[64], why[200];
	int rc;

	mix_name(m, name, sizeof(name), i);
	rc = dr_whereis(m->r, name, &e);
	if (rc == -ENOENT) {
		if (m->exact && m->h.owned[i]) {
			stress_note(m->rep, "writer %d (%s): own name %s vanished", m->id, ctx, name);
			return false;
		}
		return true;
	}
	if (rc) {
		stress_note(m->rep, "writer %d (%s): whereis %s: %s", m->id, ctx, name, dr_strerror(rc));
		return false;
	}
	m->counts[0]++;
	if (!stress_value_check(&e, name, &v, why, sizeof(why))) {
		stress_note(m->rep, "writer %d (%s): %s", m->id, ctx, why);
		return false;
	}
	if (!m->pid_ok(m->pid_arg, e.pid) || v.tag >= m->ntags) {
		stress_note(m->rep, "writer %d (%s): %s held by pid %d tag %u, not one of ours", m->id,
			    ctx, name, (int)e.pid, v.tag);
		return false;
	}
	if (!m->exact)
		return true;
	if (v.tag == (uint32_t)m->id && e.pid == getpid()) {
		if (!m->h.owned[i] || v.seq != m->h.seq[i] || e.regid != m->h.regid[i]) {
			stress_note(m->rep,
				    "writer %d (%s): %s shows our value seq %llu regid %llu, we %s it "
				    "with seq %llu regid %llu", m->id, ctx, name,
				    (unsigned long long)v.seq, (unsigned long long)e.regid,
				    m->h.owned[i] ? "hold" : "do not hold",
				    (unsigned long long)m->h.seq[i], (unsigned long long)m->h.regid[i]);
			return false;
		}
	} else if (m->h.owned[i]) {
		stress_note(m->rep, "writer %d (%s): we hold %s but it shows tag %u's value (pid %d)",
			    m->id, ctx, name, v.tag, (int)e.pid);
		return false;
	}
	return true;
}

/* Run the random mix; 0, or -1 after noting a failure in m->rep. */
static inline int mix_run(struct mixer *m)
{
	uint64_t rng = stress_seed((uint64_t)m->id + 1), seq = 0;
	struct stress_value v;
	struct dr_entry e;
	char name[64];
	pid_t self = getpid();
	int rc;

	for (uint64_t op = 0; op < m->ops; op++) {
		uint64_t x = stress_rand(&rng);
		int i = (int)(x % (uint64_t)m->nnames), kind = (int)((x >> 32) % 100);

		if ((op & 255) == 0) {
			if (__atomic_load_n(&m->rep->nfail, __ATOMIC_ACQUIRE))
				return -1; /* someone else failed: stop early */
			if (m->stop && __atomic_load_n(m->stop, __ATOMIC_ACQUIRE))
				break;
		}
		mix_name(m, name, sizeof(name), i);
		if (kind < 40) {
			if (!mix_check(m, i, "lookup"))
				return -1;
		} else if (kind < 55) {
			bool had = m->exact && m->h.owned[i];

			seq++;
			rc = dr_register(m->r, name, &v,
					 stress_value_make(&v, name, self, (uint32_t)m->id, seq));
			if (rc == -EEXIST && !had) {
				m->counts[3]++;
				continue;
			}
			if (m->full_ok && !had && (rc == -ENOSPC || rc == -EBUSY))
				continue;
			if (rc) {
				stress_note(m->rep, "writer %d: register %s (%s): %s", m->id, name,
					    had ? "update" : "new", dr_strerror(rc));
				return -1;
			}
			m->counts[1]++;
			if (!m->exact)
				continue;
			if (!had) {
				/* Learn the regid; nobody else may touch the name now. */
				rc = dr_whereis(m->r, name, &e);
				if (rc || e.pid != self) {
					stress_note(m->rep, "writer %d: just registered %s, whereis: %s pid %d",
						    m->id, name, dr_strerror(rc), rc ? 0 : (int)e.pid);
					return -1;
				}
				m->h.regid[i] = e.regid;
			}
			m->h.owned[i] = true;
			m->h.seq[i] = seq;
			if (!mix_check(m, i, had ? "after update" : "after register"))
				return -1;
		} else {
			bool had = m->exact && m->h.owned[i];

			rc = dr_unregister(m->r, name);
			/* Not held: another writer's (-EPERM) or nobody's
			 * (-ENOENT, also for a dead owner's, which it reaps);
			 * a shared handle may also hold it. */
			if (had ? rc != 0
				: !(rc == -EPERM || rc == -ENOENT || (!m->exact && rc == 0))) {
				stress_note(m->rep, "writer %d: unregister %s (%s): %s", m->id, name,
					    had ? "held" : "not held", dr_strerror(rc));
				return -1;
			}
			if (rc == 0)
				m->counts[2]++;
			m->h.owned[i] = false;
		}
	}
	/* Quiet check of everything we hold. */
	for (int i = 0; i < m->nnames; i++)
		if (!mix_check(m, i, "final"))
			return -1;
	return 0;
}

/* pid_ok for a pool that only this process's threads use. */
static inline bool mix_pid_is_self(const void *arg, pid_t pid)
{
	(void)arg;
	return pid == getpid();
}

struct mix_start {
	struct mixer *m;
	pthread_barrier_t *go;
};

static inline void *mix_thread(void *p)
{
	struct mix_start *t = p;

	pthread_barrier_wait(t->go);
	return mix_run(t->m) == 0 ? NULL : (void *)1;
}

/* Run m[0..n) (n at most MIX_MAX_THREADS) each in a thread of its own,
 * all started together, and wait for them. */
#define MIX_MAX_THREADS 64
static inline void mix_threads(struct mixer *m, int n)
{
	struct mix_start ts[MIX_MAX_THREADS];
	pthread_t tid[MIX_MAX_THREADS];
	pthread_barrier_t go;

	cr_assert_leq(n, MIX_MAX_THREADS);
	cr_assert_eq(pthread_barrier_init(&go, NULL, (unsigned)n), 0);
	for (int i = 0; i < n; i++) {
		ts[i] = (struct mix_start){ .m = &m[i], .go = &go };
		cr_assert_eq(pthread_create(&tid[i], NULL, mix_thread, &ts[i]), 0);
	}
	for (int i = 0; i < n; i++)
		cr_assert_eq(pthread_join(tid[i], NULL), 0);
	pthread_barrier_destroy(&go);
}

#endif
