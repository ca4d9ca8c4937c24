/*
 * distreg.h - the public contract of libdistreg.
 *
 * libdistreg keeps a registry of names in a POSIX shared-memory segment that
 * many processes on one host map at once. A process registers a name together
 * with a small value (typically an address where its worker can be reached);
 * any process looks the name up without taking a lock and without a system
 * call. When a process dies, the kernel drops a lock that witnessed its
 * liveness, and its names are reclaimed by the next process that collides
 * with them, opens the segment or calls dr_reap().
 *
 * Conventions, for every function below:
 *  - The return value is 0 on success or a negative errno value on failure.
 *    errno is never set. dr_strerror() turns any returned code into text.
 *  - Names are byte strings of 1 to DR_NAME_MAX bytes. The plain functions
 *    take a NUL-terminated C string; the *_bin variants take a pointer and a
 *    length, and the name may then contain any byte, NUL included.
 *  - Values are 0 to DR_VALUE_MAX bytes of opaque data.
 *  - A dr_registry handle may be used by any number of threads of the process
 *    that opened it. It is not usable in a child created by fork(): every call
 *    there fails with -ECHILD, and the child must dr_open() its own handle
 *    (dr_close() on the inherited handle only frees the child's memory).
 *  - Nothing here blocks waiting for another process. The only waits are
 *    bounded ones for a grace period (see dr_register()).
 *
 * Liveness rests on one file descriptor. dr_open() takes a lock on a byte of
 * the segment file through a descriptor of its own (close-on-exec); the
 * kernel drops it when the process exits or execs, and that is how other
 * processes learn that its names are free. A process that closes that
 * descriptor behind the library's back (a daemon that closes every
 * descriptor after fork, a closefrom() or close_range() sweep) looks dead to
 * everyone else while it runs, and its names may be taken. Close descriptors
 * before dr_open(), or spare the handle's. Once another process has acted on
 * that verdict, every call on the handle fails with -ENOLCK instead of
 * writing as an owner that others have buried (or reading without the
 * protection of a reader slot they may have given away); dr_close() then
 * frees its memory only, and a new dr_open() attaches afresh. The check is
 * made at the start of each call and before each step that writes what the
 * handle may no longer own, so a verdict that lands in the middle of a call
 * can still let that one call write: closing the descriptor is a bug to
 * fix, and this only makes it loud.
 */
#ifndef DISTREG_H
#define DISTREG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Longest name, in bytes. */
#define DR_NAME_MAX 127
/* Longest value, in bytes. */
#define DR_VALUE_MAX 64
/* Longest segment name, in bytes (the file is /dev/shm/distreg.<name>). */
#define DR_SEGMENT_MAX 200

/* Capacity used when dr_options.capacity is 0: 65536 names, about 22 MiB. */
#define DR_DEFAULT_CAPACITY 65536u
/* Process slots used when dr_options.max_procs is 0. */
#define DR_DEFAULT_MAX_PROCS 1024u
/* Reader (thread) slots used when dr_options.max_threads is 0. */
#define DR_DEFAULT_MAX_THREADS 4096u
/* Mailboxes used when dr_options.max_mailboxes is 0. */
#define DR_DEFAULT_MAX_MAILBOXES 128u
/* Lanes (see dr_mailbox_open) used when dr_options.max_lanes is 0. */
#define DR_DEFAULT_MAX_LANES 128u
/* Bytes of each lane's ring when dr_options.lane_bytes is 0: 128 KiB. The
 * largest message is a lane's ring less DR_MSG_OVERHEAD bytes. */
#define DR_DEFAULT_LANE_BYTES (128u * 1024u)
#define DR_MSG_OVERHEAD 176u

/* One open segment, per process. Opaque. */
typedef struct dr_registry dr_registry;

/* dr_options.flags */
/* Fail with -ENOENT instead of creating a segment that does not exist. */
#define DR_OPEN_NOCREATE (1u << 0)
/* Do not reap dead processes' names at open (inspection tools use it to
 * show the segment as they found it; dr_reap() still reaps). */
#define DR_OPEN_NOREAP (1u << 1)
/* When creating a segment of 8 MiB or more, do not ask for it in huge
 * pages. By default such a segment is sized in 2 MiB pages and its pages
 * are made huge (madvise MADV_COLLAPSE, Linux 6.1 and later, where the
 * kernel has huge pages to give): lookups in a large table then miss the
 * TLB far less. Ignored when the segment exists. */
#define DR_OPEN_NOHUGEPAGES (1u << 2)
/* Open for inspection only (as LMDB's mdb_stat reads an environment):
 * the file is opened O_RDONLY and mapped PROT_READ, so read permission
 * suffices; the segment is never created (implies DR_OPEN_NOCREATE) and
 * nothing in it is written: no process slot, no reader slot, no reaping
 * (implies DR_OPEN_NOREAP). The handle serves dr_foreach(), dr_stats(),
 * dr_check(), dr_hosts() and dr_segment_name(); every other call fails
 * with -EROFS. Without a reader slot, entries may be unregistered and
 * reused while they are read: every read is bounded, so a walk never
 * crashes, but a listing of a busy segment is a best-effort snapshot
 * (a name may be missed, shown twice, or shown torn), and dr_check() may
 * report a transient state. */
#define DR_OPEN_RDONLY (1u << 3)

/*
 * Options for dr_open(). A zeroed struct (or a NULL pointer) means all
 * defaults. capacity, max_procs, max_threads and mode are used only when the
 * call creates the segment; an existing segment keeps its own geometry.
 */
struct dr_options {
	/* Segment name: 1 to DR_SEGMENT_MAX bytes, no '/'. NULL means the
	 * environment variable DISTREG_SEGMENT if set, else "default". */
	const char *segment;
	/* Most live names; 0 means DR_DEFAULT_CAPACITY. At most 1 << 26. */
	uint32_t capacity;
	/* Most processes attached at once; 0 means DR_DEFAULT_MAX_PROCS.
	 * At most 65535. */
	uint32_t max_procs;
	/* Most threads inside a read-side section at once, over all processes;
	 * 0 means DR_DEFAULT_MAX_THREADS. At most 1 << 20. */
	uint32_t max_threads;
	/* Permission bits of a new segment; 0 means 0600. Use 0660 to share
	 * with a group. Only the 0777 bits are accepted. */
	uint32_t mode;
	/* DR_OPEN_* flags. */
	uint32_t flags;
	/* Most mailboxes open at once, over all processes; 0 means
	 * DR_DEFAULT_MAX_MAILBOXES. At most 65535. */
	uint32_t max_mailboxes;
	/* Lanes: one carries the messages of one sending process to one
	 * mailbox, so this bounds the (sender, mailbox) pairs in use at once;
	 * 0 means DR_DEFAULT_MAX_LANES. At most 65535. */
	uint32_t max_lanes;
	/* Bytes of each lane's ring: a power of two from 4096 to 1 << 30; 0
	 * means DR_DEFAULT_LANE_BYTES. The largest message is this less
	 * DR_MSG_OVERHEAD (130896 bytes by default). Memory: max_lanes times
	 * this (16 MiB by default). */
	uint32_t lane_bytes;
};

