/*
 * sys_etcd.c - the etcd runner of the cluster benchmark: the same scenarios
 * as the distreg and Erlang runners (register, lookup, call, failure, join),
 * printed as CONTRACT.md says, against a three-member etcd cluster this
 * program starts on loopback and removes again.
 *
 *   sys_etcd [--short] [--names N] [--etcd PATH]
 *
 * The registry is the etcd usage of service discovery: a worker's name is
 * the key /workers/NAME, its value the worker's nanomsg address, attached
 * to a lease the worker keeps alive (every TTL/3, as clientv3 does); the
 * name goes away when the lease expires. The client is etcd's gRPC gateway
 * (HTTP/1.1 + JSON) through libcurl, one kept-alive connection per client.
 *
 * Members: ports picked free at run time, data in a mkdtemp directory,
 * a cluster token of our own; they die with us (PR_SET_PDEATHSIG) and are
 * stopped (SIGTERM, then SIGKILL) and their directory removed at exit,
 * on a fatal error and on SIGINT/SIGTERM/SIGHUP.
 *
 * Only the lines of CONTRACT.md go to stdout; progress goes to stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* memmem, pipe2; meson defines it for the project */
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <linux/magic.h>
#include <sys/socket.h>
#include <sys/statfs.h>
#include <time.h>

#include <curl/curl.h>
#include <nanomsg/nn.h>
#include <nanomsg/reqrep.h>

#include "../proc.h"

const char *bench_prog = "sys_etcd";

#define NMEMB 4		/* three, and the fourth that joins */
#define HEARTBEAT_MS 100	/* etcd's defaults, the documented LAN values */
#define ELECTION_MS 1000
#define TTL_REG 60	/* s: the register's leases, clientv3 concurrency's default
			 * session TTL: 10 k names take a minute or more here, each
			 * lease kept alive every TTL/3 meanwhile (on the clock) */
#define TTL_PROD 10	/* s: a worker's lease in call and failure, a common
			 * service-discovery value */
#define TTL_DOWN 3	/* s: distreg's down-after, for equal false-positive risk */
#define MSG 16
#define INFLIGHT 64

struct member {
	char name[8], url[40], peer[40];
	pid_t pid;
	uint64_t id;
};

static struct member mb[NMEMB];
static char etcd_bin[PATH_MAX], tmpdir[256], token[64], cluster_arg[256];
static pid_t main_pid, kids[32];
static int nkids;
static bool short_run;
static int nnames = 10000;

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static uint64_t t_start;

/* What runs now and since when, on stderr. */
static void progress(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sys_etcd: %6.1f s: ", (double)(now_ns() - t_start) / 1e9);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void row(const char *config, const char *scenario, const char *metric, double v,
		const char *unit)
{
	printf("etcd,%s,%s,%s,%.*f,%s\n", config, scenario, metric, v >= 1000 ? 0 : 1, v, unit);
	fflush(stdout);
}

static void note(const char *fmt, ...)
{
	va_list ap;

	printf("#note,etcd,");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* p50, p99 and the rate of n latencies over elapsed ns. */
static void rows_lat(const char *config, const char *scenario, const char *rate, uint64_t *lat,
		     size_t n, uint64_t elapsed)
{
	const char *unit = strcmp(scenario, "call") ? "ops/s" : "calls/s";

	qsort(lat, n, sizeof(*lat), cmp_u64);
	row(config, scenario, "p50_us", n ? (double)lat[n / 2] / 1e3 : 0, "us");
	row(config, scenario, "p99_us", n ? (double)lat[n * 99 / 100] / 1e3 : 0, "us");
	row(config, scenario, rate, (double)n / ((double)elapsed / 1e9), unit);
}

/* ---------------------------------------------------------------------- */
/* Cleanup: members, worker processes, the directory */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	remove(path);
	return 0;
}

static void reap_all(int sig, int ms)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000;

	for (int i = 0; i < NMEMB; i++)
		if (mb[i].pid > 0)
			kill(mb[i].pid, sig);
	for (int i = 0; i < NMEMB; i++)
		while (mb[i].pid > 0) {
			if (waitpid(mb[i].pid, NULL, WNOHANG) != 0)
				mb[i].pid = 0;
			else if (now_ns() > end)
				break;
			else
				sleep_ms(10);
		}
}

/* At exit, on die() and on a signal; only in the main process (workers
 * are forks of it and exit through die() too). Not async-signal-safe in
 * the letter (nftw), but we are on our way out. Once: a thread that dies
 * meanwhile (its member stopped under it) waits here, so that its exit()
 * does not end the process before the members are stopped and the
 * directory is gone. */
static void cleanup(void)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	sigset_t all;

	if (getpid() != main_pid)
		return;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	if (pthread_mutex_trylock(&once))
		for (;;)
			pause();
	for (int i = 0; i < nkids; i++)
		if (kids[i] > 0) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
		}
	reap_all(SIGTERM, 3000);
	reap_all(SIGKILL, 2000);
	if (tmpdir[0])
		nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* ---------------------------------------------------------------------- */
/* Base64 and just enough JSON */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* out: at least 4 * ((n + 2) / 3) + 1 bytes. */
static void b64_enc(const char *in, size_t n, char *out)
{
	const unsigned char *s = (const unsigned char *)in;
	size_t i;

	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];

		*out++ = b64[v >> 18];
		*out++ = b64[v >> 12 & 63];
		*out++ = b64[v >> 6 & 63];
		*out++ = b64[v & 63];
	}
	if (i < n) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0);

		*out++ = b64[v >> 18];
		*out++ = b64[v >> 12 & 63];
		*out++ = i + 1 < n ? b64[v >> 6 & 63] : '=';
		*out++ = '=';
	}
	*out = 0;
}

/* Decoded length, or -1 for what is not base64 or does not fit. */
static int b64_dec(const char *in, char *out, size_t cap)
{
	uint32_t v = 0;
	size_t n = 0;
	int bits = 0;

	for (; *in && *in != '='; in++) {
		const char *p = strchr(b64, *in);

		if (!p || !*in)
			return -1;
		v = v << 6 | (uint32_t)(p - b64);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n + 1 >= cap)
				return -1;
			out[n++] = (char)(v >> bits & 0xff);
		}
	}
	out[n] = 0;
	return (int)n;
}

/*
 * The first "key": value in js, a string (unquoted) or a number, into out.
 * Good enough for etcd's answers: the names we ask for occur once (the
 * header's fields are member_id, revision... never "ID", "count" or
 * "value"), and strings are base64 or decimal, without escapes.
 */
static int json_get(const char *js, const char *key, char *out, size_t cap)
{
	char pat[48];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = js ? strstr(js, pat) : NULL;
	if (!p)
		return -1;
	for (p += strlen(pat); *p == ' '; p++)
		;
	if (*p == '"') {
		for (p++; *p && *p != '"'; p++) {
			if (n + 1 >= cap)
				return -1;
			out[n++] = *p;
		}
		if (*p != '"')
			return -1;
	} else {
		for (; *p && strchr("-0123456789truefals", *p); p++) {
			if (n + 1 >= cap)
				return -1;
			out[n++] = *p;
		}
	}
	out[n] = 0;
	return (int)n;
}

