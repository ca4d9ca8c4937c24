/*
 * v1_view.pml - the view's publication: two copies, a sequence each, an
 * index (bridge/DESIGN.md "The view", lib/dri.h struct dri_cluster).
 *
 * Writer A (a bridge) publishes epochs 1 and 2 and may stop for good at any
 * step (killed, or paused for ever: the same to everyone else). Once it has
 * stopped or finished, writer B (the next bridge, after taking the role
 * over) publishes epoch 3. A reader starts at any moment and reads once.
 * A copy's data is two words that a publication both sets to its epoch:
 * a reader that keeps a copy whose words differ has seen a mixture.
 *
 * The steps and the C they stand for (lib/bridge.c dr_admin_view_publish,
 * lib/cluster.c view_read):
 *   w = (idx & 1) ^ 1                i = ld_acq32(&c->view_index); w = (i & 1) ^ 1
 *   seq[w] = s + 1 + (s & 1)         CMM_STORE_SHARED(v->seq, odd); cmm_smp_wmb()
 *   w0[w] = e; w1[w] = e             v->epoch = ...; host_write() ...
 *   seq[w] = seq[w] + 1              st_rel64(&v->seq, odd + 1)
 *   idx = idx + 1                    st_rel32(&c->view_index, i + 1)
 *   reader: first = idx; s1 = seq[c]; (odd: other copy); words;
 *           seq[c] == s1 or again;   view_read()'s loops
 *           no copy and idx == first: corrupt (-EBADMSG)
 * Properties:
 *   whole_view               a copy a reader keeps holds one publication
 *   fresh_view               and none older than the last one whose flip
 *                            was done before the reader began
 *   reader_never_gives_up    no reader returns "no usable copy" (there is
 *                            no corruption here) nor runs out of attempts
 * -DOLD1: the reader does not check the sequence again after reading.
 * -DOLD2: the writer does not make the sequence odd while it writes.
 * Both must break whole_view.
 * -DOLD3: the index is the copy's number, 0 or 1, not a count of
 * publications: a reader that sleeps through three of them sees the index
 * back where it was and both copies odd when it looked, and takes that for
 * a corrupt view (the first version of lib/cluster.c). It must break
 * reader_never_gives_up.
 */

#define TRIES 5

byte idx;                 /* publications; bit 0 names the copy readers read */
byte seq[2];
byte w0[2];
byte w1[2];
byte flipped;             /* ghost: the epoch of the last flip done */
bool a_done;              /* A stopped (or finished): B may take over */

bool whole_view = true, fresh_view = true, reader_never_gives_up = true;

/* A step at which A may stop for good. */
#define A_STEP if :: true -> skip :: true -> a_done = true; goto stopped fi

inline publish(e, may_stop)
{
	w = (idx & 1) ^ 1;
#ifndef OLD2
	seq[w] = seq[w] + 1 + (seq[w] & 1);
#endif
	if :: may_stop -> A_STEP :: else -> skip fi;
	w0[w] = e;
	if :: may_stop -> A_STEP :: else -> skip fi;
	w1[w] = e;
	if :: may_stop -> A_STEP :: else -> skip fi;
#ifndef OLD2
	seq[w] = seq[w] + 1;
#else
	seq[w] = seq[w] + 2;
#endif
	if :: may_stop -> A_STEP :: else -> skip fi;
#ifndef OLD3
	atomic { idx = idx + 1; flipped = e }
#else
	atomic { idx = w; flipped = e }
#endif
}

active proctype writer_a()
{
	byte w;

	publish(1, true);
	A_STEP;
	publish(2, true);
	a_done = true;
stopped:
	skip
}

active proctype writer_b()
{
	byte w;

	a_done;
	publish(3, false);
stopped:	/* never reached: B does not stop here */
	skip
}

active proctype reader()
{
	byte tries, first, k, c, s1, v0, v1, start;
	bool raced;

	start = flipped;
	tries = 0;
	do
	:: tries < TRIES ->
		first = idx;
		raced = false;
		k = 0;
		do
		:: k < 2 && !raced ->
			c = (first & 1) ^ k;
			s1 = seq[c];
			if
			:: (s1 & 1) -> k++
			:: else ->
				v0 = w0[c];
				v1 = w1[c];
#ifndef OLD1
				if
				:: seq[c] != s1 -> raced = true
				:: else ->
#endif
					/* The other copy counts only with a view in it. */
					if
					:: k == 1 && v0 == 0 -> k++
					:: else -> goto keep
					fi
#ifndef OLD1
				fi
#endif
			fi
		:: else -> break
		od;
		if
		:: !raced && idx == first ->
			reader_never_gives_up = false;
			assert(reader_never_gives_up)
		:: else -> tries++
		fi
	:: else ->
		reader_never_gives_up = false;
		assert(reader_never_gives_up)
	od;
keep:
	whole_view = v0 == v1;
	assert(whole_view);
	fresh_view = v0 >= start;
	assert(fresh_view)
}