/*
 * What a lookup returns: a copy, valid after the call returns.
 */
struct dr_entry {
	pid_t pid;          /* the owning process */
	/* Unique per registration, never reused on this host. Across segments
	 * re-created under one name, this rests on the realtime clock: a new
	 * segment's counter starts at its creation time in ns (CLOCK_REALTIME),
	 * ahead of every id an earlier segment handed out (fewer ids than ns
	 * went by), unless the clock was set back in between. */
	uint64_t regid;
	size_t value_len;   /* bytes used in value */
	unsigned char value[DR_VALUE_MAX];
};

/*
 * Open the segment named in opts (creating it if it does not exist, unless
 * DR_OPEN_NOCREATE), attach this process to it and return a handle in *out.
 *
 * Creation is atomic: the segment is built and fully initialised in an
 * unnamed file and linked into place in one step, so concurrent openers
 * either see a complete segment or none, and a creator killed half-way leaves
 * nothing behind. Its memory is allocated up front, so a
 * full /dev/shm fails here (-EDQUOT) rather than with SIGBUS later.
 * Opening also reaps the names of processes that died without dr_close(),
 * unless DR_OPEN_NOREAP. *out is NULL on failure.
 *
 * Errors: -EINVAL out NULL, bad options, unknown flags or a bad segment
 * name (empty, longer than DR_SEGMENT_MAX, containing '/', "." or "..";
 * an empty DISTREG_SEGMENT counts as unset; dr_segment_name_error() says
 * which rule); -ELOOP the segment path is a symbolic link (a segment must
 * be a regular file; none is followed); -ENOENT no such segment with
 * DR_OPEN_NOCREATE; -EACCES permission denied; -EPROTO the segment has
 * another format (another layout version or build); -EBADMSG the segment is
 * truncated or its header is corrupt; -EUSERS all process slots, or all
 * reader slots, are held by live processes; -ENOSYS the segment was created
 * to use membarrier(2) and this kernel does not offer it; -EAGAIN the
 * segment kept being created and removed under us; -EDQUOT no space left
 * in /dev/shm for a new segment (the tmpfs is full or over quota; never
 * -ENOSPC, which is a full table); -ENOMEM, -EMFILE, ... from the system.
 * Thread-safe.
 */
int dr_open(const struct dr_options *opts, dr_registry **out);

/*
 * Unregister every name the handle holds, detach from the segment and free
 * the handle. Accepts NULL. Other threads must have stopped using the handle.
 */
void dr_close(dr_registry *r);

/*
 * Why segment (NULL: the default, as in dr_options) is not a valid segment
 * name: NULL if it is valid, else a static message naming the rule it
 * breaks ("segment names are 1 to 200 bytes", "no '/' in a segment name",
 * "'.' and '..' are not segment names"). For a caller that got -EINVAL from
 * dr_open() or dr_unlink(). Thread-safe.
 */
const char *dr_segment_name_error(const char *segment);

/*
 * Remove the segment's name from /dev/shm. Processes that have it open keep
 * using it; the next dr_open() creates a new one. segment NULL means the
 * default (as in dr_options). Errors: -EINVAL, -ENOENT, -EACCES.
 */
int dr_unlink(const char *segment);

/*
 * Register name with a value, owned by this handle.
 *
 * Registering a name this handle already holds replaces its value (readers
 * see either the old or the new value whole) and keeps its regid. A name
 * whose owner has died is taken over at once.
 *
 * Lock-free: a process killed at any point inside leaves the table
 * consistent and its allocation reclaimable.
 *
 * Errors: -EEXIST another live process (or another handle) holds the name;
 * -ENOSPC the table is full: all capacity entries hold live names (never
 * a full /dev/shm: that is dr_open()'s -EDQUOT); -EBUSY no entry is free because
 * unregistered entries wait on a reader that is alive but stalled inside a
 * read-side section for more than about 50 ms (stopped, or sleeping inside
 * the section; a reader that is merely preempted, its thread runnable, is
 * waited for up to 1 s; shmdump --stats names the process), or, when
 * updating this handle's own name, because another update of it stayed in
 * progress for 50 ms (the value is then unchanged; a flag that never clears
 * means a corrupt segment); -ENOLCK this process's liveness lock was lost
 * and others may have taken its names (see the top of this file);
 * -ENAMETOOLONG name longer than DR_NAME_MAX; -EMSGSIZE value longer than
 * DR_VALUE_MAX; -EINVAL NULL or empty name, NULL value with a nonzero
 * length, or a binary name that begins with the 9 bytes "\0distreg." (the
 * library's own names: factories, dr_factory_serve; dr_serve() refuses them
 * too); -EUSERS no reader slot left; -EBADMSG the name's bucket chain in
 * the segment is corrupt (an index out of range or a cycle: dr_check()
 * says where); -ECHILD handle inherited by fork. Thread-safe.
 */
int dr_register(dr_registry *r, const char *name, const void *value,
		size_t value_len);
int dr_register_bin(dr_registry *r, const void *name, size_t name_len,
		    const void *value, size_t value_len);

/*
 * Unregister a name this handle holds.
 *
 * Errors: -ENOENT not registered (or its owner had died: the name is then
 * reaped); -EPERM another live process or handle owns it; -EINVAL,
 * -ENAMETOOLONG, -EUSERS, -EBADMSG, -ECHILD, -ENOLCK as for dr_register().
 * Thread-safe.
 */
int dr_unregister(dr_registry *r, const char *name);
int dr_unregister_bin(dr_registry *r, const void *name, size_t name_len);

/*
 * Unregister a name whatever process owns it: for administrators and tools
 * (shmdump has no such option; the distreg tool will). The owner is not
 * told. Errors as for dr_unregister(), without -EPERM.
 */
int dr_unregister_force(dr_registry *r, const char *name);
int dr_unregister_force_bin(dr_registry *r, const void *name, size_t name_len);

/*
 * Look a name up and copy its entry to *out (out may be NULL to test
 * existence only).
 *
 * Takes no lock, makes no system call and writes no shared cache line but
 * this thread's own reader slot. It does not test whether the owner is
 * alive: a name whose owner died without dr_close() stays visible, with the
 * dead pid, until it is reaped, which happens at the next of: a dr_register()
 * of the same name, any dr_open() of the segment, dr_reap() (also
 * shmdump --reap), or the bridge's reaper once it exists.
 *
 * Errors: -ENOENT; -EINVAL, -ENAMETOOLONG, -EUSERS, -ECHILD, -ENOLCK as
 * above. Thread-safe.
 */
int dr_whereis(dr_registry *r, const char *name, struct dr_entry *out);
int dr_whereis_bin(dr_registry *r, const void *name, size_t name_len,
		   struct dr_entry *out);

/*
 * Enter and leave a read-side section explicitly. Lookups inside one share
 * its cost (a lookup otherwise enters and leaves one of its own). Sections
 * nest. Keep them short: while a thread is inside one, the memory of names
 * unregistered since it entered cannot be reused by anyone. Do not call
 * dr_register() or dr_unregister*() inside one when the table may be full:
 * they would wait on this very thread and fail with -EBUSY.
 * Errors: -EUSERS, -ECHILD; dr_read_unlock() -EINVAL when not inside one.
 */
