/*
 * membership.c - who is in the cluster: heartbeats over a nanomsg BUS, the
 * peers learned from seeds and from heartbeats, and failure detection.
 *
 * BUS delivers only to directly connected peers, so the bridges form a full
 * mesh. A pair should be connected once: the bridge whose bus address is
 * the smaller one dials. But a bridge cannot dial us before it knows us, so
 * we also dial every peer that has not shown that it knows us (its
 * heartbeats do not list our address): a seed at start, a peer learned from
 * gossip, a peer that restarted or went silent. Once it lists us, it dials
 * us if the rule says so, and we shut our own dial down. A duplicate
 * message (both dials up for a moment) is dropped by the replay window.
 *
 * Failure detection is phi-accrual (Hayashibara, Defago, Yared, Katayama,
 * "The phi accrual failure detector", SRDS 2004): from the last
 * PHI_WINDOW heartbeat intervals of a peer, phi(t) = -log10 P(next interval
 * > t) under a normal distribution. phi > PHI_SUSPECT makes the peer
 * suspect, which changes nothing but its state in the view (a suspect
 * still owns its names, so one late heartbeat does not move them); silence
 * for down-after makes it down, whatever phi says.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <nanomsg/bus.h>
#include <nanomsg/nn.h>

#include "bridge.h"
#include "log.h"

static bool live(int state)
{
	return state == DR_HOST_UP || state == DR_HOST_SUSPECT;
}

struct peer *peer_by_host(struct bridge *b, const char *host)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (b->peers[i]->host[0] && strcmp(b->peers[i]->host, host) == 0)
			return b->peers[i];
	return NULL;
}

static struct peer *peer_by_bus(struct bridge *b, const char *bus, size_t len)
{
	for (size_t i = 0; i < b->npeers; i++)
		if (strlen(b->peers[i]->bus) == len && memcmp(b->peers[i]->bus, bus, len) == 0)
			return b->peers[i];
	return NULL;
}

static struct peer *peer_add(struct bridge *b, const char *bus, size_t len, bool seed)
{
	struct peer *p;

	if (len == 0 || len > DR_ADDR_MAX)
		return NULL;
	if (len == strlen(b->cfg.bus) && memcmp(bus, b->cfg.bus, len) == 0)
		return NULL;
	p = peer_by_bus(b, bus, len);
	if (p) {
		p->seed |= seed;
		return p;
	}
	if (b->npeers == DR_HOSTS_MAX - 1) {
		log_once(&b->once, "peers-full", 1, LOG_LEVEL_WARN, "%d peers known: ignoring %.*s and any further one",
			      DR_HOSTS_MAX - 1, (int)len, bus);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		log_error("out of memory for a peer");
		return NULL;
	}
	memcpy(p->bus, bus, len);
	p->seed = seed;
	p->dial = -1;
	p->req = -1;
	p->req_fd = -1;
	p->queue_tail = &p->queue;
	b->peers[b->npeers++] = p;
	log_debug("peer %s added%s", p->bus, seed ? " (seed)" : "");
	return p;
}

/* The rule both sides evaluate alike: the smaller bus address dials. */
static bool rule_dials(const struct bridge *b, const struct peer *p)
{
	return strcmp(b->cfg.bus, p->bus) < 0;
}

static void dial(struct bridge *b, struct peer *p, uint64_t now)
{
	int eid = nn_connect(b->bus, p->bus);

	if (eid < 0) {
		/* A malformed address: nanomsg checks it here. */
		log_once(&b->once, p->bus, 2, LOG_LEVEL_WARN, "cannot dial %s: %s; ignoring it", p->bus,
			      nn_strerror(nn_errno()));
		p->state = DR_HOST_IGNORED;
		p->retry_ns = now + IGNORED_RETRY_NS;
		b->view_dirty = true;
		return;
	}
	p->dial = eid;
	p->dialled_ns = now;
}

static void hangup(struct bridge *b, struct peer *p)
{
	if (p->dial >= 0) {
		nn_shutdown(b->bus, p->dial);
		p->dial = -1;
	}
}

/* ---------------------------------------------------------------------- */
/* phi-accrual */

static void phi_reset(struct phi *f)
{
	f->n = f->at = 0;
	f->last_ns = 0;
}

static void phi_beat(struct phi *f, uint64_t now)
{
	if (f->last_ns && now > f->last_ns) {
		f->iv[f->at] = (double)(now - f->last_ns) / 1e6;
		f->at = (f->at + 1) % PHI_WINDOW;
		if (f->n < PHI_WINDOW)
			f->n++;
	}
	f->last_ns = now;
}

