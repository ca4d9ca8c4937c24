/*
 * Crash points: labelled steps of the shared-memory protocols where a test
 * build (compiled with -DDR_CRASHPOINTS, the static library distreg_crash)
 * can be told to kill the calling process with SIGKILL, to prove that every
 * intermediate state can be finished or rolled back by other processes, or
 * to pause it there, to prove that other processes running every path
 * meanwhile (and finishing or reclaiming its work) harm neither it nor
 * themselves when it carries on.
 *
 * The environment selects the point, read at every point reached (cheap
 * enough for a test build):
 *   DISTREG_CRASH_AT=<name>   the point
 *   DISTREG_CRASH_SKIP=<n>    pass that point n times first (default 0)
 *   DISTREG_CRASH_MODE=<m>    kill (default), stop (SIGSTOP until SIGCONT)
 *                             or sleep:<ms>; see dri_crashpoint()
 * In normal builds DRI_CRASHPOINT() compiles to nothing.
 */
#ifndef DRI_CRASHPOINT_H
#define DRI_CRASHPOINT_H

/* Every crash point, so tests can iterate over them. */
#define DRI_CRASHPOINTS(X)                                                     \
	X(create_tmp)        /* unnamed segment file made, header not set    */   \
	X(create_init)       /* segment initialised, not yet linked in place */  \
	X(attach_locked)     /* process slot lock taken, slot not yet claimed */ \
	X(attach_stamped)    /* last holder's live bit cleared, our pid written */ \
	X(attach_claimed)    /* process slot claimed */                          \
	X(reader_claiming)   /* reader slot being claimed: half the claim done */ \
	X(reader_claimed)    /* reader slot owned, not yet used */               \
	X(read_entered)      /* inside a read-side section */                    \
	X(reg_allocated)     /* entry state set to allocated, not filled */      \
	X(reg_filled)        /* entry filled, not yet linked */                  \
	X(reg_linked)        /* entry linked into its bucket */                  \
	X(reg_takeover)      /* a dead owner's entry marked deleted */           \
	X(update_busy)       /* value update started (busy bit set) */           \
	X(update_written)    /* new value written, not yet switched to */        \
	X(unreg_marked)      /* entry marked deleted, still linked */            \
	X(unreg_unlinked)    /* entry unlinked, not yet retired */               \
	X(unreg_retired)     /* entry retired, in this thread's retire list */   \
	X(search_unlinked)   /* a search unlinked a marked entry, not retired */ \
	X(finish_found)      /* a marked allocated entry found by index */       \
	X(reclaim_bumped)    /* epoch advanced, readers not yet checked */       \
	X(reclaim_taken)     /* a retired entry taken to free or reuse, not reset */ \
	X(reclaim_freeing)   /* entry reset, not yet marked free */              \
	X(reuse_taken)       /* a reusable entry taken and reset, not yet marked allocated */ \
	X(reap_reader_checked) /* a reader slot's owner found dead, slot kept */ \
	X(reap_marked)       /* a dead owner's entry marked by the reaper */     \
	X(close_partial)     /* dr_close() removed some names, not all */        \
	X(retire_loaded)     /* a retirer loaded the epoch, has not retired */   \
	X(lockfd_opened)     /* the lock descriptor opened, not yet the handle's */ \
	X(thread_listing)    /* the handle's mutex held, a thread being listed */ \
	X(mbox_claimed)      /* a mailbox slot claimed, not yet opened */        \
	X(lane_claimed)      /* a lane claimed, not yet attached */              \
	X(lane_attached)     /* a lane attached to its mailbox, nothing sent */  \
	X(send_written)      /* a record written into a lane, not published */   \
	X(send_published)    /* a record published, its receiver not yet woken */ \
	X(wake_sent)         /* a sleeping receiver's wake-up sent, its flag not yet cleared */ \
	X(recv_taken)        /* a record taken, its room not given back */       \
	X(lane_detached)     /* a lane detached by its reader, not freed */      \
	X(lane_drained)      /* a receiver found a live sender's lane drained, not yet asked whether it died */ \
	X(reap_mbox)         /* a dead process's mailbox marked for reaping, table not cleared */ \
	X(wait_empty)        /* a waiting receiver found nothing, hook not yet run */ \
	X(lane_checked)      /* a claimed lane's target found current, not yet attached */ \
	X(reap_lane)         /* a dead sender's lane, drained or to a gone mailbox, not yet detached */ \
	X(async_sent)        /* an asynchronous call sent, its pending entry not given its target */ \
	X(bridge_claimed)    /* the bridge role taken, its address not served */ \
	X(bridge_served)     /* the bridge's address served, not yet marked run */ \
	X(bridge_live_locked) /* the role's liveness lock held, `live` not yet set */ \
	X(bridge_releasing)  /* the bridge's address unregistered, role held */  \
	X(view_writing)      /* a view copy half written, its sequence odd */    \
	X(view_written)      /* a view copy whole, the index not yet flipped */  \
	X(fwd_resolved)      /* the bridge's mailbox found, forward not written */ \
	X(lane_evicting)     /* a drained lane's tail marked evicted, its slot not yet taken */ \
	X(lane_evicted)      /* an evicted lane's slot taken by the evictor's lane */

#ifdef DR_CRASHPOINTS
void dri_crashpoint(const char *name);
#define DRI_CRASHPOINT(name) dri_crashpoint(#name)
#else
#define DRI_CRASHPOINT(name) ((void)0)
#endif

#endif
