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
 * registration ended before the worker took it: DR_NOTSERVED). C makes a
 * call that comes back DR_NOTSERVED again on another host, where it may
 * reach a worker; any other answer is final. C takes the first answer of
 * a call and ignores later ones.
 *
 * The steps and the C they stand for:
 *   O: !heard: drop                 rpc_rep_recv: peer not live -> continue
 *      no == cached: its answer     on_batch: found in o->cache
 *      no > delivered: deliver      deliver() / dr_admin_deliver, not_here
 *      trim: forgotten = cached     origin_trim: o->forgotten
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

active proctype owner()
{
	byte no, delivered, forgotten, cached;
	mtype st[NB + 1], s;

end:
	do
	:: !heard -> heard = true
	:: to_o?no ->
		if
		:: !heard -> skip /* dropped: C sends it again */
		:: else ->
			if
			:: no == cached -> s = st[no]
			:: no != cached && no > delivered ->
				if
				:: reach(no); s = OK
				:: reach(no); s = WENOENT
				:: s = NOTSERVED
				fi;
				st[no] = s;
				delivered = no;
				if
				:: cached != 0 -> forgotten = cached
				:: else -> skip
				fi;
				cached = no
			:: no != cached && no <= delivered ->
#ifdef OLD1
				s = NOTSERVED
#else
				if
				:: no > forgotten -> s = NOTSERVED
				:: else -> s = TIMEDOUT
				fi
#endif
			fi;
			if
			:: to_c!no, s
			:: skip /* the reply is lost */
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
