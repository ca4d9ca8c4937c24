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
	moves_view_published(b, published ? before : NULL, published ? nbefore : 0, now_ns());
	memcpy(before, hosts, n * sizeof(hosts[0]));
	nbefore = n;
	published = true;
	return 0;
}
