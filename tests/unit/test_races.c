/*
 * test_races.c - regression tests for the races an independent review found
 * in the table's reclamation and reader slots (issue "four races"). Each
 * one pauses a process at the exact step with a crash point in stop mode
 * (crashpoint.h: it raises SIGSTOP there), lets other processes run the
 * racing path meanwhile, releases it with SIGCONT and checks that nothing
 * anyone committed was lost or corrupted. The fourth kills the process at
 * its step instead.
 *
 * The tests after those reproduce five faults a second review found in the
 * fixed protocol: the allocation generation wrapping inside one read-side
 * section, a handle whose liveness lock was lost writing a reader slot and
 * an entry it no longer owns, and two fork() races with dr_open() and with
 * the handle's mutex.
 *
 * Linked with the crash-point build of the library (distreg_crash); the
 * test process itself takes part as an ordinary process, and only the
 * children arm a point (crash_arm() in unit.h).
 */
#include <dirent.h>
#include <sched.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <sys/mman.h>
#include <time.h>

#include "unit.h"

#include "segmap.h"

TestSuite(races, .timeout = UNIT_TIMEOUT, .fini = unit_fini);

/* How long a child may take to reach its point or answer: generous, since
 * only a broken test waits that long. */

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

/* ---------------------------------------------------------------------- */
/* Fault 1: the reclaimer's plain store of FREE. */

struct reclaimer {
	const char *seg;
	struct link l;
};

/* Opens seg with 16 entries, registers p.0 ... p.15 and unregisters the
 * first nunreg of them (16: the batch of 16 retirements is full, and its
 * grace period makes the entries reusable). 0, or the child's exit code
 * for what failed (10 open, 11 register, 12 unregister). */
static int open_and_churn(const char *seg, int nunreg, dr_registry **r)
{
	char name[16];

	if (open_small(seg, 16, 0, r))
		return 10;
	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "p.%d", i);
		if (dr_register(*r, name, NULL, 0))
			return 11;
	}
	for (int i = 0; i < nunreg; i++) {
		snprintf(name, sizeof(name), "p.%d", i);
		if (dr_unregister(*r, name))
			return 12;
	}
	return 0;
}

/* Registers 16 names and unregisters them: the 16th unregistration fills
 * its retire batch, whose grace period makes the 16 entries reusable; then
 * it closes, which frees them, and stops right after taking the first
 * (reclaim_taken). Once released it finishes, says 'd' and waits until
 * told 'q'. */
static int reclaimer_child(void *arg)
{
	struct reclaimer *a = arg;
	dr_registry *r;
	char c;
	int rc;

	crash_arm("reclaim_taken", "stop", 0);
	rc = open_and_churn(a->seg, 16, &r);
	if (rc)
		return rc;
	dr_close(r);
	write_byte(a->l.up[1], 'd');
	if (read_byte_within(a->l.down[0], &c, WAIT_MS) != 1)
		return 13;
	return 0;
}

/* Registers t.0 ... t.15 (each may also find no entry: -ENOSPC, -EBUSY);
 * got says which got one. Returns how many did. */
static int fill_t_names(dr_registry *r, bool got[16])
{
	char name[16];
	int n = 0;

	for (int i = 0; i < 16; i++) {
		int rc;

		snprintf(name, sizeof(name), "t.%d", i);
		rc = dr_register(r, name, "t", 1);
		cr_assert(rc == 0 || rc == -ENOSPC || rc == -EBUSY, "register %s: %s", name,
			  dr_strerror(rc));
		got[i] = rc == 0;
		n += got[i];
	}
	return n;
}

/* Every t.i that got says was registered is still ours, and the table is
 * whole, after what resumed (who). */
static void assert_t_names_kept(dr_registry *r, const bool got[16], const char *who)
{
	char name[16], msg[256];
	struct dr_entry e;
	int rc;

	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		if (!got[i])
			continue;
		rc = dr_whereis(r, name, &e);
		cr_assert_eq(rc, 0, "%s, registered while %s was paused, is gone: %s", name, who,
			     dr_strerror(rc));
		cr_assert_eq(e.pid, getpid(), "%s now has pid %d", name, (int)e.pid);
	}
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(rc, 0, "dr_check after %s resumed: %s", who, msg);
}

/* The t.i that found no entry then find one now: what who held is free. */
static void assert_t_names_fill_up(dr_registry *r, const bool got[16], const char *who)
{
	char name[16], msg[256];

	for (int i = 0; i < 16; i++) {
		snprintf(name, sizeof(name), "t.%d", i);
		if (!got[i])
			cr_assert_eq(dr_register(r, name, "t", 1), 0, "%s after %s resumed", name,
				     who);
		cr_assert_eq(dr_whereis(r, name, NULL), 0, "%s", name);
	}
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "%s", msg);
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
	pid_t pid;
	int n;

	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	link_init(&a.l);
	pid = spawn(reclaimer_child, &a);
	cr_assert_eq(wait_stopped(pid, WAIT_MS), 0, "the reclaimer never reached reclaim_taken");

	/* Fill the table while the reclaimer is paused. */
	n = fill_t_names(r, got);
	cr_assert_geq(n, 15, "only %d names fit while one entry is being freed", n);

	kill(pid, SIGCONT);
	expect_byte(&a.l, 'd', pid, "reclaimer after release");
	assert_t_names_kept(r, got, "the reclaimer");
	/* The entry the reclaimer freed is usable now. */
	assert_t_names_fill_up(r, got, "the reclaimer");

	write_byte(a.l.down[1], 'q');
	cr_assert_eq(wait_child(pid), 0);
	link_close(&a.l);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/*
 * The same window on the allocator's side. Registers 16 names and
 * unregisters them (the grace period of its full batch makes the 16
 * entries reusable), then registers p.x, which takes one of them back from
 * RETIRED and stops right after (reclaim_taken, in dri_take_reusable). Once
 * released it finishes that registration and says 'r' with how it went;
 * told 'u', it unregisters p.x and says 'd' with how that went; then it
 * waits for 'q'.
 */
static int reuser_child(void *arg)
{
	struct reclaimer *a = arg;
	dr_registry *r;
	char c;
	int rc = open_and_churn(a->seg, 16, &r);

	if (rc)
		return rc;
	crash_arm("reclaim_taken", "stop", 0);
	rc = dr_register(r, "p.x", "x", 1);
	write_byte(a->l.up[1], rc == 0 ? 'r' : 'R');
	if (read_byte_within(a->l.down[0], &c, WAIT_MS) != 1)
		return 13;
	rc = dr_unregister(r, "p.x");
	write_byte(a->l.up[1], rc == 0 ? 'd' : 'D');
	if (read_byte_within(a->l.down[0], &c, WAIT_MS) != 1)
		return 13;
	dr_close(r);
	return 0;
}

