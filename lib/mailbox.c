/*
 * mailbox.c - mailboxes and lanes: opening and closing a mailbox, serving
 * names through it, the lanes that carry messages to it, and receiving.
 *
 * A lane is a byte ring with one writer (the sending process, under a
 * mutex of its own that its threads share) and one reader (the mailbox's
 * owner). The writer copies a record past the tail and publishes it with a
 * CAS of the tail from where it wrote (it fails only if the lane was
 * evicted meanwhile, see DRI_LANE_EVICTED); the reader consumes up to the
 * tail and gives the room back with a release store of the head. Neither
 * ever waits for the other, so a writer killed in the middle of a record
 * leaves only bytes past the published tail, which nobody reads, and a
 * paused writer holds back only its own lane.
 *
 * Who may do what with a lane (the lane's owner word is the sender's id):
 *  - claim it: any sender, by CAS of the owner word from 0; it then sets the
 *    target and the slot, and attaches it by CAS of a free slot of the
 *    target mailbox's lane table;
 *  - detach it: the mailbox's owner, when the lane targets an earlier
 *    opening of the mailbox, or is drained and its sender dead, or was
 *    evicted; the mailbox's owner at close; a reaper, when the mailbox's
 *    owner is dead; its sender, once evicted;
 *  - evict it (mark its tail, then replace it in its slot): another sender
 *    that finds no free slot, when the lane is drained (lane_evict);
 *  - free it (owner word back to 0): its sender once it is detached (no
 *    reader can be in it then), or whoever detached it from a live
 *    mailbox because its sender was dead, or a reaper when the sender is
 *    dead and the lane detached or its mailbox dead.
 * The reader reads records in place, so a lane attached to a live mailbox
 * is freed by someone else only when it is drained and its sender dead (a
 * reader holds a record until its next receive, and head stays before it
 * until then). Every CAS on a lane table entry compares the lane's
 * generation too (DRI_LV), so one made on an old view fails once the lane
 * was freed and claimed again; and a dead owner's mailbox is cleared only
 * by the reaper that marked it DRI_MBOX_REAPING, so no opening of the slot
 * can begin while its table is being cleared.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dri.h"
#include "distreg_admin.h"

/* How long a receiver spins for the next message before it sleeps. On
 * these machines a wake-up across CPUs costs 30-80 us, a round trip of
 * spinning processes 0.1-0.2 us. Longer, up to the handle's
 * dr_set_wait_spin() (200 us by default), while the messages come that
 * often (dri_spin_learn). */
#define SPIN_NS (20ull * 1000)
#define LIVENESS_NS DRI_LIVENESS_NS
/* The longest between two tries of a stale call's answer (dri_wait_take). */
#define DEFER_MAX_NS (1000ull * 1000 * 1000)

static uint64_t align8(uint64_t v)
{
	return (v + 7) & ~7ull;
}

/* ---------------------------------------------------------------------- */
/* Wake-ups: a datagram to the mailbox's abstract Unix socket. */

static socklen_t wake_addr(const struct dr_registry *r, uint32_t ref, struct sockaddr_un *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1, "distreg.%016llx.%08x",
		     (unsigned long long)r->seed, ref);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
}

/* The handle's socket for sending wake-ups, made on first use, with its
 * spare (wake_fresh), made first: once the socket is there, so is it. */
static int wake_sock(struct dr_registry *r)
{
	int s = __atomic_load_n(&r->wake_sock, __ATOMIC_ACQUIRE), spare, expect = -1;

	if (s >= 0)
		return s;
	spare = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (spare < 0)
		return -1;
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s < 0) {
		close(spare);
		return -1;
	}
	if (!__atomic_compare_exchange_n(&r->wake_spare, &expect, spare, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		close(spare); /* another thread's is there */
	expect = -1;
	if (!__atomic_compare_exchange_n(&r->wake_sock, &expect, s, false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE)) {
		close(s);
		s = expect;
	}
	return s;
}

static bool mbox_current(struct dr_registry *r, uint32_t ref);

/* The wake-up through a socket of its own, whose send buffer is empty;
 * at the descriptor limit, through the handle's spare, made with its wake
 * socket (helper-42: else a live sender's message woke nobody). True if
 * sent; else errno is EAGAIN if the owner's queue is full. */
static bool wake_fresh(struct dr_registry *r, const struct sockaddr_un *a, socklen_t len)
{
	int t = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int s = t >= 0 ? t : __atomic_load_n(&r->wake_spare, __ATOMIC_ACQUIRE);
	bool sent;
	int e;

	sent = sendto(s, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *)a, len) == 1;
	e = errno;
	if (t >= 0)
		close(t);
	errno = e;
	return sent;
}

/*
 * After publishing into a lane of mailbox ref: wake its owner if it sleeps
 * (or is about to). waiting's bit 0 is set while the owner sleeps, its
 * other bits count the owner's sleeps (dri_wait_take). We send the
 * datagram first and clear the flag after, by CAS from the word we read:
 * a sender killed between the two leaves the flag set, and the next
 * sender wakes the owner again (a spare datagram is drained), where
 * clearing first and dying before the datagram left the owner asleep and
 * every later sender sure it was woken. The CAS fails once the owner has
 * woken and slept again: that sleep is not ours to clear. Several senders
 * that read the flag at once each send one datagram; the first to clear
 * it ends that. The socket was made before the message was published
 * (dri_lane_send), so it is there. EAGAIN means the owner's queue is full
 * (wake-ups wait there: the flag may stay), or our own socket's send
 * buffer is (our datagrams still queued at mailboxes whose owners do not
 * drain them, paused ones): then a fresh socket sends it (wake_fresh).
 * A sender killed between publishing and this wake-up leaves its message
 * unseen until the next message wakes the owner, or a reaper finds the
 * dead sender's unread lane and wakes it (dri_reap_mailboxes).
 */
static void wake(struct dr_registry *r, struct dri_mbox *m, uint32_t ref)
{
	struct sockaddr_un a;
	socklen_t len;
	int s = __atomic_load_n(&r->wake_sock, __ATOMIC_ACQUIRE);
	uint32_t w;

	cmm_smp_mb(); /* our tail before its waiting flag: pairs with recv's */
	w = CMM_LOAD_SHARED(m->waiting);
	if (!(w & 1))
		return;
	/* The flag we read may be a later opening's (the count goes on
	 * across openings): its owner armed it after the claim bumped the
	 * generation, so we see that here. Our datagram would go to our
	 * opening's address, which a forked child or a closing owner may
	 * still hold, and our CAS would clear a sleep it does not cover
	 * (helper-41). A word of our opening read before the claim fails the
	 * CAS: the claim cleared bit 0 and every arm adds to the count. */
	cmm_smp_rmb();
	if (!mbox_current(r, ref))
		return;
	len = wake_addr(r, ref, &a);
	for (int tries = 0; tries < 3; tries++) {
		if (sendto(s, "", 1, MSG_DONTWAIT | MSG_NOSIGNAL, (struct sockaddr *)&a, len) == 1 ||
		    (errno == EAGAIN && wake_fresh(r, &a, len))) {
			DRI_CRASHPOINT(wake_sent);
			(void)uatomic_cmpxchg(&m->waiting, w, w & ~1u);
			return;
		}
		if (errno == EAGAIN || errno == ECONNREFUSED || errno == ENOENT)
			return; /* its queue is full, or nobody is bound: closed */
	}
	/* Could not: the flag stays for the next sender. */
}

/* ---------------------------------------------------------------------- */
/* Mailbox slots */

/* Whether the slot of ref still holds the opening ref names. */
static bool mbox_current(struct dr_registry *r, uint32_t ref)
{
	uint32_t idx = DRI_MBOX_IDX(ref);
	struct dri_mbox *m;
	uint64_t o;

	if (idx >= r->max_mailboxes)
		return false;
	m = &r->mboxes[idx];
	o = ld_acq64(&m->owner);
	return o != 0 && !(o & DRI_MBOX_REAPING) &&
	       (ld_acq32(&m->gen) & 0xffffu) == DRI_MBOX_GEN(ref);
}

