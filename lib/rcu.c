/*
 * rcu.c - read-side sections and memory reclamation across processes.
 *
 * liburcu's flavours keep their reader registry in process memory, so they
 * cannot see readers in other processes. This is the LMDB reader-table idea
 * with epochs: every reading thread owns a cache-line-sized slot in the
 * segment and stores there the global epoch it entered at (0 outside).
 *
 * An unlinked entry is retired by whoever unlinked it: its state word
 * becomes RETIRED(ep), ep being the epoch loaded after the unlink, and it
 * is remembered in that thread's private batch. To free retired entries:
 *   1. increment the epoch, from T to T+1;
 *   2. run membarrier(GLOBAL_EXPEDITED) (or, in fence mode, a fence), so
 *      every reader that entered before step 1 has its epoch store visible,
 *      and every reader that enters later sees every unlink before step 1;
 *   3. scan the reader slots for the oldest epoch E at which a live reader
 *      entered (dead readers' slots are cleared). A reader that entered at
 *      E loaded E after the epoch moved past every ep < E, so after those
 *      unlinks: it cannot hold an entry retired before E;
 *   4. free every entry seen RETIRED(ep) with ep <= T and ep < E, each by
 *      CAS from that exact word, so two reclaimers racing on one entry free
 *      it once, and a later retirement of a reused entry is left alone.
 * A stalled reader thus holds back only what was retired after it entered.
 * A reclaimer never waits for a reader unless it has nothing left to
 * allocate, and then only for a bounded time.
 *
 * The memory-model assumption. Step 3's argument is a chain across three
 * locations in three threads: the retirer's unlink (a CAS) comes before its
 * load of the epoch, which read a value below the reclaimer's increment (a
 * locked RMW), which comes before the reclaimer's membarrier and scan; a
 * reader that loaded the incremented epoch must then see the unlink. That
 * holds where every CPU observes stores in one order consistent with each
 * CPU's program order around its RMWs: x86-64 (TSO, with locked
 * instructions as full fences) and ARMv8 (other-multi-copy atomic, with the
 * acquire loads and the full barriers of the CAS and membarrier used here).
 * Plain C11 does not promise it without making every one of those accesses
 * seq_cst; the library builds only for those two architectures' models.
 * The same chain is what lets a process that found an entry through the
 * table inside its section rely on the entry's retirement epoch being at or
 * after the one it entered at (table.c, dri_delete_exact).
 *
 * Reader slots. A slot's owner word says who may write its epoch; only the
 * owning thread ever does. Claiming raises the high-water mark first and
 * takes the owner word second, so an owned slot is always below the mark,
 * even if the claimer dies between the two. A reaper that finds the owner
 * dead frees the slot by CAS on the owner word and never touches the epoch:
 * between its liveness check and its write the slot may have been freed by
 * someone else and taken by a live reader, whose epoch is not the reaper's
 * to clear. A dead reader's stale epoch in a free slot is ignored (owner 0)
 * and cleared by the next claimer, which owns the slot by then.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dri.h"

__thread struct dri_tcache dri_tcache __attribute__((tls_model("initial-exec")));


static void reader_release(struct dri_reader *rd)
{
	st_rel64(&rd->epoch, 0);
	st_rel64(&rd->owner, 0);
}

/* Raise the high-water mark to at least n. */
static void hwm_raise(struct dr_registry *r, uint32_t n)
{
	uint32_t h;

	do {
		h = ld_acq32(&r->hdr->readers_hwm);
		if (h >= n)
			return;
	} while (uatomic_cmpxchg(&r->hdr->readers_hwm, h, n) != h);
}

static int reader_claim(struct dr_registry *r, struct dri_thread *t)
{
	uint32_t n = r->max_threads;
	int pass;

	/* Slots are taken lowest first, so the scanned range stays short. */
	for (pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < n; i++) {
			struct dri_reader *rd = &r->readers[i];

			if (CMM_LOAD_SHARED(rd->owner) != 0)
				continue;
			/* The mark first: a slot owned above it would never
			 * be scanned, so never reaped, and lost for good. */
			hwm_raise(r, i + 1);
			DRI_CRASHPOINT(reader_claiming);
			if (uatomic_cmpxchg(&rd->owner, 0, r->owner) != 0)
				continue;
			/* Ours: clear what a dead holder may have left. */
			st_rel64(&rd->epoch, 0);
			rd->tid = (int32_t)syscall(SYS_gettid);
			t->slot = rd;
			t->slot_idx = i;
			DRI_CRASHPOINT(reader_claimed);
			return 0;
		}
		if (pass == 0 && dri_reap_readers(r) == 0)
			break;
	}
	return -EUSERS;
}

