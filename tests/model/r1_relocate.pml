/*
 * r1_relocate.pml - calls between bridges, and a call made again because it
 * reached no worker (bridge/rpc.c: on_batch, origin_trim, deliver,
 * not_here, relocate; bridge/DESIGN.md "Calls between bridges").
 *
 * The caller's bridge C sends NB batches of one call each to the owner's
 * bridge O, in order, over channels that keep order but may lose a frame
 * (a REPLY dropped by a raw REP socket, a BATCH O drops because it has not
 * heard C yet). C sends a batch again while it has no answer, up to SENDS
 * times, then gives the call up (-ETIMEDOUT). O delivers batches in batch
 * order only, keeps the answers of its last CACHE batch (one here: the
 * real 1024 only moves the bound) to answer a resend, and a batch numbered
 * at or below the last one delivered that it no longer has is refused as
 * overtaken. A delivered call may reach its worker (who answers, or fails
 * it with its own -ENOENT) or no worker at all (not served here, or its
 * registration ended before the worker took it: DR_NOTSERVED); or it may
 * wait in O for room in the worker's mailbox (struct dlv): the batch is
 * then pending, held in the cache whatever its age (origin_trim keeps
 * pending batches), a resend of it gets only an acknowledgement (an empty
 * reply, which changes nothing in C but when it sends again: the model
 * leaves that free anyway), and later the call reaches its worker, or none,
 * or expires in the queue (-ETIMEDOUT, final). C makes a
 * call that comes back DR_NOTSERVED again on another host, where it may
 * reach a worker; any other answer is final. C takes the first answer of
 * a call and ignores later ones.
 *
 * The steps and the C they stand for:
 *   O: !heard: drop                 rpc_rep_recv: peer not live -> continue
 *      held, pending: nothing       on_batch: found in o->cache, ibatch_ack
 *      held: its answer             on_batch: found in o->cache
 *      no > delivered: deliver      deliver() -> dlv_submit / not_here
 *        or pend                       dlv_submit: no room -> queued
 *      pending ends                 dlv_run -> dlv_try / expired -> dlv_done
 *      trim: the older, not pending origin_trim: o->forgotten
 *      else: overtaken              on_batch: !deliverable:
 *            no > forgotten            not_here (DR_NOTSERVED)
 *            else                      -ETIMEDOUT
 *   C: NOTSERVED: again elsewhere   answer() -> relocate()
 * Property:
 *   once    no call reaches a worker twice
 * -DOLD1: an overtaken batch is always answered DR_NOTSERVED (the first
 * version of not_here for overtaken batches, before o->forgotten: a batch
 * delivered, whose reply was lost and which was then trimmed from the
 * cache, was made again). It must break once.
 * -DOLD2: C makes a call again on the worker's own -ENOENT too (the first
 * version of the calls during a move, which could not tell the two
 * apart). It must break once.
 * -DOLD3: a resend of a batch whose call still waits in O is not found in
 * the cache (as if a waiting batch were not held, or were trimmed): it is
 * refused as overtaken, DR_NOTSERVED, made again, and the waiting call
 * reaches its worker too. It must break once.
 */

#define NB 2
#define SENDS 2

mtype = { OK, WENOENT, NOTSERVED, TIMEDOUT };

/* Which answers make C make the call again. */
#ifdef OLD2
#define AGAIN(s) (s == NOTSERVED || s == WENOENT)
#else
#define AGAIN(s) (s == NOTSERVED)
#endif

chan to_o = [4] of { byte };
chan to_c = [4] of { byte, mtype };

byte seen[NB + 1];       /* times call n reached a worker, anywhere */
bool heard;              /* O has heard C's heartbeat */
bool once = true;

inline reach(n)
{
	d_step {
		seen[n]++;
		once = seen[n] <= 1;
		assert(once)
	}
}

/* How O's delivery of call n ends: a worker, or none. */
inline outcome(n)
{
	if
	:: reach(n); s = OK
	:: reach(n); s = WENOENT
	:: s = NOTSERVED
	fi
}

/* Call k, waiting in O, ends: delivered, or expired in the queue. */
inline resolve(k)
{
	pend[k] = false;
	if
	:: outcome(k)
	:: s = TIMEDOUT
	fi;
	st[k] = s;
	if
	:: to_c!k, s
	:: skip /* the reply is lost */
	fi
}

active proctype owner()
{
	byte no, delivered, forgotten, m;
	bool held[NB + 1], pend[NB + 1];
	mtype st[NB + 1], s;

end:
	do
	:: !heard -> heard = true
	:: pend[1] -> resolve(1)
	:: pend[2] -> resolve(2)
	:: to_o?no ->
		if
		:: !heard -> skip /* dropped: C sends it again */
#ifndef OLD3
		:: heard && held[no] && pend[no] -> skip /* acknowledged */
#endif
		:: heard && held[no] && !pend[no] ->
			if
			:: to_c!no, st[no]
			:: skip
			fi
#ifdef OLD3
		:: heard && !(held[no] && !pend[no]) ->
#else
		:: heard && !held[no] ->
#endif
			if
			:: no > delivered ->
				if
				:: outcome(no); st[no] = s
				:: pend[no] = true /* waits for room */
				fi;
				delivered = no;
				held[no] = true;
				/* origin_trim, a cache of one: the older ones
				 * that are not pending go */
				m = 1;
				do
				:: m < no ->
					if
					:: held[m] && !pend[m] ->
						held[m] = false;
						if
						:: m > forgotten -> forgotten = m
						:: else -> skip
						fi
					:: else -> skip
					fi;
					m++
				:: else -> break
				od;
				if
				:: !pend[no] ->
					if
					:: to_c!no, st[no]
					:: skip /* the reply is lost */
					fi
				:: else -> skip
				fi
			:: else ->
#ifdef OLD1
				s = NOTSERVED;
#else
				if
				:: no > forgotten -> s = NOTSERVED
				:: else -> s = TIMEDOUT
				fi;
#endif
				if
				:: to_c!no, s
				:: skip
				fi
			fi
		fi
	od
}

active proctype caller()
{
	byte n, k, sends[NB + 1];
	bool done[NB + 1];
	mtype s;

end:
	do
	:: n < NB -> n++; sends[n] = 1; to_o!n
	:: n >= 1 && !done[1] && sends[1] < SENDS -> sends[1]++; to_o!1
	:: n >= 2 && !done[2] && sends[2] < SENDS -> sends[2]++; to_o!2
	:: n >= 1 && !done[1] && sends[1] == SENDS -> done[1] = true /* -ETIMEDOUT */
	:: n >= 2 && !done[2] && sends[2] == SENDS -> done[2] = true
	:: to_c?k, s ->
		if
		:: done[k] -> skip /* a later answer: ignored */
		:: else ->
			done[k] = true;
			if
			:: AGAIN(s) ->
				/* made again on another host: a worker there,
				 * or none (then its answer is final) */
				if
				:: reach(k)
				:: skip
				fi
			:: else -> skip
			fi
		fi
	od
}
