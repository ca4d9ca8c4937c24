/*
 * shmdump - inspect a libdistreg segment: list its names, print its
 * counters, verify its invariants, reap the names of dead processes.
 *
 * It uses the public API only (distreg.h), never the segment layout, so it
 * works on any segment the library it is linked with can open. Inspection
 * (listing, --stats, --check, --json) opens with DR_OPEN_RDONLY, as
 * LMDB's mdb_stat does: the file read-only, mapped read-only, no process
 * or reader slot taken, nothing reaped or repaired, so read permission
 * suffices and looking never changes what is looked at. Only --reap opens
 * read-write (DR_OPEN_NOCREATE, as inspecting a segment that does not exist
 * must not create one, and DR_OPEN_NOREAP, as it counts what it reaps).
 *
 * The listing and --reap run dr_check() too: a corrupt segment must not
 * look healthy. They say so on stderr and exit 2, as --check does; --reap
 * then reaps nothing.
 *
 * Every piece of information is gathered first and printed afterwards, for
 * two reasons: a failing step then prints an error instead of half a JSON
 * object, and no output is written from inside dr_foreach(), whose callback
 * runs inside a read-side section. A reader blocked there on a full pipe
 * (shmdump | less, with less waiting at a page break) would hold back the
 * reuse of every entry unregistered meanwhile.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <time.h>

#include <distreg.h>

#include "toolutil.h"

/* The version of shmdump's JSON object ("format"): within one, keys are
 * only added, never renamed or removed (shmdump(1)). */
#define JSON_FORMAT 1

#ifndef DISTREG_VERSION
#define DISTREG_VERSION "unknown"
#endif

/* Exit statuses; EX_USAGE (64) for a bad command line. */
enum { EXIT_ERROR = 1, EXIT_CORRUPT = 2 };

struct options {
	const char *segment; /* NULL: the library's default */
	bool json, stats, check, reap;
};

/* Everything shmdump learned, gathered before anything is printed. */
struct report {
	const char *segment;
	struct name_list names;
	struct dr_stats stats;
	unsigned reaped;
	bool checked;
	int check_rc; /* 0 or -EBADMSG */
	char check_msg[512];
	/* The view, with --stats: hosts_rc is dr_hosts()'s (0, or -ENOTCONN
	 * with the last view, or -EBADMSG with none readable). */
	int hosts_rc;
	struct dr_host hosts[DR_HOSTS_MAX];
	size_t nhosts;
	uint64_t view_epoch;
};

static const char usage_text[] =
	"usage: shmdump [--segment NAME] [--json] [--stats] [--check] [--reap]\n"
	"       shmdump --help | --version\n";

static void usage(FILE *f)
{
	fputs(usage_text, f);
	if (f == stdout)
		fputs("\n"
		      "With no action, list every name of the segment (name, pid, alive or\n"
		      "dead, local or global, regid, value) and a summary line. Inspection\n"
		      "opens the segment read-only and changes nothing; only --reap writes.\n"
		      "A corrupt segment is reported on stderr, with exit status 2.\n"
		      "\n"
		      "  --segment NAME  segment to inspect (default: $DISTREG_SEGMENT, else\n"
		      "                  \"default\"); it is never created\n"
		      "  --stats         print the counters of dr_stats(), one per line, the\n"
		      "                  bridge and the view of the cluster\n"
		      "  --check         verify the segment's invariants; exit 2 if violated\n"
		      "  --reap          remove the names of dead processes, print the count\n"
		      "                  (opens the segment read-write)\n"
		      "  --json          print names, counters and check result as one JSON\n"
		      "                  object\n"
		      "  --help          print this help\n"
		      "  --version       print the version\n"
		      "\n"
		      "See shmdump(1).\n",
		      f);
}

/* ---------------------------------------------------------------------- */
/* Gathering */