/*
 * The allocator is paused between taking a reusable entry (still marked
 * deleted: its link is reset after) and storing it as allocated. Another
 * process fills the table meanwhile: its allocator reaps, reclaims and
 * finishes half-done deletions, and must leave that entry alone (were the
 * entry ALLOC with its old marked link, finish_deletes would retire it and
 * reuse it, and the paused registration would then link a name into an
 * entry someone else holds).
 */
Test(races, an_entry_taken_back_for_reuse_is_not_taken_from_under_its_taker)
{
	const char *seg = seg_new("reuse");
	struct reclaimer a = { .seg = seg };
	bool got[16] = { false };
	dr_registry *r;
	char msg[256];
	struct dr_entry e;
	pid_t pid;
	int n;

	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	link_init(&a.l);
	pid = spawn(reuser_child, &a);
	cr_assert_eq(wait_stopped(pid, WAIT_MS), 0, "the reuser never reached reclaim_taken");

	n = fill_t_names(r, got);
	cr_assert_eq(n, 15, "%d names fit while one entry is being taken back", n);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "dr_check while the reuser is paused: %s",
		     msg);

	kill(pid, SIGCONT);
	expect_byte(&a.l, 'r', pid, "the reuser's registration of p.x");
	cr_assert_eq(dr_whereis(r, "p.x", &e), 0);
	cr_assert_eq(e.pid, pid);
	assert_t_names_kept(r, got, "the reuser");
	write_byte(a.l.down[1], 'u');
	expect_byte(&a.l, 'd', pid, "the reuser's unregistration of p.x");
	/* Its entry, retired again, goes to whoever needs it. */
	assert_t_names_fill_up(r, got, "the reuser");

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

/* A reader that holds "victim" inside dr_foreach's read-side section
 * until told to go on ('g' on l), then checks its bytes did not change. */
struct holder {
	const char *seg;
	struct link *l;
	bool same;
};

static int hold_victim(const struct dr_name_info *info, void *arg)
{
	struct holder *h = arg;
	char c;

	if (info->name_len != 6 || memcmp(info->name, "victim", 6) != 0)
		return 0;
	write_byte(h->l->up[1], 'i');
	if (read_byte_within(h->l->down[0], &c, WAIT_MS) != 1)
		return 2;
	h->same = memcmp(info->name, "victim", 6) == 0;
	return 1;
}

static int holder_child(void *arg)
{
	struct holder *h = arg;
	dr_registry *r;
	int rc;

	if (open_small(h->seg, 1, 4, &r))
		return 10;
	rc = dr_foreach(r, hold_victim, h);
	if (rc != 1)
		return 11;
	dr_close(r);
	return h->same ? 0 : 12;
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
	struct holder h = { .seg = seg, .l = &a.ll };
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
	lpid = spawn(holder_child, &h);
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

/* ====================================================================== */
/* The second review */

/* The process's descriptors open on the segment file, lowest first; returns
 * how many (at most max). */
static int seg_fds(const char *seg, int *fds, int max)
{
	const char *want = dr_test_seg_path(seg);
	char path[320], target[512];
	struct dirent *d;
	DIR *dir = opendir("/proc/self/fd");
	int n = 0;

	if (!dir)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		ssize_t k;

		if (d->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%s", d->d_name);
		k = readlink(path, target, sizeof(target) - 1);
		if (k <= 0)
			continue;
		target[k] = 0;
		if (strcmp(target, want) == 0 && n < max)
			fds[n++] = atoi(d->d_name);
	}
	closedir(dir);
	return n;
}

/* Close the handle's liveness descriptor behind the library's back (a
 * daemon's close-everything sweep): the only descriptor of this process
 * open on the segment file once dr_open() returned. */
static int drop_lock_fd(const char *seg)
{
	int fds[4];
	int n = seg_fds(seg, fds, 4);

	if (n != 1)
		return -1;
	return close(fds[0]);
}

static uint64_t state_of(const char *seg, const char *name, uint32_t *idx)
{
	size_t len;
	uint8_t *base = segmap_open(seg, &len);
	const struct dri_header *h = (const struct dri_header *)base;
	struct dri_entry *e;
	uint64_t s = 0;

	if (!base)
		return 0;
	e = segmap_entry(base, name);
	if (e) {
		*idx = (uint32_t)(e - (struct dri_entry *)(base + h->off_entries));
		s = ((uint64_t *)(base + h->off_states))[*idx];
	}
	munmap(base, len);
	return s;
}

static uint64_t state_at(const char *seg, uint32_t idx)
{
	size_t len;
	uint8_t *base = segmap_open(seg, &len);
	const struct dri_header *h = (const struct dri_header *)base;
	uint64_t s;

	if (!base)
		return 0;
	s = ((uint64_t *)(base + h->off_states))[idx];
	munmap(base, len);
	return s;
}

/* ====================================================================== */
/*
 * Finding 1: the 22-bit allocation generation wraps inside ONE read-side
 * section, because an entry that was never published is given back with a
 * plain store of FREE (dri_free_unpublished) and no grace period. Every
 * dr_register() of a name the caller already holds allocates an entry,
 * finds its own name, updates the value and gives the entry back: 2^22 such
 * calls bring one entry's state word back to the very ALLOC word a paused
 * finish_deletes() loaded, and dri_delete_exact() then deletes the owner's
 * NEW registration.
 */

struct aba {
	const char *seg;
	struct link rl, fl;
	int r_rc;        /* the force-unregister's result */
	int f_rc;        /* the finisher's last registration */
	int f_n;         /* names the finisher registered */
};

/* R: force-unregisters "victim"; stops in dri_retire after loading the
 * epoch and before its CAS (retire_loaded). */
static int aba_retirer(void *arg)
{
	struct aba *a = arg;
	dr_registry *r;
	char c;

	crash_arm("retire_loaded", "stop", 0);
	if (open_small(a->seg, 4, 0, &r))
		return 10;
	a->r_rc = dr_unregister_force(r, "victim");
	write_byte(a->rl.up[1], 'd');
	if (read_byte_within(a->rl.down[0], &c, WAIT_MS) != 1)
		return 13;
	dr_close(r);
	return 0;
}

/* F: fills the table; its third registration finds it full and stops in
 * finish_deletes(), inside its read-side section, with the state word of
 * the marked "victim" entry loaded (finish_found). */
static int aba_finisher(void *arg)
{
	struct aba *a = arg;
	dr_registry *r;
	char name[16], c;
	int rc = 0;

	crash_arm("finish_found", "stop", 0);
	if (open_small(a->seg, 4, 0, &r))
		return 10;
	for (int i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "f.%d", i);
		rc = dr_register(r, name, NULL, 0);
		if (rc)
			break;
		a->f_n++;
	}
	a->f_rc = rc;
	write_byte(a->fl.up[1], 'd');
	if (read_byte_within(a->fl.down[0], &c, WAIT_MS) != 1)
		return 13;
	dr_close(r);
	return 0;
}

