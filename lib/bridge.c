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
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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

/*
 * Map the page(s) of live_lock on their own: a thread holding a robust
 * lock keeps its address in a list that the kernel walks as it exits, so
 * that address must stay mapped while any thread of ours may hold it,
 * dr_close() or not (dri_live_close).
 */
static int live_map(struct dr_registry *r)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	size_t off = (size_t)((uint8_t *)&r->cluster->live_lock - r->base);
	size_t start = off & ~(pg - 1);
	size_t len = (off + sizeof(pthread_mutex_t) - start + pg - 1) & ~(pg - 1);
	void *p;

	if (!live_lock_sane(&r->cluster->live_lock))
		return -EBADMSG;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, (off_t)start);
	if (p == MAP_FAILED)
		return -errno;
	r->live_map = p;
	r->live_map_len = len;
	r->live_m = (pthread_mutex_t *)((uint8_t *)p + (off - start));
	return 0;
}

static void live_unmap(struct dr_registry *r)
{
	if (r->live_map)
		munmap(r->live_map, r->live_map_len);
	r->live_map = NULL;
	r->live_m = NULL;
}
#endif

/*
 * After a claim, under r->view_lock: the calling thread takes live_lock
 * and names itself in `live`. `live` is cleared before the lock is taken
 * (cluster.c, holder_vouched, says why). A lock whose holder died is
 * taken over (EOWNERDEAD); one held by a thread that lives (another of
 * ours, or of a process that gave the role back from another thread) is
 * left: readers then ask the kernel.
 */
static void live_take(struct dr_registry *r)
{
#ifdef DRI_LIVE_WORD
	struct dri_cluster *c = r->cluster;
	pid_t tid = gettid();

	uatomic_set(&c->live, 0);
	cmm_smp_mb();
	if (r->live_tid != tid) {
		int err;

		if (!r->live_m && live_map(r))
			return;
		err = pthread_mutex_trylock(r->live_m);
		if (err == EOWNERDEAD)
			err = pthread_mutex_consistent(r->live_m);
		if (err) {
			if (!r->live_tid)
				live_unmap(r); /* never locked through it */
			return;
		}
		r->live_tid = tid;
	}
	DRI_CRASHPOINT(bridge_live_locked);
	st_rel64(&c->live, (uint64_t)tid << 32 | dri_live_tag(r->owner));
#else
	(void)r;
#endif
}

/* The role ends, under r->view_lock: `live` no longer names us, and the
 * lock is let go of if this thread holds it (else it stays with its
 * thread, whose exit lets it go). */
static void live_give(struct dr_registry *r)
{
#ifdef DRI_LIVE_WORD
	uatomic_set(&r->cluster->live, 0);
	cmm_smp_mb();
	if (r->live_tid && r->live_tid == gettid()) {
		pthread_mutex_unlock(r->live_m);
		r->live_tid = 0;
		live_unmap(r);
	}
#else
	(void)r;
#endif
}

/* Before the segment is unmapped. A lock still held by another thread of
 * ours keeps its mapping (its page stays mapped until the process ends):
 * the kernel writes to it when that thread exits. */
void dri_live_close(struct dr_registry *r)
{
#ifdef DRI_LIVE_WORD
	if (r->live_tid && r->live_tid == gettid() && r->pid == getpid()) {
		/* While we hold the lock, `live` names us or no one. */
		if (r->base)
			uatomic_set(&r->cluster->live, 0);
		pthread_mutex_unlock(r->live_m);
		r->live_tid = 0;
	}
	if (!r->live_tid)
		live_unmap(r);
#else
	(void)r;
#endif
}

/* ---------------------------------------------------------------------- */
/* The role */

DR_EXPORT int dr_admin_bridge_claim(dr_mailbox *mb, pid_t *holder)
{
	struct dr_registry *r;
	struct dri_cluster *c;
	struct dr_entry e;
	int err = dri_mb_begin(mb);

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
	live_give(r);
	(void)dri_unregister(r, ADDR, 0, ADDR_FLAGS, 0, false);
	DRI_CRASHPOINT(bridge_releasing);
	st_rel32(&c->mbox, 0);
	c->regid = 0;
	uatomic_cmpxchg(&c->owner, r->owner, 0);
	pthread_mutex_unlock(&r->view_lock);
}

DR_EXPORT void dr_admin_bridge_release(dr_mailbox *mb)
{
	if (dri_mb_begin(mb) == 0)
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
	int err = dri_mb_begin(mb);

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
