/*
 * table.c - the lock-free hash table: bucket heads pointing into sorted
 * Harris-Michael lists of entries, by index.
 *
 * Within a bucket, entries are sorted by (hash, name length, name bytes), so
 * a name has exactly one place and two racing inserts of it meet on the same
 * link: one CAS wins, the other sees the winner. Deletion marks the entry's
 * own next link (logical deletion, after which the link never changes), then
 * unlinks it from its predecessor; any writer that meets a marked entry
 * unlinks it and retires it, so a deleter killed between the two steps
 * leaves nothing that the next writer does not finish.
 *
 * Readers only load. A value is double-buffered in its entry: the owner
 * writes the slot readers are not told to read, then switches vsel; a reader
 * that saw vsel change while copying copies again.
 */
#include <errno.h>
#include <stdlib.h>
#include <sched.h>
#include <string.h>
#include <time.h>

/* Inlined: a call into libxxhash.so per lookup cost more than the hash of
 * a short name itself. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "dri.h"

uint64_t dri_hash(const struct dr_registry *r, const void *name, size_t len)
{
	return XXH3_64bits_withSeed(name, len, r->seed);
}

/* Order of an entry against a key: <0 before, 0 same name, >0 after. */
static int key_cmp(const struct dri_entry *e, uint64_t hash, const void *name,
		   size_t len)
{
	if (e->hash != hash)
		return e->hash < hash ? -1 : 1;
	if (e->name_len != len)
		return e->name_len < len ? -1 : 1;
	return memcmp(e->name, name, len);
}

struct pos {
	uint32_t *prev;   /* the link that points at curr */
	uint32_t curr;    /* link value: entry index + 1, or 0 */
	uint32_t next;    /* curr's successor link, unmarked */
};

/*
 * Find where the key belongs in its bucket, unlinking (and retiring) every
 * marked entry met on the way. Returns 1 when an unmarked entry with the
 * key is at p->curr, 0 when p->curr is where it would go, -EBADMSG when the
 * chain is corrupt (an index out of range or a cycle). Inside a read-side
 * section.
 */
static int search(struct dr_registry *r, struct dri_thread *t, uint64_t hash,
		  const void *name, size_t len, struct pos *p)
{
	uint32_t *prev, curr, steps;

retry:
	prev = &r->buckets[hash & r->mask];
	curr = ld_acq32(prev);
	for (steps = 0;; steps++) {
		struct dri_entry *e;
		uint32_t nx;
		int c;

		if (curr == 0) {
			p->prev = prev;
			p->curr = 0;
			p->next = 0;
			return 0;
		}
		if (curr > r->capacity || steps > r->capacity)
			return -EBADMSG;
		e = dri_entry_at(r, curr - 1);
		nx = ld_acq32(&e->next);
		if (nx & DRI_MARK) {
			uint32_t succ = nx & ~DRI_MARK;
			uint64_t s = ld_acq64(&r->states[curr - 1]);

			if (uatomic_cmpxchg(prev, curr, succ) != curr)
				goto retry;
			DRI_CRASHPOINT(search_unlinked);
			if (DRI_ST_TAG(s) == DRI_TAG_ALLOC)
				dri_retire(r, t, curr - 1, s);
			curr = succ;
			continue;
		}
		c = key_cmp(e, hash, name, len);
		if (c >= 0) {
			p->prev = prev;
			p->curr = curr;
			p->next = nx;
			return c == 0;
		}
		prev = &e->next;
		curr = nx;
	}
}

/* Take entry at by CAS from FREE, as ours: false if it is not free. */
static inline bool take_free(struct dr_registry *r, uint32_t at)
{
	uint64_t *st = &r->states[at];
	uint64_t s = CMM_LOAD_SHARED(*st);

	return DRI_ST_TAG(s) == DRI_TAG_FREE &&
	       uatomic_cmpxchg(st, s, DRI_ST_ALLOC(DRI_ST_GEN(s) + 1, r->owner)) == s;
}

