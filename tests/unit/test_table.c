/*
 * test_table.c - table states that races leave behind, made on purpose by
 * writing the segment the way the race would have left it (lib/dri.h gives
 * the layout; the operations go through the public API).
 */
#include <sys/mman.h>

#include "unit.h"

#include "segmap.h"

TestSuite(table, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

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
	base = segmap_open(seg, &len);
	cr_assert_not_null(base);
	e = segmap_entry(base, "victim");
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
