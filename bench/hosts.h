/*
 * hosts.h - "hosts" on this machine for the cluster benchmarks (bench_cluster
 * and systems/sys_distreg): a host is a segment and a distreg-bridge on
 * loopback TCP; and what runs on them: echo workers, factories of kind
 * "echo" that move their workers (shouldrestart), starters, and the census
 * of which host serves which worker. Include after proc.h.
 */
#ifndef DISTREG_BENCH_HOSTS_H
#define DISTREG_BENCH_HOSTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <distreg.h>

/* The bridge program, and whether host_fini() keeps its log. */
extern const char *bridge_bin;
extern bool keep_logs;
/* The --busy-poll-us that bridge_start() gives; NULL: the bridge's default. */
extern const char *bridge_busy_poll_us;

struct host {
	char id[16], seg[64], bus[64], rpc[64], log[96];
	pid_t bridge;
	dr_registry *r;
};

uint64_t now_ns(void);
int cmp_u64(const void *a, const void *b);

/* Find the bridge: $DISTREG_BRIDGE, else the build tree's (bridge/ beside
 * the directory of this program), else distreg-bridge on the PATH; dies
 * when it is not executable. */
void bridge_locate(void);

/* A segment "bench.<tag>.<pid>.<id>" and two free loopback ports. */
void host_init(struct host *h, const char *tag, const char *id);
/* Start h's bridge with peer as its seed. heartbeat_ms and down_after_ms:
 * NULL for the bridge's defaults. */
void bridge_start(struct host *h, const struct host *peer, const char *heartbeat_ms,
		  const char *down_after_ms);
/* The CPU time pid's threads have used so far, in ns (its tasks'
 * schedstat); 0 when it cannot be read. */
uint64_t cpu_ns_of(pid_t pid);
/* How many hosts h's view has up. */
int hosts_up(const struct host *h);
/* Until each of the n hosts sees want hosts up; dies after timeout_s. */
void hosts_wait(struct host **hs, int n, int want, double timeout_s);
/* Stop h's bridge (SIGTERM), print its stop line's counters when verbose,
 * remove the segment and, unless keep_logs, the log. */
void host_fini(struct host *h, bool verbose);

/* A mailbox on segment seg, in a process of its own (who names it when
 * that fails). */
dr_mailbox *mailbox_on(const char *seg, const char *who);
/* Answer the call m with its own bytes (waits up to 1 s for room). */
void echo(dr_mailbox *mb, const struct dr_msg *m);

struct wargs {
	const char *seg, *name;
	bool global;
};
/* fork_child() body: serves w->name and echoes its calls, until killed. */
void echo_worker(void *w);
/* fork_child() body: the factory of kind "echo" on host h. */
void factory(void *h);

/* Global workers "<prefix><k>": the prefix of the round (set it before the
 * starts, so that a round's names are not those of an earlier round). */
extern char gw_prefix[8];
void gw_name(char *buf, size_t len, size_t k);
/* dr_start of workers [from, to) through the hosts' factories, split
 * between the nh hosts, each host's share from depth starts in flight in
 * one process (depth 1: one dr_start after the other); starts per second.
 * Dies when a start fails. */
double starts(struct host **hs, int nh, size_t from, size_t to, unsigned depth);
/* How many of the n workers are not placed: not served on their owner
 * (owner[k], an index into hs), or served elsewhere too. served: nh * n
 * bytes of scratch. */
size_t misplaced(struct host **hs, int nh, const int *owner, size_t n, unsigned char *served);
/* The index in hs of name's owner in r's view. */
int owner_index(dr_registry *r, struct host **hs, int nh, const char *name);

/* Calls to name from r, msg-byte requests, for seconds, latencies into lat
 * (up to max), their number into *n, the time taken into *elapsed_ns: one
 * after the other (dr_call_global, or dr_call when !global; each must
 * return expect, after 20 to warm up), or depth in flight
 * (dr_call_async_global). Die on anything else. */
void calls_sync(dr_registry *r, const char *name, bool global, int expect, size_t msg,
		double seconds, uint64_t *lat, size_t max, size_t *n, uint64_t *elapsed_ns);
void calls_async(dr_registry *r, const char *name, unsigned depth, size_t msg, double seconds,
		 uint64_t *lat, size_t max, size_t *n, uint64_t *elapsed_ns);

/* nanomsg alone, over TCP: a cooked REQ/REP echo, and a raw one with
 * depth requests in flight; each runs for seconds and leaves the latencies
 * in lat (up to max), their number in *n, the time taken in *elapsed_ns.
 * The servers are fork_child() bodies (url: a char[64]). */
void nn_cooked_server(void *url);
void nn_raw_server(void *url);
void nn_cooked_run(const char *url, size_t msg, double seconds, uint64_t *lat, size_t max,
		   size_t *n, uint64_t *elapsed_ns);
void nn_raw_run(const char *url, size_t msg, unsigned depth, double seconds, uint64_t *lat,
		size_t max, size_t *n, uint64_t *elapsed_ns);

#endif