int dr_read_lock(dr_registry *r);
int dr_read_unlock(dr_registry *r);

/*
 * Remove the names of dead processes, free process and reader slots they
 * held, and free unregistered entries whose grace period has ended.
 * *nreaped (may be NULL) receives the number of names removed.
 * Errors: -ECHILD. Thread-safe; makes one system call per attached process.
 */
int dr_reap(dr_registry *r, unsigned *nreaped);

/* One name, as seen by dr_foreach(). */
struct dr_name_info {
	const unsigned char *name;   /* not NUL-terminated; valid during the callback */
	size_t name_len;
	struct dr_entry entry;
	int alive;                   /* 1 owner alive, 0 dead (awaiting reap) */
	int global;                  /* 1 a global name (dr_serve_global), 0 a local one */
};

/*
 * Call fn for every registered name, local and global (info->global says
 * which), in table order, until fn returns nonzero (that value is then
 * returned). Names registered or unregistered during the walk may or may
 * not be seen. fn runs inside a read-side section: it must not register or
 * unregister. An entry whose name length is out of range (only a corrupted
 * segment has one; dr_check() reports it) is skipped, and so is the
 * bridge's own address (a global name of length 0 that no user can
 * register), so name_len is always 1 to DR_NAME_MAX. Errors: -EINVAL fn or
 * r NULL, -ECHILD, -EUSERS, -ENOMEM. A corrupt bucket chain is walked
 * up to the corruption.
 */
typedef int (*dr_foreach_fn)(const struct dr_name_info *info, void *arg);
int dr_foreach(dr_registry *r, dr_foreach_fn fn, void *arg);

/* Counters returned by dr_stats(). */
struct dr_stats {
	uint32_t capacity;       /* most live names */
	uint32_t live;           /* names whose owner is alive (local and global,
	                          * and the bridge's address while it is served) */
	uint32_t dead;           /* names whose owner died, awaiting reap */
	uint32_t retired;        /* unregistered entries not yet freed: awaiting
	                          * a grace period, or past it and kept for the
	                          * thread that retired them to take back (a
	                          * process out of free entries frees them) */
	uint32_t inflight;       /* entries allocated but not yet (or no longer) linked */
	uint32_t free_entries;   /* entries free for reuse */
	uint32_t nbuckets;       /* hash buckets */
	uint32_t longest_chain;  /* longest bucket chain, in entries */
	uint32_t max_procs;      /* process slots */
	uint32_t procs;          /* process slots held by live processes */
	uint32_t max_threads;    /* reader slots */
	uint32_t readers;        /* reader slots held by threads of live processes */
	uint32_t readers_active; /* of those, inside a read-side section now */
	pid_t stalled_pid;       /* a live process whose reader holds back the
	                          * oldest retired entry, or 0 */
	uint64_t epoch;          /* the grace-period epoch */
	uint64_t next_regid;     /* above every registration id handed out */
	uint64_t segment_bytes;  /* size of the segment */
	uint32_t max_mailboxes;  /* mailbox slots */
	uint32_t mailboxes;      /* mailboxes open (their owner alive or not yet reaped) */
	uint32_t max_lanes;      /* lanes */
	uint32_t lanes;          /* lanes held by a sender */
	uint32_t message_max;    /* the largest message, in bytes */
	pid_t bridge_pid;        /* the bridge's process while one runs, else 0 */
	int bridge_ran;          /* 1 once a bridge has run on the segment */
};

/*
 * Fill *out with counts taken by walking the segment (a snapshot, not
 * atomic as a whole). Makes one system call per attached process.
 * Errors: -ECHILD, -EUSERS.
 */
int dr_stats(dr_registry *r, struct dr_stats *out);

/*
 * Verify every invariant of the layout: header, process and reader slots,
 * entry states, bucket chains (ranges, order, no cycle, no entry twice, every
 * entry hashed to its bucket), the bridge role and both copies of the view
 * (ranges, lengths, one host marked as this one, no id twice, every seed the
 * hash of its id; the copy readers read not being written), and that every
 * entry is accounted for. On a
 * violation, returns -EBADMSG and writes a one-line description into msg
 * (msg_len bytes, NUL-terminated; msg may be NULL). Meant for a quiet
 * segment: writers running concurrently can make it report a transient
 * state. Errors: -EBADMSG, -ECHILD, -EUSERS.
 */
int dr_check(dr_registry *r, char *msg, size_t msg_len);

/* ---------------------------------------------------------------------- */
/*
 * Mailboxes and messages: distreg's call, cast and inform, on one host.
 *
 * A process opens a mailbox and serves names through it (dr_serve): any
 * process of the host then sends to a name, and the messages arrive in that
 * mailbox, tagged with the name and the registration they were sent to. One
 * mailbox can serve any number of names (one process hosting thousands of
 * workers), or one each. Messages travel through shared memory only: the
 * segment holds, besides the table, a pool of lanes, each a ring from one
 * sending process to one mailbox, claimed on the first send and kept.
 * A mailbox takes lanes from up to 32 senders at a time; a further sender
 * takes the place of one whose lane the receiver has drained (that sender
 * moves to another lane at its next send, in order). Only when all 32
 * hold unread messages does a send to that mailbox fail with -EUSERS
 * ("no lane free"), until the receiver catches up.
 *
 * Delivery:
 *  - A message is delivered whole or not at all: a sender killed in the
 *    middle of a send leaves nothing the receiver sees.
 *  - Messages from one sending process to one mailbox arrive in the order
 *    they were sent (all threads of the process together).
 *  - A message is delivered only to the registration it was sent to: if the
 *    name was unregistered, or its owner died and the name was registered
 *    again, before the receiver takes the message, it is discarded (a call
 *    is answered with -ENOENT).
 *  - A message reported as sent is in the mailbox's lane; it is lost only
 *    if the mailbox is closed, or its process dies, before it is received.
 *  - A full lane makes a send fail with -EAGAIN at once, or wait up to the
 *    timeout the caller gives (-ETIMEDOUT); nothing is dropped to make room.
 *  - A receiver that dies with calls pending: each caller gets -EOWNERDEAD
 *    within 100 ms (the caller checks the receiver's liveness every 20 ms
 *    while it waits).
 *
 * Waiting costs no CPU once idle: a receiver spins for up to about 20 us
 * for the next message, then sleeps until a sender wakes it (one wake-up
 * per sleep, however many messages). While its messages come within
 * 200 us of its waits, it spins up to 1.5 times that wait, at most 200 us;
 * after longer waits it is back to 20 us. So a receiver with a message
 * every 20-200 us spins between them (yielding the CPU now and then)
 * rather than paying a wake-up for each; dr_set_wait_spin() changes that.
 * A sender killed after it published a message and before it woke the
 * sleeping receiver leaves only that message unseen until something wakes
 * the receiver: the next message, or the reaping of the dead sender, which
 * wakes the receivers of its unread messages (the bridge's reaper within
 * about 25 ms of the death; without a bridge, the next dr_open() or
 * dr_reap() on the segment). A paused sender delays only its own message,
 * until it runs again. The wake-ups are datagrams on an abstract Unix
 * socket, so the processes of a segment must share a network namespace
 * (they share /dev/shm already).
 */