Test(races, alloc_generation_wraps_inside_one_section_and_a_new_name_is_deleted)
{
	const char *seg = seg_new("bk_aba");
	struct aba *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
			     -1, 0);
	uint64_t held, now;
	uint32_t x = 0, y = 0;
	dr_registry *r;
	pid_t rpid, fpid;
	char msg[256];
	int rc, w;

	cr_assert_neq(a, MAP_FAILED);
	a->seg = seg;
	link_init(&a->rl);
	link_init(&a->fl);
	cr_assert_eq(open_small(seg, 4, 0, &r), 0);
	cr_assert_eq(dr_register(r, "victim", "v", 1), 0);
	cr_assert_eq(dr_register(r, "keep", "k", 1), 0);
	held = state_of(seg, "victim", &x);

	/* R unlinks "victim" and stops before it retires it. */
	rpid = spawn(aba_retirer, a);
	cr_assert_eq(wait_stopped(rpid, WAIT_MS), 0, "R never reached retire_loaded");
	cr_assert_eq(dr_whereis(r, "victim", NULL), -ENOENT);

	/* F fills the table (f.0, f.1), finds it full at f.2, bumps the epoch
	 * in its reclaim passes, and stops in finish_deletes() holding
	 * victim's ALLOC word, inside a section entered after R's epoch. */
	fpid = spawn(aba_finisher, a);
	cr_assert_eq(wait_stopped(fpid, WAIT_MS), 0, "F never reached finish_found");
	cr_assert_eq(state_at(seg, x), held, "victim's entry changed before F loaded it");

	/* R retires the entry with its old epoch, which F's section does not
	 * hold back; a reap frees it. */
	kill(rpid, SIGCONT);
	expect_byte(&a->rl, 'd', rpid, "R after release");
	cr_assert_eq(a->r_rc, 0, "force unregister: %s", dr_strerror(a->r_rc));
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(DRI_ST_TAG(state_at(seg, x)), DRI_TAG_FREE, "victim's entry was not freed");

	/* Update our own name 2^22 - 1 times: each call takes the only free
	 * entry (victim's) and gives it back unpublished, a generation each. */
	for (uint32_t i = 0; i < (1u << 22) - 1; i++) {
		rc = dr_register(r, "keep", &i, sizeof(i));
		if (rc)
			cr_assert_fail("update %u of keep: %s", i, dr_strerror(rc));
	}
	/* A new registration: its entry's state is again the word F holds. */
	cr_assert_eq(dr_register(r, "fresh", "new", 3), 0);
	now = state_of(seg, "fresh", &y);
	cr_log_info("victim's ALLOC word held by F %#llx, fresh's now %#llx (entry %u, %u)",
		    (unsigned long long)held, (unsigned long long)now, x, y);

	kill(fpid, SIGCONT);
	expect_byte(&a->fl, 'd', fpid, "F after release");

	w = dr_whereis(r, "fresh", NULL);
	rc = dr_check(r, msg, sizeof(msg));
	cr_assert_eq(w, 0,
		     "\"fresh\", registered by a live process while F was paused, is gone: %s "
		     "(F held %#llx, fresh's entry %u had %#llx; F's last register: %s)",
		     dr_strerror(w), (unsigned long long)held, y, (unsigned long long)now,
		     dr_strerror(a->f_rc));
	cr_assert_eq(dr_whereis(r, "keep", NULL), 0);
	cr_assert_eq(rc, 0, "dr_check: %s", msg);

	write_byte(a->rl.down[1], 'q');
	write_byte(a->fl.down[1], 'q');
	cr_assert_eq(wait_child(rpid), 0);
	cr_assert_eq(wait_child(fpid), 0);
	link_close(&a->rl);
	link_close(&a->fl);
	munmap(a, sizeof(*a));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ====================================================================== */
/*
 * Finding 2: a handle whose liveness lock was lost (the documented -ENOLCK
 * case) keeps writing the reader slot it held. Others reap that slot (its
 * owner looks dead) and give it to a new reader; the buried handle's next
 * lookup, or its dr_close() (the documented recovery), stores 0 in that
 * slot's epoch and frees it: the new reader's section is no longer seen and
 * the entry it holds is reused under it.
 */

struct zomb {
	const char *seg;
	struct link zl, ll;
};

/* Z: opens (reader slot 1), loses its lock descriptor, waits for 'x', then
 * dr_close()s its handle. */
static int zombie_child(void *arg)
{
	struct zomb *a = arg;
	dr_registry *r;
	char c;

	if (open_small(a->seg, 1, 4, &r))
		return 10;
	if (dr_whereis(r, "victim", NULL))
		return 11;
	if (drop_lock_fd(a->seg))
		return 12;
	write_byte(a->zl.up[1], 'c');
	if (read_byte_within(a->zl.down[0], &c, WAIT_MS) != 1)
		return 13;
	if (dr_register(r, "z", NULL, 0) != -ENOLCK)
		return 14; /* others have buried it: writes must fail */
	dr_close(r);
	write_byte(a->zl.up[1], 'd');
	if (read_byte_within(a->zl.down[0], &c, WAIT_MS) != 1)
		return 15;
	return 0;
}

