/*
 * main.c - distreg-bridge: options, the loop, signals, a clean stop.
 *
 * One thread and one poll(): the BUS and REP sockets' descriptors, one REQ
 * descriptor per peer, the bridge mailbox's descriptor, a signalfd and the
 * reaper's pidfds. The poll timeout is the nearest of the next heartbeat,
 * the reaper's next scan and the rpc deadlines, so an idle bridge wakes a
 * few dozen times a second and does almost nothing each time.
 *
 * Busy polling: a call crosses a bridge twice, the request and then its
 * answer, and on the machines this was measured on each sleep between them
 * costs a wake-up of 30-80 us across CPUs. So after a pass that moved rpc
 * traffic (the mailbox, the REP socket, a REQ socket) the bridge polls
 * with timeout 0 for busy-poll-us (default 100), yielding the CPU between
 * polls, and sleeps only after that long without traffic. Heartbeats, the
 * reaper and signals do not start it: an idle bridge still sleeps.
 * bench_cluster measures both ways side by side, and the CPU they cost.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <sodium.h>

#include "bridge.h"
#include "log.h"

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int signals_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

static int attach(struct bridge *b)
{
	struct dr_options o = { .segment = b->cfg.segment };
	pid_t holder = 0;
	size_t n;
	int rc;

	rc = dr_open(&o, &b->r);
	if (rc < 0) {
		log_error("cannot open segment %s: %s", b->cfg.segment, dr_strerror(rc));
		return -1;
	}
	rc = dr_mailbox_open(b->r, &b->mb);
	if (rc < 0) {
		log_error("cannot open a mailbox in %s: %s", b->cfg.segment, dr_strerror(rc));
		return -1;
	}
	rc = dr_admin_bridge_claim(b->mb, &holder);
	if (rc == -EBUSY) {
		log_error("another bridge (pid %d) serves segment %s", (int)holder, b->cfg.segment);
		return -1;
	}
	if (rc < 0) {
		log_error("cannot take the bridge role of %s: %s", b->cfg.segment, dr_strerror(rc));
		return -1;
	}
	/* Epochs go on from the last view published, by us or a bridge
	 * before us: readers compare them. */
	rc = dr_hosts(b->r, NULL, 0, &n, &b->view_epoch);
	if (rc < 0 && rc != -ERANGE && rc != -ENOTCONN) {
		log_error("cannot read the view of %s: %s", b->cfg.segment, dr_strerror(rc));
		return -1;
	}
	b->msg_max = dr_message_max(b->r);
	b->mb_fd = dr_mailbox_fd(b->mb);
	return 0;
}

static void detach(struct bridge *b)
{
	if (b->mb) {
		dr_admin_bridge_release(b->mb);
		dr_mailbox_close(b->mb);
	}
	b->mb = NULL;
	dr_close(b->r);
	b->r = NULL;
}

static int timeout_ms(struct bridge *b, uint64_t now)
{
	uint64_t next = b->next_heartbeat_ns, t;
	int ms;

	if (b->next_scan_ns < next)
		next = b->next_scan_ns;
	t = rpc_next_deadline(b);
	if (t < next)
		next = t;
	if (b->stopping && b->stop_deadline_ns < next)
		next = b->stop_deadline_ns;
	if (b->stopping && now < b->stop_min_ns && b->stop_min_ns < next)
		next = b->stop_min_ns;
	/* The mailbox's own looks: calls delivered to workers of ours end
	 * when a worker dies only through a receive. */
	ms = b->mb_more ? 0 : b->mb ? dr_mailbox_timeout(b->mb) : -1;
	if (ms >= 0 && now + (uint64_t)ms * 1000000 < next)
		next = now + (uint64_t)ms * 1000000;
	if (next <= now || now < b->busy_until_ns)
		return 0;
	t = (next - now + 999999) / 1000000;
	return t > 1000 ? 1000 : (int)t;
}