/* dr_check(), into rep. A read-only handle reads without a read-side
 * section, and writers may be running: a violation is believed only when
 * seen three times, 20 ms apart (real corruption stays, a transient
 * state passes). */
static int check(dr_registry *r, struct report *rep)
{
	int err = 0;

	for (int i = 0; i < 3; i++) {
		if (i) {
			struct timespec ts = { 0, 20 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
		err = dr_check(r, rep->check_msg, sizeof(rep->check_msg));
		if (err != -EBADMSG)
			break;
	}
	if (err && err != -EBADMSG)
		return err;
	rep->check_rc = err;
	rep->checked = true;
	return 0;
}

static int gather(dr_registry *r, const struct options *o, bool list, struct report *rep)
{
	int err;

	/* Never reap or list a corrupt segment as if it were healthy: check
	 * first, and reap only a sound one. */
	if (list || o->reap || o->check || o->json) {
		err = check(r, rep);
		if (err)
			return err;
	}
	if (o->reap && rep->check_rc == 0) {
		err = dr_reap(r, &rep->reaped);
		if (err)
			return err;
	}
	if (list) {
		err = names_gather(r, &rep->names);
		if (err)
			return err;
	}
	/* The listing's summary needs the capacity, hence stats for it too. */
	if (list || o->stats || o->json) {
		err = dr_stats(r, &rep->stats);
		if (err)
			return err;
	}
	if (o->stats || o->json) {
		err = dr_hosts(r, rep->hosts, DR_HOSTS_MAX, &rep->nhosts, &rep->view_epoch);
		if (err && err != -ENOTCONN && err != -EBADMSG)
			return err;
		rep->hosts_rc = err;
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Text output */

static int name_width(const struct name_rec *rec)
{
	size_t n = rec->name_len;

	return (int)(name_is_text(rec->name, n) ? text_width(rec->name, n, true) : 2 + 2 * n);
}

static void print_listing(const struct report *rep)
{
	const struct name_list *l = &rep->names;
	int w = 4; /* "NAME" */

	/* Align on the longest name, but not beyond 40 columns: one long name
	 * should not push every other line off the screen. */
	for (size_t i = 0; i < l->n; i++) {
		int nw = name_width(&l->v[i]);
		if (nw > w)
			w = nw > 40 ? 40 : nw;
	}
	printf("%-*s %8s %-5s %-6s %20s %s\n", w, "NAME", "PID", "STATE", "SCOPE", "REGID",
	       "VALUE");
	for (size_t i = 0; i < l->n; i++) {
		const struct name_rec *rec = &l->v[i];
		const struct dr_entry *e = &rec->entry;
		int nw = name_width(rec);

		put_name(stdout, rec->name, rec->name_len);
		printf("%*s %8d %-5s %-6s %20" PRIu64 " ", nw < w ? w - nw : 0, "", (int)e->pid,
		       rec->alive ? "alive" : "dead", rec->global ? "global" : "local", e->regid);
		put_value(stdout, e->value, e->value_len);
		putchar('\n');
	}
	printf("%zu %s (%u live, %u dead), capacity %" PRIu32 "\n", l->n,
	       l->n == 1 ? "name" : "names", l->live, l->dead, rep->stats.capacity);
}

static double load_percent(const struct dr_stats *s)
{
	return s->capacity ? 100.0 * s->live / s->capacity : 0.0;
}

/* The command name of a process, for naming a stalled reader. */
static void proc_comm(pid_t pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(buf, len, "?");
	snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(buf, (int)len, f))
		buf[strcspn(buf, "\n")] = 0;
	fclose(f);
}

/* The bridge's state as one word, or its pid. */
static const char *bridge_word(const struct dr_stats *s)
{
	return s->bridge_pid ? "running" : s->bridge_ran ? "stopped" : "never";
}

/* --stats: the bridge, and the view (or the one host there is). */
static void print_cluster(const struct report *rep)
{
	const struct dr_stats *s = &rep->stats;

	if (s->bridge_pid)
		printf("bridge: %d\n", (int)s->bridge_pid);
	else
		printf("bridge: %s\n", s->bridge_ran ? "none (one ran before)" : "never");
	if (rep->hosts_rc == -EBADMSG) {
		puts("view: unreadable (corrupt: see --check)");
		return;
	}
	printf("view_epoch: %" PRIu64 "\n", rep->view_epoch);
	printf("view_hosts: %zu\n", rep->nhosts);
	for (size_t i = 0; i < rep->nhosts; i++) {
		const struct dr_host *h = &rep->hosts[i];

		fputs("host: ", stdout);
		put_name(stdout, (const unsigned char *)h->id, strlen(h->id));
		printf(" %s%s incarnation %" PRIu64 " rpc ", host_state_name(h->state),
		       h->self ? " self" : "", h->incarnation);
		put_value(stdout, (const unsigned char *)h->rpc, strlen(h->rpc));
		putchar('\n');
	}
}

static void print_stats(const struct report *rep)
{
	const struct dr_stats *s = &rep->stats;

	printf("segment: %s\n", rep->segment);
	printf("capacity: %" PRIu32 "\n", s->capacity);
	printf("live: %" PRIu32 "\n", s->live);
	printf("dead: %" PRIu32 "\n", s->dead);
	printf("retired: %" PRIu32 "\n", s->retired);
	printf("inflight: %" PRIu32 "\n", s->inflight);
	printf("free_entries: %" PRIu32 "\n", s->free_entries);
	printf("nbuckets: %" PRIu32 "\n", s->nbuckets);
	printf("longest_chain: %" PRIu32 "\n", s->longest_chain);
	printf("max_procs: %" PRIu32 "\n", s->max_procs);
	printf("procs: %" PRIu32 "\n", s->procs);
	printf("max_threads: %" PRIu32 "\n", s->max_threads);
	printf("readers: %" PRIu32 "\n", s->readers);
	printf("readers_active: %" PRIu32 "\n", s->readers_active);
	printf("stalled_pid: %d\n", (int)s->stalled_pid);
	printf("epoch: %" PRIu64 "\n", s->epoch);
	printf("next_regid: %" PRIu64 "\n", s->next_regid);
	printf("segment_bytes: %" PRIu64 "\n", s->segment_bytes);
	print_cluster(rep);
	printf("load: %.2f%%\n", load_percent(s));
	if (s->stalled_pid) {
		char comm[64];

		proc_comm(s->stalled_pid, comm, sizeof(comm));
		printf("stalled: process %d (%s) is stuck inside a read-side section and "
		       "holds back the reuse of unregistered entries\n",
		       (int)s->stalled_pid, comm);
	}
}

/* ---------------------------------------------------------------------- */
/* JSON output */

static void print_json_cluster(const struct report *rep)
{
	const struct dr_stats *s = &rep->stats;

	printf("  \"bridge\": {\"state\": \"%s\", \"pid\": %d},\n", bridge_word(s),
	       (int)s->bridge_pid);
	if (rep->hosts_rc == -EBADMSG) {
		fputs("  \"view\": null,\n", stdout);
		return;
	}
	/* The epoch as a string, as regids: a bridge may start it anywhere. */
	printf("  \"view\": {\"epoch\": \"%" PRIu64 "\", \"hosts\": [", rep->view_epoch);
	for (size_t i = 0; i < rep->nhosts; i++) {
		const struct dr_host *h = &rep->hosts[i];

		fputs(i ? ", {" : "{", stdout);
		json_bytes(stdout, "id", (const unsigned char *)h->id, strlen(h->id));
		fputs(", ", stdout);
		json_bytes(stdout, "rpc", (const unsigned char *)h->rpc, strlen(h->rpc));
		printf(", \"incarnation\": \"%" PRIu64 "\", \"state\": \"%s\", \"self\": %s}",
		       h->incarnation, host_state_name(h->state), h->self ? "true" : "false");
	}
	fputs("]},\n", stdout);
}

static void print_json(const struct report *rep, const struct options *o)
{
	const struct name_list *l = &rep->names;
	const struct dr_stats *s = &rep->stats;

	printf("{\n  \"format\": %d,\n  \"segment\": ", JSON_FORMAT);
	json_str(stdout, rep->segment, strlen(rep->segment));
	if (o->reap)
		printf(",\n  \"reaped\": %u", rep->reaped);
	fputs(",\n  \"names\": [", stdout);
	for (size_t i = 0; i < l->n; i++) {
		const struct name_rec *rec = &l->v[i];

		fputs(i ? ",\n    {" : "\n    {", stdout);
		json_bytes(stdout, "name", rec->name, rec->name_len);
		/* 64-bit ids as strings: a regid starts near 1.7e18, beyond the
		 * 2^53 that a double (JavaScript, jq) holds exactly. */
		printf(", \"pid\": %d, \"alive\": %s, \"regid\": \"%" PRIu64 "\", ",
		       (int)rec->entry.pid, rec->alive ? "true" : "false", rec->entry.regid);
		json_bytes(stdout, "value", rec->entry.value, rec->entry.value_len);
		printf(", \"global\": %s}", rec->global ? "true" : "false");
	}
	fputs(l->n ? "\n  ],\n" : "],\n", stdout);
	printf("  \"summary\": {\"names\": %zu, \"live\": %u, \"dead\": %u, "
	       "\"capacity\": %" PRIu32 "},\n",
	       l->n, l->live, l->dead, s->capacity);
	printf("  \"stats\": {\"capacity\": %" PRIu32 ", \"live\": %" PRIu32
	       ", \"dead\": %" PRIu32 ", \"retired\": %" PRIu32 ", \"inflight\": %" PRIu32
	       ", \"free_entries\": %" PRIu32 ", \"nbuckets\": %" PRIu32
	       ", \"longest_chain\": %" PRIu32 ", \"max_procs\": %" PRIu32
	       ", \"procs\": %" PRIu32 ", \"max_threads\": %" PRIu32 ", \"readers\": %" PRIu32
	       ", \"readers_active\": %" PRIu32 ", \"stalled_pid\": %d, \"epoch\": %" PRIu64
	       ", \"next_regid\": \"%" PRIu64 "\", \"segment_bytes\": %" PRIu64
	       ", \"load_percent\": %.2f",
	       s->capacity, s->live, s->dead, s->retired, s->inflight, s->free_entries,
	       s->nbuckets, s->longest_chain, s->max_procs, s->procs, s->max_threads,
	       s->readers, s->readers_active, (int)s->stalled_pid, s->epoch, s->next_regid,
	       s->segment_bytes, load_percent(s));
	if (s->stalled_pid) {
		char comm[64];

		proc_comm(s->stalled_pid, comm, sizeof(comm));
		fputs(", \"stalled_comm\": ", stdout);
		json_str(stdout, comm, strlen(comm));
	}
	fputs("},\n", stdout);
	print_json_cluster(rep);
	fputs("  \"check\": ", stdout);
	if (rep->check_rc == 0) {
		fputs("{\"ok\": true, \"message\": null}\n}\n", stdout);
	} else {
		fputs("{\"ok\": false, \"message\": ", stdout);
		json_str(stdout, rep->check_msg, strlen(rep->check_msg));
		fputs("}\n}\n", stdout);
	}
}

/* ---------------------------------------------------------------------- */

static int parse_args(int argc, char **argv, struct options *o)
{
	enum { OPT_SEGMENT = 256, OPT_JSON, OPT_STATS, OPT_CHECK, OPT_REAP, OPT_HELP,
	       OPT_VERSION };
	static const struct option longopts[] = {
		{ "segment", required_argument, NULL, OPT_SEGMENT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "stats", no_argument, NULL, OPT_STATS },
		{ "check", no_argument, NULL, OPT_CHECK },
		{ "reap", no_argument, NULL, OPT_REAP },
		{ "help", no_argument, NULL, OPT_HELP },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_SEGMENT:
			o->segment = optarg;
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_STATS:
			o->stats = true;
			break;
		case OPT_CHECK:
			o->check = true;
			break;
		case OPT_REAP:
			o->reap = true;
			break;
		case OPT_HELP:
			usage(stdout);
			exit(0);
		case OPT_VERSION: {
			uint32_t layout;
			const char *lib = dr_version(&layout);

			printf("shmdump (libdistreg) %s\n", DISTREG_VERSION);
			printf("library: libdistreg %s\n", lib);
			printf("segment layout: %" PRIu32 "\n", layout);
			printf("json format: %d\n", JSON_FORMAT);
			exit(0);
		}
		default: /* getopt_long has said what was wrong */
			usage(stderr);
			return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "shmdump: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };
	struct report rep = { 0 };
	struct dr_options dopts = { .flags = DR_OPEN_RDONLY };
	dr_registry *r;
	bool list;
	int err;

	err = parse_args(argc, argv, &o);
	if (err)
		return err;
	/* The name the library will use, for messages before dr_open() has
	 * resolved it (the same rule as dr_options.segment == NULL). */
	rep.segment = o.segment;
	if (!rep.segment) {
		rep.segment = getenv("DISTREG_SEGMENT");
		if (!rep.segment || !*rep.segment)
			rep.segment = "default";
	}

	dopts.segment = o.segment;
	if (o.reap)
		dopts.flags = DR_OPEN_NOCREATE | DR_OPEN_NOREAP;
	err = dr_open(&dopts, &r);
	if (err == -ENOENT) {
		fprintf(stderr, "shmdump: segment '%s' does not exist\n", rep.segment);
		return EXIT_ERROR;
	}
	if (err) {
		const char *rule = err == -EINVAL ? dr_segment_name_error(o.segment) : NULL;

		fprintf(stderr, "shmdump: %s: %s\n", rep.segment, rule ? rule : dr_strerror(err));
		return EXIT_ERROR;
	}
	rep.segment = dr_segment_name(r);

	/* Listing is the default action, and part of every JSON report. */
	list = o.json || !(o.stats || o.check || o.reap);
	err = gather(r, &o, list, &rep);
	if (err) {
		fprintf(stderr, "shmdump: %s: %s\n", rep.segment, dr_strerror(err));
		dr_close(r);
		free(rep.names.v);
		return EXIT_ERROR;
	}

	/* A corrupt segment, found by a listing or --reap: said on stderr
	 * (--check says it on stdout, as its answer). */
	if (rep.checked && rep.check_rc && (list || o.reap)) {
		fprintf(stderr, "shmdump: %s: segment is corrupt: %s\n", rep.segment, rep.check_msg);
		if (o.reap)
			fprintf(stderr, "shmdump: %s: nothing reaped\n", rep.segment);
		if (list && !o.json)
			fprintf(stderr, "shmdump: %s: the listing below may be incomplete or wrong\n",
				rep.segment);
	}

	if (o.json) {
		print_json(&rep, &o);
	} else {
		if (o.reap && rep.check_rc == 0)
			printf("reaped %u %s\n", rep.reaped, rep.reaped == 1 ? "name" : "names");
		if (list)
			print_listing(&rep);
		if (o.stats)
			print_stats(&rep);
		if (o.check) {
			if (rep.check_rc == 0)
				puts("ok");
			else
				printf("check failed: %s\n", rep.check_msg);
		}
	}

	dr_close(r);
	free(rep.names.v);
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "shmdump: write error on standard output\n");
		return EXIT_ERROR;
	}
	return rep.checked && rep.check_rc ? EXIT_CORRUPT : 0;
}
