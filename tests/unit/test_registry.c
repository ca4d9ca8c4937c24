/*
 * test_registry.c - lib/registry.c and lib/table.c through the public API:
 * register, look up, unregister, ownership, capacity, close, fork, exit and
 * exec of owners.
 */
#include "unit.h"

TestSuite(registry, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

static void expect_value(dr_registry *r, const char *name, const void *value,
			 size_t len)
{
	struct dr_entry e;
	int rc = dr_whereis(r, name, &e);

	cr_assert_eq(rc, 0, "whereis %s: %s", name, dr_strerror(rc));
	cr_assert_eq(e.value_len, len, "%s: value_len %zu, want %zu", name, e.value_len, len);
	if (len)
		cr_assert_arr_eq(e.value, value, len, "%s: value bytes differ", name);
}

Test(registry, register_whereis_unregister_round_trip)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);

	cr_assert_eq(dr_whereis(r, "svc", NULL), -ENOENT);
	cr_assert_eq(dr_register(r, "svc", "10.0.0.1:80", 11), 0);
	expect_value(r, "svc", "10.0.0.1:80", 11);
	cr_assert_eq(dr_unregister(r, "svc"), 0);
	cr_assert_eq(dr_whereis(r, "svc", NULL), -ENOENT);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, value_bytes_and_length_are_copied_exactly)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	unsigned char big[DR_VALUE_MAX];
	struct dr_entry e;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (unsigned char)(i * 73); /* includes 0 bytes */
	cr_assert_eq(dr_register(r, "empty-null", NULL, 0), 0);
	cr_assert_eq(dr_register(r, "empty-ptr", big, 0), 0);
	cr_assert_eq(dr_register(r, "max", big, DR_VALUE_MAX), 0);
	cr_assert_eq(dr_register(r, "one", "\0", 1), 0);

	memset(&e, 0xa5, sizeof(e));
	cr_assert_eq(dr_whereis(r, "empty-null", &e), 0);
	cr_assert_eq(e.value_len, 0);
	expect_value(r, "empty-ptr", NULL, 0);
	expect_value(r, "max", big, DR_VALUE_MAX);
	expect_value(r, "one", "\0", 1);

	/* A shorter value replacing a longer one has the shorter length. */
	cr_assert_eq(dr_register(r, "max", "abc", 3), 0);
	expect_value(r, "max", "abc", 3);
	cr_assert_eq(dr_register(r, "max", big, DR_VALUE_MAX), 0);
	expect_value(r, "max", big, DR_VALUE_MAX);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, entry_pid_is_getpid)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	struct dr_entry e;

	cr_assert_eq(dr_register(r, "svc", "x", 1), 0);
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.pid, getpid());
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, regid_increases_strictly_and_changes_on_reregistration)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	struct dr_entry e;
	uint64_t prev = 0;
	char name[32];

	for (int i = 0; i < 50; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, NULL, 0), 0);
		cr_assert_eq(dr_whereis(r, name, &e), 0);
		if (i > 0)
			cr_assert_gt(e.regid, prev, "regid of %s not above the previous one", name);
		prev = e.regid;
	}
	/* Unregister and register again: a new registration, a new id. */
	cr_assert_eq(dr_whereis(r, "n0", &e), 0);
	uint64_t first = e.regid;
	cr_assert_eq(dr_unregister(r, "n0"), 0);
	cr_assert_eq(dr_register(r, "n0", NULL, 0), 0);
	cr_assert_eq(dr_whereis(r, "n0", &e), 0);
	cr_assert_neq(e.regid, first);
	cr_assert_gt(e.regid, prev);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, reregistering_own_name_updates_value_and_keeps_regid)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	struct dr_entry e1, e2;
	struct dr_stats st;

	cr_assert_eq(dr_register(r, "svc", "old", 3), 0);
	cr_assert_eq(dr_whereis(r, "svc", &e1), 0);
	cr_assert_eq(dr_register(r, "svc", "newer", 5), 0);
	cr_assert_eq(dr_whereis(r, "svc", &e2), 0);
	cr_assert_eq(e2.regid, e1.regid);
	cr_assert_eq(e2.value_len, 5);
	cr_assert_arr_eq(e2.value, "newer", 5);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, 1, "an update must not add a name");
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, reregistering_own_name_on_full_table_updates_value)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	char name[32];
	int rc;

	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, "a", 1), 0);
	}
	/* Replacing a value adds no name, so a full table must allow it. */
	rc = dr_register(r, "n7", "b", 1);
	cr_assert_eq(rc, 0, "update on a full table: %s", dr_strerror(rc));
	expect_value(r, "n7", "b", 1);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, name_held_by_another_handle_is_eexist)
{
	const char *seg = seg_new("own");
	dr_registry *r1 = seg_open(seg, 64), *r2 = seg_open(seg, 64);
	struct dr_entry before, after;

	cr_assert_eq(dr_register(r1, "svc", "one", 3), 0);
	cr_assert_eq(dr_whereis(r1, "svc", &before), 0);
	cr_assert_eq(dr_register(r2, "svc", "two", 3), -EEXIST);
	cr_assert_eq(dr_whereis(r2, "svc", &after), 0);
	cr_assert_eq(after.regid, before.regid);
	cr_assert_eq(after.value_len, 3);
	cr_assert_arr_eq(after.value, "one", 3);
	dr_close(r2);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, unregistering_another_handles_name_is_eperm)
{
	const char *seg = seg_new("own");
	dr_registry *r1 = seg_open(seg, 64), *r2 = seg_open(seg, 64);

	cr_assert_eq(dr_register(r1, "svc", "one", 3), 0);
	cr_assert_eq(dr_unregister(r2, "svc"), -EPERM);
	expect_value(r2, "svc", "one", 3);
	cr_assert_eq(dr_unregister_bin(r2, "svc", 3), -EPERM);
	cr_assert_eq(dr_whereis(r1, "svc", NULL), 0);
	dr_close(r2);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, unregister_force_removes_another_handles_name)
{
	const char *seg = seg_new("own");
	dr_registry *r1 = seg_open(seg, 64), *r2 = seg_open(seg, 64);

	cr_assert_eq(dr_register(r1, "svc", "one", 3), 0);
	cr_assert_eq(dr_unregister_force(r2, "svc"), 0);
	cr_assert_eq(dr_whereis(r1, "svc", NULL), -ENOENT);
	cr_assert_eq(dr_unregister(r1, "svc"), -ENOENT);
	/* The name is free for anyone now. */
	cr_assert_eq(dr_register(r2, "svc", "two", 3), 0);
	expect_value(r1, "svc", "two", 3);
	cr_assert_eq(dr_register(r1, "bin", "x", 1), 0);
	cr_assert_eq(dr_unregister_force_bin(r2, "bin", 3), 0);
	cr_assert_eq(dr_whereis(r2, "bin", NULL), -ENOENT);
	dr_close(r2);
	dr_close(r1);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct hold_arg {
	const char *seg;
	int ready_w;   /* child writes 'r' when it holds the name */
	int release_r; /* child leaves when this reaches end of file */
	int release_w; /* the parent's end, closed in the child */
};

static int child_hold_name(void *p)
{
	struct hold_arg *a = p;
	dr_registry *r = NULL;
	char c;

	close(a->release_w);
	if (seg_open_opts(a->seg, 64, &r) != 0)
		return 1;
	if (dr_register(r, "svc", "child", 5) != 0)
		return 2;
	if (write_byte(a->ready_w, 'r') != 0)
		return 3;
	while (read_byte(a->release_r, &c) > 0)
		;
	dr_close(r);
	return 0;
}

Test(registry, name_held_by_live_process_is_eexist_and_eperm)
{
	const char *seg = seg_new("own");
	dr_registry *r = seg_open(seg, 64);
	int ready[2], release[2];
	struct dr_entry e;
	char c;

	cr_assert_eq(pipe(ready), 0);
	cr_assert_eq(pipe(release), 0);
	struct hold_arg a = { seg, ready[1], release[0], release[1] };
	pid_t pid = spawn(child_hold_name, &a);
	close(ready[1]);
	close(release[0]);
	cr_assert_eq(read_byte(ready[0], &c), 1, "child failed before holding the name");

	cr_assert_eq(dr_register(r, "svc", "parent", 6), -EEXIST);
	cr_assert_eq(dr_unregister(r, "svc"), -EPERM);
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.pid, pid);

	close(release[1]);
	cr_assert_eq(wait_child(pid), 0);
	close(ready[0]);
	/* The child closed its handle: its name went with it. */
	cr_assert_eq(dr_whereis(r, "svc", NULL), -ENOENT);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, missing_names_are_enoent)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	struct dr_entry e;

	cr_assert_eq(dr_whereis(r, "nope", &e), -ENOENT);
	cr_assert_eq(dr_whereis(r, "nope", NULL), -ENOENT);
	cr_assert_eq(dr_unregister(r, "nope"), -ENOENT);
	cr_assert_eq(dr_unregister_force(r, "nope"), -ENOENT);
	cr_assert_eq(dr_register(r, "once", NULL, 0), 0);
	cr_assert_eq(dr_unregister(r, "once"), 0);
	cr_assert_eq(dr_unregister(r, "once"), -ENOENT);
	cr_assert_eq(dr_whereis(r, "once", NULL), -ENOENT);
	cr_assert_eq(dr_unregister_force(r, "once"), -ENOENT);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, names_of_length_1_and_name_max_are_accepted)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	char longest[DR_NAME_MAX + 1];

	memset(longest, 'n', DR_NAME_MAX);
	longest[DR_NAME_MAX] = 0;
	cr_assert_eq(dr_register(r, "a", "1", 1), 0);
	cr_assert_eq(dr_register(r, longest, "2", 1), 0);
	expect_value(r, "a", "1", 1);
	expect_value(r, longest, "2", 1);
	/* A prefix of the longest name is another name. */
	longest[DR_NAME_MAX - 1] = 0;
	cr_assert_eq(dr_whereis(r, longest, NULL), -ENOENT);
	longest[DR_NAME_MAX - 1] = 'n';
	cr_assert_eq(dr_unregister(r, longest), 0);
	cr_assert_eq(dr_unregister(r, "a"), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, name_longer_than_name_max_is_enametoolong)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	char name[DR_NAME_MAX + 2], huge[1000];
	struct dr_stats st;

	memset(name, 'n', DR_NAME_MAX + 1);
	name[DR_NAME_MAX + 1] = 0;
	memset(huge, 'h', sizeof(huge) - 1);
	huge[sizeof(huge) - 1] = 0;
	cr_assert_eq(dr_register(r, name, "x", 1), -ENAMETOOLONG);
	cr_assert_eq(dr_register(r, huge, "x", 1), -ENAMETOOLONG);
	cr_assert_eq(dr_register_bin(r, name, DR_NAME_MAX + 1, "x", 1), -ENAMETOOLONG);
	cr_assert_eq(dr_whereis(r, name, NULL), -ENAMETOOLONG);
	cr_assert_eq(dr_whereis_bin(r, name, DR_NAME_MAX + 1, NULL), -ENAMETOOLONG);
	cr_assert_eq(dr_unregister(r, name), -ENAMETOOLONG);
	cr_assert_eq(dr_unregister_bin(r, name, DR_NAME_MAX + 1), -ENAMETOOLONG);
	cr_assert_eq(dr_unregister_force(r, name), -ENAMETOOLONG);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, empty_or_null_name_is_einval)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	struct dr_stats st;

	cr_assert_eq(dr_register(r, "", "x", 1), -EINVAL);
	cr_assert_eq(dr_register(r, NULL, "x", 1), -EINVAL);
	cr_assert_eq(dr_register_bin(r, "abc", 0, "x", 1), -EINVAL);
	cr_assert_eq(dr_register_bin(r, NULL, 3, "x", 1), -EINVAL);
	cr_assert_eq(dr_whereis(r, "", NULL), -EINVAL);
	cr_assert_eq(dr_whereis(r, NULL, NULL), -EINVAL);
	cr_assert_eq(dr_whereis_bin(r, NULL, 3, NULL), -EINVAL);
	cr_assert_eq(dr_unregister(r, ""), -EINVAL);
	cr_assert_eq(dr_unregister(r, NULL), -EINVAL);
	cr_assert_eq(dr_unregister_bin(r, NULL, 3), -EINVAL);
	cr_assert_eq(dr_unregister_force(r, ""), -EINVAL);
	cr_assert_eq(dr_unregister_force(r, NULL), -EINVAL);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, value_longer_than_value_max_is_emsgsize)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);
	unsigned char v[DR_VALUE_MAX + 1] = { 0 };

	cr_assert_eq(dr_register(r, "svc", v, DR_VALUE_MAX + 1), -EMSGSIZE);
	cr_assert_eq(dr_register_bin(r, "svc", 3, v, DR_VALUE_MAX + 1), -EMSGSIZE);
	cr_assert_eq(dr_whereis(r, "svc", NULL), -ENOENT);
	/* A failed update leaves the old value. */
	cr_assert_eq(dr_register(r, "svc", "ok", 2), 0);
	cr_assert_eq(dr_register(r, "svc", v, DR_VALUE_MAX + 1), -EMSGSIZE);
	expect_value(r, "svc", "ok", 2);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, null_value_with_nonzero_length_is_einval)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);

	cr_assert_eq(dr_register(r, "svc", NULL, 1), -EINVAL);
	cr_assert_eq(dr_register_bin(r, "svc", 3, NULL, 4), -EINVAL);
	cr_assert_eq(dr_whereis(r, "svc", NULL), -ENOENT);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, binary_names_with_nul_bytes_are_distinct_from_prefixes)
{
	const char *seg = seg_new("bin");
	dr_registry *r = seg_open(seg, 64);
	struct dr_entry e;

	cr_assert_eq(dr_register_bin(r, "ab\0c", 4, "4", 1), 0);
	cr_assert_eq(dr_whereis(r, "ab", NULL), -ENOENT);
	cr_assert_eq(dr_whereis_bin(r, "ab", 2, NULL), -ENOENT);
	cr_assert_eq(dr_whereis_bin(r, "ab\0", 3, NULL), -ENOENT);
	cr_assert_eq(dr_whereis_bin(r, "ab\0d", 4, NULL), -ENOENT);

	cr_assert_eq(dr_register_bin(r, "ab\0", 3, "3", 1), 0);
	cr_assert_eq(dr_register(r, "ab", "2", 1), 0);
	cr_assert_eq(dr_register_bin(r, "\0", 1, "0", 1), 0);
	cr_assert_eq(dr_whereis_bin(r, "ab\0c", 4, &e), 0);
	cr_assert_eq(e.value[0], '4');
	cr_assert_eq(dr_whereis_bin(r, "ab\0", 3, &e), 0);
	cr_assert_eq(e.value[0], '3');
	cr_assert_eq(dr_whereis_bin(r, "ab", 2, &e), 0);
	cr_assert_eq(e.value[0], '2');
	cr_assert_eq(dr_whereis_bin(r, "\0", 1, &e), 0);
	cr_assert_eq(e.value[0], '0');

	/* Names the library keeps for itself (factories) are refused. */
	cr_assert_eq(dr_register_bin(r, "\0distreg.", 9, "0", 1), -EINVAL);
	cr_assert_eq(dr_register_bin(r, "\0distreg.factory.x", 18, "0", 1), -EINVAL);
	cr_assert_eq(dr_register_bin(r, "\0distreg", 8, "0", 1), 0);

	cr_assert_eq(dr_unregister_bin(r, "ab\0", 3), 0);
	cr_assert_eq(dr_whereis_bin(r, "ab\0", 3, NULL), -ENOENT);
	cr_assert_eq(dr_whereis_bin(r, "ab\0c", 4, NULL), 0);
	cr_assert_eq(dr_whereis(r, "ab", NULL), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, whereis_with_null_out_tests_existence)
{
	const char *seg = seg_new("reg");
	dr_registry *r = seg_open(seg, 64);

	cr_assert_eq(dr_register(r, "svc", "x", 1), 0);
	cr_assert_eq(dr_whereis(r, "svc", NULL), 0);
	cr_assert_eq(dr_whereis_bin(r, "svc", 3, NULL), 0);
	cr_assert_eq(dr_whereis(r, "other", NULL), -ENOENT);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, exactly_capacity_names_fit)
{
	const char *seg = seg_new("cap");
	dr_registry *r = seg_open(seg, 64);
	char name[32];
	int rc;

	for (int i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		rc = dr_register(r, name, NULL, 0);
		cr_assert_eq(rc, 0, "registration %d: %s", i, dr_strerror(rc));
	}
	cr_assert_eq(dr_register(r, "n64", NULL, 0), -ENOSPC);
	cr_assert_eq(dr_whereis(r, "n64", NULL), -ENOENT);
	cr_assert_eq(dr_unregister(r, "n10"), 0);
	rc = dr_register(r, "n64", NULL, 0);
	cr_assert_eq(rc, 0, "after one unregister: %s", dr_strerror(rc));
	cr_assert_eq(dr_register(r, "n65", NULL, 0), -ENOSPC);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, churn_on_table_full_but_one_never_fails)
{
	const char *seg = seg_new("churn");
	dr_registry *r = seg_open(seg, 64);
	char name[32];
	int rc;

	for (int i = 0; i < 63; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, NULL, 0), 0);
	}
	for (int i = 0; i < 10000; i++) {
		snprintf(name, sizeof(name), "churn%d", i % 7);
		rc = dr_register(r, name, &i, sizeof(i));
		cr_assert_eq(rc, 0, "cycle %d: register: %s", i, dr_strerror(rc));
		rc = dr_unregister(r, name);
		cr_assert_eq(rc, 0, "cycle %d: unregister: %s", i, dr_strerror(rc));
	}
	/* Still exactly one free place. */
	cr_assert_eq(dr_register(r, "last", NULL, 0), 0);
	cr_assert_eq(dr_register(r, "one-too-many", NULL, 0), -ENOSPC);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, close_unregisters_the_handles_names)
{
	const char *seg = seg_new("close");
	dr_registry *r1 = seg_open(seg, 64), *r2 = seg_open(seg, 64);
	struct dr_stats st;

	cr_assert_eq(dr_register(r1, "a", NULL, 0), 0);
	cr_assert_eq(dr_register(r1, "b", NULL, 0), 0);
	cr_assert_eq(dr_register_bin(r1, "c\0d", 3, NULL, 0), 0);
	cr_assert_eq(dr_register(r2, "kept", NULL, 0), 0);
	dr_close(r1);
	cr_assert_eq(dr_whereis(r2, "a", NULL), -ENOENT);
	cr_assert_eq(dr_whereis(r2, "b", NULL), -ENOENT);
	cr_assert_eq(dr_whereis_bin(r2, "c\0d", 3, NULL), -ENOENT);
	cr_assert_eq(dr_whereis(r2, "kept", NULL), 0);
	cr_assert_eq(dr_stats(r2, &st), 0);
	cr_assert_eq(st.live, 1);
	cr_assert_eq(st.dead, 0);
	dr_close(r2);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, regid_is_not_reused_after_segment_recreation)
{
	const char *seg = seg_new("regid");
	dr_registry *r = seg_open(seg, 64);
	struct dr_entry e;
	uint64_t last;

	for (int i = 0; i < 10; i++) {
		cr_assert_eq(dr_register(r, "svc", NULL, 0), 0);
		cr_assert_eq(dr_unregister(r, "svc"), 0);
	}
	cr_assert_eq(dr_register(r, "svc", NULL, 0), 0);
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	last = e.regid;
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);

	r = seg_open(seg, 64);
	cr_assert_eq(dr_register(r, "svc", NULL, 0), 0);
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_gt(e.regid, last, "regid %llu reused after re-creation (was %llu)",
		     (unsigned long long)e.regid, (unsigned long long)last);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, close_accepts_null)
{
	dr_close(NULL);
}

