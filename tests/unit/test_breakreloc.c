/*
 * test_breakreloc.c - review of the asynchronous "again" path (lib/global.c
 * dri_again_send, lib/call.c dri_call_as, lib/mailbox.c dri_take): an
 * asynchronous call to a global name this host owns that reached no worker
 * is made again through the bridge under the same call id.
 *
 * Linked with the crash-point build: a thread is paused (sleep mode) at
 * async_sent, between dri_send() and the look-up that records the target.
 * The test process plays the bridge (cluster_unit.h: bridge_up).
 */
#include <pthread.h>
#include <time.h>

#include <distreg_admin.h>

#include "unit.h"

TestSuite(breakreloc, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

#include "cluster_unit.h"

struct call_arg {
	dr_mailbox *mb;
	const char *name;
	int rc;
	uint64_t id;
};

/* Passes async_sent once (a call to a local name served nowhere), then
 * makes the asynchronous global call: its second pass sleeps there. */
static void *caller_thread(void *p)
{
	struct call_arg *a = p;
	uint64_t dummy;

	(void)dr_call_async(a->mb, "served-nowhere", "x", 1, 1000, &dummy);
	a->rc = dr_call_async_global(a->mb, a->name, "q", 1, 5000, &a->id);
	return NULL;
}

/*
 * Interleaving (lib/call.c dri_call_as, after dri_send):
 *   T2  dr_call_async_global(C, n) -> dri_call_as(id X): sent to worker W,
 *       preempted at async_sent (before it locks call_lock to set target)
 *   W   its registration of n ends; its dr_recv answers X DR_NOTSERVED
 *   R   dr_recv(C): dri_pending_take(X) removes the entry, dri_again_send
 *       adds a NEW entry X (gone -ENOTCONN), sends it to the bridge, sets
 *       its target = the bridge's mailbox
 *   T2  runs again: dri_pend_find(X) finds the resend's entry and sets its
 *       target = W's mailbox
 *   R   dri_pending_look: target W with gone -ENOTCONN is "not the bridge"
 *       -> X completes with -ENOTCONN while the bridge still has the call
 *       (and may have it run by a worker); the bridge's answer is dropped
 *       as late.
 */
Test(breakreloc, a_resend_overtaking_its_first_send_keeps_the_bridge_as_target)
{
	const char *seg = seg_new("brl1");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1), *w = mailbox(r), *c = mailbox(r);
	struct call_arg a = { .mb = c };
	char name[32];
	struct dr_msg m, fm;
	struct dr_fwd f;
	pthread_t t;
	int rc;

	name_owned_by(r, "rl", "alpha", name, sizeof(name));
	a.name = name;
	cr_assert_eq(dr_serve_global(w, name, NULL, 0), 0);
	setenv("DISTREG_CRASH_AT", "async_sent", 1);
	setenv("DISTREG_CRASH_MODE", "sleep:400", 1);
	setenv("DISTREG_CRASH_SKIP", getenv("BRL_SKIP") ? getenv("BRL_SKIP") : "1", 1);
	cr_assert_eq(pthread_create(&t, NULL, caller_thread, &a), 0);
	usleep(150 * 1000); /* T2 sent to W and sleeps at async_sent */
	cr_assert_eq(dr_unserve_global(w, name), 0);
	rc = dr_recv(w, &m, 0); /* W answers DR_NOTSERVED (stale) */
	cr_assert_eq(rc, -EAGAIN, "worker: %s", dr_strerror(rc));
	/* R (this thread, first pass at async_sent: no sleep) takes the
	 * answer and makes the call again through the bridge. */
	rc = dr_recv(c, &m, 50);
	cr_assert_eq(rc, -ETIMEDOUT, "caller: rc %d kind %d status %d", rc, m.kind, m.status);
	rc = dr_recv(b, &fm, 100);
	cr_assert_eq(rc, 0, "the bridge got nothing: %s", dr_strerror(rc));
	cr_assert_eq(dr_admin_fwd_decode(&fm, &f), 0);
	cr_assert_eq(f.op, DR_FWD_CALL);
	pthread_join(t, NULL);
	unsetenv("DISTREG_CRASH_AT");
	cr_assert_eq(a.rc, 0);
	cr_assert_eq(fm.call_id, a.id, "the resend goes under the same id");
	/* The bridge is alive and holds the call: no answer yet. */
	rc = dr_recv(c, &m, 300);
	cr_assert_eq(rc, -ETIMEDOUT,
		     "call %llu completed while the bridge (alive) still held it: rc %d, "
		     "kind %d, call_id %llu, status %d (%s)",
		     (unsigned long long)a.id, rc, m.kind, (unsigned long long)m.call_id,
		     m.status, dr_strerror(m.status));
	cr_assert_eq(dr_reply(b, &fm, "ok", 2), 0);
	rc = dr_recv(c, &m, 300);
	cr_assert(rc == 0 && m.call_id == a.id && m.status == 0, "bridge's answer: rc %d status %d",
		  rc, m.status);
	dr_mailbox_close(c);
	dr_mailbox_close(w);
	dr_mailbox_close(b);
	dr_close(r);
	dr_unlink(seg);
}

