/*
 * l1_live.pml - the bridge role's liveness lock (lib/dri.h struct
 * dri_cluster: live_lock, live; lib/bridge.c live_take, live_give;
 * lib/cluster.c holder_vouched).
 *
 * Three bridge processes, ids 1 to 3, and the thread of each that holds
 * the lock for it (lib/bridge.c struct dri_live). Threads 1 and 2 have the
 * same tid: the worst case of a tid
 * reused after its first thread died. Each process claims the role (a CAS
 * on the owner word from none or from a dead holder), takes the lock and
 * names itself in `live`, and then may give the role back and claim it
 * again. At any step a process may die (the kernel marks the lock if its
 * thread held it, in the same step: it does so before the process can be
 * reaped), or its holder thread may exit while the process lives (the
 * kernel marks the lock, the process keeps the role: the C ends that
 * thread only as the role is given back; the model allows it anywhere); and any process may
 * stop for good at any step (Spin explores runs in which it never moves
 * again). A reader checks once; readers only read, so one stands for any
 * number.
 *
 * The steps and the C they stand for:
 *   owner: CAS from 0 or a dead id      dr_admin_bridge_claim's loop
 *   live = 0                            uatomic_set(&c->live, 0); cmm_smp_mb()
 *   trylock: free or marked -> ours     pthread_mutex_trylock (EOWNERDEAD)
 *   live = (tid, id)                    st_rel64(&c->live, tid << 32 | tag)
 *   give back: live = 0, the holder     live_give (holder_end), then
 *     thread exits (lock marked),       role_end's CAS
 *     owner CAS to 0
 *   reader: o = owner; lw = lock word;  holder_vouched(): the owner word,
 *     x = live; vouched iff x names     then ld_acq32 of the lock's word,
 *     lw's tid and o, lw not marked       then ld_acq64 of live
 * Property:
 *   vouched_alive   a reader vouches for holder o only if o's process was
 *                   alive when the reader loaded the lock word (a later
 *                   death is a race every check has: it ends at once)
 * -DOLD1: the reader loads `live` before the lock word.
 * -DOLD2: a claimer does not clear `live` before it takes the lock.
 * Both must break vouched_alive (a new claimer with the dead holder's tid,
 * stopped between its lock and its `live`).
 */

#define NPROC 3

byte owner;               /* the role's holder id, 0 none */
byte lw_tid;              /* the lock word's tid, 0 free */
bool lw_died;             /* FUTEX_OWNER_DIED */
byte live_tid;            /* `live`: one word, written whole */
byte live_id;
bool alive[NPROC + 1];
bool vouched_alive = true;

/* The lock: taken if free or marked (then made consistent). */
inline trylock(tid, got)
{
	atomic {
		if
		:: lw_tid == 0 -> lw_tid = tid; lw_died = false; got = true
		:: else -> got = false
		fi
	}
}

/* Death of the process: the kernel marks the lock its thread holds. */
#define DIE atomic { alive[id] = false; if :: mine -> lw_tid = 0; lw_died = true :: else -> skip fi }; goto dead

/* A step where the process may die, or its holder thread exit. */
#define STEP if \
	:: true -> skip \
	:: true -> DIE \
	:: mine -> atomic { lw_tid = 0; lw_died = true; mine = false } \
	fi

proctype bridge(byte id; byte tid)
{
	bool mine = false, got;
	byte rounds = 0, o;

	alive[id] = true;
again:
	/* Claim: from none, or from a dead holder (the kernel says so). */
	atomic {
		o = owner;
		if
		:: o == 0 || !alive[o] -> owner = id
		:: else -> goto idle
		fi
	}
	STEP;
#ifndef OLD2
	atomic { live_tid = 0; live_id = 0 };
	STEP;
#endif
	if
	:: !mine ->
		trylock(tid, got);
		if :: got -> mine = true :: else -> skip fi
	:: else -> skip
	fi;
	STEP;
	if
	:: mine -> atomic { live_tid = tid; live_id = id }
	:: else -> skip
	fi;
	STEP;
	/* Give the role back, or keep it. */
	if
	:: rounds < 1 ->
		rounds++;
		atomic { live_tid = 0; live_id = 0 };
		STEP;
		if
		:: mine -> atomic { lw_tid = 0; lw_died = true; mine = false }
		:: else -> skip
		fi;
		STEP;
		atomic { if :: owner == id -> owner = 0 :: else -> skip fi };
		goto again
	:: true -> skip
	fi;
idle:
	if
	:: true -> skip
	:: true -> DIE
	fi;
dead:
	skip
}

proctype reader()
{
	byte o, t, xt, xi;
	bool d, was_alive;

	o = owner;
	if
	:: o == 0 -> goto done
	:: else -> skip
	fi;
#ifndef OLD1
	atomic { t = lw_tid; d = lw_died; was_alive = alive[o] };
	atomic { xt = live_tid; xi = live_id };
#else
	atomic { xt = live_tid; xi = live_id };
	atomic { t = lw_tid; d = lw_died; was_alive = alive[o] };
#endif
	if
	:: xt != 0 && xi == o && xt == t && !d ->
		vouched_alive = was_alive;
		assert(vouched_alive)
	:: else -> skip /* asks the kernel */
	fi;
done:
	skip
}

init {
	atomic {
		run bridge(1, 1);
		run bridge(2, 1);
		run bridge(3, 2);
		run reader()
	}
}