/* A decimal field; proto3's JSON leaves out zeros, so absent is 0. */
static uint64_t json_u64(const char *js, const char *key)
{
	char v[32];

	return json_get(js, key, v, sizeof(v)) > 0 ? strtoull(v, NULL, 10) : 0;
}

/* ---------------------------------------------------------------------- */
/* A client: one curl handle, one kept-alive connection to one member */

struct buf {
	char *p;
	size_t len, cap;
};

struct client {
	CURL *h;
	char base[48];
	struct curl_slist *hdr;
	struct buf r;
};

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
	struct buf *b = arg;
	size_t k = sz * n;

	if (b->len + k + 1 > b->cap) {
		size_t cap = (b->len + k + 1) * 2;
		char *q = realloc(b->p, cap);

		if (!q)
			return 0; /* curl fails the transfer */
		b->p = q;
		b->cap = cap;
	}
	memcpy(b->p + b->len, p, k);
	b->len += k;
	b->p[b->len] = 0;
	return k;
}

static void client_open(struct client *c, const struct member *m)
{
	memset(c, 0, sizeof(*c));
	c->h = curl_easy_init();
	c->r.cap = 4096;
	c->r.p = malloc(c->r.cap);
	c->hdr = curl_slist_append(NULL, "Content-Type: application/json");
	if (c->hdr)
		c->hdr = curl_slist_append(c->hdr, "Expect:");
	if (!c->h || !c->r.p || !c->hdr)
		die("client", "out of memory");
	c->r.p[0] = 0;
	snprintf(c->base, sizeof(c->base), "%s", m->url);
	curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdr);
	curl_easy_setopt(c->h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c->h, CURLOPT_WRITEDATA, &c->r);
	curl_easy_setopt(c->h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c->h, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, 2000L);
	curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, 10000L);
}

static void client_close(struct client *c)
{
	curl_easy_cleanup(c->h);
	curl_slist_free_all(c->hdr);
	free(c->r.p);
	memset(c, 0, sizeof(*c));
}

/* POST body to path: 0 when etcd answered 200 with a header and no error
 * (the answer is in c->r.p), -1 otherwise. */
static int post(struct client *c, const char *path, const char *body)
{
	char url[96];
	long code = 0;

	snprintf(url, sizeof(url), "%s%s", c->base, path);
	c->r.len = 0;
	c->r.p[0] = 0;
	curl_easy_setopt(c->h, CURLOPT_URL, url);
	curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(c->h) != CURLE_OK)
		return -1;
	curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &code);
	if (code != 200 || !strstr(c->r.p, "\"header\"") || strstr(c->r.p, "\"error\""))
		return -1;
	return 0;
}

static void must(struct client *c, const char *path, const char *body)
{
	if (post(c, path, body))
		die(path, c->r.p[0] ? c->r.p : "no answer");
}

static uint64_t lease_grant(struct client *c, int ttl)
{
	char body[64];
	uint64_t id;

	snprintf(body, sizeof(body), "{\"TTL\":%d}", ttl);
	must(c, "/v3/lease/grant", body);
	id = json_u64(c->r.p, "ID");
	if (!id || !json_u64(c->r.p, "TTL"))
		die("lease grant", c->r.p);
	return id;
}

/* The TTL etcd still gives the lease after a keepalive: 0 when it is gone. */
static int64_t lease_keepalive(struct client *c, uint64_t id)
{
	char body[64];

	snprintf(body, sizeof(body), "{\"ID\":\"%llu\"}", (unsigned long long)id);
	if (post(c, "/v3/lease/keepalive", body) || json_u64(c->r.p, "ID") != id)
		return -1;
	return (int64_t)json_u64(c->r.p, "TTL");
}

/* A lease that expired already is revoked too. */
static void lease_revoke(struct client *c, uint64_t id)
{
	char body[64];

	snprintf(body, sizeof(body), "{\"ID\":\"%llu\"}", (unsigned long long)id);
	if (post(c, "/v3/lease/revoke", body) && !strstr(c->r.p, "lease not found"))
		die("/v3/lease/revoke", c->r.p[0] ? c->r.p : "no answer");
}

static void kv_put(struct client *c, const char *key, const char *val, uint64_t lease)
{
	char body[512], k[128], v[128];

	b64_enc(key, strlen(key), k);
	b64_enc(val, strlen(val), v);
	snprintf(body, sizeof(body), "{\"key\":\"%s\",\"value\":\"%s\",\"lease\":\"%llu\"}", k, v,
		 (unsigned long long)lease);
	must(c, "/v3/kv/put", body);
}

/* Get key: how many (0 or 1), its value into val; serializable: the
 * member's own copy, else a linearizable read (a read index from the
 * leader). Sets *rev to the store's revision if rev. */
static int kv_get(struct client *c, const char *key, bool serializable, char *val, size_t cap,
		  uint64_t *rev)
{
	char body[256], k[128], v[128];
	uint64_t n;

	b64_enc(key, strlen(key), k);
	snprintf(body, sizeof(body), "{\"key\":\"%s\"%s}", k,
		 serializable ? ",\"serializable\":true" : "");
	must(c, "/v3/kv/range", body);
	n = json_u64(c->r.p, "count");
	if (rev)
		*rev = json_u64(c->r.p, "revision");
	if (n > 1 || (n == 1 && (!strstr(c->r.p, "\"kvs\"") ||
				 json_get(c->r.p, "value", v, sizeof(v)) < 0 || b64_dec(v, val, cap) < 0)))
		die("range: an answer that is not one key and its value", c->r.p);
	return (int)n;
}

/* The body of a request on every key under prefix (a prefix whose last
 * byte is < 0xff), with more (",..." or "") before its closing brace. */
static void prefix_body(char *body, size_t size, const char *prefix, const char *more)
{
	char k[128], e[128], end[64];
	size_t n = strlen(prefix);

	memcpy(end, prefix, n + 1);
	end[n - 1]++;
	b64_enc(prefix, n, k);
	b64_enc(end, n, e);
	snprintf(body, size, "{\"key\":\"%s\",\"range_end\":\"%s\"%s}", k, e, more);
}

/* How many keys under prefix. */
static uint64_t kv_count(struct client *c, const char *prefix, bool serializable)
{
	char body[512];

	prefix_body(body, sizeof(body), prefix,
		    serializable ? ",\"count_only\":true,\"serializable\":true" : ",\"count_only\":true");
	must(c, "/v3/kv/range", body);
	return json_u64(c->r.p, "count");
}

static void kv_delete_prefix(struct client *c, const char *prefix)
{
	char body[512];

	prefix_body(body, sizeof(body), prefix, "");
	must(c, "/v3/kv/deleterange", body);
}

