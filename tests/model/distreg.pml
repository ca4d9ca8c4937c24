/*
 * distreg.pml - the shared-memory protocol of lib/ (the entry table, its
 * epoch-based reclamation and the reader slots), for Spin.
 *
 * Included by one configuration file per scenario (f*.pml, m*.pml), which
 * sets the sizes below and defines the processes. Every access to a shared
 * word of the C is one step here (one Promela statement, or one d_step that
 * also runs the property checks, which read but never write shared state);
 * what a step does locally afterwards is folded into it. Memory is
 * sequentially consistent (see README.md). Comments cite the C as
 * file:line at edfb833 (NEW); "old" lines are at e21c23b.
 *
 * The protocol is NEW (edfb833) unless one of these is defined:
 *   OLD1  the reclaimer takes an entry as ALLOC(itself) and frees it with
 *         plain stores (old rcu.c:249-254); no FREEING state
 *   OLD2  no generation in the state word (old dri.h DRI_ST_ALLOC(owner));
 *         finish_deletes and reap_entries act on a state loaded outside the
 *         read-side section, and dri_delete_exact does not check it again
 *         once it found the entry (old table.c:476-484, 504-511, 571-572)
 *   OLD3  reapers store epoch = 0 into a dead reader's slot; the claimer does
 *         not clear it (old rcu.c:218, 345)
 *   OLD4  the claimer takes the slot before raising readers_hwm (old
 *         rcu.c:56-65)
 *   OLD   all four: the protocol of e21c23b
 * and, apart from those (OLD does not include it):
 *   OLD5  a tempting shortcut that the C never had: the allocator takes a
 *         reusable entry from RETIRED straight to ALLOC(itself), and resets
 *         its link after, instead of through FREEING (dri_take_reusable)
 */

#ifdef OLD
#define OLD1
#define OLD2
#define OLD3
#define OLD4
#endif

/* Sizes, set by the configuration. */
#ifndef N
#define N 1            /* entries */
#endif
#ifndef R
#define R 1            /* reader slots */
#endif
#ifndef K
#define K 1            /* names: 1..K, their order is the bucket order */
#endif
#ifndef NPROC
#define NPROC 2        /* owner ids 1..NPROC (processes of the scenario) */
#endif
#ifndef BATCH
#define BATCH 1        /* retire_batch: reclaim after this many retirements */
#endif
#ifndef ROUNDS
#define ROUNDS 2       /* rounds of dri_alloc_entry's loop before giving up */
#endif
#ifndef FULL_PASSES
#define FULL_PASSES 1  /* table.c:154 has 3 */
#endif

/* The state word (dri.h:137-187): tag, generation, low bits (an owner id
 * or an epoch). */
#define FREE_T 0
#define ALLOC_T 1
#define RETIRED_T 2
#define FREEING_T 3
#define ST(t, g, l) ((t) * 256 + (g) * 16 + (l))
#define TAG(s) ((s) / 256)
#define GEN(s) (((s) / 16) % 16)
#define LOW(s) ((s) % 16)
#ifdef OLD2
#define NEWGEN(s) 0                  /* old: DRI_ST_ALLOC(owner), no generation */
#else
#define NEWGEN(s) (GEN(s) + 1)       /* table.c:113 */
#endif

#define MARK 16          /* links are index + 1, DRI_MARK marks the holder */
#define BKT 255          /* "prev" naming the bucket head, not an entry */
#define NONE 255         /* no reader slot */
#define INF 255          /* UINT64_MAX of oldest_reader() */
#define BUSY 2           /* free_retired() == -EBUSY */
#define CLEANER (NPROC + 1)

/* ------------------------------------------------------------------ */
/* Shared memory. */

short st[N];             /* states[], atomic */
byte nxt[N];             /* entries[].next, atomic */
byte bucket;             /* buckets[0], atomic: one bucket */
byte e_name[N];          /* entries[].hash/name, immutable while ALLOC */
byte e_owner[N];         /* entries[].owner, immutable while ALLOC */
byte epoch = 1;          /* hdr->epoch */
byte r_ep[R];            /* readers[].epoch */
byte r_own[R];           /* readers[].owner */
byte hwm;                /* hdr->readers_hwm */
bool alive[NPROC + 2];   /* the liveness lock of each owner id */
byte ended;              /* processes that ended or died (not shared memory) */

/* Ghosts, for the properties only. */
byte reg[K + 1];         /* owner of the registration of each name that
                            succeeded and that its owner did not delete */
byte held[NPROC + 2];    /* entries each process reached through the
                            table inside its current read-side section */

/* Scratch of the checks (inside d_steps only), not part of the state;
 * except with -DSHORTEST, for pan's breadth-first search (-DBFS), which
 * finds the shortest trail but does not allow hidden variables. */
#ifdef SHORTEST
#define HIDDEN
#else
#define HIDDEN hidden
#endif
HIDDEN byte c_cur, c_steps, c_i, c_names;
HIDDEN byte c_own[K + 1];
/* The properties, named so that pan's "assertion violated" names them. */
HIDDEN byte chain_acyclic, linked_entry_allocated, one_owner_per_name,
            registration_visible, no_reuse_under_reader, model_bounds,
            all_entries_free, owned_slot_below_hwm, no_slot_lost;

/* ------------------------------------------------------------------ */
/* The properties. */

/*
 * After every write to a link, a state word or a name: the chain from the
 * bucket is acyclic, every entry on it is ALLOC, no two unmarked entries on
 * it have one name, and every registration that succeeded, and that its
 * owner did not delete, is on it unmarked while its owner lives.
 */
