/*
 * f3_reader.pml - fault 3: a reaper clears a live reader's epoch.
 *
 * One entry, two reader slots. The initial state is what this history
 * leaves: process 1 opened the segment (reader slot 1) and registered name
 * 1; process 3 opened it (reader slot 0) and was killed inside a read-side
 * section at epoch 1. Process 1 reaps reader slots (as dr_open() and
 * dr_reap() do), then unregisters name 1, (its retire batch of one
 * being full) reclaims, which makes the entry reusable, and closes, which
 * frees it. Process 2 opens the segment, which claims a reader
 * slot (reaping dead readers' slots when none is free), and looks name 1
 * up. Process 1 or 2 may crash at any step.
 */
#define N 1
#define R 2
#define K 1
#define NPROC 3
#define NRUN 2
#define BATCH 1
#define CRASHABLE(p) ((p) != 3)
#include "distreg.pml"

init
{
	START(
		/* name 1, registered by process 1 in entry 0 */
		st[0] = ST(ALLOC_T, 1, 1); e_name[0] = 1; e_owner[0] = 1;
		bucket = 1; reg[1] = 1;
		/* reader slot 0: process 3, dead inside a section at epoch
		 * 1; slot 1: process 1 */
		r_own[0] = 3; r_ep[0] = 1; r_own[1] = 1; hwm = 2;
		SCRIPT(1, 0, OP_SLOT, 1);
		SCRIPT(1, 1, OP_REAP_READERS, 0);
		SCRIPT(1, 2, OP_UNREGISTER, 1);
		SCRIPT(1, 3, OP_CLOSE, 0);
		SCRIPT(2, 0, OP_OPEN, 0);
		SCRIPT(2, 1, OP_WHEREIS, 1))
}