/* Whether the opening ref is current and held by owner. */
bool dri_mbox_held_by(struct dr_registry *r, uint32_t ref, uint64_t owner)
{
	return mbox_current(r, ref) && ld_acq64(&r->mboxes[DRI_MBOX_IDX(ref)].owner) == owner;
}

/* Whether the opening ref is current and its owner alive (a syscall). */
bool dri_mbox_alive(struct dr_registry *r, uint32_t ref)
{
	uint64_t o;

	if (!mbox_current(r, ref))
		return false;
	o = ld_acq64(&r->mboxes[DRI_MBOX_IDX(ref)].owner);
	return o != 0 && dri_owner_alive(r, o);
}

/* The value (DRI_LV) in slot s of m, or 0 (also for an index out of range). */
static uint32_t table_lane(struct dr_registry *r, struct dri_mbox *m, uint32_t s)
{
	uint32_t v = ld_acq32(&m->lane[s]);

	return (v & 0xffffu) != 0 && (v & 0xffffu) <= r->max_lanes ? v : 0;
}

/* The table value lane i has while attached: its current generation. */
static uint32_t lane_value(struct dr_registry *r, uint32_t i)
{
	return DRI_LV(i, ld_acq32(&dri_lane_at(r, i)->gen));
}

/*
 * Clear the table of mailbox m, whose owner o is dead, and free it. First
 * the slot is marked as ours to clear (DRI_MBOX_REAPING): a reaper paused
 * here must not clear the table of a later opening. Returns 1 if freed.
 */
static unsigned reap_mailbox(struct dr_registry *r, struct dri_mbox *m, uint64_t o)
{
	uint64_t mine = r->owner | DRI_MBOX_REAPING;

	if (uatomic_cmpxchg(&m->owner, o, mine) != o)
		return 0;
	DRI_CRASHPOINT(reap_mbox);
	for (uint32_t s = 0; s < DRI_MBOX_LANES; s++) {
		uint32_t v = ld_acq32(&m->lane[s]);

		if (v)
			uatomic_cmpxchg(&m->lane[s], v, 0);
	}
	return uatomic_cmpxchg(&m->owner, mine, 0) == mine;
}

/*
 * Free what dead processes hold: mailboxes (their lane tables cleared) and
 * lanes (detached first if they were attached). A dead sender's lane that
 * is attached to a live mailbox is freed only once drained: until then its
 * reader may hold a record of it. Returns how many were freed.
 */
unsigned dri_reap_mailboxes(struct dr_registry *r)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < r->max_mailboxes; i++) {
		struct dri_mbox *m = &r->mboxes[i];
		uint64_t o = ld_acq64(&m->owner);

		if (o == 0 || o == r->owner || o == (r->owner | DRI_MBOX_REAPING))
			continue;
		/* A reaper's mark: taken over only if that reaper died. */
		if (o & DRI_MBOX_REAPING ? dri_owner_alive(r, o & ~DRI_MBOX_REAPING)
					 : !dri_owner_gone(r, o))
			continue;
		n += reap_mailbox(r, m, o);
	}
	for (uint32_t i = 0; i < r->max_lanes; i++) {
		struct dri_lane *l = dri_lane_at(r, i);
		uint32_t gen = ld_acq32(&l->gen), target, slot, midx;
		uint64_t o = ld_acq64(&l->owner);

		if (o == 0 || o == r->owner || !dri_owner_gone(r, o))
			continue;
		/* gen read before the owner: if the lane was claimed again
		 * since, its value has a newer generation and the CAS below
		 * fails. */
		if (ld_acq32(&l->gen) != gen)
			continue;
		target = CMM_LOAD_SHARED(l->target);
		slot = CMM_LOAD_SHARED(l->slot);
		midx = DRI_MBOX_IDX(target);
		if (midx < r->max_mailboxes && slot < DRI_MBOX_LANES) {
			struct dri_mbox *m = &r->mboxes[midx];
			uint32_t v = DRI_LV(i, gen);

			if (ld_acq32(&m->lane[slot]) == v) {
				if (dri_mbox_alive(r, target) &&
				    CMM_LOAD_SHARED(l->head) !=
					(ld_acq64(&l->tail) & ~DRI_LANE_EVICTED)) {
					/* Its reader drains it, then frees it. The
					 * sender may have died between publishing
					 * and waking the reader: wake it for them
					 * (if it sleeps), or nothing would until
					 * the next message. */
					if (wake_sock(r) >= 0)
						wake(r, m, target);
					continue;
				}
				DRI_CRASHPOINT(reap_lane);
				if (uatomic_cmpxchg(&m->lane[slot], v, 0) != v)
					continue; /* its reader detached it: the reader frees it */
			}
		}
		if (uatomic_cmpxchg(&l->owner, o, 0) == o)
			n++;
	}
	return n;
}

/* Claim a mailbox slot: *idx and the ref of this opening. */
static int mbox_claim(struct dr_registry *r, uint32_t *idx, uint32_t *ref)
{
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t i = 0; i < r->max_mailboxes; i++) {
			struct dri_mbox *m = &r->mboxes[i];
			uint32_t gen;

			if (CMM_LOAD_SHARED(m->owner) != 0 ||
			    uatomic_cmpxchg(&m->owner, 0, r->owner) != 0)
				continue;
			DRI_CRASHPOINT(mbox_claimed);
			/* Ours: a new opening. Lanes of the last one are
			 * detached as the receiver meets them. */
			gen = uatomic_add_return(&m->gen, 1);
			st_rel32(&m->waiting, CMM_LOAD_SHARED(m->waiting) & ~1u);
			uatomic_set(&m->stale, 0);
			uatomic_set(&m->late, 0);
			*idx = i;
			*ref = DRI_MBOX_REF(i, gen);
			return 0;
		}
		if (pass == 0 && dri_reap_mailboxes(r) == 0)
			break;
	}
	return -EUSERS;
}

/* ---------------------------------------------------------------------- */
/* Lanes, the sender's side */

/* A lane of this handle's, by target. The mutex orders this process's
 * threads on the lane, and so their messages. */
struct dri_lanemap {
	uint32_t ref;
	uint32_t lane;
	int users;                /* atomic; threads sending on it; raised under send_lock */
	pthread_mutex_t mu;
	/* under mu: the lane's head as we last read it. The receiver only
	 * moves it forward, so room computed from it is never more than
	 * there is; read again only when it shows too little (the line
	 * stays in the receiver's cache meanwhile). */
	uint64_t head_seen;
	struct dri_lanemap *next;
};

static void ring_write(uint8_t *ring, uint32_t size, uint64_t pos, const void *src, size_t n)
{
	uint32_t at = (uint32_t)(pos & (size - 1)), first = size - at;

	if (n <= first) {
		memcpy(ring + at, src, n);
	} else {
		memcpy(ring + at, src, first);
		memcpy(ring, (const uint8_t *)src + first, n - first);
	}
}

static void ring_read(const uint8_t *ring, uint32_t size, uint64_t pos, void *dst, size_t n)
{
	uint32_t at = (uint32_t)(pos & (size - 1)), first = size - at;

	if (n <= first) {
		memcpy(dst, ring + at, n);
	} else {
		memcpy(dst, ring + at, first);
		memcpy((uint8_t *)dst + first, ring, n - first);
	}
}

/* Whether lane i is still ours, targets ref and is attached to it. An
 * evicted lane still attached (its evictor paused or dead before it took
 * the slot) passes: its send finds the mark and detaches it
 * (lane_detach_evicted), which keeps a load off every send. */
static bool lane_usable(struct dr_registry *r, uint32_t i, uint32_t ref)
{
	struct dri_lane *l = dri_lane_at(r, i);
	uint32_t slot = CMM_LOAD_SHARED(l->slot);

	return ld_acq64(&l->owner) == r->owner && CMM_LOAD_SHARED(l->target) == ref &&
	       slot < DRI_MBOX_LANES &&
	       ld_acq32(&r->mboxes[DRI_MBOX_IDX(ref)].lane[slot]) == lane_value(r, i) &&
	       mbox_current(r, ref);
}

/* Detach our lane i if it was evicted and is still attached (its evictor
 * paused, or died, before it took the slot): its reader holds no record
 * of it and will read none. */
