/*
 * test_races.c - regression tests for the races an independent review found
 * in the table's reclamation and reader slots (issue "four races"). Each
 * one pauses a process at the exact step with a crash point in stop mode
 * (crashpoint.h: it raises SIGSTOP there), lets other processes run the
 * racing path meanwhile, releases it with SIGCONT and checks that nothing
 * anyone committed was lost or corrupted. The fourth kills the process at
 * its step instead.
 *
 * Linked with the crash-point build of the library (distreg_crash); the
 * test process itself takes part as an ordinary process, and only the
 * children arm a point (crash_arm() in unit.h).
 */
#include <sys/mman.h>

#include "unit.h"

#include "segmap.h"

TestSuite(races, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

/* How long a child may take to reach its point or answer: generous, since
 * only a broken test waits that long. */
#define WAIT_MS 10000

static int open_small(const char *seg, uint32_t capacity, uint32_t max_threads, dr_registry **r)
{
	struct dr_options o = {
		.segment = seg,
		.capacity = capacity,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = max_threads ? max_threads : UNIT_MAX_THREADS,
	};
	return dr_open(&o, r);
}

/* A child's pipes to and from the test process. */
struct link {
	int up[2];   /* child -> parent */
	int down[2]; /* parent -> child */
};

static void link_init(struct link *l)
{
	cr_assert_eq(pipe(l->up), 0);
	cr_assert_eq(pipe(l->down), 0);
}

static void link_close(struct link *l)
{
	close(l->up[0]);
	close(l->up[1]);
	close(l->down[0]);
	close(l->down[1]);
}

/* The parent's side: the next byte from the child, which must be want. */
static void expect_byte(struct link *l, char want, pid_t pid, const char *what)
{
	char c = 0;
	int rc = read_byte_within(l->up[0], &c, WAIT_MS);

	cr_assert(rc == 1 && c == want, "%s: child sent %d '%c', want '%c' (child status %d)", what,
		  rc, c, want, rc == 1 ? -1 : wait_child(pid));
}

/* ---------------------------------------------------------------------- */
/* Fault 1: the reclaimer's plain store of FREE. */

struct reclaimer {
	const char *seg;
	struct link l;
};

/* Registers 16 names and unregisters them: the 16th unregistration fills
 * its retire batch and frees it, and stops right after taking the first
 * entry (reclaim_taken). Once released it finishes, says 'd' and stays
 * attached until told 'q'. */
static int reclaimer_child(void *arg)
{
	struct reclaimer *a = arg;
	dr_registry *r;
	char name[16], c;

	crash_arm("reclaim_taken", "stop", 0);
	if (open_small(a->seg, 16, 0, &r))
		return 10;
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "p.%d", i);
		if (dr_register(r, name, NULL, 0))
			return 11;
	}
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "p.%d", i);
		if (dr_unregister(r, name))
			return 12;
	}
	write_byte(a->l.up[1], 'd');
	if (read_byte_within(a->l.down[0], &c, WAIT_MS) != 1)
		return 13;
	dr_close(r);
	return 0;
}

/*
 * The reclaimer is paused between taking a retired entry and freeing it.
 * Another process fills the table meanwhile; it must not take that entry
 * from under the reclaimer (it would reuse it, and the reclaimer's late
 * stores would land on its live, linked name).
 */
