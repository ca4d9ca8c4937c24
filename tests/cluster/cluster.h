/*
 * cluster.h - a cluster of bridges on this machine for the cluster suite:
 * each host has its own segment, its own bus and rpc addresses (ipc paths
 * or loopback ports unique to the test), its own bridge process (the built
 * distreg-bridge, $DISTREG_BRIDGE) and its own log file. Convergence is
 * waited for with generous bounds; latencies are the benchmark's business.
 */
#ifndef DR_CLUSTER_H
#define DR_CLUSTER_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <sched.h>

#include <criterion/criterion.h>

#include <distreg.h>

#include "testutil.h"

extern char **environ;

#define CL_MAX 5
/* Seconds for each cluster test; a test waits at most a few seconds for
 * each convergence. */
#define CL_TIMEOUT 120.0
/* How long a test waits for a view to converge, in ms. */
#define CL_CONVERGE_MS 15000

struct cl_host {
	char id[32];
	char seg[DR_SEGMENT_MAX + 1];
	char bus[DR_ADDR_MAX + 1];
	char rpc[DR_ADDR_MAX + 1];
	char log[128];
	const char *netns;        /* the host's network namespace (ip netns): its bridge,
				   * workers and cl_call's callers run in it */
	pid_t pid;                /* the bridge, 0 when none runs */
	uint64_t stopped_inc;     /* the incarnation cl_stop() last stopped, 0 none */
	dr_registry *r;           /* the test's own handle on the segment */
};

struct cl {
	int n;
	struct cl_host h[CL_MAX];
	char key_file[128];       /* "" without a key */
	int heartbeat_ms, down_after_ms;
	bool seed_all;            /* every bridge gets every other as a seed (else host 0 only) */
	bool lonely[CL_MAX];      /* this one starts with no seed at all */
};

static inline double cl_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void cl_sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Move the calling process into network namespace name (/run/netns/name,
 * as ip netns add makes it): 0 or -errno. A host's processes must share
 * its bridge's network namespace, not only its segment: a mailbox's
 * wake-ups are datagrams to an abstract Unix socket, and abstract socket
 * names are per network namespace.
 */