static void lane_detach_evicted(struct dr_registry *r, uint32_t i)
{
	struct dri_lane *l = dri_lane_at(r, i);
	uint32_t target = CMM_LOAD_SHARED(l->target), slot = CMM_LOAD_SHARED(l->slot);
	uint32_t midx = DRI_MBOX_IDX(target), v = lane_value(r, i);
	uint64_t tail = ld_acq64(&l->tail);

	if (ld_acq64(&l->owner) != r->owner || midx >= r->max_mailboxes ||
	    slot >= DRI_MBOX_LANES || !(tail & DRI_LANE_EVICTED) ||
	    ld_acq64(&l->head) != (tail & ~DRI_LANE_EVICTED))
		return;
	if (ld_acq32(&r->mboxes[midx].lane[slot]) == v)
		uatomic_cmpxchg(&r->mboxes[midx].lane[slot], v, 0);
}

/* Give back our lane i if no mailbox has it attached (no reader is in it
 * then; an evicted one we detach first); else it stays ours until
 * detached. Returns true if freed. */
static bool lane_release(struct dr_registry *r, uint32_t i)
{
	struct dri_lane *l = dri_lane_at(r, i);
	uint32_t target = CMM_LOAD_SHARED(l->target), slot = CMM_LOAD_SHARED(l->slot);
	uint32_t midx = DRI_MBOX_IDX(target);

	if (ld_acq64(&l->owner) != r->owner)
		return true; /* a reaper freed it: we were buried */
	lane_detach_evicted(r, i);
	if (midx < r->max_mailboxes && slot < DRI_MBOX_LANES &&
	    ld_acq32(&r->mboxes[midx].lane[slot]) == lane_value(r, i))
		return false;
	st_rel64(&l->owner, 0);
	return true;
}

/*
 * Evict a drained lane from m's table to attach ours (value mine) in its
 * slot; *slot_out the slot. The lane in slot s qualifies if its tail has
 * the evicted mark already (an evictor stopped before taking the slot) or
 * equals its head: then we mark it (CAS from that tail, so it fails if a
 * record was published since) and take the slot by CAS from its value.
 * One look at each slot, from a rotating start. Returns 0 or -EUSERS.
 */
static int lane_evict(struct dr_registry *r, struct dri_mbox *m, struct dri_lane *ours,
		      uint32_t mine, uint32_t *slot_out)
{
	static uint32_t rot; /* spreads victims; racy use is fine */
	uint32_t start = __atomic_fetch_add(&rot, 7, __ATOMIC_RELAXED) + (uint32_t)r->owner;

	for (uint32_t k = 0; k < DRI_MBOX_LANES; k++) {
		uint32_t s = (start + k) % DRI_MBOX_LANES, v = table_lane(r, m, s);
		struct dri_lane *l;
		uint64_t tail, head;
		uint32_t gen;

		if (!v) {
			/* Freed meanwhile: take it like any free slot. */
			if (CMM_LOAD_SHARED(m->lane[s]) != 0)
				continue;
			CMM_STORE_SHARED(ours->slot, s);
			if (uatomic_cmpxchg(&m->lane[s], 0, mine) == 0) {
				*slot_out = s;
				return 0;
			}
			continue;
		}
		l = dri_lane_at(r, DRI_LV_LANE(v));
		/* The claim the slot's value names, by its whole generation:
		 * the value keeps only 16 bits of it, which a lane freed
		 * and claimed again 2^16 times while we pause would match. */
		gen = ld_acq32(&l->gen);
		if (DRI_LV(DRI_LV_LANE(v), gen) != v)
			continue;
		tail = ld_acq64(&l->tail);
		head = ld_acq64(&l->head);
		if (!(tail & DRI_LANE_EVICTED)) {
			/* tail read before head: head == tail then means
			 * nothing was unread at the head's read, and the CAS
			 * below fails if anything was published since. */
			if (head != tail || ld_acq32(&m->lane[s]) != v)
				continue;
			if (uatomic_cmpxchg(&l->tail, tail, tail | DRI_LANE_EVICTED) != tail)
				continue; /* published meanwhile */
			DRI_CRASHPOINT(lane_evicting);
		}
		/* Still that claim, still marked (nothing can be published
		 * into it): then v still names a drained lane, unless the
		 * lane went through 2^32 claims between here and the CAS. */
		if (ld_acq32(&l->gen) != gen || !(ld_acq64(&l->tail) & DRI_LANE_EVICTED))
			continue;
		/* Our slot before the attachment, as for a free slot: whoever
		 * sees it attached reads l->slot. */
		CMM_STORE_SHARED(ours->slot, s);
		if (uatomic_cmpxchg(&m->lane[s], v, mine) != v)
			continue; /* taken, or detached: its marked lane stays drained */
		DRI_CRASHPOINT(lane_evicted);
		*slot_out = s;
		return 0;
	}
	return -EUSERS;
}

/* Claim a free lane and attach it to the opening ref. */
static int lane_claim(struct dr_registry *r, uint32_t ref, uint32_t *out)
{
	uint32_t n = r->max_lanes, start, midx = DRI_MBOX_IDX(ref);
	struct dri_mbox *m;

	if (midx >= r->max_mailboxes)
		return -ENOENT;
	m = &r->mboxes[midx];
	start = (uint32_t)((uint64_t)r->owner * 0x9e3779b97f4a7c15ull >> 40) % n;
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t k = 0; k < n; k++) {
			uint32_t i = (start + k) % n;
			struct dri_lane *l = dri_lane_at(r, i);

			if (CMM_LOAD_SHARED(l->owner) != 0 ||
			    uatomic_cmpxchg(&l->owner, 0, r->owner) != 0)
				continue;
			/* Ours, detached: nobody reads it. A new generation
			 * first, so that every value of its earlier claims
			 * is stale. */
			uint32_t v = DRI_LV(i, uatomic_add_return(&l->gen, 1));
			DRI_CRASHPOINT(lane_claimed);
			l->target = ref;
			/* Empty, from where the last claim left off: a lane's
			 * tail never goes back, so an evictor's CAS from a
			 * tail it saw succeeds only while nothing was
			 * published since, in any claim (see
			 * DRI_LANE_EVICTED). Back to 0 long before the bit. */
			uint64_t t0 = ld_acq64(&l->tail) & ~DRI_LANE_EVICTED & ~7ull;
			if (t0 >= DRI_LANE_EVICTED >> 1)
				t0 = 0; /* a scribbled tail */
			st_rel64(&l->head, t0);
			st_rel64(&l->tail, t0);
			if (!mbox_current(r, ref)) {
				st_rel64(&l->owner, 0);
				return -ENOENT;
			}
			DRI_CRASHPOINT(lane_checked);
			for (uint32_t s = 0, evict = 0; s <= DRI_MBOX_LANES; s++) {
				if (s == DRI_MBOX_LANES) {
					/* No free slot: take a drained lane's
					 * (a few looks, slots change meanwhile). */
					if (evict++ == 3)
						break;
					if (lane_evict(r, m, l, v, &s) != 0) {
						s = (uint32_t)-1; /* look for free ones again */
						continue;
					}
				} else {
					if (CMM_LOAD_SHARED(m->lane[s]) != 0)
						continue;
					CMM_STORE_SHARED(l->slot, s);
					if (uatomic_cmpxchg(&m->lane[s], 0, v) != 0)
						continue;
				}
				DRI_CRASHPOINT(lane_attached);
				/* The opening may have ended (its reaper
				 * past slot s already) between our look and
				 * the attach: then take it back. */
				if (!mbox_current(r, ref)) {
					/* Detached by us or by the reaper;
					 * nothing was written: free it. */
					uatomic_cmpxchg(&m->lane[s], v, 0);
					st_rel64(&l->owner, 0);
					return -ENOENT;
				}
				*out = i;
				return 0;
			}
			st_rel64(&l->owner, 0);
			return -EUSERS; /* every slot holds a lane with unread records */
		}
		if (pass == 0 && dri_reap_mailboxes(r) == 0)
			break;
	}
	return -EUSERS;
}

/* Forget map entry e: free its lane if nobody has it attached, else keep
 * it until it is detached. Under send_lock. */