/* phi of the silence since the last heartbeat; 0 until 3 intervals are
 * known. The deviation has a floor of a quarter of the mean (and 5 ms):
 * on a quiet network heartbeats are so regular that sigma would be near
 * zero and one scheduling hiccup would make phi explode. */
static double phi_of(const struct phi *f, uint64_t now)
{
	double mean = 0, var = 0, sd, t, p;

	if (f->n < 3 || !f->last_ns)
		return 0;
	for (uint32_t i = 0; i < f->n; i++)
		mean += f->iv[i];
	mean /= f->n;
	for (uint32_t i = 0; i < f->n; i++)
		var += (f->iv[i] - mean) * (f->iv[i] - mean);
	sd = sqrt(var / f->n);
	if (sd < mean / 4)
		sd = mean / 4;
	if (sd < 5)
		sd = 5;
	t = (double)(now - f->last_ns) / 1e6;
	p = 0.5 * erfc((t - mean) / (sd * M_SQRT2));
	return p <= 1e-300 ? 300 : -log10(p);
}

/* ---------------------------------------------------------------------- */

int membership_start(struct bridge *b)
{
	int max = (int)WIRE_FRAME_MAX, zero = 0, ivl_max = 10000;
	size_t fdlen = sizeof(b->bus_fd);

	b->bus = nn_socket(AF_SP, NN_BUS);
	if (b->bus < 0) {
		log_error("nanomsg BUS socket: %s", nn_strerror(nn_errno()));
		return -1;
	}
	nn_setsockopt(b->bus, NN_SOL_SOCKET, NN_RCVMAXSIZE, &max, sizeof(max));
	nn_setsockopt(b->bus, NN_SOL_SOCKET, NN_LINGER, &zero, sizeof(zero));
	/* nanomsg redials a lost peer by itself, backing off to this. */
	nn_setsockopt(b->bus, NN_SOL_SOCKET, NN_RECONNECT_IVL_MAX, &ivl_max, sizeof(ivl_max));
	if (nn_bind(b->bus, b->cfg.bus) < 0) {
		log_error("cannot bind the bus address %s: %s", b->cfg.bus,
			  nn_strerror(nn_errno()));
		return -1;
	}
	if (nn_getsockopt(b->bus, NN_SOL_SOCKET, NN_RCVFD, &b->bus_fd, &fdlen) < 0) {
		log_error("BUS NN_RCVFD: %s", nn_strerror(nn_errno()));
		return -1;
	}
	for (size_t i = 0; i < b->cfg.npeers; i++)
		peer_add(b, b->cfg.peers[i], strlen(b->cfg.peers[i]), true);
	b->next_heartbeat_ns = now_ns();
	return 0;
}

void membership_stop(struct bridge *b)
{
	if (b->bus >= 0)
		nn_close(b->bus);
	b->bus = -1;
	for (size_t i = 0; i < b->npeers; i++)
		free(b->peers[i]);
	b->npeers = 0;
}

static void send_frame(struct bridge *b, struct wire_buf *w, const char *what)
{
	long len = wire_finish(w, &b->key);

	if (len < 0) {
		log_error("cannot build a %s: %s", what, strerror((int)-len));
		return;
	}
	/* BUS drops for slow peers anyway; a heartbeat that cannot go now
	 * is one the failure detector tolerates. */
	if (nn_send(b->bus, b->frame, (size_t)len, NN_DONTWAIT) < 0 && nn_errno() != EAGAIN)
		log_once(&b->once, "bus-send", 1, LOG_LEVEL_WARN, "BUS send: %s", nn_strerror(nn_errno()));
}

static void heartbeat(struct bridge *b)
{
	struct wire_buf w;
	uint16_t n = 0;

	wire_begin(&w, b->frame, WIRE_FRAME_MAX, WIRE_HEARTBEAT, b->host, b->incarnation,
		   ++b->seq);
	wire_put_u32(&w, WIRE_PROTO);
	wire_put_u64(&w, b->view_epoch);
	wire_put_str8(&w, b->cfg.bus, strlen(b->cfg.bus));
	wire_put_str8(&w, b->cfg.rpc, strlen(b->cfg.rpc));
	for (size_t i = 0; i < b->npeers; i++)
		n += live(b->peers[i]->state);
	wire_put_u16(&w, n);
	for (size_t i = 0; i < b->npeers; i++)
		if (live(b->peers[i]->state))
			wire_put_str8(&w, b->peers[i]->bus, strlen(b->peers[i]->bus));
	send_frame(b, &w, "heartbeat");
}