inline check_table()
{
	c_cur = bucket;
	c_steps = 0;
	c_names = 0;
	c_i = 0;
	do
	:: c_i <= K -> c_own[c_i] = 0; c_i++
	:: else -> break
	od;
	do
	:: c_cur == 0 -> break
	:: else ->
		chain_acyclic = (c_cur <= N && c_steps < N);
		assert(chain_acyclic);
		c_i = c_cur - 1;
		linked_entry_allocated = (TAG(st[c_i]) == ALLOC_T);
		assert(linked_entry_allocated);
		if
		:: nxt[c_i] < MARK ->
			one_owner_per_name = ((c_names & (1 << e_name[c_i])) == 0);
			assert(one_owner_per_name);
			c_names = c_names | (1 << e_name[c_i]);
			c_own[e_name[c_i]] = e_owner[c_i]
		:: else -> skip
		fi;
		c_cur = nxt[c_i] % MARK;
		c_steps++
	od;
	c_i = 1;
	do
	:: c_i <= K ->
		registration_visible = (reg[c_i] == 0 || !alive[reg[c_i]] || c_own[c_i] == reg[c_i]);
		assert(registration_visible);
		c_i++
	:: else -> break
	od;
	c_i = 0
}

/* Before entry x is reset, freed or allocated: no live process inside a
 * read-side section reached it through the table. */
inline check_not_held(x)
{
	c_i = 1;
	do
	:: c_i <= NPROC ->
		no_reuse_under_reader = !(alive[c_i] && (held[c_i] & (1 << x)));
		assert(no_reuse_under_reader);
		c_i++
	:: else -> break
	od;
	c_i = 0
}

/* ------------------------------------------------------------------ */
/* Per-process variables: the C's locals and thread state. */

#define LOCALS \
	byte slot = NONE, nest, nret, cursor, re_e; \
	byte rlist[BATCH]; \
	byte ulist[BATCH], nuse, u_T, u_old; \
	byte sp_prev, sp_curr, sp_nx, sp_nm, sp_ow, sp_steps, sp_i; \
	bit sp_rc, sp_ok, sp_done; short sp_s; \
	byte rt_ep; bit rt_ok; \
	byte ta_n, ta_at; bit ta_got; short ta_s; \
	short fu_s; \
	byte fr_k; bit fr_ok; \
	byte or_h, or_i, or_e, or_o, or_old; \
	byte rc_T, rc_i, rc_x, rc_freed, ra_left; bit rc_busy; short rc_s; \
	byte rr_h, rr_i, rr_o, rr_n; bit rr_ok; \
	byte hr_h; bit hr_ok; \
	byte rcl_pass, rcl_i; bit rcl_ok, rcl_done; \
	bit in_done, in_rc, in_ok; byte in_cur; \
	bit dl_done; \
	byte mu_cur, mu_nm; bit mu_ok, mu_rc; short mu_s; \
	byte dx_x, dx_nm, dx_g; bit dx_removed; short dx_state, dx_s; \
	byte fd_i, fd_nx, fd_n; short fd_s; \
	byte re_snap, re_i, re_o, re_act; short re_s; \
	byte ae_idx, ae_round, ae_full; bit ae_rc

/* Zero every local of a process that ended or died, so that where it
 * stopped does not make states differ. */
#define RESET_LOCALS \
	slot = NONE; nest = 0; nret = 0; cursor = 0; re_e = 0; sp_prev = 0; \
	sp_curr = 0; sp_nx = 0; sp_nm = 0; sp_ow = 0; sp_rc = 0; sp_ok = 0; \
	sp_done = 0; sp_steps = 0; sp_i = 0; sp_s = 0; rt_ep = 0; rt_ok = 0; \
	ta_n = 0; ta_at = 0; ta_got = 0; ta_s = 0; fu_s = 0; fr_k = 0; \
	fr_ok = 0; or_h = 0; or_i = 0; or_e = 0; or_o = 0; or_old = 0; \
	rc_T = 0; rc_i = 0; rc_x = 0; rc_freed = 0; rc_busy = 0; ra_left = 0; \
	rc_s = 0; rr_h = 0; rr_i = 0; rr_o = 0; rr_n = 0; rr_ok = 0; hr_h = 0; \
	hr_ok = 0; rcl_pass = 0; rcl_i = 0; rcl_ok = 0; rcl_done = 0; \
	in_done = 0; in_rc = 0; in_ok = 0; in_cur = 0; dl_done = 0; \
	mu_cur = 0; mu_ok = 0; mu_rc = 0; mu_nm = 0; mu_s = 0; dx_x = 0; \
	dx_nm = 0; dx_g = 0; dx_removed = 0; dx_state = 0; dx_s = 0; fd_i = 0; \
	fd_nx = 0; fd_n = 0; fd_s = 0; re_snap = 0; re_i = 0; re_o = 0; \
	re_act = 0; re_s = 0; ae_rc = 0; ae_idx = 0; ae_round = 0; \
	ae_full = 0; \
	nuse = 0; u_T = 0; u_old = 0; \
	c_i = 0; do :: c_i < BATCH -> rlist[c_i] = 0; ulist[c_i] = 0; c_i++ :: else -> break od; c_i = 0

/* ------------------------------------------------------------------ */
/* Read-side sections (dri.h). */

inline read_enter()
{
	if
	:: slot == NONE -> skip     /* the clean-up runs alone */
	:: else ->
		if
		:: nest == 0 ->
			re_e = epoch;                            /* dri.h:395 */
			d_step { r_ep[slot] = re_e; held[me] = 0; re_e = 0 }  /* dri.h:396 */
		:: else -> skip
		fi
	fi;
	nest++
}

inline read_exit()
{
	nest--;
	if
	:: slot != NONE && nest == 0 ->
		d_step { r_ep[slot] = 0; held[me] = 0 }         /* dri.h:409 */
	:: else -> skip
	fi
}

/* ------------------------------------------------------------------ */
/* rcu.c */

/* dri_retire(r, t, x, ex), rcu.c:205-216 */
inline retire(x, ex)
{
	rt_ep = epoch;                                          /* rcu.c:208 */
	d_step {                                                /* rcu.c:210 */
		if
		:: st[x] == ex -> st[x] = ST(RETIRED_T, GEN(ex), rt_ep); rt_ok = 1
		:: else -> rt_ok = 0
		fi;
		check_table();
		rt_ep = 0
	};
	if
	:: rt_ok && nret < BATCH -> rlist[nret] = x; nret++     /* rcu.c:213-214 */
	:: else -> skip
	fi;
	rt_ok = 0
}

