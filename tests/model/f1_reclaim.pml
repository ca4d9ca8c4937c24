/*
 * f1_reclaim.pml - fault 1: the reclaimer's plain store of FREE.
 *
 * One entry, so that the table is full with one name in it. Process 1
 * registers name 1 and unregisters it; its retire batch (of one) is then
 * full, so it reclaims, which makes the entry reusable; then it closes,
 * which frees what it has not reused: it takes the entry and frees it.
 * Process 2 registers name 2: while the entry is not free its allocator
 * reaps, reclaims and runs finish_deletes(), for two rounds. Either may
 * crash at any step. Both opened the segment (reader slots 0 and 1)
 * before.
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
		SCRIPT(1, 3, OP_CLOSE, 0);
		OPENED(2);
		SCRIPT(2, 1, OP_REGISTER, 2))
}