/* The member's own ID and its leader's: 0 when it does not answer. */
static int member_status(struct client *c, uint64_t *self, uint64_t *leader)
{
	if (post(c, "/v3/maintenance/status", "{}"))
		return -1;
	*self = json_u64(c->r.p, "member_id");
	*leader = json_u64(c->r.p, "leader");
	return *self ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* The cluster */

static void member_spawn(struct member *m, const char *state)
{
	char dir[320], log[320], hb[16], el[16];
	const char *argv[] = { etcd_bin, "--name", m->name, "--data-dir", dir,
			       "--listen-client-urls", m->url, "--advertise-client-urls", m->url,
			       "--listen-peer-urls", m->peer, "--initial-advertise-peer-urls", m->peer,
			       "--initial-cluster", cluster_arg, "--initial-cluster-token", token,
			       "--initial-cluster-state", state, "--heartbeat-interval", hb,
			       "--election-timeout", el, "--logger", "zap", "--log-outputs", "stderr",
			       NULL };
	pid_t pid;

	snprintf(dir, sizeof(dir), "%s/%s", tmpdir, m->name);
	snprintf(log, sizeof(log), "%s/%s.log", tmpdir, m->name);
	snprintf(hb, sizeof(hb), "%d", HEARTBEAT_MS);
	snprintf(el, sizeof(el), "%d", ELECTION_MS);
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		die("fork", strerror(errno));
	if (pid == 0) {
		/* Only async-signal-safe calls: the parent may have threads. */
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0600), nul = open("/dev/null", O_RDONLY);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != main_pid || fd < 0 || nul < 0)
			_exit(127);
		dup2(nul, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execv(etcd_bin, (char *const *)argv);
		_exit(127);
	}
	m->pid = pid;
}

/* Every live member of the first n answers, all name the same leader, and
 * a write through member 0 reads back linearizably from every one. -1 when
 * a member exited (a port taken, say) or after timeout_ms. */
static int cluster_up(int n, int timeout_ms)
{
	uint64_t end = now_ns() + (uint64_t)timeout_ms * 1000000;
	struct client c[NMEMB];
	int rc = -1;

	for (int i = 0; i < n; i++)
		client_open(&c[i], &mb[i]);
	while (now_ns() < end) {
		uint64_t leader = 0, self, l;
		int ok = 0;
		char v[64];

		for (int i = 0; i < n; i++) {
			if (mb[i].pid > 0 && waitpid(mb[i].pid, NULL, WNOHANG) != 0) {
				mb[i].pid = 0;
				goto out;
			}
			if (member_status(&c[i], &self, &l) == 0 && l && (!leader || l == leader)) {
				mb[i].id = self;
				leader = l;
				ok++;
			}
		}
		if (ok == n && post(&c[0], "/v3/kv/put", "{\"key\":\"L2hlYWx0aA==\",\"value\":\"dXA=\"}") == 0) {
			for (ok = 0; ok < n; ok++)
				if (kv_get(&c[ok], "/health", false, v, sizeof(v), NULL) != 1)
					break;
			if (ok == n) {
				rc = 0;
				break;
			}
		}
		sleep_ms(50);
	}
out:
	for (int i = 0; i < n; i++)
		client_close(&c[i]);
	return rc;
}

static void log_tails(void)
{
	for (int i = 0; i < NMEMB; i++) {
		char cmd[400];

		snprintf(cmd, sizeof(cmd), "tail -n 5 %s/%.7s.log >&2 2>/dev/null", tmpdir, mb[i].name);
		if (system(cmd))
			continue;
	}
}

/* Three members on free ports: bound all at once so no two are the same,
 * then freed for etcd; a port someone takes in between makes its member
 * exit, and the whole start is tried again on other ports. */
