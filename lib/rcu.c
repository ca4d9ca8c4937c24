/*
 * rcu.c - read-side sections and memory reclamation across processes.
 *
 * liburcu's flavours keep their reader registry in process memory, so they
 * cannot see readers in other processes. This is the LMDB reader-table idea
 * with epochs: every reading thread owns a cache-line-sized slot in the
 * segment and stores there the global epoch it entered at (0 outside).
 *
 * An unlinked entry is retired (state RETIRED) by whoever unlinked it, and
 * remembered in that thread's private batch. To free a batch, a reclaimer
 * that has seen every entry of it RETIRED:
 *   1. increments the epoch, from T to T+1;
 *   2. runs membarrier(GLOBAL_EXPEDITED) (or, in fence mode, a fence);
 *   3. scans the reader slots. A reader with epoch 0 or above T is no
 *      danger: it either entered after step 2's barrier and sees the
 *      unlinks, or loaded an epoch written by step 1 or later, which
 *      happens after our observation of the retirements. A live reader at
 *      T or below blocks the batch; a dead one is cleared.
 *   4. frees the entries, each by CAS from its RETIRED word, so two
 *      reclaimers racing on one entry free it once.
 * A reclaimer never waits for a reader unless it has nothing left to
 * allocate, and then only for a bounded time.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dri.h"

__thread struct dri_tcache dri_tcache __attribute__((tls_model("initial-exec")));

/* How long an allocation waits for stalled readers before -EBUSY. */
#define GRACE_WAIT_NS (50ull * 1000 * 1000)
/* Entries per grace period when reclaiming from a full scan. */
#define SCAN_CHUNK 1024

static void reader_release(struct dri_reader *rd)
{
	st_rel64(&rd->epoch, 0);
	st_rel64(&rd->owner, 0);
}

