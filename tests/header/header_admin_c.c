/* distreg_admin.h must compile alone, first, with nothing included before
 * it (it includes distreg.h itself). */
#include <distreg_admin.h>

int main(void)
{
	struct dr_fwd f = { 0 };
	struct dr_proc_info p = { 0 };
	int (*claim)(dr_mailbox *, pid_t *) = dr_admin_bridge_claim;
	(void)f;
	(void)p;
	(void)claim;
	return DR_ENTRY_WIRE_MAX == 24 + DR_VALUE_MAX ? 0 : 1;
}
