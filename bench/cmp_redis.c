/*
 * cmp_redis.c - Redis as the registry, over a Unix socket with hiredis:
 *   register    SET name value NX   (reply OK; nil would mean taken)
 *   lookup      GET name            (the value, or nil)
 *   unregister  DEL name            (reply 1)
 * One worker process is one client connection. In one-at-a-time mode each
 * command waits for its reply; in pipelined mode PIPE_DEPTH operations are
 * sent, then their replies read and checked (a register+unregister pair is
 * one operation and two commands).
 *
 * The server is the benchmark's own: redis-server started on a private
 * socket in a private directory, without persistence, and stopped at the
 * end (SHUTDOWN NOSAVE, SIGKILL if it lingers). It gets PR_SET_PDEATHSIG,
 * so it dies with the benchmark even if the benchmark is SIGKILLed.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "compare.h"

/* Names are preloaded this many commands per round trip. */
#define PRELOAD_PIPE 1000u

enum rkind { R_GET_HIT, R_GET_MISS, R_SETNX, R_DEL };

struct redis_worker {
	struct kv_worker kv;
	redisContext *ctx;
	unsigned npend;
	struct {
		enum rkind kind;
		const struct bname *n;
	} pend[2 * PIPE_DEPTH];
};

const char *hiredis_version(void)
{
	static char v[32];

	snprintf(v, sizeof(v), "hiredis %d.%d.%d", HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
	return v;
}

static const char *const rkind_cmd[] = { "GET", "GET", "SET NX", "DEL" };

/* The command for kind on name n, as an argument vector. */
struct rcmd {
	int argc;
	const char *argv[4];
	size_t len[4];
};

static inline void r_cmd(struct rcmd *c, enum rkind kind, const struct bname *n)
{
	c->argv[1] = n->s;
	c->len[1] = n->len;
	c->argc = 2;
	switch (kind) {
	case R_SETNX:
		c->argv[0] = "SET", c->len[0] = 3;
		c->argv[2] = (const char *)value_bytes, c->len[2] = VALUE_LEN;
		c->argv[3] = "NX", c->len[3] = 2;
		c->argc = 4;
		break;
	case R_DEL:
		c->argv[0] = "DEL", c->len[0] = 3;
		break;
	default:
		c->argv[0] = "GET", c->len[0] = 3;
		break;
	}
}

/* Is reply r the right answer to kind on n? */
static int r_check(struct kv_worker *w, enum rkind kind, const struct bname *n,
		   const redisReply *r)
{
	const char *bad = NULL;

	if (r->type == REDIS_REPLY_ERROR)
		return kv_error(w, "%s %.*s: server error: %s", rkind_cmd[kind], n->len, n->s,
				r->str);
	switch (kind) {
	case R_GET_HIT:
		if (r->type == REDIS_REPLY_NIL)
			bad = "not found";
		else if (r->type != REDIS_REPLY_STRING || r->len != VALUE_LEN)
			bad = "unexpected reply";
		else
			w->sink += (uint64_t)r->len;
		break;
	case R_GET_MISS:
		if (r->type != REDIS_REPLY_NIL)
			bad = "found a name that should be absent";
		break;
	case R_SETNX:
		if (r->type == REDIS_REPLY_NIL)
			bad = "already registered";
		else if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK") != 0)
			bad = "unexpected reply";
		break;
	case R_DEL:
		if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
			bad = r->type == REDIS_REPLY_INTEGER ? "not found" : "unexpected reply";
		break;
	}
	if (bad)
		return kv_error(w, "%s %.*s: %s (reply type %d)", rkind_cmd[kind], n->len, n->s,
				bad, r->type);
	return 0;
}

static int r_conn_error(struct kv_worker *w, const char *what, redisContext *ctx)
{
	return kv_error(w, "%s: connection error: %s", what,
			ctx->err ? ctx->errstr : "no reply");
}

/* One-at-a-time: send, wait for the reply, check it. */
static inline int r_sync(struct kv_worker *w, enum rkind kind, const struct bname *n)
{
	redisContext *ctx = ((struct redis_worker *)w)->ctx;
	redisReply *reply;
	struct rcmd cmd;
	int rc;

	r_cmd(&cmd, kind, n);
	reply = redisCommandArgv(ctx, cmd.argc, cmd.argv, cmd.len);
	if (!reply)
		return r_conn_error(w, rkind_cmd[kind], ctx);
	rc = r_check(w, kind, n, reply);
	freeReplyObject(reply);
	return rc;
}

/* Pipelined: queue the command; r_flush() checks its reply. */
static inline int r_queue(struct kv_worker *w, enum rkind kind, const struct bname *n)
{
	struct redis_worker *rw = (struct redis_worker *)w;
	struct rcmd cmd;

	if (rw->npend == sizeof(rw->pend) / sizeof(rw->pend[0]))
		return kv_error(w, "pipeline overflow");
	r_cmd(&cmd, kind, n);
	if (redisAppendCommandArgv(rw->ctx, cmd.argc, cmd.argv, cmd.len) != REDIS_OK)
		return r_conn_error(w, rkind_cmd[kind], rw->ctx);
	rw->pend[rw->npend].kind = kind;
	rw->pend[rw->npend].n = n;
	rw->npend++;
	return 0;
}

static int r_flush(struct kv_worker *w)
{
	struct redis_worker *rw = (struct redis_worker *)w;
	unsigned n = rw->npend;

	rw->npend = 0;
	for (unsigned i = 0; i < n; i++) {
		void *r;
		int rc;

		if (redisGetReply(rw->ctx, &r) != REDIS_OK || !r)
			return r_conn_error(w, rkind_cmd[rw->pend[i].kind], rw->ctx);
		rc = r_check(w, rw->pend[i].kind, rw->pend[i].n, r);
		freeReplyObject(r);
		if (rc)
			return rc;
	}
	return 0;
}

static int rs_lookup(struct kv_worker *w, const struct bname *n, bool present)
{
	return r_sync(w, present ? R_GET_HIT : R_GET_MISS, n);
}

static int rs_insert(struct kv_worker *w, const struct bname *n)
{
	return r_sync(w, R_SETNX, n);
}

static int rs_remove(struct kv_worker *w, const struct bname *n)
{
	return r_sync(w, R_DEL, n);
}

static int rp_lookup(struct kv_worker *w, const struct bname *n, bool present)
{
	return r_queue(w, present ? R_GET_HIT : R_GET_MISS, n);
}

static int rp_insert(struct kv_worker *w, const struct bname *n)
{
	return r_queue(w, R_SETNX, n);
}

static int rp_remove(struct kv_worker *w, const struct bname *n)
{
	return r_queue(w, R_DEL, n);
}

static const struct kv_ops redis_sync_ops = {
	.lookup = rs_lookup, .insert = rs_insert, .remove = rs_remove, .flush = NULL,
};
static const struct kv_ops redis_pipe_ops = {
	.lookup = rp_lookup, .insert = rp_insert, .remove = rp_remove, .flush = r_flush,
};

static __attribute__((noinline)) int run_redis(struct kv_worker *w, unsigned wl, unsigned mode,
					       uint64_t seed, uint64_t *ops)
{
	if (mode)
		return kv_loop(&redis_pipe_ops, w, wl, seed, ops);
	return kv_loop(&redis_sync_ops, w, wl, seed, ops);
}

/* A command whose reply is checked by the caller; dies on no reply. */
static redisReply *r_admin(struct redis_worker *rw, const char *cmd)
{
	redisReply *r = redisCommand(rw->ctx, cmd);

	if (!r)
		kv_die(&rw->kv, "%s: connection error: %s", cmd,
		       rw->ctx->err ? rw->ctx->errstr : "no reply");
	return r;
}

/* Worker 0: empty the server (the previous block's names), load the names
 * PRELOAD_PIPE per round trip, count them. */
static void redis_preload(struct redis_worker *rw, uint32_t nnames)
{
	redisReply *r = r_admin(rw, "FLUSHALL");

	if (r->type != REDIS_REPLY_STATUS)
		kv_die(&rw->kv, "FLUSHALL: unexpected reply type %d", r->type);
	freeReplyObject(r);
	for (uint32_t at = 0; at < nnames; at += PRELOAD_PIPE) {
		uint32_t end = nnames - at < PRELOAD_PIPE ? nnames : at + PRELOAD_PIPE;

		for (uint32_t i = at; i < end; i++) {
			struct rcmd cmd;

			r_cmd(&cmd, R_SETNX, &hit_names[i]);
			if (redisAppendCommandArgv(rw->ctx, cmd.argc, cmd.argv, cmd.len) !=
			    REDIS_OK)
				kv_die(&rw->kv, "preload: %s", rw->ctx->errstr);
		}
		for (uint32_t i = at; i < end; i++) {
			void *reply;
			int rc;

			if (redisGetReply(rw->ctx, &reply) != REDIS_OK || !reply)
				kv_die(&rw->kv, "preload: connection error: %s",
				       rw->ctx->err ? rw->ctx->errstr : "no reply");
			rc = r_check(&rw->kv, R_SETNX, &hit_names[i], reply);
			freeReplyObject(reply);
			if (rc)
				kv_die(&rw->kv, "preload: %s", rw->kv.err);
		}
	}
	r = r_admin(rw, "DBSIZE");
	if (r->type != REDIS_REPLY_INTEGER || r->integer != (long long)nnames)
		kv_die(&rw->kv, "preload: DBSIZE %lld, expected %" PRIu32,
		       r->type == REDIS_REPLY_INTEGER ? r->integer : -1ll, nnames);
	freeReplyObject(r);
}

static redisContext *r_connect(const char *sock, long timeout_ms, char *msg, size_t len)
{
	struct timeval tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	redisContext *ctx = redisConnectUnixWithTimeout(sock, tv);

	if (!ctx || ctx->err) {
		snprintf(msg, len, "connecting to %s: %s", sock,
			 ctx ? ctx->errstr : "cannot allocate a redis context");
		if (ctx)
			redisFree(ctx);
		return NULL;
	}
	/* Replies too: a stuck server fails the run instead of hanging it. */
	if (redisSetTimeout(ctx, (struct timeval){ 30, 0 }) != REDIS_OK) {
		snprintf(msg, len, "redisSetTimeout: %s", ctx->errstr);
		redisFree(ctx);
		return NULL;
	}
	return ctx;
}

void redis_worker_main(struct ctl *c, unsigned idx, const char *sock, uint32_t nnames)
{
	struct redis_worker rw = { .npend = 0 };
	char msg[256];
	uint64_t t0;

	kv_worker_init(&rw.kv, c, idx, nnames, "redis");
	kv_wait_first(&rw.kv);
	t0 = now_ns();
	rw.ctx = r_connect(sock, 5000, msg, sizeof(msg));
	if (!rw.ctx)
		kv_die(&rw.kv, "%s", msg);
	if (idx == 0)
		redis_preload(&rw, nnames);
	kv_setup_done(&rw.kv, (double)(now_ns() - t0) / 1e9);
	kv_serve(&rw.kv, run_redis);
	redisFree(rw.ctx);
	_exit(0);
}

/* ---------------------------------------------------------------------- */
/* The server. */

/* The last line of the server's log, for a message. */
static void log_tail(const char *log, char *out, size_t len)
{
	char buf[4096];
	int fd = open(log, O_RDONLY | O_CLOEXEC);
	ssize_t n = -1;
	off_t end;

	snprintf(out, len, "(no log)");
	if (fd < 0)
		return;
	end = lseek(fd, 0, SEEK_END);
	if (end >= 0)
		n = pread(fd, buf, sizeof(buf) - 1, end > (off_t)sizeof(buf) - 1
							  ? end - (off_t)sizeof(buf) + 1 : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = 0;
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		buf[--n] = 0;
	snprintf(out, len, "%.*s", (int)len - 1, strrchr(buf, '\n') ? strrchr(buf, '\n') + 1 : buf);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static __attribute__((noreturn)) void server_exec(const struct redis_server *s, pid_t parent)
{
	int fd;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != parent)
		_exit(127);
	fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0 || dup2(fd, STDERR_FILENO) < 0)
		_exit(127);
	execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", s->sock,
	       "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", s->dir,
	       "--daemonize", "no", "--loglevel", "warning", (char *)NULL);
	dprintf(STDERR_FILENO, "exec redis-server: %s\n", strerror(errno));
	_exit(127);
}