/* Message kinds, as struct dr_msg.kind gives them. */
#define DR_MSG_CALL 1    /* a request: answer it with dr_reply() */
#define DR_MSG_CAST 2    /* distreg's cast: no reply */
#define DR_MSG_INFO 3    /* distreg's inform (dr_send): a plain message */
#define DR_MSG_REPLY 4   /* the completion of an asynchronous call */
#define DR_MSG_SYSTEM 5  /* an event from the library or the bridge */

typedef struct dr_mailbox dr_mailbox;

/* A received message. The pointers stay valid until the next dr_recv() on
 * the mailbox, or dr_mailbox_close(). */
struct dr_msg {
	int kind;                    /* DR_MSG_* */
	int status;                  /* REPLY: 0, or the call's error (negative) */
	const unsigned char *name;   /* CALL, CAST, INFO: the name it was sent to;
	                              * SYSTEM: the name the event is about */
	size_t name_len;             /* 0 for REPLY */
	uint64_t regid;              /* the registration it was sent to */
	pid_t sender;                /* the sending process */
	uint64_t call_id;            /* CALL: its id; REPLY: the id dr_call_async gave */
	const void *data;            /* the payload */
	size_t len;
	uint32_t reply_to;           /* private: where dr_reply() sends the answer */
	int global;                  /* CALL, CAST, INFO, SYSTEM: 1 if name is a global
	                              * name (0 for a local one, and for REPLY) */
};

/*
 * System events (DR_MSG_SYSTEM): data[0] is the event, and the message's
 * name, regid and global say which registration of the mailbox it is
 * about (a registration that ended meanwhile gets none, but dienow).
 *
 * DR_EVENT_SHOULDRESTART (distreg's shouldrestart): the view changed and
 * the global name's owner is now another host, whose id is data + 1 (len
 * - 1 bytes, no NUL). The worker keeps serving the name here; it should be
 * started on the new owner (dr_start(), which creates a new instance there
 * even while this one runs) and then stop serving it here
 * (dr_unserve_global()). Calls reach the new owner's instance once it is
 * served there; until then, a call sent to the new owner gets -ENOENT.
 * The bridge sends it once per view change that moves the name.
 */
#define DR_EVENT_SHOULDRESTART 1

/*
 * DR_EVENT_DIENOW (distreg's dienow): another instance of the global name
 * runs on its owner, whose id is data + 1 (len - 1 bytes), and won: this
 * one is unregistered already (the bridge did it when it sent this) and
 * should stop. The event is about msg.regid: a mailbox that served the name
 * again since keeps that registration (dr_lost() tells the two apart;
 * dr_unserve_global() would end whatever registration the mailbox holds of
 * the name). Sent by the bridge of a host serving a name it does not own
 * once the owner says it runs the name, for example after a partition
 * healed. With the bridge's --dienow-sigterm-ms, a process that still has
 * this mailbox open that long after gets SIGTERM.
 */
#define DR_EVENT_DIENOW 2

/*
 * What a worker does with DR_EVENT_DIENOW ev: mb forgets the registration
 * the bridge ended. 0: it was mb's (stop the worker); -ESTALE: mb serves
 * the name again since, under another registration, which stays (the
 * event is about an older one: ignore it); -ENOENT: mb does not serve the
 * name; -EINVAL: ev is not a dienow.
 */
int dr_lost(dr_mailbox *mb, const struct dr_msg *ev);

/*
 * Monitors: events about a name the mailbox watches (dr_watch). The
 * message's name and global are the watched name's, its regid the
 * registration the event is about.
 * DR_EVENT_UNREGISTERED: the registration seen ended (unregistered, or
 *   replaced by another of the same name);
 * DR_EVENT_OWNER_DIED: it ended and its process is dead (a local name, or
 *   a global one owned by this host; a process that unregisters the name
 *   and exits within one look, 20 ms, may be reported so too);
 * DR_EVENT_MOVED: a global name's owner host changed; data + 1 (len - 1
 *   bytes) is the new owner's id.
 */
#define DR_EVENT_UNREGISTERED 3
#define DR_EVENT_OWNER_DIED 4
#define DR_EVENT_MOVED 5

/*
 * Watch a name (dr_watch, dr_watch_bin) or a global name (dr_watch_global,
 * dr_watch_global_bin) from mb: dr_recv() on mb then returns the events
 * above as DR_MSG_SYSTEM messages, once per change. Whether the name is
 * registered now is not an event: the watch starts from what it sees. mb
 * looks itself, from dr_recv() (also while it waits): a local name, or a
 * global one this host owns, at most every 20 ms; a global name owned by
 * another host through the bridges at most every second. A registration
 * that ends and comes back between two looks is one UNREGISTERED event.
 * dr_unwatch*() stops. Errors: -EEXIST watched already; -ENOENT (unwatch)
 * not watched; -EINVAL, -ENAMETOOLONG; -ENOMEM; -ECHILD, -ENOLCK; for a
 * global name those of dr_owner() but -ENOTCONN and -EHOSTUNREACH (the
 * watch starts from nothing seen).
 */
int dr_watch(dr_mailbox *mb, const char *name);
int dr_watch_bin(dr_mailbox *mb, const void *name, size_t name_len);
int dr_watch_global(dr_mailbox *mb, const char *name);
int dr_watch_global_bin(dr_mailbox *mb, const void *name, size_t name_len);
int dr_unwatch(dr_mailbox *mb, const char *name);
int dr_unwatch_bin(dr_mailbox *mb, const void *name, size_t name_len);
int dr_unwatch_global(dr_mailbox *mb, const char *name);
int dr_unwatch_global_bin(dr_mailbox *mb, const void *name, size_t name_len);

/*
 * Open a mailbox for this process and return it in *out. Its descriptor
 * (dr_mailbox_fd) polls readable when messages may wait. Senders wake it
 * through an abstract Unix socket, which belongs to the network namespace:
 * processes that message each other must share one (a host is one
 * network namespace; from another, messages arrive but wake nobody).
 * Errors: -EUSERS all max_mailboxes are open by live processes; -EINVAL;
 * -ECHILD, -ENOLCK as for dr_register(); -ENOMEM, -EMFILE from the system.
 * Thread-safe.
 */
int dr_mailbox_open(dr_registry *r, dr_mailbox **out);

/*
 * Unregister every name served through the mailbox, discard the messages
 * it holds and free it. Accepts NULL. No other thread may use it any more.
 */
void dr_mailbox_close(dr_mailbox *mb);

/*
 * A descriptor for an epoll, libuv or libev loop: once dr_recv() has
 * returned -EAGAIN or -ETIMEDOUT, it polls readable (POLLIN) as soon as a
 * message arrives. So: receive with timeout 0 until -EAGAIN, then poll. It
 * may also be readable when nothing waits. Do not read it or close it.
 */
