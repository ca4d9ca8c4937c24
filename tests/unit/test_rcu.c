/*
 * test_rcu.c - lib/rcu.c: read-side sections, and reclamation held back by a
 * stalled reader in another process.
 */
#include <pthread.h>

#include "unit.h"

TestSuite(rcu, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

Test(rcu, read_sections_nest)
{
	const char *seg = seg_new("rcu");
	dr_registry *r = seg_open(seg, 64);

	cr_assert_eq(dr_read_lock(r), 0);
	cr_assert_eq(dr_read_lock(r), 0);
	cr_assert_eq(dr_read_lock(r), 0);
	cr_assert_eq(dr_read_unlock(r), 0);
	cr_assert_eq(dr_read_unlock(r), 0);
	cr_assert_eq(dr_read_unlock(r), 0);
	cr_assert_eq(dr_read_unlock(r), -EINVAL, "one unlock more than locks");
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(rcu, unlock_without_lock_is_einval)
{
	const char *seg = seg_new("rcu");
	dr_registry *r = seg_open(seg, 64);

	cr_assert_eq(dr_read_unlock(r), -EINVAL);
	/* Also after the thread has used the handle. */
	cr_assert_eq(dr_register(r, "x", NULL, 0), 0);
	cr_assert_eq(dr_read_unlock(r), -EINVAL);
	/* And the failed unlock did not unbalance a later section. */
	cr_assert_eq(dr_read_lock(r), 0);
	cr_assert_eq(dr_read_unlock(r), 0);
	cr_assert_eq(dr_read_unlock(r), -EINVAL);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(rcu, whereis_works_inside_a_read_section)
{
	const char *seg = seg_new("rcu");
	dr_registry *r = seg_open(seg, 64);
	struct dr_entry e;

	cr_assert_eq(dr_register(r, "svc", "addr", 4), 0);
	cr_assert_eq(dr_read_lock(r), 0);
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.value_len, 4);
	cr_assert_arr_eq(e.value, "addr", 4);
	cr_assert_eq(dr_whereis(r, "missing", NULL), -ENOENT);
	cr_assert_eq(dr_whereis_bin(r, "svc", 3, NULL), 0);
	cr_assert_eq(dr_read_unlock(r), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(rcu, register_inside_read_section_works_when_table_has_room)
{
	const char *seg = seg_new("rcu");
	dr_registry *r = seg_open(seg, 64);

	cr_assert_eq(dr_read_lock(r), 0);
	cr_assert_eq(dr_register(r, "a", "1", 1), 0);
	cr_assert_eq(dr_unregister(r, "a"), 0);
	cr_assert_eq(dr_register(r, "b", "2", 1), 0);
	cr_assert_eq(dr_whereis(r, "b", NULL), 0);
	cr_assert_eq(dr_read_unlock(r), 0);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(rcu, register_inside_own_read_section_on_full_table_is_ebusy)
{
	const char *seg = seg_new("rcu");
	dr_registry *r = seg_open(seg, 8);
	char name[16];
	int rc;

	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, NULL, 0), 0);
	}
	cr_assert_eq(dr_read_lock(r), 0);
	cr_assert_eq(dr_unregister(r, "n0"), 0);
	/* The only entry to reuse waits on this very thread. */
	rc = dr_register(r, "new", NULL, 0);
	cr_assert_eq(rc, -EBUSY, "got %s", dr_strerror(rc));
	cr_assert_eq(dr_read_unlock(r), 0);
	rc = dr_register(r, "new", NULL, 0);
	cr_assert_eq(rc, 0, "after leaving the section: %s", dr_strerror(rc));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct slot_arg {
	dr_registry *r;
	int rc;
	int hold_r; /* for the holder: leave when this reaches end of file */
	int ready_w;
};

/* Take a reader slot with a lookup, then hold it until told to exit. */
static void *slot_holder(void *p)
{
	struct slot_arg *a = p;
	char c;

	a->rc = dr_whereis(a->r, "x", NULL);
	write_byte(a->ready_w, 'h');
	while (read_byte(a->hold_r, &c) > 0)
		;
	return NULL;
}

static void *slot_taker(void *p)
{
	struct slot_arg *a = p;

	a->rc = dr_whereis(a->r, "x", NULL);
	return NULL;
}

Test(rcu, reader_slots_exhausted_is_eusers_until_a_thread_exits)
{
	const char *seg = seg_new("slots");
	struct dr_options o = { .segment = seg, .capacity = 64,
				.max_procs = UNIT_MAX_PROCS, .max_threads = 2 };
	dr_registry *r = NULL;
	struct slot_arg h = { 0 }, t = { 0 };
	pthread_t th, tt;
	int hold[2], ready[2];
	char c;

	cr_assert_eq(dr_open(&o, &r), 0); /* this thread: slot 1 of 2 */
	cr_assert_eq(dr_register(r, "x", NULL, 0), 0);
	cr_assert_eq(pipe(hold), 0);
	cr_assert_eq(pipe(ready), 0);
	h = (struct slot_arg){ r, 1, hold[0], ready[1] };
	cr_assert_eq(pthread_create(&th, NULL, slot_holder, &h), 0);
	cr_assert_eq(read_byte(ready[0], &c), 1);
	cr_assert_eq(h.rc, 0, "holder: %s", dr_strerror(h.rc));

	t = (struct slot_arg){ r, 1, -1, -1 };
	cr_assert_eq(pthread_create(&tt, NULL, slot_taker, &t), 0);
	cr_assert_eq(pthread_join(tt, NULL), 0);
	cr_assert_eq(t.rc, -EUSERS, "third reader of 2 slots: %s", dr_strerror(t.rc));
	/* Threads that have a slot keep working. */
	cr_assert_eq(dr_whereis(r, "x", NULL), 0);

	close(hold[1]);
	cr_assert_eq(pthread_join(th, NULL), 0);
	t.rc = 1;
	cr_assert_eq(pthread_create(&tt, NULL, slot_taker, &t), 0);
	cr_assert_eq(pthread_join(tt, NULL), 0);
	cr_assert_eq(t.rc, 0, "after a reader thread exited: %s", dr_strerror(t.rc));
	close(hold[0]);
	close(ready[0]);
	close(ready[1]);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct reader_arg {
	const char *seg;
	int ready_w;
};

/* Enter a read-side section and stay in it until killed. */
static int child_stalled_reader(void *p)
{
	struct reader_arg *a = p;
	dr_registry *r = NULL;

	if (seg_open_opts(a->seg, 8, &r) != 0)
		return 1;
	if (dr_read_lock(r) != 0)
		return 2;
	if (write_byte(a->ready_w, 'r') != 0)
		return 3;
	for (;;)
		pause();
}

Test(rcu, stalled_reader_in_another_process_makes_churn_ebusy)
{
	const char *seg = seg_new("stall");
	dr_registry *r = seg_open(seg, 8);
	struct dr_stats st;
	char name[32], c;
	int fds[2], rc = 0, i;

	for (i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, NULL, 0), 0);
	}
	cr_assert_eq(pipe(fds), 0);
	struct reader_arg a = { seg, fds[1] };
	pid_t pid = spawn(child_stalled_reader, &a);
	close(fds[1]);
	cr_assert_eq(read_byte(fds[0], &c), 1, "reader child failed: %d", wait_child(pid));
	close(fds[0]);

	/* Each round frees one entry by unregistering and needs one for the
	 * new name: the freed one waits on the reader. */
	for (i = 0; i < 64; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_unregister(r, name), 0);
		snprintf(name, sizeof(name), "n%d", i + 8);
		rc = dr_register(r, name, NULL, 0);
		if (rc != 0)
			break;
	}
	cr_assert_eq(rc, -EBUSY, "churn under a stalled reader: %s after %d rounds",
		     dr_strerror(rc), i);
	/* It stays so while the reader stays. */
	cr_assert_eq(dr_register(r, name, NULL, 0), -EBUSY);
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.stalled_pid, pid, "stalled_pid %d, reader %d", (int)st.stalled_pid, (int)pid);
	cr_assert_geq(st.retired, 1);

	cr_assert_eq(kill(pid, SIGKILL), 0);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL);
	rc = dr_register(r, name, NULL, 0);
	cr_assert_eq(rc, 0, "after the reader died: %s", dr_strerror(rc));
	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_eq(st.stalled_pid, 0);
	/* And the churn goes on. */
	for (int k = 0; k < 100; k++) {
		cr_assert_eq(dr_unregister(r, name), 0);
		snprintf(name, sizeof(name), "m%d", k);
		rc = dr_register(r, name, NULL, 0);
		cr_assert_eq(rc, 0, "churn round %d after the reader died: %s", k, dr_strerror(rc));
	}
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct spin_arg {
	dr_registry *r;
	volatile int *stop;
	unsigned long lookups;
};

