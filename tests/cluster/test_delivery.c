/*
 * test_delivery.c - the bridge's queue of messages waiting for room in a
 * worker's mailbox (bridge/rpc.c, struct dlv): a worker that does not
 * read, or a factory busy with starts, holds up only its own messages;
 * order per sender holds through the queue; messages queued for an origin
 * that restarts, for a worker that is killed, and answers for a caller
 * whose own lane is full, all end cleanly, also at SIGTERM (the review of
 * 2026-12-02 found the first two; the tests' checks for sanitizer reports
 * matter with a bridge built with -Db_sanitize=address).
 */
#include <signal.h>

#include "cluster.h"

TestSuite(delivery, .timeout = CL_TIMEOUT);

/* n calls from host 0 to name, 2 s each: how many failed (each logged). */
static int calls_failing(struct cl *c, const char *name, int n, const char *what)
{
	char reply[256];
	int fails = 0;

	for (int i = 0; i < n; i++) {
		size_t len = sizeof(reply);
		double t0 = cl_now();
		int rc = dr_call_global(cl_reg(c, 0), name, "hi", 2, reply, &len, 2000);

		cr_log_info("%s: call %d to a healthy worker: %s in %.2f s", what, i,
			    dr_strerror(rc), cl_now() - t0);
		fails += rc != 0;
	}
	return fails;
}

/* dr_start_async from mb of n names of kind that host 1 owns ("job.<k>",
 * from k 0): how many were sent; *next the first k not tried. */
static int starts_to_host1(struct cl *c, dr_mailbox *mb, const char *kind, int n, int *next)
{
	char nm[32];
	uint64_t id;
	int sent = 0, k;

	for (k = 0; sent < n && k < 100000; k++) {
		snprintf(nm, sizeof(nm), "job.%d", k);
		if (cl_owner(c, 0, nm) == 1)
			sent += dr_start_async(mb, nm, kind, NULL, 0, 20000, NULL, &id) == 0;
	}
	*next = k;
	return sent;
}

/* Two hosts; on host 1 a worker for a name "stalled.<k>" (*ws, stopped
 * with SIGSTOP) and one for "fast.<k>" (*wf), both owned by host 1; a
 * mailbox of host 0 in *mb. */
static void stalled_and_fast(struct cl *c, const char *tag, struct counters *cnt,
			     const char **sname, const char **fname, pid_t *ws, pid_t *wf,
			     dr_mailbox **mb)
{
	char reply[256];
	size_t len = sizeof(reply);
	int rc;

	cl_init(c, 2, tag, false);
	cl_start_all(c);
	cl_wait_converged(c, "start");
	*sname = name_owned_by(c, 1, "stalled");
	*fname = name_owned_by(c, 1, "fast");
	*ws = worker_start(c, 1, sname, 1, cnt);
	*wf = worker_start(c, 1, fname, 1, cnt);
	rc = dr_call_global(cl_reg(c, 0), *fname, "hi", 2, reply, &len, 3000);
	cr_assert_eq(rc, 0, "before: %s", dr_strerror(rc));
	kill(*ws, SIGSTOP);
	cr_assert_eq(dr_mailbox_open(cl_reg(c, 0), mb), 0);
}

/* One worker of host 1 is stopped (SIGSTOP) with its lane full; calls from
 * host 0 to ANOTHER, healthy worker of host 1 must still be answered. */
static void stalled_worker_blocks_others(int stalled_timeout_ms, const char *tag)
{
	enum { CALLS = 1500 };
	struct cl c;
	struct counters *cnt = counters_new();
	const char *sname, *fname;
	char req[600];
	dr_mailbox *mb;
	uint64_t id;
	pid_t ws, wf;
	int rc, fails = 0;

	stalled_and_fast(&c, tag, cnt, &sname, &fname, &ws, &wf, &mb);
	memset(req, 'x', sizeof(req));
	for (int i = 0; i < CALLS; i++) {
		rc = dr_call_async_global(mb, sname, req, sizeof(req), stalled_timeout_ms, &id);
		cr_assert_eq(rc, 0, "call %d: %s", i, dr_strerror(rc));
	}
	cl_sleep_ms(500);
	fails = calls_failing(&c, fname, 5, tag);
	kill(ws, SIGCONT);
	cr_expect_eq(fails, 0, "%d of 5 calls to a healthy worker of host 1 failed while another "
		     "worker of host 1 was stopped (bridge 1 log: %s)", fails, cl_log_tail(&c, 1));
	dr_mailbox_close(mb);
	reap_child(ws);
	reap_child(wf);
	cl_fini(&c);
}