/*
 * Claim a free entry by CAS on its state word, which records us as owner in
 * the same step (so a crash right after leaves an entry reaping can return)
 * and counts the allocation. The entries this thread freed last first, then
 * next-fit from its cursor; one full turn at most.
 */
static bool try_alloc(struct dr_registry *r, struct dri_thread *t, uint32_t *idx)
{
	uint32_t cap = r->capacity, i = t->cursor % cap, n;

	while (t->nhint > 0) {
		uint32_t at = t->hint[--t->nhint];

		if (take_free(r, at)) {
			*idx = at;
			return true;
		}
	}

	for (n = 0; n < cap; n++) {
		uint32_t at = i;

		i = i + 1 == cap ? 0 : i + 1;
		if (take_free(r, at)) {
			t->cursor = i;
			*idx = at;
			return true;
		}
	}
	t->cursor = i;
	return false;
}

static unsigned finish_deletes(struct dr_registry *r, struct dri_thread *t);

/* Passes in a row that must find every entry allocated before -ENOSPC:
 * one pass is not a snapshot, and under churn it can meet every entry in
 * its short allocated phase. */
#define FULL_PASSES 3

/*
 * Allocate an entry, reclaiming when none is free: first this thread's own
 * retired batch, then what dead owners hold, then every retired entry whose
 * grace period can end. Other threads free and take entries meanwhile, so
 * go round until an entry is ours, or FULL_PASSES passes in a row find
 * every entry allocated (-ENOSPC), or a live reader has held reuse back
 * for DRI_GRACE_WAIT_NS (-EBUSY), or for up to DRI_GRACE_RUNNABLE_WAIT_NS
 * while every reader we wait for is runnable. Inside a read-side section (registering
 * under dr_read_lock) one pass only: our own section may be what blocks.
 */
int dri_alloc_entry(struct dr_registry *r, struct dri_thread *t, uint32_t *idx)
{
	uint64_t start = 0, deadline = 0, since = 0;
	int full = 0;

	if (try_alloc(r, t, idx))
		goto got;
	if (t->nest == 0 && dri_reclaim_own(r, t) > 0 && try_alloc(r, t, idx))
		goto got;
	for (;;) {
		uint32_t left;
		int rc;

		dri_reap_entries(r, t, 0);
		rc = dri_reclaim_all(r, t, &left);
		if (try_alloc(r, t, idx))
			goto got;
		if (rc == -EBUSY) {
			full = 0;
		} else if (rc == 0 && left == 0 && ++full == FULL_PASSES) {
			/* Last, the costly pass (it reads every entry): an
			 * unregistration whose unlink lost a race leaves its
			 * entry marked, still linked and allocated until a
			 * search passes by, which in a quiet bucket is never. */
			if (finish_deletes(r, t) == 0)
				return -ENOSPC;
			full = 0;
			continue;
		}
		if (t->nest != 0)
			return rc == -EBUSY ? -EBUSY : -ENOSPC;
		if (!deadline) {
			start = dri_mono_ns();
			deadline = start + DRI_GRACE_WAIT_NS;
			since = ld_acq64(&r->hdr->epoch);
		} else if (dri_mono_ns() >= deadline) {
			/* Wait on for readers that are merely preempted. */
			if (rc == -EBUSY && deadline < start + DRI_GRACE_RUNNABLE_WAIT_NS &&
			    dri_readers_runnable(r, since))
				deadline += DRI_GRACE_WAIT_NS;
			else
				return rc == -EBUSY ? -EBUSY : -ENOSPC;
		}
		if (rc == -EBUSY) {
			struct timespec ts = { 0, 200 * 1000 };
			nanosleep(&ts, NULL);
		} else {
			sched_yield();
		}
	}
got:
	DRI_CRASHPOINT(reg_allocated);
	return 0;
}

