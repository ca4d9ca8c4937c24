/*
 * test_inspect.c - lib/inspect.c: dr_foreach, dr_stats, dr_check and
 * dr_segment_name.
 */
#include "unit.h"

TestSuite(inspect, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

#define MAXSEEN 64

struct seen {
	int n;
	struct {
		char name[DR_NAME_MAX + 1];
		size_t name_len;
		struct dr_entry entry;
		int alive;
	} v[MAXSEEN];
	int calls;
	int stop_after; /* return 42 on this call (1-based); 0 never */
};

static int collect(const struct dr_name_info *info, void *arg)
{
	struct seen *s = arg;

	s->calls++;
	if (s->n < MAXSEEN) {
		memcpy(s->v[s->n].name, info->name, info->name_len);
		s->v[s->n].name[info->name_len] = 0;
		s->v[s->n].name_len = info->name_len;
		s->v[s->n].entry = info->entry;
		s->v[s->n].alive = info->alive;
		s->n++;
	}
	return s->calls == s->stop_after ? 42 : 0;
}

/* The index of name in s, asserting it appears exactly once. */
static int find_once(const struct seen *s, const char *name, size_t len)
{
	int at = -1;

	for (int i = 0; i < s->n; i++) {
		if (s->v[i].name_len == len && memcmp(s->v[i].name, name, len) == 0) {
			cr_assert_eq(at, -1, "dr_foreach showed %s twice", name);
			at = i;
		}
	}
	cr_assert_neq(at, -1, "dr_foreach did not show %s", name);
	return at;
}

Test(inspect, foreach_sees_exactly_the_registered_names)
{
	const char *seg = seg_new("each");
	dr_registry *r = seg_open(seg, 64), *r2 = seg_open(seg, 64);
	static struct seen s;
	char name[32], val[32];

	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "name%d", i);
		snprintf(val, sizeof(val), "value%d", i);
		cr_assert_eq(dr_register(i % 2 ? r : r2, name, val, strlen(val)), 0);
	}
	cr_assert_eq(dr_register_bin(r, "bin\0x", 5, "b", 1), 0);
	for (int i = 0; i < 20; i += 3) {
		snprintf(name, sizeof(name), "name%d", i);
		cr_assert_eq(dr_unregister(i % 2 ? r : r2, name), 0);
	}

	cr_assert_eq(dr_foreach(r, collect, &s), 0);
	cr_assert_eq(s.n, 20 - 7 + 1, "saw %d names", s.n);
	for (int i = 0; i < 20; i++) {
		if (i % 3 == 0)
			continue;
		snprintf(name, sizeof(name), "name%d", i);
		snprintf(val, sizeof(val), "value%d", i);
		int at = find_once(&s, name, strlen(name));
		cr_assert_eq(s.v[at].entry.value_len, strlen(val));
		cr_assert_arr_eq(s.v[at].entry.value, val, strlen(val), "value of %s", name);
		cr_assert_eq(s.v[at].entry.pid, getpid());
		cr_assert_eq(s.v[at].alive, 1);
		struct dr_entry e;
		cr_assert_eq(dr_whereis(r, name, &e), 0);
		cr_assert_eq(s.v[at].entry.regid, e.regid);
	}
	int at = find_once(&s, "bin\0x", 5);
	cr_assert_eq(s.v[at].entry.value_len, 1);
	dr_close(r2);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(inspect, foreach_on_empty_segment_calls_nothing)
{
	const char *seg = seg_new("each");
	dr_registry *r = seg_open(seg, 64);
	static struct seen s;

	cr_assert_eq(dr_foreach(r, collect, &s), 0);
	cr_assert_eq(s.calls, 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct die_arg {
	const char *seg;
	int n;
};

/* Register n names "dead<i>" and exit without dr_close(). */
static int child_register_and_die(void *p)
{
	struct die_arg *a = p;
	dr_registry *r = NULL;
	char name[32];

	if (seg_open_opts(a->seg, 64, &r) != 0)
		return 1;
	for (int i = 0; i < a->n; i++) {
		snprintf(name, sizeof(name), "dead%d", i);
		if (dr_register(r, name, "d", 1) != 0)
			return 2;
	}
	return 0;
}

Test(inspect, foreach_shows_dead_owners_names_as_not_alive)
{
	const char *seg = seg_new("each");
	dr_registry *r = seg_open(seg, 64);
	struct die_arg a = { seg, 3 };
	static struct seen s;
	char name[32];

	cr_assert_eq(dr_register(r, "live", "l", 1), 0);
	pid_t pid = spawn(child_register_and_die, &a);
	cr_assert_eq(wait_child(pid), 0);
	cr_assert_eq(dr_foreach(r, collect, &s), 0);
	cr_assert_eq(s.n, 4);
	cr_assert_eq(s.v[find_once(&s, "live", 4)].alive, 1);
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "dead%d", i);
		int at = find_once(&s, name, strlen(name));
		cr_assert_eq(s.v[at].alive, 0, "%s shown alive", name);
		cr_assert_eq(s.v[at].entry.pid, pid);
	}
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(inspect, foreach_stops_when_callback_returns_nonzero)
{
	const char *seg = seg_new("each");
	dr_registry *r = seg_open(seg, 64);
	static struct seen s;
	char name[32];

	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, NULL, 0), 0);
	}
	s.stop_after = 3;
	cr_assert_eq(dr_foreach(r, collect, &s), 42);
	cr_assert_eq(s.calls, 3);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(inspect, stats_counts_live_dead_capacity_and_procs)
{
	const char *seg = seg_new("stats");
	dr_registry *r = seg_open(seg, 64), *r2 = seg_open(seg, 64);
	struct die_arg a = { seg, 4 };
	struct dr_stats st;
	char name[32];

	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.capacity, 64);
	cr_assert_eq(st.live, 0);
	cr_assert_eq(st.dead, 0);
	cr_assert_eq(st.procs, 2);
	cr_assert_eq(st.max_procs, UNIT_MAX_PROCS);
	cr_assert_eq(st.max_threads, UNIT_MAX_THREADS);
	cr_assert_eq(st.free_entries, 64);

	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(i < 3 ? r : r2, name, NULL, 0), 0);
	}
	cr_assert_eq(wait_child(spawn(child_register_and_die, &a)), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, 5);
	cr_assert_eq(st.dead, 4);
	cr_assert_eq(st.capacity, 64);
	cr_assert_eq(st.procs, 2, "procs %u: the dead child still counted", st.procs);

	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, 5);
	cr_assert_eq(st.dead, 0);

	dr_close(r2);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.live, 3);
	cr_assert_eq(st.procs, 1);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(inspect, check_passes_on_healthy_segment_with_many_names)
{
	const char *seg = seg_new("check");
	dr_registry *r = seg_open(seg, 4096), *r2 = seg_open(seg, 4096);
	char name[32], msg[256];
	int rc;

	for (int i = 0; i < 3000; i++) {
		snprintf(name, sizeof(name), "svc.%d", i);
		cr_assert_eq(dr_register(i % 2 ? r : r2, name, &i, sizeof(i)), 0);
	}
	for (int i = 0; i < 3000; i += 3) {
		snprintf(name, sizeof(name), "svc.%d", i);
		cr_assert_eq(dr_unregister(i % 2 ? r : r2, name), 0);
	}
	for (int i = 1; i < 3000; i += 30) {
		snprintf(name, sizeof(name), "svc.%d", i);
		cr_assert_eq(dr_register(i % 2 ? r : r2, name, "upd", 3), 0);
	}
	strcpy(msg, "untouched");
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check: %s", msg);
	cr_assert_eq(dr_check(r, NULL, 0), 0);
	cr_assert_eq(dr_check(r2, msg, sizeof(msg)), 0, "dr_check: %s", msg);
	dr_close(r2);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "dr_check after close: %s", msg);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(inspect, segment_name_is_the_opened_segment)
{
	const char *seg = seg_new("name");
	dr_registry *r = seg_open(seg, 64);

	cr_assert_not_null(dr_segment_name(r));
	cr_assert_str_eq(dr_segment_name(r), seg);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* DR_OPEN_RDONLY: inspection without a slot, and nothing else. */
Test(inspect, rdonly_handle_inspects_and_refuses_writes)
{
	const char *seg = seg_new("rdonly");
	dr_registry *r = seg_open(seg, 64), *ro = NULL;
	struct dr_options o = { .segment = seg, .flags = DR_OPEN_RDONLY };
	static struct seen s;
	struct dr_stats before, st;
	dr_mailbox *mb = NULL;
	char msg[256];
	unsigned n;

	cr_assert_eq(dr_register(r, "one", "1", 1), 0);
	cr_assert_eq(dr_stats(r, &before), 0);
	cr_assert_eq(dr_open(&o, &ro), 0);
	cr_assert_str_eq(dr_segment_name(ro), seg);
	cr_assert_eq(dr_foreach(ro, collect, &s), 0);
	cr_assert_eq(s.n, 1);
	find_once(&s, "one", 3);
	cr_assert_eq(dr_stats(ro, &st), 0);
	cr_assert_eq(st.procs, before.procs, "the read-only handle took a process slot");
	cr_assert_eq(st.readers, before.readers, "the read-only handle took a reader slot");
	cr_assert_eq(st.live, 1);
	cr_assert_eq(dr_check(ro, msg, sizeof(msg)), 0, "%s", msg);
	cr_assert_eq(dr_register(ro, "two", "2", 1), -EROFS);
	cr_assert_eq(dr_unregister(ro, "one"), -EROFS);
	cr_assert_eq(dr_whereis(ro, "one", NULL), -EROFS);
	cr_assert_eq(dr_reap(ro, &n), -EROFS);
	cr_assert_eq(dr_mailbox_open(ro, &mb), -EROFS);
	cr_assert_null(mb);
	dr_close(ro);
	cr_assert_eq(dr_whereis(r, "one", NULL), 0);
	dr_close(r);

	/* Never created. */
	cr_assert_eq(dr_unlink(seg), 0);
	cr_assert_eq(dr_open(&o, &ro), -ENOENT);
	cr_assert_null(ro);
	cr_assert_neq(access(seg_path(seg), F_OK), 0);
}

Test(inspect, version_gives_library_and_layout)
{
	uint32_t layout = 0;
	const char *v = dr_version(&layout);

	cr_assert_not_null(v);
	cr_assert_str_eq(v, DISTREG_TEST_VERSION);
	cr_assert_gt(layout, 0);
	cr_assert_str_eq(dr_version(NULL), v);
}
