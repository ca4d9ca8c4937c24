/* distreg.h must compile alone, first, with nothing included before it. */
#include <distreg.h>

int main(void)
{
	struct dr_options o = { 0 };
	struct dr_entry e;
	(void)o;
	(void)e;
	/* The documented minimums of the contract. */
	return (DR_NAME_MAX >= 127 && DR_VALUE_MAX >= 64) ? 0 : 1;
}