static void thread_free(struct dri_thread *t, bool shared)
{
	struct dr_registry *r = t->r;

	if (t->reply_mb)
		dri_mailbox_free(t->reply_mb, shared);
	if (shared) {
		t->nest = 0;
		st_rel64(&t->slot->epoch, 0);
		/* One attempt to free what this thread retired; what stays
		 * RETIRED is found by the next full scan. */
		if (t->nretired)
			dri_reclaim_own(r, t);
		dri_reuse_flush(r, t);
		reader_release(t->slot);
	}
	if (dri_tcache.t == t)
		memset(&dri_tcache, 0, sizeof(dri_tcache));
	free(t);
}

/* pthread key destructor: the thread exits. */
static void thread_exit(void *p)
{
	struct dri_thread *t = p, **pp;
	struct dr_registry *r = t->r;

	pthread_mutex_lock(&r->lock);
	for (pp = &r->threads; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	pthread_mutex_unlock(&r->lock);
	thread_free(t, r->pid == dri_self_pid && r->pid == getpid() && !dri_self_buried(r));
}

int dri_thread_key_create(struct dr_registry *r)
{
	return -pthread_key_create(&r->key, thread_exit);
}

int dri_thread_get_slow(struct dr_registry *r, struct dri_thread **out)
{
	struct dri_thread *t = pthread_getspecific(r->key);
	int err;

	if (!t) {
		t = calloc(1, sizeof(*t));
		if (!t)
			return -ENOMEM;
		t->r = r;
		err = reader_claim(r, t);
		if (err) {
			free(t);
			return err;
		}
		t->cursor = (uint32_t)(((uint64_t)syscall(SYS_gettid) * 0x9e3779b97f4a7c15ull) >> 32) % r->capacity;
		pthread_setspecific(r->key, t);
		pthread_mutex_lock(&r->lock);
		DRI_CRASHPOINT(thread_listing);
		t->next = r->threads;
		r->threads = t;
		pthread_mutex_unlock(&r->lock);
	}
	dri_tcache.r = r;
	dri_tcache.id = r->id;
	dri_tcache.t = t;
	*out = t;
	return 0;
}

/* At close: no other thread uses r any more (the documented contract). A
 * handle of a forked child, or one buried by other processes, writes
 * nothing shared. */
void dri_thread_release_all(struct dr_registry *r)
{
	/* getpid() too: a child made without the fork handlers still has
	 * our cached pid (see dr_close), and must not release its parent's
	 * reader slots, nor run its parent's grace periods. */
	bool shared = r->pid == dri_self_pid && r->pid == getpid() && !dri_self_buried(r);
	struct dri_thread *list, *t;

	/* Off the list first: freeing a thread's mailbox takes the lock. */
	pthread_mutex_lock(&r->lock);
	list = r->threads;
	r->threads = NULL;
	pthread_mutex_unlock(&r->lock);
	while ((t = list)) {
		list = t->next;
		thread_free(t, shared);
	}
	pthread_key_delete(r->key);
}

/*
 * Retire entry idx, whose state the caller saw as `expect` (ALLOC(g, o)),
 * once it is unlinked. Only one of several racing retirers wins, and none
 * wins once the entry has moved on: expect names one allocation.
 */
void dri_retire(struct dr_registry *r, struct dri_thread *t, uint32_t idx,
		uint64_t expect)
{
	uint64_t ep = ld_acq64(&r->hdr->epoch);

	DRI_CRASHPOINT(retire_loaded);
	if (uatomic_cmpxchg(&r->states[idx], expect,
			    DRI_ST_RETIRED(DRI_ST_GEN(expect), ep)) != expect)
		return;
	if (t->nretired < r->retire_batch)
		t->retired[t->nretired++] = idx;
	DRI_CRASHPOINT(unreg_retired);
}

/* Steps 1 and 2: open a grace period. Returns T, the epoch it closes. */
static uint64_t grace_begin(struct dr_registry *r)
{
	uint64_t T = uatomic_add_return(&r->hdr->epoch, 1) - 1;

	DRI_CRASHPOINT(reclaim_bumped);
	dri_membarrier(r);
	return T;
}

/*
 * Step 3: the oldest epoch at which a live reader entered and is still
 * inside, or UINT64_MAX if none entered at T or before. A reader that
 * entered at epoch E can hold only entries retired at E or later: one
 * retired earlier was unlinked before the epoch moved past it, and E was
 * loaded after that move. Slots of dead readers are freed on the way (their
 * epochs are not counted, and not cleared: see the comment at the top).
 * The acquire load pairs with the reader's release store of 0 at exit: its
 * reads are over before we free what it may have read.
 */
static uint64_t oldest_reader(struct dr_registry *r, uint64_t T)
{
	uint32_t hwm = ld_acq32(&r->hdr->readers_hwm), i;
	uint64_t oldest = UINT64_MAX;

	if (hwm > r->max_threads)
		hwm = r->max_threads;
	for (i = 0; i < hwm; i++) {
		struct dri_reader *rd = &r->readers[i];
		uint64_t e = ld_acq64(&rd->epoch), o;

		if (e == 0 || e > T || e >= oldest)
			continue;
		o = ld_acq64(&rd->owner);
		if (o == 0)
			continue;
		if (!dri_owner_gone(r, o)) {
			oldest = e;
			continue;
		}
		DRI_CRASHPOINT(reap_reader_checked);
		uatomic_cmpxchg(&rd->owner, o, 0);
	}
	return oldest;
}

/*
 * Reset entry idx and free it: the caller holds it as FREEING(gen, itself),
 * so nobody else touches it until the last store. A crash in between leaves
 * FREEING of a dead owner, which reaping finishes (table.c).
 */
void dri_entry_reset(struct dr_registry *r, uint32_t idx, uint64_t gen)
{
	CMM_STORE_SHARED(dri_entry_at(r, idx)->next, 0);
	DRI_CRASHPOINT(reclaim_freeing);
	/* Buried since we took it (our lock was lost, so we look dead): a
	 * reaper may have taken it over and freed it, and someone reused it;
	 * it is theirs now. (A pause between this check and the store stays
	 * a window, for a process that lost its lock: see distreg.h.) */
	if (dri_self_buried(r))
		return;
	st_rel64(&r->states[idx], DRI_ST_FREE(gen));
}

/*
 * Step 4's test for a state word s loaded after the grace period that began
 * at T, oldest being step 3's answer: 1 if s is an entry retired at T or
 * before (a later retirement is of a reused entry, after the grace period
 * began) and before the oldest reader's epoch, so that no reader can hold
 * it; 0 if it is not RETIRED or retired too late; -EBUSY if a reader may
 * hold it. Once 1, always 1 for that word: readers that enter later load
 * an epoch past T, and cannot reach an entry unlinked before it.
 */
static int retired_free_to_take(struct dr_registry *r, uint64_t s, uint64_t T,
				uint64_t oldest)
{
	uint64_t ep;

	if (DRI_ST_TAG(s) != DRI_TAG_RETIRED)
		return 0;
	ep = dri_st_epoch(s, ld_acq64(&r->hdr->epoch));
	if (ep > T)
		return 0;
	return ep >= oldest ? -EBUSY : 1;
}

/*
 * Take entry idx, retired as s and free to take, as ours to reset: by CAS,
 * so two racing reclaimers free it once. FREEING is a state nobody else
 * acts on while we live: an ALLOC here instead (as before) looked like a
 * half-deleted entry to the allocator's finish_deletes(), which retired it,
 * freed it and reused it before our stores of next and FREE landed on it.
 * 1 if taken; 0 if someone else took it first; -ENOLCK if we were buried
 * meanwhile (our lock was lost): a reaper may then have taken it over from
 * us and freed it already; it is left to them.
 */
static int take_retired(struct dr_registry *r, uint32_t idx, uint64_t s)
{
	if (uatomic_cmpxchg(&r->states[idx], s, DRI_ST_FREEING(DRI_ST_GEN(s), r->owner)) != s)
		return 0;
	DRI_CRASHPOINT(reclaim_taken);
	return dri_self_buried(r) ? -ENOLCK : 1;
}

/*
 * Step 4 for one entry whose state word the caller loaded as s: free it if
 * retired_free_to_take() says so. Returns 1 if freed, 0 if not ours to
 * free, -EBUSY if a reader holds it.
 */
static int free_retired(struct dr_registry *r, uint32_t idx, uint64_t s,
			uint64_t T, uint64_t oldest)
{
	int k = retired_free_to_take(r, s, T, oldest);

	if (k <= 0)
		return k;
	if (take_retired(r, idx, s) <= 0)
		return 0;
	dri_entry_reset(r, idx, DRI_ST_GEN(s));
	return 1;
}

/* Free what is left of this thread's reusable entries. */
void dri_reuse_flush(struct dr_registry *r, struct dri_thread *t)
{
	while (t->nreuse > 0) {
		uint32_t idx = t->reuse[--t->nreuse];

		free_retired(r, idx, ld_acq64(&r->states[idx]), t->reuse_T, t->reuse_oldest);
	}
}

/*
 * End a grace period for this thread's batch of retired entries. Those no
 * reader can hold become reusable (dri_take_reusable); what was left of the
 * previous ones is freed. Returns the number made reusable, or -EBUSY if a
 * live reader held back all of them. The batch is emptied either way: what
 * stays RETIRED is found by the next full scan, so a stalled reader costs
 * one grace period per batch, not one per write. Outside a read-side
 * section.
 */
int dri_reclaim_own(struct dr_registry *r, struct dri_thread *t)
{
	uint64_t T, oldest;
	int ready = 0, busy = 0;
	uint32_t i;

	if (t->nretired == 0)
		return 0;
	dri_reuse_flush(r, t);
	T = grace_begin(r);
	oldest = oldest_reader(r, T);
	for (i = 0; i < t->nretired; i++) {
		uint32_t idx = t->retired[i];
		int k = retired_free_to_take(r, ld_acq64(&r->states[idx]), T, oldest);

		if (k < 0)
			busy = 1;
		else if (k > 0)
			t->reuse[ready++] = idx;
	}
	t->nreuse = ready;
	t->reuse_T = T;
	t->reuse_oldest = oldest;
	t->nretired = 0;
	return busy && ready == 0 ? -EBUSY : ready;
}

/*
 * Allocate one of this thread's reusable entries, last made reusable
 * first: from RETIRED by CAS to FREEING (ours), which no one else acts on
 * while we live, then its link reset and ALLOC(gen + 1, us) stored, as
 * take_free() would have it after a free. One that a reclaimer freed
 * meanwhile is taken as a free entry. False when none is left, or once we
 * find ourselves buried (what we took is then the reapers').
 */
bool dri_take_reusable(struct dr_registry *r, struct dri_thread *t, uint32_t *idx)
{
	while (t->nreuse > 0) {
		uint32_t at = t->reuse[--t->nreuse];
		uint64_t s = ld_acq64(&r->states[at]);

		if (DRI_ST_TAG(s) == DRI_TAG_FREE) {
			if (!dri_take_free(r, at))
				continue;
		} else {
			int k;

			if (retired_free_to_take(r, s, t->reuse_T, t->reuse_oldest) != 1)
				continue;
			k = take_retired(r, at, s);
			if (k < 0)
				return false;
			if (k == 0)
				continue;
			CMM_STORE_SHARED(dri_entry_at(r, at)->next, 0);
			DRI_CRASHPOINT(reuse_taken);
			/* As in dri_entry_reset(): buried meanwhile, the entry
			 * may be someone else's by now. */
			if (dri_self_buried(r))
				return false;
			st_rel64(&r->states[at], DRI_ST_ALLOC(DRI_ST_GEN(s) + 1, r->owner));
		}
		*idx = at;
		return true;
	}
	return false;
}

static uint64_t clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t dri_mono_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* The monotonic clock to the last tick (a few ms), at a tenth of the cost:
 * for intervals of tens of ms looked at on every message. */
uint64_t dri_coarse_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC_COARSE);
}

