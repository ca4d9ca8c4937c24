/*
 * bridge.c - what only the bridge does to the segment: claim and give back
 * the bridge role, and publish the view (the writer's side of the protocol
 * in dri.h, struct dri_cluster).
 *
 * The role. A claimer takes the owner word by CAS from 0, or from a holder
 * that is dead (dri_owner_gone: the verdict every process then shares),
 * then serves the bridge's address (the global name of length 0) through
 * its mailbox, and last marks the segment as one a bridge has run on. So a
 * claimer killed before it served its address leaves a role that the next
 * claimer takes over and a segment that never had a bridge; one killed
 * after leaves a dead bridge: global operations fail with -ENOTCONN until
 * another claims the role. Release undoes the steps in the other order:
 * the address first (senders then find no bridge), then the owner word.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <distreg_admin.h>

#include "dri.h"

/* The bridge's address: the global name of length 0. */
#define ADDR ""
#define ADDR_FLAGS (DRI_REG_GLOBAL | DRI_REG_RESERVED)

/* The pid of the process holding owner id o (0 if out of range). */
static pid_t owner_pid(struct dr_registry *r, uint64_t o)
{
	uint32_t slot = DRI_OWNER_SLOT(o);

	return slot < r->max_procs ? r->procs[slot].pid : 0;
}

/* ---------------------------------------------------------------------- */
/* The role's liveness lock */

#ifdef DRI_LIVE_WORD
/*
 * The lock is held by a thread of the library's own (holder_main), not by
 * the thread that claims: that one may exec, which marks no lock that an
 * earlier tid of it took (exec gives a thread the leader's tid before the
 * kernel walks its robust list), or exit while the role is kept, or let
 * the role go from another thread. The holder thread does nothing but
 * hold: exec or exit of the process ends it through the kernel, which
 * marks the lock; giving the role back ends it through us. It never
 * unlocks: it exits holding the lock, which the kernel then marks, and the
 * next claimer takes it over (EOWNERDEAD). So glibc never follows the
 * lock's list pointers, which any process could have overwritten in the
 * segment; the holder puts back the values it took the lock with before it
 * exits, and the kernel's walk of its list goes nowhere else.
 */
struct dri_live {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int state;                /* LIVE_*, under mu */
	pid_t tid;                /* the holder thread's, once LIVE_HELD */
	pthread_mutex_t *m;       /* live_lock, through map */
	void *map;
	size_t map_len;
	sigset_t mask;            /* the creator's, back before exit handlers run */
};

enum { LIVE_STARTING, LIVE_HELD, LIVE_FAILED, LIVE_GO };

/* Whether m is a lock as dri_live_lock_init() makes them: one that is not
 * robust would never be marked, and its dead holder would look alive. */
static bool live_lock_sane(const pthread_mutex_t *m)
{
	pthread_mutex_t ref;
	bool same;

	if (dri_live_lock_init(&ref))
		return false;
	same = CMM_LOAD_SHARED(m->__data.__kind) == ref.__data.__kind;
	pthread_mutex_destroy(&ref); /* which changes its kind */
	return same;
}

/* Whether the kernel knows this thread's robust list: glibc goes on when
 * set_robust_list fails (a seccomp filter installed after start-up, say),
 * and a lock on a list the kernel does not know is never marked. */
static bool robust_registered(void)
{
	void *head = NULL;
	size_t len = 0;

	return syscall(SYS_get_robust_list, 0, &head, &len) == 0 && head != NULL;
}

/* This thread's tid as /proc names it (its pid namespace may not be ours:
 * unshare -p without a /proc of its own); 0 if /proc cannot tell. */
static pid_t proc_self_tid(void)
{
	char l[64], *t;
	ssize_t n = readlink("/proc/thread-self", l, sizeof(l) - 1);

	if (n <= 0)
		return 0;
	l[n] = 0;
	t = strstr(l, "/task/");
	return t ? atoi(t + 6) : 0;
}

/* Whether every thread of the process but self (its tid as /proc names
 * it) has ended: a thread group's first thread stays a zombie until the
 * last one ends. Not known (no /proc): false. */