/* grace_begin(), rcu.c:219-226; the membarrier is a no-op under SC. */
inline grace_begin()
{
	d_step {                                                /* rcu.c:221 */
		rc_T = epoch; epoch++;
		model_bounds = (epoch < 16); assert(model_bounds)  /* fits LOW() */
	}
}

/* oldest_reader(r, rc_T) into or_old, rcu.c:238-262 (old :197-222) */
inline oldest_reader()
{
	or_h = hwm;                                             /* rcu.c:240 */
	or_old = INF;
	or_i = 0;
	do
	:: or_i < or_h ->
		or_e = r_ep[or_i];                              /* rcu.c:247 */
		if
		:: or_e == 0 || or_e > rc_T || or_e >= or_old -> skip   /* rcu.c:249 */
		:: else ->
			or_o = r_own[or_i];                     /* rcu.c:251 */
			if
			:: or_o == 0 -> skip
			:: else ->
				if
				:: alive[or_o] -> or_old = or_e /* rcu.c:254-256 */
				:: else ->
#ifdef OLD3
					r_ep[or_i] = 0;         /* old rcu.c:218 */
#endif
					d_step {                /* rcu.c:259 */
						if
						:: r_own[or_i] == or_o -> r_own[or_i] = 0
						:: else -> skip
						fi
					}
				fi
			fi
		fi;
		or_i++; or_e = 0; or_o = 0
	:: else -> break
	od;
	or_i = 0; or_h = 0
}

/* dri_entry_reset(r, x, g), rcu.c:269-274 (old: inline at rcu.c:252-254) */
inline entry_reset(x, g)
{
	d_step { check_not_held(x); nxt[x] = 0; check_table() }          /* rcu.c:271 */
	d_step { st[x] = ST(FREE_T, g, 0); check_table() }               /* rcu.c:273 */
}

/* retired_free_to_take(r, s, T, old) into fr_k (0, 1 or BUSY). Epochs are
 * not truncated here, so dri_st_epoch() is LOW(s). */
#define FREE_TO_TAKE(s, T, old) \
	if \
	:: TAG(s) != RETIRED_T -> fr_k = 0 \
	:: TAG(s) == RETIRED_T && LOW(s) > (T) -> fr_k = 0 \
	:: TAG(s) == RETIRED_T && LOW(s) <= (T) && LOW(s) >= (old) -> fr_k = BUSY \
	:: TAG(s) == RETIRED_T && LOW(s) <= (T) && LOW(s) < (old) -> fr_k = 1 \
	fi

/* free_retired(r, x, s, T, old) into fr_k: retired_free_to_take(), then
 * take_retired() and dri_entry_reset() (rcu.c) */
inline free_retired(x, s, T, old)
{
	FREE_TO_TAKE(s, T, old);
	if
	:: fr_k == 1 ->
		d_step {
			if
			:: st[x] == s ->
#ifdef OLD1
				st[x] = ST(ALLOC_T, GEN(s), me);        /* old rcu.c:249 */
#else
				st[x] = ST(FREEING_T, GEN(s), me);      /* take_retired */
#endif
				fr_ok = 1
			:: else -> fr_ok = 0
			fi;
			check_table()
		};
		if
		:: fr_ok -> entry_reset(x, GEN(s))
		:: else -> fr_k = 0
		fi;
		fr_ok = 0
	:: else -> skip
	fi
}

/* dri_reuse_flush(): free what is left of the reusable entries */
inline reuse_flush()
{
	do
	:: nuse > 0 ->
		nuse--;
		rc_x = ulist[nuse];
		ulist[nuse] = 0;
		rc_s = st[rc_x];
		free_retired(rc_x, rc_s, u_T, u_old);
		rc_x = 0; rc_s = 0; fr_k = 0
	:: else -> break
	od;
	u_T = 0; u_old = 0
}

/* dri_reclaim_own(): the entries no reader can hold become reusable
 * (ulist, with the grace period's u_T and u_old); rc_freed counts them */
inline reclaim_own()
{
	rc_freed = 0;
	rc_busy = 0;
	if
	:: nret == 0 -> skip
	:: else ->
		reuse_flush();
		grace_begin();
		oldest_reader();
		rc_i = 0;
		do
		:: rc_i < nret ->
			rc_x = rlist[rc_i];
			rc_s = st[rc_x];
			FREE_TO_TAKE(rc_s, rc_T, or_old);
			if
			:: fr_k == BUSY -> rc_busy = 1
			:: fr_k == 1 -> ulist[rc_freed] = rc_x; rc_freed++
			:: else -> skip
			fi;
			rlist[rc_i] = 0; rc_i++; rc_x = 0; rc_s = 0; fr_k = 0
		:: else -> break
		od;
		nuse = rc_freed; u_T = rc_T; u_old = or_old;
		nret = 0; rc_i = 0; rc_T = 0; or_old = 0
	fi
}

/* dri_reclaim_all(), rcu.c:351-376: rc_freed (total), rc_busy, ra_left */
inline reclaim_all()
{
	grace_begin();                                          /* rcu.c:353 */
	oldest_reader();
	rc_freed = 0;
	rc_busy = 0;
	ra_left = 0;
	rc_i = 0;
	do :: rc_i < nret -> rlist[rc_i] = 0; rc_i++ :: else -> break od;
	nret = 0;                                               /* rcu.c:357 */
	rc_i = 0;
	do
	:: rc_i < N ->
		rc_s = st[rc_i];                                /* rcu.c:359 */
		if
		:: TAG(rc_s) != RETIRED_T -> skip
		:: else ->
			free_retired(rc_i, rc_s, rc_T, or_old);
			if
			:: fr_k == 1 -> rc_freed++
			:: fr_k == BUSY -> ra_left++; rc_busy = 1
			:: else -> ra_left++
			fi
		fi;
		rc_i++; rc_s = 0; fr_k = 0
	:: else -> break
	od;
	rc_i = 0; rc_T = 0; or_old = 0
}

