/*
 * bench_call.c - a round trip between two processes on one host, side by
 * side in one run, through:
 *
 *   distreg       dr_call to a worker that replies at once (its mailbox);
 *   distreg-async dr_call_async with 1, 16 and 256 calls in flight, the
 *                 completions delivered to the caller's mailbox;
 *   nanomsg       a REQ/REP pair over ipc://;
 *   unix          a Unix stream socket pair;
 *   pipe          a pair of pipes.
 *
 * For each: p50 and p99 of the round trip, calls per second, and the CPU
 * time both processes spent per call. Then, for distreg and the Unix
 * socket: the round trip after 1 ms of idleness, and the CPU an idle
 * worker uses in one second (it must be zero to the measurement's
 * precision: its scheduler run time, /proc/PID/schedstat, in ns). Then
 * dr_cast throughput from 1 and from 2 sending processes.
 *
 *   bench_call [--seconds S] [--short]
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include <distreg.h>

#include "proc.h"
#include "nnecho.h"

#define MAXLAT (1u << 22)
#define MSG 16

static double seconds = 1.0;
static char seg[64];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const char *bench_prog = "bench_call";

/* ns this process (or pid) has run, from the scheduler. */
static uint64_t run_ns(pid_t pid)
{
	char path[64];
	unsigned long long ns = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/schedstat", pid ? (int)pid : (int)getpid());
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%llu", &ns) != 1)
		ns = 0;
	fclose(f);
	return ns;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct result {
	const char *name;
	double p50_us, p99_us, calls_s, cpu_us;
};

static struct result results[16];
static int nresults;

static void report(const char *name, uint64_t *lat, size_t n, uint64_t elapsed, uint64_t cpu)
{
	struct result *r = &results[nresults++];

	qsort(lat, n, sizeof(lat[0]), cmp_u64);
	r->name = name;
	r->p50_us = n ? (double)lat[n / 2] / 1e3 : 0;
	r->p99_us = n ? (double)lat[n * 99 / 100] / 1e3 : 0;
	r->calls_s = (double)n / ((double)elapsed / 1e9);
	r->cpu_us = n ? (double)cpu / (double)n / 1e3 : 0;
	printf("%-18s %10.2f %10.2f %12.0f %12.2f\n", r->name, r->p50_us, r->p99_us, r->calls_s,
	       r->cpu_us);
	fflush(stdout);
}

/* ---------------------------------------------------------------------- */
/* distreg */

static dr_registry *open_seg(void)
{
	struct dr_options o = { .segment = seg, .capacity = 1024 };
	dr_registry *r;
	int rc = dr_open(&o, &r);

	if (rc)
		die("dr_open", dr_strerror(rc));
	return r;
}

static void dr_server(void *arg)
{
	const char *name = arg;
	dr_registry *r = open_seg();
	dr_mailbox *mb;
	struct dr_msg m;
	int rc = dr_mailbox_open(r, &mb);

	if (rc || (rc = dr_serve(mb, name, NULL, 0)))
		die("worker", dr_strerror(rc));
	for (;;) {
		rc = dr_recv(mb, &m, -1);
		if (rc)
			die("worker: dr_recv", dr_strerror(rc));
		if (m.kind == DR_MSG_CALL && (rc = dr_reply(mb, &m, m.data, m.len)))
			die("worker: dr_reply", dr_strerror(rc));
	}
}

static void wait_name(dr_registry *r, const char *name)
{
	for (int i = 0; i < 5000 && dr_whereis(r, name, NULL) != 0; i++)
		usleep(1000);
	if (dr_whereis(r, name, NULL) != 0)
		die(name, "the worker never served it");
}

static void bench_dr_sync(dr_registry *r, uint64_t *lat, pid_t srv)
{
	char req[MSG] = "ping", rep[MSG];
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), c0, s0;
	size_t n = 0;

	c0 = run_ns(0);
	s0 = run_ns(srv);
	while (n < MAXLAT) {
		uint64_t a = now_ns();
		size_t len = sizeof(rep);
		int rc = dr_call(r, "bench.echo", req, sizeof(req), rep, &len, 5000);

		if (rc)
			die("dr_call", dr_strerror(rc));
		lat[n++] = now_ns() - a;
		if (lat[n - 1] + a >= end)
			break;
	}
	report("distreg dr_call", lat, n, now_ns() - t0, run_ns(0) - c0 + run_ns(srv) - s0);
}

