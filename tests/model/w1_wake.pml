/*
 * w1_wake.pml - the mailbox's wake-up (lib/mailbox.c wake(), the sender's
 * side, and dri_wait_take(), the receiver's; the word `waiting` of
 * lib/dri.h struct dri_mbox), a model of its own.
 *
 * `waiting`: bit 0 set while the receiver is about to sleep or asleep,
 * bits 1-7 count its sleeps (bits 1-31 in the C). The receiver's socket is
 * a count of queued datagrams, at most QMAX: a send to a full queue does
 * nothing and counts as sent (EAGAIN, "a wake-up waits there already").
 * Senders 0 and 1 (NSEND) publish one record each into their lanes, then
 * wake the receiver; either may be SIGKILLed between any two of its steps
 * (it stops for good). The receiver, never killed, takes records for ever,
 * one dri_wait_take after another, with no deadline, no hook and no spin
 * (they change nothing here), and sleeps until a datagram is in its
 * socket. Only a killed sender's own record may stay untaken: the C's
 * reaper wakes the receiver for it (dri_reap_mailboxes), or the next
 * sender's wake-up does. Every access to `waiting`, the socket or a record is one step;
 * memory is sequentially consistent (README.md), so the fences are no-ops.
 *
 * The steps and the C they stand for:
 *   sender: pub = 1                  dri_lane_send: CAS of the lane's tail
 *           w = waiting              wake(): cmm_smp_mb(); w = CMM_LOAD_SHARED(m->waiting)
 *           !(w & 1): done           if (!(w & 1)) return
 *           sock++, or EAGAIN: done  sendto(): 1, or EAGAIN (the receiver's queue
 *                                    full, or, at any time, our own send buffer)
 *           CAS w -> w & ~1          uatomic_cmpxchg(&m->waiting, w, w & ~1u) (may fail)
 *   receiver: take                   rc = dri_take(): any published record not taken
 *           sock = 0                 wakeups_drain()
 *           t = waiting;             st_rel32(&m->waiting,
 *           waiting = (t | 1) + 2       ((CMM_LOAD_SHARED(m->waiting) | 1u) + 2u)); cmm_smp_mb()
 *           take                     rc = dri_take()
 *           sleep until sock > 0     ppoll(POLLIN) (the datagram stays queued)
 *           found: t = waiting;      the wait's end: w = CMM_LOAD_SHARED(m->waiting);
 *             t & 1: waiting = t & ~1   if (w & 1) st_rel32(&m->waiting, w & ~1u)
 * Property:
 *   no_lost_wakeup   at quiescence (the monitor's `timeout`: no other
 *                    process can move, the receiver asleep on an empty
 *                    socket), every record of a sender that was not killed
 *                    has been taken
 * The receiver's sleep is an end state (end_sleep).
 *
 * The count wraps (a byte here, 2^31 sleeps in the C): a sender paused
 * between its load and its CAS while the receiver sleeps exactly a
 * multiple of that many times clears a sleep its datagram does not cover
 * (ABA), and the next message waits for the next wake-up. With -DNSEND=3 and
 * -DWMASK=3 or 7 (a count of one or two bits) the model shows it.
 *
 * -DOLD1: the protocol before the count (the code before 93b27cf): the
 * receiver arms with waiting = 1 and ends a wait with waiting = 0; a sender
 * that loads 1 CASes 1 -> 0 and sends only if its CAS succeeded. A sender
 * killed between its CAS and its sendto leaves the receiver asleep and
 * every later sender sure it was woken. It must break no_lost_wakeup.
 * -DOLD2: the tempting fix without the count: NEW's order (sendto, then
 * the clear) with the receiver's arm storing (t | 1), not (t | 1) + 2, so
 * the word is 0 or 1 and the clear is a CAS 1 -> 0. A slow sender's clear
 * lands on the receiver's next sleep, which no datagram covers. It must
 * break no_lost_wakeup too.
 * -DOLD3: the code of 93b27cf: NEW, but EAGAIN counted as a wake-up sent
 * (the flag cleared) and no fresh socket. EAGAIN also comes from the
 * sender's own send buffer, full of datagrams queued at other mailboxes:
 * then no datagram covers the sleep it clears. It must break
 * no_lost_wakeup. (Leaving the flag set on EAGAIN without the fresh
 * socket breaks it as well: nobody wakes the receiver for that record.)
 */