/* Ping until the server answers (up to 10 s); then read its version. */
static int server_wait(struct redis_server *s, char *msg, size_t len)
{
	for (int tries = 0; tries < 200; tries++) {
		redisContext *ctx;
		redisReply *r;
		int st;

		if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
			char tail[200];

			s->pid = 0;
			log_tail(s->log, tail, sizeof(tail));
			snprintf(msg, len, "redis-server exited at start (%s %d): %s",
				 WIFEXITED(st) ? "status" : "signal",
				 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), tail);
			return -1;
		}
		sleep_ms(50);
		ctx = r_connect(s->sock, 500, msg, len);
		if (!ctx)
			continue;
		r = redisCommand(ctx, "INFO server");
		if (r && r->type == REDIS_REPLY_STRING) {
			const char *v = strstr(r->str, "redis_version:");

			snprintf(s->version, sizeof(s->version), "%.*s",
				 v ? (int)strcspn(v + 14, "\r\n") : 1, v ? v + 14 : "?");
		}
		if (r)
			freeReplyObject(r);
		redisFree(ctx);
		if (r)
			return 0;
	}
	snprintf(msg + strlen(msg), len - strlen(msg), " (gave up after 10 s)");
	return -1;
}

int redis_server_start(struct redis_server *s, const char *dir, char *msg, size_t len)
{
	pid_t parent = getpid();

	memset(s, 0, sizeof(*s));
	if (!prog_in_path("redis-server"))
		return -ENOENT;
	if ((size_t)snprintf(s->dir, sizeof(s->dir), "%s/redis", dir) >= sizeof(s->dir) ||
	    (size_t)snprintf(s->sock, sizeof(s->sock), "%s/redis.sock", s->dir) >= 108 ||
	    (size_t)snprintf(s->log, sizeof(s->log), "%s/redis.log", s->dir) >= sizeof(s->log)) {
		snprintf(msg, len, "socket path under %s too long", dir);
		return -1;
	}
	if (mkdir(s->dir, 0700) != 0) {
		snprintf(msg, len, "mkdir %s: %s", s->dir, strerror(errno));
		return -1;
	}
	fflush(NULL);
	s->pid = fork();
	if (s->pid < 0) {
		snprintf(msg, len, "fork: %s", strerror(errno));
		s->pid = 0;
		return -1;
	}
	if (s->pid == 0)
		server_exec(s, parent);
	if (server_wait(s, msg, len)) {
		redis_server_stop(s);
		return -1;
	}
	return 0;
}

void redis_server_stop(struct redis_server *s)
{
	char msg[256];
	redisContext *ctx;

	if (s->pid <= 0)
		return;
	ctx = r_connect(s->sock, 1000, msg, sizeof(msg));
	if (ctx) {
		/* The server closes the connection: no reply is the answer. */
		redisReply *r = redisCommand(ctx, "SHUTDOWN NOSAVE");

		if (r)
			freeReplyObject(r);
		redisFree(ctx);
	}
	for (int i = 0; i < 100; i++) {
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			break;
		}
		sleep_ms(20);
	}
	if (s->pid > 0) {
		kill(s->pid, SIGKILL);
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	unlink(s->sock);
	unlink(s->log);
	rmdir(s->dir);
}