static void cluster_start(void)
{
	for (int attempt = 0; attempt < 3; attempt++) {
		int s[6], port[6];
		size_t len = 0;

		for (int i = 0; i < 6; i++) {
			struct sockaddr_in a = { .sin_family = AF_INET,
						 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
			socklen_t alen = sizeof(a);

			s[i] = socket(AF_INET, SOCK_STREAM, 0);
			if (s[i] < 0 || bind(s[i], (struct sockaddr *)&a, sizeof(a)) < 0 ||
			    getsockname(s[i], (struct sockaddr *)&a, &alen) < 0)
				die("a free port", strerror(errno));
			port[i] = ntohs(a.sin_port);
		}
		for (int i = 0; i < 6; i++)
			close(s[i]);
		snprintf(token, sizeof(token), "sys-etcd-%d-%d-%ld", (int)main_pid, attempt,
			 (long)time(NULL));
		for (int i = 0; i < 3; i++) {
			struct member *m = &mb[i];

			snprintf(m->name, sizeof(m->name), "m%d", i);
			snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", port[2 * i]);
			snprintf(m->peer, sizeof(m->peer), "http://127.0.0.1:%d", port[2 * i + 1]);
			len += (size_t)snprintf(cluster_arg + len, sizeof(cluster_arg) - len, "%s%s=%s",
						i ? "," : "", m->name, m->peer);
		}
		for (int i = 0; i < 3; i++)
			member_spawn(&mb[i], "new");
		if (cluster_up(3, 30000) == 0)
			return;
		progress("cluster start %d failed; the members' logs end:\n", attempt);
		log_tails();
		reap_all(SIGKILL, 2000);
		for (int i = 0; i < 3; i++) {
			char dir[320];

			snprintf(dir, sizeof(dir), "%s/%.7s", tmpdir, mb[i].name);
			nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
		}
	}
	die("cluster", "three members did not come up in three tries");
}

/* The index of the leader among the live members, as the first live
 * member that answers sees it; -1 if none does. */
static int leader_index(void)
{
	for (int i = 0; i < NMEMB; i++) {
		struct client c;
		uint64_t self, leader;
		int rc;

		if (mb[i].pid <= 0)
			continue;
		client_open(&c, &mb[i]);
		rc = member_status(&c, &self, &leader);
		client_close(&c);
		if (rc)
			continue;
		for (int j = 0; j < NMEMB; j++)
			if (mb[j].pid > 0 && mb[j].id == leader)
				return j;
	}
	return -1;
}

static int follower_index(void)
{
	int l = leader_index();

	for (int i = 0; i < 3; i++)
		if (i != l && mb[i].pid > 0)
			return i;
	die("cluster", "no follower");
	return -1;
}

/* ---------------------------------------------------------------------- */
/* Workers: processes that bind a REP socket, register their name with a
 * lease and keep it alive, and echo requests */

struct worker {
	int member, ttl, rfd, wfd;
	char key[64], url[64];
	pid_t pid;
};

struct keepalive {
	struct client *c;
	uint64_t lease;
	int ttl, fd;
};

static void *worker_keepalive(void *arg)
{
	struct keepalive *k = arg;

	for (;;) {
		sleep_ms(k->ttl * 1000 / 3);
		if (lease_keepalive(k->c, k->lease) <= 0)
			die("worker", "its lease is gone");
		if (write(k->fd, "k", 1) < 0 && errno != EAGAIN)
			_exit(1);
	}
	return NULL;
}

static void worker_main(void *arg)
{
	struct worker *w = arg;
	struct client c;
	struct keepalive k = { &c, 0, w->ttl, w->wfd };
	int s = nn_socket(AF_SP, NN_REP);
	pthread_t th;
	char buf[64];

	close(w->rfd);
	if (s < 0 || nn_bind(s, w->url) < 0)
		die("worker: nn_bind", nn_strerror(nn_errno()));
	client_open(&c, &mb[w->member]);
	k.lease = lease_grant(&c, w->ttl);
	kv_put(&c, w->key, w->url, k.lease);
	if (write(w->wfd, "r", 1) != 1 || pthread_create(&th, NULL, worker_keepalive, &k))
		die("worker", "start");
	for (;;) {
		int n = nn_recv(s, buf, sizeof(buf), 0);

		if (n < 0 || nn_send(s, buf, (size_t)n, 0) < 0)
			die("worker: echo", nn_strerror(nn_errno()));
	}
}

/* Read one byte the worker writes ('r' registered, 'k' kept alive). */
static int worker_byte(struct worker *w, int timeout_ms)
{
	struct pollfd p = { w->rfd, POLLIN, 0 };
	char b;

	if (poll(&p, 1, timeout_ms) != 1 || read(w->rfd, &b, 1) != 1)
		return -1;
	return b;
}

static void worker_start(struct worker *w, int member, const char *key, int ttl)
{
	int fd[2];

	if (pipe2(fd, O_CLOEXEC))
		die("pipe", strerror(errno));
	fcntl(fd[1], F_SETFL, O_NONBLOCK);
	w->member = member;
	w->ttl = ttl;
	w->rfd = fd[0];
	w->wfd = fd[1];
	snprintf(w->key, sizeof(w->key), "%s", key);
	snprintf(w->url, sizeof(w->url), "tcp://127.0.0.1:%d", free_port());
	fflush(NULL);
	w->pid = fork_child(worker_main, w);
	close(w->wfd);
	for (int i = 0; i <= nkids && i < (int)(sizeof(kids) / sizeof(kids[0])); i++)
		if (i == nkids || !kids[i]) { /* for cleanup(): a free slot */
			kids[i] = w->pid;
			nkids += i == nkids;
			break;
		}
	if (worker_byte(w, 10000) != 'r')
		die(key, "the worker did not register in 10 s");
}

static void worker_stop(struct worker *w)
{
	for (int i = 0; i < nkids; i++)
		if (kids[i] == w->pid)
			kids[i] = 0;
	stop_child(w->pid);
	close(w->rfd);
}

/* ---------------------------------------------------------------------- */
/* Lease keeper of the main process: keeps the register's leases alive while
 * the lookups read their keys */

struct keeper {
	pthread_t th;
	int member, n;
	uint64_t lease[3];
	volatile bool stop;
};

static void *keeper_run(void *arg)
{
	struct keeper *k = arg;
	struct client c;

	client_open(&c, &mb[k->member]);
	while (!k->stop) {
		for (int t = 0; t < TTL_REG * 1000 / 3 / 50 && !k->stop; t++)
			sleep_ms(50);
		for (int i = 0; i < k->n && !k->stop; i++)
			if (lease_keepalive(&c, k->lease[i]) <= 0)
				die("keeper", "a lease is gone");
	}
	client_close(&c);
	return NULL;
}

/* ---------------------------------------------------------------------- */
/* register */

enum job_kind { PUT_LEASE_EACH, PUT_ONE_LEASE, REVOKE };

struct due {
	uint64_t lease, at;
};

struct job {
	pthread_t th;
	enum job_kind kind;
	int member, first, step;
	uint64_t *leases, lease, done, keepalives;
	pthread_barrier_t *go;
	struct due *q; /* the leases it holds, least recently refreshed first */
	size_t qcap, qhead, qlen;
};

static void keep_push(struct job *j, uint64_t lease)
{
	j->q[(j->qhead + j->qlen++) % j->qcap] = (struct due){ lease, now_ns() };
}

/*
 * The register keeps its leases alive as it goes, every TTL/3, as the
 * workers (or the process) would: 10 k names take longer than a TTL here,
 * and a name whose lease expired is not registered. On the clock. Each
 * refresh goes to the back, so the queue stays in time order.
 */
static void keep_due(struct job *j, struct client *c)
{
	uint64_t period = TTL_REG * 1000000000ull / 3;

	while (j->qlen && now_ns() - j->q[j->qhead].at > period) {
		uint64_t lease = j->q[j->qhead].lease;

		j->qhead = (j->qhead + 1) % j->qcap;
		j->qlen--;
		if (lease_keepalive(c, lease) <= 0)
			die("register", "a lease expired while the names went in");
		j->keepalives++;
		keep_push(j, lease);
	}
}

static void name_key(int i, char *key, size_t cap)
{
	snprintf(key, cap, "/workers/w%07d", i);
}

/* A worker's address as its value: where it would listen. */
static void name_addr(int i, char *addr, size_t cap)
{
	snprintf(addr, cap, "tcp://127.0.0.1:%d", 10000 + i % 50000);
}

static void *job_run(void *arg)
{
	struct job *j = arg;
	struct client c;
	uint64_t self, leader;

	j->qcap = (size_t)(nnames / j->step) + 2;
	j->q = malloc(j->qcap * sizeof(*j->q));
	if (!j->q)
		die("register", "out of memory");
	client_open(&c, &mb[j->member]);
	if (member_status(&c, &self, &leader)) /* connected before the clock */
		die("register", "a member does not answer");
	pthread_barrier_wait(j->go);
	if (j->kind == PUT_ONE_LEASE) {
		j->lease = lease_grant(&c, TTL_REG);
		keep_push(j, j->lease);
	}
	for (int i = j->first; i < nnames; i += j->step) {
		char key[64], addr[64];

		if (j->kind == REVOKE) {
			lease_revoke(&c, j->leases[i]);
			continue;
		}
		keep_due(j, &c);
		name_key(i, key, sizeof(key));
		name_addr(i, addr, sizeof(addr));
		if (j->kind == PUT_LEASE_EACH) {
			j->leases[i] = lease_grant(&c, TTL_REG);
			keep_push(j, j->leases[i]);
		}
		kv_put(&c, key, addr, j->kind == PUT_LEASE_EACH ? j->leases[i] : j->lease);
	}
	j->done = now_ns();
	client_close(&c);
	free(j->q);
	return NULL;
}

/* Run kind over the names from the members in on[0..hosts), the names
 * dealt round robin; the wall clock from the start of all to the last end. */
static uint64_t run_jobs(enum job_kind kind, const int *on, int hosts, uint64_t *leases,
			 struct job *jobs)
{
	pthread_barrier_t go;
	uint64_t t0, last = 0;

	pthread_barrier_init(&go, NULL, (unsigned)hosts + 1);
	for (int h = 0; h < hosts; h++) {
		jobs[h] = (struct job){ .kind = kind, .member = on[h], .first = h, .step = hosts,
					.leases = leases, .go = &go };
		if (pthread_create(&jobs[h].th, NULL, job_run, &jobs[h]))
			die("register", "pthread_create");
	}
	pthread_barrier_wait(&go);
	t0 = now_ns();
	for (int h = 0; h < hosts; h++) {
		pthread_join(jobs[h].th, NULL);
		if (jobs[h].done > last)
			last = jobs[h].done;
	}
	pthread_barrier_destroy(&go);
	return last - t0;
}

/* One register config; keep: leave the names (and start a keeper for their
 * leases) for the lookups, else remove them, off the clock. */
static void bench_register(const char *config, enum job_kind kind, int hosts, struct keeper *keep)
{
	int on[3] = { follower_index(), 0, 0 };
	uint64_t *leases = calloc((size_t)nnames, sizeof(*leases)), el, n, ka = 0;
	struct job jobs[3];
	struct client c;

	if (!leases)
		die("register", "out of memory");
	for (int h = 0; h < 3; h++)
		on[h] = hosts == 1 ? on[0] : h;
	progress("register: %s\n", config);
	el = run_jobs(kind, on, hosts, leases, jobs);
	row(config, "register", "names_per_s", nnames / ((double)el / 1e9), "names/s");
	for (int h = 0; h < hosts; h++)
		ka += jobs[h].keepalives;
	if (ka)
		note("register %s: longer than TTL/3: %llu lease keepalives sent meanwhile (timed)",
		     config, (unsigned long long)ka);
	client_open(&c, &mb[on[0]]);
	n = kv_count(&c, "/workers/", false);
	if (n != (uint64_t)nnames)
		note("register %s: %llu of %d names there at the end", config,
		     (unsigned long long)n, nnames);
	if (keep && kind == PUT_ONE_LEASE) {
		keep->member = on[0];
		keep->n = hosts;
		for (int h = 0; h < hosts; h++)
			keep->lease[h] = jobs[h].lease;
		if (pthread_create(&keep->th, NULL, keeper_run, keep))
			die("keeper", "pthread_create");
	} else if (kind == PUT_LEASE_EACH) {
		run_jobs(REVOKE, (int[]){ 0, 1, 2 }, 3, leases, jobs);
	} else {
		for (int h = 0; h < hosts; h++)
			lease_revoke(&c, jobs[h].lease);
	}
	if (!keep && kv_count(&c, "/workers/", false))
		die("register", "names left after revoking their leases");
	client_close(&c);
	free(leases);
}

/* ---------------------------------------------------------------------- */
/* lookup */

static void bench_lookup(const char *config, int member, bool serializable, size_t ops)
{
	uint64_t *lat = malloc(ops * sizeof(*lat)), t0, x = 88172645463325252ull;
	struct client c;

	if (!lat)
		die("lookup", "out of memory");
	progress("lookup: %s on %s\n", config, mb[member].name);
	client_open(&c, &mb[member]);
	for (size_t i = 0; i <= ops / 10; i++) { /* warm; and a linearizable read first */
		char key[64], val[64];

		name_key((int)(i % (size_t)nnames), key, sizeof(key));
		if (kv_get(&c, key, serializable && i, val, sizeof(val), NULL) != 1)
			die("lookup", "a registered name missing");
	}
	t0 = now_ns();
	for (size_t i = 0; i < ops; i++) {
		char key[64], val[64], want[64];
		int k;
		uint64_t a;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		k = (int)(x % (uint64_t)nnames);
		name_key(k, key, sizeof(key));
		name_addr(k, want, sizeof(want));
		a = now_ns();
		if (kv_get(&c, key, serializable, val, sizeof(val), NULL) != 1 || strcmp(val, want))
			die("lookup", "a registered name missing or wrong");
		lat[i] = now_ns() - a;
	}
	rows_lat(config, "lookup", "ops_per_s", lat, ops, now_ns() - t0);
	client_close(&c);
	free(lat);
}

/* ---------------------------------------------------------------------- */
/* call: the caller's cache of a name, filled by a range and kept fresh by a
 * streaming watch in a thread */

struct watch {
	pthread_t th;
	struct client c;
	char key[64], addr[64];
	bool have;
	uint64_t rev;
	pthread_mutex_t mu;
	volatile bool stop;
	char line[65536];
	size_t len;
};

static bool cache_get(struct watch *w, char *addr, size_t cap)
{
	bool have;

	pthread_mutex_lock(&w->mu);
	have = w->have;
	if (have)
		snprintf(addr, cap, "%s", w->addr);
	pthread_mutex_unlock(&w->mu);
	return have;
}

/* One line of the stream, {"result":{... "events":[...]}}: the last event
 * on the key is its state now. */
static int watch_line(struct watch *w, const char *l)
{
	const char *kv, *p;
	char v[128], addr[64];

	if (strstr(l, "\"error\"") || strstr(l, "\"canceled\":true"))
		return -1;
	if (!strstr(l, "\"events\""))
		return 0; /* "created", progress */
	for (kv = p = strstr(l, "\"kv\":"); p; p = strstr(p + 1, "\"kv\":"))
		kv = p;
	if (!kv)
		return -1;
	pthread_mutex_lock(&w->mu);
	if (kv - l > 20 && memmem(kv - 20, 20, "\"DELETE\"", 8)) {
		w->have = false;
	} else if (json_get(kv, "value", v, sizeof(v)) > 0 && b64_dec(v, addr, sizeof(addr)) > 0) {
		snprintf(w->addr, sizeof(w->addr), "%s", addr);
		w->have = true;
	}
	pthread_mutex_unlock(&w->mu);
	return 0;
}

static size_t watch_data(char *p, size_t sz, size_t n, void *arg)
{
	struct watch *w = arg;
	size_t k = sz * n;

	for (size_t i = 0; i < k; i++) {
		if (p[i] != '\n') {
			if (w->len + 1 < sizeof(w->line))
				w->line[w->len++] = p[i];
			continue;
		}
		w->line[w->len] = 0;
		w->len = 0;
		if (watch_line(w, w->line))
			return 0;
	}
	return k;
}

static int watch_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	(void)a, (void)b, (void)c, (void)d;
	return ((struct watch *)arg)->stop;
}

