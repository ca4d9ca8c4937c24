/*
 * test_breakstart.c - review of the global-worker protocol (lib/start.c,
 * bridge/view.c's tell_moved): interleavings that lose a started worker,
 * leave one misplaced for good, or report one creation twice. The test
 * process plays the bridge (cluster_unit.h): it claims the role, publishes
 * made-up views and tells moved workers exactly as bridge/view.c does after
 * each publication (dr_admin_tell_moved with the view published before).
 * Found by a review of the first version; each test failed on it. Linked
 * with the crash-point build: start_answered (lib/start.c) and
 * serve_owner_checked (lib/global.c) pause a process at those steps. The
 * fixes: dr_restart_moved does nothing when this host owns the name again
 * (-EALREADY); dr_serve_global looks at the owner again once registered and
 * undoes a registration the view moved meanwhile (-EREMOTE); the factory's
 * answer carries the regid it made, and only a start that finds that one
 * says created.
 */
#include <signal.h>
#include <sys/mman.h>

#include <distreg_admin.h>

#include "unit.h"

TestSuite(breakstart, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

#include "cluster_unit.h"

/* What bridge/view.c does: publish, then tell against the view before. */
static size_t publish_and_tell(dr_mailbox *b, const struct dr_host *now, size_t n,
			       const struct dr_host *before, size_t nbefore, uint64_t epoch)
{
	size_t told = 0, unsent = 0;

	cr_assert_eq(dr_admin_view_publish(b, now, n, epoch), 0);
	cr_assert_eq(dr_admin_tell_moved(b, before, nbefore, NULL, NULL, &told, &unsent), 0);
	cr_assert_eq(unsent, 0);
	return told;
}

/*
 * 1. A shouldrestart that is stale when the worker acts on it.
 *
 * alpha serves X. beta joins and wins X: alpha's bridge tells X's worker
 * (view.c tell_moved). The worker is busy or paused; beta goes down again
 * (its bridge killed) and alpha publishes {alpha} alone: alpha owns X again,
 * and nothing is told (X's owner is self). The worker now reads
 * the event and does what the README says, dr_restart_moved:
 * dr_start_bin finds the owner is this host, start_here ->
 * served_here finds the worker's own registration and returns
 * 0, created 0; then dri_unserve ends that very registration.
 * X, acknowledged as started, is served nowhere, and nothing restarts it.
 */
Test(breakstart, a_stale_shouldrestart_leaves_the_only_instance_served)
{
	const char *seg = seg_new("bs1");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = mailbox(r), *w = mailbox(r);
	struct dr_host one[1], two[2];
	struct dr_started st;
	struct dr_entry e;
	struct dr_msg m;
	char name[32];
	int rc;

	one[0] = host("alpha", DR_HOST_UP, 1);
	two[0] = one[0];
	two[1] = host("beta", DR_HOST_UP, 0);
	cr_assert_eq(dr_admin_bridge_claim(b, NULL), 0);
	cr_assert_eq(dr_admin_view_publish(b, two, 2, 1), 0);
	name_owned_by(r, "bs1", "beta", name, sizeof(name));
	cr_assert_eq(publish_and_tell(b, one, 1, two, 2, 2), 0);
	/* The worker, started on its owner alpha. */
	cr_assert_eq(dr_serve_global(w, name, NULL, 0), 0);
	/* beta joins: X is told; beta goes: nothing is told. */
	cr_assert_eq(publish_and_tell(b, two, 2, one, 1, 3), 1);
	cr_assert_eq(publish_and_tell(b, one, 1, two, 2, 4), 0);
	/* The worker reads the event now. */
	cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_SYSTEM);
	rc = dr_restart_moved(w, &m, "echo", NULL, 0, &st, WAIT_MS);
	cr_log_info("dr_restart_moved: %s (created %d)", dr_strerror(rc), st.created);
	cr_assert_eq(dr_whereis_global(r, name, &e, NULL, 0, 0), 0,
		     "%s: its owner's only instance unserved by a stale shouldrestart", name);
	dr_mailbox_close(w);
	dr_mailbox_close(b);
	dr_close(r);
}