static void bench_dr_async(dr_registry *r, uint64_t *lat, pid_t srv, unsigned depth)
{
	static uint64_t sent_at[1 << 16];
	char req[MSG] = "ping", label[32];
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), c0, s0, id;
	unsigned inflight = 0;
	struct dr_msg m;
	dr_mailbox *mb;
	size_t n = 0;
	int rc = dr_mailbox_open(r, &mb);

	if (rc)
		die("dr_mailbox_open", dr_strerror(rc));
	c0 = run_ns(0);
	s0 = run_ns(srv);
	for (;;) {
		uint64_t t = now_ns();

		while (t < end && inflight < depth) {
			rc = dr_call_async(mb, "bench.echo", req, sizeof(req), 5000, &id);
			if (rc == -EAGAIN)
				break;
			if (rc)
				die("dr_call_async", dr_strerror(rc));
			sent_at[id & 0xffff] = t;
			inflight++;
		}
		if (inflight == 0)
			break;
		rc = dr_recv(mb, &m, 5000);
		if (rc || m.kind != DR_MSG_REPLY || m.status)
			die("async completion", dr_strerror(rc ? rc : m.status));
		inflight--;
		if (n < MAXLAT)
			lat[n++] = now_ns() - sent_at[m.call_id & 0xffff];
	}
	snprintf(label, sizeof(label), "distreg async %u", depth);
	report(strdup(label), lat, n, now_ns() - t0, run_ns(0) - c0 + run_ns(srv) - s0);
	dr_mailbox_close(mb);
}

/* ---------------------------------------------------------------------- */
/* nanomsg REQ/REP over ipc:// */

static char nn_url[128];

static void nn_server(void *arg)
{
	(void)arg;
	nn_echo_server(nn_url);
}

static void bench_nn(uint64_t *lat, pid_t srv)
{
	int s = nn_socket(AF_SP, NN_REQ);
	char req[MSG] = "ping", rep[MSG];
	uint64_t t0, end, c0, s0;
	size_t n = 0;

	if (s < 0 || nn_connect(s, nn_url) < 0)
		die("nn_connect", nn_strerror(nn_errno()));
	/* The first exchange waits for the connection. */
	if (nn_send(s, req, sizeof(req), 0) < 0 || nn_recv(s, rep, sizeof(rep), 0) < 0)
		die("nanomsg", nn_strerror(nn_errno()));
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	c0 = run_ns(0);
	s0 = run_ns(srv);
	while (n < MAXLAT) {
		uint64_t a = now_ns();

		if (nn_send(s, req, sizeof(req), 0) < 0 || nn_recv(s, rep, sizeof(rep), 0) < 0)
			die("nanomsg", nn_strerror(nn_errno()));
		lat[n++] = now_ns() - a;
		if (a + lat[n - 1] >= end)
			break;
	}
	report("nanomsg req/rep ipc", lat, n, now_ns() - t0, run_ns(0) - c0 + run_ns(srv) - s0);
	nn_close(s);
}

/* ---------------------------------------------------------------------- */
/* A Unix socket pair and a pipe pair: fds[0] the client's, [1] the server's */

struct fdpair {
	int cr, cw, sr, sw;
};

static void fd_server(void *arg)
{
	struct fdpair *p = arg;
	char buf[MSG];

	for (;;) {
		ssize_t n = read(p->sr, buf, sizeof(buf));

		if (n <= 0 || write(p->sw, buf, (size_t)n) != n)
			_exit(0);
	}
}

static void bench_fd(const char *name, struct fdpair *p, uint64_t *lat, pid_t srv)
{
	char req[MSG] = "ping", rep[MSG];
	uint64_t t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9), c0, s0;
	size_t n = 0;

	c0 = run_ns(0);
	s0 = run_ns(srv);
	while (n < MAXLAT) {
		uint64_t a = now_ns();

		if (write(p->cw, req, sizeof(req)) != sizeof(req) ||
		    read(p->cr, rep, sizeof(rep)) != sizeof(rep))
			die(name, strerror(errno));
		lat[n++] = now_ns() - a;
		if (a + lat[n - 1] >= end)
			break;
	}
	report(name, lat, n, now_ns() - t0, run_ns(0) - c0 + run_ns(srv) - s0);
}