/* ---------------------------------------------------------------------- */
/* fork, exit and exec of owners */

struct fork_arg {
	dr_registry *r;
	const char *seg;
};

static int child_uses_parent_handle(void *p)
{
	struct fork_arg *a = p;
	struct dr_entry e;

	if (dr_register(a->r, "child", "c", 1) != -ECHILD)
		return 1;
	if (dr_register_bin(a->r, "child", 5, "c", 1) != -ECHILD)
		return 2;
	if (dr_whereis(a->r, "parent", &e) != -ECHILD)
		return 3;
	if (dr_whereis(a->r, "parent", NULL) != -ECHILD)
		return 4;
	if (dr_unregister(a->r, "parent") != -ECHILD)
		return 5;
	if (dr_unregister_bin(a->r, "parent", 6) != -ECHILD)
		return 6;
	return 0;
}

Test(registry, forked_child_gets_echild_from_parent_handle)
{
	const char *seg = seg_new("fork");
	dr_registry *r = seg_open(seg, 64);
	struct fork_arg a = { r, seg };
	struct dr_entry e;

	cr_assert_eq(dr_register(r, "parent", "p", 1), 0);
	/* Give this thread its reader slot and cache before the fork. */
	cr_assert_eq(dr_whereis(r, "parent", NULL), 0);
	int st = wait_child(spawn(child_uses_parent_handle, &a));
	cr_assert_eq(st, 0, "child step %d did not get -ECHILD", st);
	cr_assert_eq(dr_whereis(r, "parent", &e), 0);
	cr_assert_eq(e.pid, getpid());
	cr_assert_eq(dr_whereis(r, "child", NULL), -ENOENT);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

static int count_name(const struct dr_name_info *info, void *arg)
{
	(void)info;
	++*(int *)arg;
	return 0;
}

static int child_every_call_echild(void *p)
{
	struct fork_arg *a = p;
	struct dr_stats st;
	unsigned n;
	int count = 0;

	if (dr_unregister_force(a->r, "parent") != -ECHILD)
		return 1;
	if (dr_read_lock(a->r) != -ECHILD)
		return 2;
	if (dr_read_unlock(a->r) != -ECHILD)
		return 3;
	if (dr_reap(a->r, &n) != -ECHILD)
		return 4;
	if (dr_stats(a->r, &st) != -ECHILD)
		return 5;
	if (dr_check(a->r, NULL, 0) != -ECHILD)
		return 6;
	if (dr_foreach(a->r, count_name, &count) != -ECHILD || count != 0)
		return 7;
	return 0;
}

Test(registry, forked_child_gets_echild_from_every_call_on_parent_handle)
{
	const char *seg = seg_new("fork");
	dr_registry *r = seg_open(seg, 64);
	struct fork_arg a = { r, seg };

	cr_assert_eq(dr_register(r, "parent", "p", 1), 0);
	int st = wait_child(spawn(child_every_call_echild, &a));
	cr_assert_eq(st, 0, "child step %d did not get -ECHILD", st);
	cr_assert_eq(dr_whereis(r, "parent", NULL), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

static int child_opens_own_handle(void *p)
{
	struct fork_arg *a = p;
	dr_registry *own = NULL;
	struct dr_entry e;

	if (seg_open_opts(a->seg, 64, &own) != 0)
		return 1;
	if (dr_register(own, "child", "c", 1) != 0)
		return 2;
	if (dr_whereis(own, "child", &e) != 0 || e.pid != getpid())
		return 3;
	if (dr_whereis(own, "parent", &e) != 0 || e.pid != getppid())
		return 4;
	if (dr_register(own, "parent", "x", 1) != -EEXIST)
		return 5;
	if (dr_unregister(own, "child") != 0)
		return 6;
	if (dr_register(own, "child-kept", "k", 1) != 0)
		return 7;
	/* Frees the child's copy only: the parent's names stay. */
	dr_close(a->r);
	if (dr_whereis(own, "parent", NULL) != 0)
		return 8;
	dr_close(own);
	return 0;
}

Test(registry, forked_child_works_with_its_own_handle)
{
	const char *seg = seg_new("fork");
	dr_registry *r = seg_open(seg, 64);
	struct fork_arg a = { r, seg };

	cr_assert_eq(dr_register(r, "parent", "p", 1), 0);
	int st = wait_child(spawn(child_opens_own_handle, &a));
	cr_assert_eq(st, 0, "child failed at step %d", st);
	cr_assert_eq(dr_whereis(r, "parent", NULL), 0);
	cr_assert_eq(dr_whereis(r, "child", NULL), -ENOENT);
	cr_assert_eq(dr_whereis(r, "child-kept", NULL), -ENOENT);
	/* The parent's handle still works after the child closed its copy. */
	cr_assert_eq(dr_register(r, "parent2", "p", 1), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct die_arg {
	const char *seg;
	int nnames;        /* registers "svc" and "other0".."other<n-2>" */
	int ready_w;       /* -1, or written once registered (before exec) */
	int exec_sleep;    /* exec a shell that prints and sleeps */
};

/* Register names and die without dr_close() (spawn's _exit), or exec. */
static int child_register_and_die(void *p)
{
	struct die_arg *a = p;
	dr_registry *r = NULL;
	char name[32];

	if (seg_open_opts(a->seg, 64, &r) != 0)
		return 1;
	if (dr_register(r, "svc", "child", 5) != 0)
		return 2;
	for (int i = 0; i < a->nnames - 1; i++) {
		snprintf(name, sizeof(name), "other%d", i);
		if (dr_register(r, name, "o", 1) != 0)
			return 3;
	}
	if (a->exec_sleep) {
		/* The shell writes once the new image runs: by then exec has
		 * closed the segment's close-on-exec descriptor. */
		if (dup2(a->ready_w, STDOUT_FILENO) < 0)
			return 4;
		execl("/bin/sh", "sh", "-c", "echo exec; exec sleep 5", (char *)NULL);
		return 5;
	}
	return 0;
}

Test(registry, dead_owner_name_is_visible_until_taken_over)
{
	const char *seg = seg_new("dead");
	dr_registry *r = seg_open(seg, 64);
	struct die_arg a = { seg, 1, -1, 0 };
	struct dr_entry e;

	pid_t pid = spawn(child_register_and_die, &a);
	cr_assert_eq(wait_child(pid), 0);
	cr_assert_eq(dr_whereis(r, "svc", &e), 0, "dead owner's name vanished before a reap");
	cr_assert_eq(e.pid, pid);
	cr_assert_eq(e.value_len, 5);
	cr_assert_eq(dr_register(r, "svc", "parent", 6), 0, "takeover of a dead owner's name");
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.pid, getpid());
	cr_assert_eq(e.value_len, 6);
	cr_assert_arr_eq(e.value, "parent", 6);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, reap_removes_dead_owner_names_and_counts_them)
{
	const char *seg = seg_new("dead");
	dr_registry *r = seg_open(seg, 64);
	struct die_arg a = { seg, 6, -1, 0 };
	char name[32];
	unsigned n = 12345;

	cr_assert_eq(dr_register(r, "mine", NULL, 0), 0);
	cr_assert_eq(wait_child(spawn(child_register_and_die, &a)), 0);
	cr_assert_eq(dr_register(r, "svc", "parent", 6), 0);
	cr_assert_eq(dr_reap(r, &n), 0);
	cr_assert_eq(n, 5, "reaped %u names, want the 5 other names", n);
	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "other%d", i);
		cr_assert_eq(dr_whereis(r, name, NULL), -ENOENT, "%s not reaped", name);
	}
	cr_assert_eq(dr_whereis(r, "svc", NULL), 0);
	cr_assert_eq(dr_whereis(r, "mine", NULL), 0);
	cr_assert_eq(dr_reap(r, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(dr_reap(r, NULL), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, open_reaps_dead_owner_names)
{
	const char *seg = seg_new("dead");
	dr_registry *r = seg_open(seg, 64);
	struct die_arg a = { seg, 4, -1, 0 };
	char name[32];

	cr_assert_eq(wait_child(spawn(child_register_and_die, &a)), 0);
	cr_assert_eq(dr_whereis(r, "svc", NULL), 0);
	dr_registry *r2 = seg_open(seg, 64);
	cr_assert_eq(dr_whereis(r, "svc", NULL), -ENOENT);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "other%d", i);
		cr_assert_eq(dr_whereis(r, name, NULL), -ENOENT, "%s not reaped", name);
	}
	dr_close(r2);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, zombie_owner_counts_as_dead)
{
	const char *seg = seg_new("zombie");
	dr_registry *r = seg_open(seg, 64);
	struct die_arg a = { seg, 1, -1, 0 };
	siginfo_t si;
	struct dr_entry e;

	pid_t pid = spawn(child_register_and_die, &a);
	/* Wait for the exit but leave the child a zombie. */
	memset(&si, 0, sizeof(si));
	cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
	cr_assert_eq(si.si_pid, pid);
	cr_assert_eq(si.si_code, CLD_EXITED);
	cr_assert_eq(si.si_status, 0, "child failed at step %d", si.si_status);

	cr_assert_eq(dr_register(r, "svc", "parent", 6), 0, "takeover from a zombie owner");
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.pid, getpid());

	/* It really was a zombie all along: still not reaped. */
	memset(&si, 0, sizeof(si));
	cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT | WNOHANG), 0);
	cr_assert_eq(si.si_pid, pid);
	cr_assert_eq(wait_child(pid), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(registry, owner_that_execed_counts_as_dead)
{
	const char *seg = seg_new("exec");
	dr_registry *r = seg_open(seg, 64);
	int fds[2];
	char c;
	struct dr_entry e;

	cr_assert_eq(pipe(fds), 0);
	struct die_arg a = { seg, 1, fds[1], 1 };
	pid_t pid = spawn(child_register_and_die, &a);
	close(fds[1]);
	cr_assert_eq(read_byte(fds[0], &c), 1, "child failed before exec");
	cr_assert_eq(c, 'e');
	cr_assert_eq(kill(pid, 0), 0, "the execed child must be alive");

	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.pid, pid);
	cr_assert_eq(dr_register(r, "svc", "parent", 6), 0, "takeover from an execed owner");
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.pid, getpid());

	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL);
	close(fds[0]);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct parent_arg {
	const char *seg;
	int info_w;   /* the intermediate process writes its child's pid here */
	int hold_r;   /* the grandchild leaves when this reaches end of file */
	int hold_w;
};

