/*
 * Helpers for tests that write a segment the way a race or a crash would
 * have left it: the segment file mapped beside a handle, an entry found by
 * name, and an entry unlinked by hand. They read the private layout
 * (lib/dri.h), so only suites built with the library's include directory
 * use them. Call them while no other process writes the segment.
 */
#ifndef DR_SEGMAP_H
#define DR_SEGMAP_H

#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dri.h"
#include "testutil.h"

/* The whole segment file, mapped shared; NULL on failure. */
static inline uint8_t *segmap_open(const char *seg, size_t *len)
{
	struct stat st;
	int fd = open(dr_test_seg_path(seg), O_RDWR | O_CLOEXEC);
	void *p;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return NULL;
	*len = (size_t)st.st_size;
	return p;
}

/* The allocated entry that holds name (of at most DRI_NAME_INLINE bytes, as
 * every name these tests write by hand), or NULL. */
static inline struct dri_entry *segmap_entry(uint8_t *base, const char *name)
{
	const struct dri_header *h = (const struct dri_header *)base;
	struct dri_entry *e = (struct dri_entry *)(base + h->off_entries);
	uint64_t *states = (uint64_t *)(base + h->off_states);

	for (uint32_t i = 0; i < h->capacity; i++)
		if (DRI_ST_TAG(states[i]) == DRI_TAG_ALLOC && e[i].name_len == strlen(name) &&
		    e[i].name_len <= DRI_NAME_INLINE &&
		    memcmp(e[i].name, name, e[i].name_len) == 0)
			return &e[i];
	return NULL;
}

/* Mark entry e deleted and unlink it, as an unregistration leaves it whose
 * entry another process unlinked and died before retiring: whatever
 * linked to it links past it, and it stays allocated. */
static inline void segmap_mark_unlinked(uint8_t *base, struct dri_entry *e)
{
	const struct dri_header *h = (const struct dri_header *)base;
	struct dri_entry *entries = (struct dri_entry *)(base + h->off_entries);
	uint32_t *buckets = (uint32_t *)(base + h->off_buckets);
	uint32_t link = (uint32_t)(e - entries) + 1, succ;

	__atomic_fetch_or(&e->next, DRI_MARK, __ATOMIC_SEQ_CST);
	succ = e->next & ~DRI_MARK;
	for (uint32_t b = 0; b < h->nbuckets; b++)
		if ((buckets[b] & DRI_LINK_IDX_MASK) == link)
			buckets[b] = succ;
	for (uint32_t i = 0; i < h->capacity; i++)
		if ((entries[i].next & DRI_LINK_IDX_MASK) == link)
			entries[i].next = succ | (entries[i].next & DRI_MARK);
}

#endif