/* dri_reap_readers(), rcu.c:379-397 (old :331-350): rr_n */
inline reap_readers()
{
	rr_h = hwm;                                             /* rcu.c:381 */
	rr_n = 0;
	rr_i = 0;
	do
	:: rr_i < rr_h ->
		rr_o = r_own[rr_i];                             /* rcu.c:388 */
		if
		:: rr_o == 0 -> skip
		:: else ->
			if
			:: alive[rr_o] -> skip                  /* rcu.c:390 */
			:: else ->
#ifdef OLD3
				r_ep[rr_i] = 0;                 /* old rcu.c:345 */
#endif
				d_step {                        /* rcu.c:393 */
					if
					:: r_own[rr_i] == rr_o -> r_own[rr_i] = 0; rr_n++
					:: else -> skip
					fi
				}
			fi
		fi;
		rr_i++; rr_o = 0
	:: else -> break
	od;
	rr_i = 0; rr_h = 0
}

/* hwm_raise(r, n), rcu.c:73-82 (old: the loop at rcu.c:61-65) */
inline hwm_raise(n)
{
	do
	:: hr_h = hwm;                                          /* rcu.c:78 */
		if
		:: hr_h >= n -> break                           /* rcu.c:79 */
		:: else ->
			d_step {                                /* rcu.c:81 */
				if
				:: hwm == hr_h -> hwm = n; hr_ok = 1
				:: else -> hr_ok = 0
				fi
			};
			if
			:: hr_ok -> break
			:: else -> skip
			fi
		fi
	od;
	hr_h = 0; hr_ok = 0
}

/* reader_claim(), rcu.c:84-114 (old :45-75): slot, or NONE (-EUSERS) */
inline reader_claim()
{
	rcl_done = 0;
	rcl_pass = 0;
	do
	:: rcl_pass < 2 && !rcl_done ->
		rcl_i = 0;
		do
		:: rcl_i < R && !rcl_done ->
			if
			:: r_own[rcl_i] != 0 -> skip            /* rcu.c:94 */
			:: else ->
#ifndef OLD4
				hwm_raise(rcl_i + 1);           /* rcu.c:98 */
#endif
				d_step {                        /* rcu.c:100 */
					if
					:: r_own[rcl_i] == 0 -> r_own[rcl_i] = me; rcl_ok = 1
					:: else -> rcl_ok = 0
					fi
				};
				if
				:: rcl_ok ->
#ifndef OLD3
					r_ep[rcl_i] = 0;        /* rcu.c:103 */
#endif
#ifdef OLD4
					hwm_raise(rcl_i + 1);   /* old rcu.c:61-65 */
#endif
					slot = rcl_i; rcl_done = 1
				:: else -> skip
				fi;
				rcl_ok = 0
			fi;
			rcl_i++
		:: else -> break
		od;
		if
		:: !rcl_done && rcl_pass == 0 ->
			reap_readers();                         /* rcu.c:110 */
			if
			:: rr_n == 0 -> rcl_pass = 2
			:: else -> rcl_pass = 1
			fi;
			rr_n = 0
		:: else -> rcl_pass++
		fi
	:: else -> break
	od;
	rcl_i = 0; rcl_pass = 0; rcl_done = 0
}

/* ------------------------------------------------------------------ */
/* table.c */

/* A CAS on the link p (BKT: the bucket head; else nxt[p]): the caller's
 * CAS (table.c:86 in search, :431 in mark_and_unlink). */
inline cas_link(p, ex, nw, ok)
{
	d_step {
		if
		:: p == BKT ->
			if
			:: bucket == ex -> bucket = nw; ok = 1
			:: else -> ok = 0
			fi
		:: else ->
			if
			:: nxt[p] == ex -> nxt[p] = nw; ok = 1
			:: else -> ok = 0
			fi
		fi;
		check_table()
	}
}

/*
 * search(r, t, key, &p), table.c:59-104: sp_rc (1 found, 0 not), sp_prev,
 * sp_curr, sp_nx (unmarked), and the name and owner of sp_curr (key_cmp
 * and the callers' cur->owner read immutable fields of an entry reached
 * through the table; that they do not change is no_reuse_under_reader).
 */
inline search(key)
{
	sp_done = 0;
	do
	:: sp_done -> break
	:: else ->
		sp_prev = BKT;                                  /* table.c:65 */
		sp_curr = bucket;                               /* table.c:66 */
		sp_steps = 0;
		do
		:: sp_curr == 0 -> sp_rc = 0; sp_done = 1; break   /* table.c:72-77 */
		:: else ->
			d_step {
				chain_acyclic = (sp_curr <= N && sp_steps <= N);
				assert(chain_acyclic);          /* table.c:78, -EBADMSG */
				sp_i = sp_curr - 1;
				sp_nx = nxt[sp_i];              /* table.c:81 */
				held[me] = held[me] | (1 << sp_i);
				sp_nm = e_name[sp_i];           /* table.c:94 key_cmp */
				sp_ow = e_owner[sp_i]
			};
			if
			:: sp_nx >= MARK ->
				sp_s = st[sp_i];                /* table.c:84 */
				cas_link(sp_prev, sp_curr, sp_nx % MARK, sp_ok);  /* table.c:86 */
				if
				:: !sp_ok -> break              /* table.c:87 goto retry */
				:: else -> skip
				fi;
				if
				:: TAG(sp_s) == ALLOC_T -> retire(sp_i, sp_s)  /* table.c:89-90 */
				:: else -> skip
				fi;
				sp_curr = sp_nx % MARK;         /* table.c:91 */
				sp_s = 0; sp_steps++
			:: else ->
				if
				:: sp_nm >= key ->              /* table.c:95-99 */
					sp_rc = (sp_nm == key); sp_done = 1; break
				:: else ->
					sp_prev = sp_i;         /* table.c:101-102 */
					sp_curr = sp_nx;
					sp_steps++
				fi
			fi
		od
	od;
	sp_done = 0; sp_steps = 0; sp_ok = 0
}

