/*
 * idmap.c - see idmap.h. The bridge keeps a few thousand calls in flight at
 * most; the table stays at most half full.
 */
#include <errno.h>
#include <stdlib.h>

#include "idmap.h"

static size_t slot_of(uint64_t id, size_t cap)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (size_t)id & (cap - 1);
}

void idmap_init(struct idmap *m)
{
	*m = (struct idmap){ 0 };
}

void idmap_finish(struct idmap *m)
{
	free(m->keys);
	free(m->vals);
	idmap_init(m);
}

static int grow(struct idmap *m)
{
	size_t cap = m->cap ? 2 * m->cap : 64;
	uint64_t *keys = calloc(cap, sizeof(*keys));
	void **vals = calloc(cap, sizeof(*vals));

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (size_t i = 0; i < m->cap; i++) {
		size_t j;

		if (!m->keys[i])
			continue;
		for (j = slot_of(m->keys[i], cap); keys[j]; j = (j + 1) & (cap - 1))
			;
		keys[j] = m->keys[i];
		vals[j] = m->vals[i];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	return 0;
}

int idmap_put(struct idmap *m, uint64_t id, void *val)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap) {
		int rc = grow(m);

		if (rc)
			return rc;
	}
	for (i = slot_of(id, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1)) {
		if (m->keys[i] == id) {
			m->vals[i] = val;
			return 0;
		}
	}
	m->keys[i] = id;
	m->vals[i] = val;
	m->n++;
	return 0;
}

void *idmap_get(const struct idmap *m, uint64_t id)
{
	if (!m->cap)
		return NULL;
	for (size_t i = slot_of(id, m->cap); m->keys[i]; i = (i + 1) & (m->cap - 1))
		if (m->keys[i] == id)
			return m->vals[i];
	return NULL;
}

void *idmap_take(struct idmap *m, uint64_t id)
{
	size_t i, j, mask = m->cap - 1;
	void *val;

	if (!m->cap)
		return NULL;
	for (i = slot_of(id, m->cap); m->keys[i] != id; i = (i + 1) & mask)
		if (!m->keys[i])
			return NULL;
	val = m->vals[i];
	/* Backward shift: move up every later key of the run whose home
	 * slot is not between the hole and it. */
	for (j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
		size_t home = slot_of(m->keys[j], m->cap);

		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->keys[i] = m->keys[j];
			m->vals[i] = m->vals[j];
			i = j;
		}
	}
	m->keys[i] = 0;
	m->vals[i] = NULL;
	m->n--;
	return val;
}