int dr_mailbox_fd(const dr_mailbox *mb);

/*
 * How long such a loop may wait before it calls dr_recv() again even if
 * the descriptor stays quiet, in milliseconds: -1 for ever, 0 now. Only a
 * receive ends an asynchronous call whose worker died or whose timeout
 * passed (looked at every 20 ms), and finds a watched name's change; a
 * dead worker writes nothing that would wake the descriptor. So the loop
 * is: receive with timeout 0 until -EAGAIN (which also arms the
 * descriptor), then poll(fd, dr_mailbox_timeout(mb)), and again. From the
 * thread that receives.
 * Errors: -EINVAL mb is NULL.
 */
int dr_mailbox_timeout(const dr_mailbox *mb);

/*
 * How long a waiting receiver may spin before it sleeps, in microseconds,
 * for every wait through r from the next one on: dr_recv() with a timeout
 * on r's mailboxes, and dr_call() and the other calls through r that wait
 * for an answer. 0 never spins: every message that finds its receiver
 * waiting costs a wake-up (30-80 us across CPUs on virtual machines). Up to
 * 20 spins that long. Above 20, a wait spins 20 us, and up to max_us while
 * messages come within that long of a wait (see "Waiting" above): the
 * default, DR_WAIT_SPIN_DEFAULT_US. A lower value spends less idle CPU on a
 * receiver with a message every 20-200 us, at the price of a wake-up per
 * message. Any thread.
 * Errors: -EINVAL r is NULL or max_us is over DR_WAIT_SPIN_MAX_US.
 */
#define DR_WAIT_SPIN_DEFAULT_US 200u
#define DR_WAIT_SPIN_MAX_US 1000u
int dr_set_wait_spin(dr_registry *r, unsigned max_us);

/*
 * Register name, as dr_register() does, and have messages for it delivered
 * to mb. Errors as for dr_register(); -EINVAL mb NULL.
 */
int dr_serve(dr_mailbox *mb, const char *name, const void *value, size_t value_len);
int dr_serve_bin(dr_mailbox *mb, const void *name, size_t name_len, const void *value,
		 size_t value_len);

/*
 * Stop serving a name that mb serves (dr_serve), or a global one
 * (dr_unserve_global, for dr_serve_global): the registration mb made ends;
 * messages already sent to it are not delivered (their calls get
 * -ENOENT). If it was ended meanwhile (dr_unregister_force) and someone else
 * holds the name now, theirs stays. Errors: -ENOENT mb does not serve it;
 * -EINVAL, -ENAMETOOLONG; -ECHILD, -ENOLCK.
 */
int dr_unserve(dr_mailbox *mb, const char *name);
int dr_unserve_bin(dr_mailbox *mb, const void *name, size_t name_len);
int dr_unserve_global(dr_mailbox *mb, const char *name);
int dr_unserve_global_bin(dr_mailbox *mb, const void *name, size_t name_len);

/*
 * Take the next message from mb into *msg, waiting up to timeout_ms
 * milliseconds (0: do not wait; -1: wait for ever). One thread at a time
 * receives from a mailbox. A CALL must be answered with dr_reply() before
 * the next dr_recv() to use msg's pointers, or after it with a copy of msg.
 * Errors: -EAGAIN nothing waits (timeout 0); -ETIMEDOUT; -EBADMSG a lane
 * of the mailbox held a corrupt record (another process wrote the segment):
 * that lane's content was dropped, the next call goes on with the others;
 * -EUSERS no reader slot for this thread (max_threads are inside read-side
 * sections): the message stays for the next receive; -EINVAL; -ECHILD;
 * -ENOLCK (also while it waits: the process was found dead meanwhile,
 * its lock on the segment lost with a descriptor the program closed).
 */
int dr_recv(dr_mailbox *mb, struct dr_msg *msg, int timeout_ms);

/*
 * Answer the call msg (received from mb) with len bytes of data (status 0),
 * or fail it with a negative errno of your choice as status
 * (dr_reply_error; from -4095 to -1). It does not wait: on -EAGAIN try
 * again shortly, or the caller waits until its timeout (a call from
 * another host: every call of the batch it came in, as the bridge answers
 * a batch whole; the lane to this host's bridge also carries this
 * process's own messages to other hosts, e.g. restarts).
 * Errors: -EINVAL msg is not a CALL, or status out of that range;
 * -EMSGSIZE; -ENOENT the caller is gone (died, timed out and closed its
 * mailbox); -EAGAIN the lane to the caller is full; -EUSERS no lane free
 * (none in the pool, or all 32 of the caller's mailbox hold unread
 * messages).
 */
int dr_reply(dr_mailbox *mb, const struct dr_msg *msg, const void *data, size_t len);
int dr_reply_error(dr_mailbox *mb, const struct dr_msg *msg, int status);

/*
 * Call name: send req (req_len bytes) and wait up to timeout_ms (-1: for
 * ever) for the answer, which is copied into reply (*reply_len bytes of
 * room on entry, the answer's length on return). The calling thread uses a
 * mailbox of its own for answers, opened on its first call.
 * Errors: -ENOENT name not registered, or its registration ended before the
 * worker took the call; -EDESTADDRREQ the name is registered without a
 * mailbox (dr_register, not dr_serve); -ETIMEDOUT; -EOWNERDEAD the worker
 * died (or closed its mailbox) before answering; -EMSGSIZE req longer than
 * the largest message, or the answer longer than *reply_len (which then
 * holds the answer's length; the answer is dropped); -EAGAIN the worker's
 * lane is full and timeout_ms is 0; -EUSERS no lane or mailbox free; any
 * negative errno the worker failed the call with (dr_reply_error); and the
 * errors of dr_whereis(). Thread-safe.
 */
int dr_call(dr_registry *r, const char *name, const void *req, size_t req_len, void *reply,
	    size_t *reply_len, int timeout_ms);
int dr_call_bin(dr_registry *r, const void *name, size_t name_len, const void *req,
		size_t req_len, void *reply, size_t *reply_len, int timeout_ms);

/*
 * Call name without waiting: the answer arrives in mb as a DR_MSG_REPLY with
 * the call id stored in *call_id, status 0 and the data; or with a negative
 * status: -ENOENT, -EOWNERDEAD, -ETIMEDOUT (no answer within timeout_ms;
 * -1: never), or the worker's own. Many calls may be in flight from one
 * thread. Errors (the call was not sent): as for dr_call(). Thread-safe,
 * also while another thread receives from mb (the answer may then arrive
 * there before this function returns); call_id may be NULL.
 */
int dr_call_async(dr_mailbox *mb, const char *name, const void *req, size_t req_len,
		  int timeout_ms, uint64_t *call_id);
int dr_call_async_bin(dr_mailbox *mb, const void *name, size_t name_len, const void *req,
		      size_t req_len, int timeout_ms, uint64_t *call_id);