static int grandchild_wait(struct parent_arg *a, int ready_w)
{
	char c;

	close(a->hold_w);
	if (write_byte(ready_w, 'g') != 0)
		return 1;
	while (read_byte(a->hold_r, &c) > 0)
		;
	return 0;
}

/* Register, fork a child that outlives us, and die without dr_close(). */
static int child_register_fork_and_die(void *p)
{
	struct parent_arg *a = p;
	dr_registry *r = NULL;
	int fds[2];
	pid_t g;
	char c;

	if (seg_open_opts(a->seg, 64, &r) != 0)
		return 1;
	if (dr_register(r, "svc", "p", 1) != 0)
		return 2;
	if (pipe(fds) != 0)
		return 3;
	g = fork();
	if (g < 0)
		return 4;
	if (g == 0)
		_exit(grandchild_wait(a, fds[1]));
	close(fds[1]);
	if (read_byte(fds[0], &c) != 1)
		return 5;
	if (write(a->info_w, &g, sizeof(g)) != (ssize_t)sizeof(g))
		return 6;
	return 0;
}

Test(registry, forked_child_does_not_keep_dead_parent_alive)
{
	const char *seg = seg_new("orphan");
	dr_registry *r = seg_open(seg, 64);
	int info[2], hold[2];
	struct dr_entry e;
	pid_t g = 0;

	/* The grandchild is reparented to us, so we can reap it. */
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	cr_assert_eq(pipe(info), 0);
	cr_assert_eq(pipe(hold), 0);
	struct parent_arg a = { seg, info[1], hold[0], hold[1] };
	pid_t pid = spawn(child_register_fork_and_die, &a);
	close(info[1]);
	close(hold[0]);
	cr_assert_eq(read(info[0], &g, sizeof(g)), (ssize_t)sizeof(g), "the owner failed");
	cr_assert_eq(wait_child(pid), 0);
	cr_assert_eq(kill(g, 0), 0, "the owner's child must still be alive");

	cr_assert_eq(dr_register(r, "svc", "new", 3), 0,
		     "the owner's live child kept its dead parent's name alive");
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.pid, getpid());

	close(hold[1]);
	cr_assert_eq(wait_child(g), 0);
	close(info[0]);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}
