/*
 * pending.c - the calls in flight of one mailbox, by call id (see struct
 * dri_pendtab in dri.h). Private to the process: no shared memory here.
 *
 * Open addressing with linear probing, at most half full, and removal by
 * backward shift (no tombstones): a table that sees millions of calls come
 * and go never fills with dead slots, and a look stops at the first free
 * slot.
 */
#include <errno.h>
#include <stdlib.h>

#include "dri.h"

static size_t home(const struct dri_pendtab *t, uint64_t call_id)
{
	return (size_t)(call_id * 0x9e3779b97f4a7c15ull >> 32) & (t->cap - 1);
}

static void put(struct dri_pendtab *t, const struct dri_pending *p)
{
	size_t i = home(t, p->call_id);

	while (t->slot[i].call_id)
		i = (i + 1) & (t->cap - 1);
	t->slot[i] = *p;
}

static int grow(struct dri_pendtab *t)
{
	struct dri_pendtab was = *t;
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct dri_pending *s = calloc(cap, sizeof(*s));

	if (!s)
		return -ENOMEM;
	t->slot = s;
	t->cap = cap;
	for (size_t i = 0; i < was.cap; i++)
		if (was.slot[i].call_id)
			put(t, &was.slot[i]);
	free(was.slot);
	return 0;
}

int dri_pend_add(struct dri_pendtab *t, const struct dri_pending *p)
{
	if (p->call_id == 0)
		return -EINVAL;
	if ((t->n + 1) * 2 > t->cap && grow(t) != 0)
		return -ENOMEM;
	put(t, p);
	__atomic_store_n(&t->n, t->n + 1, __ATOMIC_RELAXED);
	return 0;
}

struct dri_pending *dri_pend_find(struct dri_pendtab *t, uint64_t call_id)
{
	if (!t->cap || !call_id)
		return NULL;
	for (size_t i = home(t, call_id); t->slot[i].call_id; i = (i + 1) & (t->cap - 1))
		if (t->slot[i].call_id == call_id)
			return &t->slot[i];
	return NULL;
}

/* Free p's slot, then move back each entry after it that a look from its
 * home would no longer reach past the hole. */
void dri_pend_remove(struct dri_pendtab *t, struct dri_pending *p)
{
	size_t mask = t->cap - 1, hole = (size_t)(p - t->slot), j = hole;

	for (;;) {
		j = (j + 1) & mask;
		if (!t->slot[j].call_id)
			break;
		/* Entry j stays if its home lies cyclically in (hole, j]. */
		if (((j - home(t, t->slot[j].call_id)) & mask) >= ((j - hole) & mask)) {
			t->slot[hole] = t->slot[j];
			hole = j;
		}
	}
	t->slot[hole].call_id = 0;
	__atomic_store_n(&t->n, t->n - 1, __ATOMIC_RELAXED);
}

void dri_pend_free(struct dri_pendtab *t)
{
	for (size_t i = 0; i < t->cap; i++)
		if (t->slot[i].call_id)
			free(t->slot[i].again);
	free(t->slot);
	*t = (struct dri_pendtab){ 0 };
}
