/*
 * f2_aba.pml - fault 2: ABA on the state word.
 *
 * One entry. Process 1 registers name 1, unregisters it (and, its retire
 * batch of one being full, reclaims the entry), then registers name 2,
 * which can only go into the same entry, by the same owner. Process 2
 * registers name 1: while the entry is not free its allocator reaps,
 * reclaims and runs finish_deletes(), which finds marked entries by index
 * (two rounds; process 1's allocator gives up after one). Either may crash
 * at any step. Both opened the segment (reader slots 0 and 1) before.
 */
#define N 1
#define R 2
#define K 2
#define NPROC 2
#define NRUN 2
#define BATCH 1
#define ROUNDS (me == 2 -> 2 : 1)
#include "distreg.pml"

init
{
	START(
		OPENED(1);
		SCRIPT(1, 1, OP_REGISTER, 1);
		SCRIPT(1, 2, OP_UNREGISTER, 1);
		SCRIPT(1, 3, OP_REGISTER, 2);
		OPENED(2);
		SCRIPT(2, 1, OP_REGISTER, 1))
}