static void lane_forget(struct dr_registry *r, struct dri_lanemap *e)
{
	if (lane_release(r, e->lane)) {
		pthread_mutex_destroy(&e->mu);
		free(e);
	} else {
		e->ref = 0;
		e->next = r->lanes_held;
		r->lanes_held = e;
	}
}

/* Give back what our lanes to gone mailboxes hold: every lane whose
 * mailbox was closed, reopened or reaped (we will never send to that
 * opening again), and the kept ones their reader has detached since.
 * Returns how many lanes went back to the pool. Under send_lock. */
static unsigned lanes_sweep(struct dr_registry *r)
{
	struct dri_lanemap *e, **pp;
	unsigned n = 0;

	for (pp = &r->lanemap; (e = *pp);) {
		/* One in use by a sending thread stays (it fails its send
		 * and the next sweep takes it). */
		if (__atomic_load_n(&e->users, __ATOMIC_ACQUIRE) ||
		    (mbox_current(r, e->ref) && lane_usable(r, e->lane, e->ref))) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		lane_forget(r, e);
	}
	for (pp = &r->lanes_held; (e = *pp);) {
		if (lane_release(r, e->lane)) {
			*pp = e->next;
			pthread_mutex_destroy(&e->mu);
			free(e);
			n++;
		} else {
			pp = &e->next;
		}
	}
	return n;
}

/* Our lane to ref, claimed on first use; *map its entry. */
static int lane_for(struct dr_registry *r, uint32_t ref, struct dri_lanemap **map)
{
	struct dri_lanemap *e;
	uint32_t lane;
	int err;

	pthread_mutex_lock(&r->send_lock);
	for (e = r->lanemap; e; e = e->next) {
		if (e->ref == ref && lane_usable(r, e->lane, ref)) {
			__atomic_add_fetch(&e->users, 1, __ATOMIC_ACQ_REL);
			pthread_mutex_unlock(&r->send_lock);
			*map = e;
			return 0;
		}
	}
	/* A new lane to claim: first give back those to gone mailboxes. */
	lanes_sweep(r);
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&r->send_lock);
		return -ENOMEM;
	}
	err = lane_claim(r, ref, &lane);
	if (err == -EUSERS && lanes_sweep(r) > 0)
		err = lane_claim(r, ref, &lane); /* the claim's reaping detached some of ours */
	if (err) {
		pthread_mutex_unlock(&r->send_lock);
		free(e);
		return err;
	}
	e->ref = ref;
	e->lane = lane;
	e->users = 1;
	pthread_mutex_init(&e->mu, NULL);
	e->next = r->lanemap;
	r->lanemap = e;
	pthread_mutex_unlock(&r->send_lock);
	*map = e;
	return 0;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { (time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull) };

	nanosleep(&ts, NULL);
}

/* A deadline timeout_ms from now (UINT64_MAX for -1). */
uint64_t dri_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : dri_mono_ns() + (uint64_t)timeout_ms * 1000000ull;
}

/*
 * Send one record to the mailbox opening ref: hdr (its len is set here),
 * then name, then pre and data (hdr->data_len bytes together). Waits for
 * room until deadline (0: do not wait).
 */
int dri_lane_send(struct dr_registry *r, uint32_t ref, struct dri_rec *hdr, const void *name,
		  const void *pre, size_t pre_len, const void *data, uint64_t deadline)
{
	uint64_t need = align8(sizeof(*hdr) + hdr->name_len + hdr->data_len), head, tail;
	uint64_t next_look = 0;
	struct dri_lanemap *map;
	struct dri_lane *l;
	uint8_t *ring;
	unsigned spins = 0, evicted = 0;
	int err;

	if (need > r->lane_bytes - 8)
		return -EMSGSIZE;
	/* The socket for the wake-up, before anything is published: a
	 * message must never sit in a lane with nobody told. */
	if (wake_sock(r) < 0)
		return -errno;
again:
	err = lane_for(r, ref, &map);
	if (err)
		return err;
	l = dri_lane_at(r, map->lane);
	ring = dri_lane_ring(r, map->lane);
	pthread_mutex_lock(&map->mu);
	for (;;) {
		tail = CMM_LOAD_SHARED(l->tail);
		if (tail & DRI_LANE_EVICTED)
			goto evicted;
		head = map->head_seen;
		if (head <= tail && tail - head <= r->lane_bytes &&
		    r->lane_bytes - (tail - head) >= need)
			break;
		head = map->head_seen = ld_acq64(&l->head);
		if (head > tail || tail - head > r->lane_bytes) {
			err = -EBADMSG; /* someone else wrote our lane */
			goto out;
		}
		if (r->lane_bytes - (tail - head) >= need)
			break;
		/* Full: the receiver frees room as it reads. */
		if (!deadline) {
			err = -EAGAIN;
			goto out;
		}
		if (++spins < 64) {
			caa_cpu_relax();
			continue;
		}
		uint64_t now = dri_mono_ns();
		if (now >= next_look) {
			if (!dri_mbox_alive(r, ref)) {
				err = -EOWNERDEAD;
				goto out;
			}
			next_look = now + LIVENESS_NS;
		}
		if (now >= deadline) {
			err = -ETIMEDOUT;
			goto out;
		}
		/* Wait without the lane's mutex: another thread's send that
		 * does not wait (or fits) must not wait behind us. */
		pthread_mutex_unlock(&map->mu);
		sleep_ns(50 * 1000);
		pthread_mutex_lock(&map->mu);
	}
	hdr->len = (uint32_t)need;
	ring_write(ring, r->lane_bytes, tail, hdr, sizeof(*hdr));
	if (hdr->name_len)
		ring_write(ring, r->lane_bytes, tail + sizeof(*hdr), name, hdr->name_len);
	if (pre_len)
		ring_write(ring, r->lane_bytes, tail + sizeof(*hdr) + hdr->name_len, pre, pre_len);
	if (hdr->data_len > pre_len)
		ring_write(ring, r->lane_bytes, tail + sizeof(*hdr) + hdr->name_len + pre_len,
			   data, hdr->data_len - pre_len);
	DRI_CRASHPOINT(send_written);
	/* Publish: from the tail we wrote at, which only an evictor changes
	 * (it marks a drained lane): then our record is not published. */
	head = tail;
	if (!__atomic_compare_exchange_n(&l->tail, &head, tail + need, false, __ATOMIC_RELEASE,
					 __ATOMIC_ACQUIRE)) {
		if (head & DRI_LANE_EVICTED)
			goto evicted;
		err = -EBADMSG; /* someone else wrote our lane */
		goto out;
	}
	DRI_CRASHPOINT(send_published);
	wake(r, &r->mboxes[DRI_MBOX_IDX(ref)], ref);
	err = 0;
out:
	pthread_mutex_unlock(&map->mu);
	__atomic_sub_fetch(&map->users, 1, __ATOMIC_ACQ_REL);
	return err;
evicted:
	/* Another sender took our drained lane's slot: nothing of this
	 * record was published. Another lane then (lane_for no longer finds
	 * this one usable once detached; its sweep frees it), and the record
	 * again. Bounded, should two senders keep evicting each other. */
	lane_detach_evicted(r, map->lane);
	pthread_mutex_unlock(&map->mu);
	__atomic_sub_fetch(&map->users, 1, __ATOMIC_ACQ_REL);
	if (++evicted > 64)
		return -EUSERS;
	if (evicted > 1)
		sched_yield();
	goto again;
}

/* At dr_close: give back the lanes nobody has attached; the others are
 * freed by their readers or reapers once we are gone. */
void dri_lanes_release_all(struct dr_registry *r, bool shared)
{
	struct dri_lanemap *lists[2] = { r->lanemap, r->lanes_held }, *e, *next;

	for (int k = 0; k < 2; k++) {
		for (e = lists[k]; e; e = next) {
			next = e->next;
			if (shared)
				(void)lane_release(r, e->lane);
			pthread_mutex_destroy(&e->mu);
			free(e);
		}
	}
	r->lanemap = r->lanes_held = NULL;
	if (r->wake_sock >= 0)
		close(r->wake_sock);
	if (r->wake_spare >= 0)
		close(r->wake_spare);
	r->wake_sock = r->wake_spare = -1;
}