Test(delivery, a_stopped_worker_does_not_block_another_worker)
{
	stalled_worker_blocks_others(20000, "holf");
}

Test(delivery, a_stopped_worker_with_untimed_calls_does_not_block_another_worker)
{
	stalled_worker_blocks_others(-1, "holi");
}

static int drain(dr_mailbox *mb, int want, double secs, int *ok)
{
	int got = 0;
	double t0 = cl_now();

	*ok = 0;
	while (got < want && cl_now() - t0 < secs) {
		struct dr_msg m;
		int rc = dr_recv(mb, &m, 50);

		if (rc)
			continue;
		if (m.kind != DR_MSG_REPLY)
			continue;
		got++;
		*ok += m.status == 0;
	}
	return got;
}

static void no_sanitizer_report(struct cl *c, int i)
{
	cr_expect(!cl_log_has(c, i, "Sanitizer") && !cl_log_has(c, i, "runtime error"),
		  "host %d's bridge: %s", i, cl_log_tail(c, i));
}

/* Queued inbound items of an origin that restarts, a worker killed with
 * messages queued, late answers, and SIGTERM with all of it queued. Meant
 * for a bridge built with -Db_sanitize=address. */
Test(delivery, queued_items_survive_restart_kill_and_stop)
{
	enum { CALLS = 800 };
	struct cl c;
	struct counters *cnt = counters_new();
	const char *sname, *fname, *rname;
	char req[200], reply[256];
	size_t len;
	dr_mailbox *mb, *mb1;
	uint64_t id;
	pid_t ws, wf, wr;
	int rc, got, ok;

	cl_init(&c, 2, "qr", false);
	cl_start_all(&c);
	cl_wait_converged(&c, "start");
	sname = name_owned_by(&c, 1, "stalled");
	fname = name_owned_by(&c, 1, "fast");
	rname = name_owned_by(&c, 0, "remote");
	ws = worker_start(&c, 1, &sname, 1, cnt);
	wf = worker_start(&c, 1, &fname, 1, cnt);
	wr = worker_start(&c, 0, &rname, 1, cnt);
	memset(req, 'x', sizeof(req));

	/* 1. Items of host 0's incarnation queued at host 1; host 0 restarts. */
	kill(ws, SIGSTOP);
	cr_assert_eq(dr_mailbox_open(cl_reg(&c, 0), &mb), 0);
	for (int i = 0; i < CALLS; i++)
		cr_assert_eq(dr_call_async_global(mb, sname, req, sizeof(req), 20000, &id), 0);
	for (int i = 0; i < 200; i++)
		dr_cast_global(cl_reg(&c, 0), sname, req, sizeof(req), 0);
	cl_sleep_ms(500);
	dr_mailbox_close(mb);
	cl_stop(&c, 0, SIGKILL);
	cl_start(&c, 0);
	cl_wait_converged(&c, "restart 0");
	len = sizeof(reply);
	rc = dr_call_global(cl_reg(&c, 0), fname, "hi", 2, reply, &len, 5000);
	if (rc)
		for (int i = 0; i < 2; i++)
			cr_log_error("host %d's bridge log ends with:\n%s", i, cl_log_tail(&c, i));
	cr_assert_eq(rc, 0, "after host 0 restarted, with its old calls queued at host 1: a call "
		     "to the healthy worker: %s", dr_strerror(rc));

	/* 2. Queue again from the new incarnation, then SIGKILL the stalled worker. */
	cr_assert_eq(dr_mailbox_open(cl_reg(&c, 0), &mb), 0);
	for (int i = 0; i < CALLS; i++)
		cr_assert_eq(dr_call_async_global(mb, sname, req, sizeof(req), 20000, &id), 0);
	cl_sleep_ms(500);
	kill(ws, SIGKILL);
	waitpid(ws, NULL, 0);
	got = drain(mb, CALLS, 15, &ok);
	cr_log_info("stalled worker killed: %d of %d calls answered (%d with 0)", got, CALLS, ok);
	cr_expect_eq(got, CALLS, "calls queued for a killed worker: %d of %d answered", got, CALLS);

	/* 3. Late answers: a process of host 1 that does not read its answers. */
	cr_assert_eq(dr_mailbox_open(cl_reg(&c, 1), &mb1), 0);
	for (int i = 0; i < 400; i++)
		dr_call_async_global(mb1, rname, req, sizeof(req), 20000, &id);
	/* and messages queued for a stopped worker of host 1 again */
	kill(wf, SIGSTOP);
	for (int i = 0; i < CALLS; i++)
		dr_call_async_global(mb, fname, req, sizeof(req), 20000, &id);
	cl_sleep_ms(1500);
	/* 4. SIGTERM host 1 with everything queued. */
	rc = cl_stop(&c, 1, SIGTERM);
	cr_expect_eq(rc, 0, "bridge 1 exit %d: %s", rc, cl_log_tail(&c, 1));
	cr_log_info("host 1 stop line: %s", cl_log_tail(&c, 1));
	rc = cl_stop(&c, 0, SIGTERM);
	cr_expect_eq(rc, 0, "bridge 0 exit %d", rc);
	no_sanitizer_report(&c, 0);
	no_sanitizer_report(&c, 1);
	kill(wf, SIGCONT);
	dr_mailbox_close(mb);
	dr_mailbox_close(mb1);
	reap_child(wf);
	reap_child(wr);
	cl_fini(&c);
}

