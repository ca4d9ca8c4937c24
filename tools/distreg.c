/*
 * distreg - the registry and its mailboxes from the command line, for
 * people and shell scripts: look names up, register and unregister them,
 * call, cast and send to them, and serve names with an echo worker; the
 * same for global names (--global, serve-global), and the cluster's view;
 * and the segments themselves: list them (segments), remove one (unlink).
 *
 *   distreg [--segment NAME] [--json] COMMAND [ARGS]
 *
 * Exit status: 0 ok, 1 not found, 2 usage, 3 timeout, 4 any other error.
 * With --json every result is one JSON object on a line of its own. It uses
 * the public API only (distreg.h), as any application would.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <distreg.h>

#include "toolutil.h"

#ifndef DISTREG_VERSION
#define DISTREG_VERSION "unknown"
#endif

enum { ST_OK = 0, ST_NOTFOUND = 1, ST_USAGE = 2, ST_TIMEOUT = 3, ST_ERROR = 4 };

#define DEFAULT_TIMEOUT_MS 5000

static const char usage_text[] =
	"usage: distreg [--segment NAME] [--json] COMMAND [ARGS]\n"
	"\n"
	"commands:\n"
	"  list                          every name: pid, state, [global,] regid, value\n"
	"  whereis [--global] NAME       one name (exit 1 if it is not registered)\n"
	"  register NAME VALUE           register NAME and hold it until SIGINT or SIGTERM\n"
	"  unregister [--force] NAME     remove a name whose owner died; with --force,\n"
	"                                whoever holds it (the owner is not told)\n"
	"  call [--global] NAME MESSAGE [--timeout MS]  call NAME, print the answer\n"
	"  cast [--global] NAME MESSAGE [--timeout MS]  cast MESSAGE to NAME (no\n"
	"                                answer)\n"
	"  send [--global] NAME MESSAGE [--timeout MS]  send MESSAGE to NAME\n"
	"                                (distreg's inform); --timeout: the wait for\n"
	"                                room, default 0 (5000 with --global)\n"
	"  echo-worker [--global] NAME...  serve the names from one mailbox, answer\n"
	"                                every call with its message, until SIGINT or\n"
	"                                SIGTERM\n"
	"  serve-global NAME VALUE       serve the global name NAME (value VALUE) and\n"
	"                                hold it until SIGINT or SIGTERM, printing every\n"
	"                                message, answering calls empty; exit 4 naming\n"
	"                                the owner if that is another host\n"
	"  start NAME KIND [ARG] [--timeout MS]  start the global worker NAME through\n"
	"                                a factory of KIND on its owner host, unless it\n"
	"                                runs already; print where it is (exit 1: no\n"
	"                                factory of KIND there; 4: refused, with why)\n"
	"  echo-factory [--kind KIND] [--count N]  a factory of KIND (default echo):\n"
	"                                every start serves the name from this process,\n"
	"                                answering every call with its message, until\n"
	"                                SIGINT or SIGTERM; with --count, at most N\n"
	"                                workers (later starts are refused); a worker\n"
	"                                whose owner changed is started on the new one\n"
	"                                (shouldrestart) and stops here; one that lost\n"
	"                                to the owner's instance stops (dienow)\n"
	"  watch [--global] NAME         one line per event about NAME until SIGINT or\n"
	"                                SIGTERM: unregistered, owner-died, moved (a\n"
	"                                global name's owner host changed)\n"
	"  owner NAME                    the host that owns the global name NAME\n"
	"  hosts                         the cluster's view: each host's id, state (up,\n"
	"                                suspect, down, ignored), rpc address,\n"
	"                                incarnation; and the epoch\n"
	"  segments                      every segment in /dev/shm: name, size in\n"
	"                                bytes, processes attached (\"?\" if unknown)\n"
	"  unlink SEG                    remove the segment SEG from /dev/shm (exit 1\n"
	"                                if there is none); processes attached keep\n"
	"                                using it, the next to open SEG makes a new one\n"
	"\n"
	"options:\n"
	"  --segment NAME  the segment (default: $DISTREG_SEGMENT, else \"default\")\n"
	"  --json          one JSON object per result\n"
	"  --global        (after the command) the global name NAME, served on its\n"
	"                  owner host (dr_serve_global), not the local one\n"
	"  --help, --version\n"
	"\n"
	"exit status: 0 ok, 1 not found, 2 usage, 3 timeout, 4 other errors\n";

static bool json;
static bool global;
static const char *segment;

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "distreg: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n%s", usage_text);
	return ST_USAGE;
}

/* The exit status for a library error, with a message on stderr. */
static int fail(const char *what, const char *name, int err)
{
	fprintf(stderr, "distreg: %s%s%s: %s\n", what, name ? " " : "", name ? name : "",
		dr_strerror(err));
	return err == -ENOENT ? ST_NOTFOUND : err == -ETIMEDOUT ? ST_TIMEOUT : ST_ERROR;
}

/* Commands that read or send neither create a segment nor reap it at open
 * (list shows dead owners' names until something reaps them). */
