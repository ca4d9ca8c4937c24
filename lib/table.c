/*
 * table.c - the lock-free hash table: bucket heads pointing into sorted
 * Harris-Michael lists of entries, by index.
 *
 * Within a bucket, entries are sorted by (tag, name length, name bytes), tag
 * being the top 16 bits of the name's hash, so a name has exactly one place
 * and two racing inserts of it meet on the same link: one CAS wins, the
 * other sees the winner. Every link also carries the top 4 bits of the tag
 * of the entry it points to, so a search that meets a link to an entry
 * past its key stops there without touching the entry: a miss usually
 * reads the bucket word and nothing else. Deletion marks the entry's own
 * next link (logical deletion, after which the link never changes), then
 * unlinks it from its predecessor; any writer that meets a marked entry
 * unlinks it and retires it, so a deleter killed between the two steps
 * leaves nothing that the next writer does not finish.
 *
 * Readers only load. A value has three slots: one in the entry's own line
 * (for values of up to DRI_VALUE_INLINE bytes) and two in its extension.
 * The owner writes a slot readers are not told to read, then switches vsel
 * to it; a reader that saw vsel change while copying copies again, so
 * readers never wait and never see a torn value.
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

/* A global name is hashed with another seed than a local one of the same
 * bytes: they land in unrelated buckets, and compare apart anyway by their
 * name-length byte. */
uint64_t dri_hash(const struct dr_registry *r, const void *name, size_t len, bool global)
{
	return XXH3_64bits_withSeed(name, len, global ? r->gseed : r->seed);
}

void dri_key_init(struct dri_key *k, const struct dr_registry *r, const void *name,
		  size_t len, bool global)
{
	k->name = name;
	k->len = (uint32_t)len;
	k->lenb = DRI_LENB(len, global);
	k->hash = dri_hash(r, name, len, global);
	k->tag = (uint16_t)(k->hash >> 48);
}

/* Order of entry idx against a key: <0 before, 0 same name, >0 after. */
static int key_cmp(struct dr_registry *r, uint32_t idx, const struct dri_entry *e,
		   const struct dri_key *k)
{
	size_t n = k->len < DRI_NAME_INLINE ? k->len : DRI_NAME_INLINE;
	int c;

	if (e->tag != k->tag)
		return e->tag < k->tag ? -1 : 1;
	if (e->name_len != k->lenb)
		return e->name_len < k->lenb ? -1 : 1;
	c = memcmp(e->name, k->name, n);
	if (c || k->len <= DRI_NAME_INLINE)
		return c;
	return memcmp(dri_ext_at(r, idx)->name, k->name + DRI_NAME_INLINE,
		      k->len - DRI_NAME_INLINE);
}

/* Copy entry idx's name (len bytes, 0 to DR_NAME_MAX) into buf. */
void dri_name_copy(struct dr_registry *r, uint32_t idx, size_t len, uint8_t *buf)
{
	const struct dri_entry *e = dri_entry_at(r, idx);

	memcpy(buf, e->name, len < DRI_NAME_INLINE ? len : DRI_NAME_INLINE);
	if (len > DRI_NAME_INLINE)
		memcpy(buf + DRI_NAME_INLINE, dri_ext_at(r, idx)->name, len - DRI_NAME_INLINE);
}

struct pos {
	uint32_t *prev;   /* the link that points at curr */
	uint32_t curr;    /* that link's value: the entry, or 0 */
	uint32_t next;    /* curr's successor link, unmarked (when found) */
};

/*
 * Find where the key belongs in its bucket, unlinking (and retiring) every
 * marked entry met on the way. Returns 1 when an unmarked entry with the
 * key is at p->curr, 0 when p->curr is where it would go, -EBADMSG when the
 * chain is corrupt (an index out of range or a cycle). Inside a read-side
 * section.
 */
