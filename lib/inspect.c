/*
 * inspect.c - walking the segment for tools: iteration, statistics and the
 * invariant checker behind shmdump. Nothing here is on a hot path; it may
 * make a system call per attached process to learn who is alive.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dri.h"

/* Liveness of owners, asked once per (slot, generation) during a walk. */
struct alive_cache {
	uint32_t n;
	uint32_t *gen;
	int8_t *alive; /* -1 unknown */
};

static int cache_init(struct alive_cache *c, struct dr_registry *r)
{
	c->n = r->max_procs;
	c->gen = calloc(c->n, sizeof(*c->gen));
	c->alive = malloc(c->n);
	if (!c->gen || !c->alive) {
		free(c->gen);
		free(c->alive);
		return -ENOMEM;
	}
	memset(c->alive, -1, c->n);
	return 0;
}

static void cache_fini(struct alive_cache *c)
{
	free(c->gen);
	free(c->alive);
}

static bool cache_alive(struct alive_cache *c, struct dr_registry *r, uint64_t owner)
{
	uint32_t slot = DRI_OWNER_SLOT(owner);

	if (slot >= c->n)
		return false;
	if (c->alive[slot] < 0 || c->gen[slot] != DRI_OWNER_GEN(owner)) {
		c->gen[slot] = DRI_OWNER_GEN(owner);
		c->alive[slot] = dri_owner_alive(r, owner);
	}
	return c->alive[slot];
}

/*
 * Walk every linked entry of every bucket inside one read-side section.
 * visit returns nonzero to stop; that value is returned.
 */
typedef int (*walk_fn)(struct dr_registry *r, uint32_t bucket, uint32_t idx,
		       uint32_t next, uint32_t depth, void *arg);

static int walk(struct dr_registry *r, walk_fn visit, void *arg)
{
	struct dri_thread *t = NULL;
	int err, rc = 0;

	/* A read-only handle has no reader slot, so no read-side section:
	 * an entry may be reclaimed and reused while it is read. Every read
	 * is bounded (an index by the capacity, a chain by the capacity, a
	 * length by its field's size), so the worst a reuse does is show a
	 * torn or moved name: the walk is a best-effort snapshot. */
	if (!r->rdonly) {
		err = dri_thread_get(r, &t);
		if (err)
			return err;
		dri_read_enter(r, t);
	}
	for (uint32_t b = 0; b <= r->mask && rc == 0; b++) {
		uint32_t curr = ld_acq32(&r->buckets[b]), depth = 0;

		while ((curr & DRI_LINK_IDX_MASK) && rc == 0) {
			uint32_t nx, ci = curr & DRI_LINK_IDX_MASK;

			if (ci > r->capacity || depth > r->capacity)
				break; /* corrupt; dr_check reports it */
			nx = ld_acq32(&dri_entry_at(r, ci - 1)->next);
			rc = visit(r, b, ci - 1, nx, ++depth, arg);
			curr = nx & ~DRI_MARK;
		}
	}
	if (t)
		dri_read_exit(r, t);
	return rc;
}

struct foreach_ctx {
	dr_foreach_fn fn;
	void *arg;
	struct alive_cache cache;
	uint8_t name[DR_NAME_MAX];
};

/* The owner of linked entry idx, 0 if it is being deleted (not a name to
 * count or show). */
static uint64_t entry_owner(struct dr_registry *r, uint32_t idx)
{
	uint64_t s = ld_acq64(&r->states[idx]);

	return DRI_ST_TAG(s) == DRI_TAG_ALLOC ? DRI_ST_OWNER(s) : 0;
}

static int foreach_visit(struct dr_registry *r, uint32_t b, uint32_t idx,
			 uint32_t next, uint32_t depth, void *arg)
{
	struct foreach_ctx *c = arg;
	const struct dri_entry *e = dri_entry_at(r, idx);
	struct dr_name_info info;
	uint8_t lenb = CMM_LOAD_SHARED(e->name_len);
	size_t len = DRI_LENB_LEN(lenb);
	uint64_t owner = entry_owner(r, idx);

	(void)b;
	(void)depth;
	/* Deleted, or of length 0: the bridge's address, which is no
	 * registered name, or a local name length no registration can write
	 * (a corrupt entry, which dr_check() reports): not a name to show. */
	if ((next & DRI_MARK) || owner == 0 || len == 0)
		return 0;
	dri_name_copy(r, idx, len, c->name);
	info.name = c->name;
	info.name_len = len;
	dri_value_read(r, idx, &info.entry);
	info.alive = cache_alive(&c->cache, r, owner);
	info.global = DRI_LENB_GLOBAL(lenb);
	return c->fn(&info, c->arg);
}