/* Give back an entry that was never linked: no reader can hold it, and no
 * other process acts on it while we live (its link was never marked). */
void dri_free_unpublished(struct dr_registry *r, uint32_t idx)
{
	uint64_t s = ld_acq64(&r->states[idx]);

	CMM_STORE_SHARED(dri_entry_at(r, idx)->next, 0);
	st_rel64(&r->states[idx], DRI_ST_FREE(DRI_ST_GEN(s)));
}

/* Spins on a value's busy bit between looks at the clock. */
#define BUSY_SPINS 1024

/*
 * Owner only: write the value into the slot readers are not reading.
 * Returns 0, or -EBUSY if the busy bit stayed set for DRI_GRACE_WAIT_NS.
 */
static int value_update(struct dri_entry *e, const void *value, size_t len)
{
	uint64_t deadline = 0;
	uint32_t w, spins = 0;

	/* The busy bit keeps two threads of the owner apart; a dead owner's
	 * busy bit is harmless, as nobody else ever updates its entry. The
	 * other thread holds it for a copy of at most DR_VALUE_MAX bytes, so
	 * a bit set for longer than a grace-period wait is a descheduled
	 * thread or, never cleared, one that another process wrote into the
	 * segment: give up rather than spin for ever. */
	for (;;) {
		w = ld_acq32(&e->vsel);
		if (!(w & 1) && uatomic_cmpxchg(&e->vsel, w, w | 1) == w)
			break;
		if (++spins % BUSY_SPINS == 0) {
			uint64_t now = dri_mono_ns();

			if (!deadline)
				deadline = now + DRI_GRACE_WAIT_NS;
			else if (now >= deadline)
				return -EBUSY;
			sched_yield();
		} else {
			caa_cpu_relax();
		}
	}
	DRI_CRASHPOINT(update_busy);
	struct dri_value *v = &e->val[((w >> 1) + 1) & 1];
	v->len = (uint16_t)len;
	if (len)
		memcpy(v->data, value, len);
	DRI_CRASHPOINT(update_written);
	st_rel32(&e->vsel, w + 2);
	return 0;
}

void dri_value_read(const struct dri_entry *e, struct dr_entry *out)
{
	uint32_t w1, w2;

	out->pid = e->pid;
	out->regid = e->regid;
	do {
		const struct dri_value *v;
		size_t len;

		w1 = ld_acq32(&e->vsel);
		v = &e->val[(w1 >> 1) & 1];
		len = CMM_LOAD_SHARED(v->len);
		if (len > DR_VALUE_MAX)
			len = DR_VALUE_MAX; /* torn by a concurrent flip; retried */
		memcpy(out->value, v->data, len);
		out->value_len = len;
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		w2 = CMM_LOAD_SHARED(e->vsel);
	} while ((w1 >> 1) != (w2 >> 1));
}

/*
 * A registration id. Each thread takes DRI_REGID_BLOCK of them at a time
 * from the segment's counter: one shared atomic add per registration cost
 * two processes churning names a quarter of their time in cache-line
 * transfers. Ids stay unique on the host (a block is never handed out
 * twice, and a new segment's counter starts at its creation time in ns,
 * ahead of anything an earlier segment could have used at under one id per
 * ns); they are no longer in registration order across threads.
 */
static uint64_t next_regid(struct dr_registry *r, struct dri_thread *t)
{
	if (t->regid_next == t->regid_end) {
		t->regid_next = uatomic_add_return(&r->hdr->next_regid, DRI_REGID_BLOCK) -
				DRI_REGID_BLOCK;
		t->regid_end = t->regid_next + DRI_REGID_BLOCK;
	}
	return t->regid_next++;
}

/*
 * Link the filled, unpublished entry idx, or resolve a collision: our own
 * name gets the new value (and idx is freed), a live owner's name gives
 * -EEXIST, a dead owner's name is marked deleted and we go round again.
 * Inside a read-side section.
 */
