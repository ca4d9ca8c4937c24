/*
 * f4_slot.pml - fault 4: a reader slot lost for good.
 *
 * Two reader slots. Two processes each open the segment (claim a reader
 * slot, then reap dead readers' slots and dead owners' entries, as
 * dr_open() does) and close it (give the slot back). Both may crash, at
 * any step. The clean-up must then find every slot free.
 */
#define N 1
#define R 2
#define K 1
#define NPROC 2
#define NRUN 2
#define MAXCRASH 2
#include "distreg.pml"

init
{
	START(
		SCRIPT(1, 0, OP_OPEN, 1);
		SCRIPT(1, 1, OP_CLOSE, 0);
		SCRIPT(2, 0, OP_OPEN, 1);
		SCRIPT(2, 1, OP_CLOSE, 0))
}