/* ---------------------------------------------------------------------- */
/* Idleness: one call after 1 ms asleep, and an idle worker's CPU */

static double idle_rtt(int (*call)(void *), void *arg)
{
	uint64_t v[200];

	for (int i = 0; i < 200; i++) {
		struct timespec ts = { 0, 1000000 };
		uint64_t a;

		nanosleep(&ts, NULL);
		a = now_ns();
		if (call(arg))
			die("idle call", "failed");
		v[i] = now_ns() - a;
	}
	qsort(v, 200, sizeof(v[0]), cmp_u64);
	return (double)v[100] / 1e3;
}

static int dr_one(void *arg)
{
	char rep[MSG];
	size_t len = sizeof(rep);

	return dr_call(arg, "bench.echo", "ping", 4, rep, &len, 5000);
}

static int fd_one(void *arg)
{
	struct fdpair *p = arg;
	char buf[MSG] = "ping";

	return write(p->cw, buf, sizeof(buf)) != sizeof(buf) ||
	       read(p->cr, buf, sizeof(buf)) != sizeof(buf);
}

static double idle_cpu_us(pid_t srv)
{
	uint64_t a = run_ns(srv);
	struct timespec ts = { 1, 0 };

	nanosleep(&ts, NULL);
	return (double)(run_ns(srv) - a) / 1e3;
}

/* ---------------------------------------------------------------------- */
/* dr_cast throughput */

struct castctl {
	volatile int go, stop;
	uint64_t sent[2];
};

static void cast_sender(void *arg)
{
	struct castctl *c = arg;
	dr_registry *r = open_seg();
	char msg[MSG] = "tick";
	uint64_t n = 0;

	while (!c->go)
		;
	while (!c->stop) {
		int rc = dr_cast(r, "bench.sink", msg, sizeof(msg), 100);

		if (rc == 0)
			n++;
		else if (rc != -ETIMEDOUT)
			die("dr_cast", dr_strerror(rc));
	}
	__atomic_add_fetch(&c->sent[0], n, __ATOMIC_RELAXED);
	dr_close(r);
}