int dri_insert(struct dr_registry *r, struct dri_thread *t, uint32_t idx,
	       const void *value, size_t value_len)
{
	struct dri_entry *e = dri_entry_at(r, idx);
	struct pos p;

	DRI_CRASHPOINT(reg_filled);
	for (;;) {
		int rc = search(r, t, e->hash, e->name, e->name_len, &p);

		if (rc < 0) {
			dri_free_unpublished(r, idx);
			return rc;
		}
		if (rc == 1) {
			struct dri_entry *cur = dri_entry_at(r, p.curr - 1);

			if (cur->owner == r->owner) {
				rc = value_update(cur, value, value_len);
				dri_free_unpublished(r, idx);
				return rc;
			}
			if (!dri_owner_gone(r, cur->owner)) {
				dri_free_unpublished(r, idx);
				return -EEXIST;
			}
			/* Its owner is dead: delete it; the next search
			 * unlinks it. */
			if (uatomic_cmpxchg(&cur->next, p.next, p.next | DRI_MARK) == p.next)
				DRI_CRASHPOINT(reg_takeover);
			continue;
		}
		CMM_STORE_SHARED(e->next, p.curr);
		if (e->regid == 0)
			e->regid = next_regid(r, t);
		/* The CAS is a full barrier: the entry is complete before it
		 * is reachable. */
		if (uatomic_cmpxchg(p.prev, p.curr, idx + 1) == p.curr) {
			DRI_CRASHPOINT(reg_linked);
			return 0;
		}
	}
}

/*
 * Register without a new entry, for when none can be had: our own name
 * gets the new value (0), a live owner's name gives -EEXIST, anything else
 * -ENOENT. Inside a read-side section.
 */
int dri_update_existing(struct dr_registry *r, struct dri_thread *t,
			const void *name, size_t len, const void *value,
			size_t value_len)
{
	struct dri_entry *cur;
	struct pos p;
	int rc = search(r, t, dri_hash(r, name, len), name, len, &p);

	if (rc != 1)
		return rc < 0 ? rc : -ENOENT;
	cur = dri_entry_at(r, p.curr - 1);
	if (cur->owner == r->owner)
		return value_update(cur, value, value_len);
	return dri_owner_alive(r, cur->owner) ? -EEXIST : -ENOENT;
}

/*
 * Look a name up. Inside a read-side section; loads only. Marked entries
 * are skipped, not unlinked.
 */
int dri_lookup(struct dr_registry *r, const void *name, size_t len,
	       uint64_t hash, struct dr_entry *out)
{
	uint32_t curr = ld_acq32(&r->buckets[hash & r->mask]), steps = 0;

	while (curr) {
		const struct dri_entry *e;
		uint32_t nx;

		if (curr > r->capacity || ++steps > r->capacity)
			return -ENOENT; /* corrupt chain: shmdump --check says where */
		e = dri_entry_at(r, curr - 1);
		nx = ld_acq32(&e->next);
		if (e->hash == hash) {
			if (!(nx & DRI_MARK) && e->name_len == len &&
			    memcmp(e->name, name, len) == 0) {
				if (out)
					dri_value_read(e, out);
				return 0;
			}
		} else if (e->hash > hash) {
			break;
		}
		curr = nx & ~DRI_MARK;
	}
	return -ENOENT;
}

/* Mark p's entry deleted and unlink it. 0, or 1 if someone else marked it
 * first (then nothing was done). */
static int mark_and_unlink(struct dr_registry *r, struct dri_thread *t,
			   struct pos *p)
{
	struct dri_entry *cur = dri_entry_at(r, p->curr - 1);
	uint64_t s;

