/*
 * idmap.h - a map from 64-bit ids to pointers: open addressing, linear
 * probing, backward-shift deletion. Ids are never 0.
 */
#ifndef DISTREG_IDMAP_H
#define DISTREG_IDMAP_H

#include <stddef.h>
#include <stdint.h>

struct idmap {
	uint64_t *keys;
	void **vals;
	size_t cap;   /* a power of two, or 0 */
	size_t n;
};

void idmap_init(struct idmap *m);
void idmap_finish(struct idmap *m);
/* 0, or -ENOMEM. An id already there gets the new value. */
int idmap_put(struct idmap *m, uint64_t id, void *val);
void *idmap_get(const struct idmap *m, uint64_t id);
/* Remove id and return its value (NULL if absent). */
void *idmap_take(struct idmap *m, uint64_t id);

#endif