/*
 * 2. A name registered while the view changes is never told.
 *
 * A factory on alpha serves X: dr_serve_global_bin finds alpha
 * the owner and is paused before dri_serve registers it (crash point
 * serve_owner_checked). beta joins and wins X; alpha's bridge publishes and
 * tells: dr_admin_tell_moved's dr_foreach does not
 * see X yet. The factory resumes and registers X on alpha, which no longer
 * owns it. Every later tell compares with the view before,
 * where beta already owned X: X is never told, and view_tick retries only
 * unsent events. X stays on alpha for good; a start from any host then
 * creates a second instance on beta, and the two never converge.
 */
struct serve_arg {
	const char *seg;
	const char *name;
	struct link l;
};

static int late_server(void *arg)
{
	struct serve_arg *a = arg;
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	int rc;

	if (open_g(a->seg, &r) || dr_mailbox_open(r, &mb))
		return 10;
	crash_arm("serve_owner_checked", "stop", 0);
	rc = dr_serve_global(mb, a->name, NULL, 0);
	unsetenv("DISTREG_CRASH_AT");
	if (rc)
		return 11; /* -EREMOTE would be fine: not served here */
	write_byte(a->l.up[1], 's');
	/* Served: does anyone tell us? */
	rc = dr_recv(mb, &m, 1000);
	write_byte(a->l.up[1], rc == 0 && m.kind == DR_MSG_SYSTEM ? 't' : 'n');
	return 0;
}

Test(breakstart, a_name_served_during_a_view_change_is_undone_or_told)
{
	const char *seg = seg_new("bs2");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = mailbox(r);
	struct dr_host one[1], two[2];
	struct serve_arg a;
	char name[32], got[DR_HOST_MAX + 1], c = 0;
	pid_t pid;
	int st;

	one[0] = host("alpha", DR_HOST_UP, 1);
	two[0] = one[0];
	two[1] = host("beta", DR_HOST_UP, 0);
	cr_assert_eq(dr_admin_bridge_claim(b, NULL), 0);
	cr_assert_eq(dr_admin_view_publish(b, two, 2, 1), 0);
	name_owned_by(r, "bs2", "beta", name, sizeof(name));
	cr_assert_eq(publish_and_tell(b, one, 1, two, 2, 2), 0);
	a.seg = seg;
	a.name = name;
	link_init(&a.l);
	pid = spawn(late_server, &a);
	cr_assert_eq(wait_stopped(pid, WAIT_MS), 0, "never reached serve_owner_checked");
	/* beta joins meanwhile. */
	cr_assert_eq(publish_and_tell(b, two, 2, one, 1, 3), 0, "X is not registered yet");
	kill(pid, SIGCONT);
	/* Our copy of the child's end closed: EOF if it exits without a word. */
	close(a.l.up[1]);
	if (read_byte_within(a.l.up[0], &c, WAIT_MS) == 1 && c == 's')
		cr_assert_eq(read_byte_within(a.l.up[0], &c, WAIT_MS), 1);
	st = wait_child(pid);
	cr_assert_eq(dr_owner(r, name, got, sizeof(got)), 0);
	cr_assert_str_eq(got, "beta");
	cr_assert(st == 11 || c == 't',
		  "%s registered on alpha after the view gave it to beta, and never told "
		  "(child status %d, '%c')", name, st, c);
	dr_mailbox_close(b);
	dr_close(r);
}

/*
 * 3. One creation reported twice.
 *
 * S1 starts X: the factory serves it (registration R1) and answers 0;
 * S1 is paused before it looks X up (after dri_call_wait in
 * start_here, crash point start_answered). X's worker ends (its job done,
 * or killed). S2 starts X: not served, the factory serves it again (R2),
 * S2 gets created 1 and R2. S1 resumes: start_finish
 * looks the name up, finds R2 and says created 1. Two dr_start calls both
 * say they created R2: a caller that hands its new worker its first job
 * on created does so twice. The factory's answer carries no regid, so
 * start_finish cannot tell its creation from another's.
 */