DR_EXPORT int dr_foreach(dr_registry *r, dr_foreach_fn fn, void *arg)
{
	struct foreach_ctx c = { .fn = fn, .arg = arg };
	int rc;

	if (!r || !fn)
		return -EINVAL;
	if (r->pid != dri_self_pid)
		return -ECHILD;
	rc = cache_init(&c.cache, r);
	if (rc)
		return rc;
	rc = walk(r, foreach_visit, &c);
	cache_fini(&c.cache);
	return rc;
}

struct stats_ctx {
	struct dr_stats *s;
	struct alive_cache cache;
};

static int stats_visit(struct dr_registry *r, uint32_t b, uint32_t idx,
		       uint32_t next, uint32_t depth, void *arg)
{
	struct stats_ctx *c = arg;
	uint64_t owner = entry_owner(r, idx);

	(void)b;
	if (depth > c->s->longest_chain)
		c->s->longest_chain = depth;
	if ((next & DRI_MARK) || owner == 0)
		return 0;
	if (cache_alive(&c->cache, r, owner))
		c->s->live++;
	else
		c->s->dead++;
	return 0;
}

DR_EXPORT int dr_stats(dr_registry *r, struct dr_stats *out)
{
	struct stats_ctx c;
	uint32_t alloc = 0, active, held;
	uint64_t newest_retired = 0;
	int err;

	if (!r || !out)
		return -EINVAL;
	if (r->pid != dri_self_pid)
		return -ECHILD;
	memset(out, 0, sizeof(*out));
	c.s = out;
	err = cache_init(&c.cache, r);
	if (err)
		return err;
	err = walk(r, stats_visit, &c);
	cache_fini(&c.cache);
	if (err)
		return err;

	for (uint32_t i = 0; i < r->capacity; i++) {
		uint64_t s = ld_acq64(&r->states[i]), ep;

		switch (DRI_ST_TAG(s)) {
		case DRI_TAG_FREE:
			out->free_entries++;
			break;
		case DRI_TAG_ALLOC:
			alloc++;
			break;
		case DRI_TAG_RETIRED:
			out->retired++;
			ep = dri_st_epoch(s, ld_acq64(&r->hdr->epoch));
			if (ep > newest_retired)
				newest_retired = ep;
			break;
		default: /* FREEING: being freed right now */
			out->retired++;
			break;
		}
	}
	out->inflight = alloc > out->live + out->dead ? alloc - out->live - out->dead : 0;
	for (uint32_t i = 0; i < r->max_procs; i++) {
		uint64_t w = ld_acq64(&r->procs[i].word);
		if ((w & DRI_PROC_LIVE) && dri_owner_alive(r, DRI_OWNER(i, DRI_PROC_GEN(w))))
			out->procs++;
	}
	out->stalled_pid = dri_stalled_reader(r, newest_retired, &active, &held);
	out->readers = held;
	out->readers_active = active;
	out->capacity = r->capacity;
	out->nbuckets = r->mask + 1;
	out->max_procs = r->max_procs;
	out->max_threads = r->max_threads;
	out->epoch = ld_acq64(&r->hdr->epoch);
	out->next_regid = ld_acq64(&r->hdr->next_regid);
	out->segment_bytes = r->size;
	out->max_mailboxes = r->max_mailboxes;
	out->max_lanes = r->max_lanes;
	out->message_max = (uint32_t)dr_message_max(r);
	{
		bool ran;

		out->bridge_pid = dri_bridge_pid(r, &ran);
		out->bridge_ran = ran;
	}
	for (uint32_t i = 0; i < r->max_mailboxes; i++)
		out->mailboxes += ld_acq64(&r->mboxes[i].owner) != 0;
	for (uint32_t i = 0; i < r->max_lanes; i++)
		out->lanes += ld_acq64(&dri_lane_at(r, i)->owner) != 0;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* dr_check */

struct check_ctx {
	char *msg;
	size_t len;
	uint8_t *seen;            /* one bit per entry: linked */
	uint64_t epoch, next_regid;
	bool have_prev;           /* prev_* hold the previous entry of this bucket */
	uint16_t prev_tag;
	uint8_t prev_lenb;
	uint8_t prev_name[DR_NAME_MAX];
	uint8_t name[DR_NAME_MAX];
};

__attribute__((format(printf, 2, 3)))
static int fail(struct check_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->msg && c->len) {
		va_start(ap, fmt);
		vsnprintf(c->msg, c->len, fmt, ap);
		va_end(ap);
	}
	return -EBADMSG;
}