/* dri_take_reusable() (rcu.c): ta_got, ta_at */
inline take_reusable()
{
	do
	:: nuse > 0 && !ta_got ->
		nuse--;
		ta_at = ulist[nuse];
		ulist[nuse] = 0;
		ta_s = st[ta_at];
		if
		:: TAG(ta_s) == FREE_T ->
			d_step {                                /* dri_take_free() */
				if
				:: st[ta_at] == ta_s ->
					model_bounds = (GEN(ta_s) < 15); assert(model_bounds);
					check_not_held(ta_at);
					st[ta_at] = ST(ALLOC_T, NEWGEN(ta_s), me);
					ta_got = 1
				:: else -> skip
				fi;
				check_table()
			}
		:: else ->
			FREE_TO_TAKE(ta_s, u_T, u_old);
			if
			:: fr_k == 1 ->
				d_step {                        /* take_retired() */
					if
					:: st[ta_at] == ta_s ->
						model_bounds = (GEN(ta_s) < 15); assert(model_bounds);
#ifdef OLD5
						st[ta_at] = ST(ALLOC_T, NEWGEN(ta_s), me);
#else
						st[ta_at] = ST(FREEING_T, GEN(ta_s), me);
#endif
						ta_got = 1
					:: else -> skip
					fi;
					check_table()
				};
				if
				:: ta_got ->
					d_step { check_not_held(ta_at); nxt[ta_at] = 0; check_table() }
#ifndef OLD5
					d_step { st[ta_at] = ST(ALLOC_T, NEWGEN(ta_s), me); check_table() }
#endif
				:: else -> skip
				fi
			:: else -> skip
			fi;
			fr_k = 0
		fi;
		ta_s = 0;
		if
		:: !ta_got -> ta_at = 0
		:: else -> skip
		fi
	:: else -> break
	od
}

/* try_alloc() with dri_take_free() (table.c, dri.h): ta_got, ta_at. The
 * reusable entries first, then next-fit from the cursor. */
inline try_alloc()
{
	ta_n = 0;
	ta_got = 0;
	take_reusable();
	do
	:: ta_n < N && !ta_got ->
		ta_at = cursor;
		cursor = (cursor + 1) % N;
		ta_s = st[ta_at];                               /* table.c:110 */
		if
		:: TAG(ta_s) == FREE_T ->
			d_step {                                /* table.c:112-113 */
				if
				:: st[ta_at] == ta_s ->
					model_bounds = (GEN(ta_s) < 15); assert(model_bounds);
					check_not_held(ta_at);
					st[ta_at] = ST(ALLOC_T, NEWGEN(ta_s), me);
					ta_got = 1
				:: else -> skip
				fi;
				check_table()
			}
		:: else -> skip
		fi;
		ta_n++; ta_s = 0
	:: else -> break
	od;
	ta_n = 0
}

/* dri_free_unpublished(r, x), table.c:223-229 (old :208-212) */
inline free_unpublished(x)
{
	fu_s = st[x];                                           /* table.c:225 */
	d_step { check_not_held(x); nxt[x] = 0; check_table() } /* table.c:227 */
	d_step { st[x] = ST(FREE_T, GEN(fu_s), 0); check_table() }  /* table.c:228 */
	fu_s = 0
}

/* mark_and_unlink(r, t, &p), table.c:421-442 (old :404-425): mu_rc */
inline mark_and_unlink()
{
	mu_cur = sp_curr - 1;
	mu_nm = sp_nm;
	d_step {                                                /* table.c:427 */
		if
		:: nxt[mu_cur] == sp_nx ->
			nxt[mu_cur] = sp_nx + MARK; mu_ok = 1;
			/* ghost: an owner deleting its own registration */
			if
			:: e_owner[mu_cur] == me && reg[mu_nm] == me -> reg[mu_nm] = 0
			:: else -> skip
			fi
		:: else -> mu_ok = 0
		fi;
		check_table()
	};
	if
	:: !mu_ok -> mu_rc = 1                                  /* table.c:428 */
	:: else ->
		mu_s = st[mu_cur];                              /* table.c:430 */
		cas_link(sp_prev, sp_curr, sp_nx, mu_ok);       /* table.c:431 */
		if
		:: mu_ok ->
			if
			:: TAG(mu_s) == ALLOC_T -> retire(mu_cur, mu_s)  /* table.c:433-434 */
			:: else -> skip
			fi
		:: else ->
			search(mu_nm)                           /* table.c:439 */
		fi;
		mu_rc = 0
	fi;
	mu_cur = 0; mu_ok = 0; mu_nm = 0; mu_s = 0
}

/* dri_insert(r, t, x, ...), table.c:322-364: in_rc 0 or 1 (-EEXIST) */
inline insert(x, key)
{
	in_done = 0;
	do
	:: in_done -> break
	:: else ->
		search(key);                                    /* table.c:330 */
		if
		:: sp_rc == 1 ->
			in_cur = sp_curr - 1;
			if
			:: sp_ow == me ->                       /* table.c:339-342 */
				free_unpublished(x); in_rc = 0; in_done = 1
			:: else ->
				if
				:: alive[sp_ow] ->              /* table.c:344-346 */
					free_unpublished(x); in_rc = 1; in_done = 1
				:: else ->
					d_step {                /* table.c:350 */
						if
						:: nxt[in_cur] == sp_nx -> nxt[in_cur] = sp_nx + MARK
						:: else -> skip
						fi;
						check_table()
					}
				fi
			fi
		:: else ->
			d_step { nxt[x] = sp_curr; check_table() }   /* table.c:354 */
			d_step {                                /* table.c:359 */
				if
				:: sp_prev == BKT && bucket == sp_curr -> bucket = x + 1; in_ok = 1
				:: sp_prev != BKT && nxt[sp_prev] == sp_curr -> nxt[sp_prev] = x + 1; in_ok = 1
				:: else -> in_ok = 0
				fi;
				if
				:: in_ok -> reg[key] = me       /* ghost: registered */
				:: else -> skip
				fi;
				check_table()
			};
			if
			:: in_ok -> in_rc = 0; in_done = 1
			:: else -> skip
			fi
		fi
	od;
	in_done = 0; in_ok = 0; in_cur = 0
}

