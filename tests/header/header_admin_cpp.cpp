// distreg_admin.h must compile alone as C++, with C linkage for its functions.
#include <distreg_admin.h>

int main()
{
	dr_fwd f = {};
	int (*decode)(const dr_msg *, dr_fwd *) = dr_admin_fwd_decode;
	int (*owner)(dr_registry *, const char *, char *, size_t) = dr_owner;
	(void)f;
	(void)decode;
	(void)owner;
	return DR_FWD_WHEREIS == 4 ? 0 : 1;
}