void membership_leave(struct bridge *b)
{
	struct wire_buf w;

	wire_begin(&w, b->frame, WIRE_FRAME_MAX, WIRE_LEAVE, b->host, b->incarnation, ++b->seq);
	send_frame(b, &w, "leave message");
}

static void set_down(struct bridge *b, struct peer *p, const char *why)
{
	bool was = live(p->state);

	p->state = DR_HOST_DOWN;
	p->knows_us = false;
	phi_reset(&p->phi);
	/* Our dial to it may be what failed (a connection that stopped
	 * carrying anything after the peer froze or restarted, which
	 * nanomsg does not redial): the next tick dials afresh. Seen in the
	 * chaos test: the peer redialled us while we were silent to it, heard
	 * us, hung up its dial as the rule says, and the two flapped for good. */
	hangup(b, p);
	if (was) {
		log_warn("host %s is down (%s)", p->host, why);
		rpc_peer_down(b, p);
	}
	b->view_dirty = true;
}

static void on_heartbeat(struct bridge *b, const struct wire_hdr *h, const unsigned char *body,
			 size_t len, uint64_t now)
{
	static struct wire_heartbeat hb; /* large (the peer list); one thread */
	struct peer *p;
	bool was_live, restarted = false, knows = false;
	int rc;

	if (wire_heartbeat_parse(body, len, &hb) < 0) {
		b->n.dropped_malformed++;
		log_once(&b->once, "hb-malformed", 1, LOG_LEVEL_WARN, "a malformed heartbeat from %s (counted; more are not logged)",
			      h->host);
		return;
	}
	p = peer_by_host(b, h->host);
	if (!p) {
		p = peer_by_bus(b, hb.bus, hb.bus_len);
		if (p && p->host[0] && strcmp(p->host, h->host) != 0) {
			/* Another bridge now answers at that address. */
			log_info("%s: host %s replaced by %s", p->bus, p->host, h->host);
			if (live(p->state))
				set_down(b, p, "replaced");
			p->host[0] = 0;
			p->incarnation = 0;
			memset(&p->replay, 0, sizeof(p->replay));
		}
		if (!p)
			p = peer_add(b, hb.bus, hb.bus_len, false);
		if (!p)
			return;
	}
	rc = wire_replay_check(&p->replay, h->incarnation, h->seq);
	if (rc < 0) {
		b->n.dropped_replay += rc != -EALREADY; /* a duplicate is the mesh's normal */
		return;
	}
	if (hb.proto != WIRE_PROTO) {
		if (p->state != DR_HOST_IGNORED)
			log_warn("host %s speaks protocol %u, we speak %u: ignored", h->host,
				 hb.proto, WIRE_PROTO);
		if (live(p->state))
			set_down(b, p, "another protocol");
		p->state = DR_HOST_IGNORED;
		p->retry_ns = now + IGNORED_RETRY_NS;
		hangup(b, p);
		b->n.dropped_version++;
		return;
	}
	if (p->host[0] && p->incarnation && h->incarnation > p->incarnation) {
		/* A restart: the old one leaves, the new one joins. */
		restarted = true;
		if (live(p->state))
			set_down(b, p, "restarted");
		rpc_peer_restarted(b, p);
	}
	if (!p->host[0])
		snprintf(p->host, sizeof(p->host), "%s", h->host);
	p->incarnation = h->incarnation;
	if (hb.bus_len != strlen(p->bus) || memcmp(hb.bus, p->bus, hb.bus_len) != 0) {
		/* It announces another address than the one we knew it by. */
		hangup(b, p);
		memcpy(p->bus, hb.bus, hb.bus_len);
		p->bus[hb.bus_len] = 0;
	}
	if (hb.rpc_len != strlen(p->rpc) || memcmp(hb.rpc, p->rpc, hb.rpc_len) != 0) {
		memcpy(p->rpc, hb.rpc, hb.rpc_len);
		p->rpc[hb.rpc_len] = 0;
		b->view_dirty = true;
	}
	for (uint16_t i = 0; i < hb.npeers; i++) {
		const char *a = hb.peers[i].p;
		uint8_t l = hb.peers[i].len;

		if (l == strlen(b->cfg.bus) && memcmp(a, b->cfg.bus, l) == 0)
			knows = true;
		else
			peer_add(b, a, l, false);
	}
	p->knows_us = knows;
	was_live = live(p->state);
	phi_beat(&p->phi, now);
	if (p->state != DR_HOST_UP)
		b->view_dirty = true;
	if (p->state == DR_HOST_SUSPECT)
		log_info("host %s is up again", p->host);
	p->state = DR_HOST_UP;
	if (!was_live) {
		log_once_forget(&b->once, p->bus); /* a later failure is news again */
		log_info("host %s is %s (bus %s, rpc %s, incarnation %llu)", p->host,
			 restarted ? "back (restarted)" : "up", p->bus, p->rpc,
			 (unsigned long long)p->incarnation);
		rpc_peer_up(b, p);
	}
}