#ifndef NSEND
#define NSEND 2         /* senders, one record each (3 at most) */
#endif
#ifndef WMASK
#define WMASK 255       /* `waiting`'s width: the count wraps */
#endif
#define QMAX 2          /* the socket's receive queue, in datagrams */
#ifdef OLD2
#define BUMP 0          /* no sleep count */
#else
#define BUMP 2          /* one more sleep, in bits 1-7 */
#endif

byte waiting;           /* struct dri_mbox's waiting */
byte sock;              /* datagrams queued on the receiver's socket */
bool pub[3];            /* sender i's record published (its lane's tail) */
bool taken[3];          /* ... and taken by the receiver (ghost) */
bool killed[3];         /* sender i was SIGKILLed (ghost) */
bool no_lost_wakeup = true;

/* A point where the sender may be SIGKILLed: it takes no step after. */
#define KILL if \
	:: true -> skip \
	:: true -> killed[id] = true; goto dead \
	fi

/* sendto() with MSG_DONTWAIT: sent, or EAGAIN (a full queue; or, at any
 * time, the sender's own full send buffer). */
#define SEND(ok) atomic { if \
	:: sock < QMAX -> sock++; ok = true \
	:: true -> ok = false \
	fi }
/* wake_fresh(): the same through a new socket, whose buffer is empty:
 * EAGAIN only for a full queue. */
#define SEND_FRESH(ok) atomic { if \
	:: sock < QMAX -> sock++; ok = true \
	:: else -> ok = false \
	fi }

#define AVAIL(k) (k < NSEND && pub[k] && !taken[k])

/* dri_take(): any published record not yet taken, from any lane. */
inline take(got)
{
	atomic {
		if
		:: AVAIL(0) -> taken[0] = true; got = true
		:: AVAIL(1) -> taken[1] = true; got = true
		:: AVAIL(2) -> taken[2] = true; got = true
		:: else -> got = false
		fi
	}
}

proctype sender(byte id)
{
	byte w;
	bool ok;
#ifdef OLD1
	bool won;
#endif

	pub[id] = true;         /* the tail's CAS: published */
	KILL;
	w = waiting;            /* after cmm_smp_mb() */
	KILL;
#ifdef OLD1
	if
	:: w != 1 -> goto done
	:: else -> skip
	fi;
	atomic { won = (waiting == 1); if :: won -> waiting = 0 :: else -> skip fi };
	if
	:: !won -> goto done
	:: else -> skip
	fi;
	KILL;
	SEND(ok);
#else
	if
	:: !(w & 1) -> goto done
	:: else -> skip
	fi;
	SEND(ok);
#ifndef OLD3
	if
	:: !ok -> SEND_FRESH(ok)
	:: else -> skip
	fi;
	if
	:: !ok -> goto done     /* the queue is full: wake-ups wait there */
	:: else -> skip
	fi;
#endif
	KILL;                   /* crash point wake_sent */
	atomic { if :: waiting == w -> waiting = w & ~1 :: else -> skip fi };
#endif
done:
	skip;
dead:
	skip
}

proctype receiver()
{
	byte t;
	bool got;

	/* One dri_wait_take after another. */
wait:
	take(got);
	if
	:: got -> goto found
	:: else -> skip
	fi;
	sock = 0;               /* wakeups_drain() */
#ifdef OLD1
	waiting = 1;
#else
	t = waiting;
	waiting = ((t | 1) + BUMP) & WMASK;
#endif
	take(got);              /* after cmm_smp_mb() */
	if
	:: got -> goto found
	:: else -> skip
	fi;
end_sleep:
	sock > 0;               /* ppoll(): no timer in the model */
	goto wait;
found:
	/* The wait's end: clear the bit, only if set. */
	t = waiting;
#ifdef OLD1
	if
	:: t != 0 -> waiting = 0
	:: else -> skip
	fi;
#else
	if
	:: t & 1 -> waiting = t & ~1
	:: else -> skip
	fi;
#endif
	goto wait
}

/* Runs once nothing else can move. */
proctype monitor()
{
	byte k;

	timeout;
	atomic {
		k = 0;
		do
		:: k < NSEND ->
			no_lost_wakeup = no_lost_wakeup && (killed[k] || taken[k]);
			k++
		:: else -> break
		od
	};
	assert(no_lost_wakeup)
}

init {
	byte i;

	atomic {
		run receiver();
		i = 0;
		do
		:: i < NSEND -> run sender(i); i++
		:: else -> break
		od;
		run monitor()
	}
}
