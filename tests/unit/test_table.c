/*
 * test_table.c - table states that races leave behind, made on purpose by
 * writing the segment the way the race would have left it (lib/dri.h gives
 * the layout; the operations go through the public API).
 */
#include <sys/mman.h>

#include "unit.h"

#include "dri.h"

TestSuite(table, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

/* The segment file mapped in the test process, beside its handle. */
static uint8_t *map_segment(const char *seg, size_t *len)
{
	struct stat st;
	int fd = open(seg_path(seg), O_RDWR | O_CLOEXEC);
	void *p;

	cr_assert_geq(fd, 0);
	cr_assert_eq(fstat(fd, &st), 0);
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	cr_assert_neq(p, MAP_FAILED);
	close(fd);
	*len = (size_t)st.st_size;
	return p;
}

/* The entry that holds name, found by walking every entry. */
static struct dri_entry *entry_named(uint8_t *base, const char *name)
{
	const struct dri_header *h = (const struct dri_header *)base;
	struct dri_entry *e = (struct dri_entry *)(base + h->off_entries);
	uint64_t *states = (uint64_t *)(base + h->off_states);

	for (uint32_t i = 0; i < h->capacity; i++)
		if (DRI_ST_TAG(states[i]) == DRI_TAG_ALLOC && e[i].name_len == strlen(name) &&
		    memcmp(e[i].name, name, e[i].name_len) == 0)
			return &e[i];
	return NULL;
}

/*
 * An unregistration marks its entry, then unlinks it with a CAS on the
 * predecessor's link; when that CAS loses to a concurrent writer, the entry
 * stays linked, marked and allocated until a search passes it. In a bucket
 * nobody touches again, only the full-table slow path can take it back:
 * exactly capacity names must still fit.
 */
Test(table, entry_marked_but_still_linked_is_reclaimed_when_the_table_is_full)
{
	const char *seg = seg_new("halfdel");
	dr_registry *r = seg_open(seg, 16);
	struct dr_stats st;
	struct dri_entry *e;
	uint8_t *base;
	char name[32];
	size_t len;

	cr_assert_eq(dr_register(r, "victim", "v", 1), 0);
	base = map_segment(seg, &len);
	e = entry_named(base, "victim");
	cr_assert_not_null(e);
	/* As the losing unregistration leaves it: marked, still linked. */
	__atomic_fetch_or(&e->next, DRI_MARK, __ATOMIC_SEQ_CST);
	cr_assert_eq(dr_whereis(r, "victim", NULL), -ENOENT, "a marked entry is deleted");
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.inflight, 1, "the marked entry is allocated and not a name");

	for (int i = 0; i < 16; i++) {
		int rc;

		snprintf(name, sizeof(name), "n%02d", i);
		rc = dr_register(r, name, NULL, 0);
		cr_assert_eq(rc, 0, "%s: %s with %d names in a table of 16", name, dr_strerror(rc), i);
	}
	cr_assert_eq(dr_register(r, "one-too-many", NULL, 0), -ENOSPC);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, 16);
	cr_assert_eq(st.inflight, 0);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	munmap(base, len);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}