/* ---------------------------------------------------------------------- */
/* Mailboxes, the receiver's side */

int dri_mb_begin(dr_mailbox *mb)
{
	if (!mb)
		return -EINVAL;
	if (mb->r->pid != dri_self_pid)
		return -ECHILD;
	if (dri_self_buried(mb->r))
		return -ENOLCK;
	return 0;
}

int dri_mailbox_open(struct dr_registry *r, bool for_replies, dr_mailbox **out)
{
	struct sockaddr_un a;
	dr_mailbox *mb;
	int err;

	*out = NULL;
	mb = calloc(1, sizeof(*mb));
	if (!mb)
		return -ENOMEM;
	mb->r = r;
	mb->cur_lane = -1;
	mb->for_replies = for_replies;
	mb->sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (mb->sock < 0) {
		err = -errno;
		free(mb);
		return err;
	}
	for (int tries = 0;; tries++) {
		err = mbox_claim(r, &mb->idx, &mb->ref);
		if (err) {
			close(mb->sock);
			free(mb);
			return err;
		}
		if (bind(mb->sock, (struct sockaddr *)&a, wake_addr(r, mb->ref, &a)) == 0)
			break;
		/* Taken: a process that held this very opening's address
		 * (2^16 openings ago) still lives, a forked child of its
		 * perhaps. The next claim of a slot moves its generation on:
		 * try again, a few times. */
		err = -errno;
		st_rel64(&r->mboxes[mb->idx].owner, 0);
		if (err != -EADDRINUSE || tries == 8) {
			close(mb->sock);
			free(mb);
			return err == -EADDRINUSE ? -EUSERS : err;
		}
	}
	pthread_mutex_init(&mb->call_lock, NULL);
	pthread_mutex_init(&mb->start_lock, NULL);
	/* A thread's mailbox for answers is its thread's to close. */
	if (!for_replies) {
		pthread_mutex_lock(&r->lock);
		mb->next = r->mailboxes;
		r->mailboxes = mb;
		pthread_mutex_unlock(&r->lock);
	}
	*out = mb;
	return 0;
}

DR_EXPORT int dr_mailbox_open(dr_registry *r, dr_mailbox **out)
{
	struct dri_thread *t;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!r)
		return -EINVAL;
	err = dri_thread_get(r, &t);
	return err ? err : dri_mailbox_open(r, false, out);
}

DR_EXPORT int dr_mailbox_fd(const dr_mailbox *mb)
{
	return mb ? mb->sock : -EINVAL;
}

/* Milliseconds from now (in clock now's terms) to due, rounded up. */
static int64_t ms_until(uint64_t due, uint64_t now)
{
	return due <= now ? 0 : (int64_t)((due - now + 999999) / 1000000);
}

DR_EXPORT int dr_mailbox_timeout(const dr_mailbox *mb)
{
	int64_t ms = -1;

	if (!mb)
		return -EINVAL;
	/* What dr_recv() looks at besides messages (dri_wait_take): the
	 * calls in flight, the watches (watch.c, on the coarse clock) and
	 * an answer that waits for room. */
	if (__atomic_load_n(&mb->pend.n, __ATOMIC_RELAXED))
		ms = ms_until(mb->next_look, dri_mono_ns());
	if (mb->nevents)
		ms = 0;
	else if (mb->watches) {
		int64_t w = ms_until(mb->watch_next, dri_coarse_ns());

		ms = ms < 0 || w < ms ? w : ms;
	}
	if (mb->deferred) {
		int64_t d = (int64_t)(((mb->defer_ns ? mb->defer_ns : LIVENESS_NS) + 999999) / 1000000);

		if (ms < 0 || ms > d)
			ms = d;
	}
	return (int)ms;
}

/* The id of the registration of name served by mb (0 if there is none:
 * another thread of ours ended it already). */
static uint64_t registration_of(dr_mailbox *mb, const void *name, size_t len, bool global)
{
	struct dr_registry *r = mb->r;
	struct dri_thread *t;
	struct dri_key k;
	uint32_t mbox = 0;
	uint64_t regid = 0;

	if (dri_thread_get(r, &t))
		return 0;
	dri_key_init(&k, r, len ? name : (const void *)"", len, global);
	dri_read_enter(r, t);
	if (dri_lookup(r, &k, NULL, &mbox, &regid, NULL) != 0 || mbox != mb->ref)
		regid = 0;
	dri_read_exit(r, t);
	return regid;
}

/* ---------------------------------------------------------------------- */
/* The names a mailbox serves: a list for close, and an index by name */

static size_t served_home(const dr_mailbox *mb, const void *name, size_t len, bool global)
{
	return (size_t)dri_hash(mb->r, name, len, global) & (mb->served_cap - 1);
}

/* The link that points at mb's entry for name, or at the end of its chain. */
static struct dri_served **served_link(dr_mailbox *mb, const void *name, size_t len,
				       bool global)
{
	static struct dri_served *none;
	struct dri_served **pp;

	if (!mb->served_cap) {
		none = NULL;
		return &none;
	}
	for (pp = &mb->served_tab[served_home(mb, name, len, global)]; *pp; pp = &(*pp)->hnext)
		if ((*pp)->len == len && (*pp)->global == global &&
		    memcmp((*pp)->name, name, len) == 0)
			break;
	return pp;
}

static struct dri_served *served_find(dr_mailbox *mb, const void *name, size_t len, bool global)
{
	return *served_link(mb, name, len, global);
}

static int served_add(dr_mailbox *mb, struct dri_served *sv)
{
	struct dri_served **pp;

	if (mb->nserved + 1 > mb->served_cap / 2) {
		size_t cap = mb->served_cap ? 2 * mb->served_cap : 64;
		struct dri_served **tab = calloc(cap, sizeof(*tab));

		if (!tab)
			return -ENOMEM;
		free(mb->served_tab);
		mb->served_tab = tab;
		mb->served_cap = cap;
		for (struct dri_served *x = mb->served; x; x = x->next) {
			pp = &tab[served_home(mb, x->name, x->len, x->global)];
			x->hnext = *pp;
			*pp = x;
		}
	}
	pp = &mb->served_tab[served_home(mb, sv->name, sv->len, sv->global)];
	sv->hnext = *pp;
	*pp = sv;
	sv->prev = NULL;
	sv->next = mb->served;
	if (mb->served)
		mb->served->prev = sv;
	mb->served = sv;
	mb->nserved++;
	return 0;
}

/* Take sv off the list and the index, and free it. */
static void served_drop(dr_mailbox *mb, struct dri_served *sv)
{
	struct dri_served **pp = served_link(mb, sv->name, sv->len, sv->global);

	if (*pp == sv)
		*pp = sv->hnext;
	if (sv->prev)
		sv->prev->next = sv->next;
	else
		mb->served = sv->next;
	if (sv->next)
		sv->next->prev = sv->prev;
	mb->nserved--;
	free(sv);
}

static void served_free(dr_mailbox *mb)
{
	for (struct dri_served *sv = mb->served, *next; sv; sv = next) {
		next = sv->next;
		free(sv);
	}
	free(mb->served_tab);
	mb->served = NULL;
	mb->served_tab = NULL;
	mb->served_cap = mb->nserved = 0;
}

/* dr_serve() in either namespace. */
int dri_serve(dr_mailbox *mb, const void *name, size_t name_len, unsigned flags,
	      const void *value, size_t value_len)
{
	bool global = flags & DRI_REG_GLOBAL;
	struct dri_served *sv;
	uint64_t regid;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (mb->for_replies)
		return -EINVAL;
	err = dri_register(mb->r, name, name_len, value, value_len, mb->ref, flags);
	if (err)
		return err;
	/* Remembered for close, with its registration id: close ends that
	 * registration only. A repeated serve (a value update) is kept once. */
	regid = registration_of(mb, name, name_len, global);
	sv = served_find(mb, name, name_len, global);
	if (sv) {
		if (regid)
			sv->regid = regid;
		else
			served_drop(mb, sv);
		return 0;
	}
	/* 0: our registration ended already (another thread unregistered
	 * it, and someone may serve the name now): nothing to end at close.
	 * Remembered as 0 it would end whoever's it is. */
	if (!regid)
		return 0;
	sv = malloc(sizeof(*sv) + name_len);
	if (sv) {
		sv->regid = regid;
		sv->len = name_len;
		sv->global = global;
		memcpy(sv->name, name, name_len);
	}
	if (!sv || served_add(mb, sv) != 0) {
		free(sv);
		dri_unregister(mb->r, name, name_len, flags, regid, false);
		return -ENOMEM;
	}
	return 0;
}