/*
 * Free every RETIRED entry of the segment that one grace period allows
 * (those of dead processes and exited threads included). Returns the
 * number freed, or -EBUSY if a live reader held back every one that could
 * otherwise have been freed. *left (may be NULL) gets the number of RETIRED
 * entries seen and not freed. Outside a read-side section, or with the
 * caller's own section holding back what was retired after it entered.
 */
int dri_reclaim_all(struct dr_registry *r, struct dri_thread *t, uint32_t *left)
{
	uint64_t T = grace_begin(r), oldest = oldest_reader(r, T);
	uint32_t nleft = 0;
	int total = 0, busy = 0;

	t->nretired = 0; /* the scan covers them */
	for (uint32_t i = 0; i < r->capacity; i++) {
		uint64_t s = ld_acq64(&r->states[i]);
		int k;

		if (DRI_ST_TAG(s) != DRI_TAG_RETIRED)
			continue;
		k = free_retired(r, i, s, T, oldest);
		if (k > 0) {
			total++;
			continue;
		}
		nleft++;
		if (k < 0)
			busy = 1;
	}
	if (left)
		*left = nleft;
	return busy && total == 0 ? -EBUSY : total;
}

/* Free the reader slots owned by owner id o, which a dead process left:
 * for a process that attached with an id used before (dr_open). */