/*
 * distreg's cast (DR_MSG_CAST) and inform (DR_MSG_INFO): send a message, no
 * reply. timeout_ms: how long to wait for room in a full lane (0: fail at
 * once with -EAGAIN; -1: for ever). Errors: -ENOENT, -EDESTADDRREQ,
 * -EMSGSIZE, -EAGAIN, -ETIMEDOUT, -EOWNERDEAD (the lane is full and its
 * receiver is dead), -EUSERS, -EMFILE or -ENFILE (no descriptor for the
 * socket that wakes receivers, made on the first send: nothing was sent),
 * and the errors of dr_whereis(). Thread-safe: a thread waiting for room
 * does not hold up another thread's send.
 */
int dr_cast(dr_registry *r, const char *name, const void *msg, size_t len, int timeout_ms);
int dr_cast_bin(dr_registry *r, const void *name, size_t name_len, const void *msg,
		size_t len, int timeout_ms);
int dr_send(dr_registry *r, const char *name, const void *msg, size_t len, int timeout_ms);
int dr_send_bin(dr_registry *r, const void *name, size_t name_len, const void *msg,
		size_t len, int timeout_ms);

/* The largest message r's segment carries, in bytes. */
size_t dr_message_max(const dr_registry *r);

/* Counters of a mailbox. */
struct dr_mailbox_stats {
	uint64_t stale;   /* messages dropped: their registration had ended */
	uint64_t late;    /* replies dropped: their call had ended (timed out) */
	uint64_t corrupt; /* lanes dropped for a corrupt record */
	uint32_t lanes;   /* lanes attached now */
};
int dr_mailbox_stats(dr_mailbox *mb, struct dr_mailbox_stats *out);

/*
 * Answers dropped because their dr_call() (dr_call_bin, dr_call_global...)
 * had ended, by timeout, through r since it was opened: the late counter
 * of the mailboxes r's threads wait on for those answers, which the
 * caller cannot name. An asynchronous call's late answer counts in its
 * mailbox's dr_mailbox_stats() instead. 0 if r is NULL. Any thread.
 */
uint64_t dr_late_replies(const dr_registry *r);

/* ---------------------------------------------------------------------- */
/*
 * The cluster: global names (distreg's start/call), served on one owner host.
 *
 * One bridge per host (distreg-bridge) joins the hosts and publishes the
 * cluster's view (the hosts, their states, an epoch) into the segment;
 * processes read it without a lock. Every global name has one owner host:
 * rendezvous hashing (xxh3) of the name over the hosts that are up, which
 * any process computes itself (dr_owner). A global name is served only on
 * its owner (dr_serve_global); the *_global calls reach it from any host.
 *
 * A host where no bridge ever ran is a cluster of one: global names work
 * there as local ones do, and the host is named by the kernel's node name.
 * Once a bridge has run on a segment, global operations need one running:
 * while none does they fail with -ENOTCONN, and local names go on as usual.
 *
 * Delivery of messages to global names:
 *  - A call is delivered at most once per attempt. The library never sends
 *    a call twice; the bridges resend a batch of calls whose reply was lost,
 *    and the owner's bridge answers a resent batch from what it remembers
 *    instead of delivering it again. A call that reached no worker (no
 *    worker saw it) is made again elsewhere: see dr_call_global().
 *  - A cast or send is best effort: once the local bridge has it, it can be
 *    lost, with no error to the sender, if a bridge dies or the owner is
 *    unreachable.
 *  - Messages from one sending process to one global name arrive in the
 *    order they were sent (or not at all: a message is never delivered
 *    after one sent later), save for calls made again because they reached
 *    no worker while it moved (dr_call_global()).
 *  - To a global name owned by this host, everything is as for local names,
 *    but for calls to one that is not served here (dr_call_global()).
 */

/* Longest host id, in bytes. */
#define DR_HOST_MAX 63
/* Most hosts a view holds (up, suspect, down or ignored). */
#define DR_HOSTS_MAX 256
/* Longest rpc or bus address (a nanomsg URL), in bytes. */
#define DR_ADDR_MAX 127

/* Host states, as struct dr_host.state gives them. */
#define DR_HOST_UP 1       /* heartbeats arrive */
#define DR_HOST_SUSPECT 2  /* late (phi-accrual); still owns its names */
#define DR_HOST_DOWN 3     /* silent for down-after, or left: owns nothing */
#define DR_HOST_IGNORED 4  /* an address with no bridge, or another protocol */

struct dr_host {
	char id[DR_HOST_MAX + 1];      /* NUL-terminated */
	char rpc[DR_ADDR_MAX + 1];     /* its rpc address; "" for this host without a bridge */
	uint64_t incarnation;          /* new at every start of its bridge */
	int state;                     /* DR_HOST_* */
	int self;                      /* 1 for this host */
};

/*
 * The owner host of a global name, from the view in the segment: its id is
 * copied, NUL-terminated, into host (host_len bytes). No round trip: one
 * hash of the name and one mix per host, without a lock or a system call.
 * Whether the bridge lives is read from a lock it holds in the segment,
 * which the kernel marks as the bridge's process ends (a robust mutex),
 * with no system call: a bridge that gave the role back, exited, execs or
 * was killed (also SIGKILL) is seen at once, here and in every call
 * through the bridge; a stopped one is alive. Where that lock cannot vouch
 * for it (the bridge could not take it: no memory or thread, no /proc, a
 * kernel that keeps no robust list for its threads, as under a seccomp
 * filter that refuses set_robust_list, or a C library other than glibc), the kernel is
 * asked each time (two system calls). One case escapes both: a bridge the
 * kernel's OOM killer ends, whose memory is taken before its exit marks
 * the lock (the kernel waits 2 s for that), is alive to readers until a
 * process finds it dead (dr_reap(), or the next bridge's claim).
 * While a bridge runs but has published no view yet, the owner is this
 * host, by its node name, as when no bridge ever ran.
 * Errors: -ENOTCONN a bridge ran on this segment and none runs now;
 * -EHOSTUNREACH no host of the view is up or suspect; -EBADMSG no copy of
 * the view can be read (another process scribbled on the segment: dr_check()
 * says how); -ERANGE host_len too small (DR_HOST_MAX + 1 is always enough);
 * -EINVAL, -ENAMETOOLONG the name; -ECHILD, -ENOLCK.
 */
int dr_owner(dr_registry *r, const char *name, char *host, size_t host_len);
int dr_owner_bin(dr_registry *r, const void *name, size_t name_len, char *host,
		 size_t host_len);

/*
 * The view: up to max hosts into hosts (this host among them), their number
 * in *n and the view's epoch in *epoch (may be NULL; 0 while no view was
 * published, and the one host is this one, by its node name, with no rpc
 * address). Errors: -ENOTCONN as for dr_owner() (the last view published
 * is still returned; it takes precedence over -ERANGE); -ERANGE more than
 * max hosts (the first max are returned, *n is the total); -EBADMSG as for
 * dr_owner() (nothing is returned); -EINVAL n NULL, or hosts NULL with max
 * above 0; -ENOMEM; -ECHILD, -ENOLCK.
 */
int dr_hosts(dr_registry *r, struct dr_host *hosts, size_t max, size_t *n, uint64_t *epoch);

