/*
 * rpc.c - messages for global names between hosts.
 *
 * Outbound: a process of this host sends a message for a global name owned
 * elsewhere to our mailbox (the library's forwarding header says for which
 * host). We queue it for that peer; whatever is queued goes out as one
 * BATCH on the peer's raw REQ socket when the loop comes round, so that
 * under load many messages share one nanomsg message and when idle a
 * message leaves at once. A batch stays in flight until its REPLY; a batch
 * without one is resent (same batch number, a new frame sequence) after
 * max(RETRY_MIN_NS, 4 round trips), until its calls' deadlines (once
 * acknowledged, at doubling intervals up to ACKED_RETRY_NS). Starts and the
 * rest go in batches of their own, each with its window. A call is
 * answered with dr_reply() when its answer comes back, or failed with
 * -ETIMEDOUT or -EHOSTUNREACH (its peer went down).
 *
 * Inbound: a BATCH arrives on our raw REP socket. Per origin (host,
 * incarnation) batches are delivered in batch order only: a batch numbered
 * at or below one already delivered is answered from the cache of recent
 * batches if it is there (a resend: nothing is delivered twice), and
 * otherwise failed whole without delivering it (it was overtaken, and
 * delivering it would break the order per sender). Each call is handed to
 * the worker with dr_admin_deliver() as an asynchronous call from our
 * mailbox, at once or, if the worker's mailbox is full, from a queue of
 * ours (dlv_submit: the bridge never waits for a worker); once every call
 * of the batch has its answer, the REPLY goes back on the request's
 * backtrace (a raw REP may drop it silently: the sender's resend then gets
 * it from the cache). A batch not answered whole within ACK_DELAY_NS is
 * acknowledged with an empty REPLY, which takes it out of the sender's
 * window of batches in flight.
 *
 * A call that reached no worker (DR_NOTSERVED, from the owner's bridge or
 * from a delivery here) is made again on the hosts in turn (relocate): the
 * worker may be moving to its new owner.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>
#include <nanomsg/tcp.h>

#include "bridge.h"
#include "log.h"

static bool live(int state)
{
	return state == DR_HOST_UP || state == DR_HOST_SUSPECT;
}

static bool wants_answer(uint8_t op)
{
	return op == DR_FWD_CALL || op == DR_FWD_WHEREIS || op == DR_FWD_START;
}

/* How long the bridge waits for an owner's answer to its own lookup. */
#define ASK_TIMEOUT_MS 5000

/* A worker's answer to an inbound call, or to a local relay (an item for
 * this host: the view moved between the sender's choice and ours). The
 * map's values are tagged: bit 0 set for an item. */
#define TAG_ITEM 1u

/* ---------------------------------------------------------------------- */
/* Answering local callers */

static int relocate(struct bridge *b, const struct item *it, const void *hint, size_t hint_len);
static void dlv_submit(struct bridge *b, struct ritem *ri, struct item *it, uint8_t op,
		       const void *name, size_t name_len, const void *data, size_t len,
		       uint64_t deadline_ns, uint64_t now);
static int start_again(struct bridge *b, const struct item *it);
static void origin_reset(struct bridge *b, struct origin *o, uint64_t incarnation);

/* A worker's mailbox, or a caller's, has no room now: try again later. */
static bool no_room(int rc)
{
	return rc == -EAGAIN || rc == -EUSERS;
}

static int reply_to(struct bridge *b, const struct dr_msg *caller, int status, const void *data,
		    size_t len)
{
	return status ? dr_admin_reply_status(b->mb, caller, status)
		      : dr_reply(b->mb, caller, data, len);
}

/* An answer that found no room in its caller's mailbox: kept and sent
 * again (late_run) until its call's deadline, or LATE_GIVEUP_NS. */
static void late_add(struct bridge *b, const struct dr_msg *caller, int status, const void *data,
		     size_t len, uint64_t deadline_ns)
{
	struct late *l = malloc(sizeof(*l) + len);

	if (!l) {
		log_once(&b->once, "reply-local", 1, LOG_LEVEL_WARN, "cannot keep an answer for a "
			      "local caller: out of memory (it will time out; more are not logged)");
		return;
	}
	*l = (struct late){ .next = b->late, .caller = *caller, .status = status,
			    .len = (uint32_t)len,
			    .until_ns = deadline_ns ? deadline_ns : now_ns() + LATE_GIVEUP_NS };
	l->data = (unsigned char *)(l + 1);
	if (len)
		memcpy(l->data, data, len);
	b->late = l;
	b->n.answered_late++;
}

static void late_run(struct bridge *b, uint64_t now)
{
	struct late **pp = &b->late;

	while (*pp) {
		struct late *l = *pp;

		if (now < l->until_ns && no_room(reply_to(b, &l->caller, l->status, l->data, l->len))) {
			pp = &l->next;
			continue;
		}
		*pp = l->next;
		free(l);
	}
}

static void answer(struct bridge *b, struct item *it, int status, const void *data, size_t len)
{
	int rc;

	if (it->answered || !wants_answer(it->op))
		return;
	it->answered = true;
	if (it->internal) {
		moves_owner_said(b, it->name, it->name_len, it->host, status);
		return;
	}
	if (status == DR_NOTSERVED && it->op == DR_FWD_CALL) {
		status = relocate(b, it, data, len);
		if (status == 0)
			return; /* a copy goes on, and answers the caller */
	}
	if (status == DR_NOTSERVED && it->op == DR_FWD_START) {
		status = start_again(b, it);
		if (status == 0)
			return;
	}
	rc = reply_to(b, &it->caller, status, data, len);
	if (no_room(rc))
		late_add(b, &it->caller, status, data, len, it->deadline_ns);
	else if (rc < 0 && rc != -ENOENT)
		log_once(&b->once, "reply-local", 1, LOG_LEVEL_WARN, "cannot answer a local caller: %s "
			      "(it will time out; more are not logged)", dr_strerror(rc));
}

static struct item *item_new(const struct dr_fwd *f, const struct dr_msg *m, uint64_t id,
			     uint64_t now)
{
	struct item *it = malloc(sizeof(*it) + f->name_len + f->len);

	if (!it)
		return NULL;
	*it = (struct item){ .op = (uint8_t)f->op, .id = id, .caller = *m,
			     .name_len = (uint8_t)f->name_len, .len = (uint32_t)f->len };
	it->name = (unsigned char *)(it + 1);
	it->data = it->name + f->name_len;
	memcpy(it->name, f->name, f->name_len);
	if (f->len)
		memcpy(it->data, f->data, f->len);
	/* A call's timeout is its deadline here too. A cast's or send's is
	 * how long its sender would wait for room: 0 (do not wait) must not
	 * make it expire before it leaves; it goes best effort, no deadline. */
	if (f->timeout_ms < 0 || (f->timeout_ms == 0 && f->op != DR_FWD_CALL))
		it->deadline_ns = 0;
	else
		it->deadline_ns = now + (uint64_t)f->timeout_ms * 1000000ull;
	return it;
}


/* A copy of it, with an id of its own, to make the call again: probe and
 * turns say where it goes on from, owner what its hosts named (relocate). */