/* Whether mb serves name (dr_serve or dr_serve_global). */
bool dri_serves(dr_mailbox *mb, const void *name, size_t name_len, bool global)
{
	return served_find(mb, name, name_len, global) != NULL;
}

/* dr_unserve() in either namespace: end the registration mb made. */
int dri_unserve(dr_mailbox *mb, const void *name, size_t name_len, bool global)
{
	struct dri_served *sv;
	uint64_t regid;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (!name || name_len == 0)
		return -EINVAL;
	if (name_len > DR_NAME_MAX)
		return -ENAMETOOLONG;
	sv = served_find(mb, name, name_len, global);
	if (!sv)
		return -ENOENT;
	regid = sv->regid;
	served_drop(mb, sv);
	/* Only our registration: if it ended already (forced out), whoever
	 * holds the name now keeps it. */
	return dri_unregister(mb->r, name, name_len, global ? DRI_REG_GLOBAL : 0, regid, false);
}

DR_EXPORT int dr_lost(dr_mailbox *mb, const struct dr_msg *ev)
{
	struct dri_served *sv;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (!ev || ev->kind != DR_MSG_SYSTEM || ev->len < 1 || !ev->data || !ev->name ||
	    ((const uint8_t *)ev->data)[0] != DR_EVENT_DIENOW)
		return -EINVAL;
	sv = served_find(mb, ev->name, ev->name_len, ev->global != 0);
	if (!sv)
		return -ENOENT;
	if (sv->regid != ev->regid)
		return -ESTALE; /* served again since: that one stays */
	served_drop(mb, sv);
	return 0;
}

DR_EXPORT int dr_unserve_bin(dr_mailbox *mb, const void *name, size_t name_len)
{
	return dri_unserve(mb, name, name_len, false);
}

DR_EXPORT int dr_unserve(dr_mailbox *mb, const char *name)
{
	return dr_unserve_bin(mb, name, dri_cname_len(name));
}

DR_EXPORT int dr_serve_bin(dr_mailbox *mb, const void *name, size_t name_len, const void *value,
			   size_t value_len)
{
	return dri_serve(mb, name, name_len, 0, value, value_len);
}

DR_EXPORT int dr_serve(dr_mailbox *mb, const char *name, const void *value, size_t value_len)
{
	return dr_serve_bin(mb, name, dri_cname_len(name), value, value_len);
}

/* Give the room of the message dr_recv returned last back to its lane. */
void dri_finish(dr_mailbox *mb)
{
	if (mb->cur_lane >= 0) {
		st_rel64(&dri_lane_at(mb->r, (uint32_t)mb->cur_lane)->head, mb->cur_end);
		mb->cur_lane = -1;
	}
}

/* Detach the lane in slot s (value v) of our table. free_owner: its
 * sender's owner id, read before the detach, dead (or 0: none), so we were
 * its only reader and free it, from that owner only: by then a reaper may
 * have freed it and another sender claimed it. */
static void detach(dr_mailbox *mb, uint32_t s, uint32_t v, uint64_t free_owner)
{
	struct dr_registry *r = mb->r;
	struct dri_mbox *m = &r->mboxes[mb->idx];

	if (uatomic_cmpxchg(&m->lane[s], v, 0) != v)
		return;
	DRI_CRASHPOINT(lane_detached);
	if (free_owner)
		uatomic_cmpxchg(&dri_lane_at(r, DRI_LV_LANE(v))->owner, free_owner, 0);
}

/* Whether name is registered with regid and served by our mailbox: 1 yes,
 * 0 no, or the error that kept us from looking (no reader slot). A global
 * name may be the bridge's address, of length 0. */
static int still_ours(dr_mailbox *mb, const unsigned char *name, size_t len, bool global,
		      uint64_t regid)
{
	struct dr_registry *r = mb->r;
	struct dri_thread *t;
	struct dri_key k;
	uint32_t mbox = 0;
	uint64_t got = 0;
	int rc;

	if ((len < 1 && !global) || len > DR_NAME_MAX)
		return 0;
	rc = dri_thread_get(r, &t);
	if (rc)
		return rc;
	dri_key_init(&k, r, len ? name : (const unsigned char *)"", len, global);
	dri_read_enter(r, t);
	rc = dri_lookup(r, &k, NULL, &mbox, &got, NULL);
	dri_read_exit(r, t);
	return rc == 0 && got == regid && mbox == mb->ref;
}

/*
 * Look at every lane once, from the cursor on, for a record to deliver.
 * Returns 1 with *msg filled (and the record current), 0 if none waits,
 * -EBADMSG if a lane held a corrupt record (its content is dropped).
 * filter_call: take only the REPLY to that call (a thread's dr_call);
 * replies to other calls are dropped as late.
 */