Test(races, reclaimer_store_of_free_lands_on_a_reused_entry)
{
	const char *seg = seg_new("race1");
	struct reclaimer a = { .seg = seg };
	bool got[16] = { false };
	dr_registry *r;
	char name[16], msg[256];
	struct dr_entry e;
	pid_t pid;
	int n = 0, rc;

	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	link_init(&a.l);
	pid = spawn(reclaimer_child, &a);
	cr_assert_eq(wait_stopped(pid, WAIT_MS), 0, "the reclaimer never reached reclaim_taken");

	/* Fill the table while the reclaimer is paused. */
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		rc = dr_register(r, name, "t", 1);
		cr_assert(rc == 0 || rc == -ENOSPC || rc == -EBUSY, "register %s: %s", name,
			  dr_strerror(rc));
		got[i] = rc == 0;
		n += got[i];
	}
	cr_assert_geq(n, 15, "only %d names fit while one entry is being freed", n);

	kill(pid, SIGCONT);
	expect_byte(&a.l, 'd', pid, "reclaimer after release");

	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		if (!got[i])
			continue;
		rc = dr_whereis(r, name, &e);
		cr_assert_eq(rc, 0, "%s, registered while the reclaimer was paused, is gone: %s", name,
			     dr_strerror(rc));
		cr_assert_eq(e.pid, getpid());
	}
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check after the reclaimer resumed: %s", msg);
	/* The entry the reclaimer freed is usable now. */
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		if (!got[i])
			cr_assert_eq(dr_register(r, name, "t", 1), 0, "%s after the reclaimer resumed",
				     name);
	}
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		cr_assert_eq(dr_whereis(r, name, NULL), 0, "%s", name);
	}
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s", msg);

	write_byte(a.l.down[1], 'q');
	cr_assert_eq(wait_child(pid), 0);
	link_close(&a.l);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* Fault 2: ABA on the state word. */

struct finisher {
	const char *seg;
	struct link l;
	int nregistered;
	int last_rc;
};

/* Fills the table; its last registration finds the table full and looks
 * for marked entries to finish (finish_found), where it stops. Once
 * released, says 'd' with how it fared, and waits for 'q'. */
static int finisher_child(void *arg)
{
	struct finisher *a = arg;
	dr_registry *r;
	char name[16], c;
	int rc = 0;

	crash_arm("finish_found", "stop", 0);
	if (open_small(a->seg, 16, 0, &r))
		return 10;
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "p.%d", i);
		rc = dr_register(r, name, NULL, 0);
		if (rc)
			break;
		a->nregistered++;
	}
	a->last_rc = rc;
	write_byte(a->l.up[1], 'd');
	if (read_byte_within(a->l.down[0], &c, WAIT_MS) != 1)
		return 13;
	dr_close(r);
	return 0;
}

/*
 * A process that found a marked entry of a live owner R by index is paused
 * before it removes it. Meanwhile R's next registration finishes that
 * deletion itself, and the entry is freed and given to R's new name. The
 * paused process, released, must not take the new registration for the old
 * one and unlink it.
 */
Test(races, aba_on_the_state_word_unlinks_a_new_registration)
{
	const char *seg = seg_new("race2");
	struct finisher *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct dri_entry *victim;
	dr_registry *r;
	char msg[256], name[16];
	struct dr_entry e;
	uint8_t *base;
	size_t len;
	pid_t pid;
	int rc;

	cr_assert_neq(a, MAP_FAILED);
	a->seg = seg;
	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	cr_assert_eq(dr_register(r, "victim", "v", 1), 0);
	/* As an unregistration leaves it whose entry another process
	 * unlinked and died before retiring: marked, unlinked, still
	 * allocated to us. Only a scan by index can find it. */
	base = segmap_open(seg, &len);
	cr_assert_not_null(base);
	victim = segmap_entry(base, "victim");
	cr_assert_not_null(victim);
	segmap_mark_unlinked(base, victim);
	cr_assert_eq(dr_whereis(r, "victim", NULL), -ENOENT);

	link_init(&a->l);
	pid = spawn(finisher_child, a);
	cr_assert_eq(wait_stopped(pid, WAIT_MS), 0, "the finisher never reached finish_found");

	/* The table is full: 15 of the child's names and the marked entry. */
	rc = dr_register(r, "new", "n", 1);
	cr_assert(rc == 0 || rc == -EBUSY || rc == -ENOSPC, "register new: %s", dr_strerror(rc));
	if (rc == 0)
		cr_assert_eq(dr_whereis(r, "new", NULL), 0);

	kill(pid, SIGCONT);
	expect_byte(&a->l, 'd', pid, "finisher after release");

	if (rc == 0) {
		int w = dr_whereis(r, "new", &e);
		cr_assert_eq(w, 0, "\"new\", registered while the finisher was paused, is gone: %s",
			     dr_strerror(w));
		cr_assert_eq(e.pid, getpid());
	}
	for (int i = 0; i < a->nregistered; i++) {
		snprintf(name, sizeof(name), "p.%d", i);
		cr_assert_eq(dr_whereis(r, name, NULL), 0, "the finisher's %s is gone", name);
	}
	cr_assert(a->last_rc == 0 || a->last_rc == -ENOSPC || a->last_rc == -EBUSY,
		  "the finisher's last registration: %s", dr_strerror(a->last_rc));
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "dr_check: %s", msg);

	write_byte(a->l.down[1], 'q');
	cr_assert_eq(wait_child(pid), 0);
	link_close(&a->l);
	munmap(base, len);
	munmap(a, sizeof(*a));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* Fault 3: a reaper clears a live reader's epoch. */