static bool only_thread_left(pid_t self)
{
	char path[64], buf[512], *p;
	struct dirent *e;
	bool alone = true;
	DIR *d = opendir("/proc/self/task");

	if (!d)
		return false;
	while (alone && (e = readdir(d))) {
		int tid = atoi(e->d_name);

		if (tid <= 0 || tid == self)
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
		errno = 0;
		p = dri_proc_stat(path, buf, sizeof(buf));
		/* Gone meanwhile, or a zombie ('Z') or dead ('X'): ended. Not
		 * read for another reason (EMFILE, ENOMEM): not known, alive. */
		if (!p && errno && errno != ENOENT && errno != ESRCH)
			alone = false;
		else
			alone = !p || p[1] != ' ' || p[2] == 'Z' || p[2] == 'X';
	}
	closedir(d);
	return alone;
}

/* How often the holder looks whether it is the last thread left. */
#define LIVE_LAST_CHECK_S 1

static void *holder_main(void *p)
{
	struct dri_live *h = p;
	struct __pthread_internal_list taken;
	/* No /proc of ours to tell when we are the last thread: no lock, or
	 * a main thread's pthread_exit() would never end the process. */
	pid_t ptid = proc_self_tid();
	int err = ptid > 0 && robust_registered() ? pthread_mutex_trylock(h->m) : ENOTSUP;
	bool held = err == 0 || err == EOWNERDEAD, last = false;

	/* A dead holder's lock is ours once made consistent; one we hold but
	 * could not make so, we only let go of, by exiting. */
	if (err == EOWNERDEAD)
		err = pthread_mutex_consistent(h->m) ? ENOTRECOVERABLE : 0;
	if (held)
		taken = h->m->__data.__list;
	pthread_mutex_lock(&h->mu);
	h->tid = gettid();
	h->state = err ? LIVE_FAILED : LIVE_HELD;
	pthread_cond_broadcast(&h->cv);
	/* Until the role ends; or until every other thread has ended (the
	 * main thread's pthread_exit() as the process's last own thread):
	 * then we end too, and glibc ends the process as it would have
	 * without us (exit(0) after the last thread), the lock with it. */
	while (!err && h->state != LIVE_GO && !last) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += LIVE_LAST_CHECK_S;
		if (pthread_cond_timedwait(&h->cv, &h->mu, &ts) == ETIMEDOUT &&
		    h->state != LIVE_GO) {
			pthread_mutex_unlock(&h->mu);
			last = only_thread_left(ptid);
			pthread_mutex_lock(&h->mu);
		}
	}
	pthread_mutex_unlock(&h->mu);
	/* Exit holding it: the kernel marks it, following only the pointers
	 * glibc wrote when we took it. */
	if (held && memcmp(&h->m->__data.__list, &taken, sizeof(taken)))
		memcpy(&h->m->__data.__list, &taken, sizeof(taken));
	/* The last thread: glibc runs exit(0), and its handlers, on us; with
	 * the program's signal mask, as on the thread that would have. */
	if (last)
		pthread_sigmask(SIG_SETMASK, &h->mask, NULL);
	return NULL;
}

/* The holder thread's end: once joined, the kernel has walked its list
 * (before it let the join return), so the lock's page can go. */
static void holder_stop(struct dri_live *h)
{
	pthread_mutex_lock(&h->mu);
	h->state = h->state == LIVE_HELD ? LIVE_GO : h->state;
	pthread_cond_broadcast(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->thread, NULL);
}

/* h's memory; its page too unless a robust list may still point into it. */
static void holder_free(struct dri_live *h, bool unmap)
{
	if (unmap)
		munmap(h->map, h->map_len);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	free(h);
}

/*
 * A holder thread for r's role, which has taken live_lock; NULL if it
 * could not (a lock that is not the one creation made, one held by a
 * thread that lives, no memory or thread). It maps the lock's page on its
 * own, so that the page stays mapped until the thread is gone, dr_close()
 * or not. Signals are blocked in it: it is never the thread a signal for
 * the process runs on.
 */
