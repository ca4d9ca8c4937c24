/*
 * distreg_admin.h - what only a bridge does: claim the bridge role of a
 * segment, publish the cluster's view, take forwarded messages, deliver
 * messages from other hosts, watch and reap processes.
 *
 * Everything here is part of libdistreg's public ABI, under the same
 * conventions as distreg.h (0 or a negative errno; errno never set), so a
 * second bridge implementation needs nothing but this header. Programs
 * that are not a bridge never need it.
 */
#ifndef DISTREG_ADMIN_H
#define DISTREG_ADMIN_H

#include <distreg.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Claim the bridge role of mb's segment for mb's process: mb then receives
 * every message that processes of this host send to global names owned by
 * another host (see dr_admin_fwd_decode), and the segment records that a
 * bridge has run. The role ends when the process dies or closes mb, or with
 * dr_admin_bridge_release(); a dead holder's role is taken over. Claiming
 * again through the mailbox that holds it returns 0. The bridge serves its
 * address (a global name of length 0, which takes one entry of the table)
 * through mb, and other processes send to it there. While it holds the
 * role, a thread of the library's, with every signal blocked, holds a lock
 * in the segment that tells other processes, with no system call, that the
 * holder lives (the kernel marks it when the process dies or execs); if
 * that thread cannot take it (it needs /proc, and a robust list the kernel
 * knows), they ask the kernel instead. That thread ends with the role, or
 * within a second after every other thread of the process has ended (then
 * the process exits, as glibc ends a process whose last thread exits: exit
 * handlers run on that thread). Claim and release are not cancellation
 * points.
 * Errors: -EBUSY a live process holds the role (its pid in *holder, which
 * may be NULL; this process's own if another of its mailboxes holds it);
 * -EINVAL mb NULL or a thread's mailbox for answers; -ENOSPC, -EUSERS,
 * -EBADMSG, and -EBUSY with *holder 0, from serving the address (as
 * dr_register() returns them); -ECHILD, -ENOLCK.
 * dr_admin_bridge_release() does nothing unless mb holds the role.
 */
int dr_admin_bridge_claim(dr_mailbox *mb, pid_t *holder);
void dr_admin_bridge_release(dr_mailbox *mb);

/*
 * Publish a view: n hosts (at most DR_HOSTS_MAX; exactly one with self = 1,
 * whose id is this host's: the library cannot check that one), with a
 * strictly greater epoch than the last one published on the segment, by
 * this bridge or an earlier one (dr_hosts() gives it: a restarted bridge
 * starts from there). Readers see the previous view or this one, never a
 * mixture, and never wait for the publisher (one paused in the middle of a
 * publication included). incarnation is not interpreted. Thread-safe.
 * Errors: -EPERM mb's process does not hold the bridge role; -EINVAL hosts
 * NULL, n 0 or above DR_HOSTS_MAX, a host id empty or not NUL-terminated
 * within DR_HOST_MAX + 1 bytes, an address not within DR_ADDR_MAX + 1,
 * self not 0 or 1, not exactly one self, a duplicate id, a state out of
 * range, or the epoch not greater; nothing is written then; -ECHILD,
 * -ENOLCK.
 */
int dr_admin_view_publish(dr_mailbox *mb, const struct dr_host *hosts, size_t n,
			  uint64_t epoch);

/* What a process of this host asked the bridge to carry (dr_admin_fwd_decode). */
#define DR_FWD_CALL 1     /* a call: answer the message with dr_reply() or dr_reply_error() */
#define DR_FWD_CAST 2     /* a cast: no answer */
#define DR_FWD_INFO 3     /* a send (inform): no answer */
#define DR_FWD_WHEREIS 4  /* a lookup: answer with dr_admin_entry_encode()'s bytes */
#define DR_FWD_START 5    /* a start: answer with dr_admin_start_begin()'s or _end()'s bytes */

/*
 * The status of a forwarded call that reached no worker: the name is not
 * served where it was sent, or its registration ended on the way. It is
 * out of errno's range so that it is told apart from a worker's own
 * -ENOENT answer: a call that got it was delivered nowhere and may be made
 * elsewhere (dr_call_global() and the bridges do while a worker moves).
 * dr_reply_error() refuses it (a worker cannot claim it); bridges answer it
 * with dr_admin_reply_status(). In the segment it is an answer of -ENOENT
 * with a flag that only the library sets, so a library or a worker built
 * before it existed sees -ENOENT and cannot forge it; a process's own
 * calls report it as -ENOENT. Between bridges it needs protocol version 2.
 */
#define DR_NOTSERVED (-4096 - 1)

struct dr_fwd {
	int op;                      /* DR_FWD_* */
	const char *host;            /* the owner the sender computed, NUL-terminated */
	const unsigned char *name;   /* the global name */
	size_t name_len;
	const void *data;            /* the payload */
	size_t len;
	int timeout_ms;              /* the sender's time left when it sent; -1 none */
	uint64_t epoch;              /* the view epoch the sender used */
};

/*
 * Decode a message that arrived in the bridge's mailbox (a CALL for
 * DR_FWD_CALL and DR_FWD_WHEREIS, a CAST otherwise), sent to the bridge's
 * address (msg->name_len 0, msg->global 1). The pointers point into msg's
 * data, valid as long as it is. The header's layout is in lib/global.c and
 * bridge/DESIGN.md; every length is checked against the message first.
 * Errors: -EINVAL msg or out NULL; -EBADMSG not a well-formed forwarding
 * message (the bridge answers a CALL with dr_reply_error(-EBADMSG) and
 * counts it).
 */
int dr_admin_fwd_decode(const struct dr_msg *msg, struct dr_fwd *out);

/*
 * Deliver a message from another host to the global name served in this
 * segment, whatever the view says (the sender's bridge decided; no second
 * forwarding). op DR_FWD_CALL: as dr_call_async() from mb, the answer
 * arrives in mb as a DR_MSG_REPLY with *call_id. DR_FWD_CAST, DR_FWD_INFO:
 * as dr_cast(), dr_send() with timeout 0 (timeout_ms is not used). It never
 * waits for room, so that a bridge's one thread never stops for a slow
 * worker: -EAGAIN when the worker's lane is full, -EUSERS when no lane is
 * free, and nothing was delivered (deliver it again later; the call's
 * timeout_ms counts from then). Errors: -EINVAL op not one of those
 * three, mb NULL, an empty name; and those of the local operations
 * (-ENOENT the name is not served here; for a call, DR_NOTSERVED instead:
 * answer the caller with it).
 */
int dr_admin_deliver(dr_mailbox *mb, int op, const void *name, size_t name_len,
		     const void *data, size_t len, int timeout_ms, uint64_t *call_id);

/* dr_reply_error() that also takes DR_NOTSERVED: a bridge passing on the
 * answer of the host it forwarded a call to. */
int dr_admin_reply_status(dr_mailbox *mb, const struct dr_msg *msg, int status);

/*
 * A global name's entry as the answer to DR_FWD_WHEREIS: looks the name up
 * in this segment and encodes the result into buf (DR_ENTRY_WIRE_MAX
 * bytes); *len gets its length (24 + the value's). The caller's
 * dr_whereis_global() decodes it strictly (-EBADMSG otherwise).
 * Errors: -EINVAL r, buf or len NULL; those of dr_whereis().
 */
#define DR_ENTRY_WIRE_MAX (24 + DR_VALUE_MAX)
int dr_admin_entry_encode(dr_registry *r, const void *name, size_t name_len, void *buf,
			  size_t *len);

/*
 * A start (DR_FWD_START) from another host, on the owner: the payload is
 * the kind and the arg, as the sender's dr_start() wrote them. If it can be
 * answered at once (the name is served here, no factory of that kind, a
 * malformed payload) the answer goes into buf (DR_START_WIRE_MAX bytes),
 * *len its length, and 1 is returned. Otherwise the start request went to
 * the factory as a call from mb: 0 is returned with its *call_id, and the
 * factory's DR_MSG_REPLY, when it arrives in mb, is turned into the answer
 * by dr_admin_start_end(). Either way the bridge sends the answer back with
 * status 0; the sender's dr_start() decodes it strictly. Like
 * dr_admin_deliver() it never waits for room: -EAGAIN or -EUSERS when the
 * factory's mailbox has none, and nothing was sent (begin again later).
 * Errors: -EINVAL; -ENOMEM; -EAGAIN; -EUSERS; those of dr_call_async().
 */
#define DR_START_WIRE_MAX (8 + 24 + DR_VALUE_MAX + DR_REASON_MAX)
int dr_admin_start_begin(dr_mailbox *mb, const void *name, size_t name_len, const void *data,
			 size_t len, int timeout_ms, uint64_t *call_id, void *buf, size_t *len_out);
int dr_admin_start_end(dr_registry *r, const void *name, size_t name_len,
		       const struct dr_msg *reply, void *buf, size_t *len_out);

/*
 * After a new view is published: for every global name served in this
 * segment whose owner in the view now published is another host, and was
 * not that host under before (nbefore hosts, as dr_hosts() gives them;
 * NULL: every misplaced one, as at the bridge's start), either send it
 * DR_EVENT_SHOULDRESTART (ask NULL), or call ask(arg, name, name_len, owner)
 * (owner NUL-terminated), for a bridge that first asks the owner whether it
 * runs the name (then dr_admin_tell() says shouldrestart or dienow).
 * *told (may be NULL) gets how many were told or asked, *unsent (may be
 * NULL) how many could not be (their mailbox's lane was full, or ask
 * returned nonzero): the caller tries every misplaced one again a little
 * later (before NULL; a worker that stopped serving the name meanwhile is
 * not found again). Errors: -EINVAL; -ENOMEM; those of dr_hosts() and
 * dr_foreach().
 */
typedef int (*dr_admin_ask_fn)(void *arg, const unsigned char *name, size_t name_len,
			       const char *owner);
int dr_admin_tell_moved(dr_mailbox *mb, const struct dr_host *before, size_t nbefore,
			dr_admin_ask_fn ask, void *arg, size_t *told, size_t *unsent);

/* Who lost a name to dienow, for the bridge's SIGTERM option. */
struct dr_admin_loser {
	pid_t pid;                     /* the process that served it */
	uint32_t mailbox;              /* the mailbox it served it through */
};

/*
 * Tell the worker serving the global name here: event DR_EVENT_SHOULDRESTART
 * (the owner, host owner, does not run it), or DR_EVENT_DIENOW (the owner
 * runs another instance: this one lost). A dienow is delivered even though
 * the registration then ends: it is unregistered at once (forced, that
 * registration only), and *loser (may be NULL) says who held it.
 * Errors: -ENOENT the name is not served here (any more); -EAGAIN its lane
 * has no room now (nothing done: try again later); -EINVAL; those of
 * dr_cast().
 */
int dr_admin_tell(dr_mailbox *mb, const void *name, size_t name_len, int event,
		  const char *owner, struct dr_admin_loser *loser);

/* Whether the mailbox of a loser (dr_admin_tell) is still open. */
int dr_admin_mailbox_open(dr_registry *r, uint32_t mailbox);

/* The processes attached to the segment, for a reaper. */
struct dr_proc_info {
	uint32_t slot;
	pid_t pid;
	uint64_t start_time;  /* the process's start time (clock ticks since boot) */
};

/*
 * Up to max attached processes into out, their number in *n (may exceed
 * max: then -ERANGE and the first max). A process is listed from the moment
 * it holds its slot; a dead one stays listed until a process finds it dead
 * (a lookup, a call, a reap), which may be before its names, mailboxes
 * and lanes are reaped: a reaper also watches dr_admin_deaths().
 * start_time is 0 if the process could not read it at attach.
 * Errors: -ERANGE; -EINVAL r or n NULL, or out NULL with max above 0;
 * -ECHILD, -ENOLCK.
 */
int dr_admin_procs(dr_registry *r, struct dr_proc_info *out, size_t max, size_t *n);

/*
 * How many deaths of attached processes the segment has recorded, modulo
 * 2^32: a process found dead by anyone (a lookup, a call, a reap) is
 * counted once, and leaves the list of dr_admin_procs() then. When it
 * moves, a reaper reaps (dr_reap), or a process found dead between two of
 * its listings, which it never watched, keeps what it held (a message it
 * published and woke nobody for, among others). 0 if r is NULL.
 */
uint32_t dr_admin_deaths(const dr_registry *r);

#ifdef __cplusplus
}
#endif

#endif /* DISTREG_ADMIN_H */