/* dri_lookup(), table.c:391-417 (reads only; the value is left out) */
inline lookup(key)
{
	sp_curr = bucket;                                       /* table.c:394 */
	sp_steps = 0;
	do
	:: sp_curr == 0 -> break
	:: else ->
		d_step {
			chain_acyclic = (sp_curr <= N && sp_steps <= N);
			assert(chain_acyclic);                  /* table.c:400 */
			sp_i = sp_curr - 1;
			sp_nx = nxt[sp_i];                      /* table.c:403 */
			held[me] = held[me] | (1 << sp_i);
			sp_nm = e_name[sp_i]
		};
		if
		:: sp_nm == key && sp_nx < MARK -> break        /* table.c:405-409 */
		:: sp_nm > key -> break                         /* table.c:411-412 */
		:: else -> sp_curr = sp_nx % MARK; sp_steps++   /* table.c:414 */
		fi
	od;
	sp_curr = 0; sp_steps = 0; sp_nx = 0; sp_nm = 0; sp_i = 0
}

/* dri_delete_exact(r, t, dx_x, dx_state), table.c:487-521 (old :461-492):
 * dx_removed */
inline delete_exact()
{
	dx_removed = 0;
	dx_s = st[dx_x];                                        /* table.c:494 */
	if
	:: dx_s != dx_state -> skip                             /* table.c:495 */
	:: else ->
		dx_nm = e_name[dx_x];                           /* table.c:496-501 */
		if
		:: dx_nm == 0 -> skip                           /* never filled */
		:: else ->
			dx_g = 0;
			do
			:: dx_g < 64 ->                         /* table.c:502 */
				search(dx_nm);                  /* table.c:503 */
				if
				:: sp_rc != 1 || sp_curr - 1 != dx_x -> break   /* table.c:504 */
				:: else -> skip
				fi;
#ifndef OLD2
				dx_s = st[dx_x];                /* table.c:506 */
				if
				:: dx_s != dx_state -> break    /* table.c:507 */
				:: else -> skip
				fi;
#endif
				mark_and_unlink();              /* table.c:508 */
				if
				:: mu_rc == 0 -> dx_removed = 1
				:: else -> skip
				fi;
				dx_g++
			:: else -> break
			od
		fi;
		dx_s = st[dx_x];                                /* table.c:518 */
		if
		:: dx_s == dx_state -> retire(dx_x, dx_state)   /* table.c:519 */
		:: else -> skip
		fi
	fi;
	dx_s = 0; dx_nm = 0; dx_g = 0
}

/* finish_deletes(), table.c:529-553 (old :499-516): fd_n */
inline finish_deletes()
{
	fd_n = 0;
	fd_i = 0;
	do
	:: fd_i < N ->
		fd_s = st[fd_i];                                /* table.c:534 */
		if
		:: TAG(fd_s) != ALLOC_T -> skip                 /* table.c:536 */
		:: else ->
			fd_nx = nxt[fd_i];                      /* table.c:537 */
			if
			:: fd_nx < MARK -> skip
			:: else ->
				read_enter();                   /* table.c:542 */
#ifdef OLD2
				dx_x = fd_i; dx_state = fd_s;   /* old table.c:511 */
				delete_exact();
#else
				fd_s = st[fd_i];                /* table.c:543 */
				if
				:: TAG(fd_s) == ALLOC_T ->
					fd_nx = nxt[fd_i];      /* table.c:545 */
					if
					:: fd_nx >= MARK ->
						dx_x = fd_i; dx_state = fd_s;
						delete_exact()  /* table.c:547 */
					:: else -> skip
					fi
				:: else -> skip
				fi;
#endif
				read_exit();                    /* table.c:549 */
				if
				:: st[fd_i] != fd_s -> fd_n++   /* table.c:550 */
				:: else -> skip
				fi
			fi
		fi;
		fd_i++; fd_s = 0; fd_nx = 0; dx_x = 0; dx_state = 0; dx_removed = 0
	:: else -> break
	od;
	fd_i = 0
}

/* dri_reap_entries(r, t, only), table.c:560-632 (old :523-583) */
inline reap_entries(only)
{
	if
	:: only == 0 ->                                         /* table.c:579-583 */
		d_step {
			re_snap = 0;
			re_i = 1;
			do
			:: re_i <= NPROC ->
				if
				:: alive[re_i] -> re_snap = re_snap | (1 << re_i)
				:: else -> skip
				fi;
				re_i++
			:: else -> break
			od;
			re_i = 0
		}
	:: else -> skip
	fi;
	re_i = 0;
	do
	:: re_i < N ->
		d_step {                                        /* table.c:586 */
			re_s = st[re_i];
			re_o = LOW(re_s);
			re_act = 0;
			if
			:: TAG(re_s) == ALLOC_T && only != 0 ->
				if                              /* table.c:592-594 */
				:: re_o == only -> re_act = 2
				:: else -> skip
				fi
			:: (TAG(re_s) == ALLOC_T || TAG(re_s) == FREEING_T) && only == 0 ->
				if                              /* table.c:599-606 */
				:: re_o != me && !(re_snap & (1 << re_o)) ->
					re_act = (TAG(re_s) == ALLOC_T -> 2 : 1)
				:: else -> skip
				fi
			:: else -> skip                         /* table.c:589 */
			fi;
#ifdef OLD1
			if                                      /* old table.c:552: ALLOC only */
			:: re_act == 1 -> re_act = 0
			:: else -> skip
			fi;
#endif
			re_o = 0
		};
		if
		:: re_act == 1 ->
			d_step {                                /* table.c:612-613 */
				if
				:: st[re_i] == re_s -> st[re_i] = ST(FREEING_T, GEN(re_s), me); rr_ok = 1
				:: else -> rr_ok = 0
				fi;
				check_table()
			};
			if
			:: rr_ok -> entry_reset(re_i, GEN(re_s))   /* table.c:614 */
			:: else -> skip
			fi;
			rr_ok = 0
		:: re_act == 2 ->
			read_enter();                           /* table.c:619 */
			dx_x = re_i; dx_state = re_s;
#ifdef OLD2
			delete_exact();                         /* old table.c:572 */
#else
			if
			:: st[re_i] == re_s -> delete_exact()   /* table.c:620-621 */
			:: else -> skip
			fi;
#endif
			read_exit();                            /* table.c:622 */
			dx_x = 0; dx_state = 0; dx_removed = 0;
			if
			:: nest == 0 && nret >= BATCH -> reclaim_own()   /* table.c:626-627 */
			:: else -> skip
			fi
		:: else -> skip
		fi;
		re_i++; re_s = 0; re_act = 0
	:: else -> break
	od;
	re_i = 0; re_snap = 0
}

