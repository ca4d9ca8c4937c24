/*
 * dri.h - libdistreg's private header: the segment layout and the internal
 * interfaces between the library's files. Never installed.
 *
 * The segment layout is an ABI between processes running different builds,
 * so it lives here and not in distreg.h, and every change to it must change
 * the format word (see dri_format_word()). Everything in the segment is
 * addressed by index or offset, never by pointer.
 *
 * Each shared field says how it is accessed. "atomic" fields are read with
 * ld_acq()/CMM_LOAD_SHARED and written with st_rel() or a uatomic RMW;
 * "immutable" fields are written before the object is published (by a
 * release store or a full-barrier CAS) and never changed while it is.
 */
#ifndef DRI_H
#define DRI_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <urcu/arch.h>
#include <urcu/uatomic.h>

#include "crashpoint.h"
#include "distreg.h"

#define DR_EXPORT __attribute__((visibility("default")))

#define DRI_CACHELINE 64
#define DRI_HUGE_PAGE (2ull << 20)
#define DRI_ALIGNED __attribute__((aligned(DRI_CACHELINE)))

/* "DISTREG1", little-endian. */
#define DRI_MAGIC 0x3147455254534944ull
/* Bump whenever a shared struct or the meaning of a field changes.
 * 5: lane table values with a generation, mailbox reaping claims.
 * 6: the cluster area (bridge role, view), global names (the top bit of
 * an entry's name length), a record's flags, a process slot's start time.
 * 7: a lane's tail carries DRI_LANE_EVICTED, published by CAS (a sender of
 * layout 6 would store over the bit and publish into an evicted lane).
 * 9: a process slot's word counts attachments (the generation is its low
 * 24 bits), the slot holds its holder's pid namespace, and whoever finds a
 * holder dead clears its live bit (a process of layout 8 would leave the
 * namespace of a previous holder beside its own pid, and another reader of
 * that namespace would record it dead).
 * 10: the cluster area holds the bridge role's liveness lock and `live`
 * (a bridge of layout 9 would neither clear `live` when it claims nor hold
 * the lock, and readers would vouch for its dead predecessor).
 * 11: the header counts recorded deaths (`deaths`), and a mailbox's
 * `waiting` word counts its owner's sleeps above bit 0 (a process of
 * layout 10 would neither count a death it finds, which a bridge's reaper
 * then misses, nor leave the count alone: it stores 1 and 0). */
#define DRI_LAYOUT_VERSION 11u
#define DRI_HEADER_SIZE 4096u
#define DRI_MAX_CAPACITY (1u << 26)
#define DRI_MAX_PROCS 65535u
#define DRI_MAX_THREADS (1u << 20)
#define DRI_MAX_MAILBOXES 65535u
#define DRI_MAX_LANES 65535u /* a lane table entry holds index + 1 in 16 bits */
#define DRI_MIN_LANE_BYTES 4096u
#define DRI_MAX_LANE_BYTES (1u << 30)

/* The byte a process slot's liveness lock sits on: slot i locks offset i. */

/*
 * The header. Fields above `epoch` are immutable once the segment has been
 * linked into /dev/shm under its name.
 */
struct dri_header {
	uint64_t magic;
	uint64_t format;          /* dri_format_word() of the creating build */
	uint64_t size;            /* bytes, as allocated */
	uint64_t created_ns;      /* CLOCK_REALTIME at creation */
	uint64_t seed;            /* hash seed, from getrandom() */
	uint32_t capacity;        /* entries, and so the most live names */
	uint32_t nbuckets;        /* power of two */
	uint32_t max_procs;
	uint32_t max_threads;
	uint64_t off_procs;
	uint64_t off_readers;
	uint64_t off_states;
	uint64_t off_buckets;
	uint64_t off_entries;
	uint64_t off_ext;
	int32_t creator_pid;
	uint32_t rcu_mode;        /* DRI_RCU_* chosen by the creator */
	uint32_t max_mailboxes;
	uint32_t max_lanes;
	uint32_t lane_bytes;      /* ring bytes of each lane, a power of two */
	uint32_t pad0;
	uint64_t off_mboxes;
	uint64_t off_lanes;
	uint64_t off_cluster;     /* struct dri_cluster */

	/* atomic; the grace-period epoch, starts at 1, only ever incremented
	 * (uatomic_add_return) by reclaimers; loaded by readers on entry. */
	uint64_t epoch DRI_ALIGNED;
	/* atomic; the next registration id (uatomic_add_return). Starts at
	 * the creation time in ns, so ids stay unique across re-creation. */
	uint64_t next_regid DRI_ALIGNED;
	/* atomic; one past the highest reader slot ever claimed, so
	 * reclaimers scan only the slots in use. Only grows. */
	uint32_t readers_hwm DRI_ALIGNED;
	/* atomic; deaths recorded in process slots (proc.c, found_dead),
	 * modulo 2^32: a reaper that lists the live slots misses a process
	 * found dead between two listings, and reaps when this moves
	 * (dr_admin_deaths). A finder killed between its CAS of the slot
	 * and this increment leaves the death uncounted: then the next
	 * dr_open() or dr_reap() reaps what it held, not the bridge. */
	uint32_t deaths;
};

enum {
	/* Readers run without a fence; reclaimers call
	 * membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED). Every attaching process
	 * must register for it. */
	DRI_RCU_MEMBARRIER = 1,
	/* Readers issue a full fence after announcing their epoch. Chosen
	 * when the creator could not use membarrier. */
	DRI_RCU_FENCE = 2,
};

/*
 * A process slot. Owned by whoever holds the OFD lock on byte (slot index)
 * of the segment file; the kernel drops that lock when the holder exits or
 * execs, which is what makes a dead owner detectable.
 */
struct dri_proc {
	/* atomic; (attachments << 1) | live, the generation being the low
	 * DRI_PROC_GEN_MASK bits of the count of attachments (0 skipped).
	 * Written only by the lock holder (CAS, at attach and detach), and by
	 * whoever finds its holder dead (CAS clearing the live bit): the
	 * count's upper bits keep such a CAS, made late, from landing on a
	 * later holder whose generation came round to the same number. */
	uint64_t word;
	int32_t pid;              /* written by the lock holder before word */
	uint32_t pad0;
	uint64_t attached_ns;     /* written by the lock holder before word */
	/* written by the lock holder before word: its start time in clock
	 * ticks since boot (/proc/<pid>/stat), so that a reaper holding a
	 * pidfd can tell the process from a later one with its pid */
	uint64_t start_time;
	/* written by the lock holder before word: the inode of its pid
	 * namespace (/proc/self/ns/pid), 0 unknown. Its pid means something
	 * only to a process of the same namespace (dri_owner_alive). */
	uint64_t pidns;
	uint8_t pad[DRI_CACHELINE - 40];
};

#define DRI_PROC_LIVE 1ull
#define DRI_PROC_GEN(w) ((uint32_t)((w) >> 1) & DRI_PROC_GEN_MASK)
/* A process slot's generation is 24 bits (1 to 2^24 - 1, then 1 again), so
 * that an owner id fits in 40 bits of an entry's state word. */
#define DRI_PROC_GEN_MASK 0xffffffu

/*
 * An owner id names one attachment of one process: the slot and the
 * generation it held, in 40 bits. A (slot, generation) pair comes back only
 * after 2^24 - 1 more attachments of the same slot, and every attachment
 * reaps what dead owners left first, so an id is dead for good once its
 * slot moved on. Never 0.
 */