void dri_reap_readers_of(struct dr_registry *r, uint64_t o)
{
	uint32_t hwm = ld_acq32(&r->hdr->readers_hwm);

	if (hwm > r->max_threads)
		hwm = r->max_threads;
	for (uint32_t i = 0; i < hwm; i++)
		if (ld_acq64(&r->readers[i].owner) == o)
			uatomic_cmpxchg(&r->readers[i].owner, o, 0);
}

/* Free reader slots whose process is dead. Returns how many. */
unsigned dri_reap_readers(struct dr_registry *r)
{
	uint32_t hwm = ld_acq32(&r->hdr->readers_hwm), i;
	unsigned n = 0;

	if (hwm > r->max_threads)
		hwm = r->max_threads;
	for (i = 0; i < hwm; i++) {
		struct dri_reader *rd = &r->readers[i];
		uint64_t o = ld_acq64(&rd->owner);

		if (o == 0 || !dri_owner_gone(r, o))
			continue;
		DRI_CRASHPOINT(reap_reader_checked);
		if (uatomic_cmpxchg(&rd->owner, o, 0) == o)
			n++;
	}
	return n;
}

/* The scheduler state of thread tid of process pid ('R' runnable, 'S'
 * sleeping, 'T' stopped, ...), or 0 if unknown. */
