/*
 * cmp_rwlock.c - the plain design: a fixed-capacity chained hash table in
 * shared memory (a memfd the parent creates; every worker maps it) behind
 * one process-shared pthread rwlock. Lookups take it shared, register and
 * unregister take it exclusive. Same hash as the other in-memory systems
 * (XXH3_64bits_withSeed, seed lf_seed), the same number of buckets as
 * distreg and cds_lfht (a power of two at or above the capacity), and the
 * entries are one cache line each: name, 16-byte value, next index.
 *
 * The lock has glibc's default kind (readers preferred): only
 * PTHREAD_PROCESS_SHARED is set, as the plain design would. (Measured: the
 * writer-preferring kind is no faster here; under the 2-process mix both
 * spend their time putting waiters to sleep in futex() and waking them.)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#define XXH_INLINE_ALL

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <xxhash.h>

#include "compare.h"

#define RW_NIL UINT32_MAX

struct rw_entry {
	uint32_t next;   /* chain or free list; RW_NIL ends it */
	uint8_t len;
	uint8_t vlen;
	char name[NAME_STRIDE];
	unsigned char value[VALUE_LEN];
} __attribute__((aligned(64)));

struct rw_table {
	pthread_rwlock_t lock;
	uint32_t capacity;
	uint32_t mask;   /* buckets - 1 */
	uint32_t free;   /* head of the free list */
	uint32_t live;
	/* then: uint32_t bucket[mask + 1], struct rw_entry entry[capacity] */
};

struct rw_worker {
	struct kv_worker kv;   /* first: the ops get a struct kv_worker * */
	struct rw_table *t;
	uint32_t *bucket;
	struct rw_entry *entry;
	size_t bytes;
};

static size_t rw_entries_offset(uint32_t nbuckets)
{
	size_t off = sizeof(struct rw_table) + (size_t)nbuckets * sizeof(uint32_t);

	return (off + 63) & ~(size_t)63;
}

size_t rw_table_bytes(uint32_t capacity)
{
	return rw_entries_offset((uint32_t)pow2_at_least(capacity)) +
	       (size_t)capacity * sizeof(struct rw_entry);
}

static inline uint32_t *rw_slot(struct rw_worker *rw, const struct bname *n)
{
	uint64_t h = XXH3_64bits_withSeed(n->s, n->len, lf_seed);

	return &rw->bucket[h & rw->t->mask];
}

/* The link that points at name n's entry (or the chain's RW_NIL end). */
static inline uint32_t *rw_find(struct rw_worker *rw, const struct bname *n)
{
	uint32_t *link = rw_slot(rw, n);

	while (*link != RW_NIL) {
		struct rw_entry *e = &rw->entry[*link];

		if (e->len == n->len && memcmp(e->name, n->s, n->len) == 0)
			break;
		link = &e->next;
	}
	return link;
}

static int rw_lock_failed(struct kv_worker *w, const char *what, int rc)
{
	return kv_error(w, "%s: %s", what, strerror(rc));
}

static int rw_lookup(struct kv_worker *w, const struct bname *n, bool present)
{
	struct rw_worker *rw = (struct rw_worker *)w;
	unsigned char out[VALUE_LEN];
	uint32_t at;
	int rc = pthread_rwlock_rdlock(&rw->t->lock);

	if (rc)
		return rw_lock_failed(w, "pthread_rwlock_rdlock", rc);
	at = *rw_find(rw, n);
	if (at != RW_NIL) {
		const struct rw_entry *e = &rw->entry[at];

		memcpy(out, e->value, e->vlen);
		__asm__ volatile("" : : "r"(out) : "memory");
		w->sink += e->vlen;
	}
	rc = pthread_rwlock_unlock(&rw->t->lock);
	if (rc)
		return rw_lock_failed(w, "pthread_rwlock_unlock", rc);
	if ((at != RW_NIL) != present)
		return kv_error(w, "lookup of %.*s: %s", n->len, n->s,
				present ? "not found" : "found a name that should be absent");
	return 0;
}