#define DRI_OWNER(slot, gen) (((uint64_t)(slot) << 24) | ((uint64_t)(gen) & DRI_PROC_GEN_MASK))
#define DRI_OWNER_SLOT(o) ((uint32_t)((o) >> 24) & 0xffffu)
#define DRI_OWNER_GEN(o) ((uint32_t)(o) & DRI_PROC_GEN_MASK)

/* A reader slot, one per thread that reads; padded to its own line so a
 * reader writes nothing another thread writes. */
struct dri_reader {
	/* atomic; the epoch loaded at read-side entry, 0 outside. Written
	 * by the owning thread; cleared by a reaper once the owner is dead. */
	uint64_t epoch;
	/* atomic; owner id of the process whose thread holds the slot, 0 when
	 * free. Claimed by CAS from 0; freed by the thread (release store)
	 * or by a reaper (CAS) once the owner is dead. */
	uint64_t owner;
	int32_t tid;              /* informational */
	uint8_t pad[DRI_CACHELINE - 20];
};

/*
 * Entry states, one 64-bit word per entry in a compact array (the allocator
 * and reapers scan it; 8 states share a cache line):
 *   bits 63-62  tag
 *   bits 61-40  gen: how many times the entry was allocated, mod 2^22
 *   bits 39-0   the owner id (ALLOC, FREEING) or the low 40 bits of an
 *               epoch (RETIRED); 0 in FREE
 * The states, and who moves an entry between them:
 *   FREE(g)        next is 0. An allocator takes it by CAS to ALLOC(g+1, me).
 *   ALLOC(g, o)    owned by o: unpublished, linked, marked, or unlinked and
 *                  waiting to be retired. Whoever unlinks it (its deleter or
 *                  a search that met it marked) retires it by CAS to
 *                  RETIRED(g, epoch). An entry of a dead owner, or one whose
 *                  link is marked and that nobody retired, can be finished by
 *                  anyone: by index, but only inside a read-side section in
 *                  which the state was loaded, and only after finding the
 *                  entry through the table with the state unchanged
 *                  (table.c, dri_delete_exact). Its owner alone may give
 *                  back an entry it never published (plain store of FREE(g)).
 *   RETIRED(g, e)  unlinked, unreachable by readers that enter from now on.
 *                  A reclaimer takes it after its grace period by CAS to
 *                  FREEING(g, me).
 *   FREEING(g, o)  o is resetting it: o stores next = 0, then FREE(g). Nobody
 *                  else touches it while o lives; if o died, anyone takes it
 *                  over by CAS to FREEING(g, me) and finishes.
 * The generation makes every allocation's ALLOC word unique (up to 2^22
 * allocations of one entry), so a process that loaded a state word and was
 * paused cannot mistake a later allocation of the same entry, even by the
 * same owner, for the one it saw; a RETIRED word is unique anyway, as an
 * entry is freed only after the epoch moved past its retirement. Every
 * transition another process may also attempt is a CAS; the two plain
 * stores (FREE by a FREEING holder, and by an owner giving back an
 * unpublished entry) are made by the only process allowed to move the entry
 * on from that state.
 */
#define DRI_ST_TAG(s) ((s) >> 62)
#define DRI_TAG_FREE 0ull
#define DRI_TAG_ALLOC 1ull
#define DRI_TAG_RETIRED 2ull
#define DRI_TAG_FREEING 3ull
#define DRI_ST_LOW_BITS 40
#define DRI_ST_LOW_MASK ((1ull << DRI_ST_LOW_BITS) - 1)
#define DRI_ST_GEN_MASK ((1ull << 22) - 1)
#define DRI_ST_GEN(s) (((s) >> DRI_ST_LOW_BITS) & DRI_ST_GEN_MASK)
#define DRI_ST_MAKE(tag, gen, low)                                                 \
	(((uint64_t)(tag) << 62) | (((uint64_t)(gen) & DRI_ST_GEN_MASK) << DRI_ST_LOW_BITS) | \
	 ((uint64_t)(low) & DRI_ST_LOW_MASK))
#define DRI_ST_FREE(gen) DRI_ST_MAKE(DRI_TAG_FREE, gen, 0)
#define DRI_ST_ALLOC(gen, owner) DRI_ST_MAKE(DRI_TAG_ALLOC, gen, owner)
#define DRI_ST_RETIRED(gen, ep) DRI_ST_MAKE(DRI_TAG_RETIRED, gen, ep)
#define DRI_ST_FREEING(gen, owner) DRI_ST_MAKE(DRI_TAG_FREEING, gen, owner)
/* The owner of an ALLOC or FREEING word. */
#define DRI_ST_OWNER(s) ((s) & DRI_ST_LOW_MASK)

/*
 * The full epoch of a RETIRED word, given an epoch `now` loaded after the
 * word: the latest epoch at or before now with those low 40 bits. That is
 * the retirement epoch unless the entry has been retired for 2^40 grace
 * periods, and never earlier than it, so a reclaimer that trusts it can free
 * an entry late but never early.
 */
static inline uint64_t dri_st_epoch(uint64_t s, uint64_t now)
{
	return now - ((now - s) & DRI_ST_LOW_MASK);
}

/*
 * Links (bucket heads and entries' next) are 32 bits:
 *   bits 0-26   index + 1 of the entry linked to (0 ends a chain)
 *   bits 27-30  the top 4 bits of that entry's tag, so that a search can
 *               tell that a chain has passed its key without touching the
 *               entry (chains are sorted by tag first)
 *   bit 31      in an entry's own next link: the entry is logically
 *               deleted (Harris); once set, the link never changes again
 */
#define DRI_MARK 0x80000000u
#define DRI_LINK_IDX_MASK 0x07ffffffu
#define DRI_LINK_FP_SHIFT 27
#define DRI_LINK_IDX(l) (((l) & DRI_LINK_IDX_MASK) - 1)
#define DRI_LINK_FP(l) (((l) >> DRI_LINK_FP_SHIFT) & 0xfu)
#define DRI_TAG_FP(tag) ((uint32_t)(tag) >> 12)
/* The link to entry idx, whose tag is tag. */
#define DRI_LINK(idx, tag) (((uint32_t)(idx) + 1) | (DRI_TAG_FP(tag) << DRI_LINK_FP_SHIFT))

/* The name-length byte of an entry: the length, and the namespace. */
#define DRI_NAME_GLOBAL 0x80u
#define DRI_LENB(len, global) ((uint8_t)((len) | ((global) ? DRI_NAME_GLOBAL : 0u)))
#define DRI_LENB_LEN(b) ((size_t)((b) & 0x7fu))
#define DRI_LENB_GLOBAL(b) (((b) & DRI_NAME_GLOBAL) != 0)

/* Whether an entry's name-length byte can be a registration's: a local
 * name of 1 to DR_NAME_MAX bytes, or a global one of 0 (the bridge's
 * address) to DR_NAME_MAX. */
static inline bool dri_lenb_ok(uint8_t b)
{
	return DRI_LENB_GLOBAL(b) || DRI_LENB_LEN(b) >= 1;
}

/* The seed of global names in the table: the segment's seed with this
 * mixed in, so that the two namespaces hash apart. */