struct fac {
	const char *seg;
	struct link l;
};

/* A factory serving each worker in its own mailbox; a call "end" to a
 * worker ends it; "quit" ends the factory. */
static int fac_main(void *arg)
{
	struct fac *f = arg;
	struct dr_start_req req;
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	int rc;

	if (open_g(f->seg, &r) || dr_mailbox_open(r, &mb) || dr_factory_serve(mb, "echo"))
		return 10;
	write_byte(f->l.up[1], 'r');
	for (;;) {
		if (dr_recv(mb, &m, WAIT_MS))
			return 11;
		rc = dr_start_request(mb, &m, &req);
		if (rc == -EEXIST) {
			dr_start_answer(mb, &m, -EEXIST, NULL);
			continue;
		}
		if (rc == 0) {
			rc = dr_serve_global_bin(mb, req.name, req.name_len, NULL, 0);
			dr_start_answer(mb, &m, rc, "cannot");
			continue;
		}
		if (m.kind != DR_MSG_CALL)
			continue;
		if (m.len == 3 && memcmp(m.data, "end", 3) == 0) {
			/* Ended before the caller hears so: its next start
			 * must find nothing (CI's sanitizer run lost that race). */
			dr_unserve_global_bin(mb, m.name, m.name_len);
			dr_reply(mb, &m, "ok", 2);
			continue;
		}
		if (m.len == 4 && memcmp(m.data, "quit", 4) == 0) {
			dr_reply(mb, &m, "ok", 2);
			break;
		}
		dr_reply(mb, &m, m.data, m.len);
	}
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

struct s1 {
	const char *seg;
	int rc, created;
	uint64_t regid;
};

static int s1_main(void *arg)
{
	struct s1 *s = arg;
	struct dr_started st = { 0 };
	dr_registry *r;

	if (open_g(s->seg, &r))
		return 10;
	crash_arm("start_answered", "stop", 0);
	s->rc = dr_start(r, "once", "echo", NULL, 0, &st, WAIT_MS);
	s->created = st.created;
	s->regid = st.entry.regid;
	dr_close(r);
	return 0;
}

Test(breakstart, a_worker_that_ends_before_its_starter_looks_is_not_reported_created_twice)
{
	const char *seg = seg_new("bs3");
	dr_registry *r = open_or_die(seg);
	struct s1 *s = mmap(NULL, sizeof(*s), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			    -1, 0);
	struct dr_started st;
	struct fac f;
	char buf[8];
	size_t len = sizeof(buf);
	pid_t fp, sp;

	cr_assert_neq(s, MAP_FAILED);
	s->seg = seg;
	f.seg = seg;
	link_init(&f.l);
	fp = spawn(fac_main, &f);
	expect_byte(&f.l, 'r', fp, "factory ready");
	sp = spawn(s1_main, s);
	cr_assert_eq(wait_stopped(sp, WAIT_MS), 0, "S1 never reached start_answered");
	/* The worker S1 started ends; S2 starts the name again. */
	cr_assert_eq(dr_call_global(r, "once", "end", 3, buf, &len, WAIT_MS), 0);
	cr_assert_eq(dr_start(r, "once", "echo", NULL, 0, &st, WAIT_MS), 0);
	cr_assert_eq(st.created, 1);
	kill(sp, SIGCONT);
	cr_assert_eq(wait_child(sp), 0);
	cr_assert_eq(s->rc, 0);
	cr_log_info("S1 created %d regid %llu, S2 created %d regid %llu", s->created,
		    (unsigned long long)s->regid, st.created, (unsigned long long)st.entry.regid);
	cr_assert(!(s->created && st.created && s->regid == st.entry.regid),
		  "two starts both report creating registration %llu",
		  (unsigned long long)st.entry.regid);
	len = sizeof(buf);
	cr_assert_eq(dr_call_global(r, "once", "quit", 4, buf, &len, WAIT_MS), 0);
	cr_assert_eq(wait_child(fp), 0);
	munmap(s, sizeof(*s));
	dr_close(r);
}