/* Read the key, then watch it from the next revision; again if the stream
 * breaks. */
static void *watch_run(void *arg)
{
	struct watch *w = arg;

	while (!w->stop) {
		char body[256], k[128], addr[64];
		int n = kv_get(&w->c, w->key, false, addr, sizeof(addr), &w->rev);

		pthread_mutex_lock(&w->mu);
		w->have = n == 1;
		snprintf(w->addr, sizeof(w->addr), "%s", n == 1 ? addr : "");
		pthread_mutex_unlock(&w->mu);
		b64_enc(w->key, strlen(w->key), k);
		snprintf(body, sizeof(body),
			 "{\"create_request\":{\"key\":\"%s\",\"start_revision\":\"%llu\"}}", k,
			 (unsigned long long)w->rev + 1);
		w->len = 0;
		curl_easy_setopt(w->c.h, CURLOPT_WRITEFUNCTION, watch_data);
		curl_easy_setopt(w->c.h, CURLOPT_WRITEDATA, w);
		curl_easy_setopt(w->c.h, CURLOPT_NOPROGRESS, 0L);
		curl_easy_setopt(w->c.h, CURLOPT_XFERINFOFUNCTION, watch_progress);
		curl_easy_setopt(w->c.h, CURLOPT_XFERINFODATA, w);
		curl_easy_setopt(w->c.h, CURLOPT_TIMEOUT_MS, 0L);
		snprintf(k, sizeof(k), "%s/v3/watch", w->c.base);
		curl_easy_setopt(w->c.h, CURLOPT_URL, k);
		curl_easy_setopt(w->c.h, CURLOPT_POSTFIELDS, body);
		curl_easy_perform(w->c.h);
		/* Back to a plain client for the next read. */
		curl_easy_setopt(w->c.h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(w->c.h, CURLOPT_WRITEDATA, &w->c.r);
		curl_easy_setopt(w->c.h, CURLOPT_NOPROGRESS, 1L);
		curl_easy_setopt(w->c.h, CURLOPT_TIMEOUT_MS, 10000L);
		if (!w->stop)
			sleep_ms(100);
	}
	return NULL;
}

static void watch_start(struct watch *w, int member, const char *key)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->mu, NULL);
	snprintf(w->key, sizeof(w->key), "%s", key);
	client_open(&w->c, &mb[member]);
	if (pthread_create(&w->th, NULL, watch_run, w))
		die("watch", "pthread_create");
}