/* Order per sender through the bridge's queue (and past DLV_MAX), and no
 * answer lost while the caller's own lane is full (late answers). The test
 * process is the worker on host 1 (it reads nothing for a while). */
Test(delivery, order_per_sender_holds_through_the_queue_and_every_answer_arrives)
{
	enum { CALLS = 6000 };
	struct cl c;
	const char *name;
	dr_mailbox *mb0, *mb1;
	uint64_t id;
	int rc, got = 0, bad = 0, last = -1, answered = 0, ok = 0, sent = 0;
	double t0;

	cl_init(&c, 2, "ord", false);
	cl_start_all(&c);
	cl_wait_converged(&c, "start");
	name = name_owned_by(&c, 1, "ordered");
	cr_assert_eq(dr_mailbox_open(cl_reg(&c, 1), &mb1), 0);
	cr_assert_eq(dr_serve_global(mb1, name, NULL, 0), 0);
	cr_assert_eq(dr_mailbox_open(cl_reg(&c, 0), &mb0), 0);
	for (int i = 0; i < CALLS; i++) {
		char req[32];
		int n = snprintf(req, sizeof(req), "%d", i);

		rc = dr_call_async_global(mb0, name, req, (size_t)n, 60000, &id);
		sent += rc == 0;
		if (rc)
			cr_log_warn("call %d: %s", i, dr_strerror(rc));
	}
	cl_sleep_ms(1500);
	t0 = cl_now();
	while (got < sent && cl_now() - t0 < 40) {
		struct dr_msg m;
		char buf[32];
		int k;

		rc = dr_recv(mb1, &m, 100);
		if (rc || m.kind != DR_MSG_CALL)
			continue;
		got++;
		snprintf(buf, sizeof(buf), "%.*s", (int)m.len, (const char *)m.data);
		k = atoi(buf);
		if (k <= last) {
			if (bad++ < 5)
				cr_log_warn("out of order: %d after %d", k, last);
		}
		last = k;
		while (dr_reply(mb1, &m, "ok", 2) == -EAGAIN)
			cl_sleep_ms(1);
	}
	t0 = cl_now();
	while (answered < sent && cl_now() - t0 < 40) {
		struct dr_msg m;

		rc = dr_recv(mb0, &m, 100);
		if (rc || m.kind != DR_MSG_REPLY)
			continue;
		answered++;
		ok += m.status == 0;
	}
	cl_stop(&c, 0, SIGTERM);
	cl_stop(&c, 1, SIGTERM);
	cr_log_info("order: %d sent, %d delivered, %d out of order; %d answered, %d ok; stop 0: %s; "
		    "stop 1: %s", sent, got, bad, answered, ok,
		    strstr(cl_log_tail(&c, 0), "stopping"), strstr(cl_log_tail(&c, 1), "stopping"));
	cr_expect_eq(bad, 0);
	cr_expect_eq(got, sent);
	cr_expect_eq(ok, sent);
	no_sanitizer_report(&c, 0);
	no_sanitizer_report(&c, 1);
	dr_mailbox_close(mb0);
	dr_mailbox_close(mb1);
	cl_fini(&c);
}

/* Two hosts; on host 1 a factory of kind "kind", stopped, with n starts
 * queued for it from host 0 (through *mb, opened here): its pid; *k the
 * first "job.<k>" not tried. */