/* Look a name up in a tight loop: many short read-side sections. */
static void *spin_reader(void *p)
{
	struct spin_arg *a = p;

	while (!*a->stop) {
		(void)dr_whereis(a->r, "n1", NULL);
		a->lookups++;
	}
	return NULL;
}

/*
 * Regression: with more reading threads than CPUs, some reader is nearly
 * always preempted inside one of its (short) sections. Waiting for the
 * grace period by starting a new one on every retry then needs an instant
 * with no reader inside any section, which may not come within 50 ms, and
 * dr_register() failed with -EBUSY although no reader stayed in one section
 * for anywhere near 50 ms. Each reader here leaves its section within a
 * scheduling period.
 */
Test(rcu, short_read_sections_never_make_register_ebusy)
{
	const char *seg = seg_new("short");
	dr_registry *r = seg_open(seg, 64);
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	int nreaders = ncpu > 0 && ncpu < 6 ? (int)ncpu * 4 : 24;
	struct spin_arg a[24];
	pthread_t tid[24];
	volatile int stop = 0;
	char name[32];
	int busy = 0, rc;

	for (int i = 0; i < 63; i++) {
		snprintf(name, sizeof(name), "n%d", i);
		cr_assert_eq(dr_register(r, name, NULL, 0), 0);
	}
	for (int i = 0; i < nreaders; i++) {
		a[i] = (struct spin_arg){ .r = r, .stop = &stop };
		cr_assert_eq(pthread_create(&tid[i], NULL, spin_reader, &a[i]), 0);
	}
	for (int i = 0; i < 200; i++) {
		rc = dr_register(r, "churn", NULL, 0);
		if (rc == -EBUSY) {
			busy++;
			continue;
		}
		cr_assert_eq(rc, 0, "register: %s", dr_strerror(rc));
		cr_assert_eq(dr_unregister(r, "churn"), 0);
	}
	stop = 1;
	for (int i = 0; i < nreaders; i++)
		pthread_join(tid[i], NULL);
	cr_assert_eq(busy, 0, "%d of 200 registrations failed with -EBUSY under %d short readers",
		     busy, nreaders);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}