static void on_leave(struct bridge *b, const struct wire_hdr *h, size_t len)
{
	struct peer *p = peer_by_host(b, h->host);
	int rc;

	if (len != 0) {
		b->n.dropped_malformed++;
		return;
	}
	if (!p)
		return;
	rc = wire_replay_check(&p->replay, h->incarnation, h->seq);
	if (rc < 0) {
		b->n.dropped_replay += rc != -EALREADY;
		return;
	}
	if (h->incarnation == p->incarnation && live(p->state)) {
		log_info("host %s left", p->host);
		set_down(b, p, "left");
	}
}

void membership_recv(struct bridge *b)
{
	for (;;) {
		struct wire_hdr h;
		unsigned char *body;
		size_t blen;
		int n = nn_recv(b->bus, b->rx, WIRE_FRAME_MAX, NN_DONTWAIT), rc;

		if (n < 0) {
			if (nn_errno() != EAGAIN && nn_errno() != EINTR)
				log_once(&b->once, "bus-recv", 1, LOG_LEVEL_WARN, "BUS receive: %s", nn_strerror(nn_errno()));
			return;
		}
		rc = wire_open(b->rx, (size_t)n, &b->key, &h, &body, &blen);
		if (rc < 0) {
			if (rc == -EACCES)
				b->n.dropped_auth++;
			else if (rc == -EPROTONOSUPPORT)
				b->n.dropped_version++;
			else
				b->n.dropped_malformed++;
			log_once(&b->once, "bus-bad", 1, LOG_LEVEL_WARN, "dropped a bad frame on the bus: %s "
				      "(counted; more are not logged)", strerror(-rc));
			continue;
		}
		if (strcmp(h.host, b->host) == 0) {
			if (h.incarnation != b->incarnation)
				log_once(&b->once, "dup-host", 1, LOG_LEVEL_WARN, "another bridge calls itself %s", b->host);
			continue;
		}
		if (h.type == WIRE_HEARTBEAT)
			on_heartbeat(b, &h, body, blen, now_ns());
		else if (h.type == WIRE_LEAVE)
			on_leave(b, &h, blen);
		else
			b->n.dropped_malformed++;
	}
}

void membership_tick(struct bridge *b, uint64_t now)
{
	uint64_t down = (uint64_t)b->cfg.down_after_ms * 1000000ull;

	if (now >= b->next_heartbeat_ns && !b->stopping) {
		heartbeat(b);
		b->next_heartbeat_ns = now + (uint64_t)b->cfg.heartbeat_ms * 1000000ull;
	}
	for (size_t i = 0; i < b->npeers; i++) {
		struct peer *p = b->peers[i];

		if (live(p->state)) {
			if (now - p->phi.last_ns > down) {
				set_down(b, p, "silent");
			} else if (p->state == DR_HOST_UP && phi_of(&p->phi, now) > PHI_SUSPECT) {
				p->state = DR_HOST_SUSPECT;
				log_info("host %s is suspect (phi %.1f)", p->host,
					 phi_of(&p->phi, now));
				b->view_dirty = true;
			}
		}
		if (p->state == DR_HOST_IGNORED) {
			if (p->dial < 0 && now >= p->retry_ns)
				dial(b, p, now);
			else if (p->dial >= 0 && now - p->dialled_ns > down)
				hangup(b, p), p->retry_ns = now + IGNORED_RETRY_NS;
			continue;
		}
		if (p->state == 0 && p->dial >= 0 && now - p->dialled_ns > down) {
			/* Dialled for down-after and never a valid heartbeat:
			 * nothing there, or nothing that speaks our protocol. */
			log_once(&b->once, p->bus, 3, LOG_LEVEL_WARN, "no bridge answers at %s: ignored, tried again every %llu s",
				      p->bus, (unsigned long long)(IGNORED_RETRY_NS / 1000000000ull));
			p->state = DR_HOST_IGNORED;
			p->retry_ns = now + IGNORED_RETRY_NS;
			hangup(b, p);
			b->view_dirty = true;
			continue;
		}
		if ((rule_dials(b, p) || !p->knows_us) && p->dial < 0)
			dial(b, p, now);
		else if (!rule_dials(b, p) && p->knows_us && p->dial >= 0)
			hangup(b, p);
	}
}