static struct item *item_copy(struct bridge *b, const struct item *it, uint16_t probe,
			      uint8_t turns, const char *owner)
{
	struct item *c = malloc(sizeof(*c) + it->name_len + it->len);

	if (!c)
		return NULL;
	*c = *it;
	c->next = NULL;
	c->answered = false;
	c->id = ++b->next_id;
	c->probe = probe;
	c->turns = turns;
	snprintf(c->host, sizeof(c->host), "%s", owner);
	c->name = (unsigned char *)(c + 1);
	c->data = c->name + it->name_len;
	memcpy(c->name, it->name, it->name_len);
	if (it->len)
		memcpy(c->data, it->data, it->len);
	return c;
}

static void enqueue(struct peer *p, struct item *it)
{
	*p->queue_tail = it;
	p->queue_tail = &it->next;
	p->queued++;
	p->queued_bytes += it->len;
}

/* Turns over the hosts that a call that reached no worker gets: a second
 * finds a worker that was between its two places during the first. */
#define RELOCATE_TURNS 2
/* How long, and how many times at most, such a call waits when a host
 * that did not serve it named as its owner a host we have not heard. */
#define PARK_NS (20ull * 1000 * 1000)
#define PARK_MAX 100

static bool reachable(struct bridge *b, const char *host)
{
	const struct peer *p = peer_by_host(b, host);

	return strcmp(host, b->host) == 0 || (p && live(p->state) && p->req >= 0);
}

/*
 * The call it reached no worker where it went (DR_NOTSERVED: no worker saw
 * it, so it may be made again). Its worker may be moving (shouldrestart):
 * the old instance serves the name until the new one, on the new owner,
 * does, and hosts learn of a view at different moments. Make the call on
 * the hosts in turn, this one first, then each live peer, until one
 * delivers it: its answer, whatever it is, goes to the caller. A host that
 * answers DR_NOTSERVED names the owner in its view (hint): when every host
 * we know said no but that owner is one we have not heard yet (it joined,
 * and its first heartbeat has not reached us), the call waits for it
 * (PARK_NS at a time, PARK_MAX times) and goes round again. 0: a copy goes
 * on and will answer the caller; else the status to answer with:
 * DR_NOTSERVED after RELOCATE_TURNS turns found it nowhere, or when the
 * call's deadline passed or the bridge is stopping.
 */
static int relocate(struct bridge *b, const struct item *it, const void *hint, size_t hint_len)
{
	uint64_t now = now_ns();
	uint16_t probe = it->probe;
	uint8_t turns = it->turns;
	char owner[DR_HOST_MAX + 1];

	/* it->host: an owner that a host named since the call last waited,
	 * and that we cannot reach. A hint naming one we can reach does not
	 * clear it: hosts that lag name an owner of the view before (seen:
	 * the old owner named the new one, a third host that lagged too
	 * named the old, and the call gave up). */
	snprintf(owner, sizeof(owner), "%s", it->host);
	if (hint_len > 0 && hint_len <= DR_HOST_MAX && !memchr(hint, 0, hint_len)) {
		char h[DR_HOST_MAX + 1];

		memcpy(h, hint, hint_len);
		h[hint_len] = 0;
		if (!reachable(b, h))
			memcpy(owner, h, sizeof(h));
	}

	while (!b->stopping && (!it->deadline_ns || now < it->deadline_ns)) {
		struct item *c;

		if (probe > b->npeers) {
			probe = 0;
			if (++turns >= RELOCATE_TURNS)
				break;
		}
		if (probe > 0) {
			struct peer *p = b->peers[probe++ - 1];

			if (!live(p->state) || p->req < 0 || !p->host[0])
				continue;
			c = item_copy(b, it, probe, turns, owner);
			if (!c)
				return -ENOMEM;
			enqueue(p, c);
			b->n.relocated++;
			return 0;
		}
		/* Here: a copy goes to the worker, or waits for room; if it
		 * reaches none (DR_NOTSERVED), answering it goes on from
		 * probe 1. */
		c = item_copy(b, it, ++probe, turns, owner);
		if (!c)
			return -ENOMEM;
		b->n.relocated++;
		dlv_submit(b, NULL, c, DR_FWD_CALL, c->name, c->name_len, c->data, c->len,
			   c->deadline_ns, now);
		return 0;
	}
	if (!b->stopping && owner[0] && !reachable(b, owner) && it->parks < PARK_MAX &&
	    (!it->deadline_ns || now + PARK_NS < it->deadline_ns)) {
		struct item *c = item_copy(b, it, 0, 0, owner);

		if (!c)
			return -ENOMEM;
		c->parks++;
		c->due_ns = now + PARK_NS;
		c->next = b->parked;
		b->parked = c;
		return 0;
	}
	return DR_NOTSERVED;
}

/* How many times a start that reached no factory is sent again. */
#define START_AGAIN_MAX 8

/*
 * The start it reached no factory: the owner's bridge refused its batch
 * unseen (overtaken by a later one of ours, after the owner had taken us
 * for down, or before it had heard us). A start is get-or-create, so it is
 * sent again, to the owner of our view now. 0: a copy goes on and will
 * answer the caller; else the status to answer with.
 */
static int start_again(struct bridge *b, const struct item *it)
{
	char owner[DR_HOST_MAX + 1];
	struct peer *p = NULL;
	struct item *c;

	if (b->stopping || it->turns >= START_AGAIN_MAX ||
	    (it->deadline_ns && now_ns() >= it->deadline_ns))
		return -ETIMEDOUT;
	if (dr_owner_bin(b->r, it->name, it->name_len, owner, sizeof(owner)) != 0)
		return -EHOSTUNREACH;
	if (strcmp(owner, b->host) != 0) {
		p = peer_by_host(b, owner);
		if (!p || !live(p->state) || p->req < 0)
			return -EHOSTUNREACH;
	}
	c = item_copy(b, it, 0, (uint8_t)(it->turns + 1), "");
	if (!c)
		return -ENOMEM;
	if (p)
		enqueue(p, c);
	else
		dlv_submit(b, NULL, c, DR_FWD_START, c->name, c->name_len, c->data, c->len,
			   c->deadline_ns, now_ns());
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Sockets */

static int rcvfd(int s)
{
	int fd;
	size_t len = sizeof(fd);

	return nn_getsockopt(s, NN_SOL_SOCKET, NN_RCVFD, &fd, &len) < 0 ? -1 : fd;
}

static void limit(int s)
{
	int max = (int)WIRE_FRAME_MAX, zero = 0, one = 1;

	nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof(max));
	nn_setsockopt(s, NN_SOL_SOCKET, NN_LINGER, &zero, sizeof(zero));
	/* An acknowledgement and then the reply are two small frames in a
	 * row: without this, Nagle holds the second until the peer's delayed
	 * ACK (40 ms; measured: remote call p50 44 ms). */
	nn_setsockopt(s, NN_TCP, NN_TCP_NODELAY, &one, sizeof(one));
}

int rpc_start(struct bridge *b)
{
	b->rep = nn_socket(AF_SP_RAW, NN_REP);
	if (b->rep < 0) {
		log_error("nanomsg raw REP socket: %s", nn_strerror(nn_errno()));
		return -1;
	}
	limit(b->rep);
	if (nn_bind(b->rep, b->cfg.rpc) < 0) {
		log_error("cannot bind the rpc address %s: %s", b->cfg.rpc,
			  nn_strerror(nn_errno()));
		return -1;
	}
	b->rep_fd = rcvfd(b->rep);
	if (b->rep_fd < 0) {
		log_error("REP NN_RCVFD: %s", nn_strerror(nn_errno()));
		return -1;
	}
	return 0;
}