/* Every path of a call that keeps a copy (struct dri_again), for valgrind:
 * answered, made again and answered, timed out, made again but no bridge
 * any more, left in flight at close, and an -ENOENT send (fallback). */
static void serve_again(dr_mailbox *w, const char *name)
{
	cr_assert_eq(dr_serve_global(w, name, NULL, 0), 0);
}

static void notserved(dr_mailbox *w, const char *name)
{
	struct dr_msg m;

	cr_assert_eq(dr_unserve_global(w, name), 0);
	cr_assert_eq(dr_recv(w, &m, 0), -EAGAIN);
}

Test(breakreloc, every_copy_is_freed_once)
{
	const char *seg = seg_new("brl2");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1), *w = mailbox(r), *c = mailbox(r);
	char name[32];
	struct dr_msg m, fm;
	uint64_t id, id2;
	int rc;

	name_owned_by(r, "rl", "alpha", name, sizeof(name));
	/* answered by the worker */
	serve_again(w, name);
	cr_assert_eq(dr_call_async_global(c, name, "q", 1, 1000, &id), 0);
	cr_assert_eq(dr_recv(w, &m, 100), 0);
	cr_assert_eq(dr_reply(w, &m, "a", 1), 0);
	cr_assert_eq(dr_recv(c, &m, 100), 0);
	cr_assert(m.call_id == id && m.status == 0);
	/* made again, answered by the bridge */
	cr_assert_eq(dr_call_async_global(c, name, "q", 1, 1000, &id), 0);
	notserved(w, name);
	cr_assert_eq(dr_recv(c, &m, 20), -ETIMEDOUT);
	cr_assert_eq(dr_recv(b, &fm, 100), 0);
	cr_assert_eq(dr_reply(b, &fm, "b", 1), 0);
	cr_assert_eq(dr_recv(c, &m, 100), 0);
	cr_assert(m.call_id == id && m.status == 0);
	/* times out at the worker */
	serve_again(w, name);
	cr_assert_eq(dr_call_async_global(c, name, "q", 1, 30, &id), 0);
	rc = dr_recv(c, &m, 200);
	cr_assert(rc == 0 && m.call_id == id && m.status == -ETIMEDOUT, "rc %d st %d", rc, m.status);
	cr_assert_eq(dr_recv(w, &m, 0), 0); /* drop its record */
	/* left in flight at close */
	cr_assert_eq(dr_call_async_global(c, name, "q", 1, 1000, &id2), 0);
	/* sent nowhere (-ENOENT): its copy freed, made through the bridge */
	{
		char un[32];

		name_owned_by(r, "un", "alpha", un, sizeof(un));
		cr_assert_eq(dr_call_async_global(c, un, "q", 1, 1000, &id), 0);
	}
	cr_assert_eq(dr_recv(b, &fm, 100), 0);
	cr_assert_eq(dr_reply(b, &fm, "c", 1), 0);
	/* made again with no bridge any more: -ENOENT */
	{
		dr_mailbox *c2 = mailbox(r);

		cr_assert_eq(dr_call_async_global(c2, name, "q", 1, 1000, &id), 0);
		dr_mailbox_close(b);
		b = NULL;
		notserved(w, name);
		rc = dr_recv(c2, &m, 100);
		cr_assert(rc == 0 && m.call_id == id, "rc %d", rc);
		fprintf(stderr, "no bridge: status %d (%s)\n", m.status, dr_strerror(m.status));
		dr_mailbox_close(c2);
	}
	dr_mailbox_close(c);
	dr_mailbox_close(w);
	dr_close(r);
	dr_unlink(seg);
}