static int open_segment(dr_registry **r, bool create)
{
	struct dr_options o = {
		.segment = segment,
		.flags = create ? 0 : DR_OPEN_NOCREATE | DR_OPEN_NOREAP,
	};
	int err = dr_open(&o, r);
	const char *rule = err == -EINVAL ? dr_segment_name_error(segment) : NULL;

	if (rule) { /* say which rule the name breaks, not "invalid argument" */
		fprintf(stderr, "distreg: open segment %s: %s\n",
			segment ? segment : getenv("DISTREG_SEGMENT"), rule);
		return ST_ERROR;
	}
	if (err)
		return fail("open segment", segment ? segment : getenv("DISTREG_SEGMENT"), err);
	return ST_OK;
}

/* A name's entry; host: the owner host of a global name, else NULL. */
static void print_entry(const char *name, const struct dr_entry *e, int alive,
			const char *host)
{
	if (json) {
		fputs("{", stdout);
		json_bytes(stdout, "name", (const unsigned char *)name, strlen(name));
		/* A regid beyond 2^53 does not survive a double: a string. */
		printf(", \"pid\": %d, \"regid\": \"%" PRIu64 "\", ", (int)e->pid, e->regid);
		json_bytes(stdout, "value", e->value, e->value_len);
		if (alive >= 0)
			printf(", \"alive\": %s", alive ? "true" : "false");
		if (host) {
			fputs(", \"global\": true, ", stdout);
			json_bytes(stdout, "host", (const unsigned char *)host, strlen(host));
		}
		puts("}");
	} else {
		put_name(stdout, (const unsigned char *)name, strlen(name));
		printf(" pid %d regid %" PRIu64 " value ", (int)e->pid, e->regid);
		put_value(stdout, e->value, e->value_len);
		if (host) {
			fputs(" host ", stdout);
			put_name(stdout, (const unsigned char *)host, strlen(host));
		}
		putchar('\n');
	}
}

static int cmd_list(void)
{
	struct name_list l = { 0 };
	dr_registry *r;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	rc = names_gather(r, &l);
	if (rc) {
		dr_close(r);
		names_free(&l);
		return fail("list", NULL, rc);
	}
	for (size_t i = 0; i < l.n; i++) {
		const struct name_rec *n = &l.v[i];

		if (json) {
			fputs("{", stdout);
			json_bytes(stdout, "name", n->name, n->name_len);
			printf(", \"pid\": %d, \"regid\": \"%" PRIu64 "\", ", (int)n->entry.pid,
			       n->entry.regid);
			json_bytes(stdout, "value", n->entry.value, n->entry.value_len);
			printf(", \"alive\": %s, \"global\": %s}\n", n->alive ? "true" : "false",
			       n->global ? "true" : "false");
		} else {
			/* A global name says so after its state; a local one
			 * prints as before global names existed. */
			put_name(stdout, n->name, n->name_len);
			printf(" pid %d %s%s regid %" PRIu64 " value ", (int)n->entry.pid,
			       n->alive ? "alive" : "dead", n->global ? " global" : "",
			       n->entry.regid);
			put_value(stdout, n->entry.value, n->entry.value_len);
			putchar('\n');
		}
	}
	names_free(&l);
	dr_close(r);
	return ST_OK;
}

static int cmd_whereis(const char *name, bool global, int timeout_ms)
{
	char host[DR_HOST_MAX + 1];
	struct dr_entry e;
	dr_registry *r;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	rc = global ? dr_whereis_global(r, name, &e, host, sizeof(host), timeout_ms) :
		      dr_whereis(r, name, &e);
	dr_close(r);
	if (rc)
		return fail("whereis", name, rc);
	print_entry(name, &e, -1, global ? host : NULL);
	return ST_OK;
}

static int cmd_owner(const char *name)
{
	char host[DR_HOST_MAX + 1];
	dr_registry *r;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	rc = dr_owner(r, name, host, sizeof(host));
	dr_close(r);
	if (rc)
		return fail("owner", name, rc);
	if (json) {
		fputs("{", stdout);
		json_bytes(stdout, "name", (const unsigned char *)name, strlen(name));
		fputs(", ", stdout);
		json_bytes(stdout, "host", (const unsigned char *)host, strlen(host));
		puts("}");
	} else {
		put_name(stdout, (const unsigned char *)host, strlen(host));
		putchar('\n');
	}
	return ST_OK;
}

/* The view; with no bridge running, the last one (exit status 4). */
static int cmd_hosts(void)
{
	static struct dr_host h[DR_HOSTS_MAX];
	uint64_t epoch = 0;
	size_t n = 0;
	dr_registry *r;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	rc = dr_hosts(r, h, DR_HOSTS_MAX, &n, &epoch);
	dr_close(r);
	if (rc && rc != -ENOTCONN)
		return fail("hosts", NULL, rc);
	for (size_t i = 0; i < n; i++) {
		if (json) {
			const unsigned char *id = (const unsigned char *)h[i].id;
			const unsigned char *rpc = (const unsigned char *)h[i].rpc;

			/* host and address; id and rpc are the same, the keys
			 * of the first version, kept for scripts using them. */
			fputs("{", stdout);
			json_bytes(stdout, "host", id, strlen(h[i].id));
			printf(", \"state\": \"%s\", ", host_state_name(h[i].state));
			json_bytes(stdout, "address", rpc, strlen(h[i].rpc));
			printf(", \"incarnation\": \"%" PRIu64 "\", \"self\": %s, "
			       "\"epoch\": \"%" PRIu64 "\", ", h[i].incarnation,
			       h[i].self ? "true" : "false", epoch);
			json_bytes(stdout, "id", id, strlen(h[i].id));
			fputs(", ", stdout);
			json_bytes(stdout, "rpc", rpc, strlen(h[i].rpc));
			puts("}");
		} else {
			put_name(stdout, (const unsigned char *)h[i].id, strlen(h[i].id));
			printf(" %s%s epoch %" PRIu64 " incarnation %" PRIu64 " rpc ",
			       host_state_name(h[i].state), h[i].self ? " self" : "", epoch,
			       h[i].incarnation);
			put_value(stdout, (const unsigned char *)h[i].rpc, strlen(h[i].rpc));
			putchar('\n');
		}
	}
	return rc ? fail("hosts", NULL, rc) : ST_OK;
}