/* dri_alloc_entry(), table.c:166-219: ae_rc 0 (ae_idx) or 1 (-ENOSPC,
 * -EBUSY). The loop, bounded by time in the C, runs ROUNDS rounds. */
inline alloc_entry()
{
	ae_rc = 1;
	try_alloc();                                            /* table.c:171 */
	if
	:: ta_got -> ae_rc = 0
	:: else ->
		if
		:: nest == 0 ->
			reclaim_own();                          /* table.c:173 */
			if
			:: rc_freed > 0 ->
				try_alloc();
				if
				:: ta_got -> ae_rc = 0
				:: else -> skip
				fi
			:: else -> skip
			fi
		:: else -> skip
		fi
	fi;
	ae_round = 0;
	ae_full = 0;
	do
	:: ae_rc == 0 || ae_round == ROUNDS -> break
	:: else ->
		ae_round++;
		reap_entries(0);                                /* table.c:179 */
		reclaim_all();                                  /* table.c:180 */
		try_alloc();                                    /* table.c:181 */
		if
		:: ta_got -> ae_rc = 0
		:: else ->
			if
			:: rc_busy && rc_freed == 0 -> ae_full = 0   /* table.c:183-184 */
			:: !(rc_busy && rc_freed == 0) && rc_freed == 0 && ra_left == 0 ->
				ae_full++;                      /* table.c:185 */
				if
				:: ae_full == FULL_PASSES ->
					finish_deletes();       /* table.c:190 */
					if
					:: fd_n == 0 -> ae_round = ROUNDS   /* -ENOSPC */
					:: else -> skip
					fi;
					ae_full = 0; fd_n = 0
				:: else -> skip
				fi
			:: else -> skip
			fi
		fi
	od;
	ae_idx = (ae_rc == 0 -> ta_at : 0);
	ta_at = 0; ta_got = 0; ae_round = 0; ae_full = 0;
	rc_freed = 0; rc_busy = 0; ra_left = 0
}

/* ------------------------------------------------------------------ */
/* registry.c: the operations a process's script is made of. */

/* dr_open(): the reader slot (dri_thread_get, registry.c:98), then, unless
 * noreap, reaping (registry.c:104-105). Process slots are not modelled:
 * each process is one owner id, attached from the start. */
inline op_open(reap)
{
	reader_claim();
	if
	:: reap ->
		reap_readers();
		rr_n = 0;
		reap_entries(0)
	:: else -> skip
	fi
}

/* dr_register_bin(), registry.c:140-185 (the value is left out). */
inline op_register(key)
{
	alloc_entry();                                          /* registry.c:155 */
	if
	:: ae_rc != 0 ->
		read_enter();                                   /* registry.c:161-163 */
		search(key);                                    /* dri_update_existing */
		read_exit()
	:: else ->
		d_step {                                        /* registry.c:167-178 */
			e_name[ae_idx] = key; e_owner[ae_idx] = me;
			check_table()
		};
		read_enter();                                   /* registry.c:180 */
		insert(ae_idx, key);                            /* registry.c:181 */
		read_exit();                                    /* registry.c:182 */
		if
		:: nest == 0 && nret >= BATCH -> reclaim_own()  /* registry.c:183 */
		:: else -> skip
		fi
	fi;
	ae_rc = 0; ae_idx = 0; in_rc = 0;
	sp_prev = 0; sp_curr = 0; sp_nx = 0; sp_nm = 0; sp_ow = 0; sp_rc = 0; sp_i = 0;
	rc_freed = 0; rc_busy = 0
}

/* unregister(), registry.c:193-205, and dri_delete(), table.c:448-470 */
inline op_unregister(key)
{
	read_enter();                                           /* registry.c:200 */
	dl_done = 0;
	do
	:: dl_done -> break
	:: else ->
		search(key);                                    /* table.c:455 */
		if
		:: sp_rc == 0 -> dl_done = 1                    /* -ENOENT */
		:: else ->
			if
			:: sp_ow != me && alive[sp_ow] -> dl_done = 1   /* table.c:461-463 -EPERM */
			:: else ->
				mark_and_unlink();              /* table.c:466 */
				if
				:: mu_rc == 0 -> dl_done = 1
				:: else -> skip
				fi
			fi
		fi
	od;
	read_exit();                                            /* registry.c:202 */
	if
	:: nest == 0 && nret >= BATCH -> reclaim_own()          /* registry.c:203 */
	:: else -> skip
	fi;
	dl_done = 0; mu_rc = 0;
	sp_prev = 0; sp_curr = 0; sp_nx = 0; sp_nm = 0; sp_ow = 0; sp_rc = 0; sp_i = 0;
	rc_freed = 0; rc_busy = 0
}

/* dr_whereis(), registry.c:228-240 */
inline op_whereis(key)
{
	read_enter();
	lookup(key);
	read_exit()
}

