/*
 * test_breakmove.c - faults a review found in the dienow and asynchronous
 * start pieces, each fixed: a factory here answering in the owner bridge's
 * format was believed (answers are now read by where the start went); a
 * restart answered before dr_restart_moved_async returned was not
 * recognised (the start is listed before it is sent, under a lock); the
 * echo-factory ended a later registration on a stale dienow (dr_lost). The test process plays the bridge (cluster_unit.h).
 * Linked with the crash-point build: async_sent (lib/call.c) pauses the
 * thread that sent an asynchronous call before it returns.
 */
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>

#include <distreg_admin.h>

#include "unit.h"

TestSuite(breakmove, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

#include "cluster_unit.h"

extern char **environ;

/* The owner's answer to a forwarded start (lib/start.c, STARTED_VERSION 2):
 * status 0, created 1, an entry (pid, regid, no value). 32 bytes. */
static size_t started_answer(uint8_t *p, int32_t pid, uint64_t regid)
{
	memset(p, 0, 32);
	p[0] = 2;              /* STARTED_VERSION */
	p[1] = 1;              /* created */
	/* 2..3 reason_len 0, 4..7 status 0 */
	p[8] = 1;              /* ENTRY_VERSION */
	memcpy(p + 12, &pid, 4);
	memcpy(p + 16, &regid, 8);
	return 32;
}

/* ---------------------------------------------------------------------- */
/*
 * 1. A factory's answer that begins with byte 2 is taken for the owner's.
 *
 * start_answer() tells a factory's answer (version 1) from an owner
 * bridge's (STARTED_VERSION 2) by the first byte only, whichever way the
 * start went. Before d77bb28, dr_start_bin chose by where it had sent the
 * start (w.self: start_finish, which checks version 1, then looks the name
 * up; else started_decode). Now a local start whose factory answers with
 * bytes 2,1,0,0, 0,0,0,0 + an entry is decoded by started_decode: dr_start
 * returns 0, created 1, an entry the factory made up (any pid, any regid),
 * and nobody serves the name; served_here is never called. A factory is
 * any process that served "\0distreg.factory.<kind>" (dr_factory_serve is
 * public): the regid check that start_finish does ("created only if what we
 * find is the registration the factory made") is bypassed.
 */
struct liar {
	const char *seg;
	struct link l;
};

static int liar_main(void *arg)
{
	struct liar *f = arg;
	struct dr_options o = { .segment = f->seg };
	uint8_t ans[32];
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	char c;

	if (dr_open(&o, &r) || dr_mailbox_open(r, &mb) || dr_factory_serve(mb, "liar"))
		return 10;
	write_byte(f->l.up[1], 'r');
	if (dr_recv(mb, &m, WAIT_MS) || m.kind != DR_MSG_CALL)
		return 11;
	/* Not dr_start_answer: the owner's format, naming pid 1. */
	if (dr_reply(mb, &m, ans, started_answer(ans, 1, 0x1234)))
		return 12;
	read_byte(f->l.down[0], &c);
	dr_mailbox_close(mb);
	dr_close(r);
	return 0;
}

Test(breakmove, a_local_factory_answering_in_the_owners_format_cannot_fake_a_start)
{
	const char *seg = seg_new("b8a");
	dr_registry *r = seg_open(seg, 64);
	struct liar f = { .seg = seg };
	struct dr_started st;
	struct dr_entry e;
	pid_t pid;
	int rc, w;

	link_init(&f.l);
	pid = spawn(liar_main, &f);
	expect_byte(&f.l, 'r', pid, "factory ready");
	rc = dr_start(r, "victim", "liar", NULL, 0, &st, WAIT_MS);
	w = dr_whereis_global(r, "victim", &e, NULL, 0, 0);
	write_byte(f.l.down[1], 'q');
	cr_assert_eq(wait_child(pid), 0);
	cr_assert(rc != 0 || w == 0,
		  "dr_start said %d (created %d, pid %d, regid %#llx) for a name served nowhere "
		  "(whereis %d): a factory's answer taken for the owner's",
		  rc, st.created, (int)st.entry.pid, (unsigned long long)st.entry.regid, w);
	link_close(&f.l);
	dr_close(r);
}

/* ---------------------------------------------------------------------- */
/*
 * 2. dr_restart_moved_async links its dri_move after the start is sent.
 *
 * dr_restart_moved_async -> dr_start_async_bin -> dri_call_async sends the
 * start and returns; only then is the dri_move (call id, name) pushed on
 * mb->moves, without a lock. dr_call_async is documented thread-safe "also
 * while another thread receives from mb (the answer may then arrive there
 * before this function returns)", and the restart is "the same in two
 * steps": a factory whose receiving thread is not the one that reacts to
 * events. Interleaving (async_sent pauses the restarting thread right after
 * the send, where a preemption may put it):
 *   T1: dr_restart_moved_async -> dri_call_async sends the start to the
 *       bridge, pauses (async_sent)
 *   bridge: answers "created on beta" (STARTED_VERSION 2)
 *   T2: dr_recv gets the reply -> dr_restart_moved_finish: no dri_move
 *       with that call id yet -> -EINVAL "not a restart's answer"
 *   T1: pushes the dri_move, returns 0
 * The name stays served here though it runs on beta (a duplicate until the
 * next dienow), and the dri_move stays on mb->moves until the mailbox
 * closes (no reply will ever carry its id again).
 */
struct restarter {
	dr_mailbox *w;
	struct dr_msg ev;
	int rc;
};

static void *restarter_main(void *arg)
{
	struct restarter *t = arg;

	t->rc = dr_restart_moved_async(t->w, &t->ev, "k", NULL, 0, WAIT_MS);
	return NULL;
}

Test(breakmove, a_restart_answered_before_dr_restart_moved_async_returns_is_recognised)
{
	const char *seg = seg_new("b8b");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = bridge_up(r, 1), *w = mailbox(r);
	struct dr_host h[3];
	unsigned char name_copy[DR_NAME_MAX];
	uint8_t data_copy[1 + DR_HOST_MAX], ans[32];
	struct restarter t = { .w = w };
	char name[64];
	struct dr_started st;
	struct dr_msg m, rep;
	pthread_t th;
	int rc, served;

	/* X served here while alpha owned it; then beta wins it. */
	h[0] = host("alpha", DR_HOST_UP, 1);
	cr_assert_eq(dr_admin_view_publish(b, h, 1, 2), 0);
	cr_assert_eq(dr_admin_view_publish(b, h, three(h), 3), 0);
	name_owned_by(r, "x", "beta", name, sizeof(name));
	cr_assert_eq(dr_admin_view_publish(b, h, 1, 4), 0);
	cr_assert_eq(dr_serve_global(w, name, NULL, 0), 0);
	cr_assert_eq(dr_admin_view_publish(b, h, three(h), 5), 0);
	cr_assert_eq(dr_admin_tell(b, name, strlen(name), DR_EVENT_SHOULDRESTART, "beta", NULL), 0);
	cr_assert_eq(dr_recv(w, &m, WAIT_MS), 0);
	cr_assert_eq(m.kind, DR_MSG_SYSTEM);
	t.ev = m;
	memcpy(name_copy, m.name, m.name_len);
	memcpy(data_copy, m.data, m.len);
	t.ev.name = name_copy;
	t.ev.data = data_copy;

	crash_arm("async_sent", "sleep:700", 0); /* threads count passes apiece */
	cr_assert_eq(pthread_create(&th, NULL, restarter_main, &t), 0);
	/* The bridge: the forwarded start, answered "created on beta". */
	rc = dr_recv(b, &m, WAIT_MS);
	cr_assert_eq(rc, 0);
	cr_assert_eq(m.kind, DR_MSG_CALL);
	cr_assert_eq(dr_reply(b, &m, ans, started_answer(ans, 4242, 77)), 0);
	/* The receiving thread: the reply, to the restart helper. */
	cr_assert_eq(dr_recv(w, &rep, WAIT_MS), 0);
	cr_assert_eq(rep.kind, DR_MSG_REPLY);
	rc = dr_restart_moved_finish(w, &rep, &st);
	pthread_join(th, NULL);
	unsetenv("DISTREG_CRASH_AT");
	cr_assert_eq(t.rc, 0, "restart: %d", t.rc);
	{
		unsigned char eb[DR_ENTRY_WIRE_MAX];
		size_t el = sizeof(eb);

		served = dr_admin_entry_encode(r, name, strlen(name), eb, &el);
	}
	cr_assert_eq(rc, 0,
		     "the restart's own answer refused as not a restart's (%d): the name stays "
		     "served here (whereis %d) and its dri_move stays on the mailbox for good",
		     rc, served);
	dr_mailbox_close(w);
	dr_mailbox_close(b);
	dr_close(r);
}

/* ---------------------------------------------------------------------- */
/*
 * 3. The echo-factory (tools/distreg.c factory_take) ends a later
 *    registration on a stale dienow.
 *
 * A dienow is sent with DRI_REC_ENDED: dri_take delivers it although its
 * registration (msg.regid) ended, so it may be read after the mailbox
 * served the name again. factory_take does not compare msg.regid with
 * anything: it calls dr_unserve_global_bin(name), and dri_unserve ends the
 * registration the mailbox serves now. Interleaving (the factory is
 * SIGSTOPped to hold its reads back, as a busy factory would):
 *   view {alpha}: a start of N -> the factory serves N (regid R1)
 *   view {alpha, beta}: beta owns N and runs one; the bridge's
 *       moves_owner_said -> dr_admin_tell(DIENOW): event queued in the
 *       bridge's lane, R1 unregistered
 *   view {alpha}: beta went down (alpha owns N again); a process's
 *       dr_start(N) -> its own lane to the factory
 *   the factory reads its lanes from its cursor (the starter's lane, read
 *       last): the start first -> dr_start_request (R1 is gone: not
 *       served) -> dr_serve_global_bin -> R2, answers created; then the
 *       dienow about R1 -> dr_unserve_global_bin(N) -> R2 unregistered
 * dr_start said created; N is served nowhere, on its owner, and nothing
 * tells anyone (zero instances; no bridge pass looks at names not served).
 */
struct starter {
	const char *seg, *name;
	struct link l;
};

static int starter_main(void *arg)
{
	struct starter *s = arg;
	struct dr_options o = { .segment = s->seg };
	dr_registry *r;
	char c;

	if (dr_open(&o, &r))
		return 10;
	while (read_byte(s->l.down[0], &c) == 1 && c == 's') {
		struct dr_started st;
		int rc;

		for (int i = 0; i < 500; i++) {
			rc = dr_start(r, s->name, "b8", NULL, 0, &st, WAIT_MS);
			if (rc != -ESRCH)
				break;
			usleep(10 * 1000); /* the factory is not serving yet */
		}
		write_byte(s->l.up[1], rc == 0 ? (st.created ? 'c' : 'f') : (char)-rc);
	}
	dr_close(r);
	return 0;
}

static pid_t cli_factory(const char *seg)
{
	char *exe = getenv("DISTREG"), *argv[8];
	posix_spawn_file_actions_t fa;
	pid_t pid;

	cr_assert_not_null(exe, "$DISTREG (the distreg command) is not set: meson test sets it");
	argv[0] = exe;
	argv[1] = "--segment";
	argv[2] = (char *)seg;
	argv[3] = "echo-factory";
	argv[4] = "--kind";
	argv[5] = "b8";
	argv[6] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	cr_assert_eq(posix_spawn(&pid, exe, &fa, NULL, argv, environ), 0, "spawn %s", exe);
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

Test(breakmove, the_echo_factory_keeps_a_later_registration_on_a_stale_dienow)
{
	const char *seg = seg_new("b8c");
	dr_registry *r = open_or_die(seg);
	dr_mailbox *b = mailbox(r);
	struct dr_host h[3];
	struct dr_admin_loser l;
	struct starter s = { .seg = seg };
	unsigned char eb[DR_ENTRY_WIRE_MAX];
	size_t el = sizeof(eb);
	char name[64], c = 0;
	pid_t fac, st;
	int served, rc;

	cr_assert_eq(dr_admin_bridge_claim(b, NULL), 0);
	h[0] = host("alpha", DR_HOST_UP, 1);
	h[1] = host("beta", DR_HOST_UP, 0);
	cr_assert_eq(dr_admin_view_publish(b, h, 2, 1), 0);
	name_owned_by(r, "n", "beta", name, sizeof(name));
	cr_assert_eq(dr_admin_view_publish(b, h, 1, 2), 0); /* {alpha}: alpha owns N */
	s.name = name;
	fac = cli_factory(seg);
	link_init(&s.l);
	st = spawn(starter_main, &s);
	write_byte(s.l.down[1], 's');
	rc = read_byte_within(s.l.up[0], &c, WAIT_MS);
	if (rc != 1 || c != 'c')
		kill(fac, SIGKILL);
	cr_assert(rc == 1 && c == 'c', "first start: %d %d", rc, c);

	/* The partition heals: beta owns N and runs it; the factory is slow. */
	cr_assert_eq(kill(fac, SIGSTOP), 0);
	cr_assert_eq(dr_admin_view_publish(b, h, 2, 3), 0);
	cr_assert_eq(dr_admin_tell(b, name, strlen(name), DR_EVENT_DIENOW, "beta", &l), 0);
	/* beta goes down: alpha owns N again, and a process starts it. */
	cr_assert_eq(dr_admin_view_publish(b, h, 1, 4), 0);
	write_byte(s.l.down[1], 's');
	usleep(100 * 1000); /* its request is in the factory's mailbox */
	cr_assert_eq(kill(fac, SIGCONT), 0);
	rc = read_byte_within(s.l.up[0], &c, WAIT_MS);
	usleep(300 * 1000); /* the factory reads the dienow */
	served = dr_admin_entry_encode(r, name, strlen(name), eb, &el);

	write_byte(s.l.down[1], 'q');
	kill(fac, SIGTERM);
	waitpid(fac, NULL, 0);
	cr_assert_eq(wait_child(st), 0);
	link_close(&s.l);
	cr_assert_eq(rc, 1, "second start: no answer");
	/* The start itself: created, or -ENOENT if the factory unserved the
	 * new registration before the starter looked it up. */
	cr_assert_eq(served, 0,
		     "a start on the owner (result %s) was followed by the factory reading the "
		     "dienow about the ended registration and unserving the new one: %s served "
		     "nowhere (%d)", c == 'c' ? "created" : dr_strerror(-c), name, served);
	cr_assert_eq(c, 'c', "second start: %s", dr_strerror(-c));
	dr_mailbox_close(b);
	dr_close(r);
}