static void on_signal(struct bridge *b)
{
	struct signalfd_siginfo si;

	while (read(b->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (b->stopping)
			continue;
		log_info("signal %u: leaving the cluster", si.ssi_signo);
		membership_leave(b);
		b->stopping = true;
		b->stop_deadline_ns = now_ns() + DRAIN_NS;
		b->stop_min_ns = now_ns() + LEAVE_FLUSH_NS;
	}
}

/* Room in the poll set: the fixed descriptors, the peers', the reaper's. */
#define FIXED_FDS 4

static int run(struct bridge *b)
{
	size_t cap = FIXED_FDS + DR_HOSTS_MAX + 1024;
	struct pollfd *fds = calloc(cap, sizeof(*fds));
	struct peer **who = calloc(cap, sizeof(*who));
	const uint64_t busy_ns = (uint64_t)b->cfg.busy_poll_us * 1000;

	if (!fds || !who) {
		log_error("out of memory");
		free(fds);
		free(who);
		return -1;
	}
	b->next_scan_ns = now_ns();
	for (;;) {
		uint64_t now = now_ns();
		size_t nfds = 0, npeerfd, i;
		bool moved;
		int n, took;

		if (b->stopping && now >= b->stop_min_ns &&
		    (rpc_idle(b) || now >= b->stop_deadline_ns))
			break;
		fds[nfds++] = (struct pollfd){ .fd = b->signal_fd, .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = b->mb_fd, .events = POLLIN };
		fds[nfds++] = (struct pollfd){ .fd = b->bus_fd, .events = POLLIN };
		/* Not while too many inbound messages wait for their workers:
		 * further batches wait at their senders (rpc_rep_open). */
		fds[nfds++] = (struct pollfd){ .fd = rpc_rep_open(b) ? b->rep_fd : -1,
					       .events = POLLIN };
		npeerfd = nfds;
		for (i = 0; i < b->npeers; i++) {
			if (b->peers[i]->req_fd >= 0) {
				who[nfds] = b->peers[i];
				fds[nfds++] = (struct pollfd){ .fd = b->peers[i]->req_fd,
							       .events = POLLIN };
			}
		}
		npeerfd = nfds;
		nfds += (size_t)reaper_pollfds(b, fds + nfds, cap - nfds);
		n = poll(fds, (nfds_t)nfds, timeout_ms(b, now));
		if (n < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			break;
		}
		if (fds[0].revents)
			on_signal(b);
		if (fds[2].revents)
			membership_recv(b);
		moved = fds[3].revents != 0;
		if (fds[3].revents)
			rpc_rep_recv(b);
		for (i = FIXED_FDS; i < npeerfd; i++)
			if (fds[i].revents) {
				rpc_req_recv(b, who[i]);
				moved = true;
			}
		for (i = npeerfd; i < nfds; i++)
			if (fds[i].revents)
				reaper_event(b, fds[i].fd);
		/* The mailbox always: its descriptor is armed only once a
		 * receive has found it empty, so a pass cut short at the
		 * burst means no sleep in the next poll. */
		took = rpc_mailbox(b);
		b->mb_more = took == MAILBOX_BURST;
		now = now_ns();
		if (moved || took > 0)
			b->busy_until_ns = now + busy_ns;
		else if (now < b->busy_until_ns)
			sched_yield(); /* a worker or nanomsg may need this CPU */
		membership_tick(b, now);
		rpc_tick(b, now);
		if (now >= b->next_scan_ns) {
			reaper_scan(b);
			b->next_scan_ns = now + REAP_SCAN_NS;
		}
		rpc_flush(b);
		if (b->view_dirty)
			view_publish(b);
		moves_tick(b, now);
	}
	free(fds);
	free(who);
	return 0;
}

int main(int argc, char **argv)
{
	static struct bridge b; /* large: the peer table */
	char err[512];
	int rc;

	rc = config_load(argc, argv, &b.cfg, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "distreg-bridge: %s\n", err);
		return CONFIG_EXIT_USAGE;
	}
	if (rc == CONFIG_HELP) {
		config_usage(stdout);
		return 0;
	}
	if (rc == CONFIG_VERSION) {
		puts(config_version());
		return 0;
	}
	log_init(NULL, b.cfg.log_level);
	b.key = b.cfg.key;
	if (!b.key.set)
		log_info("no key file: bus and rpc on loopback only, frames not authenticated");
	snprintf(b.host, sizeof(b.host), "%s", b.cfg.host);
	b.incarnation = realtime_ns();
	b.bus = b.rep = -1;
	b.dlv_tail = &b.dlv;
	b.acks_tail = &b.acks;
	b.frame = malloc(WIRE_FRAME_MAX);
	b.rx = malloc(WIRE_FRAME_MAX);
	b.signal_fd = signals_fd();
	idmap_init(&b.calls);
	if (!b.frame || !b.rx || b.signal_fd < 0) {
		log_error("cannot set up: %s", strerror(errno));
		return 1;
	}
	if (attach(&b) < 0) {
		detach(&b);
		return 1;
	}
	if (membership_start(&b) < 0 || rpc_start(&b) < 0 || view_publish(&b) < 0) {
		rpc_stop(&b);
		moves_stop(&b);
		membership_stop(&b);
		detach(&b);
		return 1;
	}
	log_info("host %s up: segment %s, bus %s, rpc %s, incarnation %llu, %u seed%s",
		 b.host, b.cfg.segment, b.cfg.bus, b.cfg.rpc, (unsigned long long)b.incarnation,
		 b.cfg.npeers, b.cfg.npeers == 1 ? "" : "s");
	rc = run(&b);
	log_info("stopping: %llu batches sent, %llu resent, %llu received; dropped %llu "
		 "unauthenticated, %llu malformed, %llu replayed; %llu entries reaped; %llu calls "
		 "made again elsewhere; %llu messages and %llu answers waited for room",
		 (unsigned long long)b.n.batches_sent, (unsigned long long)b.n.batches_resent,
		 (unsigned long long)b.n.batches_received, (unsigned long long)b.n.dropped_auth,
		 (unsigned long long)b.n.dropped_malformed, (unsigned long long)b.n.dropped_replay,
		 (unsigned long long)b.n.reaped, (unsigned long long)b.n.relocated,
		 (unsigned long long)b.n.deferred, (unsigned long long)b.n.answered_late);
	rpc_stop(&b);
	moves_stop(&b);
	membership_stop(&b);
	reaper_stop(&b);
	detach(&b);
	idmap_finish(&b.calls);
	free(b.frame);
	free(b.rx);
	sodium_memzero(&b.key, sizeof(b.key));
	config_finish(&b.cfg);
	return rc < 0 ? 1 : 0;
}