/*
 * Serve a global name through mb, as dr_serve() serves a local one. A
 * local and a global name of the same bytes are two names: serving one
 * does not touch the other, and the local calls (dr_whereis, dr_call, ...)
 * never see global names. The name stays served here if a later view gives
 * it to another host (the bridge may then tell mb with a DR_MSG_SYSTEM).
 * Errors: -EREMOTE the owner is another host (dr_owner() names it), also
 * when a view published while this call registered the name gave it to
 * another host (the registration is undone); -ENOTCONN, -EHOSTUNREACH,
 * -EBADMSG as for dr_owner(); and those of dr_serve().
 */
int dr_serve_global(dr_mailbox *mb, const char *name, const void *value, size_t value_len);
int dr_serve_global_bin(dr_mailbox *mb, const void *name, size_t name_len, const void *value,
			size_t value_len);

/*
 * Look a global name up on its owner: its entry into *out (may be NULL),
 * the owner's id into host (host_len bytes, may be NULL). From another host
 * this asks the owner's bridge, waiting up to timeout_ms (-1: for ever);
 * the entry's pid is then a process of the owner host.
 * Errors: -ENOENT not served on its owner; -ENOTCONN; -EHOSTUNREACH the
 * owner's bridge cannot be reached; -ETIMEDOUT; -ERANGE host_len too small
 * (nothing is asked); -EBADMSG the view, or the bridge's answer, is
 * corrupt; and those of dr_whereis().
 */
int dr_whereis_global(dr_registry *r, const char *name, struct dr_entry *out, char *host,
		      size_t host_len, int timeout_ms);
int dr_whereis_global_bin(dr_registry *r, const void *name, size_t name_len,
			  struct dr_entry *out, char *host, size_t host_len, int timeout_ms);

/*
 * dr_call(), dr_call_async(), dr_cast() and dr_send() for global names, from
 * any host. To a name owned by this host they are the local operations.
 * Otherwise the message goes to this host's bridge and on to the owner's:
 * timeout_ms bounds the whole trip. Besides the errors of the local
 * operations: -ENOTCONN no bridge runs on this host (also when the bridge
 * goes while a call waits for its answer); -EHOSTUNREACH the owner's bridge
 * cannot be reached (down, or no answer to resends), or no host of the view
 * is up; -ETIMEDOUT; -ENOENT the name is not served on its owner; -EBADMSG
 * as for dr_owner(). To another host a message carries a forwarding header
 * (16 bytes, the owner's id and a NUL, the name) inside the message to the
 * bridge, so the largest one is dr_message_max() less that (-EMSGSIZE).
 * The worker sees a remote message as sent by its host's bridge
 * (dr_msg.sender), with dr_msg.global set.
 * An asynchronous call's errors arrive as its DR_MSG_REPLY's status.
 * While a worker moves to its new owner (DR_EVENT_SHOULDRESTART), the new
 * owner does not serve it yet. A call that reached no worker there (the
 * name not served, or its registration ended before the worker took the
 * call: told apart from a worker's own -ENOENT answer, which is final) was
 * delivered nowhere, and the caller's bridge makes it again on the hosts
 * in turn, this one first, until one delivers it (two turns at most;
 * within the call's timeout). A host that did not serve it names the owner
 * of its view: if that is a host the caller's bridge has not heard yet (a
 * join that reached the others first), the call waits for it, 20 ms at a
 * time, up to 2 s. To a name this host owns but does not serve, a call is
 * made again the same way, through this host's bridge (an asynchronous
 * one keeps a copy of itself for this, freed when it completes). So a
 * call made during a move, waiting or asynchronous, reaches the old or the
 * new instance.
 * A call made again can overtake, or be overtaken by, other calls of the
 * same sender: the order per sender holds for calls that were not made
 * again. A name served nowhere
 * costs its -ENOENT those turns (a round trip per host). Casts and sends
 * are not made again: during a move they may be dropped, or get -ENOENT.
 */
int dr_call_global(dr_registry *r, const char *name, const void *req, size_t req_len,
		   void *reply, size_t *reply_len, int timeout_ms);
int dr_call_global_bin(dr_registry *r, const void *name, size_t name_len, const void *req,
		       size_t req_len, void *reply, size_t *reply_len, int timeout_ms);
int dr_call_async_global(dr_mailbox *mb, const char *name, const void *req, size_t req_len,
			 int timeout_ms, uint64_t *call_id);
int dr_call_async_global_bin(dr_mailbox *mb, const void *name, size_t name_len,
			     const void *req, size_t req_len, int timeout_ms, uint64_t *call_id);
int dr_cast_global(dr_registry *r, const char *name, const void *msg, size_t len,
		   int timeout_ms);
int dr_cast_global_bin(dr_registry *r, const void *name, size_t name_len, const void *msg,
		       size_t len, int timeout_ms);
int dr_send_global(dr_registry *r, const char *name, const void *msg, size_t len,
		   int timeout_ms);
int dr_send_global_bin(dr_registry *r, const void *name, size_t name_len, const void *msg,
		       size_t len, int timeout_ms);

/*
 * Global workers: get-or-create on the owner (distreg's start/2).
 *
 * A factory is a process that starts workers of one kind on its host: it
 * declares it with dr_factory_serve(), and start requests then arrive in
 * its mailbox as DR_MSG_CALLs that dr_start_request() recognises. For each
 * it serves the name (dr_serve_global() in a mailbox of its own or of a
 * process it spawned: never a bare fork(), nanomsg is not fork-safe) and
 * answers with dr_start_answer(): 0 once served, -EEXIST when the name was
 * served already (dr_serve_global() said so), or any other negative status
 * with a reason to refuse.
 *
 * dr_start() asks the name's owner host: if the name is served there, it
 * answers where (created 0); otherwise it asks a factory of kind on the
 * owner and answers where the new worker is (created 1).
 *
 * Concurrent starts of one name: the owner's table registers a global name
 * once, so starts made while the hosts agree on the view give exactly one
 * instance (the others get created 0 and the same regid). Starts made while
 * views disagree may each create one on the host they took for the owner;
 * those duplicates are not resolved yet (see the README's status of global
 * workers).
 */

/* Longest kind of worker a factory starts, in bytes. */
#define DR_KIND_MAX 63
/* Longest reason a factory gives for refusing a start, in bytes. */
#define DR_REASON_MAX 255

struct dr_started {
	char host[DR_HOST_MAX + 1];    /* the owner host, NUL-terminated */
	struct dr_entry entry;         /* the worker's entry there (pid of that host) */
	int created;                   /* 1: started by this call; 0: it was served already */
	char reason[DR_REASON_MAX + 1]; /* -ECANCELED: the factory's reason, NUL-terminated */
};