static struct dri_live *holder_start(struct dr_registry *r)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t off = (size_t)((uint8_t *)&r->cluster->live_lock - r->base);
	size_t start = off & ~(pg - 1);
	struct dri_live *h;
	pthread_condattr_t ca;
	sigset_t all, old;
	bool held;
	int err;

	if (!live_lock_sane(&r->cluster->live_lock))
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->map_len = (off + sizeof(pthread_mutex_t) - start + pg - 1) & ~(pg - 1);
	/* Not inherited (no fork() between the two: dri_fork_hold): a child
	 * forked while the holder starts or ends would not know to unmap it. */
	dri_fork_hold();
	h->map = mmap(NULL, h->map_len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, (off_t)start);
	if (h->map != MAP_FAILED)
		(void)madvise(h->map, h->map_len, MADV_DONTFORK);
	dri_fork_release();
	if (h->map == MAP_FAILED) {
		free(h);
		return NULL;
	}
	h->m = (pthread_mutex_t *)((uint8_t *)h->map + (off - start));
	pthread_mutex_init(&h->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->cv, &ca);
	pthread_condattr_destroy(&ca);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	h->mask = old;
	/* Known to a child forked from here on (dri_live_close unmaps it). */
	r->live = h;
	err = pthread_create(&h->thread, NULL, holder_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		r->live = NULL;
		holder_free(h, true);
		return NULL;
	}
	pthread_mutex_lock(&h->mu);
	while (h->state == LIVE_STARTING)
		pthread_cond_wait(&h->cv, &h->mu);
	held = h->state == LIVE_HELD;
	pthread_mutex_unlock(&h->mu);
	if (!held) {
		holder_stop(h);
		r->live = NULL;
		holder_free(h, true);
		return NULL;
	}
	return h;
}
#endif

/*
 * After a claim, under r->view_lock: a holder thread takes live_lock, and
 * `live` names it. `live` is cleared before the lock is taken (cluster.c,
 * holder_vouched, says why). Without a holder thread (see holder_start),
 * `live` stays 0 and readers ask the kernel.
 */
static void live_take(struct dr_registry *r)
{
#ifdef DRI_LIVE_WORD
	struct dri_cluster *c = r->cluster;
	int cs;

	uatomic_set(&c->live, 0);
	cmm_smp_mb();
	/* Not cancellable: pthread_cond_wait and pthread_join are
	 * cancellation points, and a claimer cancelled there would leave
	 * view_lock locked and a holder thread running. */
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs);
	if (!r->live)
		(void)holder_start(r); /* sets r->live */
	pthread_setcancelstate(cs, NULL);
	if (!r->live)
		return;
	DRI_CRASHPOINT(bridge_live_locked);
	st_rel64(&c->live, (uint64_t)r->live->tid << DRI_LIVE_TID_SHIFT | r->owner);
#else
	(void)r;
#endif
}

/* The role ends, or the segment is closed, under r->view_lock where the
 * role ends: `live` no longer names us, and our holder thread ends. In a
 * child that inherited the handle there is no holder thread: only the
 * page's mapping is ours. */
static void live_give(struct dr_registry *r, bool role_held)
{
#ifdef DRI_LIVE_WORD
	struct dri_live *h = r->live;

	if (role_held) {
		uatomic_set(&r->cluster->live, 0);
		cmm_smp_mb();
	}
	if (!h)
		return;
	if (r->pid == getpid() && pthread_equal(h->thread, pthread_self())) {
		/* Exit handlers on the holder thread, which ended the process:
		 * its robust list points into the page until the kernel walks
		 * it at exit, so the page stays; holder_main() is over, and
		 * nothing reads h again. */
		r->live = NULL;
		holder_free(h, false);
		return;
	}
	if (r->pid == getpid()) {
		int cs;

		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cs); /* see live_take */
		holder_stop(h);
		r->live = NULL; /* after the join: a child forked meanwhile unmaps */
		holder_free(h, true);
		pthread_setcancelstate(cs, NULL);
	} else {
		r->live = NULL; /* the page was not inherited (MADV_DONTFORK) */
		free(h);
	}
#else
	(void)r;
	(void)role_held;
#endif
}

/* Before the segment is unmapped. A role still held ends with the process
 * or the handle's mailbox (role_end); here only our holder thread goes,
 * and `live` with it if it still names that thread. */