#define DRI_GLOBAL_SALT 0x9e3779b97f4a7c15ull

/* What of a name and a value lives in the entry itself; the rest goes to
 * the entry's extension (struct dri_ext). */
#define DRI_NAME_INLINE 20
#define DRI_VALUE_INLINE 16

/*
 * An entry: one registration, in one cache line. A lookup of a name of up
 * to DRI_NAME_INLINE bytes whose value has at most DRI_VALUE_INLINE bytes
 * reads this line and nothing else of the entry; a registration writes it
 * alone. Longer names and values use the entry's extension as well.
 *
 * Within a bucket, entries are sorted by (tag, name length, name): tag is
 * the top 16 bits of the name's hash (the bucket is chosen by its low bits).
 * The owner is not stored here: it is in the entry's state word, ALLOC(g,
 * owner), for as long as the entry is linked and not yet retired.
 */
struct dri_entry {
	/* atomic; successor link (see above), DRI_MARK when this entry is
	 * deleted. Once marked it never changes again. 0 while free. */
	uint32_t next;
	/* atomic; the current value. bit 0: an update is in progress (owner
	 * only); bits 1-2: the slot holding the value: 0 inline (val), 1 or 2
	 * the extension's val[0] or val[1]; bits 3-31: a version, moved on by
	 * every update. Written by the owner only. */
	uint32_t vsel;
	uint64_t regid;                  /* immutable */
	int32_t pid;                     /* immutable */
	uint16_t tag;                    /* immutable; hash >> 48 */
	/* immutable; bits 0-6 the name's length, 1 to DR_NAME_MAX (0 only
	 * for the bridge's address); bit 7 (DRI_NAME_GLOBAL) set for a
	 * global name, which is hashed with the global seed: a local and a
	 * global name of the same bytes are two keys (see DRI_LENB) */
	uint8_t name_len;
	uint8_t vlen;                    /* length of the value in val */
	/* immutable; the mailbox messages for the name go to (a mailbox
	 * ref, see struct dri_mbox), 0 for a name registered without one */
	uint32_t mbox;
	uint8_t name[DRI_NAME_INLINE];   /* immutable; the first bytes */
	uint8_t val[DRI_VALUE_INLINE];   /* value slot 0 */
} DRI_ALIGNED;

/*
 * An entry's extension: the same index in a parallel array, touched only for
 * a name longer than DRI_NAME_INLINE or a value longer than
 * DRI_VALUE_INLINE (or a value update, which writes the slot not current).
 */
struct dri_ext {
	uint8_t name[DR_NAME_MAX - DRI_NAME_INLINE + 1]; /* immutable; the rest */
	uint8_t vlen[2];                 /* lengths of val[0], val[1] */
	uint8_t pad[DRI_CACHELINE * 2 - (DR_NAME_MAX - DRI_NAME_INLINE + 1) - 2];
	uint8_t val[2][DR_VALUE_MAX];    /* value slots 1 and 2 */
} DRI_ALIGNED;

/*
 * Mailboxes. A mailbox is a slot that a process claims (owner) and that
 * names point to (dri_entry.mbox holds its ref). Messages reach it through
 * lanes: a lane is a single-producer, single-consumer byte ring from one
 * sending process to one mailbox, taken from a shared pool by the sender
 * and attached to the mailbox's lane table. So a sender killed anywhere in
 * a send leaves at most an unpublished tail in its own lane (the receiver
 * sees the message whole or not at all), and a paused sender holds back
 * nobody else's messages.
 *
 * A mailbox ref names one opening of a mailbox: (index + 1) | gen << 16,
 * gen the low 16 bits of the slot's generation at that opening. Never 0.
 */
#define DRI_MBOX_LANES 32
#define DRI_MBOX_REF(idx, gen) (((uint32_t)(idx) + 1) | ((uint32_t)(gen) & 0xffffu) << 16)
#define DRI_MBOX_IDX(ref) (((ref) & 0xffffu) - 1)
#define DRI_MBOX_GEN(ref) ((ref) >> 16)

struct dri_mbox {
	/* atomic; owner id of the process that holds the mailbox, 0 free.
	 * Claimed by CAS from 0 (after gen moved on); freed by its owner at
	 * close, or by a reaper (CAS) once the owner is dead. */
	uint64_t owner;
	/* atomic; bumped by each claim just after it takes the owner word,
	 * before the new owner arms `waiting`: refs of an earlier opening
	 * never match again (for 2^16 openings). */
	uint32_t gen;
	/* atomic; bit 0 set while the owner is about to sleep or asleep,
	 * bits 1-31 count its sleeps: a sender that publishes a message and
	 * sees the bit set wakes it, then clears the bit by CAS from the word
	 * it read (mailbox.c, wake()), so about one sender wakes each sleep,
	 * and one killed before it woke the owner leaves the bit set for the
	 * next sender, or a reaper (dri_reap_mailboxes). The count goes on
	 * across openings of the slot and wraps after 2^31 arms, which an
	 * event loop calling dr_recv(0) without pause makes in about 13
	 * minutes here: a sender paused that long between its load and its
	 * CAS clears a later sleep if the word matches exactly (1 in 2^31),
	 * and that sleep waits for the next message. */
	uint32_t waiting;
	/* atomic; messages dropped because the registration they were sent
	 * to had ended, and replies that came after their call had ended. */
	uint64_t stale;
	uint64_t late;
	uint8_t pad[DRI_CACHELINE - 32];
	/* atomic; DRI_LV(lane index, lane generation) of each attached lane,
	 * 0 free. Set by the lane's sender (CAS from 0), or by a sender that
	 * evicts a drained lane (CAS from that lane's value, after it set
	 * DRI_LANE_EVICTED in the lane's tail: see there). Cleared by the
	 * owner, or a reaper, when the lane is drained and its sender dead,
	 * or evicted, or it targets an earlier opening (CAS); by the lane's
	 * own sender once its lane is evicted. The generation makes a CAS
	 * made on an old view fail once the lane was freed and claimed again
	 * (for 2^16 claims of that lane; an evictor, which may pause between
	 * its look and its CAS while a receiver, a reaper and senders go on,
	 * also checks the lane's whole 32-bit generation and its mark just
	 * before the CAS: test_breakev). A sender gets -EUSERS only when
	 * every slot holds a lane with unread records. */
	uint32_t lane[DRI_MBOX_LANES];
} DRI_ALIGNED;

/* A mailbox's owner word while a reaper clears the table of a dead owner's
 * mailbox: the reaper's owner id with this bit. Nobody opens the slot, and
 * no opening of it is current, until the reaper stores 0; another reaper
 * takes over (CAS) if this one dies. */
#define DRI_MBOX_REAPING (1ull << 63)

/* A lane table value: lane i of generation gen attached. */
#define DRI_LV(i, gen) (((uint32_t)(gen) & 0xffffu) << 16 | ((uint32_t)(i) + 1))
#define DRI_LV_LANE(v) (((v) & 0xffffu) - 1) /* the lane index of a nonzero value */

