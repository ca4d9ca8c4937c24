/*
 * bridge.h - the bridge daemon's state, shared by its files. One thread:
 * everything here is touched only from the loop in main.c.
 */
#ifndef DISTREG_BRIDGE_H
#define DISTREG_BRIDGE_H

#include <poll.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <distreg.h>
#include <distreg_admin.h>

#include "config.h"
#include "idmap.h"
#include "log.h"
#include "wire.h"

/* Heartbeat inter-arrival times the failure detector remembers. */
#define PHI_WINDOW 100
/* phi above this: suspect (Hayashibara et al. use 8 for a 1-in-10^8 error). */
#define PHI_SUSPECT 8.0
/* An ignored address is dialled again after this long (distreg's rule). */
#define IGNORED_RETRY_NS (10ull * 1000 * 1000 * 1000)
/* How often the reaper lists the attached processes: a process that dies
 * before it was seen is found dead at the next listing. */
#define REAP_SCAN_NS (25ull * 1000 * 1000)
/* Batches in flight to one peer before the next waits. */
#define BATCHES_IN_FLIGHT 64
/* A batch the peer acknowledged is sent again only for a reply that was
 * lost (a raw REP drops what its pipe cannot take, silently): after the
 * retry interval, doubling at each resend up to this. */
#define ACKED_RETRY_NS (1000ull * 1000 * 1000)
/* Batches per peer acknowledged and not answered (waiting for slow
 * workers) at most: past it no batch goes to that peer until some are. */
#define ACKED_MAX 1024
/* How long the owner's bridge waits for a batch's answers before it
 * acknowledges the batch (most are answered sooner, and need no ack). */
#define ACK_DELAY_NS (2ull * 1000 * 1000)
/* A batch takes at most this many items and bytes of payload. */
#define BATCH_ITEMS 256
#define BATCH_BYTES (64u * 1024)
/* Resent no sooner than this after the last send (and at least 4 round trips). */
#define RETRY_MIN_NS (50ull * 1000 * 1000)
/* A batch of casts only (no deadline) is dropped after this long unanswered. */
#define CAST_GIVEUP_NS (2000ull * 1000 * 1000)
/* Inbound batches remembered per origin, to answer resends; trimmed back
 * to that once ORIGIN_TRIM_SLACK more have come. */
#define ORIGIN_CACHE 1024
#define ORIGIN_TRIM_SLACK 64
/* How long a stopping bridge waits for the calls in flight. */
#define DRAIN_NS (2000ull * 1000 * 1000)
/* How long a stopping bridge runs at least after its LEAVE: nanomsg sends
 * from its own worker thread, so a frame queued just before the bridge
 * closes its sockets and exits may not have left yet; we keep the loop
 * running rather than rely on nn_close's NN_LINGER. */
#define LEAVE_FLUSH_NS (100ull * 1000 * 1000)

/* Phi-accrual failure detector of one peer. */
struct phi {
	double iv[PHI_WINDOW];         /* inter-arrival times, ms, a ring */
	uint32_t n, at;
	uint64_t last_ns;              /* last heartbeat */
};

/* A message a local process handed us for another host, in a queue or a
 * batch, until it is answered (calls) or acknowledged (casts). */
struct item {
	struct item *next;
	uint8_t op;                    /* DR_FWD_* */
	bool answered;                 /* the caller has had its answer */
	uint64_t id;                   /* ours, unique in this run */
	uint64_t deadline_ns;          /* 0: none */
	struct dr_msg caller;          /* CALL, WHEREIS: whom to answer (a copy) */
	bool internal;                 /* the bridge's own question (rpc_ask): no caller */
	/* A call that reached no worker (DR_NOTSERVED) is made again on the
	 * hosts in turn (rpc.c, relocate): the next one to try (0 this host,
	 * k peers[k - 1]), and how many turns it has had. */
	uint16_t probe;
	uint8_t turns;
	uint8_t parks;                 /* times it waited for a host we had not heard */
	uint64_t due_ns;               /* parked: when to go on */
	char host[DR_HOST_MAX + 1];    /* internal: whom it asked; a call: the owner
	                                * that a host which did not serve it named */
	uint8_t name_len;
	uint32_t len;
	unsigned char *name;
	unsigned char *data;           /* both in the same allocation as the item */
};

/* A batch we sent to a peer, kept until its reply. */
struct obatch {
	struct obatch *next;
	uint64_t no;
	struct item *items;
	uint32_t n;
	uint32_t waiting;              /* calls not answered yet */
	uint64_t sent_ns;              /* first send */
	uint64_t last_ns;              /* last send */
	int sends;
	bool starts;                   /* a batch of starts (their own window) */
	bool in_window;                /* counts in its class's window: until acked */
	bool acked;                    /* the peer said it has it (a first reply) */
	uint8_t since_ack;             /* sends since: the resend interval doubles */
};