void dri_live_close(struct dr_registry *r)
{
#ifdef DRI_LIVE_WORD
	if (!r->live)
		return;
	live_give(r, r->base && r->pid == getpid() &&
			     ld_acq64(&r->cluster->live) ==
				     ((uint64_t)r->live->tid << DRI_LIVE_TID_SHIFT | r->owner));
#else
	(void)r;
#endif
}

/* ---------------------------------------------------------------------- */
/* The role */

/* dri_mb_begin(), and getpid() too: the role's calls are rare, and a child
 * made without the fork handlers (which has our cached pid) must not end
 * or take its parent's role. */
static int role_begin(dr_mailbox *mb)
{
	int err = dri_mb_begin(mb);

	if (!err && mb->r->pid != getpid())
		err = -ECHILD;
	return err;
}

DR_EXPORT int dr_admin_bridge_claim(dr_mailbox *mb, pid_t *holder)
{
	struct dr_registry *r;
	struct dri_cluster *c;
	struct dr_entry e;
	int err = role_begin(mb);

	if (holder)
		*holder = 0;
	if (err)
		return err;
	if (mb->for_replies)
		return -EINVAL;
	r = mb->r;
	c = r->cluster;
	/* Bounded: each round either claims, or finds a live holder, or
	 * lost a CAS to another claimer (who is then the live holder). */
	for (int tries = 0;; tries++) {
		uint64_t o = ld_acq64(&c->owner);

		if (o == r->owner && ld_acq32(&c->mbox) == mb->ref)
			return 0; /* ours already, through this mailbox */
		if (o != 0 && (o == r->owner || !dri_owner_gone(r, o))) {
			if (holder)
				*holder = owner_pid(r, o);
			return -EBUSY;
		}
		if (uatomic_cmpxchg(&c->owner, o, r->owner) == o)
			break;
		if (tries == 64)
			return -EBUSY;
	}
	DRI_CRASHPOINT(bridge_claimed);
	st_rel32(&c->mbox, 0);
	c->pid = r->pid;
	/* A dead holder's address, if still linked, is taken over. */
	err = dri_register(r, ADDR, 0, NULL, 0, mb->ref, ADDR_FLAGS);
	if (!err)
		err = dri_whereis(r, ADDR, 0, ADDR_FLAGS, &e);
	if (err) {
		(void)dri_unregister(r, ADDR, 0, ADDR_FLAGS, 0, false);
		uatomic_cmpxchg(&c->owner, r->owner, 0);
		return err == -EEXIST ? -EBUSY : err;
	}
	c->regid = e.regid;
	st_rel32(&c->mbox, mb->ref);
	DRI_CRASHPOINT(bridge_served);
	if (ld_acq32(&c->ever) != 1)
		st_rel32(&c->ever, 1);
	pthread_mutex_lock(&r->view_lock);
	live_take(r);
	pthread_mutex_unlock(&r->view_lock);
	return 0;
}

/* End the role if mb holds it: the address first, so that senders find no
 * bridge rather than a mailbox that is going. */
static void role_end(dr_mailbox *mb)
{
	struct dr_registry *r = mb->r;
	struct dri_cluster *c = r->cluster;

	/* After any publication in progress in another thread of ours: one
	 * resumed after the role passed on would write into the copy the
	 * next holder publishes. */
	pthread_mutex_lock(&r->view_lock);
	if (ld_acq64(&c->owner) != r->owner || ld_acq32(&c->mbox) != mb->ref) {
		pthread_mutex_unlock(&r->view_lock);
		return;
	}
	live_give(r, true);
	(void)dri_unregister(r, ADDR, 0, ADDR_FLAGS, 0, false);
	DRI_CRASHPOINT(bridge_releasing);
	st_rel32(&c->mbox, 0);
	c->regid = 0;
	uatomic_cmpxchg(&c->owner, r->owner, 0);
	pthread_mutex_unlock(&r->view_lock);
}

DR_EXPORT void dr_admin_bridge_release(dr_mailbox *mb)
{
	if (role_begin(mb) == 0)
		role_end(mb);
}

