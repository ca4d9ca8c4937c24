/*
 * config.h - the bridge's settings: defaults, then a config file, then the
 * command line, which wins.
 *
 * Settings (the option, the config file's key, the default):
 *
 *   --segment NAME     segment=       $DISTREG_SEGMENT if set and not empty,
 *                                     else "default"; 1..DR_SEGMENT_MAX bytes,
 *                                     no '/', not "." or ".." (as dr_open)
 *   --host ID          host=          the kernel's node name (uname), cut to
 *                                     DR_HOST_MAX bytes; 1..DR_HOST_MAX
 *                                     printable ASCII bytes, no space
 *   --bus URL          bus=           tcp://127.0.0.1:7420
 *   --rpc URL          rpc=           tcp://127.0.0.1:7421
 *   --peer BUS_URL     peer=          none; repeatable, at most
 *                                     CONFIG_PEERS_MAX (duplicates are kept
 *                                     once; this bridge's own bus URL may be
 *                                     among them: a file shared by every
 *                                     host lists them all)
 *   --key-file FILE    key-file=      none (see wire_key_load for the file)
 *   --heartbeat-ms N   heartbeat-ms=  250; 10..60000
 *   --down-after-ms N  down-after-ms= 3000; 1..3600000, and more than twice
 *                                     heartbeat-ms
 *   --dienow-sigterm-ms N  dienow-sigterm-ms= 0 (never); 0..3600000: SIGTERM
 *                                     a process that still has the mailbox of
 *                                     a global name it lost open N ms after
 *                                     its dienow
 *   --busy-poll-us N   busy-poll-us=  100; 0..1000: after a pass that moved a
 *                                     call, a message or an answer, poll
 *                                     without sleeping for N us (main.c)
 *   --log-level L      log-level=     info; error, warn, info or debug
 *   --config FILE                     no file
 *   --help, -h; --version
 *
 * Options are written --name VALUE or --name=VALUE; the bridge takes no
 * other arguments. The config file holds key = value lines (or key: value),
 * before any section or in a [bridge] section; comments start with ';' or
 * '#' (and ';' after a space ends a value); lines are at most 196 bytes.
 * Any --peer replaces the file's peer list. Every setting but peer may be
 * given once per layer (once in the file, once on the command line).
 *
 * URLs (bus, rpc, peer) are tcp://HOST:PORT or ipc://PATH, at most
 * DR_ADDR_MAX bytes, printable, no space; an ipc path is at most 107 bytes
 * (sun_path). Security: without a key file every URL must be a loopback
 * one (tcp://127.x.x.x:P, tcp://[::1]:P, tcp://localhost:P, or ipc://): a
 * bridge without a key neither binds nor dials another host, because its
 * frames would travel unauthenticated (and a keyed peer refuses them).
 */
#ifndef DISTREG_BRIDGE_CONFIG_H
#define DISTREG_BRIDGE_CONFIG_H

#include <limits.h>
#include <stdio.h>

#include <distreg.h>

#include "log.h"
#include "wire.h"

#define CONFIG_PEERS_MAX DR_HOSTS_MAX
#define CONFIG_PATH_MAX PATH_MAX

#define CONFIG_DEFAULT_BUS "tcp://127.0.0.1:7420"
#define CONFIG_DEFAULT_RPC "tcp://127.0.0.1:7421"
#define CONFIG_DEFAULT_HEARTBEAT_MS 250u
#define CONFIG_DEFAULT_DOWN_AFTER_MS 3000u
#define CONFIG_HEARTBEAT_MIN_MS 10u
#define CONFIG_HEARTBEAT_MAX_MS 60000u
#define CONFIG_DOWN_AFTER_MAX_MS 3600000u
#define CONFIG_DIENOW_SIGTERM_MAX_MS 3600000u
#define CONFIG_DEFAULT_BUSY_POLL_US 100u
#define CONFIG_BUSY_POLL_MAX_US 1000u

/* What config_load() returns besides an error. */
#define CONFIG_RUN 0	 /* start the bridge with *cfg */
#define CONFIG_HELP 1	 /* --help: print config_usage() to stdout, exit 0 */
#define CONFIG_VERSION 2 /* --version: print config_version(), exit 0 */
/* The exit status for a bad option, file or value (nothing was started). */
#define CONFIG_EXIT_USAGE 2

/* The effective settings. Strings are NUL-terminated. */
struct bridge_config {
	char segment[DR_SEGMENT_MAX + 1];
	char host[DR_HOST_MAX + 1];
	char bus[DR_ADDR_MAX + 1];
	char rpc[DR_ADDR_MAX + 1];
	unsigned npeers;
	char peers[CONFIG_PEERS_MAX][DR_ADDR_MAX + 1];
	char key_file[CONFIG_PATH_MAX]; /* "" none */
	struct wire_key key;		/* loaded from key_file; set iff key_file[0] */
	unsigned heartbeat_ms;
	unsigned down_after_ms;
	unsigned dienow_sigterm_ms;	/* 0: never */
	unsigned busy_poll_us;		/* 0: never */
	enum log_level log_level;
	char config_file[CONFIG_PATH_MAX]; /* "" none */
};

/*
 * Fill *cfg (about 40 KiB: not for a small stack) from the defaults, the
 * file of --config, and argv (argv[0] is the program, not read). Reads the
 * key file. Returns CONFIG_RUN, CONFIG_HELP, CONFIG_VERSION, or -EINVAL:
 * an unknown option or key, a bad value, a file that cannot be read; then
 * err holds one line (no newline) naming the option, or the file and line,
 * and the rule broken, and *cfg is zeroed: nothing in it is valid. Uses no
 * global state (no getopt); environment: DISTREG_SEGMENT.
 *
 * The daemon's main:
 *
 *     rc = config_load(argc, argv, &cfg, err, sizeof(err));
 *     if (rc < 0) { fprintf(stderr, "distreg-bridge: %s\n", err);
 *                   return CONFIG_EXIT_USAGE; }
 *     if (rc == CONFIG_HELP) { config_usage(stdout); return 0; }
 *     if (rc == CONFIG_VERSION) { puts(config_version()); return 0; }
 *     log_init(argv[0], cfg.log_level);
 */
int config_load(int argc, char *const argv[], struct bridge_config *cfg, char *err, size_t errlen);

/* Wipe the key from *cfg (and the rest). NULL is fine. */
void config_finish(struct bridge_config *cfg);

/* The options and defaults, for --help. */
void config_usage(FILE *f);

/* "distreg-bridge VERSION". */
const char *config_version(void);

/*
 * The effective settings, as a config file in [bridge] form (the key
 * itself is never printed): loading this output with --config gives the
 * same settings back.
 */
void config_print(FILE *f, const struct bridge_config *cfg);

#endif /* DISTREG_BRIDGE_CONFIG_H */
