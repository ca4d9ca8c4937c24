/*
 * m2_reuse.pml - an entry taken back from RETIRED by the thread that retired
 * it (dri_take_reusable), while another process looks the name up, and
 * runs out of entries, so that it reaps, reclaims everything retired (the
 * reusable entry too) and runs finish_deletes() against it.
 *
 * One entry. Process 1 registers name 1, unregisters it (its retire batch
 * of one is then full: the grace period makes the entry reusable) and
 * registers name 2 in it. Process 2 looks name 1 up and registers name 2.
 * Either may crash at any step. Both opened the segment (reader slots 0
 * and 1) before.
 */
#define N 1
#define R 2
#define K 2
#define NPROC 2
#define NRUN 2
#define BATCH 1
#define ROUNDS 2
#include "distreg.pml"

init
{
	START(
		OPENED(1);
		SCRIPT(1, 1, OP_REGISTER, 1);
		SCRIPT(1, 2, OP_UNREGISTER, 1);
		SCRIPT(1, 3, OP_REGISTER, 2);
		OPENED(2);
		SCRIPT(2, 1, OP_WHEREIS, 1);
		SCRIPT(2, 2, OP_REGISTER, 2))
}