void rpc_peer_up(struct bridge *b, struct peer *p)
{
	(void)b;
	if (p->req >= 0 && strcmp(p->req_url, p->rpc) == 0)
		return;
	if (p->req >= 0)
		nn_close(p->req);
	p->req = p->req_fd = -1;
	if (!p->rpc[0])
		return;
	p->req = nn_socket(AF_SP_RAW, NN_REQ);
	if (p->req < 0) {
		log_error("nanomsg raw REQ socket for %s: %s", p->host, nn_strerror(nn_errno()));
		return;
	}
	limit(p->req);
	if (nn_connect(p->req, p->rpc) < 0) {
		log_warn("cannot dial %s's rpc address %s: %s", p->host, p->rpc,
			 nn_strerror(nn_errno()));
		nn_close(p->req);
		p->req = -1;
		return;
	}
	p->req_fd = rcvfd(p->req);
	snprintf(p->req_url, sizeof(p->req_url), "%s", p->rpc);
}

/* ---------------------------------------------------------------------- */
/* Outbound batches */

/* ob no longer counts in its class's window. */
static void window_leave(struct peer *p, struct obatch *ob)
{
	if (!ob->in_window)
		return;
	ob->in_window = false;
	if (ob->starts)
		p->ninflight_starts--;
	else
		p->ninflight--;
}

static void batch_free(struct peer *p, struct obatch *ob)
{
	struct obatch **pp;

	if (ob->acked)
		p->nacked--;
	for (pp = &p->inflight; *pp && *pp != ob; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = ob->next;
	window_leave(p, ob);
	while (ob->items) {
		struct item *it = ob->items;

		ob->items = it->next;
		free(it);
	}
	free(ob);
}

/* Build ob's frame (a new sequence each time) and send it. 0, or -EAGAIN
 * when the socket cannot take it now. */
static int batch_send(struct bridge *b, struct peer *p, struct obatch *ob, uint64_t now)
{
	struct wire_buf w;
	long len;
	uint32_t reqid = 0x80000000u | (uint32_t)ob->no;

	/* A raw REQ sends what it is given: the request id that the peer's
	 * REP expects at the bottom of the backtrace is ours to prepend. */
	b->frame[0] = (unsigned char)(reqid >> 24);
	b->frame[1] = (unsigned char)(reqid >> 16);
	b->frame[2] = (unsigned char)(reqid >> 8);
	b->frame[3] = (unsigned char)reqid;
	wire_begin(&w, b->frame + 4, WIRE_FRAME_MAX - 4, WIRE_BATCH, b->host, b->incarnation,
		   ++b->seq);
	wire_put_batch_head(&w, p->host, ob->no, ob->n);
	for (struct item *it = ob->items; it; it = it->next) {
		int32_t left = -1;

		if (it->deadline_ns)
			left = it->deadline_ns > now ? (int32_t)((it->deadline_ns - now) / 1000000) : 0;
		wire_put_u8(&w, it->op);
		wire_put_u64(&w, it->id);
		wire_put_u32(&w, (uint32_t)left);
		wire_put_str8(&w, it->name, it->name_len);
		wire_put_bytes32(&w, it->data, it->len);
	}
	len = wire_finish(&w, &b->key);
	if (len < 0) {
		log_error("cannot build a batch: %s", strerror((int)-len));
		return (int)len;
	}
	if (nn_send(p->req, b->frame, (size_t)len + 4, NN_DONTWAIT) < 0) {
		if (nn_errno() == EAGAIN)
			return -EAGAIN;
		log_once(&b->once, "req-send", 1, LOG_LEVEL_WARN, "rpc send to %s: %s", p->host, nn_strerror(nn_errno()));
		return -EAGAIN;
	}
	if (ob->sends++)
		b->n.batches_resent++;
	else
		b->n.batches_sent++;
	if (ob->acked && ob->since_ack < 30)
		ob->since_ack++;
	ob->last_ns = now;
	return 0;
}

/* Take up to BATCH_ITEMS items, BATCH_BYTES of payload, from p's queue
 * into a new batch and send it. false when nothing went. */
/* The next batch of starts (starts true) or of the rest for p, from its
 * queue in order, if its window has room. */
static bool flush_one(struct bridge *b, struct peer *p, bool starts, uint64_t now)
{
	uint32_t *window = starts ? &p->ninflight_starts : &p->ninflight;
	struct obatch *ob;
	struct item **tail, **pp, *it;
	uint32_t bytes = 0;

	if (!p->queue || p->req < 0 || *window >= BATCHES_IN_FLIGHT || p->nacked >= ACKED_MAX)
		return false;
	ob = calloc(1, sizeof(*ob));
	if (!ob)
		return false;
	ob->starts = starts;
	tail = &ob->items;
	for (pp = &p->queue; (it = *pp) && ob->n < BATCH_ITEMS;) {
		if ((it->op == DR_FWD_START) != starts) {
			pp = &it->next; /* the other kind: it stays, in order */
			continue;
		}
		if (ob->n > 0 && bytes + it->len + it->name_len > BATCH_BYTES)
			break;
		*pp = it->next;
		it->next = NULL;
		*tail = it;
		tail = &it->next;
		ob->n++;
		bytes += it->len + it->name_len;
		ob->waiting += wants_answer(it->op) && !it->answered;
		p->queued--;
		p->queued_bytes -= it->len;
	}
	if (!*pp)
		p->queue_tail = pp;
	if (ob->n == 0) {
		free(ob);
		return false;
	}
	ob->no = ++p->next_batch;
	ob->sent_ns = now;
	if (batch_send(b, p, ob, now) < 0) {
		/* Back to the head of the queue, in order, and the number
		 * taken back, so that numbers stay dense. */
		uint32_t back = 0;

		for (it = ob->items; it; it = it->next)
			back += it->len;
		if (!p->queue)
			p->queue_tail = tail;
		*tail = p->queue;
		p->queue = ob->items;
		p->queued += ob->n;
		p->queued_bytes += back;
		p->next_batch--;
		free(ob);
		return false;
	}
	{
		struct obatch **ip = &p->inflight; /* oldest first */

		while (*ip)
			ip = &(*ip)->next;
		*ip = ob;
	}
	(*window)++;
	ob->in_window = true;
	return true;
}

void rpc_flush(struct bridge *b)
{
	uint64_t now = now_ns();

	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];

		while (live(p->state) && flush_one(b, p, false, now))
			;
		while (live(p->state) && flush_one(b, p, true, now))
			;
	}
}

/* Everything queued for or in flight to p fails: it is down or restarted. */
void rpc_peer_down(struct bridge *b, struct peer *p)
{
	while (p->inflight) {
		struct obatch *ob = p->inflight;

		for (struct item *it = ob->items; it; it = it->next)
			answer(b, it, -EHOSTUNREACH, NULL, 0);
		batch_free(p, ob);
	}
	while (p->queue) {
		struct item *it = p->queue;

		p->queue = it->next;
		answer(b, it, -EHOSTUNREACH, NULL, 0);
		free(it);
	}
	p->queue_tail = &p->queue;
	p->queued = p->queued_bytes = 0;
}

