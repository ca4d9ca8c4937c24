/*
 * view.c - the membership as the processes of this host see it: every host
 * we know, with its state, published into the segment (dr_admin_view_publish)
 * whenever something changed. Ownership follows the hosts that are up or
 * suspect; down and ignored ones are listed for `distreg hosts`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bridge.h"
#include "log.h"

/* How soon to tell again the workers whose lane had no room; and, while
 * some stay misplaced (their restart failed: the new owner not reachable
 * yet, no factory there yet; or they ignore the event), the first and the
 * longest wait before telling every misplaced one again. */
#define TELL_RETRY_NS (200ull * 1000 * 1000)
#define RETELL_MIN_NS (500ull * 1000 * 1000)
#define RETELL_MAX_NS (16ull * 1000 * 1000 * 1000)

static void tell_moved(struct bridge *b, const struct dr_host *before, size_t nbefore,
		       uint64_t now)
{
	size_t told = 0, unsent = 0;
	bool again = before == NULL && b->tell_retry_ns != 0;
	int rc = dr_admin_tell_moved(b->mb, before, nbefore, &told, &unsent);

	if (rc < 0)
		log_warn("cannot tell moved workers: %s", dr_strerror(rc));
	else if (told && !again)
		log_info("view %llu: %zu worker%s told to restart on their new owner%s",
			 (unsigned long long)b->view_epoch, told, told == 1 ? "" : "s",
			 unsent ? " (more once their mailboxes have room)" : "");
	else if (told)
		log_debug("%zu misplaced worker%s told again", told, told == 1 ? "" : "s");
	if (!again)
		b->retell_ns = RETELL_MIN_NS;
	if (rc < 0 || unsent) {
		b->tell_retry_ns = now + TELL_RETRY_NS;
	} else if (told) {
		/* Once they moved, the next pass finds none and stops. */
		b->tell_retry_ns = now + b->retell_ns;
		if (again && b->retell_ns < RETELL_MAX_NS)
			b->retell_ns *= 2;
	} else {
		b->tell_retry_ns = 0;
	}
}

int view_publish(struct bridge *b)
{
	/* One thread; the view published last, to tell which names moved. */
	static struct dr_host hosts[DR_HOSTS_MAX], before[DR_HOSTS_MAX];
	static size_t nbefore;
	static bool published;
	size_t n = 0;
	int rc;

	hosts[n++] = (struct dr_host){ .incarnation = b->incarnation, .state = DR_HOST_UP,
				       .self = 1 };
	snprintf(hosts[0].id, sizeof(hosts[0].id), "%s", b->host);
	snprintf(hosts[0].rpc, sizeof(hosts[0].rpc), "%s", b->cfg.rpc);
	for (size_t i = 0; i < b->npeers && n < DR_HOSTS_MAX; i++) {
		const struct peer *p = b->peers[i];
		struct dr_host *h = &hosts[n];
		bool dup = false;

		if (p->state == 0)
			continue; /* dialled, not heard from yet */
		/* An address that never answered has no host id: it is
		 * listed under its address (cut to a host id's length). */
		if (p->host[0])
			memcpy(h->id, p->host, sizeof(h->id));
		else
			snprintf(h->id, sizeof(h->id), "%.*s", DR_HOST_MAX, p->bus);
		for (size_t j = 0; j < n && !dup; j++)
			dup = strcmp(hosts[j].id, h->id) == 0;
		if (dup)
			continue;
		snprintf(h->rpc, sizeof(h->rpc), "%s", p->host[0] ? p->rpc : p->bus);
		h->incarnation = p->incarnation;
		h->state = p->state;
		h->self = 0;
		n++;
	}
	rc = dr_admin_view_publish(b->mb, hosts, n, b->view_epoch + 1);
	if (rc < 0) {
		log_error("cannot publish the view: %s", dr_strerror(rc));
		return rc;
	}
	b->view_epoch++;
	b->view_dirty = false;
	log_debug("view %llu published: %zu hosts", (unsigned long long)b->view_epoch, n);
	/* Workers whose name this view gives to another host: shouldrestart
	 * (at our first view, every misplaced one: we may have been away). */
	tell_moved(b, published ? before : NULL, published ? nbefore : 0, now_ns());
	memcpy(before, hosts, n * sizeof(hosts[0]));
	nbefore = n;
	published = true;
	return 0;
}

void view_tick(struct bridge *b, uint64_t now)
{
	/* Some could not be told (their lane was full), or some stayed
	 * misplaced: every misplaced one again (a worker that stopped serving
	 * the name meanwhile gets none). */
	if (b->tell_retry_ns && now >= b->tell_retry_ns)
		tell_moved(b, NULL, 0, now);
}