static pid_t stopped_factory_with_starts(struct cl *c, const char *tag, struct counters *cnt,
					 int n, dr_mailbox **mb, int *k)
{
	pid_t fac;
	int sent;

	cl_init(c, 2, tag, false);
	cl_start_all(c);
	cl_wait_converged(c, "start");
	fac = worker_spawn(c, 1, NULL, 0, cnt, "kind");
	kill(fac, SIGSTOP);
	cr_assert_eq(dr_mailbox_open(cl_reg(c, 0), mb), 0);
	sent = starts_to_host1(c, *mb, "kind", n, k);
	cr_log_info("%s: %d starts queued for a stopped factory", tag, sent);
	cl_sleep_ms(500);
	return fac;
}

/* The commit's own case: a factory that is busy (here stopped) with many
 * starts. Calls to a worker of the same host that already runs must still
 * be answered. */
Test(delivery, a_busy_factory_does_not_block_calls_to_running_workers)
{
	enum { STARTS = 1500 };
	struct cl c;
	struct counters *cnt = counters_new();
	const char *fname;
	dr_mailbox *mb;
	pid_t wf, fac;
	int fails, k;

	fac = stopped_factory_with_starts(&c, "fac", cnt, STARTS, &mb, &k);
	fname = name_owned_by(&c, 1, "fast");
	wf = worker_start(&c, 1, &fname, 1, cnt);
	fails = calls_failing(&c, fname, 3, "factory stopped, starts queued");
	kill(fac, SIGCONT);
	cr_expect_eq(fails, 0, "%d of 3 calls to a running worker failed behind a busy factory",
		     fails);
	dr_mailbox_close(mb);
	reap_child(fac);
	reap_child(wf);
	cl_fini(&c);
}

/* A stopped factory of one kind must not hold up starts of another kind on
 * the same host (starts wait by kind, not in one queue). */
Test(delivery, a_stopped_factory_does_not_block_another_kind)
{
	enum { STARTS = 1500 };
	struct cl c;
	struct counters *cnt = counters_new();
	char nm[32];
	dr_mailbox *mb;
	pid_t fac, fac2;
	int rc, fails = 0, k;
	double t0;

	fac = stopped_factory_with_starts(&c, "fac2", cnt, STARTS, &mb, &k);
	fac2 = worker_spawn(&c, 1, NULL, 0, cnt, "echo");
	for (int i = 0, done = 0; done < 3 && k < 200000; k++) {
		struct dr_started st;

		snprintf(nm, sizeof(nm), "other.%d", k);
		if (cl_owner(&c, 0, nm) != 1)
			continue;
		t0 = cl_now();
		rc = dr_start(cl_reg(&c, 0), nm, "echo", NULL, 0, &st, 2000);
		cr_log_info("kind factory stopped: start %d of kind echo: %s in %.2f s", i++,
			    dr_strerror(rc), cl_now() - t0);
		fails += rc != 0;
		done++;
	}
	kill(fac, SIGCONT);
	cr_expect_eq(fails, 0, "%d of 3 starts of another kind failed behind a stopped factory", fails);
	dr_mailbox_close(mb);
	reap_child(fac);
	reap_child(fac2);
	cl_fini(&c);
}

/* Calls to a stopped worker that trickle in (one batch each) would fill
 * the sender's window of 64 batches if it counted batches the peer has
 * but cannot answer yet; a call to a healthy worker must not wait. */
Test(delivery, calls_trickled_to_a_stopped_worker_do_not_hold_up_others)
{
	struct cl c;
	struct counters *cnt = counters_new();
	const char *sname, *fname;
	dr_mailbox *mb;
	uint64_t id;
	pid_t ws, wf;
	int rc, fails = 0;

	stalled_and_fast(&c, "trkl", cnt, &sname, &fname, &ws, &wf, &mb);
	for (int i = 0; i < 100; i++) {
		rc = dr_call_async_global(mb, sname, "x", 1, 20000, &id);
		cr_assert_eq(rc, 0);
		cl_sleep_ms(3);
	}
	fails = calls_failing(&c, fname, 3, "trickle");
	kill(ws, SIGCONT);
	cr_expect_eq(fails, 0, "%d of 3 calls failed", fails);
	dr_mailbox_close(mb);
	reap_child(ws);
	reap_child(wf);
	cl_fini(&c);
}
