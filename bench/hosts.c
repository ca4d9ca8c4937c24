/*
 * hosts.c - "hosts" on this machine for the cluster benchmarks: see
 * hosts.h.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "proc.h"
#include "nnecho.h"
#include "hosts.h"

extern char **environ;

const char *bridge_bin;
bool keep_logs;
const char *bridge_busy_poll_us;

uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* ---------------------------------------------------------------------- */
/* Hosts and bridges */

void bridge_locate(void)
{
	static char path[4096];
	ssize_t n;

	if (!bridge_bin)
		bridge_bin = getenv("DISTREG_BRIDGE");
	if (!bridge_bin) {
		/* The build tree's: bench/ and bridge/ are siblings. */
		n = readlink("/proc/self/exe", path, sizeof(path) - 32);
		if (n > 0) {
			char *slash;

			path[n] = 0;
			slash = strrchr(path, '/');
			if (slash) {
				*slash = 0;
				slash = strrchr(path, '/');
			}
			if (slash) {
				strcpy(slash, "/bridge/distreg-bridge");
				if (access(path, X_OK) == 0)
					bridge_bin = path;
			}
		}
	}
	if (!bridge_bin)
		bridge_bin = "distreg-bridge";
	if (access(bridge_bin, X_OK) != 0)
		die(bridge_bin, "not an executable (set DISTREG_BRIDGE or --bridge)");
}

/* The hosts this process made: on any exit (die() too) their bridges are
 * stopped and their segments removed, so that a failed or interrupted
 * benchmark leaves nothing behind. Only in the process that made them: a
 * forked worker's exit must not. */
static struct host *made[16];
static int nmade;
static pid_t maker;

static void hosts_atexit(void)
{
	if (getpid() != maker)
		return;
	for (int i = 0; i < nmade; i++) {
		if (made[i]->bridge > 0) {
			kill(made[i]->bridge, SIGCONT);
			kill(made[i]->bridge, SIGKILL);
			waitpid(made[i]->bridge, NULL, 0);
			made[i]->bridge = 0;
		}
		dr_unlink(made[i]->seg);
		if (!keep_logs)
			unlink(made[i]->log);
	}
	nmade = 0;
}