void rpc_peer_restarted(struct bridge *b, struct peer *p)
{
	/* Its old incarnation's batches, and their messages still waiting
	 * for room here: nobody waits for their answers any more. */
	origin_reset(b, &p->origin, 0);
}

/* A REPLY from p: answer the calls it answers. */
static void on_reply(struct bridge *b, struct peer *p, const unsigned char *body, size_t len,
		     uint64_t now)
{
	struct wire_rd rd;
	uint64_t no;
	uint32_t count;
	struct obatch *ob;
	struct item *cur;
	const char *to;
	uint8_t to_len;

	if (wire_reply_check(body, len) < 0 ||
	    wire_batch_head(&rd, body, len, &to, &to_len, &no, &count) < 0) {
		b->n.dropped_malformed++;
		return;
	}
	if (to_len != strlen(b->host) || memcmp(to, b->host, to_len) != 0) {
		b->n.dropped_replay++; /* sealed for another host: replayed to us */
		return;
	}
	for (ob = p->inflight; ob && ob->no != no; ob = ob->next)
		;
	if (!ob)
		return; /* answered already, or given up */
	cur = ob->items;
	/* The round trip from the first reply only (an ack, or the answers
	 * if they came within ACK_DELAY_NS), not from a worker's time. */
	if (ob->sends == 1 && !ob->acked) {
		double ms = (double)(now - ob->sent_ns) / 1e6;

		p->rtt_ms = p->rtt_ms ? 0.875 * p->rtt_ms + 0.125 * ms : ms;
	}
	/* Any reply, an empty one too, says the peer has the batch. */
	if (!ob->acked) {
		ob->acked = true;
		p->nacked++;
	}
	window_leave(p, ob);
	for (uint32_t i = 0; i < count; i++) {
		struct wire_reply_item ri;
		struct item *it;

		if (wire_reply_item(&rd, &ri) < 0)
			break;
		/* Answers come in the batch's order: look from the last
		 * one found, then from the start. */
		for (it = cur; it && it->id != ri.id; it = it->next)
			;
		for (struct item *s2 = ob->items; !it && s2 != cur; s2 = s2->next)
			if (s2->id == ri.id)
				it = s2;
		if (!it)
			continue;
		cur = it->next;
		if (it->answered || !wants_answer(it->op))
			continue;
		if (ri.status > 0 || (ri.status < -4095 && ri.status != DR_NOTSERVED))
			ri.status = -EBADMSG;
		answer(b, it, ri.status, ri.data, ri.len);
		ob->waiting--;
	}
	/* A reply may come in several frames; the batch is done when every
	 * call has its answer (a batch of casts: at its first reply). */
	if (ob->waiting == 0)
		batch_free(p, ob);
}

void rpc_req_recv(struct bridge *b, struct peer *p)
{
	uint64_t now = now_ns();

	while (p->req >= 0) {
		struct wire_hdr h;
		unsigned char *body;
		size_t blen;
		int n = nn_recv(p->req, b->rx, WIRE_FRAME_MAX, NN_DONTWAIT), rc;

		if (n < 0)
			return;
		rc = wire_open(b->rx, (size_t)n, &b->key, &h, &body, &blen);
		if (rc < 0) {
			b->n.dropped_auth += rc == -EACCES;
			b->n.dropped_malformed += rc != -EACCES;
			continue;
		}
		if (strcmp(h.host, p->host) != 0 || h.incarnation != p->incarnation ||
		    h.type != WIRE_REPLY) {
			b->n.dropped_malformed++;
			continue;
		}
		if (wire_replay_check(&p->replay, h.incarnation, h.seq) < 0) {
			b->n.dropped_replay++;
			continue;
		}
		on_reply(b, p, body, blen, now);
	}
}

/* ---------------------------------------------------------------------- */
/* Inbound batches */

static void dlv_forget(struct bridge *b, const struct ibatch *ib);

static void ibatch_free(struct bridge *b, struct ibatch *ib)
{
	if (ib->pending)
		dlv_forget(b, ib);
	if (ib->in_acks) {
		struct ibatch **pp = &b->acks;

		while (*pp != ib)
			pp = &(*pp)->ack_next;
		*pp = ib->ack_next;
		if (b->acks_tail == &ib->ack_next)
			b->acks_tail = pp;
	}
	for (uint32_t i = 0; i < ib->n; i++) {
		struct ritem *ri = &ib->items[i];

		if (!ri->done && ri->call_id)
			idmap_take(&b->calls, ri->call_id);
		free(ri->data);
		free(ri->name);
	}
	free(ib->items);
	free(ib->ctl);
	free(ib);
}

static void origin_reset(struct bridge *b, struct origin *o, uint64_t incarnation)
{
	while (o->cache) {
		struct ibatch *ib = o->cache;

		o->cache = ib->next;
		ibatch_free(b, ib);
	}
	o->ncache = 0;
	o->delivered = 0;
	o->forgotten = 0;
	o->incarnation = incarnation;
}

/* One REPLY frame for ib, with the answers of its items [i, i + k) (none:
 * an acknowledgement), on the request's backtrace. */
static void reply_frame(struct bridge *b, struct ibatch *ib, uint32_t i, uint32_t k)
{
	struct wire_buf w;
	struct nn_iovec iov;
	struct nn_msghdr hdr;
	long len;

	wire_begin(&w, b->frame, WIRE_FRAME_MAX, WIRE_REPLY, b->host, b->incarnation, ++b->seq);
	wire_put_batch_head(&w, ib->to, ib->no, k);
	for (uint32_t j = i; j < i + k; j++) {
		const struct ritem *ri = &ib->items[j];

		wire_put_u64(&w, ri->id);
		wire_put_u32(&w, (uint32_t)ri->status);
		wire_put_bytes32(&w, ri->data, ri->len);
	}
	len = wire_finish(&w, &b->key);
	if (len < 0) {
		log_error("cannot build a reply: %s", strerror((int)-len));
		return;
	}
	iov = (struct nn_iovec){ .iov_base = b->frame, .iov_len = (size_t)len };
	hdr = (struct nn_msghdr){ .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ib->ctl,
				  .msg_controllen = ib->ctl_len };
	/* A raw REP drops what its pipe cannot take now, silently: the
	 * sender resends the batch and gets this from the cache (or, for an
	 * acknowledgement, another one). */
	if (nn_sendmsg(b->rep, &hdr, NN_DONTWAIT) < 0 && nn_errno() != EAGAIN)
		log_once(&b->once, "rep-send", 1, LOG_LEVEL_WARN, "rpc reply: %s", nn_strerror(nn_errno()));
}

/* Send ib's REPLY, in as many frames as its answers need. */
static void ibatch_reply(struct bridge *b, struct ibatch *ib)
{
	/* What a frame holds besides the answers: its header, the batch
	 * head (the sender's id, batch number, count), the seal. */
	struct wire_buf w;
	size_t room0;
	uint32_t i = 0;

	wire_begin(&w, b->frame, WIRE_FRAME_MAX, WIRE_REPLY, b->host, b->incarnation, 0);
	room0 = wire_room(&w, &b->key);
	room0 = room0 > 13 + DR_HOST_MAX ? room0 - 13 - DR_HOST_MAX : 0;
	do {
		size_t room = room0;
		uint32_t k = 0;

		for (uint32_t j = i; j < ib->n; j++) {
			size_t need = 8 + 4 + 4 + ib->items[j].len;

			if (k && need > room)
				break;
			room = need > room ? 0 : room - need;
			k++;
		}
		reply_frame(b, ib, i, k);
		i += k;
	} while (i < ib->n);
	ib->replied = true;
}