/*
 * Start the global worker name of kind on its owner, unless it is served
 * there already; where it is goes into *out (may be NULL). arg (arg_len
 * bytes, may be NULL if 0) is handed to the factory. timeout_ms bounds the
 * whole trip (-1: for ever). kind: 1 to DR_KIND_MAX bytes, no NUL.
 * Errors: -ESRCH no factory of kind runs on the owner; -ECANCELED the
 * factory refused (out->reason says why); -EOWNERDEAD the factory died
 * before it answered (a worker it had spawned may run all the same: a new
 * dr_start finds it); -ETIMEDOUT (the factory may still start it: a start
 * is delivered at most once, and a late one is not undone); -EHOSTUNREACH,
 * -ENOTCONN, -EBADMSG as for dr_call_global(); -ENOENT the factory said it
 * started the worker but it was gone by the time it was looked up;
 * -EMSGSIZE name, kind and arg do not fit one message; -EINVAL, -ENAMETOOLONG.
 */
int dr_start(dr_registry *r, const char *name, const char *kind, const void *arg,
	     size_t arg_len, struct dr_started *out, int timeout_ms);
int dr_start_bin(dr_registry *r, const void *name, size_t name_len, const char *kind,
		 const void *arg, size_t arg_len, struct dr_started *out, int timeout_ms);

/*
 * dr_start() without waiting: the start goes out from mb, and its answer
 * arrives in mb as a DR_MSG_REPLY with *call_id; give it to
 * dr_start_finish(mb, reply, out), which returns dr_start()'s result (or
 * -EINVAL for a reply that is not a start's answer: handle that one as
 * usual; the answer of a dr_restart_moved_async() is finished as by
 * dr_restart_moved_finish()). mb remembers the starts in flight (their names, and whether each
 * went to a factory here or to the owner's bridge, which is how the answer
 * is read). Returns 0 in flight; 1 answered at once: the owner is this
 * host and serves the name, *now (may be NULL) says where; or dr_start()'s
 * errors. Thread-safe with a thread that receives on mb. A factory that moves
 * its workers uses this (dr_restart_moved_async), so that it keeps
 * answering starts and calls meanwhile: two factories restarting workers
 * to each other with dr_start() would wait for each other.
 */
int dr_start_async(dr_mailbox *mb, const char *name, const char *kind, const void *arg,
		   size_t arg_len, int timeout_ms, struct dr_started *now, uint64_t *call_id);
int dr_start_async_bin(dr_mailbox *mb, const void *name, size_t name_len, const char *kind,
		       const void *arg, size_t arg_len, int timeout_ms, struct dr_started *now,
		       uint64_t *call_id);
int dr_start_finish(dr_mailbox *mb, const struct dr_msg *reply, struct dr_started *out);

/*
 * Declare that mb's process starts workers of kind on this host (until
 * mb is closed, or the process dies). One factory per kind per host: a
 * second gets -EEXIST. Errors: those of dr_serve(); -EINVAL kind empty,
 * longer than DR_KIND_MAX, or with a NUL.
 */
int dr_factory_serve(dr_mailbox *mb, const char *kind);

/* A start request as a factory receives it. */
struct dr_start_req {
	const unsigned char *name;     /* the global name to serve */
	size_t name_len;
	const char *kind;              /* not NUL-terminated */
	size_t kind_len;
	const void *arg;               /* dr_start()'s arg */
	size_t arg_len;
};

/*
 * Whether msg (from dr_recv() on mb) is a start request: 0 and *out
 * filled (pointers into msg's data, valid as long as it is): start the
 * worker; -EEXIST it is one, *out filled, but the name is served already
 * (an earlier request for it got there first): answer it with
 * dr_start_answer(-EEXIST) and start nothing; -EINVAL it is not one
 * (another message: handle it as usual); -EBADMSG it claims to be one but
 * is malformed (answer it with dr_reply_error(-EBADMSG)); -ECHILD, -ENOLCK.
 * A factory that takes requests from one mailbox in several threads must
 * serve each name from one of them, or two starts may both say created.
 */
int dr_start_request(dr_mailbox *mb, const struct dr_msg *msg, struct dr_start_req *out);

/*
 * Answer the start request msg: status 0 the name is served now, -EEXIST
 * it was served already; another negative status refuses, with reason (a
 * NUL-terminated string, may be NULL; cut at DR_REASON_MAX bytes), which
 * dr_start() returns as -ECANCELED. Errors: those of dr_reply(); -EINVAL
 * msg is not a start request, or status is positive.
 */
int dr_start_answer(dr_mailbox *mb, const struct dr_msg *msg, int status, const char *reason);

/*
 * What a worker does with DR_EVENT_SHOULDRESTART ev about a global name mb
 * serves: dr_start() it (kind, arg) on its new owner, which creates a new
 * instance there even while this one runs, then stop serving it here
 * (dr_unserve_global). If the owner already runs one, that one wins and
 * this one stops all the same. *out (may be NULL) says where it runs now.
 * If the start fails the name stays served here, and its error is
 * returned (the bridge tells a misplaced worker again: after 0.5 s, then
 * 1, 2, ... up to every 16 s, while it stays misplaced). Errors: -EALREADY
 * the event is stale: this host owns the name again, it stays served here;
 * -EINVAL ev is not a shouldrestart event; those of dr_owner(), dr_start()
 * and dr_unserve_global().
 * Calls already queued for the name here when it stops being served reach
 * no worker: dr_recv() answers them so, and their callers' bridges make
 * them again on the new instance. A process that exits after a move should
 * therefore receive until its mailbox is empty (dr_recv with timeout 0
 * until -EAGAIN) before it closes: calls still queued when its mailbox
 * goes fail with -EOWNERDEAD (they may have been seen).
 */
int dr_restart_moved(dr_mailbox *mb, const struct dr_msg *ev, const char *kind, const void *arg,
		     size_t arg_len, struct dr_started *out, int timeout_ms);
/*
 * The same in two steps, for a worker that must not wait (a factory):
 * dr_restart_moved_async() puts the start on the new owner in flight from
 * mb (0; -EALREADY, -EINVAL, -ENOMEM and dr_start()'s errors as above).
 * Give every DR_MSG_REPLY that mb receives to dr_restart_moved_finish():
 * for the answer of such a start it stops serving the name here if the
 * start succeeded, and returns dr_start()'s result (*out, may be NULL, as
 * dr_start's); for any other reply it returns -EINVAL and does nothing
 * (handle that reply as usual). mb remembers the names in flight; the
 * answer of a dr_start_async() is finished as by dr_start_finish().
 */
int dr_restart_moved_async(dr_mailbox *mb, const struct dr_msg *ev, const char *kind,
			   const void *arg, size_t arg_len, int timeout_ms);
int dr_restart_moved_finish(dr_mailbox *mb, const struct dr_msg *reply, struct dr_started *out);

/*
 * The library's version ("MAJOR.MINOR.PATCH", the package version it was
 * built as). If layout is not NULL, *layout receives the segment layout
 * version this build reads and writes: segments of another layout version
 * are refused (-EPROTO at dr_open). Never NULL. Thread-safe. New in
 * DISTREG_3.
 */
const char *dr_version(uint32_t *layout);

/* The segment name this handle has open. Never NULL for a valid handle. */
const char *dr_segment_name(const dr_registry *r);

/*
 * A static description of err (a value returned by a dr_* function, or any
 * negative errno). Never NULL. Thread-safe.
 */
const char *dr_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* DISTREG_H */