static int check_visit(struct dr_registry *r, uint32_t b, uint32_t idx,
		       uint32_t next, uint32_t depth, void *arg)
{
	struct check_ctx *c = arg;
	const struct dri_entry *e = dri_entry_at(r, idx);
	const struct dri_ext *x = dri_ext_at(r, idx);
	uint64_t s = ld_acq64(&r->states[idx]), hash;
	uint32_t succ = next & ~DRI_MARK, slot = DRI_VSEL_SLOT(e->vsel);
	uint8_t lenb = e->name_len;
	size_t len = DRI_LENB_LEN(lenb);
	int order = 0;

	if (depth == 1)
		c->have_prev = false;
	if (c->seen[idx / 8] & (1u << (idx % 8)))
		return fail(c, "bucket %u: entry %u is linked twice (cycle or shared tail)", b, idx);
	c->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
	if ((succ & DRI_LINK_IDX_MASK) > r->capacity)
		return fail(c, "bucket %u: entry %u links to index %u, past capacity %u",
			    b, idx, DRI_LINK_IDX(succ), r->capacity);
	if (succ && !(succ & DRI_LINK_IDX_MASK))
		return fail(c, "bucket %u: entry %u ends its chain with tag bits %#x", b, idx, succ);
	if (DRI_ST_TAG(s) != DRI_TAG_ALLOC)
		return fail(c, "bucket %u: linked entry %u is not allocated (state %#llx)",
			    b, idx, (unsigned long long)s);
	if (!dri_lenb_ok(lenb))
		return fail(c, "entry %u: name length %zu out of range", idx, len);
	dri_name_copy(r, idx, len, c->name);
	hash = dri_hash(r, c->name, len, DRI_LENB_GLOBAL(lenb));
	if ((hash & r->mask) != b)
		return fail(c, "entry %u: its name belongs in bucket %llu, found in %u", idx,
			    (unsigned long long)(hash & r->mask), b);
	if ((uint16_t)(hash >> 48) != e->tag)
		return fail(c, "entry %u: stored tag does not match its name", idx);
	if ((succ & DRI_LINK_IDX_MASK) && DRI_LINK_FP(succ) != DRI_TAG_FP(dri_entry_at(r, DRI_LINK_IDX(succ))->tag))
		return fail(c, "entry %u: its link's tag bits do not match entry %u", idx,
			    DRI_LINK_IDX(succ));
	if (slot == 3 || (slot == 0 && e->vlen > DRI_VALUE_INLINE) ||
	    x->vlen[0] > DR_VALUE_MAX || x->vlen[1] > DR_VALUE_MAX)
		return fail(c, "entry %u: value slot or length out of range", idx);
	if (e->regid == 0 || e->regid >= c->next_regid)
		return fail(c, "entry %u: registration id %llu not below the next id %llu", idx,
			    (unsigned long long)e->regid, (unsigned long long)c->next_regid);
	if (e->pid <= 0)
		return fail(c, "entry %u: pid %d", idx, e->pid);
	if (c->have_prev) {
		if (c->prev_tag != e->tag)
			order = c->prev_tag < e->tag ? -1 : 1;
		else if (c->prev_lenb != lenb)
			order = c->prev_lenb < lenb ? -1 : 1;
		else
			order = memcmp(c->prev_name, c->name, len);
		if (order > 0)
			return fail(c, "bucket %u: entry %u is out of order", b, idx);
	}
	c->have_prev = true;
	c->prev_tag = e->tag;
	c->prev_lenb = lenb;
	memcpy(c->prev_name, c->name, len);
	return 0;
}