	if (uatomic_cmpxchg(&cur->next, p->next, p->next | DRI_MARK) != p->next)
		return 1;
	DRI_CRASHPOINT(unreg_marked);
	s = ld_acq64(&r->states[p->curr - 1]);
	if (uatomic_cmpxchg(p->prev, p->curr, p->next) == p->curr) {
		DRI_CRASHPOINT(unreg_unlinked);
		if (DRI_ST_TAG(s) == DRI_TAG_ALLOC)
			dri_retire(r, t, p->curr - 1, s);
	} else if (cur->name_len >= 1 && cur->name_len <= DR_NAME_MAX) {
		/* A concurrent writer changed prev: search again, which
		 * unlinks and retires every marked entry on the way. */
		struct pos q;
		search(r, t, cur->hash, cur->name, cur->name_len, &q);
	}
	return 0;
}

/*
 * Unregister a name. Inside a read-side section. A dead owner's name is
 * removed and reported as absent (-ENOENT).
 */
int dri_delete(struct dr_registry *r, struct dri_thread *t, const void *name,
	       size_t len, bool force)
{
	uint64_t hash = dri_hash(r, name, len);
	struct pos p;

	for (;;) {
		int rc = search(r, t, hash, name, len, &p), dead = 0;
		struct dri_entry *cur;

		if (rc <= 0)
			return rc == 0 ? -ENOENT : rc;
		cur = dri_entry_at(r, p.curr - 1);
		if (!force && cur->owner != r->owner) {
			if (!dri_owner_gone(r, cur->owner))
				return -EPERM;
			dead = 1;
		}
		if (mark_and_unlink(r, t, &p))
			continue;
		return dead ? -ENOENT : 0;
	}
}

/*
 * Remove entry idx if it is still the allocation `state` (ALLOC(g, o) of a
 * dead owner, of this handle at close, or one whose link is marked),
 * wherever it stands: linked, marked, unlinked but not retired, or never
 * published. Inside a read-side section, in which the caller loaded state.
 * Returns true if it was a visible name that we removed.
 *
 * Found by index, the entry may have been retired, freed and allocated
 * again at any time before our section, even to the same owner: the
 * generation in state tells. Inside the section it may still be retired
 * (if it was unlinked already, possibly with an epoch older than ours),
 * freed and reused; what we read of it is checked again once we have found
 * it through the table: from then on it cannot be freed before we leave,
 * and an unchanged state word is the same allocation.
 */
bool dri_delete_exact(struct dr_registry *r, struct dri_thread *t, uint32_t idx,
		      uint64_t state)
{
	struct dri_entry *e = dri_entry_at(r, idx);
	bool removed = false;
	struct pos p;

	if (ld_acq64(&r->states[idx]) != state)
		return false; /* retired or freed by someone else meanwhile */
	if (e->name_len >= 1 && e->name_len <= DR_NAME_MAX) {
		uint8_t name[DR_NAME_MAX];
		size_t len = e->name_len;
		uint64_t hash = e->hash;

		memcpy(name, e->name, len);
		for (int guard = 0; guard < 64; guard++) {
			int rc = search(r, t, hash, name, len, &p);
			if (rc != 1 || p.curr - 1 != idx)
				break; /* idx is not reachable any more */
			if (ld_acq64(&r->states[idx]) != state)
				break; /* reachable, but another allocation */
			if (mark_and_unlink(r, t, &p) == 0) {
				DRI_CRASHPOINT(reap_marked);
				removed = true;
			}
		}
	}
	/* Unreachable now: every search unlinks a marked entry of its key on
	 * the way, and an unmarked one of ours was just marked. If still ours
	 * to retire (never published, or its unlinker died or stalled before
	 * retiring it), retire it; the CAS settles races with that unlinker. */
	if (ld_acq64(&r->states[idx]) == state)
		dri_retire(r, t, idx, state);
	return removed;
}

/*
 * Unlink and retire every entry that is marked deleted but still allocated
 * (its unlink lost a race and no search has passed by since, or its
 * unlinker died before retiring it). Returns how many were retired. Takes
 * read-side sections of its own.
 */
