/*
 * config.c - the bridge's settings: defaults, the config file (inih), the
 * command line.
 *
 * One setter checks a value whatever layer it comes from, and remembers
 * where it came from, so that a rule that involves two settings (down-after
 * against heartbeat, an address against the key file) can name the file and
 * line, or the option, of the value to fix. The first error wins and ends
 * the load: one message, exit status 2, nothing started.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>

#include <ini.h>
#include <sodium.h>

#include "config.h"

#ifndef DISTREG_VERSION
#define DISTREG_VERSION "unknown"
#endif

enum key {
	K_SEGMENT,
	K_HOST,
	K_BUS,
	K_RPC,
	K_PEER,
	K_KEY_FILE,
	K_HEARTBEAT,
	K_DOWN_AFTER,
	K_DIENOW_SIGTERM,
	K_BUSY_POLL,
	K_LOG_LEVEL,
	K_COUNT,
	/* Options only. */
	K_CONFIG = K_COUNT,
	K_HELP,
	K_VERSION,
	K_NONE,
};

static const char *const key_names[] = {
    [K_SEGMENT] = "segment",
    [K_HOST] = "host",
    [K_BUS] = "bus",
    [K_RPC] = "rpc",
    [K_PEER] = "peer",
    [K_KEY_FILE] = "key-file",
    [K_HEARTBEAT] = "heartbeat-ms",
    [K_DOWN_AFTER] = "down-after-ms",
    [K_DIENOW_SIGTERM] = "dienow-sigterm-ms",
    [K_BUSY_POLL] = "busy-poll-us",
    [K_LOG_LEVEL] = "log-level",
    [K_CONFIG] = "config",
    [K_HELP] = "help",
    [K_VERSION] = "version",
};

/* Where a value came from: a default (what names it), a file's line, or an
 * option. */
struct origin {
	enum { AT_DEFAULT, AT_FILE, AT_OPTION } kind;
	const char *what; /* AT_DEFAULT: "$DISTREG_SEGMENT", "the node name" */
	int line;	  /* AT_FILE */
};

struct loader {
	struct bridge_config *cfg;
	char *err;
	size_t errlen;
	bool failed;
	struct origin from[K_COUNT];
	bool given[K_COUNT]; /* in the layer being read */
	bool peers_replaced; /* the command line's first --peer dropped the file's */
	struct origin peer_from[CONFIG_PEERS_MAX];
	/* The file's reader. */
	FILE *f;
	char *line;
	size_t line_cap;
	int lineno;
	int read_errno;
};

static void failf(struct loader *ld, struct origin at, enum key k, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* The first error only: "file:line: key: ...", "--key: ...", "key (the
 * node name): ..."; K_NONE for a line that is not about one key. */