static void watch_stop(struct watch *w)
{
	w->stop = true;
	pthread_join(w->th, NULL);
	client_close(&w->c);
}

/* The address of the name from the cache, and a REQ socket s connected to
 * it: connected again when the cached address changes. */
static void call_route(struct watch *w, int s, int *ep, char *connected)
{
	char addr[64];

	if (!cache_get(w, addr, sizeof(addr)))
		die("call", "the name is not in the cache");
	if (strcmp(addr, connected) == 0)
		return;
	if (*ep >= 0)
		nn_shutdown(s, *ep);
	*ep = nn_connect(s, addr);
	if (*ep < 0)
		die("nn_connect", nn_strerror(nn_errno()));
	snprintf(connected, 64, "%s", addr);
}

static void bench_call1(const char *config, struct watch *w, double seconds, uint64_t *lat,
			size_t cap)
{
	int s = nn_socket(AF_SP, NN_REQ), ep = -1, tmo = 5000;
	char req[MSG] = "ping", rep[64], connected[64] = "";
	uint64_t t0, end;
	size_t n = 0;

	if (s < 0)
		die("nn_socket", nn_strerror(nn_errno()));
	nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	for (int i = 0; i < 20; i++) {
		call_route(w, s, &ep, connected);
		if (nn_send(s, req, sizeof(req), 0) < 0 || nn_recv(s, rep, sizeof(rep), 0) != MSG)
			die("call", nn_strerror(nn_errno()));
	}
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	while (n < cap) {
		uint64_t a = now_ns();

		call_route(w, s, &ep, connected);
		if (nn_send(s, req, sizeof(req), 0) < 0 || nn_recv(s, rep, sizeof(rep), 0) != MSG ||
		    memcmp(req, rep, MSG))
			die("call", "no echo");
		lat[n++] = now_ns() - a;
		if (a + lat[n - 1] >= end)
			break;
	}
	rows_lat(config, "call", "calls_per_s", lat, n, now_ns() - t0);
	nn_close(s);
}

/* A raw REQ socket with INFLIGHT requests out: our request id (high bit
 * set) heads the body, the echo's header carries it back. A reply lost
 * (nanomsg drops one when a pipe is full) is counted out after 2 s. */
static void bench_call64(const char *config, struct watch *w, double seconds, uint64_t *lat,
			 size_t cap)
{
	int s = nn_socket(AF_SP_RAW, NN_REQ), ep = -1, tmo = 2000;
	char connected[64] = "";
	uint64_t t0, end, sent[INFLIGHT * 4];
	size_t n = 0, inflight = 0, lost = 0;
	uint32_t next = 0;

	if (s < 0)
		die("nn_socket raw", nn_strerror(nn_errno()));
	nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &tmo, sizeof(tmo));
	call_route(w, s, &ep, connected);
	sleep_ms(200); /* connected before the clock */
	t0 = now_ns();
	end = t0 + (uint64_t)(seconds * 1e9);
	for (;;) {
		unsigned char buf[4 + MSG], rep[64];
		char ctl[64];
		struct nn_iovec iov = { rep, sizeof(rep) };
		struct nn_msghdr h = { &iov, 1, ctl, sizeof(ctl) };
		struct nn_cmsghdr *cm;
		uint64_t now = now_ns();

		while (inflight < INFLIGHT && now < end) {
			uint32_t id = 0x80000000u | (next++ & 0x7fffffffu);

			call_route(w, s, &ep, connected);
			buf[0] = (unsigned char)(id >> 24);
			buf[1] = (unsigned char)(id >> 16);
			buf[2] = (unsigned char)(id >> 8);
			buf[3] = (unsigned char)id;
			memset(buf + 4, 'p', MSG);
			if (nn_send(s, buf, sizeof(buf), 0) < 0)
				die("raw send", nn_strerror(nn_errno()));
			sent[id % (INFLIGHT * 4)] = now;
			inflight++;
		}
		if (!inflight)
			break;
		if (nn_recvmsg(s, &h, 0) < 0) {
			lost += inflight;
			inflight = 0;
			continue;
		}
		inflight--;
		cm = NN_CMSG_FIRSTHDR(&h);
		if (cm && n < cap) {
			const unsigned char *d = NN_CMSG_DATA(cm) + sizeof(size_t);
			uint32_t id = (uint32_t)d[0] << 24 | (uint32_t)d[1] << 16 | (uint32_t)d[2] << 8 | d[3];

			lat[n++] = now_ns() - sent[id % (INFLIGHT * 4)];
		}
	}
	rows_lat(config, "call", "calls_per_s", lat, n, now_ns() - t0);
	if (lost)
		note("call %s: %zu replies lost (counted out after 2 s)", config, lost);
	nn_close(s);
}