int dri_take(dr_mailbox *mb, struct dr_msg *msg, uint64_t filter_call)
{
	struct dr_registry *r = mb->r;
	struct dri_mbox *m = &r->mboxes[mb->idx];
	uint64_t now = 0;

	mb->deferred = false;
	for (uint32_t k = 0; k < DRI_MBOX_LANES; k++) {
		uint32_t s = (mb->cursor + k) % DRI_MBOX_LANES, v = table_lane(r, m, s);
		struct dri_lane *l;
		uint64_t head, tail;
		struct dri_rec rec;
		uint8_t *ring;
		int rc;

		if (!v)
			continue;
		l = dri_lane_at(r, DRI_LV_LANE(v));
		if (CMM_LOAD_SHARED(l->target) != mb->ref) {
			detach(mb, s, v, 0); /* for an earlier opening */
			continue;
		}
		ring = dri_lane_ring(r, DRI_LV_LANE(v));
	again:
		head = CMM_LOAD_SHARED(l->head);
		if (mb->tail_v[s] == v && head < mb->tail_seen[s])
			tail = mb->tail_seen[s];
		else
			tail = ld_acq64(&l->tail);
		if (tail & DRI_LANE_EVICTED) {
			/* Nothing more will be published in it (it was
			 * drained when marked): let it go; its sender frees
			 * it (a reaper, if it is dead). */
			tail &= ~DRI_LANE_EVICTED;
			if (head == tail) {
				detach(mb, s, v, 0);
				continue;
			}
		}
		if (head == tail) {
			uint64_t o = ld_acq64(&l->owner);

			/* Drained, and nobody will write it again. Whether its
			 * sender died costs system calls: asked once per
			 * LIVENESS_NS per slot, not at every look at an empty
			 * lane (a reaper detaches it meanwhile too). */
			if (o == 0) {
				detach(mb, s, v, o);
			} else if (o != r->owner) {
				if (!now)
					now = dri_coarse_ns();
				if (now >= mb->gone_check[s]) {
					mb->gone_check[s] = now + LIVENESS_NS;
					DRI_CRASHPOINT(lane_drained);
					/* Dead, it publishes nothing more; but what
					 * it published after our look at the tail,
					 * before it died, is still to be read. */
					if (dri_owner_gone(r, o) &&
					    (ld_acq64(&l->tail) & ~DRI_LANE_EVICTED) == head)
						detach(mb, s, v, o);
				}
			}
			continue;
		}
		mb->tail_v[s] = v;
		mb->tail_seen[s] = tail;
		ring_read(ring, r->lane_bytes, head, &rec, sizeof(rec));
		/* Still attached as we saw it: then the lane was not freed
		 * since (only a detached one is), and what we read is of our
		 * attachment, not of a sender that claimed the lane since. */
		if (ld_acq32(&m->lane[s]) != v)
			continue;
		if (head > tail || tail - head > r->lane_bytes)
			goto corrupt;
		if (rec.len < sizeof(rec) || (rec.len & 7) || rec.len > tail - head ||
		    rec.name_len > DR_NAME_MAX || rec.kind < DR_MSG_CALL ||
		    rec.kind > DR_MSG_SYSTEM ||
		    (uint64_t)sizeof(rec) + rec.name_len + rec.data_len > rec.len)
			goto corrupt;
		/* In place if it does not wrap; else copied whole. */
		const uint8_t *p;
		uint32_t at = (uint32_t)(head & (r->lane_bytes - 1));
		if (at + rec.len <= r->lane_bytes) {
			p = ring + at;
		} else {
			if (!mb->bounce && !(mb->bounce = malloc(r->lane_bytes)))
				return -ENOMEM;
			ring_read(ring, r->lane_bytes, head, mb->bounce, rec.len);
			p = mb->bounce;
		}
		DRI_CRASHPOINT(recv_taken);
		mb->cur_lane = (int32_t)DRI_LV_LANE(v);
		mb->cur_end = head + rec.len;
		msg->kind = rec.kind;
		msg->status = rec.status;
		msg->name = rec.name_len ? p + sizeof(rec) : NULL;
		msg->name_len = rec.name_len;
		msg->regid = rec.regid;
		msg->sender = rec.sender_pid;
		msg->call_id = rec.call_id;
		msg->data = p + sizeof(rec) + rec.name_len;
		msg->len = rec.data_len;
		msg->reply_to = rec.reply_to;
		msg->global = rec.kind != DR_MSG_REPLY && (rec.flags & DRI_REC_GLOBAL);
		if (rec.kind == DR_MSG_REPLY) {
			/* A waiting call decides itself. */
			struct dri_pending taken = { .notserved = true };
			bool none = (rec.flags & DRI_REC_NOTSERVED) && rec.status == -ENOENT;

			if (filter_call ? rec.call_id != filter_call :
					  !dri_pending_take(mb, rec.call_id, &taken)) {
				uatomic_inc(&m->late);
				if (mb->for_replies)
					__atomic_add_fetch(&mb->r->late_replies, 1,
							   __ATOMIC_RELAXED);
				dri_finish(mb);
				goto again;
			}
			/* A call that reached no worker: made again through
			 * the bridge if it kept a copy (dri_again_send: the
			 * answer comes later, under the same id), else
			 * DR_NOTSERVED to a caller that asks to tell that
			 * from a worker's -ENOENT. */
			if (none && taken.again && dri_again_send(mb, &taken) == 0) {
				free(taken.again);
				dri_finish(mb);
				goto again;
			}
			free(taken.again);
			if (none && taken.notserved)
				msg->status = DR_NOTSERVED;
		} else if (filter_call) {
			/* A thread's reply mailbox gets nothing else. */
			dri_finish(mb);
			goto again;
		} else if ((rec.kind != DR_MSG_SYSTEM ||
			    (rec.name_len && !(rec.flags & DRI_REC_ENDED))) &&
			   (rc = still_ours(mb, msg->name, msg->name_len, msg->global,
					    msg->regid)) != 1) {
			if (rc < 0) {
				/* We cannot look (no reader slot): keep it. */
				mb->cur_lane = -1;
				return rc;
			}
			/* Its registration ended: not for whoever holds the
			 * name now (the bridge's address: the bridge gave up
			 * its role, -ENOTCONN). A caller learns it at once; if its lane
			 * has no room for that now, the record stays and we
			 * try again soon (its caller may wait for ever). */
			if (rec.kind == DR_MSG_CALL &&
			    dr_admin_reply_status(mb, msg,
						  msg->global && msg->name_len == 0 ? -ENOTCONN
										    : DR_NOTSERVED) ==
				    -EAGAIN) {
				mb->cur_lane = -1;
				mb->deferred = true;
				continue;
			}
			uatomic_inc(&m->stale);
			dri_finish(mb);
			goto again;
		}
		/* Stay on this lane for a burst (its next records are likely
		 * in our cache), then let the others have a turn. */
		if (++mb->burst >= 64) {
			mb->burst = 0;
			mb->cursor = (s + 1) % DRI_MBOX_LANES;
		} else {
			mb->cursor = s;
		}
		return 1;
	corrupt:
		/* Drop what the lane holds and let it go. */
		st_rel64(&l->head, tail);
		mb->corrupt++;
		detach(mb, s, v, 0);
		return -EBADMSG;
	}
	return 0;
}

/* Take every wake-up datagram waiting on mb's socket: one system call
 * for up to 16 (one per arming of the flag, normally none or one). */