/* One call of an inbound batch, delivered to a worker of ours. */
struct ritem {
	struct ibatch *ib;             /* the batch it is in */
	uint64_t id;                   /* the sender bridge's */
	uint64_t call_id;              /* dr_admin_deliver's, while it waits; else 0 */
	uint8_t op;
	bool done;
	int32_t status;
	uint32_t len;
	unsigned char *data;           /* the answer (malloc'd) */
	unsigned char *name;           /* CALL, START: the name (malloc'd), for the answer */
	uint8_t name_len;
};

/* A message for a worker of this host that found the worker's mailbox
 * full (rpc.c): delivered again, in arrival order, as room frees, so that
 * the bridge's one thread never waits for a slow worker. */
struct dlv {
	struct dlv *next;
	struct ritem *ri;              /* an item of an inbound batch; or */
	struct item *it;               /* a message of this host's (relayed, made again) */
	uint8_t op, name_len;
	uint32_t len;
	uint64_t deadline_ns;          /* 0: none */
	uint32_t key;                  /* its queue: dlv_key() of its receiver */
	unsigned char *name, *data;    /* in the same allocation */
};

/* An answer for a process of this host that found its mailbox full: sent
 * again until it goes or its call's deadline passes. */
struct late {
	struct late *next;
	struct dr_msg caller;
	int status;
	uint64_t until_ns;
	uint32_t len;
	unsigned char *data;           /* in the same allocation */
};

/* The queue of messages waiting for room is one list, but order is kept
 * per receiver (a global name; for starts, the factories): messages are
 * hashed to DLV_KEYS keys, and one waits only behind those of its key.
 * With DLV_MAX waiting in all, the bridge stops reading inbound batches,
 * which then wait at their senders. */
#define DLV_KEYS 4096
#define DLV_MAX 16384
/* How often those, and late answers, are tried again: from 1 ms, doubling
 * up to 16 ms while a pass delivers nothing. */
#define DLV_RETRY_NS (1000ull * 1000)
#define DLV_RETRY_MAX_NS (16ull * 1000 * 1000)
/* A late answer to a call with no deadline is dropped after this. */
#define LATE_GIVEUP_NS (10000ull * 1000 * 1000)

/* A batch another bridge sent us. */
struct ibatch {
	struct ibatch *next;           /* newer first */
	char to[DR_HOST_MAX + 1];      /* the sender: where the reply goes */
	uint64_t no;
	uint32_t n, pending;
	struct ritem *items;
	void *ctl;                     /* the request's backtrace: where the reply goes */
	size_t ctl_len;
	bool replied;
	/* Not answered whole at once: acknowledged if still not answered
	 * ACK_DELAY_NS after it came (the bridge's ack list). */
	uint64_t got_ns;
	struct ibatch *ack_next;
	bool in_acks;
};

/* What we know of a sender of batches: one (host, incarnation). */
struct origin {
	uint64_t incarnation;
	uint64_t delivered;            /* highest batch number delivered */
	uint64_t forgotten;            /* highest batch number trimmed from the cache */
	struct ibatch *cache;          /* newest first; answered ones beyond ORIGIN_CACHE trimmed */
	uint32_t ncache;
};

struct peer {
	char bus[DR_ADDR_MAX + 1];     /* its identity until it heartbeats */
	char host[DR_HOST_MAX + 1];    /* "" until its first heartbeat */
	char rpc[DR_ADDR_MAX + 1];
	uint64_t incarnation;
	int state;                     /* DR_HOST_*; 0 never heard */
	bool seed;                     /* from --peer: dialled whatever the rule says */
	bool knows_us;                 /* its heartbeat lists our bus address */
	int dial;                      /* our BUS endpoint to it, or -1 */
	uint64_t dialled_ns;
	uint64_t retry_ns;             /* ignored: dial again then */
	struct phi phi;
	struct wire_replay replay;
	/* rpc, outbound */
	int req;                       /* raw REQ socket to its rpc, or -1 */
	int req_fd;                    /* its NN_RCVFD */
	char req_url[DR_ADDR_MAX + 1];
	uint64_t next_batch;
	struct item *queue, **queue_tail;
	uint32_t queued, queued_bytes;
	struct obatch *inflight;       /* oldest first */
	/* Batches sent and not acknowledged yet (the peer acknowledges a
	 * batch at once, with an empty reply, when it cannot answer it
	 * whole at once), of starts and of the rest: each at most
	 * BATCHES_IN_FLIGHT. So a worker that does not read, or a factory
	 * busy with a move of thousands of workers, holds up no other
	 * batch. */
	uint32_t ninflight, ninflight_starts;
	uint32_t nacked;               /* acknowledged, not answered: at most ACKED_MAX */
	double rtt_ms;                 /* smoothed round trip */
	/* rpc, inbound */
	struct origin origin;
};