static void bench_call(double seconds)
{
	size_t cap = 1u << 22;
	uint64_t *lat = malloc(cap * sizeof(*lat)), t0;
	int caller = 0, callee = 1;
	struct worker wk;
	struct watch *w = malloc(sizeof(*w));
	struct client c;

	if (!lat || !w)
		die("call", "out of memory");
	progress("call\n");
	worker_start(&wk, callee, "/workers/callee", TTL_PROD);
	watch_start(w, caller, "/workers/callee");
	for (int i = 0; i < 500; i++) {
		char addr[64];

		if (cache_get(w, addr, sizeof(addr)))
			break;
		sleep_ms(10);
	}
	bench_call1("lookup cached + nanomsg REQ/REP 1 in flight", w, seconds, lat, cap);
	bench_call64("lookup cached + nanomsg raw REQ/REP 64 in flight", w, seconds, lat, cap);

	/* The watch works: a delete reaches the cache. */
	client_open(&c, &mb[callee]);
	t0 = now_ns();
	kv_delete_prefix(&c, "/workers/callee");
	while (cache_get(w, (char[64]){ 0 }, 64)) {
		if (now_ns() - t0 > 5000000000ull)
			die("watch", "a delete did not reach the cache in 5 s");
		usleep(100);
	}
	note("call: the watch took %.1f ms from a delete on %s to the cache of a caller on %s",
	     (double)(now_ns() - t0) / 1e6, mb[callee].name, mb[caller].name);
	client_close(&c);
	watch_stop(w);
	worker_stop(&wk);
	free(w);
	free(lat);
}

/* ---------------------------------------------------------------------- */
/* failure */

static int failures;

/*
 * Workers on member v (one; or three and the member itself when host),
 * killed with SIGKILL right after a keepalive answered: the worst phase,
 * a lease's full TTL ahead. gone_ms: until no live member (serializable
 * reads of each) returns any of their names.
 */
static void bench_failure(bool host, bool leader, int ttl)
{
	int nw = host ? 3 : 1, v = leader ? leader_index() : follower_index(), nobs = 0;
	struct worker wk[3];
	struct client obs[3];
	uint64_t seen[3] = { 0 }, t0, gone = 0, deadline;
	char prefix[32], config[64];

	if (v < 0)
		die("failure", "no leader");
	snprintf(config, sizeof(config), "%s (TTL %d s)",
		 !host ? "kill worker process" : leader ? "kill host; the leader" : "kill host; a follower",
		 ttl);
	progress("failure: %s on %s\n", config, mb[v].name);
	snprintf(prefix, sizeof(prefix), "/workers/f%d/", failures++);
	for (int i = 0; i < nw; i++) {
		char key[64];

		snprintf(key, sizeof(key), "%sw%d", prefix, i);
		worker_start(&wk[i], v, key, ttl);
	}
	for (int i = 0; i < 3; i++)
		if (!host || i != v)
			client_open(&obs[nobs++], &mb[i]);
	for (int i = 0; i < nobs; i++)
		while (kv_count(&obs[i], prefix, true) != (uint64_t)nw)
			sleep_ms(5);
	for (int i = 0; i < nw; i++) { /* a fresh keepalive from each */
		while (worker_byte(&wk[i], 0) > 0)
			;
		if (worker_byte(&wk[i], ttl * 1000 / 3 + 5000) != 'k')
			die("failure", "no keepalive from a worker");
	}
	t0 = now_ns();
	for (int i = 0; i < nw; i++)
		kill(wk[i].pid, SIGKILL);
	if (host)
		kill(mb[v].pid, SIGKILL);
	deadline = t0 + (uint64_t)(3 * ttl + 20) * 1000000000ull;
	for (int left = nobs; left;) {
		for (int i = 0; i < nobs; i++)
			if (!seen[i] && kv_count(&obs[i], prefix, true) == 0) {
				seen[i] = now_ns() - t0;
				gone = seen[i] > gone ? seen[i] : gone;
				left--;
			}
		if (now_ns() > deadline)
			die(config, "the names are still there");
		sleep_ms(1);
	}
	row(config, "failure", "gone_ms", (double)gone / 1e6, "ms");
	for (int i = 0; i < nobs; i++)
		client_close(&obs[i]);
	for (int i = 0; i < nw; i++)
		worker_stop(&wk[i]);
	if (host) { /* the member back, for what follows */
		waitpid(mb[v].pid, NULL, 0);
		mb[v].pid = 0;
		member_spawn(&mb[v], "existing");
		if (cluster_up(3, 30000))
			die("failure", "the killed member did not come back");
	}
}

/* ---------------------------------------------------------------------- */
/* join: member add and the start of a fourth, until it serves a
 * linearizable read */

static void bench_join(void)
{
	struct member *m = &mb[3];
	struct client c, n;
	char body[128];
	uint64_t t0, end, entries = 0;
	int rc = -1;

	progress("join\n");
	snprintf(m->name, sizeof(m->name), "m3");
	snprintf(m->url, sizeof(m->url), "http://127.0.0.1:%d", free_port());
	snprintf(m->peer, sizeof(m->peer), "http://127.0.0.1:%d", free_port());
	client_open(&c, &mb[0]);
	if (post(&c, "/v3/maintenance/status", "{}") == 0)
		entries = json_u64(c.r.p, "raftIndex");
	snprintf(body, sizeof(body), "{\"peerURLs\":[\"%s\"]}", m->peer);
	/* etcd refuses a member while one was connected for less than 5 s
	 * (strict reconfig check): the member the failure restarted. */
	for (t0 = now_ns(); post(&c, "/v3/cluster/member/add", body); sleep_ms(200)) {
		if (now_ns() - t0 > 30000000000ull) {
			note("join: member add refused for 30 s");
			progress("member add: %s\n", c.r.p);
			client_close(&c);
			return;
		}
	}
	t0 = now_ns();
	snprintf(cluster_arg + strlen(cluster_arg), sizeof(cluster_arg) - strlen(cluster_arg),
		 ",%s=%s", m->name, m->peer);
	member_spawn(m, "existing");
	client_open(&n, m);
	for (end = t0 + 30000000000ull; now_ns() < end; sleep_ms(10)) {
		if (post(&n, "/v3/kv/range", "{\"key\":\"L2hlYWx0aA==\"}") == 0 &&
		    json_u64(n.r.p, "count") == 1) {
			rc = 0;
			break;
		}
	}
	if (rc)
		note("join: a 4th member did not serve reads within 30 s");
	else
		note("join: member add + start of a 4th member until it serves a linearizable "
		     "read: %.0f ms (it replays the raft log since the last snapshot: %llu entries)",
		     (double)(now_ns() - t0) / 1e6, (unsigned long long)entries);
	client_close(&n);
	client_close(&c);
}

/* ---------------------------------------------------------------------- */

/* The p50 of an empty request (maintenance status) to a member: what the
 * HTTP/JSON gateway and curl cost per request at the least. */
static double status_p50_us(int member)
{
	uint64_t lat[1000], self, leader;
	struct client c;

	client_open(&c, &mb[member]);
	for (int i = 0; i < 100; i++)
		member_status(&c, &self, &leader);
	for (int i = 0; i < 1000; i++) {
		uint64_t a = now_ns();

		if (member_status(&c, &self, &leader))
			die("status", "no answer");
		lat[i] = now_ns() - a;
	}
	client_close(&c);
	qsort(lat, 1000, sizeof(lat[0]), cmp_u64);
	return (double)lat[500] / 1e3;
}