/* Tell ib's sender that we have it (an empty REPLY): it stops counting
 * the batch in its window, and sends it again only for a lost reply. */
static void ibatch_ack(struct bridge *b, struct ibatch *ib)
{
	reply_frame(b, ib, 0, 0);
}

static void ritem_done(struct bridge *b, struct ibatch *ib, struct ritem *ri, int32_t status,
		       const void *data, size_t len)
{
	if (ri->done)
		return;
	ri->done = true;
	ri->status = status;
	if (len) {
		ri->data = malloc(len);
		if (ri->data) {
			memcpy(ri->data, data, len);
			ri->len = (uint32_t)len;
		} else {
			ri->status = -ENOMEM;
		}
	}
	if (--ib->pending == 0)
		ibatch_reply(b, ib);
}

/* The call ri reached no worker here: DR_NOTSERVED, with the owner of our
 * view as its data when that is another host (relocate, at the caller's
 * bridge, waits for a host it has not heard). */
static void not_here(struct bridge *b, struct ritem *ri, const void *name, size_t name_len)
{
	char owner[DR_HOST_MAX + 1];

	if (dr_owner_bin(b->r, name, name_len, owner, sizeof(owner)) != 0 ||
	    strcmp(owner, b->host) == 0)
		owner[0] = 0;
	ritem_done(b, ri->ib, ri, DR_NOTSERVED, owner, strlen(owner));
}

/* Hand one inbound item to its worker (now, or once its mailbox has room). */
static void deliver(struct bridge *b, struct ibatch *ib, struct ritem *ri,
		    const struct wire_item *it, uint64_t now)
{
	unsigned char buf[DR_ENTRY_WIRE_MAX];
	size_t blen = sizeof(buf);
	uint64_t deadline = 0;
	int rc;

	if (it->op == DR_FWD_WHEREIS) {
		rc = dr_admin_entry_encode(b->r, it->name, it->name_len, buf, &blen);
		ritem_done(b, ib, ri, rc, buf, rc ? 0 : blen);
		return;
	}
	/* The name, for a call's answer DR_NOTSERVED (not_here), and for a
	 * start's answer (the factory's answer needs it to look it up). */
	if (it->op == DR_FWD_CALL || it->op == DR_FWD_START) {
		ri->name = malloc(it->name_len);
		if (!ri->name) {
			ritem_done(b, ib, ri, -ENOMEM, NULL, 0);
			return;
		}
		memcpy(ri->name, it->name, it->name_len);
		ri->name_len = it->name_len;
	}
	if (!wants_answer(it->op))
		deadline = now + CAST_GIVEUP_NS; /* best effort, but not for ever */
	else if (it->timeout_ms >= 0)
		deadline = now + (uint64_t)it->timeout_ms * 1000000ull;
	dlv_submit(b, ri, NULL, it->op, it->name, it->name_len, it->data, it->len, deadline, now);
}

static struct ibatch *ibatch_new(uint64_t no, uint32_t n, const void *ctl, size_t ctl_len)
{
	struct ibatch *ib = calloc(1, sizeof(*ib));

	if (!ib)
		return NULL;
	ib->items = calloc(n ? n : 1, sizeof(*ib->items));
	ib->ctl = malloc(ctl_len ? ctl_len : 1);
	if (!ib->items || !ib->ctl) {
		free(ib->items);
		free(ib->ctl);
		free(ib);
		return NULL;
	}
	memcpy(ib->ctl, ctl, ctl_len);
	ib->ctl_len = ctl_len;
	ib->no = no;
	ib->n = n;
	ib->pending = n + 1; /* one for the delivery loop itself */
	return ib;
}

/* Forget the oldest batches beyond ORIGIN_CACHE that are answered. */
static void origin_trim(struct bridge *b, struct origin *o)
{
	struct ibatch **pp = &o->cache;
	uint32_t k = 0;

	while (*pp) {
		struct ibatch *ib = *pp;

		if (++k > ORIGIN_CACHE && ib->pending == 0) {
			*pp = ib->next;
			if (ib->no > o->forgotten)
				o->forgotten = ib->no;
			ibatch_free(b, ib);
			o->ncache--;
			continue;
		}
		pp = &ib->next;
	}
}

static void on_batch(struct bridge *b, struct peer *p, const struct wire_hdr *h,
		     const unsigned char *body, size_t len, const void *ctl, size_t ctl_len)
{
	struct origin *o = &p->origin;
	uint64_t now = now_ns();
	struct wire_rd rd;
	struct ibatch *ib;
	const char *to;
	uint8_t to_len;
	uint64_t no;
	uint32_t count;
	bool deliverable;

	if (wire_batch_check(body, len) < 0 ||
	    wire_batch_head(&rd, body, len, &to, &to_len, &no, &count) < 0) {
		b->n.dropped_malformed++;
		return;
	}
	if (to_len != strlen(b->host) || memcmp(to, b->host, to_len) != 0) {
		b->n.dropped_replay++; /* sealed for another host: replayed to us */
		return;
	}
	b->n.batches_received++;
	if (o->incarnation != h->incarnation)
		origin_reset(b, o, h->incarnation);
	/* Every batch in the cache has a number up to o->delivered (the
	 * highest seen): a higher one is new, with no walk of the cache. */
	for (ib = no > o->delivered ? NULL : o->cache; ib && ib->no != no; ib = ib->next)
		;
	if (ib) {
		/* A resend: answer it (now, or once it is complete) on the
		 * backtrace of this copy, which is the one still connected. */
		void *c = malloc(ctl_len ? ctl_len : 1);

		if (c) {
			memcpy(c, ctl, ctl_len);
			free(ib->ctl);
			ib->ctl = c;
			ib->ctl_len = ctl_len;
		}
		if (ib->pending == 0)
			ibatch_reply(b, ib);
		else
			ibatch_ack(b, ib);
		return;
	}
	ib = ibatch_new(no, count, ctl, ctl_len);
	if (ib)
		snprintf(ib->to, sizeof(ib->to), "%s", p->host);
	if (!ib) {
		log_error("out of memory for an inbound batch");
		return;
	}
	deliverable = no > o->delivered;
	if (deliverable)
		o->delivered = no;
	ib->next = o->cache;
	o->cache = ib;
	o->ncache++;
	for (uint32_t i = 0; i < count; i++) {
		struct wire_item it;
		struct ritem *ri = &ib->items[i];

		wire_batch_item(&rd, &it); /* checked whole above */
		ri->id = it.id;
		ri->op = it.op;
		ri->ib = ib;
		if (!deliverable && (it.op == DR_FWD_CALL || it.op == DR_FWD_START) &&
		    no > o->forgotten)
			/* Overtaken by a later batch of the same origin
			 * (we dropped it, not having heard its sender yet):
			 * delivering it now would break the order. We never
			 * had it (every batch we had is in the cache or at
			 * most forgotten): no worker saw it, and the caller's
			 * bridge makes it again (a start too: start_again).
			 * One we forgot may have run. */
			not_here(b, ri, it.name, it.name_len);
		else if (!deliverable)
			ritem_done(b, ib, ri, -ETIMEDOUT, NULL, 0);
		else
			deliver(b, ib, ri, &it, now);
	}
	b->n.items_forwarded += count;
	if (--ib->pending == 0) {
		ibatch_reply(b, ib);
	} else {
		ib->got_ns = now;
		ib->in_acks = true;
		*b->acks_tail = ib;
		b->acks_tail = &ib->ack_next;
	}
	/* A walk of the whole cache: once per ORIGIN_TRIM_SLACK batches. */
	if (o->ncache > ORIGIN_CACHE + ORIGIN_TRIM_SLACK)
		origin_trim(b, o);
}