/* dr_mailbox_close() of mb, by a process that may still write. */
void dri_bridge_closing(dr_mailbox *mb)
{
	if (!mb->for_replies)
		role_end(mb);
}

/* ---------------------------------------------------------------------- */
/* Publishing */

/* Everything dr_admin_view_publish() refuses, checked before anything is
 * written: bad input changes nothing. */
static int hosts_check(const struct dr_host *h, size_t n)
{
	unsigned selves = 0;

	if (!h || n == 0 || n > DR_HOSTS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		size_t idl = strnlen(h[i].id, DR_HOST_MAX + 1);

		if (idl == 0 || idl > DR_HOST_MAX || strnlen(h[i].rpc, DR_ADDR_MAX + 1) > DR_ADDR_MAX ||
		    h[i].state < DR_HOST_UP || h[i].state > DR_HOST_IGNORED ||
		    (h[i].self != 0 && h[i].self != 1))
			return -EINVAL;
		for (size_t j = 0; j < i; j++)
			if (strcmp(h[j].id, h[i].id) == 0)
				return -EINVAL;
		selves += (unsigned)h[i].self;
	}
	return selves == 1 ? 0 : -EINVAL;
}

static void host_write(struct dri_view *v, uint32_t i, const struct dr_host *h)
{
	struct dri_vhost_hot *hot = &v->hot[i];
	struct dri_vhost *x = &v->host[i];
	size_t idl = strlen(h->id), rl = strlen(h->rpc);

	memset(x, 0, sizeof(*x));
	memcpy(x->id, h->id, idl);
	memcpy(x->rpc, h->rpc, rl);
	x->incarnation = h->incarnation;
	memset(hot, 0, sizeof(*hot));
	hot->seed = dri_host_seed(h->id, idl);
	hot->state = (uint8_t)h->state;
	hot->self = (uint8_t)h->self;
	hot->id_len = (uint8_t)idl;
	hot->rpc_len = (uint8_t)rl;
}

/* The epoch of the current view (0: none, or none readable). */
static uint64_t current_epoch(struct dr_registry *r)
{
	struct dri_view_snap *s = malloc(sizeof(*s));
	uint64_t e = 0;

	if (s && dri_view_snapshot(r, s) == 1)
		e = s->epoch;
	free(s);
	return e;
}

DR_EXPORT int dr_admin_view_publish(dr_mailbox *mb, const struct dr_host *hosts, size_t n,
				    uint64_t epoch)
{
	struct dr_registry *r;
	struct dri_cluster *c;
	struct dri_view *v;
	uint64_t s, odd;
	uint32_t i, w;
	int err = role_begin(mb);

	if (err)
		return err;
	r = mb->r;
	c = r->cluster;
	if (ld_acq64(&c->owner) != r->owner)
		return -EPERM;
	err = hosts_check(hosts, n);
	if (err)
		return err;

	/* One writer: the role holder's process, one thread at a time. */
	pthread_mutex_lock(&r->view_lock);
	if (epoch <= current_epoch(r)) {
		err = -EINVAL;
		goto out;
	}
	if (dri_self_buried(r) || ld_acq64(&c->owner) != r->owner) {
		err = dri_self_buried(r) ? -ENOLCK : -EPERM;
		goto out;
	}
	i = ld_acq32(&c->view_index);
	w = (i & 1) ^ 1;
	v = &c->view[w];
	/* Odd from even, or odd again (moved on) from the odd sequence a
	 * publisher killed in the middle left. */
	s = ld_acq64(&v->seq);
	odd = s + 1 + (s & 1);
	CMM_STORE_SHARED(v->seq, odd);
	cmm_smp_wmb(); /* odd before any byte of the copy changes */
	v->epoch = epoch;
	v->nhosts = (uint32_t)n;
	for (size_t i = 0; i < n; i++) {
		host_write(v, (uint32_t)i, &hosts[i]);
		if (i == n / 2)
			DRI_CRASHPOINT(view_writing);
	}
	st_rel64(&v->seq, odd + 1); /* the copy, whole, before it is even */
	DRI_CRASHPOINT(view_written);
	st_rel32(&c->view_index, i + 1); /* now names copy w */
out:
	pthread_mutex_unlock(&r->view_lock);
	return err;
}
