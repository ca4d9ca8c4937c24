/*
 * moves.c - workers whose global name another host owns now.
 *
 * After every view it publishes, the bridge looks for the global names its
 * host serves and no longer owns (dr_admin_tell_moved), and asks each one's
 * owner whether it runs the name (rpc_ask, a lookup through the owner's
 * bridge). The answer decides:
 *   - the owner does not run it: DR_EVENT_SHOULDRESTART to the worker, which
 *     starts it there and then stops serving it here (dr_restart_moved);
 *   - the owner runs it: this instance is a duplicate (two sides of a
 *     partition each started one) and lost: DR_EVENT_DIENOW, and the
 *     registration ends at once (dr_admin_tell);
 *   - no answer (owner unreachable, timeout): nothing now.
 * While any stay misplaced, every one is asked again: after 0.5 s, then 1,
 * 2, ... up to every 16 s; a new view starts over. A worker that moved or
 * died is not found again.
 *
 * --dienow-sigterm-ms N: a process that still has the mailbox that served a
 * lost name open N ms after its dienow gets SIGTERM (through a pidfd taken
 * at the dienow: a pid reused meanwhile is not hit).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"
#include "log.h"

#define TELL_RETRY_NS (200ull * 1000 * 1000)
#define RETELL_MIN_NS (500ull * 1000 * 1000)
#define RETELL_MAX_NS (16ull * 1000 * 1000 * 1000)

struct loser {
	int pidfd;
	pid_t pid;
	uint32_t mailbox;
	uint64_t at_ns;                /* when to look */
};

struct ask_ctx {
	struct bridge *b;
	uint64_t now;
};

static int ask(void *arg, const unsigned char *name, size_t len, const char *owner)
{
	struct ask_ctx *c = arg;

	/* Not asked (no live peer by that id yet): asked again later. */
	return rpc_ask(c->b, owner, name, len, c->now) != 0;
}

/* Ask about every misplaced name (before NULL), or those this view moved. */
static void tell_moved(struct bridge *b, const struct dr_host *before, size_t nbefore,
		       uint64_t now)
{
	struct ask_ctx c = { b, now };
	size_t asked = 0, unsent = 0;
	bool again = before == NULL && b->tell_retry_ns != 0;
	int rc = dr_admin_tell_moved(b->mb, before, nbefore, ask, &c, &asked, &unsent);

	if (rc < 0)
		log_warn("cannot look for moved workers: %s", dr_strerror(rc));
	else if (asked && !again)
		log_info("view %llu: %zu worker%s on this host now owned elsewhere: asking their "
			 "owners", (unsigned long long)b->view_epoch, asked, asked == 1 ? "" : "s");
	else if (asked || unsent)
		log_debug("%zu misplaced worker%s asked about again (%zu not yet)", asked,
			  asked == 1 ? "" : "s", unsent);
	if (!again)
		b->retell_ns = RETELL_MIN_NS;
	if (rc < 0 || (unsent && !asked)) {
		b->tell_retry_ns = now + TELL_RETRY_NS;
	} else if (asked || unsent) {
		/* Once they moved, the next pass finds none and stops. */
		b->tell_retry_ns = now + b->retell_ns;
		if (again && b->retell_ns < RETELL_MAX_NS)
			b->retell_ns *= 2;
	} else if (again) {
		b->tell_retry_ns = 0; /* none misplaced any more */
	}
	/* A view that moved nothing keeps the pass an earlier one scheduled:
	 * the workers asked about then may not have moved yet (found by the
	 * chaos test: a join that moved nothing cancelled the retry of a
	 * restart that had failed, and the worker stayed misplaced). */
}

void moves_view_published(struct bridge *b, const struct dr_host *before, size_t nbefore,
			  uint64_t now)
{
	/* At our first view, every misplaced one: we may have been away. */
	tell_moved(b, before, nbefore, now);
}

static void loser_add(struct bridge *b, const struct dr_admin_loser *l, uint64_t now)
{
	int fd;

	if (!b->cfg.dienow_sigterm_ms || l->pid <= 0 || l->pid == getpid())
		return;
	if (b->nlosers == b->caplosers) {
		size_t cap = b->caplosers ? 2 * b->caplosers : 16;
		struct loser *v = realloc(b->losers, cap * sizeof(*v));

		if (!v)
			return;
		b->losers = v;
		b->caplosers = cap;
	}
	fd = pidfd_open(l->pid);
	if (fd < 0)
		return; /* gone already */
	b->losers[b->nlosers++] = (struct loser){
		.pidfd = fd, .pid = l->pid, .mailbox = l->mailbox,
		.at_ns = now + (uint64_t)b->cfg.dienow_sigterm_ms * 1000000ull,
	};
}

void moves_owner_said(struct bridge *b, const unsigned char *name, size_t len, const char *owner,
		      int status)
{
	struct dr_admin_loser l;
	int rc;

	if (status == 0) {
		rc = dr_admin_tell(b->mb, name, len, DR_EVENT_DIENOW, owner, &l);
		if (rc == 0) {
			log_info("%.*s: %s runs it, the instance here (pid %d) lost: dienow",
				 (int)len, (const char *)name, owner, (int)l.pid);
			loser_add(b, &l, now_ns());
		}
	} else if (status == -ENOENT) {
		rc = dr_admin_tell(b->mb, name, len, DR_EVENT_SHOULDRESTART, owner, NULL);
	} else {
		return; /* asked again at the next pass */
	}
	if (rc == -EAGAIN && !b->tell_retry_ns)
		b->tell_retry_ns = now_ns() + TELL_RETRY_NS;
	else if (rc < 0 && rc != -ENOENT && rc != -EAGAIN)
		log_warn("%.*s: cannot tell its worker: %s", (int)len, (const char *)name,
			 dr_strerror(rc));
}

void moves_tick(struct bridge *b, uint64_t now)
{
	if (b->tell_retry_ns && now >= b->tell_retry_ns)
		tell_moved(b, NULL, 0, now);
	for (size_t i = 0; i < b->nlosers;) {
		struct loser *l = &b->losers[i];

		if (now < l->at_ns) {
			i++;
			continue;
		}
		if (dr_admin_mailbox_open(b->r, l->mailbox) &&
		    syscall(SYS_pidfd_send_signal, l->pidfd, SIGTERM, NULL, 0) == 0)
			log_warn("pid %d still serves through the mailbox of a name it lost %u ms "
				 "ago: SIGTERM (--dienow-sigterm-ms)", (int)l->pid,
				 b->cfg.dienow_sigterm_ms);
		close(l->pidfd);
		*l = b->losers[--b->nlosers];
	}
}

void moves_stop(struct bridge *b)
{
	for (size_t i = 0; i < b->nlosers; i++)
		close(b->losers[i].pidfd);
	free(b->losers);
	b->losers = NULL;
	b->nlosers = b->caplosers = 0;
}