bool rpc_rep_open(const struct bridge *b)
{
	return b->ndlv < DLV_MAX;
}

void rpc_rep_recv(struct bridge *b)
{
	while (rpc_rep_open(b)) {
		unsigned char ctl[256];
		struct nn_iovec iov = { .iov_base = b->rx, .iov_len = WIRE_FRAME_MAX };
		struct nn_msghdr hdr = { .msg_iov = &iov, .msg_iovlen = 1,
					 .msg_control = ctl, .msg_controllen = sizeof(ctl) };
		struct nn_cmsghdr *cm;
		struct wire_hdr h;
		struct peer *p;
		unsigned char *body;
		size_t blen;
		int n = nn_recvmsg(b->rep, &hdr, NN_DONTWAIT), rc;

		if (n < 0)
			return;
		cm = NN_CMSG_FIRSTHDR(&hdr);
		if (!cm || cm->cmsg_level != PROTO_SP || cm->cmsg_type != SP_HDR ||
		    cm->cmsg_len > sizeof(ctl)) {
			b->n.dropped_malformed++;
			continue;
		}
		rc = wire_open(b->rx, (size_t)n, &b->key, &h, &body, &blen);
		if (rc < 0) {
			b->n.dropped_auth += rc == -EACCES;
			b->n.dropped_malformed += rc != -EACCES;
			continue;
		}
		p = peer_by_host(b, h.host);
		if (!p || !live(p->state) || h.incarnation != p->incarnation || h.type != WIRE_BATCH) {
			/* Not a peer we have heard (yet): it resends. */
			b->n.dropped_malformed += h.type != WIRE_BATCH;
			continue;
		}
		if (wire_replay_check(&p->replay, h.incarnation, h.seq) < 0) {
			b->n.dropped_replay++;
			continue;
		}
		on_batch(b, p, &h, body, blen, cm, cm->cmsg_len);
	}
}

/* ---------------------------------------------------------------------- */
/* The mailbox: forwarding requests from processes of this host, and the
 * answers of our workers to the calls we delivered. */

static void local_relay(struct bridge *b, const struct dr_fwd *f, const struct dr_msg *m,
			uint64_t now)
{
	unsigned char buf[DR_ENTRY_WIRE_MAX];
	size_t blen = sizeof(buf);
	struct item *it;
	int rc;

	if (f->op == DR_FWD_WHEREIS) {
		rc = dr_admin_entry_encode(b->r, f->name, f->name_len, buf, &blen);
		rc = rc ? dr_reply_error(b->mb, m, rc) : dr_reply(b->mb, m, buf, blen);
		return;
	}
	it = item_new(f, m, ++b->next_id, now);
	if (!it) {
		if (m->kind == DR_MSG_CALL)
			dr_reply_error(b->mb, m, -ENOMEM);
		return;
	}
	if (!wants_answer(it->op))
		it->deadline_ns = now + CAST_GIVEUP_NS;
	dlv_submit(b, NULL, it, it->op, it->name, it->name_len, it->data, it->len, it->deadline_ns,
		   now);
}

static void on_forward(struct bridge *b, const struct dr_msg *m, uint64_t now)
{
	struct dr_fwd f;
	struct peer *p;
	struct item *it;

	if (dr_admin_fwd_decode(m, &f) < 0) {
		b->n.dropped_malformed++;
		if (m->kind == DR_MSG_CALL)
			dr_reply_error(b->mb, m, -EBADMSG);
		return;
	}
	if (b->stopping) {
		if (m->kind == DR_MSG_CALL)
			dr_reply_error(b->mb, m, -ENOTCONN);
		return;
	}
	if (strcmp(f.host, b->host) == 0) {
		local_relay(b, &f, m, now);
		return;
	}
	p = peer_by_host(b, f.host);
	if (!p || !live(p->state) || p->req < 0) {
		if (m->kind == DR_MSG_CALL)
			dr_reply_error(b->mb, m, -EHOSTUNREACH);
		return;
	}
	it = item_new(&f, m, ++b->next_id, now);
	if (!it) {
		if (m->kind == DR_MSG_CALL)
			dr_reply_error(b->mb, m, -ENOMEM);
		return;
	}
	enqueue(p, it);
}

int rpc_ask(struct bridge *b, const char *host, const unsigned char *name, size_t len,
	    uint64_t now)
{
	struct dr_fwd f = { .op = DR_FWD_WHEREIS, .host = host, .name = name, .name_len = len,
			    .timeout_ms = ASK_TIMEOUT_MS };
	struct dr_msg none = { 0 };
	struct peer *p = peer_by_host(b, host);
	struct item *it;

	if (b->stopping)
		return -ECANCELED; /* leaving: no new questions */
	if (!p || !live(p->state) || p->req < 0)
		return -EHOSTUNREACH;
	it = item_new(&f, &none, ++b->next_id, now);
	if (!it)
		return -ENOMEM;
	it->internal = true;
	snprintf(it->host, sizeof(it->host), "%s", host);
	enqueue(p, it);
	return 0;
}

static void on_worker_reply(struct bridge *b, const struct dr_msg *m)
{
	void *v = idmap_take(&b->calls, m->call_id);
	unsigned char ans[DR_START_WIRE_MAX];
	size_t alen = sizeof(ans);

	if (!v)
		return; /* a batch we forgot (its origin restarted) */
	if ((uintptr_t)v & TAG_ITEM) {
		struct item *it = (void *)((uintptr_t)v & ~(uintptr_t)TAG_ITEM);

		if (it->op == DR_FWD_START) {
			dr_admin_start_end(b->r, it->name, it->name_len, m, ans, &alen);
			answer(b, it, 0, ans, alen);
		} else {
			answer(b, it, m->status, m->data, m->len);
		}
		free(it);
		return;
	}
	{
		struct ritem *ri = v;

		ri->call_id = 0;
		if (ri->op == DR_FWD_START) {
			dr_admin_start_end(b->r, ri->name, ri->name_len, m, ans, &alen);
			ritem_done(b, ri->ib, ri, 0, ans, alen);
		} else {
			if (m->status == DR_NOTSERVED)
				not_here(b, ri, ri->name, ri->name_len);
			else
				ritem_done(b, ri->ib, ri, m->status, m->data, m->len);
		}
	}
}

