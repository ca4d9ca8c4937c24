/*
 * test_shmdump.c - the command-line tools, tested by running them.
 *
 * Each test builds a segment of its own through the library, runs the built
 * shmdump (path in $SHMDUMP) or distreg-demo (path in $DISTREG_DEMO) with
 * posix_spawn(), and checks the exit status and the output.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include <distreg.h>
#include <distreg_admin.h>

#include "segmap.h"
#include "testutil.h"

extern char **environ;

/* The demo measures for two seconds; everything else takes milliseconds. */
#define TOOLS_TIMEOUT 60.0

/* Small geometry: a segment of capacity 64 is about 40 KiB. */
#define T_MAX_PROCS 16u
#define T_MAX_THREADS 64u

/* ---------------------------------------------------------------------- */
/* Segments, removed again by the suite's .fini even when a test fails */

static const char *seg_new(const char *tag)
{
	const char *name = dr_test_seg_new(tag);

	cr_assert_not_null(name, "too many segments in one test");
	return name;
}

static void segs_fini(void)
{
	dr_test_segs_unlink();
}

TestSuite(shmdump, .timeout = TOOLS_TIMEOUT, .fini = segs_fini);
TestSuite(demo, .timeout = TOOLS_TIMEOUT, .fini = segs_fini);

static dr_registry *seg_open(const char *segment, uint32_t capacity)
{
	struct dr_options o = {
		.segment = segment,
		.capacity = capacity,
		.max_procs = T_MAX_PROCS,
		.max_threads = T_MAX_THREADS,
	};
	dr_registry *r = NULL;
	int rc = dr_open(&o, &r);

	cr_assert_eq(rc, 0, "dr_open(%s): %s", segment, dr_strerror(rc));
	return r;
}

static void seg_path(char *buf, size_t len, const char *segment)
{
	snprintf(buf, len, "/dev/shm/distreg.%s", segment);
}

/* ---------------------------------------------------------------------- */
/* Running a tool */

struct run {
	int status; /* exit status, or 128 + signal */
	char *out, *err;
};

static char *slurp(FILE *f)
{
	long n;
	char *buf;

	cr_assert_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = 0;
	fclose(f);
	return buf;
}

/*
 * Run the program named by environment variable var with args (NULL-
 * terminated, without argv[0]) and envp (NULL: ours). Output goes to
 * temporary files, not pipes, so a large output cannot block the child.
 */
static struct run run_exe(const char *exe, const char *const *args, char *const *envp);

static struct run run_tool(const char *var, const char *const *args, char *const *envp)
{
	const char *exe = getenv(var);

	cr_assert_not_null(exe, "$%s is not set: run this test through meson test", var);
	return run_exe(exe, args, envp);
}

/* Run exe (a path) with args, as run_tool. */
static struct run run_exe(const char *exe, const char *const *args, char *const *envp)
{
	char *argv[16];
	posix_spawn_file_actions_t fa;
	FILE *out = tmpfile(), *err = tmpfile();
	struct run res;
	pid_t pid;
	int n = 0, st, rc;

	cr_assert(out && err);
	argv[n++] = (char *)exe;
	while (*args && n < 15)
		argv[n++] = (char *)*args++;
	argv[n] = NULL;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fileno(out), 1);
	posix_spawn_file_actions_adddup2(&fa, fileno(err), 2);
	rc = posix_spawn(&pid, exe, &fa, NULL, argv, envp ? envp : environ);
	posix_spawn_file_actions_destroy(&fa);
	cr_assert_eq(rc, 0, "posix_spawn %s: %s", exe, strerror(rc));
	while (waitpid(pid, &st, 0) < 0)
		cr_assert_eq(errno, EINTR);
	res.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	res.out = slurp(out);
	res.err = slurp(err);
	return res;
}

#define SHMDUMP(...) run_tool("SHMDUMP", (const char *const[]){ __VA_ARGS__, NULL }, NULL)

static void run_free(struct run *r)
{
	free(r->out);
	free(r->err);
}

/* The line of text that starts with prefix, copied into buf; asserts. */
static const char *line_starting(const char *text, const char *prefix, char *buf, size_t len)
{
	size_t plen = strlen(prefix);
	const char *p = text;

	while (*p) {
		size_t n = strcspn(p, "\n");

		if (strncmp(p, prefix, plen) == 0) {
			cr_assert_lt(n, len);
			memcpy(buf, p, n);
			buf[n] = 0;
			return buf;
		}
		p += n + (p[n] == '\n');
	}
	cr_assert_fail("no line starting with \"%s\" in:\n%s", prefix, text);
	return NULL;
}

/* The number after "key: " in shmdump --stats output. */
static uint64_t stat_value(const char *text, const char *key)
{
	char prefix[64], line[256];

	snprintf(prefix, sizeof(prefix), "%s: ", key);
	line_starting(text, prefix, line, sizeof(line));
	return strtoull(line + strlen(prefix), NULL, 10);
}

/* ---------------------------------------------------------------------- */
/* A child process that holds names, for the dead-owner and corrupt cases */

struct holder {
	pid_t pid;
};

/* Fork a child that opens segment, registers n names "<prefix>.<i>",
 * enters a read-side section if read_lock, reports and then waits to be
 * killed (also if the test process dies: PDEATHSIG). */