static void wakeups_drain(dr_mailbox *mb)
{
	char buf[16][8];
	struct iovec iov[16];
	struct mmsghdr v[16];

	for (int i = 0; i < 16; i++) {
		iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		v[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	while (recvmmsg(mb->sock, v, 16, MSG_DONTWAIT, NULL) == 16)
		;
}

/*
 * How long the next wait spins (spin: how long this one could; 0 at the
 * first wait), from this one, which found its message after w ns: up to
 * 1.5 w, if w is at most max (and no less than it spun before, while
 * messages keep coming that soon); half as long after a longer wait;
 * never under base nor over max (the handle's dr_set_wait_spin(), and
 * base the lesser of it and SPIN_NS). So a caller
 * of remote calls (answers after about 100 us here) and a worker with a
 * call every 100 us take the next message without a wake-up of 30-80 us,
 * and an idle receiver spins at most max once, then sleeps: an idle
 * mailbox still costs no CPU.
 */
uint64_t dri_spin_learn(uint64_t spin, uint64_t w, uint64_t base, uint64_t max)
{
	uint64_t s = spin ? spin : base;

	if (w <= max)
		s = w + w / 2 > s ? w + w / 2 : s;
	else
		s /= 2;
	return s > max ? max : s < base ? base : s;
}

DR_EXPORT int dr_set_wait_spin(dr_registry *r, unsigned max_us)
{
	if (!r || max_us > DR_WAIT_SPIN_MAX_US)
		return -EINVAL;
	__atomic_store_n(&r->wait_spin_us, max_us, __ATOMIC_RELAXED);
	return 0;
}

/*
 * Wait up to deadline for a record (see dri_take): spin for SPIN_NS (or
 * what dri_spin_learn made of the last waits, within dr_set_wait_spin()),
 * then sleep on the socket until a sender wakes us. The hook (may be NULL)
 * looks at what the caller waits for when *next_look has come (0: at
 * once), then every LIVENESS_NS; it returns nonzero to stop (that value
 * is returned), and then *next_look is 0: what it saw may come again.
 */
int dri_wait_take(dr_mailbox *mb, struct dr_msg *msg, uint64_t filter_call, uint64_t deadline,
		  uint64_t *next_look, int (*hook)(dr_mailbox *mb, struct dr_msg *msg, void *arg),
		  void *arg)
{
	struct dri_mbox *m = &mb->r->mboxes[mb->idx];
	uint64_t start = dri_mono_ns(), now = start, next_hook = *next_look;
	uint64_t max = (uint64_t)__atomic_load_n(&mb->r->wait_spin_us, __ATOMIC_RELAXED) * 1000;
	uint64_t base = max < SPIN_NS ? max : SPIN_NS, spin = mb->spin_ns ? mb->spin_ns : base;
	uint64_t spin_end = now + (spin > max ? max : spin);
	unsigned spins = 0;
	int rc;

	for (;;) {
		/* Found dead meanwhile (our lock descriptor closed by the
		 * program), our mailbox reaped and perhaps someone else's
		 * now: its lanes and its waiting word are not ours to touch
		 * (helper-42: a buried receiver detached the next opening's
		 * lanes). Two loads, each pass. A process paused between this
		 * look and its next store may still write the next opening's
		 * words once, as any process found dead while it runs: its
		 * program closed its lock descriptor, the library can only
		 * narrow that. */
		if (dri_self_buried(mb->r) || ld_acq64(&m->owner) != mb->r->owner)
			return -ENOLCK;
		rc = dri_take(mb, msg, filter_call);
		if (rc)
			break;
		DRI_CRASHPOINT(wait_empty);
		now = dri_mono_ns();
		if (hook && now >= next_hook) {
			rc = hook(mb, msg, arg);
			if (rc < 0) {
				/* What the hook saw (a worker gone) may have
				 * sent its answer first: look once more. */
				int again = dri_take(mb, msg, filter_call);

				if (again)
					rc = again;
			}
			if (rc) {
				*next_look = 0;
				break;
			}
			next_hook = now + LIVENESS_NS;
			*next_look = next_hook;
		}
		if (deadline && now < spin_end && now < deadline) {
			/* Now and then let the sender run, should it share
			 * our CPU: then spinning alone would only delay it. */
			if (++spins % 16 == 0)
				sched_yield();
			else
				caa_cpu_relax();
			continue;
		}
		/* Arm the wake-up, then look once more: a sender that
		 * published before it saw the flag is seen here, one that
		 * published after wakes us. The wake-up stays armed when we
		 * return empty-handed, so the descriptor polls readable at
		 * the next message. */
		wakeups_drain(mb);
		st_rel32(&m->waiting, ((CMM_LOAD_SHARED(m->waiting) | 1u) + 2u));
		cmm_smp_mb();
		rc = dri_take(mb, msg, filter_call);
		if (rc)
			break;
		/* A stale call's answer that finds no room in its caller's
		 * lane (a caller paused or not reading) is tried again 20 ms
		 * later, then 40, ... up to every second (helper-42: every
		 * 20 ms, an idle worker woke 50 times a second for it). */
		if (mb->deferred)
			mb->defer_ns = !mb->defer_ns ? LIVENESS_NS
				       : mb->defer_ns >= DEFER_MAX_NS / 2 ? DEFER_MAX_NS
				       : 2 * mb->defer_ns;
		else
			mb->defer_ns = 0;
		if (now >= deadline)
			return deadline == 0 ? -EAGAIN : -ETIMEDOUT;
		uint64_t until = deadline;
		/* dr_recv's look at the calls in flight needs a timer only
		 * while there are some (an async call made meanwhile by
		 * another thread wakes us: dri_mailbox_poke). */
		if (hook && next_hook < until &&
		    (hook != dri_pending_look || __atomic_load_n(&mb->pend.n, __ATOMIC_RELAXED) ||
		     mb->watches))
			until = next_hook;
		if (mb->deferred && now + mb->defer_ns < until)
			until = now + mb->defer_ns; /* a stale call's answer waits for room */
		/* To the microsecond: a timeout rounded up to whole ms
		 * after the spin overshot by the spin's length. */
		struct pollfd p = { .fd = mb->sock, .events = POLLIN };
		struct timespec ts;

		if (until != UINT64_MAX) {
			uint64_t t = dri_mono_ns(), left = until > t ? until - t : 0;

			ts.tv_sec = (time_t)(left / 1000000000ull);
			ts.tv_nsec = (long)(left % 1000000000ull);
		}
		(void)ppoll(&p, 1, until == UINT64_MAX ? NULL : &ts, NULL);
		spin_end = dri_mono_ns() + base / 4;
	}
	/* Only if set: senders read this line at every message. */
	uint32_t w = CMM_LOAD_SHARED(m->waiting);

	if (w & 1)
		st_rel32(&m->waiting, w & ~1u);
	if (rc > 0)
		mb->spin_ns = dri_spin_learn(mb->spin_ns, dri_mono_ns() - start, base, max);
	return rc < 0 ? rc : 0;
}

DR_EXPORT int dr_recv(dr_mailbox *mb, struct dr_msg *msg, int timeout_ms)
{
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (!msg || timeout_ms < -1)
		return -EINVAL;
	dri_finish(mb);
	/* A watch's event first (watch.c: looked at every 20 ms at most). */
	if (dri_watch_take(mb, msg))
		return 0;
	/* A message waiting: no clock to read, nothing to arm. */
	err = dri_take(mb, msg, 0);
	if (err)
		return err < 0 ? err : 0;
	return dri_wait_take(mb, msg, 0, timeout_ms == 0 ? 0 : dri_deadline(timeout_ms),
			     &mb->next_look, dri_pending_look, NULL);
}

/* Wake a thread of ours asleep in dr_recv on mb, so that it looks again at
 * what it waits for (a call was put in flight). */
void dri_mailbox_poke(dr_mailbox *mb)
{
	if (wake_sock(mb->r) >= 0)
		wake(mb->r, &mb->r->mboxes[mb->idx], mb->ref);
}

/* Close mb; shared: this process may still write the segment. */
void dri_mailbox_free(dr_mailbox *mb, bool shared)
{
	struct dr_registry *r = mb->r;
	struct dri_served *sv;
	struct dr_mailbox **pp;

	if (shared) {
		struct dri_mbox *m = &r->mboxes[mb->idx];

		/* The bridge role held through this mailbox ends with it. */
		dri_bridge_closing(mb);
		/* Only the registrations made through this mailbox: the
		 * name may have been served by another one since. */
		for (sv = mb->served; sv; sv = sv->next)
			(void)dri_unregister(r, sv->name, sv->len,
					     sv->global ? DRI_REG_GLOBAL : 0, sv->regid, false);
		dri_finish(mb);
		/* Detach every lane: their senders free them; a dead
		 * sender's we free. Our own too are freed by our sending
		 * side (lanes_sweep, at the next claim or at dr_close), which
		 * knows whether another of our threads is writing in one: a
		 * lane freed here under such a thread could be claimed by
		 * another process and overwritten by ours (found by review). */
		for (uint32_t s = 0; s < DRI_MBOX_LANES; s++) {
			uint32_t v = table_lane(r, m, s);
			uint64_t o;

			if (!v)
				continue;
			o = ld_acq64(&dri_lane_at(r, DRI_LV_LANE(v))->owner);
			detach(mb, s, v,
			       o != 0 && o != r->owner && dri_owner_gone(r, o) ? o : 0);
		}
		/* Unbound before the slot is free: a sender to this opening
		 * then reaches nobody rather than us (wake()). */
		close(mb->sock);
		mb->sock = -1;
		if (ld_acq64(&m->owner) == r->owner)
			uatomic_cmpxchg(&m->owner, r->owner, 0);
	}
	served_free(mb);
	if (!mb->for_replies) {
		pthread_mutex_lock(&r->lock);
		for (pp = &r->mailboxes; *pp; pp = &(*pp)->next) {
			if (*pp == mb) {
				*pp = mb->next;
				break;
			}
		}
		pthread_mutex_unlock(&r->lock);
	}
	if (mb->sock >= 0)
		close(mb->sock);
	pthread_mutex_destroy(&mb->call_lock);
	pthread_mutex_destroy(&mb->start_lock);
	free(mb->bounce);
	dri_pend_free(&mb->pend);
	dri_moves_free(mb);
	dri_watches_free(mb);
	free(mb);
}

DR_EXPORT void dr_mailbox_close(dr_mailbox *mb)
{
	if (!mb)
		return;
	/* getpid(), as in dr_close(): a child made without the fork handlers
	 * has our cached pid, and would end its parent's bridge role. */
	dri_mailbox_free(mb, mb->r->pid == dri_self_pid && mb->r->pid == getpid() &&
				     !dri_self_buried(mb->r));
}

DR_EXPORT int dr_mailbox_stats(dr_mailbox *mb, struct dr_mailbox_stats *out)
{
	struct dri_mbox *m;
	int err = dri_mb_begin(mb);

	if (err)
		return err;
	if (!out)
		return -EINVAL;
	m = &mb->r->mboxes[mb->idx];
	memset(out, 0, sizeof(*out));
	out->stale = uatomic_read(&m->stale);
	out->late = uatomic_read(&m->late);
	out->corrupt = mb->corrupt;
	for (uint32_t s = 0; s < DRI_MBOX_LANES; s++)
		out->lanes += table_lane(mb->r, m, s) != 0;
	return 0;
}

DR_EXPORT uint64_t dr_late_replies(const dr_registry *r)
{
	return r ? __atomic_load_n(&r->late_replies, __ATOMIC_RELAXED) : 0;
}

DR_EXPORT size_t dr_message_max(const dr_registry *r)
{
	return r ? r->lane_bytes - DR_MSG_OVERHEAD : 0;
}