int rpc_mailbox(struct bridge *b)
{
	uint64_t now = now_ns();
	int k;

	for (k = 0; k < MAILBOX_BURST; k++) {
		struct dr_msg m;
		int rc = dr_recv(b->mb, &m, 0);

		if (rc == -EAGAIN)
			break;
		if (rc < 0) {
			log_once(&b->once, "mb-recv", 1, LOG_LEVEL_WARN, "mailbox: %s", dr_strerror(rc));
			break;
		}
		if (m.kind == DR_MSG_REPLY)
			on_worker_reply(b, &m);
		else if (m.kind == DR_MSG_CALL || m.kind == DR_MSG_CAST)
			on_forward(b, &m, now);
	}
	return k;
}

/* ---------------------------------------------------------------------- */

/* Messages for this host's workers (inbound items, relays, calls made
 * again here) go through dlv_submit: delivered at once if nothing waits
 * before them and the worker's mailbox has room, else queued in arrival
 * order per receiver (DLV_KEYS queues in one list: one worker that does
 * not read holds up only its own messages) and tried again every
 * DLV_RETRY_NS, backing off to DLV_RETRY_MAX_NS (dlv_run). The bridge's
 * one thread never waits for a worker: a factory busy with 25 k starts
 * must not stop the heartbeats, nor the calls to other workers. */

/* d is over: answered at once, failed, or expired before a worker took it. */
static void dlv_done(struct bridge *b, struct dlv *d, int status, const void *data, size_t len)
{
	if (d->ri) {
		if (status == DR_NOTSERVED)
			not_here(b, d->ri, d->name, d->name_len);
		else
			ritem_done(b, d->ri->ib, d->ri, wants_answer(d->op) ? status : 0, data, len);
		return;
	}
	answer(b, d->it, status, data, len); /* DR_NOTSERVED: made again elsewhere */
	free(d->it);
}

/* Hand d's message to its worker: -EAGAIN if there is no room for it
 * (nothing done), else 0 (d is over, or its worker's answer will come). */
static int dlv_try(struct bridge *b, struct dlv *d, uint64_t now)
{
	unsigned char ans[DR_START_WIRE_MAX];
	size_t alen = sizeof(ans);
	uint64_t cid = 0;
	int left = -1, rc;

	if (d->deadline_ns) {
		if (now > d->deadline_ns) {
			dlv_done(b, d, -ETIMEDOUT, NULL, 0);
			return 0;
		}
		left = (int)((d->deadline_ns - now + 999999) / 1000000);
	}
	if (d->op == DR_FWD_START) {
		rc = dr_admin_start_begin(b->mb, d->name, d->name_len, d->data, d->len, left, &cid,
					  ans, &alen);
		if (rc == 1) {
			dlv_done(b, d, 0, ans, alen);
			return 0;
		}
	} else {
		rc = dr_admin_deliver(b->mb, d->op, d->name, d->name_len, d->data, d->len, left,
				      d->op == DR_FWD_CALL ? &cid : NULL);
	}
	if (no_room(rc))
		return -EAGAIN;
	if (rc == 0 && wants_answer(d->op)) {
		void *v = d->ri ? (void *)d->ri : (void *)((uintptr_t)d->it | TAG_ITEM);

		if (idmap_put(&b->calls, cid, v) == 0) {
			if (d->ri)
				d->ri->call_id = cid;
			return 0;
		}
		rc = -ENOMEM; /* delivered, but its answer could not find us */
	}
	dlv_done(b, d, rc, NULL, 0);
	return 0;
}

/* The queue a message waits in (FNV-1a): its name's, or for a start its
 * kind's (it goes to that kind's factory), or, for a start whose payload
 * names no kind, key 0. */
static uint32_t dlv_key(uint8_t op, const unsigned char *name, size_t len,
			const unsigned char *data, size_t dlen)
{
	uint32_t h = 2166136261u;

	if (op == DR_FWD_START) {
		/* The payload: version, kind length, 2 bytes, arg length
		 * (4), the kind (dr_admin_start_begin checks the rest). */
		if (dlen < 8 || data[1] == 0 || data[1] > dlen - 8)
			return 0;
		name = data + 8;
		len = data[1];
		h = (h ^ 0xffu) * 16777619u; /* not a name's key */
	}
	for (size_t i = 0; i < len; i++)
		h = (h ^ name[i]) * 16777619u;
	return 1 + h % (DLV_KEYS - 1);
}

static void dlv_submit(struct bridge *b, struct ritem *ri, struct item *it, uint8_t op,
		       const void *name, size_t name_len, const void *data, size_t len,
		       uint64_t deadline_ns, uint64_t now)
{
	struct dlv now_d = { .ri = ri, .it = it, .op = op, .name_len = (uint8_t)name_len,
			     .len = (uint32_t)len, .deadline_ns = deadline_ns,
			     .name = (unsigned char *)name, .data = (unsigned char *)data };
	struct dlv *d;

	/* Nothing of its receiver waits: at once, if there is room. (With
	 * nothing waiting at all, the usual case, its key is not needed.) */
	if (!b->dlv && dlv_try(b, &now_d, now) == 0)
		return;
	now_d.key = dlv_key(op, name, name_len, data, len);
	if (b->dlv && !b->dlv_count[now_d.key] && dlv_try(b, &now_d, now) == 0)
		return;
	/* An item of ours holds its name and data; an inbound one is in the
	 * receive buffer, which the next frame overwrites. */
	d = malloc(sizeof(*d) + (it ? 0 : name_len + len));
	if (!d) {
		dlv_done(b, &now_d, -ENOMEM, NULL, 0);
		return;
	}
	*d = now_d;
	if (!it) {
		d->name = (unsigned char *)(d + 1);
		d->data = d->name + name_len;
		memcpy(d->name, name, name_len);
		if (len)
			memcpy(d->data, data, len);
	}
	*b->dlv_tail = d;
	b->dlv_tail = &d->next;
	b->ndlv++;
	b->dlv_count[d->key]++;
	b->n.deferred++;
	if (b->dlv_retry_ns > DLV_RETRY_NS || !b->dlv_next_ns) {
		b->dlv_retry_ns = DLV_RETRY_NS;
		b->dlv_next_ns = now + DLV_RETRY_NS;
	}
}

static void dlv_unlink(struct bridge *b, struct dlv **pp)
{
	struct dlv *d = *pp;

	*pp = d->next;
	if (b->dlv_tail == &d->next)
		b->dlv_tail = pp;
	b->ndlv--;
	b->dlv_count[d->key]--;
}

/* One pass over the queue: each waits only behind its own key's. */
static void dlv_run(struct bridge *b, uint64_t now)
{
	struct dlv **pp = &b->dlv;
	size_t before = b->ndlv, limit = b->ndlv;
	bool progress = false;

	if (!b->dlv || now < b->dlv_next_ns)
		return;
	if (++b->dlv_pass == 0)
		b->dlv_pass = 1;
	/* Those queued while this pass runs (by what delivering set off)
	 * wait for the next one: limit. */
	while (*pp && limit--) {
		struct dlv *d = *pp;

		if (b->dlv_blocked[d->key] == b->dlv_pass) {
			if (d->deadline_ns && now > d->deadline_ns)
				goto over; /* expired behind its key's first */
			pp = &d->next;
			continue;
		}
		if (dlv_try(b, d, now) == -EAGAIN) {
			b->dlv_blocked[d->key] = b->dlv_pass;
			pp = &d->next;
			continue;
		}
		progress = true;
		dlv_unlink(b, pp);
		free(d);
		continue;
	over:
		dlv_unlink(b, pp);
		dlv_done(b, d, -ETIMEDOUT, NULL, 0);
		free(d);
	}
	if (progress || b->ndlv != before)
		b->dlv_retry_ns = DLV_RETRY_NS;
	else if (b->dlv_retry_ns < DLV_RETRY_MAX_NS)
		b->dlv_retry_ns *= 2;
	b->dlv_next_ns = b->dlv ? now + b->dlv_retry_ns : 0;
}

