/*
 * test_config.c - bridge/config.c: defaults, the config file, options, and
 * every rule's error (its message, and that nothing is returned as valid).
 *
 * Criterion runs each test in a process of its own, so setenv() here does
 * not reach the next test.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "config.h"

#define TIMEOUT 30.0
#define MAX_FILES 32

/* Files a test made (mkstemp: unique per test), removed by the .fini. */
static char files[MAX_FILES][64];
static int nfiles;

static void files_fini(void)
{
	for (int i = 0; i < nfiles; i++)
		unlink(files[i]);
	nfiles = 0;
}

TestSuite(config, .timeout = TIMEOUT, .fini = files_fini);

/* A new file with this content and mode; its path. */
static const char *file_with(const char *content, size_t len, mode_t mode)
{
	char *path;
	int fd;

	cr_assert_lt(nfiles, MAX_FILES);
	path = files[nfiles++];
	snprintf(path, sizeof(files[0]), "/tmp/distreg-test-config-XXXXXX");
	fd = mkstemp(path);
	cr_assert_geq(fd, 0, "mkstemp: %s", strerror(errno));
	cr_assert_eq(write(fd, content, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static const char *conf(const char *text)
{
	return file_with(text, strlen(text), 0644);
}

static const char *key_file(void)
{
	static const char hex[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n";

	return file_with(hex, strlen(hex), 0600);
}

/* The settings are large: one per process, not on the stack. */
static struct bridge_config cfg;
static char err[512];

/* config_load with argv "distreg-bridge", then the arguments up to NULL. */
static int load(const char *first, ...)
{
	char *argv[64];
	int argc = 0;
	va_list ap;

	argv[argc++] = "distreg-bridge";
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		cr_assert_lt(argc, 63);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	memset(err, 'x', sizeof(err));
	return config_load(argc, argv, &cfg, err, sizeof(err));
}

#define LOAD(...) load(__VA_ARGS__, (const char *)NULL)

/* Refused: -EINVAL, a message containing each of the strings, and nothing
 * in cfg that looks valid. */
#define REFUSED(rc, ...)                                                                           \
	do {                                                                                       \
		const char *want_[] = {__VA_ARGS__};                                               \
		cr_assert_eq((rc), -EINVAL, "accepted; err: %s", err);                             \
		cr_assert_lt(strlen(err), sizeof(err));                                            \
		cr_assert_eq(strchr(err, '\n'), NULL, "one line: %s", err);                        \
		for (size_t i_ = 0; i_ < sizeof(want_) / sizeof(want_[0]); i_++)                   \
			cr_assert_not_null(strstr(err, want_[i_]),                                 \
					   "\"%s\" not in the message: %s", want_[i_], err);       \
		nothing_valid();                                                                   \
	} while (0)

static void nothing_valid(void)
{
	static const struct bridge_config zero;

	cr_assert_eq(memcmp(&cfg, &zero, sizeof(cfg)), 0, "a refused load leaves settings");
	cr_assert_not(cfg.key.set);
}

static void accepted(int rc)
{
	cr_assert_eq(rc, CONFIG_RUN, "refused: %s", err);
	cr_assert_str_eq(err, "", "no message when accepted");
}

/* ---------------------------------------------------------------------- */
/* Defaults and layers */

Test(config, defaults)
{
	struct utsname u;
	char node[DR_HOST_MAX + 1];

	unsetenv("DISTREG_SEGMENT");
	accepted(LOAD(NULL));
	cr_assert_eq(uname(&u), 0);
	snprintf(node, sizeof(node), "%.*s", DR_HOST_MAX, u.nodename);
	cr_assert_str_eq(cfg.segment, "default");
	cr_assert_str_eq(cfg.host, node);
	cr_assert_str_eq(cfg.bus, "tcp://127.0.0.1:7420");
	cr_assert_str_eq(cfg.rpc, "tcp://127.0.0.1:7421");
	cr_assert_eq(cfg.npeers, 0);
	cr_assert_str_eq(cfg.key_file, "");
	cr_assert_not(cfg.key.set);
	cr_assert_eq(cfg.heartbeat_ms, 250);
	cr_assert_eq(cfg.down_after_ms, 3000);
	cr_assert_eq(cfg.busy_poll_us, 100);
	cr_assert_eq(cfg.log_level, LOG_LEVEL_INFO);
	cr_assert_str_eq(cfg.config_file, "");
}

Test(config, segment_from_the_environment)
{
	setenv("DISTREG_SEGMENT", "from-env", 1);
	accepted(LOAD(NULL));
	cr_assert_str_eq(cfg.segment, "from-env");
	accepted(LOAD("--segment", "opt"));
	cr_assert_str_eq(cfg.segment, "opt", "the option wins");
	setenv("DISTREG_SEGMENT", "", 1);
	accepted(LOAD(NULL));
	cr_assert_str_eq(cfg.segment, "default", "empty counts as unset");
	setenv("DISTREG_SEGMENT", "a/b", 1);
	REFUSED(LOAD(NULL), "segment", "$DISTREG_SEGMENT", "a/b");
	accepted(LOAD("--segment", "ok"));
}

Test(config, every_option)
{
	const char *key = key_file();

	accepted(LOAD("--segment", "s1", "--host", "node-7", "--bus", "tcp://10.0.0.7:7000",
		      "--rpc=tcp://10.0.0.7:7001", "--peer", "tcp://10.0.0.8:7000", "--peer",
		      "ipc:///run/distreg/p", "--key-file", key, "--heartbeat-ms", "100",
		      "--down-after-ms=201", "--log-level", "debug"));
	cr_assert_str_eq(cfg.segment, "s1");
	cr_assert_str_eq(cfg.host, "node-7");
	cr_assert_str_eq(cfg.bus, "tcp://10.0.0.7:7000");
	cr_assert_str_eq(cfg.rpc, "tcp://10.0.0.7:7001");
	cr_assert_eq(cfg.npeers, 2);
	cr_assert_str_eq(cfg.peers[0], "tcp://10.0.0.8:7000");
	cr_assert_str_eq(cfg.peers[1], "ipc:///run/distreg/p");
	cr_assert_str_eq(cfg.key_file, key);
	cr_assert(cfg.key.set);
	cr_assert_eq(cfg.key.k[1], 0x11);
	cr_assert_eq(cfg.key.k[31], 0xff);
	cr_assert_eq(cfg.heartbeat_ms, 100);
	cr_assert_eq(cfg.down_after_ms, 201);
	cr_assert_eq(cfg.log_level, LOG_LEVEL_DEBUG);
	config_finish(&cfg);
	cr_assert_not(cfg.key.set);
	cr_assert_eq(cfg.key.k[1], 0, "the key is wiped");
}

Test(config, file_then_options)
{
	const char *key = key_file();
	char text[1024];
	const char *path;

	snprintf(text, sizeof(text),
		 "; the bridge of host a\n"
		 "# comments of both kinds\n"
		 "\n"
		 "[bridge]\n"
		 "segment = from-file\n"
		 "  host = file-host   ; indented, with a comment after\n"
		 "bus=tcp://10.1.0.1:7420\n"
		 "rpc: tcp://10.1.0.1:7421\n"
		 "peer = tcp://10.1.0.2:7420\n"
		 "peer = tcp://10.1.0.3:7420\n"
		 "peer = tcp://10.1.0.2:7420\n"
		 "key-file = %s\n"
		 "heartbeat-ms = 500\n"
		 "down-after-ms = 5000\n"
		 "busy-poll-us = 0\n"
		 "log-level = warn\r\n",
		 key);
	path = conf(text);

	accepted(LOAD("--config", path));
	cr_assert_str_eq(cfg.config_file, path);
	cr_assert_str_eq(cfg.segment, "from-file");
	cr_assert_str_eq(cfg.host, "file-host");
	cr_assert_str_eq(cfg.bus, "tcp://10.1.0.1:7420");
	cr_assert_str_eq(cfg.rpc, "tcp://10.1.0.1:7421");
	cr_assert_eq(cfg.npeers, 2, "a peer listed twice is kept once");
	cr_assert_str_eq(cfg.peers[0], "tcp://10.1.0.2:7420");
	cr_assert_str_eq(cfg.peers[1], "tcp://10.1.0.3:7420");
	cr_assert(cfg.key.set);
	cr_assert_eq(cfg.heartbeat_ms, 500);
	cr_assert_eq(cfg.down_after_ms, 5000);
	cr_assert_eq(cfg.busy_poll_us, 0);
	cr_assert_eq(cfg.log_level, LOG_LEVEL_WARN);

	/* Options win; any --peer replaces the file's list; the rest stays. */
	accepted(LOAD("--host", "opt-host", "--config", path, "--peer", "tcp://10.1.0.9:1",
		      "--heartbeat-ms", "1000", "--log-level", "error"));
	cr_assert_str_eq(cfg.host, "opt-host");
	cr_assert_eq(cfg.npeers, 1);
	cr_assert_str_eq(cfg.peers[0], "tcp://10.1.0.9:1");
	cr_assert_eq(cfg.heartbeat_ms, 1000);
	cr_assert_eq(cfg.down_after_ms, 5000);
	cr_assert_eq(cfg.log_level, LOG_LEVEL_ERROR);
	cr_assert_str_eq(cfg.segment, "from-file");
	cr_assert_str_eq(cfg.bus, "tcp://10.1.0.1:7420");
}

Test(config, keys_before_any_section)
{
	accepted(LOAD("--config", conf("host = bare\nheartbeat-ms = 20\n")));
	cr_assert_str_eq(cfg.host, "bare");
	cr_assert_eq(cfg.heartbeat_ms, 20);
	accepted(LOAD("--config", conf("")));
	cr_assert_eq(cfg.heartbeat_ms, 250, "an empty file");
	accepted(LOAD("--config", conf("\xef\xbb\xbf[bridge]\r\nhost = bom\r\n")));
	cr_assert_str_eq(cfg.host, "bom", "a byte order mark and CRLF lines");
}

Test(config, help_and_version)
{
	cr_assert_eq(LOAD("--help"), CONFIG_HELP);
	cr_assert_eq(LOAD("-h"), CONFIG_HELP);
	cr_assert_eq(LOAD("--bus", "tcp://10.0.0.1:1", "--help"), CONFIG_HELP,
		     "help is help, whatever else is wrong with the values");
	cr_assert_eq(LOAD("--version"), CONFIG_VERSION);
	cr_assert_not_null(strstr(config_version(), "distreg-bridge "));
	REFUSED(LOAD("--help=yes"), "--help takes no value");
	REFUSED(LOAD("--nope", "--help"), "unknown option '--nope'");
}

Test(config, usage_names_every_option)
{
	static const char *const opts[] = {
	    "--segment",      "--host",		 "--bus",	"--rpc",    "--peer", "--key-file",
	    "--heartbeat-ms", "--down-after-ms", "--dienow-sigterm-ms", "--busy-poll-us",
	    "--log-level", "--config", "--help", "--version"};
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);

	config_usage(f);
	fclose(f);
	for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
		cr_assert_not_null(strstr(text, opts[i]), "%s", opts[i]);
	free(text);
}

/* What config_print writes, given back as --config, is the same settings. */
Test(config, printed_settings_load_back)
{
	static struct bridge_config first;
	const char *key = key_file();
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	accepted(LOAD("--segment", "s", "--host", "h", "--bus", "tcp://[::1]:9", "--rpc",
		      "ipc:///tmp/x", "--peer", "tcp://localhost:1", "--peer", "tcp://10.9.9.9:2",
		      "--key-file", key, "--heartbeat-ms", "11", "--down-after-ms", "23",
		      "--busy-poll-us", "7", "--log-level", "warn"));
	first = cfg;
	f = open_memstream(&text, &len);
	config_print(f, &cfg);
	fclose(f);
	cr_assert_null(strstr(text, "00112233"), "the key itself is never printed");
	accepted(LOAD("--config", conf(text)));
	memset(first.config_file, 0, sizeof(first.config_file));
	memset(cfg.config_file, 0, sizeof(cfg.config_file));
	cr_assert_eq(memcmp(&first, &cfg, sizeof(cfg)), 0, "printed:\n%s", text);
	free(text);

	/* Without a key file too. */
	accepted(LOAD("--host", "h2"));
	first = cfg;
	text = NULL;
	f = open_memstream(&text, &len);
	config_print(f, &cfg);
	fclose(f);
	accepted(LOAD("--config", conf(text)));
	memset(cfg.config_file, 0, sizeof(cfg.config_file));
	cr_assert_eq(memcmp(&first, &cfg, sizeof(cfg)), 0, "printed:\n%s", text);
	free(text);
}

/* ---------------------------------------------------------------------- */
/* Options refused */

Test(config, bad_options)
{
	REFUSED(LOAD("--bogus", "x"), "unknown option '--bogus'");
	REFUSED(LOAD("--bogus=x"), "unknown option '--bogus'");
	REFUSED(LOAD("-x"), "unknown option '-x'");
	REFUSED(LOAD("stray"), "unexpected argument 'stray'");
	REFUSED(LOAD("--bus"), "--bus needs a value");
	REFUSED(LOAD("--host", "a", "--host", "b"), "--host", "given twice");
	REFUSED(LOAD("--config", "a", "--config", "b"), "--config given twice");
	REFUSED(LOAD("--config", ""), "--config", "not a file name");
	REFUSED(LOAD("--key-file", ""), "--key-file", "not a file name");
}

Test(config, bad_numbers)
{
	REFUSED(LOAD("--heartbeat-ms", "abc"), "--heartbeat-ms", "'abc' is not a whole number");
	REFUSED(LOAD("--heartbeat-ms", "-5"), "--heartbeat-ms", "'-5' is not a whole number");
	REFUSED(LOAD("--heartbeat-ms", "25x"), "--heartbeat-ms", "'25x'");
	REFUSED(LOAD("--heartbeat-ms", " 25"), "--heartbeat-ms");
	REFUSED(LOAD("--heartbeat-ms", ""), "--heartbeat-ms", "no value");
	REFUSED(LOAD("--heartbeat-ms", "9"), "--heartbeat-ms", "out of range", "10 to 60000");
	REFUSED(LOAD("--heartbeat-ms", "60001"), "--heartbeat-ms", "out of range");
	REFUSED(LOAD("--heartbeat-ms", "99999999999999999999999"), "--heartbeat-ms",
		"out of range");
	REFUSED(LOAD("--down-after-ms", "0"), "--down-after-ms", "out of range");
	REFUSED(LOAD("--down-after-ms", "3600001"), "--down-after-ms", "out of range");
	accepted(LOAD("--heartbeat-ms", "10", "--down-after-ms", "3600000"));
	accepted(LOAD("--heartbeat-ms", "60000", "--down-after-ms", "120001"));
	REFUSED(LOAD("--busy-poll-us", "1001"), "--busy-poll-us", "out of range",
		"0 to 1000 microseconds");
	REFUSED(LOAD("--busy-poll-us", "5ms"), "--busy-poll-us", "not a whole number of microseconds");
	REFUSED(LOAD("--busy-poll-us", ""), "--busy-poll-us", "no value (microseconds");
	accepted(LOAD("--busy-poll-us", "1000"));
	cr_assert_eq(cfg.busy_poll_us, 1000);
	accepted(LOAD("--busy-poll-us", "0"));
	cr_assert_eq(cfg.busy_poll_us, 0);
}

Test(config, down_after_must_exceed_two_heartbeats)
{
	REFUSED(LOAD("--down-after-ms", "500"), "--down-after-ms", "twice heartbeat-ms",
		"2 x 250 = 500");
	accepted(LOAD("--down-after-ms", "501"));
	/* With the default down-after, the heartbeat is what to fix. */
	REFUSED(LOAD("--heartbeat-ms", "1500"), "--heartbeat-ms", "down-after-ms (3000)");
	REFUSED(LOAD("--config", conf("[bridge]\nheartbeat-ms = 2000\n")), ":2: heartbeat-ms",
		"twice");
}

Test(config, bad_urls)
{
	char url[256];

	REFUSED(LOAD("--bus", "udp://127.0.0.1:1"), "--bus", "not a tcp:// or ipc:// URL");
	REFUSED(LOAD("--rpc", "127.0.0.1:1"), "--rpc", "not a tcp:// or ipc:// URL");
	REFUSED(LOAD("--bus", ""), "--bus", "empty");
	REFUSED(LOAD("--bus", "tcp://127.0.0.1"), "--bus", "HOST:PORT");
	REFUSED(LOAD("--bus", "tcp://:7420"), "--bus", "HOST:PORT");
	REFUSED(LOAD("--bus", "tcp://127.0.0.1:0"), "--bus", "port");
	REFUSED(LOAD("--bus", "tcp://127.0.0.1:65536"), "--bus", "port");
	REFUSED(LOAD("--bus", "tcp://127.0.0.1:http"), "--bus", "port");
	REFUSED(LOAD("--bus", "tcp://::1:7420"), "--bus", "brackets");
	REFUSED(LOAD("--bus", "tcp://127.0.0.1 :1"), "--bus", "space");
	REFUSED(LOAD("--bus", "ipc://"), "--bus", "without a path");
	REFUSED(LOAD("--peer", "http://x"), "--peer", "not a tcp:// or ipc:// URL");

	/* An ipc path of 107 bytes fits sun_path, 108 does not. */
	snprintf(url, sizeof(url), "ipc:///%0106d", 0);
	cr_assert_eq(strlen(url) - 6, 107);
	accepted(LOAD("--bus", url));
	snprintf(url, sizeof(url), "ipc:///%0107d", 0);
	REFUSED(LOAD("--bus", url), "--bus", "108 bytes or more");

	/* 127 bytes in all is the longest address. */
	snprintf(url, sizeof(url), "ipc:///%0100d", 0);
	accepted(LOAD("--rpc", url));
	snprintf(url, sizeof(url), "tcp://%0117d.x:1", 0);
	cr_assert_eq(strlen(url), 127);
	REFUSED(LOAD("--rpc", url), "--rpc", "loopback", "key"); /* valid, not loopback */
	snprintf(url, sizeof(url), "tcp://%0118d.x:1", 0);
	REFUSED(LOAD("--rpc", url), "--rpc", "longer than 127 bytes");
}

Test(config, bad_host_ids)
{
	char host[80];

	memset(host, 'h', sizeof(host));
	host[DR_HOST_MAX] = '\0';
	accepted(LOAD("--host", host));
	cr_assert_str_eq(cfg.host, host);
	host[DR_HOST_MAX] = 'h';
	host[DR_HOST_MAX + 1] = '\0';
	REFUSED(LOAD("--host", host), "--host", "not a host id", "1 to 63");
	REFUSED(LOAD("--host", ""), "--host", "not a host id");
	REFUSED(LOAD("--host", "a b"), "--host", "not a host id");
	REFUSED(LOAD("--host", "tab\there"), "--host", "not a host id");
	REFUSED(LOAD("--host", "caf\xc3\xa9"), "--host", "not a host id");
}

Test(config, bad_segments_and_levels)
{
	REFUSED(LOAD("--segment", "a/b"), "--segment", "not a segment name");
	REFUSED(LOAD("--segment", ".."), "--segment", "not a segment name");
	REFUSED(LOAD("--segment", ""), "--segment", "not a segment name");
	REFUSED(LOAD("--log-level", "verbose"), "--log-level", "'verbose'",
		"error, warn, info or debug");
	REFUSED(LOAD("--log-level", "INFO"), "--log-level");
	accepted(LOAD("--log-level", "error"));
	cr_assert_eq(cfg.log_level, LOG_LEVEL_ERROR);
}

Test(config, too_many_peers)
{
	static char urls[CONFIG_PEERS_MAX + 1][32];
	static char text[(CONFIG_PEERS_MAX + 2) * 40];
	size_t at = 0, last = 0;

	at += (size_t)snprintf(text, sizeof(text), "[bridge]\n");
	for (int i = 0; i <= CONFIG_PEERS_MAX; i++) {
		last = at;
		snprintf(urls[i], sizeof(urls[i]), "tcp://127.0.0.1:%d", 1000 + i);
		at += (size_t)snprintf(text + at, sizeof(text) - at, "peer = %s\n", urls[i]);
	}
	/* 257 peers: line 258 is one too many. */
	REFUSED(LOAD("--config", conf(text)), ":258: peer", "more than 256 peers");
	/* 256 is the most. */
	text[last] = '\0';
	accepted(LOAD("--config", conf(text)));
	cr_assert_eq(cfg.npeers, CONFIG_PEERS_MAX);
}

/* ---------------------------------------------------------------------- */
/* The security rule */

Test(config, without_a_key_only_loopback)
{
	accepted(LOAD("--bus", "tcp://127.0.0.1:1", "--rpc", "tcp://127.200.3.4:2"));
	accepted(LOAD("--bus", "tcp://[::1]:1", "--rpc", "tcp://localhost:2"));
	accepted(LOAD("--bus", "ipc:///tmp/b", "--rpc", "ipc://r", "--peer", "tcp://127.0.0.2:3"));

	REFUSED(LOAD("--bus", "tcp://10.0.0.1:7420"), "--bus", "tcp://10.0.0.1:7420",
		"not a loopback address", "--key-file");
	REFUSED(LOAD("--rpc", "tcp://*:7421"), "--rpc", "not a loopback address", "--key-file");
	REFUSED(LOAD("--bus", "tcp://0.0.0.0:1"), "--bus", "not a loopback");
	REFUSED(LOAD("--bus", "tcp://128.0.0.1:1"), "--bus", "not a loopback");
	REFUSED(LOAD("--bus", "tcp://127.0.0.1.evil.example:1"), "--bus", "not a loopback");
	REFUSED(LOAD("--bus", "tcp://[::2]:1"), "--bus", "not a loopback");
	REFUSED(LOAD("--bus", "tcp://eth0;127.0.0.1:1"), "--bus", "not a loopback");
	REFUSED(LOAD("--bus", "tcp://myhost:1"), "--bus", "not a loopback");
	REFUSED(LOAD("--peer", "tcp://127.0.0.1:1", "--peer", "tcp://192.168.1.1:7420"), "--peer",
		"192.168.1.1", "not a loopback");
	REFUSED(
	    LOAD("--config", conf("[bridge]\nbus = tcp://127.0.0.1:1\nrpc = tcp://10.0.0.1:2\n")),
	    ":3: rpc", "not a loopback", "key");
	REFUSED(LOAD("--config", conf("peer = tcp://127.0.0.1:1\npeer = tcp://10.0.0.1:2\n")),
		":2: peer", "10.0.0.1");

	/* With one, anything. */
	accepted(LOAD("--bus", "tcp://*:7420", "--rpc", "tcp://10.0.0.1:7421", "--peer",
		      "tcp://10.0.0.2:7420", "--key-file", key_file()));
}

Test(config, key_file_problems)
{
	static const char hex[] =
	    "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	const char *loose = file_with(hex, 64, 0644);
	const char *junk = file_with("not a key\n", 10, 0600);

	REFUSED(LOAD("--key-file", loose), "--key-file", loose, "mode 0644", "chmod 600");
	REFUSED(LOAD("--key-file", junk), "--key-file", junk, "not a key", "64 hex digits");
	REFUSED(LOAD("--key-file", "/nonexistent/distreg.key"), "--key-file", "cannot read",
		"No such file");
	REFUSED(LOAD("--config", conf("[bridge]\n\nkey-file = /nonexistent/k\n")), ":3: key-file",
		"cannot read");
}

/* ---------------------------------------------------------------------- */
/* Files refused: each names the file and the line. */

Test(config, bad_files)
{
	const char *p;

	p = conf("[bridge]\nhost = a\nheartbeat = 5\n");
	REFUSED(LOAD("--config", p), p, ":3:", "unknown key 'heartbeat'");
	p = conf("[bridge]\nconfig = /x\n");
	REFUSED(LOAD("--config", p), ":2:", "unknown key 'config'");
	p = conf("[bridge]\nheartbeat-ms = fast\n");
	REFUSED(LOAD("--config", p), ":2: heartbeat-ms", "'fast' is not a whole number");
	p = conf("[bridge]\n\n\ndown-after-ms = 99999999\n");
	REFUSED(LOAD("--config", p), ":4: down-after-ms", "out of range");
	p = conf("[bridge]\nbus = http://127.0.0.1:1\n");
	REFUSED(LOAD("--config", p), ":2: bus", "not a tcp:// or ipc:// URL");
	p = conf("[bridge]\nhost = a b\n");
	REFUSED(LOAD("--config", p), ":2: host", "not a host id");
	p = conf("[bridge]\nhost =\n");
	REFUSED(LOAD("--config", p), ":2: host", "not a host id");
	p = conf("[bridge]\nlog-level = loud\n");
	REFUSED(LOAD("--config", p), ":2: log-level", "'loud'");
	p = conf("[bridge]\nhost = a\nhost = b\n");
	REFUSED(LOAD("--config", p), ":3: host", "set twice", "line 2");
	p = conf("[other]\nhost = a\n");
	REFUSED(LOAD("--config", p), ":2:", "section [other]", "[bridge]");
	p = conf("[bridge]\nhost a\n");
	REFUSED(LOAD("--config", p), ":2:", "not a 'key = value'");
	p = conf("[bridge\nhost = a\n");
	REFUSED(LOAD("--config", p), ":1:", "not a 'key = value' or '[section]' line");
}

Test(config, the_first_error_is_the_one_reported)
{
	const char *p = conf("[bridge]\nhost = a b\nbus = nope\nfoo = 1\n");

	REFUSED(LOAD("--config", p), ":2: host");
	/* A syntax error before a bad value. */
	p = conf("[bridge]\njunk\nhost = a b\n");
	REFUSED(LOAD("--config", p), ":2:", "not a 'key = value'");
}

Test(config, long_lines_and_binary_files)
{
	char text[400];
	const char *p;

	/* 197 bytes fit inih's line of 200; 198 do not, and are not split in
	 * two. */
	snprintf(text, sizeof(text), "[bridge]\nsegment = %0187d\n", 0);
	cr_assert_eq(strchr(text + 9, '\n') - (text + 9), 197);
	accepted(LOAD("--config", conf(text)));
	snprintf(text, sizeof(text), "[bridge]\nsegment = %0188d\n", 0);
	p = conf(text);
	REFUSED(LOAD("--config", p), p, ":2:", "line longer than");
	p = file_with("[bridge]\nhost = a\0b\n", 19, 0644);
	REFUSED(LOAD("--config", p), ":2:", "NUL");
}

Test(config, files_that_cannot_be_read)
{
	char dir[] = "/tmp/distreg-test-confdir-XXXXXX";

	REFUSED(LOAD("--config", "/nonexistent/bridge.conf"), "--config /nonexistent/bridge.conf",
		"cannot read", "No such file");
	cr_assert_not_null(mkdtemp(dir));
	REFUSED(LOAD("--config", dir), "--config", dir, "cannot read", "directory");
	rmdir(dir);
}

Test(config, no_room_for_the_message_is_no_crash)
{
	char *argv[] = {"distreg-bridge", "--bogus", NULL};
	char small[8];

	cr_assert_eq(config_load(2, argv, &cfg, small, sizeof(small)), -EINVAL);
	cr_assert_eq(strlen(small), sizeof(small) - 1);
	cr_assert_eq(config_load(2, argv, &cfg, NULL, 0), -EINVAL);
	nothing_valid();
}