static inline int cl_enter_netns(const char *name)
{
	char path[128];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/run/netns/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* A loopback TCP port nobody listens on now (the kernel's pick). */
static inline int cl_free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int s = socket(AF_INET, SOCK_STREAM, 0), port;

	cr_assert_geq(s, 0);
	cr_assert_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(s, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(s);
	return port;
}

/*
 * n hosts named "<tag>0".., with segments unique to the test; tcp: loopback
 * ports (free now), else ipc paths under /tmp unique to the test process.
 */
static inline void cl_init(struct cl *c, int n, const char *tag, bool tcp)
{
	memset(c, 0, sizeof(*c));
	c->n = n;
	c->heartbeat_ms = 50;
	c->down_after_ms = 800;
	for (int i = 0; i < n; i++) {
		struct cl_host *h = &c->h[i];
		const char *seg = dr_test_seg_new(tag);

		cr_assert_not_null(seg);
		snprintf(h->id, sizeof(h->id), "%s%d", tag, i);
		snprintf(h->seg, sizeof(h->seg), "%s", seg);
		if (tcp) {
			snprintf(h->bus, sizeof(h->bus), "tcp://127.0.0.1:%d", cl_free_port());
			snprintf(h->rpc, sizeof(h->rpc), "tcp://127.0.0.1:%d", cl_free_port());
		} else {
			snprintf(h->bus, sizeof(h->bus), "ipc:///tmp/drt.%s.%s%d.bus", dr_test_uniq(), tag, i);
			snprintf(h->rpc, sizeof(h->rpc), "ipc:///tmp/drt.%s.%s%d.rpc", dr_test_uniq(), tag, i);
		}
		snprintf(h->log, sizeof(h->log), "/tmp/drt.%s.%s%d.log", dr_test_uniq(), tag, i);
	}
}

/* The segment of host i, opened by the test (created if need be). */
static inline dr_registry *cl_reg(struct cl *c, int i)
{
	struct cl_host *h = &c->h[i];

	if (!h->r) {
		struct dr_options o = { .segment = h->seg, .capacity = 4096, .max_procs = 64,
					.max_threads = 256, .max_mailboxes = 32, .max_lanes = 64,
					.lane_bytes = 64 * 1024 };
		int rc = dr_open(&o, &h->r);

		cr_assert_eq(rc, 0, "open %s: %s", h->seg, dr_strerror(rc));
	}
	return h->r;
}

/* Start host i's bridge; extra arguments (NULL-terminated) go last. */
static inline pid_t cl_start_args(struct cl *c, int i, const char *const *extra)
{
	struct cl_host *h = &c->h[i];
	const char *bin = getenv("DISTREG_BRIDGE");
	char hb[16], down[16];
	const char *argv[64];
	int k = 0, fd;
	pid_t parent;

	cr_assert_not_null(bin, "DISTREG_BRIDGE is not set (meson test sets it)");
	(void)cl_reg(c, i); /* the segment exists with the test's geometry */
	snprintf(hb, sizeof(hb), "%d", c->heartbeat_ms);
	snprintf(down, sizeof(down), "%d", c->down_after_ms);
	if (h->netns) {
		argv[k++] = "ip";
		argv[k++] = "netns";
		argv[k++] = "exec";
		argv[k++] = h->netns;
	}
	argv[k++] = bin;
	argv[k++] = "--segment";
	argv[k++] = h->seg;
	argv[k++] = "--host";
	argv[k++] = h->id;
	argv[k++] = "--bus";
	argv[k++] = h->bus;
	argv[k++] = "--rpc";
	argv[k++] = h->rpc;
	argv[k++] = "--heartbeat-ms";
	argv[k++] = hb;
	argv[k++] = "--down-after-ms";
	argv[k++] = down;
	argv[k++] = "--log-level";
	argv[k++] = "debug";
	if (c->key_file[0]) {
		argv[k++] = "--key-file";
		argv[k++] = c->key_file;
	}
	for (int j = 0; j < c->n && !c->lonely[i]; j++) {
		if (j == i || (!c->seed_all && j != 0))
			continue;
		argv[k++] = "--peer";
		argv[k++] = c->h[j].bus;
	}
	for (; extra && *extra && k < 62; extra++)
		argv[k++] = *extra;
	argv[k] = NULL;

	fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	/* fork and exec, not posix_spawn: the bridge dies with the test
	 * (PR_SET_PDEATHSIG), so a failed test leaves none running. Only
	 * async-signal-safe calls in the child. */
	parent = getpid();
	h->pid = fork();
	cr_assert_geq(h->pid, 0, "fork: %s", strerror(errno));
	if (h->pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent ||
		    dup2(fd, 2) < 0 || dup2(fd, 1) < 0)
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd);
	return h->pid;
}

static inline pid_t cl_start(struct cl *c, int i)
{
	return cl_start_args(c, i, NULL);
}

static inline void cl_start_all(struct cl *c)
{
	for (int i = 0; i < c->n; i++)
		cl_start(c, i);
}

/* The incarnation host i's view gives host j, 0 if it does not list it. */
static inline uint64_t cl_incarnation_of(struct cl *c, int i, int j)
{
	struct dr_host hosts[DR_HOSTS_MAX];
	size_t n = 0;

	if (dr_hosts(cl_reg(c, i), hosts, DR_HOSTS_MAX, &n, NULL) < 0)
		return 0;
	for (size_t k = 0; k < n && k < DR_HOSTS_MAX; k++)
		if (strcmp(hosts[k].id, c->h[j].id) == 0)
			return hosts[k].incarnation;
	return 0;
}

/* Stop host i's bridge with sig, wait for it; its exit status (128 + sig
 * for a signal death), or -ETIMEDOUT after 10 s (then killed). */
static inline int cl_stop(struct cl *c, int i, int sig)
{
	struct cl_host *h = &c->h[i];
	double deadline = cl_now() + 10;
	int st;

	if (!h->pid)
		return 0;
	h->stopped_inc = cl_incarnation_of(c, i, i);
	kill(h->pid, sig);
	for (;;) {
		pid_t w = waitpid(h->pid, &st, WNOHANG);

		if (w == h->pid)
			break;
		if (cl_now() > deadline) {
			kill(h->pid, SIGKILL);
			waitpid(h->pid, &st, 0);
			h->pid = 0;
			return -ETIMEDOUT;
		}
		cl_sleep_ms(5);
	}
	h->pid = 0;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* The state host i's view gives host j (DR_HOST_*), 0 if not listed or if
 * host i's bridge does not run (its view is then the last one published). */
static inline int cl_state_of(struct cl *c, int i, int j)
{
	struct dr_host hosts[DR_HOSTS_MAX];
	size_t n = 0;
	int rc = dr_hosts(cl_reg(c, i), hosts, DR_HOSTS_MAX, &n, NULL);

	if (rc < 0)
		return 0;
	for (size_t k = 0; k < n && k < DR_HOSTS_MAX; k++)
		if (strcmp(hosts[k].id, c->h[j].id) == 0)
			return hosts[k].state;
	return 0;
}

/* Hosts up (or suspect) in host i's view, itself included. */
static inline int cl_up(struct cl *c, int i)
{
	struct dr_host hosts[DR_HOSTS_MAX];
	size_t n = 0;
	int up = 0;

	if (dr_hosts(cl_reg(c, i), hosts, DR_HOSTS_MAX, &n, NULL) < 0)
		return 0;
	for (size_t k = 0; k < n && k < DR_HOSTS_MAX; k++)
		up += hosts[k].state == DR_HOST_UP || hosts[k].state == DR_HOST_SUSPECT;
	return up;
}

/* Wait until every running bridge's view has exactly the running hosts up. */
static inline bool cl_converged(struct cl *c)
{
	int running = 0;

	for (int j = 0; j < c->n; j++)
		running += c->h[j].pid != 0;
	for (int i = 0; i < c->n; i++) {
		struct dr_stats st;
		uint64_t inc;

		if (!c->h[i].pid)
			continue;
		/* The view in a segment outlives its bridge: right after a
		 * restart it is still the stopped bridge's, with every host
		 * up, while the new one has heard no one yet. Its own view
		 * counts, and every other host must have heard it. */
		if (dr_stats(cl_reg(c, i), &st) != 0 || st.bridge_pid != c->h[i].pid)
			return false;
		inc = cl_incarnation_of(c, i, i);
		if (inc == 0 || inc == c->h[i].stopped_inc)
			return false;
		if (cl_up(c, i) != running)
			return false;
		for (int j = 0; j < c->n; j++) {
			int s = cl_state_of(c, i, j);
			bool up = s == DR_HOST_UP || s == DR_HOST_SUSPECT;

			if (c->h[j].pid && !up)
				return false;
			if (c->h[j].pid && j != i && cl_incarnation_of(c, j, i) != inc)
				return false;
		}
	}
	return true;
}

static inline void cl_wait_converged(struct cl *c, const char *what)
{
	double deadline = cl_now() + CL_CONVERGE_MS / 1000.0;

	while (!cl_converged(c)) {
		cr_assert_lt(cl_now(), deadline, "%s: the views did not converge in %d ms", what,
			     CL_CONVERGE_MS);
		cl_sleep_ms(20);
	}
}

/* Wait until host i sees host j in state (DR_HOST_*). */
static inline void cl_wait_state(struct cl *c, int i, int j, int state, int ms)
{
	double deadline = cl_now() + ms / 1000.0;

	while (cl_state_of(c, i, j) != state) {
		cr_assert_lt(cl_now(), deadline, "%s never saw %s in state %d within %d ms (now %d)",
			     c->h[i].id, c->h[j].id, state, ms, cl_state_of(c, i, j));
		cl_sleep_ms(10);
	}
}

/* Which host owns name (by host i's view): its index, or -1. */
static inline int cl_owner(struct cl *c, int i, const char *name)
{
	char host[DR_HOST_MAX + 1];
	int rc = dr_owner(cl_reg(c, i), name, host, sizeof(host));

	cr_assert_eq(rc, 0, "dr_owner %s on %s: %s", name, c->h[i].id, dr_strerror(rc));
	for (int j = 0; j < c->n; j++)
		if (strcmp(c->h[j].id, host) == 0)
			return j;
	return -1;
}

/* Kill every bridge, close the handles, remove segments, sockets, logs
 * (with DISTREG_KEEP_LOGS set in the environment, the logs stay:
 * /tmp/drt.<pid>.<salt>.<host>.log). */
static inline void cl_fini(struct cl *c)
{
	for (int i = 0; i < c->n; i++) {
		struct cl_host *h = &c->h[i];

		if (h->pid)
			cl_stop(c, i, SIGKILL);
		if (h->r)
			dr_close(h->r);
		h->r = NULL;
		(void)dr_unlink(h->seg);
		if (strncmp(h->bus, "ipc://", 6) == 0)
			unlink(h->bus + 6);
		if (strncmp(h->rpc, "ipc://", 6) == 0)
			unlink(h->rpc + 6);
		if (!getenv("DISTREG_KEEP_LOGS"))
			unlink(h->log);
	}
	if (c->key_file[0])
		unlink(c->key_file);
}

/* The last len - 1 bytes of the file at path, NUL-terminated, in buf. */
static inline const char *cl_file_tail(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	off_t size;
	ssize_t n;

	buf[0] = 0;
	if (fd < 0)
		return buf;
	size = lseek(fd, 0, SEEK_END);
	lseek(fd, size > (off_t)len - 1 ? size - (off_t)len + 1 : 0, SEEK_SET);
	n = read(fd, buf, len - 1);
	buf[n > 0 ? n : 0] = 0;
	close(fd);
	return buf;
}

/* Host i's bridge log, for a failure message (a static buffer). */
static inline const char *cl_log_tail(struct cl *c, int i)
{
	static char buf[4096];

	return cl_file_tail(c->h[i].log, buf, sizeof(buf));
}

/* Whether host i's log holds s. */
static inline bool cl_log_has(struct cl *c, int i, const char *s)
{
	static char buf[1 << 20];
	int fd = open(c->h[i].log, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, s) != NULL;
}

/* Count the lines of host i's log that hold s. */
static inline int cl_log_count(struct cl *c, int i, const char *s)
{
	static char buf[1 << 20];
	int fd = open(c->h[i].log, O_RDONLY | O_CLOEXEC), k = 0;
	ssize_t n;

	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = 0;
	for (char *p = buf; (p = strstr(p, s)); p += strlen(s))
		k++;
	return k;
}

/* A key file of 32 random bytes in hex, mode 0600, for c. */
static inline void cl_make_key(struct cl *c)
{
	unsigned char k[32];
	FILE *f;
	int fd;

	snprintf(c->key_file, sizeof(c->key_file), "/tmp/drt.%s.key", dr_test_uniq());
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	cr_assert_eq(read(fd, k, sizeof(k)), (ssize_t)sizeof(k));
	close(fd);
	f = fopen(c->key_file, "w");
	cr_assert_not_null(f);
	fchmod(fileno(f), 0600);
	for (int i = 0; i < 32; i++)
		fprintf(f, "%02x", k[i]);
	fprintf(f, "\n");
	fclose(f);
}

/* ---------------------------------------------------------------------- */
/* Workers: a child that serves global names on one host. */

#define W_NAMES 64

struct counters {
	int casts[CL_MAX];   /* casts and sends received, per host */
	int moved[CL_MAX];   /* workers a factory restarted on their new owner, per host */
	int move_failed[CL_MAX];
	int dienow[CL_MAX];  /* dienow events received, per host */
	int enoent[CL_MAX];  /* calls "enoent" received (and failed -ENOENT), per host */
};

struct worker {
	const char *seg;
	const char *host;
	int n;
	const char *names[W_NAMES];
	int ready[2];        /* the child writes 'r' (or 'e' and the error) */
	struct counters *cnt;
	int idx;             /* the host's index, for cnt */
	const char *netns;   /* the host's network namespace, or NULL */
	const char *kind;    /* also a factory of this kind (NULL: not one) */
};

/* A factory's part of worker_main: m was a start request (or a malformed
 * one), and is answered. Start arg "no" is refused "refused by <host>";
 * any other serves the name here. */
static inline bool worker_start_request(struct worker *w, dr_mailbox *mb, const struct dr_msg *m)
{
	struct dr_start_req sr;
	char why[64];
	int rc = w->kind ? dr_start_request(mb, m, &sr) : -EINVAL;

	if (rc == -EINVAL)
		return false;
	if (rc == -EBADMSG) {
		dr_reply_error(mb, m, -EBADMSG);
	} else if (rc == -EEXIST) {
		dr_start_answer(mb, m, -EEXIST, NULL);
	} else if (sr.arg_len == 2 && memcmp(sr.arg, "no", 2) == 0) {
		snprintf(why, sizeof(why), "refused by %s", w->host);
		dr_start_answer(mb, m, -EPERM, why);
	} else {
		dr_start_answer(mb, m, dr_serve_global_bin(mb, sr.name, sr.name_len, NULL, 0), NULL);
	}
	return true;
}

/*
 * Serves its names; a CALL with data "sleep:<ms>" answers after that long,
 * "die" kills the worker, "enoent" is failed with -ENOENT (counted), anything
 * else is answered "<host>|<name>|<data>".
 * CAST and INFO count in cnt.
 */
static inline int worker_main(void *arg)
{
	struct worker *w = arg;
	struct dr_options o = { .segment = w->seg };
	dr_registry *r;
	dr_mailbox *mb;
	struct dr_msg m;
	char buf[512];
	int rc;

	rc = w->netns ? cl_enter_netns(w->netns) : 0;
	if (!rc)
		rc = dr_open(&o, &r);
	if (!rc)
		rc = dr_mailbox_open(r, &mb);
	for (int i = 0; !rc && i < w->n; i++)
		rc = dr_serve_global(mb, w->names[i], NULL, 0);
	if (!rc && w->kind)
		rc = dr_factory_serve(mb, w->kind);
	if (rc) {
		char e[2] = { 'e', (char)-rc };

		if (write(w->ready[1], e, 2) < 0)
			_exit(2);
		return 1;
	}
	if (write(w->ready[1], "r", 1) != 1)
		return 2;
	for (;;) {
		rc = dr_recv(mb, &m, -1);
		if (rc)
			return 3;
		if (m.kind == DR_MSG_SYSTEM && m.len >= 1 &&
		    ((const uint8_t *)m.data)[0] == DR_EVENT_DIENOW) {
			__atomic_add_fetch(&w->cnt->dienow[w->idx], 1, __ATOMIC_RELAXED);
			continue;
		}
		if (m.kind == DR_MSG_SYSTEM && w->kind) {
			/* shouldrestart: to the new owner's factory, without
			 * waiting (two factories moving workers to each other
			 * would wait for each other); the reply finishes it. */
			rc = dr_restart_moved_async(mb, &m, w->kind, NULL, 0, 5000);
			if (rc && rc != -EALREADY)
				__atomic_add_fetch(&w->cnt->move_failed[w->idx], 1, __ATOMIC_RELAXED);
			continue;
		}
		if (m.kind == DR_MSG_REPLY) {
			rc = dr_restart_moved_finish(mb, &m, NULL);
			if (rc != -EINVAL)
				__atomic_add_fetch(rc ? &w->cnt->move_failed[w->idx]
						      : &w->cnt->moved[w->idx], 1, __ATOMIC_RELAXED);
			continue;
		}
		if (m.kind == DR_MSG_CAST || m.kind == DR_MSG_INFO) {
			__atomic_add_fetch(&w->cnt->casts[w->idx], 1, __ATOMIC_RELAXED);
			continue;
		}
		if (m.kind != DR_MSG_CALL || worker_start_request(w, mb, &m))
			continue;
		if (m.len == 3 && memcmp(m.data, "die", 3) == 0)
			kill(getpid(), SIGKILL);
		if (m.len == 6 && memcmp(m.data, "enoent", 6) == 0) {
			/* A worker's own "no such key", with the name's errno. */
			__atomic_add_fetch(&w->cnt->enoent[w->idx], 1, __ATOMIC_RELAXED);
			dr_reply_error(mb, &m, -ENOENT);
			continue;
		}
		if (m.len > 6 && memcmp(m.data, "sleep:", 6) == 0) {
			snprintf(buf, sizeof(buf), "%.*s", (int)m.len - 6, (const char *)m.data + 6);
			cl_sleep_ms(atoi(buf));
		}
		int n = snprintf(buf, sizeof(buf), "%s|%.*s|%.*s", w->host, (int)m.name_len,
				 (const char *)m.name, (int)m.len, (const char *)m.data);

		if (n >= (int)sizeof(buf))
			n = (int)sizeof(buf) - 1; /* the answer is cut, not read past */
		/* A full lane to the bridge (our restarts go that way too):
		 * again, or the caller's whole batch waits for its timeout. */
		for (int t = 0; t < 1000 && dr_reply(mb, &m, buf, (size_t)n) == -EAGAIN; t++)
			cl_sleep_ms(1);
	}
}

/* Start a worker on host i serving names, and a factory of kind (may be
 * NULL) in it; returns its pid once it serves. */
static inline pid_t worker_spawn(struct cl *c, int i, const char **names, int n,
				 struct counters *cnt, const char *kind)
{
	static struct worker ws[16];
	static int nws;
	struct worker *w = &ws[nws++ % 16];
	char b[2] = { 0 };
	pid_t pid;

	memset(w, 0, sizeof(*w));
	w->seg = c->h[i].seg;
	w->host = c->h[i].id;
	w->n = n;
	for (int k = 0; k < n; k++)
		w->names[k] = names[k];
	w->cnt = cnt;
	w->idx = i;
	w->netns = c->h[i].netns;
	w->kind = kind;
	cr_assert_eq(pipe(w->ready), 0);
	pid = dr_test_spawn(worker_main, w);
	cr_assert_gt(pid, 0);
	close(w->ready[1]);
	cr_assert_geq(read(w->ready[0], b, 2), 1);
	close(w->ready[0]);
	cr_assert_eq(b[0], 'r', "worker on %s: %s", c->h[i].id, dr_strerror(-(int)(unsigned char)b[1]));
	return pid;
}

/* Start a worker on host i serving names; returns its pid once it serves. */
static inline pid_t worker_start(struct cl *c, int i, const char **names, int n, struct counters *cnt)
{
	return worker_spawn(c, i, names, n, cnt, NULL);
}

static inline void reap_child(pid_t pid)
{
	int st;

	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
}

static inline struct counters *counters_new(void)
{
	struct counters *cnt = mmap(NULL, sizeof(*cnt), PROT_READ | PROT_WRITE,
				    MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(cnt, MAP_FAILED);
	memset(cnt, 0, sizeof(*cnt));
	return cnt;
}

/* A name "<tag>.<k>" owned by host `owner` (by host 0's view). */
static inline const char *name_owned_by(struct cl *c, int owner, const char *tag)
{
	static char buf[8][32];
	static int at;
	char *b = buf[at++ % 8];

	for (int k = 0; k < 10000; k++) {
		snprintf(b, 32, "%s.%d", tag, k);
		if (cl_owner(c, 0, b) == owner)
			return b;
	}
	cr_assert_fail("no name owned by %s", c->h[owner].id);
	return NULL;
}

/* A call to a global name from a process of host i: the test's own handle,
 * or, when the host has a network namespace, a child in it (with a handle
 * of its own: see cl_enter_netns). dr_call_global's result; the answer in
 * reply (*len bytes, at most the *len given). */
struct cl_caller {
	struct cl_host *h;
	const char *name;
	const char *kind;   /* dr_start of name through a factory of kind, not a call */
	const void *req;
	size_t req_len, cap;
	int timeout_ms;
	int out[2];
};

static inline int cl_caller_main(void *arg)
{
	struct cl_caller *a = arg;
	struct dr_options o = { .segment = a->h->seg };
	static char buf[1 << 16];
	size_t len = a->cap < sizeof(buf) ? a->cap : sizeof(buf);
	dr_registry *r = NULL;
	int rc = cl_enter_netns(a->h->netns);

	if (!rc)
		rc = dr_open(&o, &r);
	if (!rc && a->kind) {
		struct dr_started st;

		/* The answer: "<created>|<host>" */
		rc = dr_start(r, a->name, a->kind, NULL, 0, &st, a->timeout_ms);
		if (!rc)
			len = (size_t)snprintf(buf, len, "%d|%s", st.created, st.host);
	} else if (!rc) {
		rc = dr_call_global(r, a->name, a->req, a->req_len, buf, &len, a->timeout_ms);
	}
	if (rc)
		len = 0;
	if (write(a->out[1], &rc, sizeof(rc)) != sizeof(rc) ||
	    write(a->out[1], &len, sizeof(len)) != sizeof(len) ||
	    (len && write(a->out[1], buf, len) != (ssize_t)len))
		return 1;
	return 0;
}

/* dr_call_global(name) from host i (in its namespace, if it has one); or,
 * with kind, dr_start(name, kind), whose answer is "<created>|<host>". */
static inline int cl_call_or_start(struct cl *c, int i, const char *name, const char *kind,
				   const void *req, size_t req_len, void *reply, size_t *len,
				   int timeout_ms)
{
	struct cl_caller a = { .h = &c->h[i], .name = name, .kind = kind, .req = req,
			       .req_len = req_len, .cap = *len, .timeout_ms = timeout_ms };
	int rc = -EPIPE, st;
	size_t n = 0;
	pid_t pid;

	if (!c->h[i].netns && !kind)
		return dr_call_global(cl_reg(c, i), name, req, req_len, reply, len, timeout_ms);
	(void)cl_reg(c, i); /* the segment exists with the test's geometry */
	cr_assert_eq(pipe(a.out), 0);
	pid = dr_test_spawn(cl_caller_main, &a);
	cr_assert_gt(pid, 0);
	close(a.out[1]);
	if (read(a.out[0], &rc, sizeof(rc)) != sizeof(rc) ||
	    read(a.out[0], &n, sizeof(n)) != sizeof(n) || n > *len)
		rc = -EPIPE, n = 0;
	for (size_t got = 0; got < n;) {
		ssize_t k = read(a.out[0], (char *)reply + got, n - got);

		if (k <= 0) {
			rc = -EPIPE;
			break;
		}
		got += (size_t)k;
	}
	close(a.out[0]);
	waitpid(pid, &st, 0);
	*len = n;
	return rc;
}

static inline int cl_call(struct cl *c, int i, const char *name, const void *req, size_t req_len,
			  void *reply, size_t *len, int timeout_ms)
{
	return cl_call_or_start(c, i, name, NULL, req, req_len, reply, len, timeout_ms);
}

struct cl_find {
	const char *name;
	bool found;
};

static inline int cl_find_fn(const struct dr_name_info *in, void *arg)
{
	struct cl_find *f = arg;

	if (in->global && in->name_len == strlen(f->name) &&
	    memcmp(in->name, f->name, in->name_len) == 0)
		f->found = true;
	return 0;
}

/* Whether host i's segment has the global name registered. */
static inline bool cl_serves(struct cl *c, int i, const char *name)
{
	struct cl_find f = { name, false };

	cr_assert_eq(dr_foreach(cl_reg(c, i), cl_find_fn, &f), 0);
	return f.found;
}

#endif /* DR_CLUSTER_H */