struct readers {
	const char *seg;
	struct link dl, al, ll;
};

/* Takes a reader slot and waits to be killed. */
static int doomed_child(void *arg)
{
	struct readers *a = arg;
	dr_registry *r;
	char c;

	if (open_small(a->seg, 1, 4, &r))
		return 10;
	write_byte(a->dl.up[1], 'o');
	(void)read_byte_within(a->dl.down[0], &c, WAIT_MS);
	return 11;
}

/* Opens the segment; dr_open reaps reader slots, and stops at the first
 * dead owner it finds (reap_reader_checked). Says 'o' once open. */
static int reaper_child(void *arg)
{
	struct readers *a = arg;
	dr_registry *r;
	char c;

	crash_arm("reap_reader_checked", "stop", 0);
	if (open_small(a->seg, 1, 4, &r))
		return 10;
	write_byte(a->al.up[1], 'o');
	if (read_byte_within(a->al.down[0], &c, WAIT_MS) != 1)
		return 13;
	dr_close(r);
	return 0;
}

struct hold {
	struct readers *a;
	bool same;
};

/* Inside dr_foreach's read-side section: hold "victim" across the test's
 * unregister and register, then check its bytes did not change. */
static int hold_victim(const struct dr_name_info *info, void *arg)
{
	struct hold *h = arg;
	char c;

	if (info->name_len != 6 || memcmp(info->name, "victim", 6) != 0)
		return 0;
	write_byte(h->a->ll.up[1], 'i');
	if (read_byte_within(h->a->ll.down[0], &c, WAIT_MS) != 1)
		return 2;
	h->same = memcmp(info->name, "victim", 6) == 0;
	return 1;
}

static int holder_child(void *arg)
{
	struct readers *a = arg;
	struct hold h = { .a = a };
	dr_registry *r;
	int rc;

	if (open_small(a->seg, 1, 4, &r))
		return 10;
	rc = dr_foreach(r, hold_victim, &h);
	if (rc != 1)
		return 11;
	dr_close(r);
	return h.same ? 0 : 12;
}

/*
 * A reaper found a reader slot's owner dead and is paused before it frees
 * the slot. Another reaper frees it meanwhile, and a new reader takes it
 * and enters a read-side section. The first reaper, released, must leave
 * that section alone: the entry the reader holds must not be reused.
 */