static int cmd_unregister(const char *name, bool force)
{
	dr_registry *r;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	/* A dead owner's name is reaped by dr_unregister, which then says
	 * -ENOENT: removed, as asked. Absent is told apart first. */
	rc = dr_whereis(r, name, NULL);
	if (rc == 0) {
		rc = force ? dr_unregister_force(r, name) : dr_unregister(r, name);
		if (rc == -ENOENT)
			rc = 0;
	}
	dr_close(r);
	if (rc)
		return fail("unregister", name, rc);
	if (json) {
		fputs("{", stdout);
		json_bytes(stdout, "name", (const unsigned char *)name, strlen(name));
		puts(", \"unregistered\": true}");
	}
	return ST_OK;
}

static int cmd_call(const char *name, const char *msg, bool global, int timeout_ms)
{
	dr_registry *r;
	unsigned char *buf;
	size_t len;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	len = dr_message_max(r);
	buf = malloc(len ? len : 1);
	if (!buf) {
		dr_close(r);
		return fail("call", name, -ENOMEM);
	}
	rc = global ? dr_call_global(r, name, msg, strlen(msg), buf, &len, timeout_ms) :
		      dr_call(r, name, msg, strlen(msg), buf, &len, timeout_ms);
	dr_close(r);
	if (rc) {
		free(buf);
		return fail("call", name, rc);
	}
	if (json) {
		fputs("{", stdout);
		json_bytes(stdout, "name", (const unsigned char *)name, strlen(name));
		fputs(", ", stdout);
		json_bytes(stdout, "reply", buf, len);
		puts("}");
	} else {
		fwrite(buf, 1, len, stdout);
		putchar('\n');
	}
	free(buf);
	return ST_OK;
}

static int cmd_cast(const char *name, const char *msg, bool inform, bool global,
		    int timeout_ms)
{
	dr_registry *r;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	if (global)
		rc = inform ? dr_send_global(r, name, msg, strlen(msg), timeout_ms) :
			      dr_cast_global(r, name, msg, strlen(msg), timeout_ms);
	else
		rc = inform ? dr_send(r, name, msg, strlen(msg), timeout_ms) :
			      dr_cast(r, name, msg, strlen(msg), timeout_ms);
	dr_close(r);
	if (rc)
		return fail(inform ? "send" : "cast", name, rc);
	if (json) {
		fputs("{", stdout);
		json_bytes(stdout, "name", (const unsigned char *)name, strlen(name));
		puts(", \"sent\": true}");
	}
	return ST_OK;
}

static const char *kind_name(int kind)
{
	switch (kind) {
	case DR_MSG_CALL: return "call";
	case DR_MSG_CAST: return "cast";
	case DR_MSG_INFO: return "info";
	case DR_MSG_REPLY: return "reply";
	default: return "system";
	}
}

/* One line per message received, on stdout: scripts can follow a worker. */
static void log_msg(const struct dr_msg *m)
{
	if (json) {
		printf("{\"kind\": \"%s\", ", kind_name(m->kind));
		json_bytes(stdout, "name", m->name, m->name_len);
		printf(", \"global\": %s", m->global ? "true" : "false");
		printf(", \"sender\": %d, \"regid\": \"%" PRIu64 "\", ", (int)m->sender, m->regid);
		json_bytes(stdout, "data", m->data, m->len);
		puts("}");
	} else {
		printf("%s ", kind_name(m->kind));
		put_name(stdout, m->name, m->name_len);
		printf(" from %d: ", (int)m->sender);
		put_value(stdout, m->data, m->len);
		putchar('\n');
	}
	fflush(stdout);
}

/*
 * What the commands that hold names until SIGINT or SIGTERM share
 * (register, echo-worker, serve-global): the signals as a descriptor, the
 * segment (created if need be), and for the serving ones a mailbox.
 */
struct holder {
	int sfd;
	dr_registry *r;
	dr_mailbox *mb;         /* NULL for register */
	const char *kind;       /* echo-factory: the kind it starts, else NULL */
	long workers, max_workers; /* echo-factory: started, and the limit (0: none) */
};

/* SIGINT and SIGTERM are blocked, then read through signalfd, so they fit
 * in the same poll as a mailbox. On failure nothing is left open. */