DR_EXPORT int dr_check(dr_registry *r, char *msg, size_t msg_len)
{
	struct dri_header *h;
	struct check_ctx c = { .msg = msg, .len = msg_len };
	uint32_t hwm;
	int rc = 0;

	if (!r)
		return -EINVAL;
	if (r->pid != dri_self_pid)
		return -ECHILD;
	if (msg && msg_len)
		msg[0] = 0;
	h = r->hdr;
	c.epoch = ld_acq64(&h->epoch);
	c.next_regid = ld_acq64(&h->next_regid);
	if (h->magic != DRI_MAGIC || h->format != dri_format_word())
		return fail(&c, "header: magic or format word changed under us");
	if (h->size != r->size || h->capacity != r->capacity || h->nbuckets != r->mask + 1 ||
	    h->max_procs != r->max_procs || h->max_threads != r->max_threads ||
	    h->off_procs != (uint64_t)((uint8_t *)r->procs - r->base) ||
	    h->off_readers != (uint64_t)((uint8_t *)r->readers - r->base) ||
	    h->off_states != (uint64_t)((uint8_t *)r->states - r->base) ||
	    h->off_buckets != (uint64_t)((uint8_t *)r->buckets - r->base) ||
	    h->off_entries != (uint64_t)((uint8_t *)r->entries - r->base) ||
	    h->off_ext != (uint64_t)((uint8_t *)r->ext - r->base) ||
	    h->off_cluster != (uint64_t)((uint8_t *)r->cluster - r->base))
		return fail(&c, "header: geometry changed under us");
	if (c.epoch == 0)
		return fail(&c, "header: epoch is 0");
	if (c.next_regid < h->created_ns)
		return fail(&c, "header: next registration id below the creation time");

	for (uint32_t i = 0; i < r->max_procs; i++) {
		uint64_t w = ld_acq64(&r->procs[i].word);
		if ((w & DRI_PROC_LIVE) && (DRI_PROC_GEN(w) == 0 || r->procs[i].pid <= 0))
			return fail(&c, "process slot %u: live with generation %u and pid %d", i,
				    DRI_PROC_GEN(w), r->procs[i].pid);
	}

	hwm = ld_acq32(&h->readers_hwm);
	if (hwm > r->max_threads)
		return fail(&c, "reader high-water mark %u above %u slots", hwm, r->max_threads);
	for (uint32_t i = 0; i < r->max_threads; i++) {
		uint64_t o = ld_acq64(&r->readers[i].owner);
		uint64_t e = ld_acq64(&r->readers[i].epoch);
		if (o == 0)
			continue;
		/* A claim raises the mark before it takes the slot, so an owner
		 * seen set implies a mark above it, when read after it. */
		if (i >= hwm)
			hwm = ld_acq32(&h->readers_hwm);
		if (i >= hwm)
			return fail(&c, "reader slot %u: owned but above the high-water mark %u", i, hwm);
		if (DRI_OWNER_SLOT(o) >= r->max_procs || DRI_OWNER_GEN(o) == 0)
			return fail(&c, "reader slot %u: bad owner %#llx", i, (unsigned long long)o);
		if (e > c.epoch)
			c.epoch = ld_acq64(&h->epoch); /* a reader entered since */
		if (e > c.epoch)
			return fail(&c, "reader slot %u: epoch %llu ahead of the global %llu", i,
				    (unsigned long long)e, (unsigned long long)c.epoch);
	}

	for (uint32_t i = 0; i < r->capacity; i++) {
		uint64_t s = ld_acq64(&r->states[i]);
		uint64_t tag = DRI_ST_TAG(s);

		if (tag == DRI_TAG_FREE) {
			if (DRI_ST_OWNER(s) != 0)
				return fail(&c, "entry %u: invalid state %#llx", i, (unsigned long long)s);
			if (ld_acq32(&dri_entry_at(r, i)->next) != 0)
				return fail(&c, "entry %u: free but its link is set", i);
		} else if (tag == DRI_TAG_ALLOC || tag == DRI_TAG_FREEING) {
			uint64_t o = DRI_ST_OWNER(s);
			if (DRI_OWNER_SLOT(o) >= r->max_procs || DRI_OWNER_GEN(o) == 0)
				return fail(&c, "entry %u: bad owner %#llx", i, (unsigned long long)o);
		}
	}

	for (uint32_t b = 0; b <= r->mask; b++) {
		uint32_t head = ld_acq32(&r->buckets[b]);
		if ((head & DRI_LINK_IDX_MASK) > r->capacity || (head & DRI_MARK) ||
		    (head && !(head & DRI_LINK_IDX_MASK)))
			return fail(&c, "bucket %u: head %#x out of range", b, head);
		if ((head & DRI_LINK_IDX_MASK) &&
		    DRI_LINK_FP(head) != DRI_TAG_FP(dri_entry_at(r, DRI_LINK_IDX(head))->tag))
			return fail(&c, "bucket %u: the head's tag bits do not match entry %u", b,
				    DRI_LINK_IDX(head));
	}

	rc = dri_view_check(r, msg, msg_len);
	if (rc)
		return rc;

	c.seen = calloc((r->capacity + 7) / 8, 1);
	if (!c.seen)
		return -ENOMEM;
	rc = walk(r, check_visit, &c);
	free(c.seen);
	return rc;
}
