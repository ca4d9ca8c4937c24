/*
 * m1_names.pml - no fault of the review in particular: two processes race
 * for one name in a table of two entries, and one of them may crash at any
 * step, so that the other takes a dead owner's name over (dri_insert marks
 * it) and reaps and reclaims what the dead one left half done.
 *
 * Process 1 registers name 1 and unregisters it; process 2 registers
 * name 1 and looks it up. Both opened the segment (reader slots 0 and 1)
 * before.
 */
#define N 2
#define R 2
#define K 1
#define NPROC 2
#define NRUN 2
#define BATCH 1
#define ROUNDS 1
#include "distreg.pml"

init
{
	START(
		OPENED(1);
		SCRIPT(1, 1, OP_REGISTER, 1);
		SCRIPT(1, 2, OP_UNREGISTER, 1);
		OPENED(2);
		SCRIPT(2, 1, OP_REGISTER, 1);
		SCRIPT(2, 2, OP_WHEREIS, 1))
}