static void bench_cast(dr_registry *r, unsigned senders)
{
	struct castctl *c = mmap(NULL, sizeof(*c), PROT_READ | PROT_WRITE,
				 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	dr_mailbox *mb;
	struct dr_msg m;
	pid_t pids[2];
	uint64_t got = 0, t0, end;
	int rc = dr_mailbox_open(r, &mb);

	if (c == MAP_FAILED || rc || (rc = dr_serve(mb, "bench.sink", NULL, 0)))
		die("cast sink", dr_strerror(rc));
	for (unsigned i = 0; i < senders; i++)
		pids[i] = fork_child(cast_sender, c);
	usleep(100000);
	c->go = 1;
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	while (now_ns() < end) {
		rc = dr_recv(mb, &m, 100);
		if (rc == 0)
			got++;
		else if (rc != -ETIMEDOUT)
			die("sink dr_recv", dr_strerror(rc));
	}
	c->stop = 1;
	printf("%-18s %10s %10s %12.0f %12s\n", senders == 1 ? "dr_cast, 1 sender" :
		"dr_cast, 2 senders", "-", "-", (double)got / ((double)(now_ns() - t0) / 1e9), "-");
	fflush(stdout);
	for (unsigned i = 0; i < senders; i++)
		waitpid(pids[i], NULL, 0);
	while (dr_recv(mb, &m, 0) == 0)
		;
	dr_mailbox_close(mb);
	munmap(c, sizeof(*c));
}

/* ---------------------------------------------------------------------- */

static const struct result *find(const char *name)
{
	for (int i = 0; i < nresults; i++)
		if (strcmp(results[i].name, name) == 0)
			return &results[i];
	return NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "short", no_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t *lat = malloc(MAXLAT * sizeof(*lat));
	struct fdpair sp, pp;
	int c, sv[2], p1[2], p2[2];
	double idle_dr, idle_unix, cpu_dr, cpu_unix;
	dr_registry *r;
	pid_t srv;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			seconds = atof(optarg);
			if (!(seconds > 0 && seconds <= 60))
				goto usage;
			break;
		case 'S':
			seconds = 0.2;
			break;
		case 'h':
			printf("usage: bench_call [--seconds S] [--short]\n");
			return 0;
		default:
		usage:
			fprintf(stderr, "usage: bench_call [--seconds S (0-60]] [--short]\n");
			return 2;
		}
	}
	if (!lat)
		die("malloc", strerror(ENOMEM));
	snprintf(seg, sizeof(seg), "bench.call.%d", (int)getpid());
	snprintf(nn_url, sizeof(nn_url), "ipc:///tmp/bench-call-%d.ipc", (int)getpid());
	printf("bench_call: a round trip between two processes, %.1f s per row; %d-byte "
	       "messages\n\n", seconds, MSG);
	printf("%-18s %10s %10s %12s %12s\n", "system", "p50 us", "p99 us", "calls/s",
	       "CPU us/call");

	r = open_seg();
	srv = fork_child(dr_server, "bench.echo");
	wait_name(r, "bench.echo");
	bench_dr_sync(r, lat, srv);
	bench_dr_async(r, lat, srv, 1);
	bench_dr_async(r, lat, srv, 16);
	bench_dr_async(r, lat, srv, 256);
	idle_dr = idle_rtt(dr_one, r);
	cpu_dr = idle_cpu_us(srv);
	stop_child(srv);

	srv = fork_child(nn_server, NULL);
	usleep(100000);
	bench_nn(lat, srv);
	stop_child(srv);
	unlink(nn_url + 6);

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0 || pipe(p1) < 0 || pipe(p2) < 0)
		die("socketpair/pipe", strerror(errno));
	sp = (struct fdpair){ .cr = sv[0], .cw = sv[0], .sr = sv[1], .sw = sv[1] };
	srv = fork_child(fd_server, &sp);
	bench_fd("unix socket pair", &sp, lat, srv);
	idle_unix = idle_rtt(fd_one, &sp);
	cpu_unix = idle_cpu_us(srv);
	stop_child(srv);
	pp = (struct fdpair){ .cr = p2[0], .cw = p1[1], .sr = p1[0], .sw = p2[1] };
	srv = fork_child(fd_server, &pp);
	bench_fd("pipe pair", &pp, lat, srv);
	stop_child(srv);

	bench_cast(r, 1);
	bench_cast(r, 2);

	printf("\nafter 1 ms idle, round trip p50: distreg %.1f us, unix socket %.1f us\n",
	       idle_dr, idle_unix);
	printf("an idle worker's CPU over 1 s: distreg %.1f us, unix socket %.1f us\n", cpu_dr,
	       cpu_unix);

	const struct result *d = find("distreg dr_call"), *nn = find("nanomsg req/rep ipc"),
			    *ux = find("unix socket pair"), *a = find("distreg async 256");
	printf("\ntargets:\n");
	printf("  %s  dr_call p50 <= 1/10 of nanomsg ipc p50: %.2f us vs %.2f us (x%.1f)\n",
	       d->p50_us * 10 <= nn->p50_us ? "PASS" : "MISS", d->p50_us, nn->p50_us,
	       nn->p50_us / d->p50_us);
	printf("  %s  dr_call p50 <= unix socket round trip p50: %.2f us vs %.2f us\n",
	       d->p50_us <= ux->p50_us ? "PASS" : "MISS", d->p50_us, ux->p50_us);
	printf("  %s  256 in flight >= 1 M calls/s: %.2f M\n", a->calls_s >= 1e6 ? "PASS" : "MISS",
	       a->calls_s / 1e6);
	printf("  %s  256 in flight >= 20x nanomsg one at a time: x%.1f\n",
	       a->calls_s >= 20 * nn->calls_s ? "PASS" : "MISS", a->calls_s / nn->calls_s);
	printf("  %s  an idle worker uses no CPU: %.1f us in 1 s\n",
	       cpu_dr < 100 ? "PASS" : "MISS", cpu_dr);
	dr_close(r);
	dr_unlink(seg);
	free(lat);
	return 0;
}