/* ib goes (its origin restarted, or we stop): its items that wait too. */
static void dlv_forget(struct bridge *b, const struct ibatch *ib)
{
	struct dlv **pp = &b->dlv;

	while (*pp) {
		struct dlv *d = *pp;

		if (d->ri && d->ri->ib == ib) {
			dlv_unlink(b, pp);
			free(d);
			continue;
		}
		pp = &d->next;
	}
}

static uint64_t retry_after(const struct peer *p)
{
	uint64_t rtt4 = (uint64_t)(p->rtt_ms * 4e6);

	return rtt4 > RETRY_MIN_NS ? rtt4 : RETRY_MIN_NS;
}

/* When ob is sent again if no reply came: once the peer acknowledged it,
 * only to recover a lost reply, at growing intervals (up to 1 s). */
static uint64_t resend_after(const struct peer *p, const struct obatch *ob)
{
	uint64_t t = retry_after(p);

	if (!ob->acked)
		return t;
	t <<= ob->since_ack < 20 ? ob->since_ack : 20;
	return t < ACKED_RETRY_NS ? t : ACKED_RETRY_NS;
}

/* Parked calls whose wait is over (or all, when stopping) go round again. */
static void unpark(struct bridge *b, uint64_t now)
{
	struct item **pp = &b->parked, *due = NULL;

	/* Take the due ones out first: answering may park copies. */
	while (*pp) {
		struct item *it = *pp;

		if (now < it->due_ns && !b->stopping) {
			pp = &it->next;
			continue;
		}
		*pp = it->next;
		it->next = due;
		due = it;
	}
	while (due) {
		struct item *it = due;

		due = it->next;
		it->host[0] = 0; /* the hosts name it again, or not */
		answer(b, it, DR_NOTSERVED, NULL, 0);
		free(it);
	}
}

/* Batches not answered ACK_DELAY_NS after they came: acknowledged. */
static void acks_due(struct bridge *b, uint64_t now)
{
	struct ibatch *ib;

	while ((ib = b->acks) && now - ib->got_ns >= ACK_DELAY_NS) {
		b->acks = ib->ack_next;
		if (!b->acks)
			b->acks_tail = &b->acks;
		ib->in_acks = false;
		if (ib->pending)
			ibatch_ack(b, ib);
	}
}

void rpc_tick(struct bridge *b, uint64_t now)
{
	acks_due(b, now);
	dlv_run(b, now);
	late_run(b, now);
	unpark(b, now);
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];
		struct obatch *ob, *next;
		struct item **pp;

		/* Queued calls past their deadline. */
		for (pp = &p->queue; *pp;) {
			struct item *it = *pp;

			if (it->deadline_ns && now >= it->deadline_ns) {
				*pp = it->next;
				answer(b, it, -ETIMEDOUT, NULL, 0);
				p->queued--;
				p->queued_bytes -= it->len;
				free(it);
				continue;
			}
			pp = &it->next;
		}
		p->queue_tail = pp;
		for (ob = p->inflight; ob; ob = next) {
			bool calls = false;

			next = ob->next;
			for (struct item *it = ob->items; it; it = it->next) {
				if (!wants_answer(it->op))
					continue;
				calls = true;
				if (!it->answered && it->deadline_ns && now >= it->deadline_ns) {
					answer(b, it, -ETIMEDOUT, NULL, 0);
					ob->waiting--;
				}
			}
			if ((calls && ob->waiting == 0) ||
			    (!calls && now - ob->sent_ns > CAST_GIVEUP_NS)) {
				batch_free(p, ob);
				continue;
			}
			if (live(p->state) && now - ob->last_ns >= resend_after(p, ob))
				batch_send(b, p, ob, now);
		}
	}
}

bool rpc_idle(const struct bridge *b)
{
	if (b->calls.n || b->parked || b->dlv || b->late)
		return false;
	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i]->queue || b->peers[i]->inflight)
			return false;
	return true;
}

uint64_t rpc_next_deadline(const struct bridge *b)
{
	uint64_t next = UINT64_MAX;

	for (size_t i = 0; i < b->npeers; i++) {
		const struct peer *p = b->peers[i];

		for (const struct obatch *ob = p->inflight; ob; ob = ob->next) {
			uint64_t t = ob->last_ns + resend_after(p, ob);

			if (t < next)
				next = t;
			for (const struct item *it = ob->items; it; it = it->next)
				if (!it->answered && it->deadline_ns && it->deadline_ns < next)
					next = it->deadline_ns;
		}
		for (const struct item *it = p->queue; it; it = it->next)
			if (it->deadline_ns && it->deadline_ns < next)
				next = it->deadline_ns;
	}
	for (const struct item *it = b->parked; it; it = it->next)
		if (it->due_ns < next)
			next = it->due_ns;
	if (b->dlv && b->dlv_next_ns < next)
		next = b->dlv_next_ns;
	if (b->acks && b->acks->got_ns + ACK_DELAY_NS < next)
		next = b->acks->got_ns + ACK_DELAY_NS;
	if (b->late && now_ns() + DLV_RETRY_NS < next)
		next = now_ns() + DLV_RETRY_NS;
	return next;
}

void rpc_stop(struct bridge *b)
{
	b->stopping = true;
	unpark(b, now_ns());
	/* Messages no worker took: a call of ours learns that there is no
	 * bridge any more; an inbound one goes with its batch (below). */
	while (b->dlv) {
		struct dlv *d = b->dlv;

		b->dlv = d->next;
		if (d->it) {
			answer(b, d->it, -ENOTCONN, NULL, 0);
			free(d->it);
		}
		free(d);
	}
	b->dlv_tail = &b->dlv;
	b->ndlv = 0;
	memset(b->dlv_count, 0, sizeof(b->dlv_count));
	/* Calls of this host's processes that a worker here still has, past
	 * the drain: the caller learns now that no answer will come (the
	 * worker may have run it: -ETIMEDOUT, not made again). */
	for (size_t i = 0; i < b->calls.cap; i++) {
		uintptr_t v = (uintptr_t)b->calls.vals[i];

		if (b->calls.keys[i] && (v & TAG_ITEM)) {
			struct item *it = (struct item *)(v & ~(uintptr_t)TAG_ITEM);

			answer(b, it, -ETIMEDOUT, NULL, 0);
			free(it);
			b->calls.vals[i] = NULL; /* a late answer finds nothing */
		}
	}
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];

		rpc_peer_down(b, p);
		origin_reset(b, &p->origin, 0);
		if (p->req >= 0)
			nn_close(p->req);
		p->req = -1;
	}
	if (b->rep >= 0)
		nn_close(b->rep);
	b->rep = -1;
	/* Last: the answers above may have found no room either. One more
	 * try each, then they go (their callers time out). */
	late_run(b, now_ns());
	while (b->late) {
		struct late *l = b->late;

		b->late = l->next;
		free(l);
	}
}