static struct holder holder_start(const char *segment, const char *prefix, int n,
				  bool read_lock)
{
	struct holder h;
	int ready[2];
	char c = 0;

	cr_assert_eq(pipe(ready), 0);
	h.pid = fork();
	cr_assert_neq(h.pid, -1);
	if (h.pid == 0) {
		struct dr_options o = { .segment = segment };
		dr_registry *r;
		char name[64];
		int ok;

		/* Never a Criterion assertion in the child: report a byte. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		ok = dr_open(&o, &r) == 0;
		for (int i = 0; ok && i < n; i++) {
			snprintf(name, sizeof(name), "%s.%d", prefix, i);
			ok = dr_register(r, name, "held", 4) == 0;
		}
		if (ok && read_lock)
			ok = dr_read_lock(r) == 0;
		c = ok ? 'R' : 'E';
		if (write(ready[1], &c, 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(ready[1]);
	cr_assert_eq(read(ready[0], &c, 1), 1);
	close(ready[0]);
	cr_assert_eq(c, 'R', "the child could not register its names");
	return h;
}

static void holder_kill(struct holder *h)
{
	int st;

	kill(h->pid, SIGKILL);
	while (waitpid(h->pid, &st, 0) < 0)
		cr_assert_eq(errno, EINTR);
	cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

/* ---------------------------------------------------------------------- */
/* A JSON syntax checker: enough to say that the output parses. */

static const char *json_value(const char *p);

static const char *json_ws(const char *p)
{
	while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r')
		p++;
	return p;
}

static const char *json_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if ((unsigned char)*p < 0x20)
			return NULL; /* control characters must be escaped */
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!strchr("0123456789abcdefABCDEF", p[i]) || !p[i])
						return NULL;
				p += 4;
			} else if (!*p || !strchr("\"\\/bfnrt", *p)) {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *json_number(const char *p)
{
	const char *start = p;

	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9')
		return NULL;
	while ((*p >= '0' && *p <= '9') || *p == '.' || *p == 'e' || *p == 'E' || *p == '+' ||
	       (*p == '-' && p != start))
		p++;
	return p;
}

static const char *json_list(const char *p, char close, bool object)
{
	p = json_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (object) {
			p = json_string(json_ws(p));
			if (!p || *(p = json_ws(p)) != ':')
				return NULL;
			p++;
		}
		p = json_value(p);
		if (!p)
			return NULL;
		p = json_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *json_value(const char *p)
{
	p = json_ws(p);
	switch (*p) {
	case '{':
		return json_list(p, '}', true);
	case '[':
		return json_list(p, ']', false);
	case '"':
		return json_string(p);
	case 't':
		return strncmp(p, "true", 4) ? NULL : p + 4;
	case 'f':
		return strncmp(p, "false", 5) ? NULL : p + 5;
	case 'n':
		return strncmp(p, "null", 4) ? NULL : p + 4;
	default:
		return json_number(p);
	}
}

static bool json_valid(const char *text)
{
	const char *end = json_value(text);

	return end && *json_ws(end) == 0;
}

/* ---------------------------------------------------------------------- */

static const unsigned char bin_name[] = { 0x01, 0xff, 'b' };
static const unsigned char bin_value[] = { 0x00, 0x01, 0x02 };

/* alpha, beta (empty value), gamma (value with a space), a binary name. */
static dr_registry *populate(const char *seg)
{
	dr_registry *r = seg_open(seg, 64);

	cr_assert_eq(dr_register(r, "alpha", "ipc://alpha", 11), 0);
	cr_assert_eq(dr_register(r, "beta", NULL, 0), 0);
	cr_assert_eq(dr_register(r, "gamma", "hello world", 11), 0);
	cr_assert_eq(dr_register_bin(r, bin_name, sizeof(bin_name), bin_value,
				     sizeof(bin_value)),
		     0);
	return r;
}

Test(shmdump, listing_shows_names_pids_and_values)
{
	const char *seg = seg_new("list");
	dr_registry *r = populate(seg);
	struct dr_entry e;
	char line[512], want[128];
	struct run res = SHMDUMP("--segment", seg);

	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert_str_empty(res.err);
	line_starting(res.out, "NAME ", line, sizeof(line));

	cr_assert_eq(dr_whereis(r, "alpha", &e), 0);
	line_starting(res.out, "alpha ", line, sizeof(line));
	snprintf(want, sizeof(want), " %d alive ", (int)getpid());
	cr_assert(strstr(line, want), "pid or state missing: %s", line);
	snprintf(want, sizeof(want), " %" PRIu64 " ipc://alpha", e.regid);
	cr_assert(strstr(line, want), "regid or value missing: %s", line);

	line_starting(res.out, "beta ", line, sizeof(line));
	cr_assert(line[strlen(line) - 1] == '-' && line[strlen(line) - 2] == ' ',
		  "empty value not shown as '-': %s", line);
	line_starting(res.out, "gamma ", line, sizeof(line));
	cr_assert(strstr(line, " hello world"), "%s", line);

	/* A name that is not UTF-8 (0xff): hex with a 0x prefix. A value of
	 * control characters is valid UTF-8: text, each one escaped. */
	line_starting(res.out, "0x01ff62 ", line, sizeof(line));
	cr_assert(strstr(line, " \\x00\\x01\\x02"), "controls not escaped: %s", line);

	cr_assert(strstr(res.out, "\n4 names (4 live, 0 dead), capacity 64\n"),
		  "summary missing:\n%s", res.out);
	run_free(&res);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, default_segment_comes_from_environment)
{
	const char *seg = seg_new("env");
	dr_registry *r = populate(seg);
	char var[DR_SEGMENT_MAX + 32];
	char *envp[] = { var, NULL };
	struct run res;

	snprintf(var, sizeof(var), "DISTREG_SEGMENT=%s", seg);
	res = run_tool("SHMDUMP", (const char *const[]){ NULL }, envp);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert(strstr(res.out, "\nalpha "), "%s", res.out);
	run_free(&res);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, stats_match_dr_stats)
{
	const char *seg = seg_new("stats");
	dr_registry *r = populate(seg);
	struct dr_stats s;
	char line[256], want[64];
	struct run res;

	/* Some churn, so that not every counter is zero. */
	cr_assert_eq(dr_register(r, "gone", "x", 1), 0);
	cr_assert_eq(dr_unregister(r, "gone"), 0);
	res = SHMDUMP("--stats", "--segment", seg);
	cr_assert_eq(dr_stats(r, &s), 0);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);

	line_starting(res.out, "segment: ", line, sizeof(line));
	cr_assert_str_eq(line + strlen("segment: "), seg);
	cr_assert_eq(stat_value(res.out, "capacity"), s.capacity);
	cr_assert_eq(stat_value(res.out, "live"), s.live);
	cr_assert_eq(stat_value(res.out, "live"), 4);
	cr_assert_eq(stat_value(res.out, "dead"), s.dead);
	cr_assert_eq(stat_value(res.out, "inflight"), s.inflight);
	cr_assert_eq(stat_value(res.out, "retired") + stat_value(res.out, "free_entries"),
		     s.retired + s.free_entries);
	cr_assert_eq(stat_value(res.out, "nbuckets"), s.nbuckets);
	cr_assert_eq(stat_value(res.out, "longest_chain"), s.longest_chain);
	cr_assert_eq(stat_value(res.out, "max_procs"), s.max_procs);
	cr_assert_eq(stat_value(res.out, "max_procs"), T_MAX_PROCS);
	/* shmdump reads without attaching: no process slot of its own. */
	cr_assert_eq(stat_value(res.out, "procs"), s.procs);
	cr_assert_eq(stat_value(res.out, "max_threads"), s.max_threads);
	cr_assert_geq(stat_value(res.out, "readers"), 1);
	stat_value(res.out, "readers_active");
	cr_assert_eq(stat_value(res.out, "stalled_pid"), 0);
	cr_assert_leq(stat_value(res.out, "epoch"), s.epoch);
	cr_assert_eq(stat_value(res.out, "next_regid"), s.next_regid);
	cr_assert_eq(stat_value(res.out, "segment_bytes"), s.segment_bytes);
	snprintf(want, sizeof(want), "load: %.2f%%", 100.0 * s.live / s.capacity);
	cr_assert_str_eq(line_starting(res.out, "load: ", line, sizeof(line)), want);
	cr_assert_null(strstr(res.out, "stalled:"));
	run_free(&res);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, stats_name_a_stalled_reader)
{
	const char *seg = seg_new("stalled");
	dr_registry *r = seg_open(seg, 64);
	struct holder h = holder_start(seg, "reader", 0, true);
	char line[256], want[128];
	struct run res;

	/* Unregistered while the child's section is open: its memory waits
	 * for the child, which never leaves. */
	cr_assert_eq(dr_register(r, "retired", "x", 1), 0);
	cr_assert_eq(dr_unregister(r, "retired"), 0);
	res = SHMDUMP("--stats", "--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert_geq(stat_value(res.out, "retired"), 1);
	cr_assert_eq(stat_value(res.out, "stalled_pid"), (uint64_t)h.pid, "%s", res.out);
	snprintf(want, sizeof(want), "stalled: process %d (test_shmdump) ", (int)h.pid);
	line_starting(res.out, "stalled: ", line, sizeof(line));
	cr_assert(strncmp(line, want, strlen(want)) == 0, "want %s got %s", want, line);
	run_free(&res);
	holder_kill(&h);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, json_parses_and_escapes)
{
	const char *seg = seg_new("json");
	dr_registry *r = populate(seg);
	struct dr_entry e;
	char want[256];
	struct run res;

	/* q"uo\te: a quote and a backslash; a value with a newline. */
	cr_assert_eq(dr_register(r, "q\"uo\\te", "a\nb", 3), 0);
	cr_assert_eq(dr_whereis(r, "alpha", &e), 0);
	res = SHMDUMP("--json", "--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert(json_valid(res.out), "not valid JSON:\n%s", res.out);

	cr_assert(strstr(res.out, "\"names\": ["));
	cr_assert(strstr(res.out, "\"stats\": {"));
	cr_assert(strstr(res.out, "\"check\": {\"ok\": true"));
	cr_assert(strstr(res.out, "\"summary\": {\"names\": 5, \"live\": 5, \"dead\": 0"));
	cr_assert(strstr(res.out, "\"name\": \"q\\\"uo\\\\te\", \"name_encoding\": \"text\""),
		  "quote or backslash badly escaped:\n%s", res.out);
	/* Valid UTF-8 with a control character: text, the newline escaped. */
	cr_assert(strstr(res.out, "\"value\": \"a\\u000ab\", \"value_encoding\": \"text\""),
		  "%s", res.out);
	cr_assert(strstr(res.out, "\"name\": \"01ff62\", \"name_encoding\": \"hex\""), "%s",
		  res.out);
	snprintf(want, sizeof(want),
		 "{\"name\": \"alpha\", \"name_encoding\": \"text\", \"pid\": %d, "
		 "\"alive\": true, \"regid\": \"%" PRIu64 "\", \"value\": \"ipc://alpha\", "
		 "\"value_encoding\": \"text\", \"global\": false}",
		 (int)getpid(), e.regid);
	cr_assert(strstr(res.out, want), "want %s in:\n%s", want, res.out);
	cr_assert(strstr(res.out, "\"value\": \"\", \"value_encoding\": \"text\""));
	run_free(&res);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, global_names_are_listed_as_such)
{
	const char *seg = seg_new("global");
	dr_registry *r = seg_open(seg, 64);
	dr_mailbox *mb;
	struct dr_entry le, ge;
	char line[512], want[256];
	struct run res;

	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_register(r, "x", "here", 4), 0);
	cr_assert_eq(dr_serve_global(mb, "x", "everywhere", 10), 0);
	cr_assert_eq(dr_whereis(r, "x", &le), 0);
	cr_assert_eq(dr_whereis_global(r, "x", &ge, NULL, 0, 0), 0);

	res = SHMDUMP("--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	line_starting(res.out, "NAME ", line, sizeof(line));
	cr_assert(strstr(line, " SCOPE "), "%s", line);
	snprintf(want, sizeof(want), "\nx    %8d alive local  %20" PRIu64 " here\n",
		 (int)getpid(), le.regid);
	cr_assert(strstr(res.out, want), "want '%s' in:\n%s", want, res.out);
	snprintf(want, sizeof(want), "\nx    %8d alive global %20" PRIu64 " everywhere\n",
		 (int)getpid(), ge.regid);
	cr_assert(strstr(res.out, want), "want '%s' in:\n%s", want, res.out);
	cr_assert(strstr(res.out, "\n2 names (2 live, 0 dead), capacity 64\n"), "%s", res.out);
	run_free(&res);

	res = SHMDUMP("--json", "--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert(json_valid(res.out), "not valid JSON:\n%s", res.out);
	cr_assert(strstr(res.out, "\"value\": \"here\", \"value_encoding\": \"text\", "
			 "\"global\": false}"), "%s", res.out);
	cr_assert(strstr(res.out, "\"value\": \"everywhere\", \"value_encoding\": \"text\", "
			 "\"global\": true}"), "%s", res.out);
	run_free(&res);
	dr_mailbox_close(mb);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* The text after "key: " in shmdump --stats output, into buf. */
static const char *stat_text(const char *text, const char *key, char *buf, size_t len)
{
	char prefix[64], line[256];

	snprintf(prefix, sizeof(prefix), "%s: ", key);
	line_starting(text, prefix, line, sizeof(line));
	snprintf(buf, len, "%s", line + strlen(prefix));
	return buf;
}

Test(shmdump, stats_show_the_bridge_and_the_view)
{
	const char *seg = seg_new("bridge");
	dr_registry *r = seg_open(seg, 64);
	struct dr_host h[2];
	dr_mailbox *mb;
	char buf[256], want[256];
	struct run res;

	/* Never a bridge: this host alone, by its node name. */
	res = SHMDUMP("--stats", "--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert_str_eq(stat_text(res.out, "bridge", buf, sizeof(buf)), "never");
	cr_assert_eq(stat_value(res.out, "view_epoch"), 0);
	cr_assert_eq(stat_value(res.out, "view_hosts"), 1);
	cr_assert(strstr(stat_text(res.out, "host", buf, sizeof(buf)), " up self "), "%s", buf);
	run_free(&res);

	/* This process as the bridge, with a view of two hosts. */
	memset(h, 0, sizeof(h));
	snprintf(h[0].id, sizeof(h[0].id), "alpha");
	snprintf(h[0].rpc, sizeof(h[0].rpc), "tcp://alpha:7000");
	h[0].state = DR_HOST_UP;
	h[0].self = 1;
	h[0].incarnation = 11;
	snprintf(h[1].id, sizeof(h[1].id), "beta");
	h[1].state = DR_HOST_SUSPECT;
	cr_assert_eq(dr_mailbox_open(r, &mb), 0);
	cr_assert_eq(dr_admin_bridge_claim(mb, NULL), 0);
	cr_assert_eq(dr_admin_view_publish(mb, h, 2, 9), 0);
	res = SHMDUMP("--stats", "--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert_eq(stat_value(res.out, "bridge"), (uint64_t)getpid());
	cr_assert_eq(stat_value(res.out, "view_epoch"), 9);
	cr_assert_eq(stat_value(res.out, "view_hosts"), 2);
	cr_assert(strstr(res.out, "\nhost: alpha up self incarnation 11 rpc tcp://alpha:7000\n"),
		  "%s", res.out);
	cr_assert(strstr(res.out, "\nhost: beta suspect incarnation 0 rpc -\n"), "%s", res.out);
	run_free(&res);
	res = SHMDUMP("--json", "--segment", seg);
	cr_assert(json_valid(res.out), "not valid JSON:\n%s", res.out);
	snprintf(want, sizeof(want), "\"bridge\": {\"state\": \"running\", \"pid\": %d}",
		 (int)getpid());
	cr_assert(strstr(res.out, want), "%s", res.out);
	cr_assert(strstr(res.out, "\"view\": {\"epoch\": \"9\", \"hosts\": [{\"id\": \"alpha\""),
		  "%s", res.out);
	run_free(&res);

	/* The bridge stops: the last view stays on show. */
	dr_admin_bridge_release(mb);
	res = SHMDUMP("--stats", "--segment", seg);
	cr_assert_str_eq(stat_text(res.out, "bridge", buf, sizeof(buf)), "none (one ran before)");
	cr_assert_eq(stat_value(res.out, "view_epoch"), 9);
	run_free(&res);
	res = SHMDUMP("--json", "--segment", seg);
	cr_assert(strstr(res.out, "\"bridge\": {\"state\": \"stopped\", \"pid\": 0}"), "%s",
		  res.out);
	run_free(&res);
	dr_mailbox_close(mb);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, check_ok_on_a_healthy_segment)
{
	const char *seg = seg_new("ok");
	dr_registry *r = populate(seg);
	struct run res = SHMDUMP("--check", "--segment", seg);

	cr_assert_eq(res.status, 0, "stdout: %s stderr: %s", res.out, res.err);
	cr_assert_str_eq(res.out, "ok\n");
	run_free(&res);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, check_fails_on_a_corrupted_table)
{
	const char *seg = seg_new("corrupt");
	dr_registry *r = seg_open(seg, 256);
	struct holder h;
	char path[DR_SEGMENT_MAX + 32];
	unsigned char ff[4096];
	struct stat st;
	struct run res;
	int fd;

	/* The test's own handle is closed before the damage (its dr_close
	 * would walk the damaged chains); a child holds the names. Everything
	 * after the header is overwritten: slots, states, buckets, entries
	 * and lanes. */
	dr_close(r);
	h = holder_start(seg, "n", 256, false);
	seg_path(path, sizeof(path), seg);
	fd = open(path, O_RDWR);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_gt(st.st_size, 2 * 4096);
	memset(ff, 0xff, sizeof(ff));
	for (off_t off = 4096; off < st.st_size; off += (off_t)sizeof(ff)) {
		size_t n = (size_t)(st.st_size - off) < sizeof(ff) ? (size_t)(st.st_size - off)
								   : sizeof(ff);
		cr_assert_eq(pwrite(fd, ff, n, off), (ssize_t)n);
	}
	close(fd);

	res = SHMDUMP("--check", "--segment", seg);
	cr_assert_eq(res.status, 2, "status %d, stdout: %s stderr: %s", res.status, res.out,
		     res.err);
	cr_assert(strncmp(res.out, "check failed: ", 14) == 0 && strlen(res.out) > 15,
		  "no message: %s", res.out);
	run_free(&res);
	holder_kill(&h);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, reap_counts_the_names_of_a_dead_process)
{
	const char *seg = seg_new("reap");
	dr_registry *r = seg_open(seg, 64);
	struct holder h = holder_start(seg, "dead", 5, false);
	struct run res;

	holder_kill(&h);
	cr_assert_eq(dr_whereis(r, "dead.0", NULL), 0, "visible until reaped");
	res = SHMDUMP("--reap", "--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert_str_eq(res.out, "reaped 5 names\n");
	cr_assert_eq(dr_whereis(r, "dead.0", NULL), -ENOENT);
	run_free(&res);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, missing_segment_is_an_error_and_is_not_created)
{
	const char *seg = seg_new("missing");
	char path[DR_SEGMENT_MAX + 32], want[DR_SEGMENT_MAX + 64];
	struct run res = SHMDUMP("--segment", seg);

	snprintf(want, sizeof(want), "shmdump: segment '%s' does not exist\n", seg);
	cr_assert_eq(res.status, 1);
	cr_assert_str_eq(res.err, want);
	cr_assert_str_empty(res.out);
	seg_path(path, sizeof(path), seg);
	cr_assert_neq(access(path, F_OK), 0, "shmdump created %s", path);
	run_free(&res);
}

Test(shmdump, library_error_names_segment_and_reason)
{
	const char *seg = seg_new("trunc");
	char path[DR_SEGMENT_MAX + 32], want[DR_SEGMENT_MAX + 64];
	struct run res;
	int fd;

	/* 100 bytes: not even a header. */
	seg_path(path, sizeof(path), seg);
	fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(ftruncate(fd, 100), 0);
	close(fd);
	res = SHMDUMP("--segment", seg);
	snprintf(want, sizeof(want), "shmdump: %s: %s\n", seg, dr_strerror(-EBADMSG));
	cr_assert_eq(res.status, 1);
	cr_assert_str_eq(res.err, want);
	run_free(&res);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, bad_usage_exits_64)
{
	struct run res = SHMDUMP("--bogus");

	cr_assert_eq(res.status, 64);
	cr_assert(strstr(res.err, "usage: shmdump"), "%s", res.err);
	cr_assert_str_empty(res.out);
	run_free(&res);

	res = SHMDUMP("--stats", "extra");
	cr_assert_eq(res.status, 64);
	cr_assert(strstr(res.err, "usage: shmdump"), "%s", res.err);
	run_free(&res);

	res = SHMDUMP("--segment");
	cr_assert_eq(res.status, 64);
	run_free(&res);
}

Test(shmdump, help_and_version)
{
	struct run res = SHMDUMP("--help");

	cr_assert_eq(res.status, 0);
	cr_assert(strstr(res.out, "usage: shmdump"));
	cr_assert(strstr(res.out, "--check"));
	run_free(&res);
	res = SHMDUMP("--version");
	cr_assert_eq(res.status, 0);
	cr_assert(strncmp(res.out, "shmdump ", 8) == 0, "%s", res.out);
	run_free(&res);
}

Test(demo, runs_every_step_on_its_own_segment)
{
	const char *seg = seg_new("demo");
	struct run res = run_tool("DISTREG_DEMO", (const char *const[]){ "--segment", seg, NULL },
				  NULL);
	static const char *const sections[] = {
		"4 workers register 1000 names each",
		"found 4000 of 4000 names",
		"== SIGKILL worker 2",
		"1000 names of worker 2, 1000 with a dead owner",
		"reaped 1000 names; worker 2 now has 0",
		"dr_whereis hits:",
		"pairs per second",
		"worker 3: closed its handle and exited",
		"== shmdump --stats",
		"capacity: 65536\nlive: 0\n",
	};
	char last[512], path[256];
	size_t n;

	cr_assert_eq(res.status, 0, "status %d\nstdout:\n%s\nstderr:\n%s", res.status, res.out,
		     res.err);
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
		cr_assert(strstr(res.out, sections[i]), "\"%s\" missing from:\n%s",
			  sections[i], res.out);
	/* shmdump's output, then the segment removed, as the last line says. */
	snprintf(last, sizeof(last), "load: 0.00%%\n\n== segment '%s' removed (--keep keeps it)\n",
		 seg);
	n = strlen(res.out);
	cr_assert(n > strlen(last) && strcmp(res.out + n - strlen(last), last) == 0, "%s",
		  res.out);
	run_free(&res);
	seg_path(path, sizeof(path), seg);
	cr_assert(access(path, F_OK) != 0 && errno == ENOENT, "%s is still there", path);
	cr_assert_eq(dr_unlink(seg), -ENOENT);
}

/* With --keep, or on a segment that was there before, the demo leaves the
 * segment in place and says so. */
Test(demo, keeps_the_segment_if_asked_or_if_it_was_there)
{
	const char *seg = seg_new("demokeep");
	char path[256], want[512];
	struct run res = run_tool("DISTREG_DEMO",
				  (const char *const[]){ "--segment", seg, "--keep", NULL }, NULL);

	cr_assert_eq(res.status, 0, "status %d\nstderr:\n%s", res.status, res.err);
	snprintf(want, sizeof(want), "\n== segment '%s' kept (--keep); `distreg unlink %s` "
		 "removes it\n", seg, seg);
	cr_assert(strstr(res.out, want), "%s", res.out);
	run_free(&res);
	seg_path(path, sizeof(path), seg);
	cr_assert_eq(access(path, F_OK), 0, "%s is gone", path);

	/* It exists now: a second run keeps it without being asked. */
	res = run_tool("DISTREG_DEMO", (const char *const[]){ "--segment", seg, NULL }, NULL);
	cr_assert_eq(res.status, 0, "status %d\nstderr:\n%s", res.status, res.err);
	snprintf(want, sizeof(want), "\n== segment '%s' kept: it existed before the demo; "
		 "`distreg unlink %s` removes it\n", seg, seg);
	cr_assert(strstr(res.out, want), "%s", res.out);
	run_free(&res);
	cr_assert_eq(access(path, F_OK), 0, "%s is gone", path);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(demo, help)
{
	struct run res = run_tool("DISTREG_DEMO", (const char *const[]){ "--help", NULL }, NULL);

	cr_assert_eq(res.status, 0);
	cr_assert(strstr(res.out, "usage: distreg-demo [--segment NAME] [--keep]"));
	run_free(&res);
}

/* ---------------------------------------------------------------------- */
/* Read-only inspection */

/* The whole segment file, read into memory; *len its size. */
static unsigned char *file_bytes(const char *seg, size_t *len)
{
	char path[DR_SEGMENT_MAX + 32];
	struct stat st;
	unsigned char *buf;
	int fd;

	seg_path(path, sizeof(path), seg);
	fd = open(path, O_RDONLY);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	cr_assert_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size);
	cr_assert_not_null(buf);
	cr_assert_eq(pread(fd, buf, (size_t)st.st_size, 0), (ssize_t)st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

Test(shmdump, inspection_reads_only_and_changes_nothing)
{
	const char *seg = seg_new("ro");
	dr_registry *r = seg_open(seg, 64);
	struct holder h;
	unsigned char *before, *after;
	size_t nb, na;
	struct run c1, c2, l, st;

	/* A dead owner's names: what a read-write open would reap, and what
	 * an attach would change (a process slot, a reader slot). Nobody
	 * alive holds the segment open while shmdump looks. */
	dr_close(r);
	h = holder_start(seg, "dead", 3, false);
	holder_kill(&h);
	before = file_bytes(seg, &nb);

	c1 = SHMDUMP("--check", "--segment", seg);
	l = SHMDUMP("--segment", seg);
	st = SHMDUMP("--stats", "--segment", seg);
	c2 = SHMDUMP("--check", "--segment", seg);
	cr_assert_eq(c1.status, 0, "stdout: %s stderr: %s", c1.out, c1.err);
	cr_assert_eq(c2.status, c1.status);
	cr_assert_str_eq(c1.out, c2.out, "two checks differ:\n%s\n%s", c1.out, c2.out);
	cr_assert_str_eq(c1.err, c2.err);
	cr_assert_eq(l.status, 0, "stderr: %s", l.err);
	cr_assert(strstr(l.out, "\n3 names (0 live, 3 dead), capacity 64\n"), "%s", l.out);
	cr_assert_eq(st.status, 0, "stderr: %s", st.err);
	cr_assert_eq(stat_value(st.out, "procs"), 0, "shmdump took a slot:\n%s", st.out);

	after = file_bytes(seg, &na);
	cr_assert_eq(na, nb);
	cr_assert(memcmp(before, after, nb) == 0, "shmdump changed the segment's bytes");

	/* --reap is the explicit read-write mode: it does change them. */
	run_free(&c1);
	c1 = SHMDUMP("--reap", "--segment", seg);
	cr_assert_eq(c1.status, 0, "stderr: %s", c1.err);
	cr_assert_str_eq(c1.out, "reaped 3 names\n");
	free(after);
	after = file_bytes(seg, &na);
	cr_assert(memcmp(before, after, nb) != 0);
	free(before);
	free(after);
	run_free(&c1);
	run_free(&c2);
	run_free(&l);
	run_free(&st);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, inspection_needs_only_read_permission)
{
	const char *seg = seg_new("perm");
	dr_registry *r = populate(seg);
	char path[DR_SEGMENT_MAX + 32];
	const char *exe = getenv("SHMDUMP");
	struct run res;

	cr_assert_not_null(exe);
	seg_path(path, sizeof(path), seg);
	cr_assert_eq(chmod(path, 0444), 0);
	if (geteuid() != 0) {
		/* The owner, without write permission: O_RDWR would fail. */
		res = SHMDUMP("--check", "--segment", seg);
	} else if (access("/usr/bin/setpriv", X_OK) == 0) {
		/* Root may write anything: run it as nobody instead, for whom
		 * the file (owned by root, mode 0444) is readable only. */
		res = run_exe("/usr/bin/setpriv",
			      (const char *const[]){ "--reuid=65534", "--regid=65534",
						     "--clear-groups", exe, "--check",
						     "--segment", seg, NULL },
			      NULL);
		if (res.status == 127 || res.status == 126 ||
		    (strstr(res.err, "Permission denied") && !strstr(res.err, "shmdump:"))) {
			fprintf(stderr, "inspection_needs_only_read_permission: nobody cannot "
					"run %s (%s); the read-only open is not tested\n",
				exe, res.err);
			run_free(&res);
			goto out;
		}
	} else {
		fprintf(stderr, "inspection_needs_only_read_permission: root and no setpriv: "
				"the read-only open is not tested\n");
		goto out;
	}
	cr_assert_eq(res.status, 0, "status %d stdout: %s stderr: %s", res.status, res.out,
		     res.err);
	cr_assert_str_eq(res.out, "ok\n");
	run_free(&res);
out:
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* A corrupt body must not look healthy */

/* A segment of capacity 64 whose names a live child holds; the test's own
 * handle closed (its dr_close would walk damaged chains). */
static struct holder corrupt_base(const char *seg)
{
	dr_registry *r = seg_open(seg, 64);

	dr_close(r);
	return holder_start(seg, "n", 20, false);
}

static void expect_corrupt(const char *seg, const char *action)
{
	struct run res = action ? SHMDUMP(action, "--segment", seg) : SHMDUMP("--segment", seg);

	cr_assert_eq(res.status, 2, "%s: status %d, stdout: %s stderr: %s",
		     action ? action : "listing", res.status, res.out, res.err);
	cr_assert(strstr(res.err, "segment is corrupt: "), "%s: stderr: %s",
		  action ? action : "listing", res.err);
	if (action && strcmp(action, "--reap") == 0)
		cr_assert(strstr(res.err, "nothing reaped"), "%s", res.err);
	run_free(&res);
}

Test(shmdump, listing_and_reap_report_random_bucket_words)
{
	const char *seg = seg_new("rndbkt");
	struct holder h = corrupt_base(seg);
	size_t len;
	uint8_t *base = segmap_open(seg, &len);
	struct dri_header *hd = (struct dri_header *)base;
	uint32_t *buckets;
	unsigned seed = 12345;

	cr_assert_not_null(base);
	buckets = (uint32_t *)(base + hd->off_buckets);
	for (uint32_t b = 0; b < hd->nbuckets; b++)
		buckets[b] = (uint32_t)rand_r(&seed) ^ ((uint32_t)rand_r(&seed) << 16);
	munmap(base, len);

	expect_corrupt(seg, NULL);
	expect_corrupt(seg, "--json");
	expect_corrupt(seg, "--reap");
	holder_kill(&h);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, listing_and_reap_report_a_cycle)
{
	const char *seg = seg_new("cycle");
	struct holder h = corrupt_base(seg);
	size_t len;
	uint8_t *base = segmap_open(seg, &len);
	struct dri_header *hd = (struct dri_header *)base;
	struct dri_entry *e;
	uint32_t *buckets;
	bool done = false;

	cr_assert_not_null(base);
	buckets = (uint32_t *)(base + hd->off_buckets);
	e = (struct dri_entry *)(base + hd->off_entries);
	/* A bucket's first entry links back to itself. */
	for (uint32_t b = 0; b < hd->nbuckets && !done; b++) {
		if (buckets[b] & DRI_LINK_IDX_MASK) {
			e[DRI_LINK_IDX(buckets[b])].next = buckets[b];
			done = true;
		}
	}
	cr_assert(done);
	munmap(base, len);

	expect_corrupt(seg, NULL);
	expect_corrupt(seg, "--reap");
	holder_kill(&h);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* ---------------------------------------------------------------------- */
/* UTF-8, the JSON format version, versions */

Test(shmdump, utf8_names_and_values_are_text)
{
	const char *seg = seg_new("utf8");
	dr_registry *r = seg_open(seg, 64);
	char line[512];
	struct run res;

	cr_assert_eq(dr_register(r, "café", "crème brûlée", strlen("crème brûlée")), 0);
	cr_assert_eq(dr_register(r, "tab\there", "a\\b", 3), 0);
	res = SHMDUMP("--json", "--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	cr_assert(json_valid(res.out), "not valid JSON:\n%s", res.out);
	cr_assert(strncmp(res.out, "{\n  \"format\": 1,\n", 17) == 0, "%s", res.out);
	cr_assert(strstr(res.out, "\"name\": \"café\", \"name_encoding\": \"text\""), "%s",
		  res.out);
	cr_assert(strstr(res.out, "\"value\": \"crème brûlée\", \"value_encoding\": \"text\""),
		  "%s", res.out);
	cr_assert(strstr(res.out, "\"name\": \"tab\\u0009here\", \"name_encoding\": \"text\""),
		  "%s", res.out);
	run_free(&res);

	res = SHMDUMP("--segment", seg);
	cr_assert_eq(res.status, 0, "stderr: %s", res.err);
	line_starting(res.out, "café ", line, sizeof(line));
	cr_assert(strstr(line, " crème brûlée"), "%s", line);
	/* Control characters and the backslash escaped. */
	line_starting(res.out, "tab\\x09here ", line, sizeof(line));
	cr_assert(strstr(line, " a\\\\b"), "%s", line);
	run_free(&res);
	dr_close(r);
	cr_assert_eq(dr_unlink(seg), 0);
}

Test(shmdump, version_names_library_and_segment_layout)
{
	uint32_t layout = 0;
	const char *v = dr_version(&layout);
	char want[128];
	struct run res;

	cr_assert_not_null(v);
	cr_assert(strchr(v, '.'), "library version %s", v);
	cr_assert_gt(layout, 0);
	cr_assert_eq(dr_version(NULL), v);
	res = SHMDUMP("--version");
	cr_assert_eq(res.status, 0);
	snprintf(want, sizeof(want), "\nlibrary: libdistreg %s\n", v);
	cr_assert(strstr(res.out, want), "want %s in:\n%s", want, res.out);
	snprintf(want, sizeof(want), "\nsegment layout: %u\n", layout);
	cr_assert(strstr(res.out, want), "want %s in:\n%s", want, res.out);
	run_free(&res);
}

/* Read-only inspection holds back no reuse: entries are unregistered and
 * reused under it. Every read is bounded, so it never crashes; the
 * listing is a best-effort snapshot. */
Test(shmdump, readonly_listing_of_a_busy_segment_never_crashes)
{
	const char *seg = seg_new("busy");
	dr_registry *r = seg_open(seg, 64);
	pid_t churn;
	struct run res;

	dr_close(r);
	churn = fork();
	cr_assert_neq(churn, -1);
	if (churn == 0) {
		struct dr_options o = { .segment = seg };
		char name[64], val[DR_VALUE_MAX];
		dr_registry *c;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dr_open(&o, &c) != 0)
			_exit(1);
		for (unsigned i = 0;; i++) {
			snprintf(name, sizeof(name), "churn.%u.%s", i % 40,
				 i % 3 ? "a-longer-name-that-goes-to-the-extension-area" : "x");
			memset(val, 'a' + (int)(i % 26), sizeof(val));
			(void)dr_register(c, name, val, i % sizeof(val));
			if (i % 2)
				(void)dr_unregister(c, name);
		}
	}
	for (int i = 0; i < 40; i++) {
		res = i % 4 == 3 ? SHMDUMP("--json", "--segment", seg)
				 : SHMDUMP("--segment", seg);
		cr_assert_lt(res.status, 128, "shmdump died of signal %d", res.status - 128);
		cr_assert(res.status == 0 || res.status == 2, "status %d: %s", res.status, res.err);
		cr_assert(strstr(res.out, i % 4 == 3 ? "\"summary\": {" : ", capacity 64\n"),
			  "%s", res.out);
		run_free(&res);
	}
	kill(churn, SIGKILL);
	waitpid(churn, NULL, 0);
	cr_assert_eq(dr_unlink(seg), 0);
}

/* A bad segment name: the message names the rule it breaks. */
Test(shmdump, bad_segment_name_names_the_rule)
{
	char longname[DR_SEGMENT_MAX + 2];
	static const struct {
		const char *name, *rule;
	} bad[] = {
		{ "a/b", "no '/' in a segment name" },
		{ "", "segment names are 1 to 200 bytes" },
		{ "..", "'.' and '..' are not segment names" },
		{ NULL, "segment names are 1 to 200 bytes" },
	};

	memset(longname, 'x', DR_SEGMENT_MAX + 1);
	longname[DR_SEGMENT_MAX + 1] = 0;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *name = bad[i].name ? bad[i].name : longname;
		struct run res = SHMDUMP("--segment", name);

		cr_assert_eq(res.status, 1, "%s", name);
		cr_assert(strstr(res.err, bad[i].rule), "'%s': %s", name, res.err);
		cr_assert_null(strstr(res.err, "nvalid argument"), "'%s': %s", name, res.err);
		run_free(&res);
	}
}

/* A symbolic link at the segment's path: segments must be regular files. */
Test(shmdump, symlink_segment_says_regular_files)
{
	const char *seg = seg_new("symlink");
	char path[DR_SEGMENT_MAX + 32];
	struct run res;

	seg_path(path, sizeof(path), seg);
	cr_assert_eq(symlink("/dev/null", path), 0);
	res = SHMDUMP("--segment", seg);
	cr_assert_eq(res.status, 1);
	cr_assert(strstr(res.err, "segments must be regular files"), "%s", res.err);
	run_free(&res);
	unlink(path);
}