static char thread_state(pid_t pid, pid_t tid)
{
	char path[64], buf[512], *p;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid, (int)tid);
	p = dri_proc_stat(path, buf, sizeof(buf));
	return p && p[1] == ' ' ? p[2] : 0;
}

/*
 * The live readers, other than the calling thread, that have been inside
 * one section since epoch `since` or earlier: none, all runnable (preempted
 * rather than stalled, so that waiting longer makes sense), or one that is
 * stopped, sleeping or cannot be asked.
 */
enum dri_old_readers dri_old_readers(struct dr_registry *r, uint64_t since)
{
	uint32_t hwm = ld_acq32(&r->hdr->readers_hwm), i;
	struct dri_reader *self = dri_tcache.r == r ? dri_tcache.t->slot : NULL;
	enum dri_old_readers res = DRI_OLD_NONE;

	if (hwm > r->max_threads)
		hwm = r->max_threads;
	for (i = 0; i < hwm; i++) {
		struct dri_reader *rd = &r->readers[i];
		uint64_t e = ld_acq64(&rd->epoch), o;

		if (rd == self || e == 0 || e > since)
			continue;
		o = ld_acq64(&rd->owner);
		if (o == 0 || !dri_owner_alive(r, o))
			continue;
		if (thread_state(r->procs[DRI_OWNER_SLOT(o)].pid, rd->tid) != 'R')
			return DRI_OLD_STALLED;
		res = DRI_OLD_RUNNABLE;
	}
	return res;
}

/*
 * Count reader slots held by live processes (*held) and those inside a
 * section (*active), and return the pid of the live reader, other than the
 * calling thread, that entered longest ago, if it entered at or before
 * newest_retired (so it holds back a retired entry); else 0.
 */
pid_t dri_stalled_reader(struct dr_registry *r, uint64_t newest_retired,
			 uint32_t *active, uint32_t *held)
{
	uint32_t hwm = ld_acq32(&r->hdr->readers_hwm), i;
	struct dri_reader *self = dri_tcache.r == r ? dri_tcache.t->slot : NULL;
	uint64_t oldest = UINT64_MAX;
	pid_t pid = 0;

	*active = *held = 0;
	if (hwm > r->max_threads)
		hwm = r->max_threads;
	for (i = 0; i < hwm; i++) {
		struct dri_reader *rd = &r->readers[i];
		uint64_t o = ld_acq64(&rd->owner), e;

		if (o == 0 || !dri_owner_alive(r, o))
			continue;
		(*held)++;
		e = CMM_LOAD_SHARED(rd->epoch);
		if (e == 0)
			continue;
		(*active)++;
		if (rd != self && e < oldest && e <= newest_retired) {
			oldest = e;
			pid = r->procs[DRI_OWNER_SLOT(o)].pid;
		}
	}
	return pid;
}