/* Register (insert) or unregister n, under the lock taken exclusive. */
static int rw_write(struct kv_worker *w, const struct bname *n, bool insert)
{
	struct rw_worker *rw = (struct rw_worker *)w;
	struct rw_table *t = rw->t;
	const char *fail = NULL;
	uint32_t *link, at;
	int rc = pthread_rwlock_wrlock(&t->lock);

	if (rc)
		return rw_lock_failed(w, "pthread_rwlock_wrlock", rc);
	link = rw_find(rw, n);
	at = *link;
	if (!insert && at == RW_NIL) {
		fail = "not found";
	} else if (!insert) {
		/* Unlink, and push the entry on the free list. */
		*link = rw->entry[at].next;
		rw->entry[at].next = t->free;
		t->free = at;
		t->live--;
	} else if (at != RW_NIL) {
		fail = "already registered";
	} else if (t->free == RW_NIL) {
		fail = "table full";
	} else {
		struct rw_entry *e = &rw->entry[at = t->free];

		t->free = e->next;
		e->len = n->len;
		memcpy(e->name, n->s, n->len);
		e->vlen = VALUE_LEN;
		memcpy(e->value, value_bytes, VALUE_LEN);
		/* Append at the chain's end, where rw_find() stopped. */
		e->next = RW_NIL;
		*link = at;
		t->live++;
	}
	rc = pthread_rwlock_unlock(&t->lock);
	if (rc)
		return rw_lock_failed(w, "pthread_rwlock_unlock", rc);
	if (fail)
		return kv_error(w, "%s %.*s: %s", insert ? "register" : "unregister", n->len, n->s,
				fail);
	return 0;
}

static int rw_insert(struct kv_worker *w, const struct bname *n)
{
	return rw_write(w, n, true);
}

static int rw_remove(struct kv_worker *w, const struct bname *n)
{
	return rw_write(w, n, false);
}

static const struct kv_ops rw_ops = {
	.lookup = rw_lookup, .insert = rw_insert, .remove = rw_remove, .flush = NULL,
};

static __attribute__((noinline)) int run_rwlock(struct kv_worker *w, unsigned wl, unsigned mode,
						uint64_t seed, uint64_t *ops)
{
	(void)mode;
	return kv_loop(&rw_ops, w, wl, seed, ops);
}

/* Worker 0: lay the table out in the fresh (zeroed) memfd. */
static void rw_init(struct rw_worker *rw, uint32_t capacity)
{
	struct rw_table *t = rw->t;
	pthread_rwlockattr_t a;
	int rc;

	t->capacity = capacity;
	t->mask = (uint32_t)pow2_at_least(capacity) - 1;
	rw->bucket = (uint32_t *)(t + 1);
	rw->entry = (struct rw_entry *)((char *)t + rw_entries_offset(t->mask + 1));
	memset(rw->bucket, 0xff, (size_t)(t->mask + 1) * sizeof(uint32_t));
	for (uint32_t i = 0; i < capacity; i++)
		rw->entry[i].next = i + 1 < capacity ? i + 1 : RW_NIL;
	t->free = 0;
	t->live = 0;
	if ((rc = pthread_rwlockattr_init(&a)) ||
	    (rc = pthread_rwlockattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) ||
	    (rc = pthread_rwlock_init(&t->lock, &a)))
		kv_die(&rw->kv, "initialising the process-shared rwlock: %s", strerror(rc));
	pthread_rwlockattr_destroy(&a);
}

void rw_worker_main(struct ctl *c, unsigned idx, int fd, uint32_t capacity, uint32_t nnames)
{
	struct rw_worker rw;
	void *p;

	kv_worker_init(&rw.kv, c, idx, nnames, sys[SYS_RW].name);
	kv_wait_first(&rw.kv);
	rw.bytes = rw_table_bytes(capacity);
	p = mmap(NULL, rw.bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
	if (p == MAP_FAILED)
		kv_die(&rw.kv, "mmap of the table (%zu bytes): %s", rw.bytes, strerror(errno));
	close(fd);
	rw.t = p;
	if (idx == 0) {
		uint64_t t0 = now_ns();

		rw_init(&rw, capacity);
		for (uint32_t i = 0; i < nnames; i++)
			if (rw_insert(&rw.kv, &hit_names[i]))
				kv_die(&rw.kv, "preload: %s", rw.kv.err);
		if (rw.t->live != nnames)
			kv_die(&rw.kv, "preload: %" PRIu32 " names live, expected %" PRIu32,
			       rw.t->live, nnames);
		kv_setup_done(&rw.kv, (double)(now_ns() - t0) / 1e9);
	} else {
		rw.bucket = (uint32_t *)(rw.t + 1);
		rw.entry = (struct rw_entry *)((char *)rw.t + rw_entries_offset(rw.t->mask + 1));
		kv_setup_done(&rw.kv, 0);
	}
	kv_serve(&rw.kv, run_rwlock);
	munmap(p, rw.bytes);
	_exit(0);
}