static int reader_claim(struct dr_registry *r, struct dri_thread *t)
{
	uint32_t n = r->hdr->max_threads;
	int pass;

	/* Slots are taken lowest first, so the scanned range stays short. */
	for (pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < n; i++) {
			struct dri_reader *rd = &r->readers[i];
			uint32_t h;

			if (CMM_LOAD_SHARED(rd->owner) != 0 ||
			    uatomic_cmpxchg(&rd->owner, 0, r->owner) != 0)
				continue;
			rd->tid = (int32_t)syscall(SYS_gettid);
			do {
				h = ld_acq32(&r->hdr->readers_hwm);
				if (h > i)
					break;
			} while (uatomic_cmpxchg(&r->hdr->readers_hwm, h, i + 1) != h);
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

	if (shared) {
		t->nest = 0;
		st_rel64(&t->slot->epoch, 0);
		/* One attempt to free what this thread retired; what stays
		 * RETIRED is found by the next full scan. */
		if (t->nretired)
			dri_reclaim_own(r, t);
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
	thread_free(t, r->pid == dri_self_pid);
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

/* At close: no other thread uses r any more (the documented contract). */
void dri_thread_release_all(struct dr_registry *r)
{
	bool shared = r->pid == dri_self_pid;

	pthread_mutex_lock(&r->lock);
	while (r->threads) {
		struct dri_thread *t = r->threads;
		r->threads = t->next;
		thread_free(t, shared);
	}
	pthread_mutex_unlock(&r->lock);
	pthread_key_delete(r->key);
}

/*
 * Retire entry idx, whose state the caller saw as `expect` (ALLOC). Must be
 * called inside a read-side section, so idx cannot have been freed and
 * reused since the caller looked. Only one of several racing retirers wins.
 */
void dri_retire(struct dr_registry *r, struct dri_thread *t, uint32_t idx,
		uint64_t expect)
{
	uint64_t ep = ld_acq64(&r->hdr->epoch);

	if (uatomic_cmpxchg(&r->states[idx], expect, DRI_ST_RETIRED(ep)) != expect)
		return;
	if (t->nretired < DRI_RETIRE_BATCH)
		t->retired[t->nretired++] = idx;
	DRI_CRASHPOINT(unreg_retired);
}

/*
 * Steps 1-4 of the header comment for entries idx[0..n), all seen RETIRED
 * by the caller. Returns the number freed, or -EBUSY if a live reader blocks
 * them (then nothing is freed). Must be called outside a read-side section.
 */
static int grace_and_free(struct dr_registry *r, const uint32_t *idx, uint32_t n)
{
	uint64_t T = uatomic_add_return(&r->hdr->epoch, 1) - 1;
	uint32_t hwm, i;
	int freed = 0;

	DRI_CRASHPOINT(reclaim_bumped);
	dri_membarrier(r);
	hwm = ld_acq32(&r->hdr->readers_hwm);
	if (hwm > r->hdr->max_threads)
		hwm = r->hdr->max_threads;
	for (i = 0; i < hwm; i++) {
		struct dri_reader *rd = &r->readers[i];
		uint64_t e = CMM_LOAD_SHARED(rd->epoch), o;

		if (e == 0 || e > T)
			continue;
		o = ld_acq64(&rd->owner);
		if (o == 0)
			continue;
		if (dri_owner_alive(r, o))
			return -EBUSY;
		st_rel64(&rd->epoch, 0);
		uatomic_cmpxchg(&rd->owner, o, 0);
	}
	for (i = 0; i < n; i++) {
		uint64_t s = ld_acq64(&r->states[idx[i]]);
		struct dri_entry *e;

		/* A RETIRED word with an epoch above T is a later retirement
		 * of a reused entry: not ours to free. */
		if (DRI_ST_TAG(s) != DRI_TAG_RETIRED || (s & ((1ull << 62) - 1)) > T)
			continue;
		/* Take it (as ours) to reset it, then free it. A crash in
		 * between leaves an unlinked ALLOC entry of a dead owner, which
		 * reaping retires again. */
		if (uatomic_cmpxchg(&r->states[idx[i]], s, DRI_ST_ALLOC(r->owner)) != s)
			continue;
		e = dri_entry_at(r, idx[i]);
		CMM_STORE_SHARED(e->next, 0);
		st_rel64(&r->states[idx[i]], DRI_ST_FREE);
		if (freed++ == 0)
			DRI_CRASHPOINT(reclaim_freeing);
	}
	return freed;
}

int dri_reclaim_own(struct dr_registry *r, struct dri_thread *t)
{
	int n;

	if (t->nretired == 0)
		return 0;
	n = grace_and_free(r, t->retired, t->nretired);
	if (n >= 0)
		t->nretired = 0;
	return n;
}

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * Free every RETIRED entry of the segment (those of dead processes and
 * exited threads included). With wait, retry a blocked chunk until
 * GRACE_WAIT_NS have passed. Returns the number freed, or -EBUSY if some
 * stayed blocked by a live reader.
 */
int dri_reclaim_all(struct dr_registry *r, struct dri_thread *t, bool wait)
{
	uint32_t chunk[SCAN_CHUNK], n = 0, i;
	uint64_t deadline = wait ? mono_ns() + GRACE_WAIT_NS : 0;
	int total = 0, busy = 0;

	t->nretired = 0; /* the scan covers them */
	for (i = 0; i <= r->capacity; i++) {
		if (i < r->capacity &&
		    DRI_ST_TAG(ld_acq64(&r->states[i])) == DRI_TAG_RETIRED)
			chunk[n++] = i;
		if (n == SCAN_CHUNK || (i == r->capacity && n > 0)) {
			int k;
			for (;;) {
				k = grace_and_free(r, chunk, n);
				if (k != -EBUSY || mono_ns() >= deadline)
					break;
				struct timespec ts = { 0, 200 * 1000 };
				nanosleep(&ts, NULL);
			}
			if (k < 0)
				busy = 1;
			else
				total += k;
			n = 0;
		}
	}
	return busy && total == 0 ? -EBUSY : total;
}

/* Free reader slots whose process is dead. Returns how many. */
unsigned dri_reap_readers(struct dr_registry *r)
{
	uint32_t hwm = ld_acq32(&r->hdr->readers_hwm), i;
	unsigned n = 0;

	if (hwm > r->hdr->max_threads)
		hwm = r->hdr->max_threads;
	for (i = 0; i < hwm; i++) {
		struct dri_reader *rd = &r->readers[i];
		uint64_t o = ld_acq64(&rd->owner);

		if (o == 0 || dri_owner_alive(r, o))
			continue;
		st_rel64(&rd->epoch, 0);
		if (uatomic_cmpxchg(&rd->owner, o, 0) == o)
			n++;
	}
	return n;
}

/*
 * Count reader slots held by live processes (*held) and those inside a
 * section (*active), and return the pid of the live reader that entered
 * longest ago, not counting the calling thread; 0 if none is inside.
 */
pid_t dri_stalled_reader(struct dr_registry *r, uint32_t *active, uint32_t *held)
{
	uint32_t hwm = ld_acq32(&r->hdr->readers_hwm), i;
	struct dri_reader *self = dri_tcache.r == r ? dri_tcache.t->slot : NULL;
	uint64_t oldest = UINT64_MAX;
	pid_t pid = 0;

	*active = *held = 0;
	if (hwm > r->hdr->max_threads)
		hwm = r->hdr->max_threads;
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
		if (rd != self && e < oldest) {
			oldest = e;
			pid = r->procs[DRI_OWNER_SLOT(o)].pid;
		}
	}
	return pid;
}