/* A lane's header; lane_bytes of ring follow it. */
struct dri_lane {
	/* atomic; owner id of the sending process, 0 free. Claimed by CAS from
	 * 0; freed by its sender (release store, once detached), or by a
	 * reaper (CAS) once the sender is dead and the lane detached or
	 * drained. */
	uint64_t owner;
	uint32_t target;          /* the mailbox ref it sends to; set by the sender before attaching */
	uint32_t slot;            /* its index in the target's lane table; likewise */
	/* atomic; bumped by each claim, right after the owner CAS and before
	 * the lane is attached (see DRI_LV). */
	uint32_t gen;
	uint8_t pad0[DRI_CACHELINE - 20];
	/* atomic; bytes published, and DRI_LANE_EVICTED. The sender publishes
	 * by CAS from the tail it wrote at; an evictor sets the bit by CAS
	 * from a tail it saw equal to head (see DRI_LANE_EVICTED). */
	uint64_t tail DRI_ALIGNED;
	uint64_t head DRI_ALIGNED; /* atomic; bytes consumed, written by the receiver only */
} DRI_ALIGNED;

/*
 * Eviction: a lane of a live sender gives its slot up to another sender.
 * The lane table has DRI_MBOX_LANES slots, and a lane stays attached while
 * its sender lives; so a sender that finds no free slot evicts a drained
 * lane (head == tail):
 *  1. it CASes the victim's tail from T (seen == head) to T | EVICTED:
 *     this succeeds only if nothing was published since, and from then on
 *     the sender's publish (a CAS from an unmarked tail) fails, so no
 *     record is ever published into the lane again (crash point
 *     lane_evicting);
 *  2. it CASes the slot from the victim's value to its own lane's (crash
 *     point lane_evicted), then checks the opening as after any attach.
 * A lane whose tail already has the bit (an evictor died or paused
 * between 1 and 2) is taken by step 2 alone. The sender of the victim
 * learns it at its next send (lane_usable, or its publish CAS failing):
 * its record was not published, so it detaches the lane if still attached,
 * frees it, claims another lane and writes the record again. Invariants:
 *  - a lane with the bit has head == tail & ~EVICTED for good: the receiver
 *    holds no record of it (it holds one only while head is before its
 *    end) and will never read one; so anyone may detach it, and its sender
 *    frees it once detached (a reaper, if the sender is dead);
 *  - every record is published at most once (one CAS) and, once
 *    published, is in an attached lane whose tail has no bit: no evictor
 *    detaches it before the receiver has consumed it;
 *  - a sender's records to one opening stay in order: the lane it leaves
 *    was drained, and the record refused was its next one;
 *  - a lane's tail never goes back, not even across claims (a claim
 *    starts the lane empty where the last one left it), so the tail CAS
 *    made on a stale view fails if anything was published since; one
 *    that hits a reclaimed lane with nothing published yet marks a
 *    drained lane (its sender handles that as an eviction), and the
 *    slot CAS fails by the lane's generation (DRI_LV).
 */
#define DRI_LANE_EVICTED (1ull << 63)

/*
 * A record in a lane's ring, 8-byte aligned; the name and the data follow,
 * padded to 8. A record may wrap around the end of the ring.
 */
struct dri_rec {
	uint32_t len;             /* whole record, a multiple of 8, >= sizeof(struct dri_rec) */
	uint8_t kind;             /* DR_MSG_* */
	uint8_t name_len;         /* the target name's, 0 for a reply */
	uint16_t flags;
	uint64_t regid;           /* the target registration, 0 for a reply */
	uint64_t call_id;
	uint32_t reply_to;        /* mailbox ref for the reply of a call, else 0 */
	int32_t sender_pid;
	int32_t status;           /* a reply's: 0 or a negative errno */
	uint32_t data_len;
};

/* dri_rec.flags: the target name is a global name (for the bridge's
 * address, of length 0). */
#define DRI_REC_GLOBAL 1u
/* a system event about a registration that ends as it is sent (dienow):
 * delivered although the registration is gone */
#define DRI_REC_ENDED 2u
/* a REPLY with status -ENOENT to a call that reached no worker
 * (DR_NOTSERVED to a caller that asks to tell the two apart). In the
 * segment the status stays -ENOENT: a library that predates the flag reads
 * what it always did, and a worker's own answer never carries the flag. */
#define DRI_REC_NOTSERVED 4u

/* ---------------------------------------------------------------------- */
/*
 * The cluster area: the bridge role and the view (bridge/DESIGN.md).
 *
 * The bridge role is one process's (owner id): it claims it by CAS of the
 * owner word from 0 or from a dead holder's id, then serves the bridge's
 * address (the global name of length 0) through its mailbox, and then
 * marks the segment as one a bridge has run on (ever). Senders find the
 * bridge's mailbox through the table, like any name; the role word only
 * says who holds it, for liveness and for the publisher's check.
 *
 * The view has two copies and an index naming the one to read (its bit 0).
 * The one writer (the role holder) writes the copy the index does not name,
 * with that copy's sequence odd meanwhile, makes the sequence even again,
 * then increments the index, which names the new copy. A reader reads the named copy and keeps what it read
 * only if the sequence was even before and unchanged after; else it reads
 * the other copy. A writer paused in the middle of a publication leaves
 * one copy odd and the other whole: readers never wait for it. Every
 * publication moves a copy's sequence on (by 2, from odd or even), so a
 * reader that straddles two publications of one copy sees it change.
 * Everything a reader takes from a copy is checked before use (another
 * process may have scribbled on it); a copy that fails is not used.
 */

/* A host, the part read by every ownership lookup: 16 bytes. */
struct dri_vhost_hot {
	uint64_t seed;            /* XXH3_64bits(id) */
	uint8_t state;            /* DR_HOST_* */
	uint8_t self;             /* 1 for this host, else 0 */
	uint8_t id_len;           /* 1 to DR_HOST_MAX */
	uint8_t rpc_len;          /* 0 to DR_ADDR_MAX */
	uint32_t pad;
};

/* A host, the rest: read only to list the view. Strings NUL-padded. */
struct dri_vhost {
	uint64_t incarnation;
	char id[DR_HOST_MAX + 1];
	char rpc[DR_ADDR_MAX + 1];
};

/* One copy of the view. Written only by the role holder, while seq is
 * odd; everything but seq is plain data read under seq. */
struct dri_view {
	uint64_t seq;             /* atomic; odd while being written */
	uint64_t epoch;           /* 0: no view published into this copy yet */
	uint32_t nhosts;          /* 0 (with epoch 0) to DR_HOSTS_MAX */
	uint8_t pad[DRI_CACHELINE - 20];
	struct dri_vhost_hot hot[DR_HOSTS_MAX];
	struct dri_vhost host[DR_HOSTS_MAX];
} DRI_ALIGNED;