static void failf(struct loader *ld, struct origin at, enum key k, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (ld->failed)
		return;
	ld->failed = true;
	switch (at.kind) {
	case AT_FILE:
		n = snprintf(ld->err, ld->errlen, "%s:%d: %s%s", ld->cfg->config_file, at.line,
			     k == K_NONE ? "" : key_names[k], k == K_NONE ? "" : ": ");
		break;
	case AT_OPTION:
		n = snprintf(ld->err, ld->errlen, "--%s: ", key_names[k]);
		break;
	case AT_DEFAULT:
		n = snprintf(ld->err, ld->errlen, "%s (%s): ", key_names[k], at.what);
		break;
	}
	if (n < 0 || (size_t)n >= ld->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(ld->err + n, ld->errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

/* ---------------------------------------------------------------------- */
/* Values */

static bool printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* Copy s into dst (cap bytes) if it fits. */
static bool copy(char *dst, size_t cap, const char *s)
{
	size_t n = strlen(s);

	if (n >= cap)
		return false;
	memcpy(dst, s, n + 1);
	return true;
}

/*
 * A nanomsg URL the bridge accepts: NULL, or why not. tcp://HOST:PORT (HOST
 * a name, an IPv4 address, [IPv6], or nanomsg's IFACE;HOST) or ipc://PATH.
 */
static const char *url_problem(const char *url)
{
	size_t n = strlen(url);

	if (n == 0)
		return "empty";
	if (n > DR_ADDR_MAX)
		return "longer than 127 bytes";
	if (!printable(url))
		return "contains a space or a control character";
	if (strncmp(url, "ipc://", 6) == 0) {
		if (n == 6)
			return "ipc:// without a path";
		if (n - 6 >= sizeof(((struct sockaddr_un *)0)->sun_path))
			return "ipc path of 108 bytes or more (a socket path is at most 107)";
		return NULL;
	}
	if (strncmp(url, "tcp://", 6) == 0) {
		const char *host = url + 6, *colon = strrchr(host, ':');
		char *end;
		long port;

		if (!colon || colon == host)
			return "tcp:// needs HOST:PORT";
		if (host[0] == '[' ? colon[-1] != ']'
				   : memchr(host, ':', (size_t)(colon - host)) != NULL)
			return "an IPv6 address goes in brackets: tcp://[ADDR]:PORT";
		errno = 0;
		port = strtol(colon + 1, &end, 10);
		if (colon[1] < '0' || colon[1] > '9' || *end || errno || port < 1 || port > 65535)
			return "the port is not a number from 1 to 65535";
		return NULL;
	}
	return "not a tcp:// or ipc:// URL";
}

/* Whether a valid URL reaches this host only. */
static bool url_loopback(const char *url)
{
	char host[DR_ADDR_MAX + 1];
	const char *h = url + 6;
	struct in_addr a4;
	size_t hl;

	if (strncmp(url, "ipc://", 6) == 0)
		return true;
	hl = (size_t)(strrchr(h, ':') - h);
	memcpy(host, h, hl);
	host[hl] = '\0';
	if (strcmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
		return true;
	/* 127.0.0.0/8, written as four numbers; IFACE;HOST is never loopback
	 * (it names a local interface to dial from). */
	return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

static bool segment_ok(const char *s)
{
	size_t n = strlen(s);

	return n >= 1 && n <= DR_SEGMENT_MAX && !strchr(s, '/') && strcmp(s, ".") != 0 &&
	       strcmp(s, "..") != 0;
}

/* A whole number of unit (plural: "milliseconds") from min to max. */
static bool count_value(struct loader *ld, struct origin at, enum key k, const char *v,
			unsigned min, unsigned max, const char *unit, unsigned *out)
{
	unsigned long long n = 0;
	const char *p = v;

	if (!*p) {
		failf(ld, at, k, "no value (%s, %u to %u)", unit, min, max);
		return false;
	}
	for (; *p; p++) {
		if (*p < '0' || *p > '9') {
			failf(ld, at, k, "'%s' is not a whole number of %s", v, unit);
			return false;
		}
		if (n <= max)
			n = n * 10 + (unsigned)(*p - '0');
	}
	if (n < min || n > max) {
		failf(ld, at, k, "%s is out of range (%u to %u %s)", v, min, max, unit);
		return false;
	}
	*out = (unsigned)n;
	return true;
}

static bool ms_value(struct loader *ld, struct origin at, enum key k, const char *v, unsigned min,
		     unsigned max, unsigned *out)
{
	return count_value(ld, at, k, v, min, max, "milliseconds", out);
}

/* Set key k to v, as given at `at`. */
static void set(struct loader *ld, enum key k, const char *v, struct origin at)
{
	struct bridge_config *c = ld->cfg;
	const char *why;

	if (k != K_PEER && ld->given[k]) {
		if (at.kind == AT_FILE)
			failf(ld, at, k, "set twice in the file (first at line %d)",
			      ld->from[k].line);
		else
			failf(ld, at, k, "given twice");
		return;
	}
	ld->given[k] = true;
	ld->from[k] = at;

	switch (k) {
	case K_SEGMENT:
		if (!segment_ok(v) || !copy(c->segment, sizeof(c->segment), v))
			failf(ld, at, k,
			      "'%s' is not a segment name (1 to %d bytes, no '/', not . or ..)", v,
			      DR_SEGMENT_MAX);
		break;
	case K_HOST:
		if (!wire_host_ok(v, strlen(v)) || !copy(c->host, sizeof(c->host), v))
			failf(ld, at, k,
			      "'%s' is not a host id (1 to %d printable ASCII bytes, no space)", v,
			      DR_HOST_MAX);
		break;
	case K_BUS:
	case K_RPC:
	case K_PEER:
		why = url_problem(v);
		if (why) {
			failf(ld, at, k, "'%s': %s", v, why);
			break;
		}
		if (k == K_BUS) {
			copy(c->bus, sizeof(c->bus), v);
			break;
		}
		if (k == K_RPC) {
			copy(c->rpc, sizeof(c->rpc), v);
			break;
		}
		if (at.kind == AT_OPTION && !ld->peers_replaced) {
			ld->peers_replaced = true;
			c->npeers = 0;
		}
		for (unsigned i = 0; i < c->npeers; i++)
			if (strcmp(c->peers[i], v) == 0)
				return; /* listed already */
		if (c->npeers == CONFIG_PEERS_MAX) {
			failf(ld, at, k, "more than %d peers", CONFIG_PEERS_MAX);
			break;
		}
		ld->peer_from[c->npeers] = at;
		copy(c->peers[c->npeers++], sizeof(c->peers[0]), v);
		break;
	case K_KEY_FILE:
		if (!*v || !copy(c->key_file, sizeof(c->key_file), v))
			failf(ld, at, k, "'%s' is not a file name", v);
		break;
	case K_HEARTBEAT:
		ms_value(ld, at, k, v, CONFIG_HEARTBEAT_MIN_MS, CONFIG_HEARTBEAT_MAX_MS,
			 &c->heartbeat_ms);
		break;
	case K_DOWN_AFTER:
		ms_value(ld, at, k, v, 1, CONFIG_DOWN_AFTER_MAX_MS, &c->down_after_ms);
		break;
	case K_DIENOW_SIGTERM:
		ms_value(ld, at, k, v, 0, CONFIG_DIENOW_SIGTERM_MAX_MS, &c->dienow_sigterm_ms);
		break;
	case K_BUSY_POLL:
		count_value(ld, at, k, v, 0, CONFIG_BUSY_POLL_MAX_US, "microseconds",
			    &c->busy_poll_us);
		break;
	case K_LOG_LEVEL:
		if (log_level_parse(v, &c->log_level) < 0)
			failf(ld, at, k, "'%s' is not a level (error, warn, info or debug)", v);
		break;
	default:
		break;
	}
}

static enum key key_lookup(const char *name)
{
	for (int k = 0; k < K_NONE; k++)
		if (strcmp(name, key_names[k]) == 0)
			return (enum key)k;
	return K_NONE;
}

/* ---------------------------------------------------------------------- */
/* The file */

/*
 * inih's reader, in place of fgets: whole lines of any length through
 * getline(), so that a line too long for inih's buffer is an error here
 * rather than two lines there; the line's number for the handler (Debian's
 * inih passes none); a NUL byte, or a line that is not a section, a
 * key = value or a comment, refused; leading whitespace dropped, so an
 * indented key is a key and never the continuation of the previous value.
 * Returning NULL ends the parse, which it does at the first error.
 */
static char *read_line(char *str, int num, void *stream)
{
	struct loader *ld = stream;
	struct origin at = {.kind = AT_FILE};
	ssize_t n;
	char *s;

	if (ld->failed)
		return NULL;
	errno = 0;
	n = getline(&ld->line, &ld->line_cap, ld->f);
	if (n < 0) {
		ld->read_errno = errno;
		return NULL;
	}
	at.line = ++ld->lineno;
	if ((size_t)n != strlen(ld->line)) {
		failf(ld, at, K_NONE, "a NUL byte: not a text file");
		return NULL;
	}
	while (n > 0 && (ld->line[n - 1] == '\n' || ld->line[n - 1] == '\r'))
		ld->line[--n] = '\0';
	if (num < 4 || (size_t)n > (size_t)num - 3) {
		failf(ld, at, K_NONE, "line longer than %d bytes", num - 3);
		return NULL;
	}
	s = ld->line;
	if (at.line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3; /* a UTF-8 byte order mark, as editors on Windows write */
	for (; *s == ' ' || *s == '\t'; s++)
		;
	/* inih reports a line it cannot parse only at the end, after it has
	 * handed us the lines below it: catch it here, so that the first
	 * error in the file is the one reported. */
	if (*s && *s != ';' && *s != '#' && !strpbrk(s, *s == '[' ? "]" : "=:")) {
		failf(ld, at, K_NONE, "not a 'key = value' or '[section]' line");
		return NULL;
	}
	memcpy(str, s, strlen(s) + 1);
	return str;
}

static int on_key(void *user, const char *section, const char *name, const char *value)
{
	struct loader *ld = user;
	struct origin at = {.kind = AT_FILE, .line = ld->lineno};
	enum key k = key_lookup(name);

	if (ld->failed)
		return 0;
	if (*section && strcmp(section, "bridge") != 0) {
		failf(ld, at, K_NONE,
		      "'%s' in section [%s]: settings go in [bridge] (or before any section)", name,
		      section);
		return 0;
	}
	if (k >= K_COUNT) {
		failf(ld, at, K_NONE,
		      "unknown key '%s' (keys: segment, host, bus, rpc, peer, key-file, "
		      "heartbeat-ms, down-after-ms, dienow-sigterm-ms, busy-poll-us, log-level)",
		      name);
		return 0;
	}
	set(ld, k, value, at);
	return !ld->failed;
}

static void load_file(struct loader *ld)
{
	struct origin at = {.kind = AT_FILE};
	int rc;

	ld->f = fopen(ld->cfg->config_file, "re");
	if (!ld->f) {
		snprintf(ld->err, ld->errlen, "--config %s: cannot read: %s", ld->cfg->config_file,
			 strerror(errno));
		ld->failed = true;
		return;
	}
	rc = ini_parse_stream(read_line, ld, on_key, ld);
	if (!ld->failed && ld->read_errno) {
		snprintf(ld->err, ld->errlen, "--config %s: cannot read: %s", ld->cfg->config_file,
			 strerror(ld->read_errno));
		ld->failed = true;
	}
	if (!ld->failed && rc != 0) {
		at.line = rc;
		failf(ld, at, K_NONE, "not a 'key = value' or '[section]' line");
	}
	free(ld->line);
	ld->line = NULL;
	fclose(ld->f);
	ld->f = NULL;
}

/* ---------------------------------------------------------------------- */
/* The command line */

/*
 * The option at argv[*i]: its key and value (NULL for --help, --version);
 * *i moves past what it took. false and an error for anything else.
 */
static bool next_option(struct loader *ld, int argc, char *const argv[], int *i, enum key *k,
			const char **value)
{
	const char *a = argv[*i], *eq;
	char name[32];
	size_t nl;

	*value = NULL;
	if (strcmp(a, "-h") == 0) {
		*k = K_HELP;
		return true;
	}
	if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
		snprintf(ld->err, ld->errlen,
			 a[0] == '-' ? "unknown option '%s' (see --help)"
				     : "unexpected argument '%s': the bridge takes options only",
			 a);
		ld->failed = true;
		return false;
	}
	eq = strchr(a + 2, '=');
	nl = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
	*k = K_NONE;
	if (nl < sizeof(name)) {
		memcpy(name, a + 2, nl);
		name[nl] = '\0';
		*k = key_lookup(name);
	}
	if (*k == K_NONE) {
		snprintf(ld->err, ld->errlen, "unknown option '%.*s' (see --help)", (int)nl + 2, a);
		ld->failed = true;
		return false;
	}
	if (*k == K_HELP || *k == K_VERSION) {
		if (eq) {
			snprintf(ld->err, ld->errlen, "--%s takes no value", key_names[*k]);
			ld->failed = true;
			return false;
		}
		return true;
	}
	if (eq) {
		*value = eq + 1;
	} else if (*i + 1 < argc) {
		*value = argv[++*i];
	} else {
		snprintf(ld->err, ld->errlen, "--%s needs a value", key_names[*k]);
		ld->failed = true;
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------------- */

static void defaults(struct loader *ld)
{
	struct bridge_config *c = ld->cfg;
	const char *seg = getenv("DISTREG_SEGMENT");
	struct utsname u;

	if (seg && *seg) {
		ld->from[K_SEGMENT] = (struct origin){AT_DEFAULT, "$DISTREG_SEGMENT", 0};
		/* Checked at the end, if nothing replaces it. */
		snprintf(c->segment, sizeof(c->segment), "%s", seg);
		if (strlen(seg) >= sizeof(c->segment))
			c->segment[0] = '\0';
	} else {
		ld->from[K_SEGMENT] = (struct origin){AT_DEFAULT, "the default", 0};
		strcpy(c->segment, "default");
	}
	ld->from[K_HOST] = (struct origin){AT_DEFAULT, "the node name", 0};
	if (uname(&u) == 0)
		snprintf(c->host, sizeof(c->host), "%.*s", DR_HOST_MAX, u.nodename);
	strcpy(c->bus, CONFIG_DEFAULT_BUS);
	strcpy(c->rpc, CONFIG_DEFAULT_RPC);
	c->heartbeat_ms = CONFIG_DEFAULT_HEARTBEAT_MS;
	c->down_after_ms = CONFIG_DEFAULT_DOWN_AFTER_MS;
	c->busy_poll_us = CONFIG_DEFAULT_BUSY_POLL_US;
	c->log_level = LOG_LEVEL_INFO;
	for (int k = K_BUS; k < K_COUNT; k++)
		ld->from[k] = (struct origin){AT_DEFAULT, "the default", 0};
}

/* The rules between settings, and the key file. */
static void check_all(struct loader *ld)
{
	struct bridge_config *c = ld->cfg;
	const char *seg = getenv("DISTREG_SEGMENT");
	int rc;

	if (ld->from[K_SEGMENT].kind == AT_DEFAULT && !segment_ok(c->segment))
		failf(ld, ld->from[K_SEGMENT], K_SEGMENT,
		      "'%s' is not a segment name (1 to %d bytes, no '/', not . or ..); give "
		      "--segment",
		      seg ? seg : "", DR_SEGMENT_MAX);
	if (ld->from[K_HOST].kind == AT_DEFAULT && !wire_host_ok(c->host, strlen(c->host)))
		failf(
		    ld, ld->from[K_HOST], K_HOST,
		    "'%s' is not a host id (1 to %d printable ASCII bytes, no space); give --host",
		    c->host, DR_HOST_MAX);
	if (c->down_after_ms <= 2 * c->heartbeat_ms) {
		enum key k = ld->from[K_DOWN_AFTER].kind == AT_DEFAULT ? K_HEARTBEAT : K_DOWN_AFTER;

		failf(ld, ld->from[k], k,
		      "down-after-ms (%u) must be more than twice heartbeat-ms (2 x %u = %u)",
		      c->down_after_ms, c->heartbeat_ms, 2 * c->heartbeat_ms);
	}
	if (!c->key_file[0]) {
		static const char rule[] =
		    "is not a loopback address, and there is no key file: without --key-file "
		    "the bridge uses only tcp://127.x.x.x, tcp://[::1], tcp://localhost or "
		    "ipc:// (frames to other hosts must be sealed); give --key-file";

		if (!url_loopback(c->bus))
			failf(ld, ld->from[K_BUS], K_BUS, "'%s' %s", c->bus, rule);
		if (!url_loopback(c->rpc))
			failf(ld, ld->from[K_RPC], K_RPC, "'%s' %s", c->rpc, rule);
		for (unsigned i = 0; i < c->npeers; i++)
			if (!url_loopback(c->peers[i]))
				failf(ld, ld->peer_from[i], K_PEER, "'%s' %s", c->peers[i], rule);
	}
	if (ld->failed || !c->key_file[0])
		return;

	rc = wire_key_load(c->key_file, &c->key);
	if (rc == -EPERM) {
		struct stat st;
		unsigned mode = stat(c->key_file, &st) == 0 ? (unsigned)st.st_mode & 07777 : 0;

		failf(ld, ld->from[K_KEY_FILE], K_KEY_FILE,
		      "%s has mode %04o: group or others may use it; a key file must be 0600 or "
		      "stricter (chmod 600 %s)",
		      c->key_file, mode, c->key_file);
	} else if (rc == -EINVAL) {
		failf(ld, ld->from[K_KEY_FILE], K_KEY_FILE,
		      "%s is not a key: a regular file of 32 raw bytes or 64 hex digits, not all "
		      "zero, is expected",
		      c->key_file);
	} else if (rc < 0) {
		failf(ld, ld->from[K_KEY_FILE], K_KEY_FILE, "%s: cannot read: %s", c->key_file,
		      strerror(-rc));
	}
}

int config_load(int argc, char *const argv[], struct bridge_config *cfg, char *err, size_t errlen)
{
	char spare[1];
	struct loader ld = {.cfg = cfg, .err = err, .errlen = errlen};
	int what = CONFIG_RUN;
	const char *config_file = NULL;
	struct origin opt = {.kind = AT_OPTION};

	if (!err || errlen == 0) {
		ld.err = spare;
		ld.errlen = sizeof(spare);
	}
	ld.err[0] = '\0';
	memset(cfg, 0, sizeof(*cfg));

	/* Pass 1: the options' form, --config, --help and --version. */
	for (int i = 1; i < argc && !ld.failed; i++) {
		enum key k;
		const char *v;

		if (!next_option(&ld, argc, argv, &i, &k, &v))
			break;
		if (k == K_HELP && what == CONFIG_RUN)
			what = CONFIG_HELP;
		else if (k == K_VERSION && what == CONFIG_RUN)
			what = CONFIG_VERSION;
		else if (k == K_CONFIG && config_file) {
			snprintf(ld.err, ld.errlen, "--config given twice");
			ld.failed = true;
		} else if (k == K_CONFIG) {
			config_file = v;
		}
	}
	if (ld.failed)
		goto fail;
	if (what != CONFIG_RUN)
		return what;

	defaults(&ld);
	if (config_file) {
		if (!*config_file ||
		    !copy(cfg->config_file, sizeof(cfg->config_file), config_file)) {
			snprintf(ld.err, ld.errlen, "--config: '%s' is not a file name",
				 config_file);
			ld.failed = true;
			goto fail;
		}
		load_file(&ld);
		if (ld.failed)
			goto fail;
	}

	/* Pass 2: the options, over the file. */
	memset(ld.given, 0, sizeof(ld.given));
	for (int i = 1; i < argc && !ld.failed; i++) {
		enum key k = K_NONE;
		const char *v;

		if (!next_option(&ld, argc, argv, &i, &k, &v))
			break; /* not after pass 1; but never act on a bad one */
		if (k < K_COUNT)
			set(&ld, k, v, opt);
	}
	check_all(&ld);
	if (!ld.failed)
		return CONFIG_RUN;
fail:
	config_finish(cfg);
	return -EINVAL;
}

void config_finish(struct bridge_config *cfg)
{
	if (cfg)
		sodium_memzero(cfg, sizeof(*cfg));
}

const char *config_version(void)
{
	return "distreg-bridge " DISTREG_VERSION;
}

void config_usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: distreg-bridge [OPTION]...\n"
	    "Join this host's distreg segment to a cluster of hosts.\n"
	    "\n"
	    "  --segment NAME      the segment (default $DISTREG_SEGMENT, else \"default\")\n"
	    "  --host ID           this host's id, 1-%d printable bytes (default: the node name)\n"
	    "  --bus URL           where peers' heartbeats arrive (default %s)\n"
	    "  --rpc URL           where peers' calls arrive (default %s)\n"
	    "  --peer BUS_URL      a peer's bus URL to dial; repeatable, up to %d\n"
	    "  --key-file FILE     32 random bytes (raw or hex), mode 0600: seal every frame;\n"
	    "                      without one, only loopback and ipc:// URLs are allowed\n"
	    "  --heartbeat-ms N    heartbeat period, %u-%u (default %u)\n"
	    "  --down-after-ms N   silence that makes a peer down, more than twice the\n"
	    "                      heartbeat (default %u)\n"
	    "  --dienow-sigterm-ms N  SIGTERM a process that still has the mailbox of a\n"
	    "                      global name it lost (dienow) open N ms later; for one\n"
	    "                      worker per process; 0 never (default 0)\n"
	    "  --busy-poll-us N    after a call passes through, look for the next message\n"
	    "                      for N us before sleeping (a wake-up costs more); 0-%u,\n"
	    "                      0 always sleeps (default %u)\n"
	    "  --log-level LEVEL   error, warn, info or debug (default info)\n"
	    "  --config FILE       read these settings (as key = value lines, in [bridge])\n"
	    "                      first; options given here win\n"
	    "  -h, --help          this text\n"
	    "  --version           the version\n"
	    "\n"
	    "URLs are tcp://HOST:PORT or ipc://PATH. A bad option, value or file stops the\n"
	    "bridge before it starts, with exit status %d.\n",
	    DR_HOST_MAX, CONFIG_DEFAULT_BUS, CONFIG_DEFAULT_RPC, CONFIG_PEERS_MAX,
	    CONFIG_HEARTBEAT_MIN_MS, CONFIG_HEARTBEAT_MAX_MS, CONFIG_DEFAULT_HEARTBEAT_MS,
	    CONFIG_DEFAULT_DOWN_AFTER_MS, CONFIG_BUSY_POLL_MAX_US, CONFIG_DEFAULT_BUSY_POLL_US,
	    CONFIG_EXIT_USAGE);
}

void config_print(FILE *f, const struct bridge_config *cfg)
{
	fprintf(f, "[bridge]\n");
	fprintf(f, "segment = %s\n", cfg->segment);
	fprintf(f, "host = %s\n", cfg->host);
	fprintf(f, "bus = %s\n", cfg->bus);
	fprintf(f, "rpc = %s\n", cfg->rpc);
	for (unsigned i = 0; i < cfg->npeers; i++)
		fprintf(f, "peer = %s\n", cfg->peers[i]);
	if (cfg->key_file[0])
		fprintf(f, "key-file = %s\n", cfg->key_file);
	else
		fprintf(f, "; no key-file: frames are not sealed, loopback addresses only\n");
	fprintf(f, "heartbeat-ms = %u\n", cfg->heartbeat_ms);
	fprintf(f, "down-after-ms = %u\n", cfg->down_after_ms);
	fprintf(f, "dienow-sigterm-ms = %u\n", cfg->dienow_sigterm_ms);
	fprintf(f, "busy-poll-us = %u\n", cfg->busy_poll_us);
	fprintf(f, "log-level = %s\n", log_level_name(cfg->log_level));
}