/* etcd on PATH (or the one given) into etcd_bin; false if there is none. */
static bool find_etcd(const char *given)
{
	const char *path = getenv("PATH");
	char *dirs, *d, *save = NULL;

	if (given) {
		snprintf(etcd_bin, sizeof(etcd_bin), "%s", given);
		return access(etcd_bin, X_OK) == 0;
	}
	dirs = strdup(path ? path : "/usr/bin:/bin");
	for (d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		snprintf(etcd_bin, sizeof(etcd_bin), "%s/etcd", d);
		if (access(etcd_bin, X_OK) == 0) {
			free(dirs);
			return true;
		}
	}
	free(dirs);
	return false;
}

static void print_version(void)
{
	char cmd[PATH_MAX + 32], line[256] = "unknown";
	FILE *p;

	snprintf(cmd, sizeof(cmd), "'%s' --version 2>&1", etcd_bin);
	p = popen(cmd, "r");
	if (p && fgets(line, sizeof(line), p))
		line[strcspn(line, "\r\n")] = 0;
	if (p)
		pclose(p);
	for (char *q = line; *q; q++)
		if (*q == ',')
			*q = ';';
	printf("#version,etcd,%s\n", line);
}

static void print_settings(void)
{
	struct statfs fs;
	bool tmpfs = statfs(tmpdir, &fs) == 0 && fs.f_type == TMPFS_MAGIC;

	printf("#setting,etcd,3 members on loopback; heartbeat-interval %d ms; "
	       "election-timeout %d ms (etcd's defaults)\n", HEARTBEAT_MS, ELECTION_MS);
	printf("#setting,etcd,lease TTL %d s in register and lookup (clientv3 concurrency's "
	       "default session TTL); %d s in call and failure; and %d s in failure "
	       "(distreg's down-after)\n", TTL_REG, TTL_PROD, TTL_DOWN);
	printf("#setting,etcd,keepalive every TTL/3 (clientv3's practice)\n");
	printf("#setting,etcd,data dir on %s with etcd's fsync per commit; the members share "
	       "this machine's %ld CPUs and disk\n", tmpfs ? "tmpfs" : "a disk filesystem",
	       sysconf(_SC_NPROCESSORS_ONLN));
	note("client: gRPC gateway over HTTP/1.1 JSON with libcurl (keep-alive)");
	note("minimum lease TTL: etcd raises a TTL below 1.5 x election-timeout to that "
	     "rounded up to whole seconds (2 s here); a new leader extends every lease to its "
	     "full TTL + election-timeout (no lease checkpoints by default in 3.4)");
	note("register: a name is /workers/NAME = the worker's nanomsg address with a lease; "
	     "only the etcd writes are timed (no worker process is started per name); 1 host "
	     "is a client on a follower (writes go through the leader); 3 hosts are 3 client "
	     "threads in one process (one per member; the names dealt round robin)");
	note("register: a lease per worker then costs a keepalive per worker every TTL/3 for "
	     "as long as it lives (N x 3/TTL per second: 500/s for 10 k names at TTL 60 s); "
	     "one lease per process costs one");
	note("lookup: one request at a time on a follower; serializable = the member's own "
	     "copy (may be stale); linearizable = a read index round trip to the leader");
	note("call: the caller's cache of the name is filled by a range and kept fresh by a "
	     "streaming /v3/watch in a thread (off the hot path: a mutex-held copy per call); "
	     "64 in flight is one raw (AF_SP_RAW) REQ socket with 64 requests out to the "
	     "worker's cooked REP");
	note("failure: workers killed right after a keepalive was answered (the worst phase: "
	     "a full TTL left); at a random phase expect up to TTL/3 less; gone_ms is polled "
	     "every ~1 ms with serializable reads of every live member; etcd checks expiry "
	     "every 500 ms");
	note("failure: kill host kills the member and the 3 workers whose client it was; etcd "
	     "does not restart workers so there is no restarted_ms");
	note("join: a key has no owner member in etcd; a 4th member moves no names");
}

static void usage(void)
{
	fprintf(stderr, "usage: sys_etcd [--short] [--names N] [--etcd PATH]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "short", no_argument, NULL, 'S' },
		{ "names", required_argument, NULL, 'n' },
		{ "etcd", required_argument, NULL, 'e' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *given = NULL;
	bool names_set = false;
	struct keeper keep = { 0 };
	size_t ops;
	int c, f;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'S':
			short_run = true;
			break;
		case 'n':
			nnames = atoi(optarg);
			names_set = true;
			if (nnames < 3 || nnames > 10000000)
				usage();
			break;
		case 'e':
			given = optarg;
			break;
		default:
			usage();
		}
	}
	if (short_run && !names_set)
		nnames = 1000;
	if (!find_etcd(given)) {
		printf("#skip,etcd,etcd-server not installed\n");
		return 0;
	}
	main_pid = getpid();
	t_start = now_ns();
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		die("curl", "global init");
	atexit(cleanup);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "%s/sys_etcd.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(tmpdir)) {
		tmpdir[0] = 0;
		die("mkdtemp", strerror(errno));
	}
	print_version();
	print_settings();
	progress("starting 3 members in %s\n", tmpdir);
	cluster_start();
	f = follower_index();
	note("gateway: an empty request (/v3/maintenance/status) takes %.0f us p50; the "
	     "gateway adds JSON and HTTP/1.1 and an in-process gRPC hop over native gRPC",
	     status_p50_us(f));

	bench_register("put+lease per worker from 1 host", PUT_LEASE_EACH, 1, NULL);
	bench_register("put with one lease per process from 1 host", PUT_ONE_LEASE, 1, NULL);
	bench_register("put+lease per worker from 3 hosts", PUT_LEASE_EACH, 3, NULL);
	bench_register("put with one lease per process from 3 hosts", PUT_ONE_LEASE, 3, &keep);

	ops = short_run ? 5000 : 20000;
	f = follower_index();
	bench_lookup("serializable get on a non-leader", f, true, ops);
	bench_lookup("linearizable get on a non-leader", f, false, ops);
	keep.stop = true;
	pthread_join(keep.th, NULL);
	{
		struct client cl;

		client_open(&cl, &mb[0]);
		for (int i = 0; i < keep.n; i++)
			lease_revoke(&cl, keep.lease[i]);
		client_close(&cl);
	}

	bench_call(short_run ? 0.5 : 2.5);

	bench_failure(false, false, TTL_PROD);
	bench_failure(false, false, TTL_DOWN);
	bench_failure(true, false, TTL_PROD);
	bench_failure(true, false, TTL_DOWN);
	if (!short_run) /* under 2 minutes: TTL 3 s shows the leader's cost too */
		bench_failure(true, true, TTL_PROD);
	bench_failure(true, true, TTL_DOWN);

	bench_join();
	progress("done; stopping the members\n");
	return 0;
}