struct dri_cluster {
	/* atomic; owner id of the bridge role's holder, 0 none. Taken by
	 * CAS from 0 or from a dead holder's id; given back by its holder
	 * (CAS to 0) at release or when it closes the role's mailbox. */
	uint64_t owner;
	/* atomic; 1 once a bridge has served its address on this segment
	 * (then global operations need a live bridge). Never cleared. */
	uint32_t ever;
	int32_t pid;              /* the holder's pid; written by the holder after its claim */
	uint32_t mbox;            /* atomic; the holder's mailbox ref, 0 while claiming; holder only */
	uint32_t pad0;
	uint64_t regid;           /* the bridge address's registration; holder only */
	uint8_t pad1[DRI_CACHELINE - 32];
	/*
	 * The holder's liveness, which every process reads with no system
	 * call (cluster.c, holder_vouched): a robust, process-shared mutex,
	 * initialised at creation, that a thread of the holder's holds while
	 * it has the role (bridge.c, struct dri_live). The kernel marks it
	 * (FUTEX_OWNER_DIED in its word) as that thread exits, however it
	 * exits, before its process can be reaped; it can only for a thread
	 * whose robust list it knows (bridge.c, robust_registered).
	 */
	pthread_mutex_t live_lock DRI_ALIGNED;
	/* atomic; (tid << DRI_LIVE_TID_SHIFT) | owner id of the holder and
	 * the thread holding live_lock for it, 0 none (then readers ask the
	 * kernel). Cleared by a claimer before it takes the lock, and by the
	 * holder before it gives the role back. */
	uint64_t live;
	/* atomic; how many publications flipped it: bit 0 names the copy
	 * readers read. A count and not the copy's number, so that a reader
	 * that finds it unchanged knows no publication ended meanwhile (0, 1,
	 * 0 again would look unchanged: tests/model/v1_view.pml, OLD3).
	 * Incremented by the role holder only, after the copy is whole. */
	uint32_t view_index DRI_ALIGNED;
	struct dri_view view[2];
} DRI_ALIGNED;

/* live_lock's futex word (glibc's layout: the holder's tid, and
 * FUTEX_OWNER_DIED once the kernel found the holder dead); elsewhere no
 * word is read and readers always ask the kernel. */
#ifdef __GLIBC__
#define DRI_LIVE_WORD(c) ((uint32_t *)&(c)->live_lock.__data.__lock)
#endif
/* dri_cluster.live: a tid (below 2^22, the kernel's PID_MAX_LIMIT) above
 * a whole owner id (40 bits: DRI_OWNER). */
#define DRI_LIVE_TID_SHIFT 40

/* The ownership hash's seed (bridge/DESIGN.md "Ownership"): the same on
 * every host, so every host computes the same owner. "dr.owner". */
#define DRI_OWNER_SEED 0x72656e776f2e7264ull

#define DRI_VSEL_BUSY 1u
#define DRI_VSEL_SLOT(w) (((w) >> 1) & 3u)
#define DRI_VSEL_NEXT(w, slot) ((((w) >> 3) + 1) << 3 | (uint32_t)(slot) << 1)

/* ---------------------------------------------------------------------- */
/* Process-private state. */

/*
 * Entries a thread retires before it runs a grace period to free them. A
 * grace period costs one membarrier(), which interrupts every CPU running
 * an attached process and is serialised by the kernel: with 64, two
 * processes churning names spent half their time in it (470 ns per
 * register+unregister pair against 70 ns for one process). The batch of a
 * small table is smaller (retire_batch), so that retired entries never hold
 * much of it.
 */
#define DRI_RETIRE_BATCH 1024
/* Registration ids a thread reserves at a time (table.c, next_regid). */
#define DRI_REGID_BLOCK 256

/* Per (thread, handle) state; found through a pthread key. */
struct dri_thread {
	struct dr_registry *r;
	struct dri_thread *next;          /* in r->threads, under r->lock */
	struct dri_reader *slot;
	uint32_t slot_idx;
	uint32_t nest;                    /* read-side nesting depth */
	uint32_t cursor;                  /* allocator's next-fit position */
	uint32_t nretired;
	uint64_t regid_next, regid_end;   /* this thread's block of regids */
	struct dr_mailbox *reply_mb;      /* for this thread's dr_call answers */
	uint32_t nreuse;
	uint32_t retired[DRI_RETIRE_BATCH];
	/*
	 * Entries this thread retired whose grace period has ended: the one
	 * that began at epoch reuse_T, with no live reader inside since before
	 * reuse_oldest (rcu.c, dri_reclaim_own). They stay RETIRED, so any
	 * reclaimer may still free them, and the allocator takes them back
	 * from that state with one CAS (rcu.c, dri_take_reusable) instead of
	 * a CAS to free each and another to take it. Only a hint: another
	 * thread may have freed or taken them meanwhile.
	 */
	uint64_t reuse_T, reuse_oldest;
	uint32_t reuse[DRI_RETIRE_BATCH];
};

struct dri_live;

struct dr_registry {
	uint64_t id;                      /* unique per handle in the process */
	uint32_t wait_spin_us;            /* dr_set_wait_spin(); every wait reads it */
	uint64_t late_replies;            /* dr_late_replies(); atomic */
	pid_t pid;                        /* the process that opened it */
	int fd;                           /* segment file; holds the slot lock */
	uint8_t *base;
	size_t size;
	struct dri_header *hdr;
	struct dri_proc *procs;
	struct dri_reader *readers;
	uint64_t *states;
	uint32_t *buckets;
	struct dri_entry *entries;
	struct dri_ext *ext;
	struct dri_mbox *mboxes;
	uint8_t *lanes;                   /* max_lanes of lane_stride bytes */
	struct dri_cluster *cluster;
	uint32_t max_mailboxes;
	uint32_t max_lanes;
	uint32_t lane_bytes;
	uint64_t lane_stride;             /* header + lane_bytes */
	/* The geometry, from the header as checked at open: the header is
	 * shared memory any process can write, so it is never read again. */
	uint32_t capacity;
	uint32_t max_procs;
	uint32_t max_threads;
	uint32_t retire_batch;            /* <= DRI_RETIRE_BATCH, see there */
	uint32_t mask;                    /* nbuckets - 1 */
	uint64_t seed;
	uint64_t gseed;                   /* global names' seed: seed ^ DRI_GLOBAL_SALT */
	bool fence;                       /* readers must fence (DRI_RCU_FENCE) */
	/* Opened with DR_OPEN_RDONLY: mapped PROT_READ, no process slot, no
	 * reader slot; every call that would write fails (-EROFS), and the
	 * inspection calls read without a read-side section (inspect.c). */
	bool rdonly;
	uint32_t slot;                    /* our process slot */
	uint64_t owner;                   /* our owner id */
	uint64_t slot_word;               /* our slot's word while we hold it */
	bool gen_wrapped;                 /* our owner id may have been used before */
	uint64_t pidns;                   /* our pid namespace's inode, 0 unknown */
	uint64_t fd_dev, fd_ino;          /* the segment file behind fd (fstat) */
	uint32_t updating;                /* our threads in value_update (atomic) */
	/* The thread holding the bridge role's live_lock for this handle
	 * (bridge.c, struct dri_live), NULL none; under view_lock. */
	struct dri_live *live;
	pthread_key_t key;
	pthread_mutex_t lock;             /* guards threads, mailboxes */
	struct dri_thread *threads;
	struct dr_mailbox *mailboxes;     /* open, of this handle */
	pthread_mutex_t send_lock;        /* guards lanemap, lanes_held */
	struct dri_lanemap *lanemap;      /* our lanes, by target (mailbox.c) */
	struct dri_lanemap *lanes_held;   /* ours, waiting to be detached */
	int wake_sock;                    /* for sending wake-ups; -1 until needed */
	int wake_spare;                   /* made before it: wake_fresh() at EMFILE */
	pthread_mutex_t view_lock;        /* one publication of the view at a time */
	char nodename[DR_HOST_MAX + 1];   /* uname's, truncated: this host without a view */
	struct dr_registry *next_open;    /* in the process-wide list */
	char segment[DR_SEGMENT_MAX + 1];
};

