/*
 * p1_slot.pml - a process slot changing hands, and whether its last holder
 * is alive (lib/proc.c dri_proc_attach, dri_owner_alive, dri_proc_detach),
 * a model of its own.
 *
 * The slot: its word (generation << 1 | live bit), its pid field, and the
 * byte lock that its holder's open file description keeps. Holder H (owner
 * id generation 1) is either SIGKILLed (exit drops the lock; the zombie is
 * reaped later) or detaches (clears the live bit, drops the lock). Before
 * either it may fork a child that keeps the lock's description (between
 * fork() and atfork_child()) and closes it later, or never. Once H is
 * reaped the kernel may give its pid number to another process. New
 * process A takes the slot over as soon as it can lock it. Readers R1 and
 * R2 ask two and three times whether H's owner id is alive; R1 may be of
 * another pid namespace than H and A (a container sharing /dev/shm), where
 * their pids name no one: it then skips the pid check and trusts the lock.
 * The word's generation does not wrap here: in the C it is the low 24 bits
 * of a 63-bit count of attachments, which a CAS compares whole.
 *
 * The steps and the C they stand for:
 *   A: lock == 0 -> lock = A        fcntl(F_OFD_SETLK) succeeds
 *      aw = word; CAS live bit off  w = ld_acq64(&p->word); uatomic_cmpxchg
 *      pidf = A                     p->pid = getpid()
 *      word = gen + 1, live         the CAS loop
 *   R: w = word; live and gen 1?    w = ld_acq64(&r->procs[slot].word)
 *      lock held?                   slot_locked(): F_OFD_GETLK
 *      p = pidf                     pid = CMM_LOAD_SHARED(...pid)
 *      word == w?                   ld_acq64(&r->procs[slot].word) != w
 *      same namespace, exists(p)?   pidns == r->pidns && kill(pid, 0) < 0
 *      dead: CAS live bit off       found_dead()
 * Properties:
 *   no_false_death   no reader finds H dead while H runs (before it
 *                    begins to exit or detach): its names are its own
 *   death_is_final   a check that begins after any check has found H dead
 *                    finds it dead too (distreg watch reported one death
 *                    twice, and a dead owner's name was refused to a
 *                    newcomer, while a new process took the slot over)
 * -DOLD: the protocol before this model: A writes its pid before any change
 * of the word, and a reader records nothing and reads the word again only
 * to decide whether the pid is worth asking about (a changed word counted
 * as alive). A reader then finds the slot locked (by A), live in
 * generation 1, and its pid existing (A's). It must break death_is_final.
 * -DOLD1: A's half of the fix alone (it clears the live bit before it
 * writes its pid), readers still recording nothing: H a zombie, or its pid
 * number given again, while A sits between its lock and its CAS, and a
 * reader finds H alive after another found it dead. It must break
 * death_is_final too.
 */

#define H 1
#define A 2
#define C 3         /* H's child that keeps its lock's description */

#define LIVE 1
#define WORD(g) (((g) << 1) | LIVE)

byte word = WORD(1);
byte lock = H;      /* whose description holds the byte lock, 0 nobody */
byte pidf = H;
byte exists = (1 << H) | (1 << A);  /* bit p: a process with pid p exists (a zombie does) */
bool h_running = true;  /* ghost: H has not begun to exit or detach */

bool no_false_death = true, death_is_final = true;

active proctype holder()
{
	bool child;

	if
	:: child = true; exists = exists | (1 << C)    /* fork(): the child shares the lock */
	:: skip
	fi;
	if
	:: /* SIGKILL: the lock goes with H's last reference to it */
		atomic { h_running = false; if :: !child -> lock = 0 :: else -> skip fi }
	:: /* dr_close() */
		atomic { h_running = false; if :: word == WORD(1) -> word = word & ~LIVE :: else -> skip fi };
		if :: !child -> lock = 0 :: else -> skip fi
	fi;
	exists = exists & ~(1 << H);         /* reaped by its parent */
	if :: exists = exists | (1 << H) :: skip fi;  /* the pid number given again */
	if
	:: child -> atomic { lock = 0; exists = exists & ~(1 << C) }  /* atfork_child() closes it */
	:: child -> skip                       /* stopped there for ever */
	:: !child -> skip
	fi
}

active proctype attacher()
{
	byte aw;

end_waits:	/* for ever, if H's child keeps the lock */
	atomic { lock == 0 -> lock = A };
#ifndef OLD
	aw = word;
	if
	:: (aw & LIVE) -> atomic { if :: word == aw -> word = aw & ~LIVE :: else -> skip fi }
	:: else -> skip
	fi;
#endif
	pidf = A;
	word = WORD((word >> 1) + 1)
}

bool dead_seen;  /* ghost: some check has found H dead */

#ifdef OLD
#define OLD1
#endif
#ifndef OLD1
#define DEAD atomic { if :: word == w -> word = w & ~LIVE :: else -> skip fi }; v = false
#else
#define DEAD v = false
#endif

/* One check, dri_owner_alive(H's owner id), into v. */
inline alive()
{
	after = dead_seen;
	w = word;
	if
	:: !(w & LIVE) || (w >> 1) != 1 -> v = false
	:: else ->
		if
		:: lock == 0 -> DEAD
		:: else ->
			p = pidf;
#ifndef OLD
			if
			:: word != w -> v = false
			:: else ->
				if
				:: !same_ns -> v = true   /* a pid of another namespace: the lock speaks */
				:: same_ns && !(exists & (1 << p)) -> DEAD
				:: same_ns && (exists & (1 << p)) -> v = true
				fi
			fi
#else
			if
			:: word == w && !(exists & (1 << p)) -> v = false
			:: else -> v = true
			fi
#endif
		fi
	fi;
	if
	:: v ->
		death_is_final = !after;
		assert(death_is_final)
	:: else ->
		no_false_death = !h_running;
		assert(no_false_death);
		dead_seen = true
	fi
}

proctype reader(byte n; bool same_ns)
{
	byte k, w, p;
	bool v, after;

	for (k : 1 .. n) {
		alive()
	}
}

init
{
	if
	:: atomic { run reader(2, true); run reader(3, true) }
	:: atomic { run reader(2, false); run reader(3, true) }
	fi
}