static unsigned finish_deletes(struct dr_registry *r, struct dri_thread *t)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < r->capacity; i++) {
		uint64_t s = ld_acq64(&r->states[i]);

		if (DRI_ST_TAG(s) != DRI_TAG_ALLOC ||
		    !(ld_acq32(&dri_entry_at(r, i)->next) & DRI_MARK))
			continue;
		/* Again inside the section: what we act on must have been
		 * seen there (see dri_delete_exact). A freshly allocated
		 * entry never has a marked link: the freer reset it. */
		dri_read_enter(r, t);
		s = ld_acq64(&r->states[i]);
		if (DRI_ST_TAG(s) == DRI_TAG_ALLOC &&
		    (ld_acq32(&dri_entry_at(r, i)->next) & DRI_MARK)) {
			DRI_CRASHPOINT(finish_found);
			dri_delete_exact(r, t, i, s);
		}
		dri_read_exit(r, t);
		n += ld_acq64(&r->states[i]) != s;
	}
	return n;
}

/*
 * Reap: remove the entries of dead owners (only_owner 0), or of one owner
 * (only_owner, used by dr_close for our own names). Returns the number of
 * visible names removed. Takes read-side sections of its own.
 */
unsigned dri_reap_entries(struct dr_registry *r, struct dri_thread *t,
			  uint64_t only_owner)
{
	uint32_t nprocs = r->max_procs, i;
	uint32_t *seen_gen = NULL;
	uint8_t *seen_alive = NULL;
	unsigned n = 0;

	if (!only_owner) {
		/* Ask each slot's liveness once, for the generation it had
		 * then; an owner of any other generation is asked on its own
		 * (a slot may be taken over while we scan). */
		seen_gen = calloc(nprocs, sizeof(*seen_gen));
		seen_alive = calloc(nprocs, 1);
		if (!seen_gen || !seen_alive) {
			free(seen_gen);
			free(seen_alive);
			return 0;
		}
		for (i = 0; i < nprocs; i++) {
			uint64_t w = ld_acq64(&r->procs[i].word);
			seen_gen[i] = DRI_PROC_GEN(w);
			seen_alive[i] = !dri_owner_gone(r, DRI_OWNER(i, seen_gen[i]));
		}
	}
	for (i = 0; i < r->capacity; i++) {
		uint64_t s = ld_acq64(&r->states[i]), o, tag = DRI_ST_TAG(s);
		bool removed = false;

		if (tag != DRI_TAG_ALLOC && tag != DRI_TAG_FREEING)
			continue;
		o = DRI_ST_OWNER(s);
		if (only_owner) {
			if (o != only_owner || tag != DRI_TAG_ALLOC)
				continue;
		} else {
			uint32_t slot = DRI_OWNER_SLOT(o);
			bool alive;

			if (o == r->owner)
				continue;
			if (slot < nprocs && seen_gen[slot] == DRI_OWNER_GEN(o))
				alive = seen_alive[slot];
			else
				alive = !dri_owner_gone(r, o);
			if (alive)
				continue;
		}
		if (tag == DRI_TAG_FREEING) {
			/* Its freer died between taking it and freeing it:
			 * take it over (one of racing reapers wins) and
			 * finish. */
			if (uatomic_cmpxchg(&r->states[i], s,
					    DRI_ST_FREEING(DRI_ST_GEN(s), r->owner)) == s)
				dri_entry_reset(r, i, DRI_ST_GEN(s));
			continue;
		}
		/* Act only on a state word seen inside the section (see
		 * dri_delete_exact). */
		dri_read_enter(r, t);
		if (ld_acq64(&r->states[i]) == s)
			removed = dri_delete_exact(r, t, i, s);
		dri_read_exit(r, t);
		n += removed;
		if (only_owner && removed && n == 1)
			DRI_CRASHPOINT(close_partial);
		if (t->nest == 0 && t->nretired >= r->retire_batch)
			dri_reclaim_own(r, t);
	}
	free(seen_gen);
	free(seen_alive);
	return n;
}