/* dr_close(), registry.c:120-138, with thread_free(), rcu.c:116-132 */
inline op_close()
{
	nest = 0;
	r_ep[slot] = 0;                                         /* registry.c:128 */
	reap_entries(me);                                       /* registry.c:129 */
	r_ep[slot] = 0;                                         /* rcu.c:122 */
	if
	:: nret > 0 -> reclaim_own()                            /* rcu.c:125-126 */
	:: else -> skip
	fi;
	reuse_flush();                                          /* thread_free() */
	r_ep[slot] = 0;                                         /* rcu.c:68 */
	r_own[slot] = 0;                                        /* rcu.c:69 */
	slot = NONE;
	rc_freed = 0; rc_busy = 0
}

/* ------------------------------------------------------------------ */
/* Processes. */

/* The operations a script is made of. */
#define OP_END 0
#define OP_SLOT 1        /* opened before the scenario: reader slot arg */
#define OP_OPEN 2        /* dr_open(); arg: 1 to reap as it does, 0 not */
#define OP_REGISTER 3    /* dr_register(name arg) */
#define OP_UNREGISTER 4  /* dr_unregister(name arg) */
#define OP_WHEREIS 5     /* dr_whereis(name arg) */
#define OP_CLOSE 6       /* dr_close() */
#define OP_REAP_READERS 7
#define OP_CLEANUP 8     /* the clean-up's reaping and checks, see below */
#define MAXOPS 5

/* The scripts: process p's i-th operation and its argument. Set by init
 * (SCRIPT) in its first step, never changed, so not part of the state. */
HIDDEN byte s_op[(NPROC + 2) * MAXOPS];
HIDDEN byte s_arg[(NPROC + 2) * MAXOPS];
#define SCRIPT(p, i, o, a) s_op[(p) * MAXOPS + (i)] = o; s_arg[(p) * MAXOPS + (i)] = a

/*
 * The clean-up: once every other process has ended or died (init waits for
 * that, then starts it), one more runs dr_open()'s and dr_reap()'s reaping
 * and a reclamation (registry.c:104-105, 282-283, 290) and must find every
 * entry free, the bucket empty and every reader slot free.
 */
inline op_cleanup()
{
	d_step {
		c_i = 0;
		do
		:: c_i < R ->
			owned_slot_below_hwm = (r_own[c_i] == 0 || c_i < hwm);
			assert(owned_slot_below_hwm);
			c_i++
		:: else -> break
		od;
		c_i = 0
	};
	reap_readers();
	rr_n = 0;
	reap_entries(0);
	reclaim_all();
	rc_freed = 0; rc_busy = 0; ra_left = 0;
	d_step {
		c_i = 0;
		do
		:: c_i < N ->
			all_entries_free = (TAG(st[c_i]) == FREE_T && nxt[c_i] == 0);
			assert(all_entries_free);
			c_i++
		:: else -> break
		od;
		all_entries_free = (bucket == 0);
		assert(all_entries_free);
		c_i = 0;
		do
		:: c_i < R ->
			no_slot_lost = (r_own[c_i] == 0);
			assert(no_slot_lost);
			c_i++
		:: else -> break
		od;
		c_i = 0
	}
}

/*
 * A process, owner id me: runs its script until it ends (the process
 * exits) or until the crash process kills it, at any step. Either way its
 * liveness lock is gone. Its locals are then zeroed, so that where it
 * stopped does not make states differ.
 */
proctype process(byte me)
{
	LOCALS;
	byte op_i, op, arg;
	{
		do
		:: atomic {
			op = s_op[me * MAXOPS + op_i];
			arg = s_arg[me * MAXOPS + op_i];
			op_i++
		   };
			if
			:: op == OP_END -> break
			:: op == OP_SLOT -> slot = arg
			:: op == OP_OPEN ->
				op_open(arg);
				if
				:: slot == NONE -> break        /* -EUSERS */
				:: else -> skip
				fi
			:: op == OP_REGISTER -> op_register(arg)
			:: op == OP_UNREGISTER -> op_unregister(arg)
			:: op == OP_WHEREIS -> op_whereis(arg)
			:: op == OP_CLOSE -> op_close()
			:: op == OP_REAP_READERS -> reap_readers(); rr_n = 0
			:: op == OP_CLEANUP -> op_cleanup()
			fi;
			op = 0; arg = 0
		od;
		op = 0
	} unless { !alive[me]; d_step { held[me] = 0; op_i = 0; op = 0; arg = 0; RESET_LOCALS } };
	d_step { alive[me] = false; held[me] = 0; op_i = 0; op = 0; arg = 0; RESET_LOCALS; ended++ }
}

/* At most MAXCRASH processes of those for which CRASHABLE(p) holds die at
 * an arbitrary step. */
#ifndef MAXCRASH
#define MAXCRASH 1
#endif
#ifndef CRASHABLE
#define CRASHABLE(p) 1
#endif
#define KILL(p) :: atomic { k > 0 && alive[p] && CRASHABLE(p) -> alive[p] = false; k-- }

proctype crash()
{
	byte k = MAXCRASH;
end:
	do
	KILL(1)
#if NPROC >= 2
	KILL(2)
#endif
#if NPROC >= 3
	KILL(3)
#endif
	od
}

/* A process that opened the segment before the scenario starts: reader
 * slot p - 1 is its own. */
#define OPENED(p) r_own[(p) - 1] = (p); hwm = (hwm > (p) - 1 -> hwm : (p)); SCRIPT(p, 0, OP_SLOT, (p) - 1)

/* init: set the scripts and the initial state (x), start the processes
 * 1..NRUN and the crash process, wait until each has ended or died, then
 * run the clean-up. */
#define START(x) \
	atomic { \
		x; \
		SCRIPT(CLEANER, 0, OP_CLEANUP, 0); \
		alive[1] = true; run process(1); \
		if :: NRUN >= 2 -> alive[2] = true; run process(2) :: else -> skip fi; \
		if :: NRUN >= 3 -> alive[3] = true; run process(3) :: else -> skip fi; \
		run crash() \
	}; \
	ended == NRUN; \
	alive[CLEANER] = true; \
	run process(CLEANER)