static int holder_open(struct holder *h, bool mailbox)
{
	sigset_t set;
	int rc;

	*h = (struct holder){ .sfd = -1 };
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	if (sigprocmask(SIG_BLOCK, &set, NULL) < 0 ||
	    (h->sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0)
		return fail("signalfd", NULL, -errno);
	rc = open_segment(&h->r, true);
	if (rc) {
		close(h->sfd);
		return rc;
	}
	if (mailbox) {
		rc = dr_mailbox_open(h->r, &h->mb);
		if (rc) {
			dr_close(h->r);
			close(h->sfd);
			return fail("mailbox", NULL, rc);
		}
	}
	return ST_OK;
}

/* Closing the mailbox unregisters the names it serves. */
static void holder_close(struct holder *h)
{
	if (h->mb)
		dr_mailbox_close(h->mb);
	dr_close(h->r);
	close(h->sfd);
}

/*
 * Serve name through the holder's mailbox, locally or globally. A global
 * name owned by another host cannot be served here: the error names it.
 */
static int holder_serve(struct holder *h, const char *what, const char *name, const char *value,
			bool global)
{
	size_t len = value ? strlen(value) : 0;
	char owner[DR_HOST_MAX + 1];
	int rc = global ? dr_serve_global(h->mb, name, value, len) :
			  dr_serve(h->mb, name, value, len);

	if (rc == -EREMOTE && dr_owner(h->r, name, owner, sizeof(owner)) == 0) {
		fprintf(stderr, "distreg: %s %s: the global name is owned by host %s, "
			"not this one; serve it there\n", what, name, owner);
		return ST_ERROR;
	}
	return rc ? fail(what, name, rc) : ST_OK;
}

/*
 * echo-factory: if m is a start request, answer it (serving the name from
 * our mailbox, so the echo answers its calls) and return true.
 */
static bool factory_take(struct holder *h, const struct dr_msg *m)
{
	struct dr_start_req sr;
	char why[64];
	int rc = h->kind ? dr_start_request(h->mb, m, &sr) : -EINVAL;

	if (rc == -EINVAL && h->kind && m->kind == DR_MSG_SYSTEM && m->len >= 1 &&
	    ((const uint8_t *)m->data)[0] == DR_EVENT_DIENOW) {
		/* A duplicate that lost to its owner's: unregistered already.
		 * Unless we serve the name again since (a stale event). */
		if (dr_lost(h->mb, m) != 0)
			return true;
		h->workers--;
		if (json) {
			fputs("{\"dienow\": ", stdout);
			json_str(stdout, (const char *)m->name, m->name_len);
			fputs(", \"host\": ", stdout);
			json_str(stdout, (const char *)m->data + 1, m->len - 1);
			printf(", \"workers\": %ld}\n", h->workers);
		} else {
			printf("lost %.*s to the instance on host %.*s (dienow; %ld workers)\n",
			       (int)m->name_len, (const char *)m->name, (int)m->len - 1,
			       (const char *)m->data + 1, h->workers);
		}
		fflush(stdout);
		return true;
	}
	if (rc == -EINVAL && h->kind && m->kind == DR_MSG_SYSTEM) {
		/* shouldrestart: start it on its new owner without waiting
		 * (its answer comes as a reply), meanwhile still serving. */
		rc = dr_restart_moved_async(h->mb, m, h->kind, NULL, 0, DEFAULT_TIMEOUT_MS);
		if (json) {
			fputs("{\"moving\": ", stdout);
			json_str(stdout, (const char *)m->name, m->name_len);
			fputs(", \"host\": ", stdout);
			json_str(stdout, (const char *)m->data + 1, m->len - 1);
			printf(", \"status\": %d}\n", rc);
		} else if (rc == 0) {
			printf("moving %.*s to its new owner, host %.*s\n", (int)m->name_len,
			       (const char *)m->name, (int)m->len - 1, (const char *)m->data + 1);
		} else if (rc != -EALREADY) {
			printf("cannot move %.*s to its new owner: %s (still serving it)\n",
			       (int)m->name_len, (const char *)m->name, dr_strerror(rc));
		}
		fflush(stdout);
		return true;
	}
	if (rc == -EINVAL && h->kind && m->kind == DR_MSG_REPLY) {
		struct dr_started st;

		rc = dr_restart_moved_finish(h->mb, m, &st);
		if (rc == -EINVAL)
			return false;
		if (rc == 0)
			h->workers--;
		if (json) {
			fputs("{\"moved_to\": ", stdout);
			json_str(stdout, rc ? "" : st.host, rc ? 0 : strlen(st.host));
			printf(", \"status\": %d, \"workers\": %ld}\n", rc, h->workers);
		} else if (rc == 0) {
			printf("moved a worker to host %s (%ld workers)\n", st.host, h->workers);
		} else {
			printf("cannot move a worker to its new owner: %s (still serving it)\n",
			       dr_strerror(rc));
		}
		fflush(stdout);
		return true;
	}
	if (rc == -EINVAL)
		return false;
	if (rc == -EBADMSG) {
		fprintf(stderr, "distreg: echo-factory: a malformed start request\n");
		dr_reply_error(h->mb, m, -EBADMSG);
		return true;
	}
	if (rc == -EEXIST) {
		rc = dr_start_answer(h->mb, m, -EEXIST, NULL);
	} else if (h->max_workers && h->workers >= h->max_workers) {
		snprintf(why, sizeof(why), "echo-factory is full: %ld workers", h->workers);
		rc = dr_start_answer(h->mb, m, -EUSERS, why);
	} else {
		rc = dr_serve_global_bin(h->mb, sr.name, sr.name_len, NULL, 0);
		if (rc == 0)
			h->workers++;
		if (json) {
			fputs("{\"started\": ", stdout);
			json_str(stdout, (const char *)sr.name, sr.name_len);
			printf(", \"status\": %d, \"workers\": %ld}\n", rc, h->workers);
		} else {
			printf("start %.*s: %s (%ld workers)\n", (int)sr.name_len,
			       (const char *)sr.name, rc ? dr_strerror(rc) : "serving", h->workers);
		}
		fflush(stdout);
		rc = dr_start_answer(h->mb, m, rc, "cannot serve it here");
	}
	if (rc)
		fprintf(stderr, "distreg: echo-factory: answer: %s\n", dr_strerror(rc));
	return true;
}

/*
 * Wait for SIGINT or SIGTERM. With a mailbox, print every message received
 * meanwhile and answer every call: with its own message (echo), or empty;
 * an echo-factory also answers start requests.
 */
static int holder_run(struct holder *h, bool echo)
{
	struct pollfd p[2];
	nfds_t n = 0;

	p[n++] = (struct pollfd){ .fd = h->sfd, .events = POLLIN };
	if (h->mb)
		p[n++] = (struct pollfd){ .fd = dr_mailbox_fd(h->mb), .events = POLLIN };
	for (;;) {
		struct dr_msg m;
		int rc = -EAGAIN;

		while (h->mb && (rc = dr_recv(h->mb, &m, 0)) == 0) {
			if (factory_take(h, &m))
				continue;
			log_msg(&m);
			if (m.kind == DR_MSG_CALL) {
				int err = -EAGAIN;

				/* A full lane to the caller (or the bridge, which
				 * our own restarts fill too): try again for 1 s. */
				for (int t = 0; t < 1000 && err == -EAGAIN; t++) {
					if (t)
						usleep(1000);
					err = echo ? dr_reply(h->mb, &m, m.data, m.len)
						   : dr_reply(h->mb, &m, "", 0);
				}
				if (err)
					fprintf(stderr, "distreg: reply: %s\n", dr_strerror(err));
			}
		}
		if (h->mb && rc != -EAGAIN) {
			fprintf(stderr, "distreg: receive: %s\n", dr_strerror(rc));
			if (rc != -EBADMSG) /* a scribbled message is skipped */
				return ST_ERROR;
		}
		/* Restarts in flight end through a receive (dr_mailbox_timeout). */
		if (poll(p, n, h->mb ? dr_mailbox_timeout(h->mb) : -1) < 0 && errno != EINTR)
			return fail("poll", NULL, -errno);
		if (p[0].revents)
			return ST_OK; /* SIGINT or SIGTERM */
	}
}

static int cmd_register(const char *name, const char *value)
{
	struct holder h;
	struct dr_entry e;
	int rc = holder_open(&h, false);

	if (rc)
		return rc;
	rc = dr_register(h.r, name, value, strlen(value));
	if (rc == 0)
		rc = dr_whereis(h.r, name, &e);
	if (rc) {
		holder_close(&h);
		return fail("register", name, rc);
	}
	print_entry(name, &e, -1, NULL);
	fflush(stdout);
	holder_run(&h, false);
	rc = dr_unregister(h.r, name);
	holder_close(&h);
	return rc && rc != -ENOENT ? fail("unregister", name, rc) : ST_OK;
}

static int cmd_echo_worker(char **names, int n, bool global)
{
	struct holder h;
	int rc = holder_open(&h, true);

	if (rc)
		return rc;
	for (int i = 0; rc == ST_OK && i < n; i++)
		rc = holder_serve(&h, "echo-worker", names[i], NULL, global);
	if (rc) {
		holder_close(&h);
		return rc;
	}
	if (json) {
		fputs("{\"serving\": [", stdout);
		for (int i = 0; i < n; i++) {
			if (i)
				fputs(", ", stdout);
			json_str(stdout, names[i], strlen(names[i]));
		}
		printf("], \"global\": %s, \"pid\": %d}\n", global ? "true" : "false",
		       (int)getpid());
	} else {
		printf("serving %d %sname%s, pid %d\n", n, global ? "global " : "", n == 1 ? "" : "s",
		       (int)getpid());
	}
	fflush(stdout);
	rc = holder_run(&h, true);
	holder_close(&h);
	return rc;
}

/* Serve one global name with a value; the first line is its entry, as
 * whereis --global prints it. */
static int cmd_serve_global(const char *name, const char *value)
{
	char host[DR_HOST_MAX + 1];
	struct holder h;
	struct dr_entry e;
	int rc = holder_open(&h, true);

	if (rc)
		return rc;
	rc = holder_serve(&h, "serve-global", name, value, true);
	if (rc) {
		holder_close(&h);
		return rc;
	}
	rc = dr_whereis_global(h.r, name, &e, host, sizeof(host), DEFAULT_TIMEOUT_MS);
	if (rc) {
		holder_close(&h);
		return fail("serve-global", name, rc);
	}
	print_entry(name, &e, -1, host);
	fflush(stdout);
	rc = holder_run(&h, false);
	holder_close(&h);
	return rc;
}

static const char *event_name(int ev)
{
	switch (ev) {
	case DR_EVENT_UNREGISTERED: return "unregistered";
	case DR_EVENT_OWNER_DIED: return "owner-died";
	case DR_EVENT_MOVED: return "moved";
	case DR_EVENT_SHOULDRESTART: return "shouldrestart";
	case DR_EVENT_DIENOW: return "dienow";
	default: return "unknown";
	}
}

/* One line per event about the watched name, until SIGINT or SIGTERM. */
static int cmd_watch(const char *name, bool global)
{
	struct holder h;
	int rc = holder_open(&h, true);

	if (rc)
		return rc;
	rc = global ? dr_watch_global(h.mb, name) : dr_watch(h.mb, name);
	if (rc) {
		holder_close(&h);
		return fail("watch", name, rc);
	}
	for (;;) {
		struct pollfd p = { .fd = h.sfd, .events = POLLIN };
		struct dr_msg m;
		int ev;

		if (poll(&p, 1, 0) > 0)
			break; /* SIGINT or SIGTERM */
		rc = dr_recv(h.mb, &m, 200);
		if (rc == -ETIMEDOUT)
			continue;
		if (rc) {
			holder_close(&h);
			return fail("watch", name, rc);
		}
		if (m.kind != DR_MSG_SYSTEM || m.len < 1)
			continue;
		ev = ((const uint8_t *)m.data)[0];
		if (json) {
			printf("{\"event\": \"%s\", ", event_name(ev));
			json_bytes(stdout, "name", m.name, m.name_len);
			printf(", \"global\": %s, \"regid\": \"%" PRIu64 "\"",
			       m.global ? "true" : "false", m.regid);
			if (ev == DR_EVENT_MOVED) {
				fputs(", \"host\": ", stdout);
				json_str(stdout, (const char *)m.data + 1, m.len - 1);
			}
			puts("}");
		} else {
			printf("%s ", event_name(ev));
			put_name(stdout, m.name, m.name_len);
			if (ev == DR_EVENT_MOVED)
				printf(" to host %.*s", (int)m.len - 1, (const char *)m.data + 1);
			printf(" (regid %" PRIu64 ")\n", m.regid);
		}
		fflush(stdout);
	}
	holder_close(&h);
	return ST_OK;
}

static int cmd_echo_factory(const char *kind, long count)
{
	struct holder h;
	int rc = holder_open(&h, true);

	if (rc)
		return rc;
	h.kind = kind;
	h.max_workers = count;
	rc = dr_factory_serve(h.mb, kind);
	if (rc) {
		holder_close(&h);
		return fail("echo-factory", kind, rc);
	}
	if (json) {
		fputs("{\"factory\": ", stdout);
		json_str(stdout, kind, strlen(kind));
		printf(", \"count\": %ld, \"pid\": %d}\n", count, (int)getpid());
	} else {
		printf("echo-factory of kind %s, pid %d\n", kind, (int)getpid());
	}
	fflush(stdout);
	rc = holder_run(&h, true);
	holder_close(&h);
	return rc;
}

static int cmd_start(const char *name, const char *kind, const char *arg, int timeout_ms)
{
	struct dr_started st;
	dr_registry *r;
	int rc = open_segment(&r, false);

	if (rc)
		return rc;
	rc = dr_start(r, name, kind, arg, arg ? strlen(arg) : 0, &st, timeout_ms);
	if (rc == -ESRCH) {
		char owner[DR_HOST_MAX + 1] = "?";

		dr_owner(r, name, owner, sizeof(owner));
		fprintf(stderr, "distreg: start %s: no factory of kind %s runs on its owner, "
			"host %s\n", name, kind, owner);
		dr_close(r);
		return ST_NOTFOUND;
	}
	if (rc == -ECANCELED) {
		fprintf(stderr, "distreg: start %s: the factory refused: %s\n", name,
			st.reason[0] ? st.reason : "(no reason given)");
		dr_close(r);
		return ST_ERROR;
	}
	if (rc) {
		dr_close(r);
		return fail("start", name, rc);
	}
	if (json) {
		fputs("{\"name\": ", stdout);
		json_str(stdout, name, strlen(name));
		fputs(", \"host\": ", stdout);
		json_str(stdout, st.host, strlen(st.host));
		printf(", \"pid\": %d, \"regid\": %llu, \"created\": %s}\n", (int)st.entry.pid,
		       (unsigned long long)st.entry.regid, st.created ? "true" : "false");
	} else {
		printf("%s %s on host %s: pid %d, regid %llu\n", name,
		       st.created ? "started" : "already runs", st.host, (int)st.entry.pid,
		       (unsigned long long)st.entry.regid);
	}
	dr_close(r);
	return ST_OK;
}

/* Where the library keeps the segments: /dev/shm/distreg.<segment>. */
#define SHM_DIR "/dev/shm"
#define SEG_PREFIX "distreg."

/*
 * The processes attached to the segment file: each holds an OFD write lock
 * on one byte of it while attached (and the kernel drops it when the process
 * dies). They are counted through a read-only descriptor with F_OFD_GETLK,
 * which takes no lock and writes nothing. -1 if unknown (no read permission).
 */
static int attached_count(int dirfd, const char *file)
{
	int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	off_t start = 0;
	int n = 0;

	if (fd < 0)
		return -1;
	/* Bounded: the library has at most a few thousand process slots. */
	while (n < 1 << 20) {
		struct flock fl = {
			.l_type = F_WRLCK,
			.l_whence = SEEK_SET,
			.l_start = start,
			.l_len = 0,
		};

		if (fcntl(fd, F_OFD_GETLK, &fl) < 0) {
			n = -1;
			break;
		}
		if (fl.l_type == F_UNLCK)
			break;
		n++;
		if (fl.l_len == 0)
			break; /* to the end of the file: nothing after it */
		start = fl.l_start + fl.l_len;
	}
	close(fd);
	return n;
}

struct seg_rec {
	char *name;
	long long size;
	int attached;
};

static int seg_cmp(const void *a, const void *b)
{
	return strcmp(((const struct seg_rec *)a)->name, ((const struct seg_rec *)b)->name);
}

/* Every distreg.* regular file in /dev/shm, sorted by name. Nothing is
 * opened read-write, nothing attached, nothing created. */
static int cmd_segments(void)
{
	struct seg_rec *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *d;
	DIR *dir = opendir(SHM_DIR);
	int rc = ST_OK;

	if (!dir)
		return fail("segments: " SHM_DIR, NULL, -errno);
	while ((d = readdir(dir)) != NULL) {
		const char *seg = d->d_name + strlen(SEG_PREFIX);
		struct stat st;

		if (strncmp(d->d_name, SEG_PREFIX, strlen(SEG_PREFIX)) != 0 || !*seg ||
		    strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0 ||
		    strlen(seg) > DR_SEGMENT_MAX)
			continue;
		if (fstatat(dirfd(dir), d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue; /* removed meanwhile, or not a segment */
		if (n == cap) {
			struct seg_rec *nv = realloc(v, (cap = cap ? 2 * cap : 16) * sizeof(*v));

			if (!nv) {
				rc = fail("segments", NULL, -ENOMEM);
				break;
			}
			v = nv;
		}
		v[n].name = strdup(seg);
		if (!v[n].name) {
			rc = fail("segments", NULL, -ENOMEM);
			break;
		}
		v[n].size = (long long)st.st_size;
		v[n].attached = attached_count(dirfd(dir), d->d_name);
		n++;
	}
	closedir(dir);
	if (rc == ST_OK)
		qsort(v, n, sizeof(*v), seg_cmp);
	for (size_t i = 0; rc == ST_OK && i < n; i++) {
		const unsigned char *name = (const unsigned char *)v[i].name;

		if (json) {
			fputs("{", stdout);
			json_bytes(stdout, "segment", name, strlen(v[i].name));
			printf(", \"size\": %lld, \"attached\": ", v[i].size);
			if (v[i].attached < 0)
				puts("null}");
			else
				printf("%d}\n", v[i].attached);
		} else {
			put_name(stdout, name, strlen(v[i].name));
			printf(" size %lld attached ", v[i].size);
			if (v[i].attached < 0)
				puts("?");
			else
				printf("%d\n", v[i].attached);
		}
	}
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
	return rc;
}

/* Remove a segment's name (dr_unlink). Whoever is attached keeps the
 * segment until they close it; stderr says how many there were. */
static int cmd_unlink(const char *seg)
{
	char file[sizeof(SEG_PREFIX) + DR_SEGMENT_MAX];
	int attached = -1, dirfd, rc;

	snprintf(file, sizeof(file), SEG_PREFIX "%s", seg);
	dirfd = open(SHM_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd >= 0) {
		attached = attached_count(dirfd, file);
		close(dirfd);
	}
	rc = dr_unlink(seg);
	if (rc == -EINVAL)
		return usage_error("bad segment name \"%s\" (1 to 200 bytes, no '/', not . or ..)",
				   seg);
	if (rc == -ENOENT) {
		fprintf(stderr, "distreg: unlink %s: no such segment (" SHM_DIR "/" SEG_PREFIX
			"%s)\n", seg, seg);
		return ST_NOTFOUND;
	}
	if (rc)
		return fail("unlink", seg, rc);
	if (attached > 0)
		fprintf(stderr, "distreg: unlink %s: %d process%s still attached keep%s using "
			"it until %s close it\n", seg, attached, attached == 1 ? "" : "es",
			attached == 1 ? "s" : "", attached == 1 ? "it" : "they");
	if (json) {
		fputs("{", stdout);
		json_bytes(stdout, "segment", (const unsigned char *)seg, strlen(seg));
		puts(", \"unlinked\": true}");
	}
	return ST_OK;
}

static int parse_timeout(const char *s, int *out)
{
	char *end;
	long v = strtol(s, &end, 10);

	if (end == s || *end || v < -1 || v > 86400000)
		return -1;
	*out = (int)v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "segment", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *cmd;
	int c;

	/* Options before the command only; the command's own after it. */
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 's':
			segment = optarg;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return ST_OK;
		case 'V':
			printf("distreg %s\n", DISTREG_VERSION);
			return ST_OK;
		default:
			fputs(usage_text, stderr);
			return ST_USAGE;
		}
	}
	if (optind >= argc)
		return usage_error("%s", "no command");
	cmd = argv[optind++];
	argc -= optind;
	argv += optind;
	/* --global, first after the commands that take it. */
	if (argc > 0 && strcmp(argv[0], "--global") == 0) {
		if (strcmp(cmd, "whereis") && strcmp(cmd, "call") && strcmp(cmd, "cast") &&
		    strcmp(cmd, "send") && strcmp(cmd, "echo-worker") && strcmp(cmd, "watch"))
			return usage_error("%s takes no --global", cmd);
		global = true;
		argc--;
		argv++;
	}

	if (strcmp(cmd, "list") == 0) {
		if (argc != 0)
			return usage_error("%s", "list takes no arguments");
		return cmd_list();
	}
	if (strcmp(cmd, "whereis") == 0) {
		if (argc != 1)
			return usage_error("%s", "whereis takes [--global] NAME");
		return cmd_whereis(argv[0], global, DEFAULT_TIMEOUT_MS);
	}
	if (strcmp(cmd, "owner") == 0) {
		if (argc != 1)
			return usage_error("%s", "owner takes one NAME");
		return cmd_owner(argv[0]);
	}
	if (strcmp(cmd, "hosts") == 0) {
		if (argc != 0)
			return usage_error("%s", "hosts takes no arguments");
		return cmd_hosts();
	}
	if (strcmp(cmd, "segments") == 0) {
		if (argc != 0)
			return usage_error("%s", "segments takes no arguments");
		return cmd_segments();
	}
	if (strcmp(cmd, "unlink") == 0) {
		if (argc != 1)
			return usage_error("%s", "unlink takes one segment name");
		return cmd_unlink(argv[0]);
	}
	if (strcmp(cmd, "register") == 0) {
		if (argc != 2)
			return usage_error("%s", "register takes NAME and VALUE");
		return cmd_register(argv[0], argv[1]);
	}
	if (strcmp(cmd, "unregister") == 0) {
		bool force = argc == 2 && strcmp(argv[0], "--force") == 0;

		if (argc != 1 + force || strcmp(argv[argc - 1], "--force") == 0)
			return usage_error("%s", "unregister takes [--force] NAME");
		return cmd_unregister(argv[force], force);
	}
	if (strcmp(cmd, "call") == 0 || strcmp(cmd, "cast") == 0 || strcmp(cmd, "send") == 0) {
		/* A cast or send waits for no room by default, but one to a
		 * global name gets as long as a call: its timeout goes along
		 * to the bridge, which drops a message whose time is up. */
		int timeout = strcmp(cmd, "call") == 0 || global ? DEFAULT_TIMEOUT_MS : 0;

		if (argc == 4 && strcmp(argv[2], "--timeout") == 0) {
			if (parse_timeout(argv[3], &timeout))
				return usage_error("bad --timeout %s (milliseconds, -1 for ever)",
						   argv[3]);
			argc -= 2;
		}
		if (argc != 2)
			return usage_error("%s takes NAME and MESSAGE [--timeout MS]", cmd);
		if (cmd[0] == 'c' && cmd[1] == 'a' && cmd[2] == 'l')
			return cmd_call(argv[0], argv[1], global, timeout);
		return cmd_cast(argv[0], argv[1], cmd[1] == 'e', global, timeout);
	}
	if (strcmp(cmd, "serve-global") == 0) {
		if (argc != 2)
			return usage_error("%s", "serve-global takes NAME and VALUE");
		return cmd_serve_global(argv[0], argv[1]);
	}
	if (strcmp(cmd, "start") == 0) {
		int timeout = DEFAULT_TIMEOUT_MS;

		if (argc >= 4 && strcmp(argv[argc - 2], "--timeout") == 0) {
			if (parse_timeout(argv[argc - 1], &timeout))
				return usage_error("bad --timeout %s (milliseconds, -1 for ever)",
						   argv[argc - 1]);
			argc -= 2;
		}
		if (argc != 2 && argc != 3)
			return usage_error("%s", "start takes NAME KIND [ARG] [--timeout MS]");
		return cmd_start(argv[0], argv[1], argc == 3 ? argv[2] : NULL, timeout);
	}
	if (strcmp(cmd, "watch") == 0) {
		if (argc != 1)
			return usage_error("%s", "watch takes [--global] NAME");
		return cmd_watch(argv[0], global);
	}
	if (strcmp(cmd, "echo-factory") == 0) {
		const char *kind = "echo";
		long count = 0;

		for (int i = 0; i < argc; i += 2) {
			char *end;

			if (i + 1 >= argc)
				return usage_error("%s needs a value", argv[i]);
			if (strcmp(argv[i], "--kind") == 0) {
				kind = argv[i + 1];
			} else if (strcmp(argv[i], "--count") == 0) {
				count = strtol(argv[i + 1], &end, 10);
				if (end == argv[i + 1] || *end || count < 1 || count > 100000000)
					return usage_error("bad --count %s (1 or more)", argv[i + 1]);
			} else {
				return usage_error("echo-factory takes [--kind KIND] [--count N], "
						   "not %s", argv[i]);
			}
		}
		return cmd_echo_factory(kind, count);
	}
	if (strcmp(cmd, "echo-worker") == 0) {
		if (argc < 1)
			return usage_error("%s", "echo-worker takes one NAME or more");
		return cmd_echo_worker(argv, argc, global);
	}
	return usage_error("unknown command %s", cmd);
}