static int search(struct dr_registry *r, struct dri_thread *t, const struct dri_key *k,
		  struct pos *p)
{
	uint32_t *prev, curr, steps, fp = DRI_TAG_FP(k->tag);

retry:
	prev = &r->buckets[k->hash & r->mask];
	curr = ld_acq32(prev);
	for (steps = 0;; steps++) {
		uint32_t ci = curr & DRI_LINK_IDX_MASK, nx, idx;
		struct dri_entry *e;
		int c;

		if (ci == 0 || DRI_LINK_FP(curr) > fp) {
			/* The end, or an entry past the key: here it goes. */
			p->prev = prev;
			p->curr = curr;
			p->next = 0;
			return 0;
		}
		if (ci > r->capacity || steps > r->capacity)
			return -EBADMSG;
		idx = ci - 1;
		e = dri_entry_at(r, idx);
		nx = ld_acq32(&e->next);
		if (nx & DRI_MARK) {
			uint32_t succ = nx & ~DRI_MARK;
			uint64_t s = ld_acq64(&r->states[idx]);

			if (uatomic_cmpxchg(prev, curr, succ) != curr)
				goto retry;
			DRI_CRASHPOINT(search_unlinked);
			if (DRI_ST_TAG(s) == DRI_TAG_ALLOC)
				dri_retire(r, t, idx, s);
			curr = succ;
			continue;
		}
		c = key_cmp(r, idx, e, k);
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

/*
 * Claim a free entry by CAS on its state word, which records us as owner in
 * the same step (so a crash right after leaves an entry reaping can return)
 * and counts the allocation. This thread's reusable entries first (taking
 * one costs one CAS where a free and a take cost two), then next-fit from
 * its cursor; one full turn at most.
 */
static bool try_alloc(struct dr_registry *r, struct dri_thread *t, uint32_t *idx)
{
	uint32_t cap = r->capacity, i = t->cursor % cap, n;

	if (t->nreuse > 0 && dri_take_reusable(r, t, idx))
		return true;
	for (n = 0; n < cap; n++) {
		uint32_t at = i;

		i = i + 1 == cap ? 0 : i + 1;
		if (dri_take_free(r, at)) {
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
 * while no reader we wait for is stalled. Inside a read-side section (registering
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
			/* Wait on while no reader is stalled: those we waited
			 * for are merely preempted, or have left and newer
			 * ones (of a section that started since) hold reuse
			 * back, or we freed entries (rc > 0) or met others
			 * freeing them, and other threads took them first. */
			enum dri_old_readers old = rc == -EBUSY ? dri_old_readers(r, since)
								 : DRI_OLD_NONE;

			if (old == DRI_OLD_STALLED ||
			    deadline >= start + DRI_GRACE_RUNNABLE_WAIT_NS)
				return rc == -EBUSY ? -EBUSY : -ENOSPC;
			deadline += DRI_GRACE_WAIT_NS;
			if (old == DRI_OLD_NONE)
				since = ld_acq64(&r->hdr->epoch);
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

/*
 * Give back an entry that was never linked: no reader can hold it, and no
 * other process acts on it while we live (its link was never marked). Its
 * generation goes back to what it was before we took it: an allocation
 * nobody ever saw published must not count, or a process could cycle one
 * entry through 2^22 of them (every dr_register of a name held by anyone
 * allocates, finds the name and gives the entry back) while another one,
 * paused inside a section, holds the state word the entry had.
 */
void dri_free_unpublished(struct dr_registry *r, uint32_t idx)
{
	uint64_t s = ld_acq64(&r->states[idx]);

	CMM_STORE_SHARED(dri_entry_at(r, idx)->next, 0);
	st_rel64(&r->states[idx], DRI_ST_FREE(DRI_ST_GEN(s) - 1));
}

/* Spins on a value's busy bit between looks at the clock. */
#define BUSY_SPINS 1024

/* Write value into slot of entry idx (not the current slot, or not yet
 * published). */
static void value_write(struct dr_registry *r, uint32_t idx, uint32_t slot,
			const void *value, size_t len)
{
	if (slot == 0) {
		struct dri_entry *e = dri_entry_at(r, idx);

		e->vlen = (uint8_t)len;
		if (len)
			memcpy(e->val, value, len);
	} else {
		struct dri_ext *x = dri_ext_at(r, idx);

		x->vlen[slot - 1] = (uint8_t)len;
		if (len)
			memcpy(x->val[slot - 1], value, len);
	}
}

/* The slot for a new value of len bytes, other than cur (the current
 * one): the entry's own line when it fits, else an extension slot. */
static uint32_t value_slot(uint32_t cur, size_t len)
{
	if (len <= DRI_VALUE_INLINE && cur != 0)
		return 0;
	return cur == 1 ? 2 : 1;
}

/*
 * Owner only: write the value into a slot readers are not reading, then
 * make it current. Returns 0, or -EBUSY if the busy bit is set and no
 * other thread of ours is updating (a bit another process wrote into the
 * segment), or stayed set for DRI_GRACE_RUNNABLE_WAIT_NS.
 */
static int value_update(struct dr_registry *r, uint32_t idx, const void *value, size_t len)
{
	struct dri_entry *e = dri_entry_at(r, idx);
	uint64_t deadline = 0;
	uint32_t w, spins = 0, slot;
	int rc = 0;

	/* The busy bit keeps two threads of the owner apart; a dead owner's
	 * busy bit is harmless, as nobody else ever updates its entry. The
	 * thread that holds it copies at most DR_VALUE_MAX bytes, so it is
	 * held for long only by a thread of ours that is preempted (with more
	 * threads than CPUs, tens of milliseconds): wait for it. A bit that no
	 * thread of ours holds was written by another process: r->updating
	 * counts our threads in here, each from before its CAS to after its
	 * release, and the release changes the version, so a busy word that
	 * is still the one we saw while we are the only one in here is
	 * nobody's. Give up then rather than spin for ever. */
	__atomic_fetch_add(&r->updating, 1, __ATOMIC_SEQ_CST);
	for (;;) {
		w = ld_acq32(&e->vsel);
		if (!(w & DRI_VSEL_BUSY) && uatomic_cmpxchg(&e->vsel, w, w | DRI_VSEL_BUSY) == w)
			break;
		if (++spins % BUSY_SPINS == 0) {
			uint64_t now = dri_mono_ns();

			if ((w & DRI_VSEL_BUSY) &&
			    __atomic_load_n(&r->updating, __ATOMIC_ACQUIRE) == 1 &&
			    ld_acq32(&e->vsel) == w) {
				rc = -EBUSY;
				goto out;
			}
			if (!deadline) {
				deadline = now + DRI_GRACE_RUNNABLE_WAIT_NS;
			} else if (now >= deadline) {
				rc = -EBUSY;
				goto out;
			}
			sched_yield();
		} else {
			caa_cpu_relax();
		}
	}
	DRI_CRASHPOINT(update_busy);
	slot = value_slot(DRI_VSEL_SLOT(w), len);
	value_write(r, idx, slot, value, len);
	DRI_CRASHPOINT(update_written);
	st_rel32(&e->vsel, DRI_VSEL_NEXT(w, slot));
out:
	__atomic_fetch_sub(&r->updating, 1, __ATOMIC_RELEASE);
	return rc;
}

void dri_value_read(struct dr_registry *r, uint32_t idx, struct dr_entry *out)
{
	const struct dri_entry *e = dri_entry_at(r, idx);
	uint32_t w1, w2;

	out->pid = e->pid;
	out->regid = e->regid;
	do {
		uint32_t slot;
		size_t len;

		w1 = ld_acq32(&e->vsel);
		slot = DRI_VSEL_SLOT(w1);
		if (slot == 0) {
			len = CMM_LOAD_SHARED(e->vlen);
			if (len > DRI_VALUE_INLINE)
				len = DRI_VALUE_INLINE; /* torn or corrupt; retried or checked */
			memcpy(out->value, e->val, len);
		} else {
			const struct dri_ext *x = dri_ext_at(r, idx);

			slot = slot > 2 ? 2 : slot; /* only a corrupt segment has 3 */
			len = CMM_LOAD_SHARED(x->vlen[slot - 1]);
			if (len > DR_VALUE_MAX)
				len = DR_VALUE_MAX;
			memcpy(out->value, x->val[slot - 1], len);
		}
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

/* Bound on the retries of one insert or delete: only a corrupt segment
 * (a linked entry whose state word says it is not allocated) needs it. */
#define RETRIES (1u << 20)

/* The owner of the linked entry at link curr, or 0 if it is on its way
 * out (retired since we found it unmarked: search again). */
static uint64_t linked_owner(struct dr_registry *r, uint32_t curr)
{
	uint64_t s = ld_acq64(&r->states[DRI_LINK_IDX(curr)]);

	return DRI_ST_TAG(s) == DRI_TAG_ALLOC ? DRI_ST_OWNER(s) : 0;
}

/*
 * Fill the allocated, unpublished entry idx with key k and the value, then
 * link it, or resolve a collision: our own name gets the new value (and
 * idx is freed), a live owner's name gives -EEXIST, a dead owner's name is
 * marked deleted and we go round again. Inside a read-side section.
 */
int dri_insert(struct dr_registry *r, struct dri_thread *t, uint32_t idx,
	       const struct dri_key *k, const void *value, size_t value_len, uint32_t mbox)
{
	struct dri_entry *e = dri_entry_at(r, idx);
	struct pos p;

	e->regid = 0;
	e->pid = r->pid;
	e->tag = k->tag;
	e->name_len = k->lenb;
	e->mbox = mbox;
	memcpy(e->name, k->name, k->len < DRI_NAME_INLINE ? k->len : DRI_NAME_INLINE);
	if (k->len > DRI_NAME_INLINE)
		memcpy(dri_ext_at(r, idx)->name, k->name + DRI_NAME_INLINE,
		       k->len - DRI_NAME_INLINE);
	/* No reader can reach the entry yet, nor any from its last use. */
	e->vsel = (value_len <= DRI_VALUE_INLINE ? 0u : 1u) << 1;
	value_write(r, idx, DRI_VSEL_SLOT(e->vsel), value, value_len);
	DRI_CRASHPOINT(reg_filled);
	for (uint32_t tries = 0; tries < RETRIES; tries++) {
		int rc = search(r, t, k, &p);
		uint64_t owner;

		if (rc < 0) {
			dri_free_unpublished(r, idx);
			return rc;
		}
		if (rc == 1) {
			owner = linked_owner(r, p.curr);
			if (owner == 0)
				continue;
			if (owner == r->owner) {
				/* Our own name: a new value; but it stays served
				 * by the mailbox it was registered with. */
				rc = dri_entry_at(r, DRI_LINK_IDX(p.curr))->mbox != mbox ? -EEXIST :
				     value_update(r, DRI_LINK_IDX(p.curr), value, value_len);
				dri_free_unpublished(r, idx);
				return rc;
			}
			if (!dri_owner_gone(r, owner)) {
				dri_free_unpublished(r, idx);
				return -EEXIST;
			}
			/* Its owner is dead: delete it; the next search
			 * unlinks it. */
			if (uatomic_cmpxchg(&dri_entry_at(r, DRI_LINK_IDX(p.curr))->next, p.next,
					    p.next | DRI_MARK) == p.next)
				DRI_CRASHPOINT(reg_takeover);
			continue;
		}
		CMM_STORE_SHARED(e->next, p.curr);
		if (e->regid == 0)
			e->regid = next_regid(r, t);
		/* The CAS is a full barrier: the entry is complete before it
		 * is reachable. */
		if (uatomic_cmpxchg(p.prev, p.curr, DRI_LINK(idx, k->tag)) == p.curr) {
			DRI_CRASHPOINT(reg_linked);
			return 0;
		}
	}
	dri_free_unpublished(r, idx);
	return -EBADMSG;
}

/*
 * Register without a new entry, for when none can be had: our own name
 * gets the new value (0), a live owner's name gives -EEXIST, anything else
 * -ENOENT. Inside a read-side section.
 */
int dri_update_existing(struct dr_registry *r, struct dri_thread *t, const struct dri_key *k,
			const void *value, size_t value_len, uint32_t mbox)
{
	struct pos p;
	int rc = search(r, t, k, &p);
	uint64_t owner;

	if (rc != 1)
		return rc < 0 ? rc : -ENOENT;
	owner = linked_owner(r, p.curr);
	if (owner == r->owner)
		return dri_entry_at(r, DRI_LINK_IDX(p.curr))->mbox != mbox ? -EEXIST :
		       value_update(r, DRI_LINK_IDX(p.curr), value, value_len);
	return owner && dri_owner_alive(r, owner) ? -EEXIST : -ENOENT;
}

/*
 * Look a name up. Inside a read-side section; loads only. Marked entries
 * are skipped, not unlinked.
 */
int dri_lookup(struct dr_registry *r, const struct dri_key *k, struct dr_entry *out,
	       uint32_t *mbox, uint64_t *regid, uint64_t *owner)
{
	uint32_t curr = ld_acq32(&r->buckets[k->hash & r->mask]), steps = 0;
	uint32_t fp = DRI_TAG_FP(k->tag);

	for (;;) {
		uint32_t ci = curr & DRI_LINK_IDX_MASK, nx;
		const struct dri_entry *e;

		if (ci == 0 || DRI_LINK_FP(curr) > fp)
			return -ENOENT;
		if (ci > r->capacity || ++steps > r->capacity)
			return -ENOENT; /* corrupt chain: shmdump --check says where */
		e = dri_entry_at(r, ci - 1);
		nx = ld_acq32(&e->next);
		if (DRI_LINK_FP(curr) == fp) {
			int c = key_cmp(r, ci - 1, e, k);

			if (c == 0 && !(nx & DRI_MARK)) {
				if (out)
					dri_value_read(r, ci - 1, out);
				if (mbox)
					*mbox = e->mbox;
				if (regid)
					*regid = e->regid;
				if (owner)
					*owner = linked_owner(r, curr);
				return 0;
			}
			if (c > 0)
				return -ENOENT;
		}
		curr = nx & ~DRI_MARK;
	}
}

/* Mark p's entry deleted and unlink it. 0, or 1 if someone else marked it
 * first (then nothing was done). */
static int mark_and_unlink(struct dr_registry *r, struct dri_thread *t,
			   const struct dri_key *k, struct pos *p)
{
	uint32_t idx = DRI_LINK_IDX(p->curr);
	struct dri_entry *cur = dri_entry_at(r, idx);
	uint64_t s;

	if (uatomic_cmpxchg(&cur->next, p->next, p->next | DRI_MARK) != p->next)
		return 1;
	DRI_CRASHPOINT(unreg_marked);
	s = ld_acq64(&r->states[idx]);
	if (uatomic_cmpxchg(p->prev, p->curr, p->next) == p->curr) {
		DRI_CRASHPOINT(unreg_unlinked);
		if (DRI_ST_TAG(s) == DRI_TAG_ALLOC)
			dri_retire(r, t, idx, s);
	} else {
		/* A concurrent writer changed prev: search again, which
		 * unlinks and retires every marked entry on the way. */
		struct pos q;
		search(r, t, k, &q);
	}
	return 0;
}

/*
 * Unregister a name; only its registration regid if that is not 0 (else
 * -ENOENT). Inside a read-side section. A dead owner's name is removed and
 * reported as absent (-ENOENT).
 */
int dri_delete(struct dr_registry *r, struct dri_thread *t, const struct dri_key *k,
	       uint64_t regid, bool force)
{
	struct pos p;

	for (uint32_t tries = 0; tries < RETRIES; tries++) {
		int rc = search(r, t, k, &p), dead = 0;
		uint64_t owner;

		if (rc <= 0)
			return rc == 0 ? -ENOENT : rc;
		/* Linked and found in our section: not reused before we leave. */
		if (regid && CMM_LOAD_SHARED(dri_entry_at(r, DRI_LINK_IDX(p.curr))->regid) != regid)
			return -ENOENT;
		owner = linked_owner(r, p.curr);
		if (owner == 0)
			continue; /* being deleted by someone else */
		if (!force && owner != r->owner) {
			if (!dri_owner_gone(r, owner))
				return -EPERM;
			dead = 1;
		}
		if (mark_and_unlink(r, t, k, &p))
			continue;
		return dead ? -ENOENT : 0;
	}
	return -EBADMSG;
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
	uint8_t lenb;
	size_t len;

	if (ld_acq64(&r->states[idx]) != state)
		return false; /* retired or freed by someone else meanwhile */
	lenb = CMM_LOAD_SHARED(e->name_len);
	if (dri_lenb_ok(lenb)) {
		uint8_t name[DR_NAME_MAX];
		struct dri_key k;

		len = DRI_LENB_LEN(lenb);
		dri_name_copy(r, idx, len, name);
		dri_key_init(&k, r, name, len, DRI_LENB_GLOBAL(lenb));
		for (int guard = 0; guard < 64; guard++) {
			int rc = search(r, t, &k, &p);
			if (rc != 1 || DRI_LINK_IDX(p.curr) != idx)
				break; /* idx is not reachable any more */
			if (ld_acq64(&r->states[idx]) != state)
				break; /* reachable, but another allocation */
			if (mark_and_unlink(r, t, &k, &p) == 0) {
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
 * (only_owner: dr_close for our own names; dr_open for what a dead holder
 * of our owner id left). Returns the number of visible names removed.
 * Takes read-side sections of its own.
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
			/* Our own at close; or, after our owner id came
			 * back, a dead earlier holder's, FREEING ones too. */
			if (o != only_owner)
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
