/*
 * test_watch.c - lib/watch.c: monitors. A mailbox watches names and gets
 * an event when a registration it saw ends (unregistered, or its process
 * died) or a global name's owner host changes.
 */
#include <signal.h>

#include "unit.h"

#include "cluster_unit.h"

TestSuite(watch, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

/* The next message within ms: it must be the system event ev about name. */
static void expect_event(dr_mailbox *mb, int ev, const char *name, struct dr_msg *m)
{
	int rc = dr_recv(mb, m, 3000);

	cr_assert_eq(rc, 0, "no event %d about %s: %s", ev, name, dr_strerror(rc));
	cr_assert_eq(m->kind, DR_MSG_SYSTEM);
	cr_assert(m->len >= 1 && ((const uint8_t *)m->data)[0] == ev, "event %d, want %d",
		  m->len ? ((const uint8_t *)m->data)[0] : -1, ev);
	cr_assert(m->name_len == strlen(name) && memcmp(m->name, name, m->name_len) == 0);
}

Test(watch, an_unregistration_is_an_event_once)
{
	const char *seg = seg_new("wa");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *mb = mailbox(r);
	struct dr_entry e;
	struct dr_msg m;

	cr_assert_eq(dr_watch(mb, "x"), 0);
	cr_assert_eq(dr_watch(mb, "x"), -EEXIST);
	cr_assert_eq(dr_watch(mb, ""), -EINVAL);
	cr_assert_eq(dr_unwatch(mb, "nope"), -ENOENT);
	/* Registered after the watch began: not an event; it is seen. */
	cr_assert_eq(dr_register(r, "x", "1", 1), 0);
	cr_assert_eq(dr_whereis(r, "x", &e), 0);
	cr_assert_eq(dr_recv(mb, &m, 100), -ETIMEDOUT);
	cr_assert_eq(dr_unregister(r, "x"), 0);
	expect_event(mb, DR_EVENT_UNREGISTERED, "x", &m);
	cr_assert_eq(m.regid, e.regid);
	cr_assert_eq(m.global, 0);
	cr_assert_eq(dr_recv(mb, &m, 100), -ETIMEDOUT, "a second event for one change");
	/* Unwatched: no more. */
	cr_assert_eq(dr_register(r, "x", "2", 1), 0);
	cr_assert_eq(dr_recv(mb, &m, 100), -ETIMEDOUT);
	cr_assert_eq(dr_unwatch(mb, "x"), 0);
	cr_assert_eq(dr_unregister(r, "x"), 0);
	cr_assert_eq(dr_recv(mb, &m, 100), -ETIMEDOUT);
	dr_mailbox_close(mb);
	dr_close(r);
}

static int hold_and_wait(void *arg)
{
	struct link *l = arg;
	dr_registry *r;
	char c;

	if (open_g(getenv("WATCH_SEG"), &r) ||
	    dr_register(r, "held", "v", 1))
		return 10;
	write_byte(l->up[1], 'r');
	read_byte(l->down[0], &c);
	return 0;
}

Test(watch, a_dead_owner_is_its_own_event)
{
	const char *seg = seg_new("wd");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *mb = mailbox(r);
	struct link l;
	struct dr_msg m;
	pid_t pid;

	setenv("WATCH_SEG", seg, 1);
	link_init(&l);
	pid = spawn(hold_and_wait, &l);
	expect_byte(&l, 'r', pid, "holder ready");
	cr_assert_eq(dr_watch(mb, "held"), 0);
	kill(pid, SIGKILL);
	expect_event(mb, DR_EVENT_OWNER_DIED, "held", &m);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL);
	link_close(&l);
	dr_mailbox_close(mb);
	dr_close(r);
}

Test(watch, a_global_name_whose_owner_changes_is_moved)
{
	const char *seg = seg_new("wg");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = mailbox(r), *w = mailbox(r), *mb = mailbox(r);
	struct dr_host one[1], two[2];
	char name[32];
	struct dr_msg m;

	one[0] = host("alpha", DR_HOST_UP, 1);
	two[0] = one[0];
	two[1] = host("beta", DR_HOST_UP, 0);
	cr_assert_eq(dr_admin_bridge_claim(b, NULL), 0);
	cr_assert_eq(dr_admin_view_publish(b, two, 2, 1), 0);
	name_owned_by(r, "g", "beta", name, sizeof(name));
	/* Owned here while beta is away; served, watched. */
	cr_assert_eq(dr_admin_view_publish(b, one, 1, 2), 0);
	cr_assert_eq(dr_serve_global(w, name, NULL, 0), 0);
	cr_assert_eq(dr_watch_global(mb, name), 0);
	cr_assert_eq(dr_recv(mb, &m, 100), -ETIMEDOUT);
	/* beta comes back and owns it. */
	cr_assert_eq(dr_admin_view_publish(b, two, 2, 3), 0);
	expect_event(mb, DR_EVENT_MOVED, name, &m);
	cr_assert(m.global);
	cr_assert(m.len == 5 && memcmp((const char *)m.data + 1, "beta", 4) == 0);
	dr_mailbox_close(mb);
	dr_mailbox_close(w);
	dr_mailbox_close(b);
	dr_close(r);
}