/* ---------------------------------------------------------------------- */
/* Little-endian integers of the formats messages carry. */

static inline void dri_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void dri_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t dri_get32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static inline uint64_t dri_get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* ---------------------------------------------------------------------- */
/* Small atomics on shared memory. */

static inline uint64_t ld_acq64(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline uint32_t ld_acq32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void st_rel64(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline void st_rel32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static inline struct dri_entry *dri_entry_at(struct dr_registry *r, uint32_t idx)
{
	return &r->entries[idx];
}

static inline struct dri_ext *dri_ext_at(struct dr_registry *r, uint32_t idx)
{
	return &r->ext[idx];
}

static inline struct dri_lane *dri_lane_at(struct dr_registry *r, uint32_t idx)
{
	return (struct dri_lane *)(r->lanes + (uint64_t)idx * r->lane_stride);
}

static inline uint8_t *dri_lane_ring(struct dr_registry *r, uint32_t idx)
{
	return (uint8_t *)(dri_lane_at(r, idx) + 1);
}

/* ---------------------------------------------------------------------- */
/* segment.c */
uint64_t dri_format_word(void);
int dri_segment_path(const char *segment, char *path, size_t len, const char **resolved);
int dri_segment_open(struct dr_registry *r, const char *segment,
		     const struct dr_options *opts);
void dri_segment_close(struct dr_registry *r);
uint64_t dri_now_ns(void);

/* proc.c */
char *dri_proc_stat(const char *path, char *buf, size_t len);
int dri_proc_attach(struct dr_registry *r);
void dri_proc_detach(struct dr_registry *r);
uint64_t dri_self_pidns(void);
bool dri_owner_alive(struct dr_registry *r, uint64_t owner);
bool dri_owner_gone(struct dr_registry *r, uint64_t owner);
void dri_fork_hold(void);
void dri_fork_release(void);
int dri_membarrier_setup(struct dr_registry *r);
void dri_membarrier(struct dr_registry *r);
void dri_registry_track(struct dr_registry *r);
void dri_registry_untrack(struct dr_registry *r);
extern pid_t dri_self_pid;

/* Take entry at by CAS from FREE, as ours: false if it is not free. */
static inline bool dri_take_free(struct dr_registry *r, uint32_t at)
{
	uint64_t *st = &r->states[at];
	uint64_t s = CMM_LOAD_SHARED(*st);

	return DRI_ST_TAG(s) == DRI_TAG_FREE &&
	       uatomic_cmpxchg(st, s, DRI_ST_ALLOC(DRI_ST_GEN(s) + 1, r->owner)) == s;
}

/* rcu.c */
int dri_thread_key_create(struct dr_registry *r);
int dri_thread_get_slow(struct dr_registry *r, struct dri_thread **out);
void dri_thread_release_all(struct dr_registry *r);
void dri_retire(struct dr_registry *r, struct dri_thread *t, uint32_t idx, uint64_t expect);
int dri_reclaim_own(struct dr_registry *r, struct dri_thread *t);
bool dri_take_reusable(struct dr_registry *r, struct dri_thread *t, uint32_t *idx);
void dri_reuse_flush(struct dr_registry *r, struct dri_thread *t);
/* How long an allocation waits for stalled readers before -EBUSY, and how
 * long at most while no reader it waits for is stalled: each is only
 * preempted (its thread is runnable and waits for a CPU: with more reading
 * threads than CPUs, or a vCPU the hypervisor descheduled, 50 ms is not
 * rare), or has left its section and newer ones hold reuse back. */
#define DRI_GRACE_WAIT_NS (50ull * 1000 * 1000)
#define DRI_GRACE_RUNNABLE_WAIT_NS (2000ull * 1000 * 1000)
enum dri_old_readers {
	DRI_OLD_NONE,     /* no reader has stayed in one section since then */
	DRI_OLD_RUNNABLE, /* some have, and every one of them is runnable */
	DRI_OLD_STALLED,  /* one of them is stopped, sleeping, or unknown */
};
enum dri_old_readers dri_old_readers(struct dr_registry *r, uint64_t since);
uint64_t dri_mono_ns(void);
uint64_t dri_coarse_ns(void);
int dri_reclaim_all(struct dr_registry *r, struct dri_thread *t, uint32_t *left);
unsigned dri_reap_readers(struct dr_registry *r);
void dri_reap_readers_of(struct dr_registry *r, uint64_t o);
void dri_entry_reset(struct dr_registry *r, uint32_t idx, uint64_t gen);
pid_t dri_stalled_reader(struct dr_registry *r, uint64_t newest_retired,
			 uint32_t *active, uint32_t *held);

/*
 * Whether other processes have found this handle's liveness lock gone and
 * buried it (cleared its slot's live bit): it must write nothing shared any
 * more, not even its reader slot, which may be another thread's by now.
 * One load of a line nobody writes while we hold the slot.
 */
static inline bool dri_self_buried(const struct dr_registry *r)
{
	/* A read-only handle holds no slot and may write nothing shared. */
	return __builtin_expect(r->rdonly || ld_acq64(&r->procs[r->slot].word) != r->slot_word, 0);
}

/* Per-thread state cache: the handle last used by this thread. */
struct dri_tcache {
	struct dr_registry *r;
	uint64_t id;
	struct dri_thread *t;
};
extern __thread struct dri_tcache dri_tcache __attribute__((tls_model("initial-exec")));

/* The calling thread's state for r, claiming a reader slot on first use. */
static inline int dri_thread_get(struct dr_registry *r, struct dri_thread **out)
{
	if (__builtin_expect(r->pid != dri_self_pid, 0))
		return -ECHILD;
	if (dri_self_buried(r))
		return r->rdonly ? -EROFS : -ENOLCK;
	if (__builtin_expect(dri_tcache.r == r && dri_tcache.id == r->id, 1)) {
		*out = dri_tcache.t;
		return 0;
	}
	return dri_thread_get_slow(r, out);
}

/*
 * Enter a read-side section: announce the current epoch in our own slot.
 * In membarrier mode no fence is needed: a reclaimer's membarrier() orders
 * this store before its scan of the slots, or our later loads after its
 * unlinks.
 */
static inline void dri_read_enter(struct dr_registry *r, struct dri_thread *t)
{
	if (t->nest++ == 0) {
		uint64_t e = ld_acq64(&r->hdr->epoch);
		CMM_STORE_SHARED(t->slot->epoch, e);
		if (r->fence)
			cmm_smp_mb();
		else
			cmm_barrier();
		DRI_CRASHPOINT(read_entered);
	}
}

static inline void dri_read_exit(struct dr_registry *r, struct dri_thread *t)
{
	/* The slot is ours unless we were buried meanwhile and a reaper
	 * gave it to another thread: then its epoch is not ours to clear.
	 * (Its owner word shares the epoch's line: no extra miss.) */
	if (--t->nest == 0 && CMM_LOAD_SHARED(t->slot->owner) == r->owner)
		st_rel64(&t->slot->epoch, 0);
}

/* table.c */

/* A name as the table looks it up: its bytes, its hash (the bucket is the
 * low bits), its tag (the top 16 bits, the first sort key) and its
 * name-length byte (the length and the namespace, the second). */
struct dri_key {
	const uint8_t *name;
	uint32_t len;
	uint8_t lenb;             /* DRI_LENB(len, global) */
	uint16_t tag;
	uint64_t hash;
};

uint64_t dri_hash(const struct dr_registry *r, const void *name, size_t len, bool global);
void dri_key_init(struct dri_key *k, const struct dr_registry *r, const void *name,
		  size_t len, bool global);
void dri_name_copy(struct dr_registry *r, uint32_t idx, size_t len, uint8_t *buf);
int dri_alloc_entry(struct dr_registry *r, struct dri_thread *t, uint32_t *idx);
void dri_free_unpublished(struct dr_registry *r, uint32_t idx);
int dri_insert(struct dr_registry *r, struct dri_thread *t, uint32_t idx,
	       const struct dri_key *k, const void *value, size_t value_len, uint32_t mbox);
int dri_lookup(struct dr_registry *r, const struct dri_key *k, struct dr_entry *out,
	       uint32_t *mbox, uint64_t *regid, uint64_t *owner);
int dri_delete(struct dr_registry *r, struct dri_thread *t, const struct dri_key *k,
	       uint64_t regid, bool force);
bool dri_delete_exact(struct dr_registry *r, struct dri_thread *t, uint32_t idx,
		      uint64_t state);
int dri_update_existing(struct dr_registry *r, struct dri_thread *t, const struct dri_key *k,
			const void *value, size_t value_len, uint32_t mbox);
void dri_value_read(struct dr_registry *r, uint32_t idx, struct dr_entry *out);
unsigned dri_reap_entries(struct dr_registry *r, struct dri_thread *t,
			  uint64_t only_owner);

/* mailbox.c, call.c */

/* A name served through a mailbox, remembered to unregister at close. */
struct dri_served {
	struct dri_served *next, *prev; /* the mailbox's list, for close */
	struct dri_served *hnext; /* its chain in the mailbox's index by name */
	uint64_t regid;           /* the registration made: only that one is ended at close */
	size_t len;
	bool global;
	unsigned char name[];
};

/* An asynchronous call in flight, as its caller's mailbox knows it. */
struct dri_pending {
	uint64_t call_id;
	uint32_t target;          /* the worker's mailbox ref (or the bridge's) */
	int16_t gone;             /* its status if target goes: -EOWNERDEAD, or
	                           * -ENOTCONN for a call through the bridge */
	bool notserved;           /* its answer DR_NOTSERVED is kept (else -ENOENT) */
	uint64_t deadline;        /* monotonic ns, UINT64_MAX: none */
	struct dri_again *again;  /* to make it again if it reaches no worker, or NULL */
	uint64_t seq;             /* this sending of call_id (a resend reuses the id) */
};

/*
 * The calls in flight of one mailbox (pending.c): an open-addressed table by
 * call id, linear probing, at most half full; call id 0 marks a free slot
 * and is never issued. A reply finds its call in a probe or two with
 * hundreds in flight. The caller serialises (call_lock); n is stored
 * atomically for a reader that only looks whether it is 0.
 */
struct dri_pendtab {
	struct dri_pending *slot;
	size_t n, cap;
	uint64_t seq;
};

int dri_pend_add(struct dri_pendtab *t, const struct dri_pending *p);
struct dri_pending *dri_pend_find(struct dri_pendtab *t, uint64_t call_id);
void dri_pend_remove(struct dri_pendtab *t, struct dri_pending *p);
void dri_pend_free(struct dri_pendtab *t);

/* A watch's event (watch.c), as dr_recv returns it. */
struct dri_event {
	int event;
	bool global;
	uint64_t regid;
	size_t len;
	unsigned char name[DR_NAME_MAX];
	uint8_t data[1 + DR_HOST_MAX];
	size_t data_len;
};

struct dr_mailbox {
	struct dr_registry *r;
	uint32_t idx, ref;        /* our slot and opening */
	int sock;                 /* bound to our wake-up address */
	bool for_replies;         /* a thread's mailbox for dr_call answers */
	uint32_t cursor;          /* the lane slot to look at first */
	uint32_t burst;           /* messages taken from it in a row */
	/* per lane slot: when to ask again whether the sender of a drained
	 * lane is dead (two system calls; a reaper frees it too) */
	uint64_t gone_check[DRI_MBOX_LANES];
	/* When dr_recv's look at the calls in flight (call.c,
	 * dri_pending_look: system calls per worker) is due again: every
	 * LIVENESS_NS, not at every receive that finds nothing; 0 at once
	 * (none yet, or the last look found a call to end and may find
	 * more). The receiving thread's. */
	uint64_t next_look;
	/* How long the receiving thread spins in its next wait before it
	 * sleeps (mailbox.c, dri_wait_take). */
	uint64_t spin_ns;
	/* per lane slot: its tail as we last read it, and the slot's value
	 * then. Records up to it stay published and unread while head is
	 * below it (nobody but us detaches a lane with unread records:
	 * eviction needs head == tail), so the tail, the sender's line, is
	 * read again only once we reach it. */
	uint64_t tail_seen[DRI_MBOX_LANES];
	uint32_t tail_v[DRI_MBOX_LANES];
	int32_t cur_lane;         /* the lane of the message returned last, or -1 */
	uint64_t cur_end;         /* and where it ends */
	uint8_t *bounce;          /* a record that wraps, copied whole */
	uint64_t corrupt;
	bool deferred;            /* a stale call's -ENOENT waits for room: look again soon */
	uint64_t defer_ns;        /* how soon: 20 ms, doubled at each wait it stays, to 1 s */
	pthread_mutex_t call_lock; /* guards next_call, call_end, pend: senders and the receiver */
	uint64_t next_call;       /* call ids: blocks of the segment's id counter */
	uint64_t call_end;        /* end of the block next_call is in */
	struct dri_served *served;
	/* an index of served by name (mailbox.c): a mailbox may serve
	 * hundreds of thousands (a factory's workers) */
	struct dri_served **served_tab;
	size_t served_cap, nserved;
	struct dri_move *moves;   /* starts in flight (start.c), by call id */
	pthread_mutex_t start_lock; /* guards moves */
	struct dri_watch *watches; /* names it watches (watch.c) */
	struct dri_event *events; /* their events waiting for dr_recv */
	size_t nevents, capevents;
	uint64_t watch_next;      /* coarse ns: when to look at the watches next */
	struct dri_event event_out; /* the event dr_recv returned last */
	struct dri_pendtab pend;  /* asynchronous calls in flight, under call_lock */
	struct dr_mailbox *next;  /* in r->mailboxes, under r->lock */
};

bool dri_mbox_alive(struct dr_registry *r, uint32_t ref);
bool dri_mbox_held_by(struct dr_registry *r, uint32_t ref, uint64_t owner);
unsigned dri_reap_mailboxes(struct dr_registry *r);
uint64_t dri_deadline(int timeout_ms);
/* The data of a record: pre (pre_len bytes, a forwarding header) then
 * data; hdr->data_len is their sum. */
int dri_lane_send(struct dr_registry *r, uint32_t ref, struct dri_rec *hdr, const void *name,
		  const void *pre, size_t pre_len, const void *data, uint64_t deadline);
void dri_lanes_release_all(struct dr_registry *r, bool shared);
int dri_mailbox_open(struct dr_registry *r, bool for_replies, struct dr_mailbox **out);
void dri_mailbox_free(struct dr_mailbox *mb, bool shared);
/* How often a waiting caller looks whether its worker still lives (the
 * 20 ms of distreg.h). */
#define DRI_LIVENESS_NS (20ull * 1000 * 1000)
int dri_take(struct dr_mailbox *mb, struct dr_msg *msg, uint64_t filter_call);
int dri_wait_take(struct dr_mailbox *mb, struct dr_msg *msg, uint64_t filter_call,
		  uint64_t deadline, uint64_t *next_look,
		  int (*hook)(struct dr_mailbox *mb, struct dr_msg *msg, void *arg), void *arg);
/* How long a mailbox's next wait spins, from this one (mailbox.c). */
uint64_t dri_spin_learn(uint64_t spin, uint64_t w, uint64_t base, uint64_t max);
void dri_finish(struct dr_mailbox *mb);
bool dri_pending_take(struct dr_mailbox *mb, uint64_t call_id, struct dri_pending *out);
void dri_mailbox_poke(struct dr_mailbox *mb);
int dri_pending_look(struct dr_mailbox *mb, struct dr_msg *msg, void *arg);
int dri_unserve(struct dr_mailbox *mb, const void *name, size_t name_len, bool global);
void dri_moves_free(struct dr_mailbox *mb);
void dri_watches_free(struct dr_mailbox *mb);
int dri_watch_take(struct dr_mailbox *mb, struct dr_msg *msg);
bool dri_serves(struct dr_mailbox *mb, const void *name, size_t name_len, bool global);
int dri_serve(struct dr_mailbox *mb, const void *name, size_t name_len, unsigned flags,
	      const void *value, size_t value_len);
int dri_mb_begin(struct dr_mailbox *mb);

/* What a message is sent to: a name in one namespace, or the bridge's
 * address (global, length 0), and what its data begins with. */
struct dri_target {
	const void *name;
	size_t len;
	bool global;
	/* Nonzero for the bridge's address: the owner id of the role holder
	 * seen alive, whose mailbox must be the one serving the address. */
	uint64_t bridge;
	const void *pre;          /* a forwarding header, or NULL */
	size_t pre_len;
	bool ended;               /* DRI_REC_ENDED */
	uint64_t regid;           /* if not 0: only to this registration (else -ENOENT) */
	/* A call that reached no worker (the name is not served where it was
	 * sent) fails with DR_NOTSERVED, not -ENOENT: see distreg_admin.h. */
	bool notserved;
	/* dri_call_async: kept with the call in flight, which owns it once
	 * sent (the caller frees it on an error). */
	struct dri_again *again;
};
int dri_send(struct dr_registry *r, int kind, const struct dri_target *to, const void *data,
	     size_t data_len, uint64_t call_id, uint32_t reply_to, uint64_t deadline,
	     uint32_t *target);
int dri_call_async(struct dr_mailbox *mb, const struct dri_target *to, const void *req,
		   size_t req_len, int timeout_ms, int gone, uint64_t *call_id);
int dri_call_as(struct dr_mailbox *mb, const struct dri_target *to, const void *req,
		size_t req_len, uint64_t *id, uint64_t deadline, uint64_t send_deadline, int gone);
/* dri_call_async() that never waits for room: -EAGAIN when the target's
 * lane is full (nothing sent). What a bridge delivers with: its one thread
 * must not stop for a slow worker. */
int dri_call_nowait(struct dr_mailbox *mb, const struct dri_target *to, const void *req,
		    size_t req_len, int timeout_ms, int gone, uint64_t *call_id);
/* global.c: an asynchronous call to a global name this host owns keeps a
 * copy of itself; if it reaches no worker here (its registration ended
 * before the worker took it: the worker may be moving away), the receiving
 * thread makes it again through the bridge, under the same id. */
struct dri_again;
struct dri_again *dri_again_new(const void *name, size_t name_len, const void *data,
				size_t len);
int dri_again_send(struct dr_mailbox *mb, const struct dri_pending *p);
int dri_call_wait(struct dr_registry *r, const struct dri_target *to, const void *req,
		  size_t req_len, void *reply, size_t *reply_len, int timeout_ms, int gone);
size_t dri_cname_len(const char *name);

/* registry.c */
/* dri_register() flags */
#define DRI_REG_GLOBAL 1u   /* a global name */
#define DRI_REG_RESERVED 2u /* the bridge's address may be named (global, length 0), and
                             * local names with DRI_RESERVED_PREFIX */
/* Local names the library keeps for itself (a 0 byte first: no C string). */
#define DRI_RESERVED_PREFIX "\0distreg."
#define DRI_RESERVED_PREFIX_LEN 9
int dri_register(struct dr_registry *r, const void *name, size_t name_len, const void *value,
		 size_t value_len, uint32_t mbox, unsigned flags);
int dri_unregister(struct dr_registry *r, const void *name, size_t name_len, unsigned flags,
		   uint64_t regid, bool force);
int dri_whereis(struct dr_registry *r, const void *name, size_t name_len, unsigned flags,
		struct dr_entry *out);
/* dri_whereis(), and the owner id of the registration found (0 if it is on
 * its way out): whether its process lives is dri_owner_alive()'s. */
int dri_whereis_owner(struct dr_registry *r, const void *name, size_t name_len, unsigned flags,
		      struct dr_entry *out, uint64_t *owner);

/* cluster.c: the view, the bridge role's state as readers see it, owners */

/* Where a global name lives, as dri_owner_of() found it. */
struct dri_where {
	bool self;                /* the owner is this host */
	uint64_t bridge;          /* owner id of the live bridge, 0 if none */
	uint64_t epoch;           /* of the view used; 0 without one */
	char host[DR_HOST_MAX + 1];
};
int dri_owner_of(struct dr_registry *r, const void *name, size_t len, struct dri_where *w);
int dri_owner_among(const struct dr_host *hosts, size_t n, const void *name, size_t len);
/* global.c: the forwarding header to the bridge (DRI_FWD_MAX bytes at most)
 * in buf, and the bridge's address as the target that carries it. */
#define DRI_FWD_MAX (16 + DR_HOST_MAX + 1 + DR_NAME_MAX)
struct dri_target dri_to_bridge(uint8_t *buf, int op, const struct dri_where *w,
				const void *name, size_t len, int timeout_ms);
/* A lookup's answer, as dr_admin_entry_encode() writes it; -EBADMSG else. */
int dri_entry_decode(const uint8_t *p, size_t len, struct dr_entry *out);
/* A whole copy of the view, as a reader took it. */
struct dri_view_snap {
	uint64_t epoch;           /* 0: none published */
	uint32_t n;
	struct dr_host hosts[DR_HOSTS_MAX];
};
int dri_view_snapshot(struct dr_registry *r, struct dri_view_snap *out);
uint64_t dri_host_seed(const char *id, size_t len);
void dri_nodename_init(struct dr_registry *r);
int dri_view_check(struct dr_registry *r, char *msg, size_t len);
bool dri_bridge_serves(struct dr_registry *r, uint32_t ref);
pid_t dri_bridge_pid(struct dr_registry *r, bool *ran);
void dri_bridge_closing(struct dr_mailbox *mb);
/* bridge.c: the role's liveness lock, let go of before the segment is
 * unmapped; segment.c: initialised at creation. */
void dri_live_close(struct dr_registry *r);
int dri_live_lock_init(pthread_mutex_t *m);

/* inspect.c: nothing shared beyond the public API. */

#endif /* DRI_H */