struct bridge {
	struct bridge_config cfg;
	dr_registry *r;
	dr_mailbox *mb;
	bool mb_more;                  /* the last pass stopped at MAILBOX_BURST */
	uint64_t busy_until_ns;        /* poll without sleeping until then (main.c) */
	struct wire_key key;
	char host[DR_HOST_MAX + 1];
	uint64_t incarnation;
	uint64_t seq;                  /* our frame sequence */
	uint64_t next_id;              /* item ids */
	int bus, bus_fd;               /* BUS socket, its NN_RCVFD */
	int rep, rep_fd;               /* raw REP socket, its NN_RCVFD */
	int timer_fd, signal_fd, mb_fd;
	struct peer *peers[DR_HOSTS_MAX];
	size_t npeers;
	uint64_t view_epoch;
	bool view_dirty;
	uint64_t tell_retry_ns;        /* when to tell misplaced workers again (moves.c), 0 never */
	uint64_t retell_ns;            /* the wait before the next such pass, doubling */
	struct loser *losers;          /* dienow'd, for --dienow-sigterm-ms (moves.c) */
	size_t nlosers, caplosers;
	uint64_t next_heartbeat_ns, next_scan_ns;
	size_t msg_max;                /* dr_message_max() */
	unsigned char *frame;          /* a WIRE_FRAME_MAX buffer to build frames */
	unsigned char *rx;             /* and one to receive into */
	struct idmap calls;            /* dr_admin_deliver's call ids -> what they answer */
	struct item *parked;           /* calls waiting to be made again (rpc.c, relocate) */
	struct dlv *dlv, **dlv_tail;   /* waiting for room in their worker's mailbox */
	size_t ndlv;
	uint32_t dlv_count[DLV_KEYS];  /* waiting, per key */
	uint32_t dlv_blocked[DLV_KEYS]; /* the pass (dlv_pass) that found the key full */
	uint32_t dlv_pass;
	uint64_t dlv_retry_ns, dlv_next_ns;
	struct late *late;             /* answers waiting for room in their caller's */
	struct ibatch *acks, **acks_tail; /* inbound batches to acknowledge, oldest first */
	/* the reaper */
	struct watched *watched;
	size_t nwatched, watched_cap;
	uint32_t deaths_seen;          /* dr_admin_deaths() at the last scan */
	bool stopping;
	uint64_t stop_deadline_ns;
	uint64_t stop_min_ns;        /* not before: the LEAVE is on its way */
	struct log_once once;          /* lines logged once per change of state */
	/* counters, for the log and the tests */
	struct {
		uint64_t dropped_auth, dropped_malformed, dropped_replay, dropped_version;
		uint64_t batches_sent, batches_resent, batches_received, items_forwarded;
		uint64_t reaped, relocated, deferred, answered_late;
	} n;
};

uint64_t now_ns(void);

static inline int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/* membership.c */
int membership_start(struct bridge *b);
void membership_stop(struct bridge *b);
void membership_recv(struct bridge *b);
void membership_tick(struct bridge *b, uint64_t now);
void membership_leave(struct bridge *b);
struct peer *peer_by_host(struct bridge *b, const char *host);

/* view.c */
int view_publish(struct bridge *b);

/* moves.c: workers whose global name another host owns now */
void moves_view_published(struct bridge *b, const struct dr_host *before, size_t nbefore,
			  uint64_t now);
void moves_tick(struct bridge *b, uint64_t now);
void moves_owner_said(struct bridge *b, const unsigned char *name, size_t len, const char *owner,
		      int status);
void moves_stop(struct bridge *b);

/* rpc.c */
int rpc_start(struct bridge *b);
void rpc_stop(struct bridge *b);
/* At most this many messages per pass, so that the sockets get their turn. */
#define MAILBOX_BURST 4096
int rpc_mailbox(struct bridge *b); /* messages taken; MAILBOX_BURST: more may wait */
void rpc_rep_recv(struct bridge *b);
void rpc_req_recv(struct bridge *b, struct peer *p);
void rpc_tick(struct bridge *b, uint64_t now);
void rpc_flush(struct bridge *b);
void rpc_peer_up(struct bridge *b, struct peer *p);
void rpc_peer_down(struct bridge *b, struct peer *p);
/* p came back with a new incarnation: what its old one sent goes. */
void rpc_peer_restarted(struct bridge *b, struct peer *p);
/* Ask host whether it runs the global name (a lookup, answered through
 * view_owner_said). -EHOSTUNREACH no live peer by that id; -ENOMEM. */
int rpc_ask(struct bridge *b, const char *host, const unsigned char *name, size_t len,
	    uint64_t now);
bool rpc_idle(const struct bridge *b);
/* Whether inbound batches may be read now (not too many messages wait
 * for room in their workers' mailboxes). */
bool rpc_rep_open(const struct bridge *b);
uint64_t rpc_next_deadline(const struct bridge *b);

/* reaper.c */
void reaper_scan(struct bridge *b);
int reaper_pollfds(struct bridge *b, struct pollfd *fds, size_t max);
void reaper_event(struct bridge *b, int fd);
void reaper_stop(struct bridge *b);

#endif /* DISTREG_BRIDGE_H */