/* Interrupted (SIGINT, SIGTERM, SIGHUP): the same, then die of it. */
static void hosts_signal(int sig)
{
	hosts_atexit();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void host_forget(struct host *h)
{
	for (int i = 0; i < nmade; i++)
		if (made[i] == h)
			made[i--] = made[--nmade];
}

void host_init(struct host *h, const char *tag, const char *id)
{
	struct dr_options o = { 0 };
	int rc;

	if (!maker) {
		maker = getpid();
		atexit(hosts_atexit);
		signal(SIGINT, hosts_signal);
		signal(SIGTERM, hosts_signal);
		signal(SIGHUP, hosts_signal);
	}
	if (nmade == (int)(sizeof(made) / sizeof(made[0])))
		die("host_init", "too many hosts");
	made[nmade++] = h;

	memset(h, 0, sizeof(*h));
	snprintf(h->id, sizeof(h->id), "%s", id);
	snprintf(h->seg, sizeof(h->seg), "bench.%s.%d.%s", tag, (int)getpid(), id);
	snprintf(h->bus, sizeof(h->bus), "tcp://127.0.0.1:%d", free_port());
	snprintf(h->rpc, sizeof(h->rpc), "tcp://127.0.0.1:%d", free_port());
	snprintf(h->log, sizeof(h->log), "/tmp/bench-%s-%d-%s.log", tag, (int)getpid(), id);
	o.segment = h->seg;
	rc = dr_open(&o, &h->r);
	if (rc)
		die(h->seg, dr_strerror(rc));
}

void bridge_start(struct host *h, const struct host *peer, const char *heartbeat_ms,
		  const char *down_after_ms)
{
	const char *argv[20] = { bridge_bin, "--segment", h->seg, "--host", h->id, "--bus", h->bus,
				 "--rpc", h->rpc, "--peer", peer->bus, "--log-level", "info" };
	int argc = 13;
	pid_t parent = getpid();
	int fd = open(h->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (heartbeat_ms) {
		argv[argc++] = "--heartbeat-ms";
		argv[argc++] = heartbeat_ms;
	}
	if (down_after_ms) {
		argv[argc++] = "--down-after-ms";
		argv[argc++] = down_after_ms;
	}
	if (bridge_busy_poll_us) {
		argv[argc++] = "--busy-poll-us";
		argv[argc++] = bridge_busy_poll_us;
	}
	if (fd < 0)
		die(h->log, strerror(errno));
	/* Not posix_spawn: the bridge stops (SIGTERM) when we die, however
	 * we die. */
	h->bridge = fork();
	if (h->bridge < 0)
		die("fork", strerror(errno));
	if (h->bridge == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent || dup2(fd, 2) < 0)
			_exit(127);
		execve(bridge_bin, (char *const *)argv, environ);
		_exit(127);
	}
	close(fd);
}

uint64_t cpu_ns_of(pid_t pid)
{
	char path[64];
	struct dirent *e;
	uint64_t sum = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		unsigned long long ns;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/%d/task/%.16s/schedstat", (int)pid, e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fscanf(f, "%llu", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(d);
	return sum;
}

int hosts_up(const struct host *h)
{
	struct dr_host hs[8];
	size_t n = 0;
	int up = 0;

	if (dr_hosts(h->r, hs, 8, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n && i < 8; i++)
		up += hs[i].state == DR_HOST_UP;
	return up;
}

void hosts_wait(struct host **hs, int n, int want, double timeout_s)
{
	uint64_t t0 = now_ns();

	for (int i = 0; i < n;) {
		if (hosts_up(hs[i]) == want) {
			i++;
			continue;
		}
		if (now_ns() - t0 > (uint64_t)(timeout_s * 1e9)) {
			char why[96];

			snprintf(why, sizeof(why), "host %s does not see %d hosts up within %.0f s "
				 "(see the bridges' logs)", hs[i]->id, want, timeout_s);
			die("bridges", why);
		}
		usleep(1000);
	}
}

void host_fini(struct host *h, bool verbose)
{
	if (h->bridge > 0) {
		kill(h->bridge, SIGTERM);
		waitpid(h->bridge, NULL, 0);
		h->bridge = 0;
	}
	/* The bridge's counters, from its stop line. */
	FILE *f = verbose ? fopen(h->log, "r") : NULL;
	char line[512];

	while (f && fgets(line, sizeof(line), f)) {
		const char *stop = strstr(line, "stopping: ");

		if (stop)
			printf("bridge %s %s", h->id, stop + 10);
	}
	if (f)
		fclose(f);
	dr_close(h->r);
	dr_unlink(h->seg);
	host_forget(h);
	if (keep_logs)
		fprintf(verbose ? stdout : stderr, "bridge %s log: %s\n", h->id, h->log);
	else
		unlink(h->log);
}

/* ---------------------------------------------------------------------- */
/* Workers */

dr_mailbox *mailbox_on(const char *seg, const char *who)
{
	struct dr_options o = { .segment = seg };
	dr_registry *r;
	dr_mailbox *mb;
	int rc = dr_open(&o, &r);

	if (!rc)
		rc = dr_mailbox_open(r, &mb);
	if (rc)
		die(who, dr_strerror(rc));
	return mb;
}

/* -EAGAIN: the lane to the caller (the bridge, for a remote call, which a
 * factory's own restarts fill too) is full: try again for up to 1 s, or
 * the answer, and with it the caller's whole batch, is lost. */
void echo(dr_mailbox *mb, const struct dr_msg *m)
{
	for (int t = 0; t < 1000 && dr_reply(mb, m, m->data, m->len) == -EAGAIN; t++)
		usleep(1000);
}

void echo_worker(void *arg)
{
	struct wargs *w = arg;
	dr_mailbox *mb = mailbox_on(w->seg, "worker");
	struct dr_msg m;
	int rc = w->global ? dr_serve_global(mb, w->name, NULL, 0) : dr_serve(mb, w->name, NULL, 0);

	if (rc)
		die("worker", dr_strerror(rc));
	for (;;) {
		if (dr_recv(mb, &m, -1))
			continue;
		if (m.kind == DR_MSG_CALL)
			echo(mb, &m);
	}
}

/* Serves every worker it is asked to start from its own mailbox, echoes
 * their calls, and moves those whose owner changed (shouldrestart) to
 * their new owner. */
void factory(void *arg)
{
	const struct host *h = arg;
	dr_mailbox *mb = mailbox_on(h->seg, "factory");
	struct dr_start_req sr;
	struct dr_msg m;
	int rc = dr_factory_serve(mb, "echo");

	if (rc)
		die("factory", dr_strerror(rc));
	for (;;) {
		if (dr_recv(mb, &m, -1))
			continue;
		rc = dr_start_request(mb, &m, &sr);
		if (rc == 0)
			dr_start_answer(mb, &m, dr_serve_global_bin(mb, sr.name, sr.name_len, NULL, 0),
					NULL);
		else if (rc == -EEXIST)
			dr_start_answer(mb, &m, -EEXIST, NULL);
		else if (rc == -EBADMSG)
			dr_reply_error(mb, &m, -EBADMSG);
		else if (m.kind == DR_MSG_SYSTEM)
			dr_restart_moved_async(mb, &m, "echo", NULL, 0, 10000);
		else if (m.kind == DR_MSG_REPLY)
			dr_restart_moved_finish(mb, &m, NULL);
		else if (m.kind == DR_MSG_CALL)
			echo(mb, &m);
	}
}

/* ---------------------------------------------------------------------- */
/* Global workers: starts and the census */

char gw_prefix[8] = "gw0.";

void gw_name(char *buf, size_t len, size_t k)
{
	snprintf(buf, len, "%.15s%zu", gw_prefix, k % 100000000);
}

struct starter {
	const struct host *h;
	size_t from, to;
	unsigned depth;
};

/* depth starts in flight from one mailbox; every answer must be a start. */
static void start_window(const struct starter *st, dr_registry *r)
{
	dr_mailbox *mb;
	size_t next = st->from, done = st->from;
	unsigned inflight = 0;
	int rc = dr_mailbox_open(r, &mb);

	if (rc)
		die("starter", dr_strerror(rc));
	while (done < st->to) {
		struct dr_msg m;
		uint64_t id;

		while (inflight < st->depth && next < st->to) {
			char name[32];

			gw_name(name, sizeof(name), next);
			rc = dr_start_async(mb, name, "echo", NULL, 0, 10000, NULL, &id);
			if (rc == -EAGAIN)
				break;
			if (rc == 1) {          /* served here already */
				next++;
				done++;
				continue;
			}
			if (rc)
				die(name, dr_strerror(rc));
			next++;
			inflight++;
		}
		if (!inflight) { /* -EAGAIN with none out: no room at the bridge yet */
			usleep(1000);
			continue;
		}
		if (dr_recv(mb, &m, 15000))
			die("starter", "no answer to a start within 15 s");
		if (m.kind != DR_MSG_REPLY)
			continue;
		rc = dr_start_finish(mb, &m, NULL);
		if (rc)
			die("start", dr_strerror(rc));
		inflight--;
		done++;
	}
	dr_mailbox_close(mb);
}

static void starter(void *arg)
{
	const struct starter *st = arg;
	struct dr_options o = { .segment = st->h->seg };
	dr_registry *r;
	int rc = dr_open(&o, &r);

	if (rc)
		die("starter", dr_strerror(rc));
	if (st->depth > 1) {
		start_window(st, r);
	} else {
		for (size_t k = st->from; k < st->to; k++) {
			char name[32];

			gw_name(name, sizeof(name), k);
			rc = dr_start(r, name, "echo", NULL, 0, NULL, 10000);
			if (rc)
				die(name, dr_strerror(rc));
		}
	}
	dr_close(r);
}

double starts(struct host **hs, int nh, size_t from, size_t to, unsigned depth)
{
	struct starter st[8];
	pid_t pids[8];
	uint64_t t0 = now_ns();
	int status;

	for (int i = 0; i < nh && i < 8; i++) {
		st[i] = (struct starter){ hs[i], from + (to - from) * (size_t)i / (size_t)nh,
					  from + (to - from) * (size_t)(i + 1) / (size_t)nh,
					  depth };
		pids[i] = fork_child(starter, &st[i]);
	}
	for (int i = 0; i < nh && i < 8; i++)
		if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			die("starts", "a starter failed (see above)");
	return (double)(to - from) / ((double)(now_ns() - t0) / 1e9);
}

/* Which of the n workers each host's segment serves: served[i][k]. */
struct census {
	size_t n;
	unsigned char *served;
	int host;
};

static int census_fn(const struct dr_name_info *in, void *arg)
{
	struct census *c = arg;
	char buf[32];
	unsigned long k;
	size_t pl = strlen(gw_prefix);

	if (!in->global || in->name_len <= pl || in->name_len >= sizeof(buf) + pl ||
	    memcmp(in->name, gw_prefix, pl) != 0)
		return 0;
	memcpy(buf, in->name + pl, in->name_len - pl);
	buf[in->name_len - pl] = 0;
	k = strtoul(buf, NULL, 10);
	if (k < c->n)
		c->served[(size_t)c->host * c->n + k] = 1;
	return 0;
}

size_t misplaced(struct host **hs, int nh, const int *owner, size_t n, unsigned char *served)
{
	struct census c = { n, served, 0 };
	size_t bad = 0;

	memset(served, 0, (size_t)nh * n);
	for (c.host = 0; c.host < nh; c.host++)
		dr_foreach(hs[c.host]->r, census_fn, &c);
	for (size_t k = 0; k < n; k++) {
		int copies = 0;

		for (int i = 0; i < nh; i++)
			copies += served[(size_t)i * n + k];
		bad += copies != 1 || !served[(size_t)owner[k] * n + k];
	}
	return bad;
}

int owner_index(dr_registry *r, struct host **hs, int nh, const char *name)
{
	char host[DR_HOST_MAX + 1];

	if (dr_owner(r, name, host, sizeof(host)) != 0)
		die("dr_owner", name);
	for (int i = 0; i < nh; i++)
		if (strcmp(hs[i]->id, host) == 0)
			return i;
	die("dr_owner", "a host that is not ours");
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Calls */

static int call_once(dr_registry *r, const char *name, bool global, const char *req,
		     size_t msg)
{
	char rep[64];
	size_t len = sizeof(rep);

	return global ? dr_call_global(r, name, req, msg, rep, &len, 5000)
		      : dr_call(r, name, req, msg, rep, &len, 5000);
}

void calls_sync(dr_registry *r, const char *name, bool global, int expect, size_t msg,
		double seconds, uint64_t *lat, size_t max, size_t *n, uint64_t *elapsed_ns)
{
	char req[64] = "ping";
	uint64_t t0, end;
	int rc;

	*n = 0;
	if (msg > sizeof(req))
		msg = sizeof(req);
	for (int i = 0; i < 20; i++) /* warm: lanes claimed, connections up */
		if ((rc = call_once(r, name, global, req, msg)) != expect)
			die(name, dr_strerror(rc));
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	while (*n < max) {
		uint64_t a = now_ns();

		if ((rc = call_once(r, name, global, req, msg)) != expect)
			die(name, dr_strerror(rc));
		lat[(*n)++] = now_ns() - a;
		if (a + lat[*n - 1] >= end)
			break;
	}
	*elapsed_ns = now_ns() - t0;
}

void calls_async(dr_registry *r, const char *name, unsigned depth, size_t msg, double seconds,
		 uint64_t *lat, size_t max, size_t *n, uint64_t *elapsed_ns)
{
	char req[64] = "ping";
	uint64_t *sent = calloc(depth * 4 + 1, sizeof(*sent)), t0, end;
	uint64_t *ids = calloc(depth * 4 + 1, sizeof(*ids));
	dr_mailbox *mb;
	size_t inflight = 0;

	*n = 0;
	if (msg > sizeof(req))
		msg = sizeof(req);
	if (!sent || !ids || dr_mailbox_open(r, &mb))
		die("async calls", "setup");
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	for (;;) {
		struct dr_msg m;
		uint64_t now = now_ns();

		while (inflight < depth && now < end) {
			uint64_t id;
			int rc = dr_call_async_global(mb, name, req, msg, 10000, &id);

			if (rc == -EAGAIN)
				break;
			if (rc)
				die("dr_call_async_global", dr_strerror(rc));
			ids[id % (depth * 4)] = id;
			sent[id % (depth * 4)] = now;
			inflight++;
		}
		if (!inflight)
			break;
		if (dr_recv(mb, &m, 10000))
			die("dr_call_async_global", "no reply in 10 s");
		if (m.kind != DR_MSG_REPLY)
			continue;
		if (m.status)
			die("dr_call_async_global", dr_strerror(m.status));
		inflight--;
		if (*n < max && ids[m.call_id % (depth * 4)] == m.call_id)
			lat[(*n)++] = now_ns() - sent[m.call_id % (depth * 4)];
	}
	*elapsed_ns = now_ns() - t0;
	dr_mailbox_close(mb);
	free(sent);
	free(ids);
}

/* ---------------------------------------------------------------------- */
/* nanomsg alone */

void nn_cooked_server(void *url)
{
	nn_echo_server(url);
}

void nn_cooked_run(const char *url, size_t msg, double seconds, uint64_t *lat, size_t max,
		   size_t *n, uint64_t *elapsed_ns)
{
	int s = nn_socket(AF_SP, NN_REQ);
	char req[64] = "ping", rep[64];
	uint64_t t0, end;

	*n = 0;
	if (msg > sizeof(req))
		msg = sizeof(req);
	if (s < 0 || nn_connect(s, url) < 0)
		die("nn_connect", nn_strerror(nn_errno()));
	for (int i = 0; i < 20; i++)
		if (nn_send(s, req, msg, 0) < 0 || nn_recv(s, rep, sizeof(rep), 0) < 0)
			die("nanomsg", nn_strerror(nn_errno()));
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	while (*n < max) {
		uint64_t a = now_ns();

		if (nn_send(s, req, msg, 0) < 0 || nn_recv(s, rep, sizeof(rep), 0) < 0)
			die("nanomsg", nn_strerror(nn_errno()));
		lat[(*n)++] = now_ns() - a;
		if (a + lat[*n - 1] >= end)
			break;
	}
	*elapsed_ns = now_ns() - t0;
	nn_close(s);
}

/* Raw REP: echoes every request with its backtrace. */
void nn_raw_server(void *url)
{
	int s = nn_socket(AF_SP_RAW, NN_REP);

	if (s < 0 || nn_bind(s, url) < 0)
		die("nn_bind raw", nn_strerror(nn_errno()));
	for (;;) {
		char buf[256], ctl[256];
		struct nn_iovec iov = { buf, sizeof(buf) };
		struct nn_msghdr h = { &iov, 1, ctl, sizeof(ctl) };
		int n = nn_recvmsg(s, &h, 0);
		struct nn_cmsghdr *cm = NN_CMSG_FIRSTHDR(&h);

		if (n < 0 || !cm)
			continue;
		iov.iov_len = (size_t)n;
		h.msg_controllen = cm->cmsg_len;
		nn_sendmsg(s, &h, 0);
	}
}

/* Raw REQ with depth requests in flight, one per message; the request id
 * (high bit set) is ours, at the head of the body. */
void nn_raw_run(const char *url, size_t msg, unsigned depth, double seconds, uint64_t *lat,
		size_t max, size_t *n, uint64_t *elapsed_ns)
{
	int s = nn_socket(AF_SP_RAW, NN_REQ), timeout = 2000;
	uint64_t t0, end, *sent = calloc(depth * 4, sizeof(*sent));
	size_t inflight = 0;
	uint32_t next = 0;

	*n = 0;
	if (msg > 60)
		msg = 60;
	if (s < 0 || !sent || nn_connect(s, url) < 0)
		die("nn_connect raw", nn_strerror(nn_errno()));
	nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof(timeout));
	usleep(200000);
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	for (;;) {
		unsigned char buf[64], rep[64];
		uint64_t now = now_ns();
		char ctl[64];
		struct nn_iovec iov = { rep, sizeof(rep) };
		struct nn_msghdr h = { &iov, 1, ctl, sizeof(ctl) };
		struct nn_cmsghdr *cm;

		while (inflight < depth && now < end) {
			uint32_t id = 0x80000000u | (next++ & 0x7fffffffu);

			buf[0] = (unsigned char)(id >> 24);
			buf[1] = (unsigned char)(id >> 16);
			buf[2] = (unsigned char)(id >> 8);
			buf[3] = (unsigned char)id;
			memset(buf + 4, 'p', msg);
			if (nn_send(s, buf, 4 + msg, 0) < 0)
				die("raw send", nn_strerror(nn_errno()));
			sent[id % (depth * 4)] = now;
			inflight++;
		}
		if (!inflight)
			break;
		if (nn_recvmsg(s, &h, 0) < 0) {
			/* A lost reply (raw REP drops when its pipe is full):
			 * count it out. */
			inflight = 0;
			continue;
		}
		cm = NN_CMSG_FIRSTHDR(&h);
		inflight--;
		if (cm && *n < max) {
			const unsigned char *d = NN_CMSG_DATA(cm) + sizeof(size_t);
			uint32_t id = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 |
				      (uint32_t)d[2] << 8 | d[3];

			lat[(*n)++] = now_ns() - sent[id % (depth * 4)];
		}
	}
	*elapsed_ns = now_ns() - t0;
	nn_close(s);
	free(sent);
}