Test(races, reaper_clears_a_live_readers_epoch)
{
	const char *seg = seg_new("race3");
	struct readers a = { .seg = seg };
	pid_t dpid, apid, lpid;
	struct dr_stats st;
	dr_registry *r;
	char msg[256];
	int rc;

	cr_assert_eq(open_small(seg, 1, 4, &r), 0);
	cr_assert_eq(dr_register(r, "victim", "v", 1), 0);
	link_init(&a.dl);
	link_init(&a.al);
	link_init(&a.ll);

	/* Reader slot 1: held by a process that dies. */
	dpid = spawn(doomed_child, &a);
	expect_byte(&a.dl, 'o', dpid, "doomed child");
	kill(dpid, SIGKILL);
	cr_assert_eq(wait_child(dpid), 128 + SIGKILL);

	/* Slot 2: the reaper, paused with slot 1's dead owner in hand. */
	apid = spawn(reaper_child, &a);
	cr_assert_eq(wait_stopped(apid, WAIT_MS), 0, "the reaper never reached reap_reader_checked");

	/* Another reaper frees slot 1; a new reader takes it and holds
	 * "victim" inside a read-side section. */
	cr_assert_eq(dr_reap(r, NULL), 0);
	lpid = spawn(holder_child, &a);
	expect_byte(&a.ll, 'i', lpid, "reader holding victim");

	kill(apid, SIGCONT);
	expect_byte(&a.al, 'o', apid, "reaper after release");

	cr_assert_eq(dr_stats(r, &st), 0);
	cr_assert_geq(st.readers_active, 1, "the reader inside dr_foreach is not counted as active");

	/* Unregister the held name and register another in its entry (the
	 * only one): that must wait for the reader, not reuse the entry. */
	cr_assert_eq(dr_unregister(r, "victim"), 0);
	rc = dr_register(r, "intruder", "x", 1);
	cr_assert(rc == -EBUSY, "register intruder while a reader holds the only entry: %s",
		  dr_strerror(rc));

	write_byte(a.ll.down[1], 'g');
	rc = wait_child(lpid);
	cr_assert_eq(rc, 0, "the reader saw its entry reused under it (status %d)", rc);
	cr_assert_eq(dr_register(r, "intruder", "x", 1), 0, "once the reader left");
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s", msg);

	write_byte(a.al.down[1], 'q');
	cr_assert_eq(wait_child(apid), 0);
	link_close(&a.dl);
	link_close(&a.al);
	link_close(&a.ll);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* Fault 4: a reader slot lost for good. */

struct claimer {
	const char *seg;
	const char *mode;
	struct link l;
};

/* Opens the segment (which claims a reader slot) with reader_claiming
 * armed; in stop mode, once released, registers "k" and says 'k'. */
static int claimer_child(void *arg)
{
	struct claimer *a = arg;
	dr_registry *r;
	char c;

	crash_arm("reader_claiming", a->mode, 0);
	if (open_small(a->seg, 16, 2, &r))
		return 10;
	if (dr_register(r, "k", NULL, 0))
		return 11;
	write_byte(a->l.up[1], 'k');
	if (read_byte_within(a->l.down[0], &c, WAIT_MS) != 1)
		return 13;
	dr_close(r);
	return 0;
}

static int open_close_child(void *arg)
{
	const char *seg = arg;
	dr_registry *r;
	int rc = open_small(seg, 16, 2, &r);

	if (rc)
		return rc == -EUSERS ? 20 : 21;
	if (dr_register(r, "o", NULL, 0))
		return 22;
	dr_close(r);
	return 0;
}

/*
 * A process killed in the middle of claiming a reader slot must not leave
 * the slot owned where no reaper looks: with two reader slots, one held by
 * the test, every later process must still be able to open the segment.
 */
Test(races, reader_slot_lost_when_killed_while_claiming)
{
	const char *seg = seg_new("race4");
	struct claimer a = { .seg = seg, .mode = "kill" };
	dr_registry *r;
	char msg[256];
	unsigned n;
	pid_t pid;
	int st;

	cr_assert_eq(open_small(seg, 16, 2, &r), 0);
	link_init(&a.l);
	pid = spawn(claimer_child, &a);
	cr_assert_eq(wait_child(pid), 128 + SIGKILL, "the claimer was not killed at reader_claiming");

	cr_assert_eq(dr_reap(r, &n), 0);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "dr_check after dr_reap: %s", msg);
	for (int i = 0; i < 3; i++) {
		st = wait_child(spawn(open_close_child, (void *)seg));
		cr_assert_eq(st, 0, "open %d after the claimer died: status %d (20: -EUSERS)", i, st);
	}
	link_close(&a.l);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* A claim paused half-way is not a fault: dr_check must not report it. */
Test(races, reader_claim_in_progress_is_not_reported_by_check)
{
	const char *seg = seg_new("race4p");
	struct claimer a = { .seg = seg, .mode = "stop" };
	dr_registry *r;
	char msg[256];
	pid_t pid;
	int rc;

	cr_assert_eq(open_small(seg, 16, 2, &r), 0);
	link_init(&a.l);
	pid = spawn(claimer_child, &a);
	cr_assert_eq(wait_stopped(pid, WAIT_MS), 0, "the claimer never reached reader_claiming");
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check during a claim: %s", msg);

	kill(pid, SIGCONT);
	expect_byte(&a.l, 'k', pid, "claimer after release");
	cr_assert_eq(dr_whereis(r, "k", NULL), 0);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s", msg);
	write_byte(a.l.down[1], 'q');
	cr_assert_eq(wait_child(pid), 0);
	link_close(&a.l);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}