Test(races, buried_handle_clobbers_the_reader_slot_it_lost)
{
	const char *seg = seg_new("bk_zr");
	struct zomb a = { .seg = seg };
	struct holder h = { .seg = seg, .l = &a.ll };
	pid_t zpid, lpid;
	dr_registry *r;
	int rc, lrc;

	link_init(&a.zl);
	link_init(&a.ll);
	cr_assert_eq(open_small(seg, 1, 4, &r), 0); /* reader slot 0 */
	cr_assert_eq(dr_register(r, "victim", "v", 1), 0);

	zpid = spawn(zombie_child, &a); /* reader slot 1 */
	expect_byte(&a.zl, 'c', zpid, "Z after dropping its lock");
	/* Z looks dead: a reap buries it and frees its reader slot. */
	cr_assert_eq(dr_reap(r, NULL), 0);

	/* L takes the freed reader slot and holds "victim". */
	lpid = spawn(holder_child, &h);
	expect_byte(&a.ll, 'i', lpid, "L holding victim");

	/* Z, told -ENOLCK, closes its handle as the contract says. */
	write_byte(a.zl.down[1], 'x');
	expect_byte(&a.zl, 'd', zpid, "Z after dr_close");

	/* The only entry is held by L: reuse must wait for it (-EBUSY). */
	cr_assert_eq(dr_unregister(r, "victim"), 0);
	rc = dr_register(r, "intruder", "x", 1);
	write_byte(a.ll.down[1], 'g');
	lrc = wait_child(lpid);
	cr_assert(rc == -EBUSY && lrc == 0,
		  "register intruder while live reader L holds the only entry: %s (want -EBUSY); "
		  "L saw its entry reused under it: %s (status %d)",
		  dr_strerror(rc), lrc == 12 ? "yes" : "no", lrc);

	write_byte(a.zl.down[1], 'q');
	cr_assert_eq(wait_child(zpid), 0);
	link_close(&a.zl);
	link_close(&a.ll);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ====================================================================== */
/*
 * Finding 3: the same buried handle, in dr_close(), frees its retired batch
 * (thread_free -> dri_reuse_flush) and takes an entry as FREEING under its
 * dead owner id. A reaper sees FREEING of a dead owner, takes it over,
 * frees it, and the entry is reused for a live name; the buried handle then
 * stores next = 0 and FREE over that live, linked entry.
 */

/* Below, with the windows after its checks that a fourth review found. */
static void late_store_after_burial(const char *tag, const char *point, bool close);

/* Stopped at reclaim_taken, right after the CAS that takes the entry, in
 * the dr_close() of a handle whose lock is gone. Two checks stand in the
 * way now: take_retired()'s, which keeps it from resetting the link too,
 * and dri_entry_reset()'s before the FREE store; this fails only without
 * both (the link it would reset is usually already 0: the last of its
 * chain). */
Test(races, buried_handle_frees_an_entry_a_reaper_already_reused)
{
	late_store_after_burial("bk_zf", "reclaim_taken", true);
}

/*
 * The windows after those checks (a fourth review, of reusing entries): a
 * buried handle stopped after it took an entry and reset its link, before
 * its store of ALLOC (taking a reusable entry back, reuse_taken) or of FREE
 * (freeing one at dr_close, reclaim_freeing). A reaper takes the entry over
 * and frees it, and a live process reuses it; the buried handle, resumed,
 * must store nothing over it.
 */

struct late {
	const char *seg;
	const char *point;
	bool close;         /* stop in dr_close() (freeing), else in dr_register() */
	struct link zl;
};

/* Z: registers 16 names and unregisters them (16 for a reuse: its batch is
 * full and all 16 become reusable; 15 for a close, which frees them), loses
 * its lock descriptor, and on 'x' registers "z" or closes, stopping at
 * a->point; says 'd' if the register succeeded (or the close returned),
 * 'D' if the register failed, then waits for 'q'. */
static int late_writer(void *arg)
{
	struct late *a = arg;
	dr_registry *r;
	char c;
	int rc = open_and_churn(a->seg, a->close ? 15 : 16, &r);

	if (rc)
		return rc;
	if (drop_lock_fd(a->seg))
		return 13;
	write_byte(a->zl.up[1], 'c');
	if (read_byte_within(a->zl.down[0], &c, WAIT_MS) != 1)
		return 14;
	crash_arm(a->point, "stop", 0);
	if (a->close)
		dr_close(r);
	else
		rc = dr_register(r, "z", "z", 1);
	write_byte(a->zl.up[1], rc == 0 ? 'd' : 'D');
	if (read_byte_within(a->zl.down[0], &c, WAIT_MS) != 1)
		return 15;
	return 0;
}

static void late_store_after_burial(const char *tag, const char *point, bool close)
{
	const char *seg = seg_new(tag);
	struct late a = { .seg = seg, .point = point, .close = close };
	bool got[16] = { false };
	char msg[256] = "", c = 0;
	dr_registry *r;
	pid_t zpid;

	link_init(&a.zl);
	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	zpid = spawn(late_writer, &a);
	expect_byte(&a.zl, 'c', zpid, "Z after dropping its lock");
	write_byte(a.zl.down[1], 'x');
	cr_assert_eq(wait_stopped(zpid, WAIT_MS), 0, "Z never reached %s", point);

	/* Z looks dead: the reap buries it, takes its FREEING entry over and
	 * frees it; our registrations reuse every entry, that one included. */
	cr_assert_eq(dr_reap(r, NULL), 0);
	cr_assert_eq(fill_t_names(r, got), 16);
	cr_assert_eq(dr_check(r, msg, sizeof(msg)), 0, "dr_check before Z resumes: %s", msg);

	kill(zpid, SIGCONT);
	cr_assert_eq(read_byte_within(a.zl.up[0], &c, WAIT_MS), 1, "Z did not answer");
	if (!close)
		cr_assert_eq(c, 'D', "the buried Z's registration succeeded");
	assert_t_names_kept(r, got, point);
	cr_assert_eq(dr_whereis(r, "z", NULL), -ENOENT);
	cr_assert_eq(dr_register(r, "t.16", "t", 1), -ENOSPC, "a 17th name in a table of 16");

	write_byte(a.zl.down[1], 'q');
	cr_assert_eq(wait_child(zpid), 0);
	link_close(&a.zl);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(races, a_buried_handle_taking_an_entry_back_stores_no_alloc_over_its_reuse)
{
	late_store_after_burial("late_reuse", "reuse_taken", false);
}

Test(races, a_buried_handle_freeing_an_entry_stores_no_free_over_its_reuse)
{
	late_store_after_burial("late_free", "reclaim_freeing", true);
}

/* ====================================================================== */
/*
 * Finding 4: fork() in one thread while another is inside dr_open(),
 * between own_lock_fd()'s open() and its r->fd = fd. The child inherits the
 * new descriptor, which the atfork handler does not know yet; the parent
 * then takes its liveness lock on that shared description. When the parent
 * dies, the child's copy keeps the lock: the dead parent's names look alive
 * for as long as the child lives, and nobody can take them over or reap
 * them.
 */

struct forkopen {
	const char *seg;
	struct link l;
	pid_t grandchild;
	dr_registry *r;
	int open_rc;
};

static void *opener_thread(void *arg)
{
	struct forkopen *a = arg;

	a->open_rc = open_small(a->seg, 16, 0, &a->r);
	return NULL;
}

static int count_alive(const struct dr_name_info *info, void *arg)
{
	*(size_t *)arg += info->alive;
	return 0;
}

/* The grandchild: an ordinary worker forked by a multi-threaded service;
 * it never touches the registry. */
static int idle_worker(struct forkopen *a)
{
	char c;

	(void)read_byte(a->l.down[0], &c);
	return 0;
}

static int forking_service(void *arg)
{
	struct forkopen *a = arg;
	pthread_t th;
	int fds[4];
	pid_t g;

	/* The opener pauses 1 s in the window; we fork as soon as the second
	 * descriptor on the segment (the lock descriptor) exists. */
	crash_arm("lockfd_opened", "sleep:1000", 0);
	if (pthread_create(&th, NULL, opener_thread, a))
		return 10;
	for (int i = 0; seg_fds(a->seg, fds, 4) < 2; i++) {
		if (i > 2000)
			return 11;
		usleep(1000);
	}
	g = fork();
	if (g == 0)
		_exit(idle_worker(a));
	a->grandchild = g;
	pthread_join(th, NULL);
	if (a->open_rc)
		return 12;
	if (dr_register(a->r, "held", "h", 1))
		return 13;
	write_byte(a->l.up[1], 'r');
	/* The service crashes. */
	kill(getpid(), SIGKILL);
	return 14;
}

Test(races, fork_during_dr_open_keeps_a_dead_parents_names_alive)
{
	const char *seg = seg_new("bk_fo");
	struct forkopen *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	dr_registry *r;
	unsigned n = 0;
	pid_t pid;
	int rc, st;

	cr_assert_neq(a, MAP_FAILED);
	a->seg = seg;
	link_init(&a->l);
	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	pid = spawn(forking_service, a);
	expect_byte(&a->l, 'r', pid, "service registered");
	st = wait_child(pid);
	cr_assert_eq(st, 128 + SIGKILL, "service status %d", st);
	cr_assert_gt(a->grandchild, 0);

	/* The service is dead: its name must be ours for the taking. */
	cr_assert_eq(dr_reap(r, &n), 0);
	rc = dr_register(r, "held", "mine", 4);

	/* Clean up first (the assertion ends the test). */
	write_byte(a->l.down[1], 'q');
	waitpid(a->grandchild, NULL, 0);
	cr_assert_eq(rc, 0,
		     "the dead service's name cannot be taken over while an unrelated child it "
		     "forked lives: %s (dr_reap reaped %u names)",
		     dr_strerror(rc), n);
	link_close(&a->l);
	munmap(a, sizeof(*a));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ====================================================================== */
/*
 * Finding 5: fork() while another thread holds the handle's private mutex
 * r->lock (here: its first call claims a reader slot and links its thread
 * state under r->lock). The child inherits the mutex locked by a thread it
 * does not have; dr_close() on the inherited handle, which the contract
 * says "only frees the child's memory", blocks for ever in
 * dri_thread_release_all().
 */

struct forklock {
	const char *seg;
	dr_registry *r;
	struct link l;
};

static void *first_lookup(void *arg)
{
	struct forklock *a = arg;

	(void)dr_whereis(a->r, "x", NULL);
	return NULL;
}

static int locked_fork_service(void *arg)
{
	struct forklock *a = arg;
	pthread_t th;
	pid_t g;
	int st;

	if (open_small(a->seg, 16, 0, &a->r))
		return 10;
	crash_arm("thread_listing", "sleep:1000", 0);
	if (pthread_create(&th, NULL, first_lookup, a))
		return 11;
	/* Fork once the other thread holds r->lock. */
	for (int i = 0; pthread_mutex_trylock(&a->r->lock) == 0; i++) {
		pthread_mutex_unlock(&a->r->lock);
		if (i > 2000)
			return 12;
		usleep(1000);
	}
	write_byte(a->l.up[1], '1');
	g = fork();
	if (g == 0) {
		/* The child: drop the inherited handle as documented. */
		dr_close(a->r);
		write_byte(a->l.up[1], 'z');
		_exit(0);
	}
	if (g < 0)
		return 13;
	pthread_join(th, NULL);
	/* Report the child's fate: 'z' comes from the child if it closed. */
	for (int i = 0; i < 1000; i++) {
		if (waitpid(g, &st, WNOHANG) == g)
			return 0;
		usleep(1000);
	}
	kill(g, SIGKILL);
	waitpid(g, &st, 0);
	return 20; /* the child hung in dr_close() */
}

Test(races, fork_while_handle_mutex_held_hangs_the_childs_dr_close)
{
	const char *seg = seg_new("bk_fl");
	struct forklock a = { .seg = seg };
	char c = 0;
	pid_t pid;
	int st, rc;

	link_init(&a.l);
	pid = spawn(locked_fork_service, &a);
	expect_byte(&a.l, '1', pid, "service about to fork");
	st = wait_child(pid);
	rc = read_byte_within(a.l.up[0], &c, 10);
	cr_assert(st == 0 && rc == 1 && c == 'z',
		  "dr_close() of the inherited handle in a forked child did not return within 1 s "
		  "after the parent's thread released the mutex (service status %d)",
		  st);
	link_close(&a.l);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* Owner ids come back after 2^24 - 1 attachments of one process slot. */

static int register_and_die(void *arg)
{
	dr_registry *r;

	if (open_small(arg, 16, 0, &r) || dr_register(r, "old", "a", 1))
		return 10;
	raise(SIGKILL);
	return 11;
}

struct wrapped {
	const char *seg;
	int whereis_old, register_old;
	pid_t old_pid;
	uint32_t readers;
};

static int open_after_wrap(void *arg)
{
	struct wrapped *w = arg;
	struct dr_options o = {
		.segment = w->seg,
		.max_procs = UNIT_MAX_PROCS,
		.max_threads = UNIT_MAX_THREADS,
		.flags = DR_OPEN_NOREAP, /* as shmdump opens: no general reaping */
	};
	struct dr_stats st;
	struct dr_entry e;
	dr_registry *r;

	if (dr_open(&o, &r))
		return 10;
	w->whereis_old = dr_whereis(r, "old", &e);
	if (w->whereis_old == 0)
		w->old_pid = e.pid;
	if (dr_stats(r, &st))
		return 11;
	w->readers = st.readers;
	w->register_old = dr_register(r, "old", "b", 1);
	dr_close(r);
	return 0;
}

/*
 * A process dies holding a name; its process slot is then attached 2^24 - 1
 * more times (written here by hand) and once again: the new holder's owner
 * id is the dead one's. It must not take the dead process's name, or its
 * reader slot, for its own, even when it opens without reaping.
 */
Test(races, process_slot_generation_wrap_adopts_a_dead_owners_names)
{
	const char *seg = seg_new("wrap");
	struct wrapped *w = mmap(NULL, sizeof(*w), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct dri_proc *procs;
	struct dr_entry e;
	dr_registry *r;
	uint8_t *base;
	size_t len;
	uint32_t slot = UNIT_MAX_PROCS;

	cr_assert_neq(w, MAP_FAILED);
	w->seg = seg;
	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	cr_assert_eq(wait_child(spawn(register_and_die, (void *)seg)), 128 + SIGKILL);
	cr_assert_eq(dr_whereis(r, "old", &e), 0);

	/* The dead process's slot, as 2^24 - 1 later attachments leave it. */
	base = segmap_open(seg, &len);
	cr_assert_not_null(base);
	procs = (struct dri_proc *)(base + ((struct dri_header *)base)->off_procs);
	for (uint32_t i = 0; i < UNIT_MAX_PROCS; i++)
		if (procs[i].pid == e.pid)
			slot = i;
	cr_assert_lt(slot, UNIT_MAX_PROCS);
	cr_assert_eq(DRI_PROC_GEN(procs[slot].word), 1);
	procs[slot].word = (uint64_t)DRI_PROC_GEN_MASK << 1;
	munmap(base, len);

	cr_assert_eq(wait_child(spawn(open_after_wrap, w)), 0);
	cr_assert_eq(w->whereis_old, -ENOENT,
		     "the new holder of the dead owner's id still sees its name (pid %d)",
		     (int)w->old_pid);
	cr_assert_eq(w->readers, 2, "%u reader slots held by live processes, want 2 (the "
		     "test's and the new holder's)", w->readers);
	cr_assert_eq(w->register_old, 0, "register old: %s", dr_strerror(w->register_old));
	munmap(w, sizeof(*w));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* A process slot changing hands: its dead holder stays dead. */

static int register_name_and_die(void *arg)
{
	const char *const *a = arg;
	dr_registry *r;

	if (open_small(a[0], 16, 0, &r) || dr_register(r, a[1], "a", 1))
		return 10;
	raise(SIGKILL);
	return 11;
}

/* Opens and closes the segment a[0]; stops at the point a[2] (crash_arm)
 * on the way, unless it is NULL. */
static int attach_and_close(void *arg)
{
	const char *const *a = arg;
	dr_registry *r;

	if (a[2])
		crash_arm(a[2], "stop", 0);
	if (open_small(a[0], 16, 0, &r))
		return 10;
	dr_close(r);
	return 0;
}

/*
 * A process dies holding a name; a new process takes its slot over and is
 * paused at each step of dri_proc_attach(), the lock taken, before and
 * after its pid replaces the dead one's; the dead one reaped already, or a
 * zombie still. Whoever asks meanwhile must find the dead owner dead, as it
 * did before: a verdict that came back to alive made a watch report the
 * same death twice (distreg watch, seen in CI) and refused the dead owner's
 * name to a new registration (tests/model/p1_slot.pml).
 */
Test(races, a_dead_owner_stays_dead_while_a_new_process_takes_its_slot)
{
	static const char *const points[] = { "attach_locked", "attach_stamped" };
	const char *seg = seg_new("slotturn");
	dr_registry *r;

	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	for (int i = 0; i < 4; i++) {
		const char *point = points[i % 2];
		bool zombie = i >= 2;
		char name[16];
		const char *args[] = { seg, name, point };
		struct dr_entry e;
		uint64_t owner = 0;
		siginfo_t si;
		pid_t dead, pid;
		int st;

		snprintf(name, sizeof(name), "dead.%d", i);
		dead = spawn(register_name_and_die, args);
		if (zombie) {
			/* Dead, not reaped: kill(pid, 0) still finds it. */
			cr_assert_eq(waitid(P_PID, (id_t)dead, &si, WEXITED | WNOWAIT), 0);
			cr_assert_eq(si.si_status, SIGKILL);
		} else {
			cr_assert_eq(wait_child(dead), 128 + SIGKILL);
		}
		cr_assert_eq(dri_whereis_owner(r, name, strlen(name), 0, &e, &owner), 0);
		cr_assert(!dri_owner_alive(r, owner), "%s: its owner alive before", name);

		/* The dead process's slot is the first free one: the new
		 * process locks it and stops at the point. */
		pid = spawn(attach_and_close, args);
		st = wait_stopped(pid, WAIT_MS);
		cr_assert_eq(st, 0, "%s: the attaching process did not stop (%d)", point, st);
		cr_assert(!dri_owner_alive(r, owner),
			  "paused at %s, a new process in the slot of %s's dead owner (%s) brings "
			  "it back", point, name, zombie ? "a zombie" : "reaped");
		st = dr_register(r, name, "b", 1);
		cr_assert_eq(st, 0, "paused at %s: register %s: %s", point, name, dr_strerror(st));
		kill(pid, SIGCONT);
		cr_assert_eq(wait_child(pid), 0);
		if (zombie)
			cr_assert_eq(wait_child(dead), 128 + SIGKILL);
	}
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* In a pid namespace of its own (as in a container that shares /dev/shm):
 * looks at every name, then tries to take the test's. 77: no namespace. */
static int other_pidns_child(void *arg)
{
	pid_t pid;

	if (unshare(CLONE_NEWPID) != 0)
		return 77;
	pid = fork();
	if (pid < 0)
		return 12;
	if (pid == 0) {
		dr_registry *r;
		size_t n = 0;
		int rc;

		if (open_small(arg, 16, 0, &r))
			_exit(10);
		if (dr_foreach(r, count_alive, &n) || n != 1)
			_exit(11);
		rc = dr_register(r, "svc", "c", 1);
		dr_close(r);
		_exit(rc == -EEXIST ? 0 : 20);
	}
	return wait_child(pid);
}

/*
 * A process of another pid namespace opens the segment: the pids in the
 * process slots are not its pids, and kill() finds none of them. It must
 * neither take a live process's name nor, by only looking, record that
 * process as dead (which took its names from it and made every call it
 * made afterwards fail with -ENOLCK).
 */
Test(races, a_process_in_another_pid_namespace_neither_buries_nor_robs_a_live_one)
{
	const char *seg = seg_new("pidns");
	struct dr_entry e;
	dr_registry *r;
	int st;

	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	cr_assert_eq(dr_register(r, "svc", "t", 1), 0);
	st = wait_child(spawn(other_pidns_child, (void *)seg));
	if (st == 77) {
		dr_close(r);
		dr_unlink(seg);
		cr_skip_test("no pid namespace here (unshare: not root?)");
	}
	cr_assert_eq(st, 0, "the process of another pid namespace: %d (11: its dr_foreach, "
		     "20: it took the live name)", st);
	st = dr_register(r, "other", "t", 1);
	cr_assert_eq(st, 0, "after a process of another pid namespace looked: %s", dr_strerror(st));
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.value[0], 't');
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct slot_holder {
	const char *seg;
	struct link l;
};

/* Attaches, says 'o', and once told, whether its handle still holds its
 * slot (0) or was buried (12). */
static int hold_until_told(void *arg)
{
	struct slot_holder *h = arg;
	dr_registry *r;
	char c;
	bool buried;

	if (open_small(h->seg, 16, 0, &r))
		return 10;
	write_byte(h->l.up[1], 'o');
	if (read_byte_within(h->l.down[0], &c, WAIT_MS) != 1)
		return 11;
	buried = dri_self_buried(r);
	dr_close(r);
	return buried ? 12 : 0;
}

/*
 * A process finds a dead holder's slot free and, before it records the
 * death (its CAS of the word it read), is paused while the slot is
 * attached 2^24 - 1 more times (written here by hand, as in the test
 * above) and once again: the new holder's generation is the dead one's.
 * The late CAS must miss the new holder's word, which counts attachments
 * beyond the generation, and leave it live. The test makes that CAS
 * itself, as found_dead() (proc.c) makes it: the word read before the
 * pause, its live bit cleared; pausing a process inside dri_owner_alive()
 * would need a crash point on every liveness check.
 */
Test(races, a_clear_with_a_word_read_before_a_wrap_misses_the_new_holder)
{
	const char *seg = seg_new("lateclear");
	struct slot_holder h = { .seg = seg };
	uint64_t w_dead, w_new;
	struct dr_entry e;
	uint64_t owner = 0;
	dr_registry *r;
	uint32_t slot;
	pid_t pid;

	link_init(&h.l);
	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	cr_assert_eq(wait_child(spawn(register_and_die, (void *)seg)), 128 + SIGKILL);
	cr_assert_eq(dri_whereis_owner(r, "old", 3, 0, &e, &owner), 0);
	slot = DRI_OWNER_SLOT(owner);
	w_dead = r->procs[slot].word;
	cr_assert_eq(DRI_PROC_GEN(w_dead), 1);
	cr_assert(w_dead & DRI_PROC_LIVE, "nobody has found it dead yet");

	r->procs[slot].word = (uint64_t)DRI_PROC_GEN_MASK << 1;
	pid = spawn(hold_until_told, &h);
	expect_byte(&h.l, 'o', pid, "the new holder attached");
	w_new = r->procs[slot].word;
	cr_assert_eq(DRI_PROC_GEN(w_new), 1, "the generation came round");
	cr_assert_neq(uatomic_cmpxchg(&r->procs[slot].word, w_dead, w_dead & ~DRI_PROC_LIVE),
		      w_dead, "the late CAS matched the new holder's word %#llx",
		      (unsigned long long)w_new);
	cr_assert_eq(r->procs[slot].word, w_new);
	write_byte(h.l.down[1], 'g');
	cr_assert_eq(wait_child(pid), 0, "the new holder was buried");
	link_close(&h.l);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/*
 * As process_slot_generation_wrap_adopts_a_dead_owners_names, but for the
 * second generation after the wrap: every holder of a slot whose count of
 * attachments has passed 2^24 - 1 may hold an owner id that a dead process
 * held before, not only the first one past the wrap.
 */
Test(races, every_holder_past_a_generation_wrap_disowns_a_dead_owners_names)
{
	const char *seg = seg_new("wrap2");
	struct wrapped *w = mmap(NULL, sizeof(*w), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct dr_entry e;
	uint64_t owner = 0;
	dr_registry *r;
	uint32_t slot;

	cr_assert_neq(w, MAP_FAILED);
	w->seg = seg;
	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	/* Generation 1 of the next slot comes and goes; generation 2 dies
	 * holding "old". */
	{
		const char *args[] = { seg, NULL, NULL };

		cr_assert_eq(wait_child(spawn(attach_and_close, args)), 0);
	}
	cr_assert_eq(wait_child(spawn(register_and_die, (void *)seg)), 128 + SIGKILL);
	cr_assert_eq(dri_whereis_owner(r, "old", 3, 0, &e, &owner), 0);
	cr_assert_eq(DRI_OWNER_GEN(owner), 2);
	slot = DRI_OWNER_SLOT(owner);
	/* 2^24 - 1 attachments later, the last one past the wrap (generation
	 * 1) gone too: the next holder's generation is 2 again. */
	r->procs[slot].word = ((uint64_t)DRI_PROC_GEN_MASK + 2) << 1;
	cr_assert_eq(wait_child(spawn(open_after_wrap, w)), 0);
	cr_assert_eq(w->whereis_old, -ENOENT,
		     "the second holder past the wrap still sees the dead owner's name (pid %d)",
		     (int)w->old_pid);
	cr_assert_eq(w->register_old, 0, "register old: %s", dr_strerror(w->register_old));
	munmap(w, sizeof(*w));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

struct rawfork {
	const char *seg;
	struct link l;
	pid_t child;
};

/* Registers "held", then forks with the raw system call, which runs no
 * fork handler: the child keeps the liveness lock's description, and
 * waits for 'q'. The service then dies. */
static int raw_forking_service(void *arg)
{
	struct rawfork *a = arg;
	dr_registry *r;
	pid_t pid;
	char c;

	if (open_small(a->seg, 16, 0, &r) || dr_register(r, "held", "s", 1))
		return 10;
	pid = (pid_t)syscall(SYS_fork);
	if (pid < 0)
		return 11;
	if (pid == 0) {
		(void)!read(a->l.down[0], &c, 1);
		_exit(0);
	}
	a->child = pid;
	raise(SIGKILL);
	return 12;
}

/*
 * A dead process whose child still holds its liveness lock (forked without
 * the library's fork handler: raw fork(), vfork() before exec) is dead by
 * its pid. A read-only handle (shmdump's) must say so as a read-write one
 * does: it knows its pid namespace too.
 */
Test(races, a_read_only_handle_finds_a_dead_owner_whose_child_keeps_its_lock)
{
	const char *seg = seg_new("rofork");
	struct rawfork *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	struct dr_options o = { .segment = seg, .flags = DR_OPEN_RDONLY };
	size_t alive_ro = 0, alive_rw = 0;
	dr_registry *r, *ro;

	cr_assert_neq(a, MAP_FAILED);
	a->seg = seg;
	link_init(&a->l);
	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	cr_assert_eq(wait_child(spawn(raw_forking_service, a)), 128 + SIGKILL);
	cr_assert_gt(a->child, 0);
	cr_assert_eq(kill(a->child, 0), 0, "the child holding the lock lives");

	cr_assert_eq(dr_open(&o, &ro), 0);
	cr_assert_eq(dr_foreach(ro, count_alive, &alive_ro), 0);
	dr_close(ro);
	cr_assert_eq(dr_foreach(r, count_alive, &alive_rw), 0);

	write_byte(a->l.down[1], 'q');
	for (int i = 0; i < 1000 && kill(a->child, 0) == 0; i++)
		usleep(1000);
	cr_expect_eq(alive_rw, 0, "a read-write handle finds the dead service alive");
	cr_expect_eq(alive_ro, 0, "a read-only handle finds the dead service alive");
	link_close(&a->l);
	munmap(a, sizeof(*a));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* Opens, then loses its descriptor of the segment as a daemon's close-all
 * loop would, /dev/null taking its number; then tries to take "svc". */
static int fd_losing_child(void *arg)
{
	dr_registry *r;
	int fd, rc;

	if (open_small(arg, 16, 0, &r))
		return 10;
	if (dr_register(r, "svc", "x", 1) != -EEXIST)
		return 11;
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || dup2(fd, r->fd) != r->fd)
		return 12;
	close(fd);
	rc = dr_register(r, "svc", "x", 1);
	return rc == 0 ? 20 : 0;
}

/*
 * A process whose descriptor of the segment was closed and its number
 * given to another file asks about others through that file, which holds
 * no locks: it must not take every other process for dead (and bury
 * them). Its own lock went with the descriptor: it is the dead one.
 */
Test(races, a_process_that_lost_its_descriptor_buries_no_one)
{
	const char *seg = seg_new("lostfd");
	struct dr_entry e;
	dr_registry *r;
	int st;

	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	cr_assert_eq(dr_register(r, "svc", "t", 1), 0);
	st = wait_child(spawn(fd_losing_child, (void *)seg));
	cr_assert_eq(st, 0, "the process without its descriptor: %d (20: it took the name)", st);
	cr_assert(!dri_self_buried(r), "a live process was buried");
	cr_assert_eq(dr_whereis(r, "svc", &e), 0);
	cr_assert_eq(e.value[0], 't');
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* Registers "held", forks with the raw system call (no fork handler), and
 * its child closes the inherited handle, as an atexit handler would; then
 * says whether its own name and slot survived. */
static int raw_fork_closer(void *arg)
{
	dr_registry *r;
	struct dr_entry e;
	pid_t pid;

	if (open_small(arg, 16, 0, &r) || dr_register(r, "held", "s", 1))
		return 10;
	pid = (pid_t)syscall(SYS_fork);
	if (pid < 0)
		return 11;
	if (pid == 0) {
		dr_close(r);
		_exit(0);
	}
	if (wait_child(pid) != 0)
		return 12;
	if (dri_self_buried(r))
		return 13;
	if (dr_whereis(r, "held", &e) != 0)
		return 14;
	dr_close(r);
	return 0;
}

/* Inside a read-side section that found "victim" (in a table of one
 * entry), forks with the raw system call; the child closes the inherited
 * handle. Says 'i', waits for 'g', then checks the entry it found still
 * holds "victim", and leaves its section. */
static int raw_fork_reader(void *arg)
{
	struct rawfork *a = arg;
	dr_registry *r;
	struct dr_entry e;
	pid_t pid;
	char c;
	int bad = 0;

	if (open_small(a->seg, 1, 0, &r))
		return 10;
	if (dr_read_lock(r) || dr_whereis(r, "victim", &e))
		return 11;
	pid = (pid_t)syscall(SYS_fork);
	if (pid < 0)
		return 12;
	if (pid == 0) {
		dr_close(r);
		_exit(0);
	}
	if (wait_child(pid) != 0)
		return 13;
	write_byte(a->l.up[1], 'i');
	if (read_byte_within(a->l.down[0], &c, WAIT_MS) != 1)
		return 14;
	{
		size_t len;
		uint8_t *base = segmap_open(a->seg, &len);
		struct dri_entry *v = base ? segmap_entry(base, "victim") : NULL;

		/* Unregistered since, it is out of the table; but the entry
		 * we hold must not have been reused: no other name in it. */
		if (!base)
			return 15;
		bad = segmap_entry(base, "intruder") != NULL && v == NULL;
		munmap(base, len);
	}
	dr_read_unlock(r);
	dr_close(r);
	return bad ? 16 : 0;
}

/* The same raw child must not release its parent's reader slot either: the
 * parent's section would no longer hold reuse back. */
Test(races, a_child_forked_without_the_handlers_releases_no_reader_slot_of_its_parent)
{
	const char *seg = seg_new("rawslot");
	struct rawfork *a = mmap(NULL, sizeof(*a), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	dr_registry *r;
	pid_t pid;
	int rc, st;

	cr_assert_neq(a, MAP_FAILED);
	a->seg = seg;
	link_init(&a->l);
	cr_assert_eq(open_small(seg, 1, 0, &r), 0);
	cr_assert_eq(dr_register(r, "victim", "v", 1), 0);
	pid = spawn(raw_fork_reader, a);
	expect_byte(&a->l, 'i', pid, "the reader inside its section, its raw child closed");
	cr_assert_eq(dr_unregister(r, "victim"), 0);
	/* The only entry is held by the reader's section. */
	rc = dr_register(r, "intruder", "x", 1);
	write_byte(a->l.down[1], 'g');
	st = wait_child(pid);
	cr_assert_eq(rc, -EBUSY, "the entry a live reader holds was reused: %s", dr_strerror(rc));
	cr_assert_eq(st, 0, "the reader: %d (16: its entry holds another name)", st);
	link_close(&a->l);
	munmap(a, sizeof(*a));
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* A child made without the fork handlers has the parent's cached pid: its
 * dr_close() must still leave the parent's names and slot alone. */
Test(races, a_child_forked_without_the_handlers_closes_nothing_of_its_parent)
{
	const char *seg = seg_new("rawclose");
	dr_registry *r;
	int st;

	cr_assert_eq(open_small(seg, 16, 0, &r), 0);
	st = wait_child(spawn(raw_fork_closer, (void *)seg));
	cr_assert_eq(st, 0, "the parent after its raw child's dr_close: %d (13: buried, 14: its "
		     "name gone)", st);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}
