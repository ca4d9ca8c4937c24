// distreg.h must compile alone as C++, with C linkage for its functions.
#include <distreg.h>

int main()
{
	dr_options o = {};
	int (*open_fn)(const dr_options *, dr_registry **) = dr_open;
	const char *(*str_fn)(int) = dr_strerror;
	(void)o;
	(void)open_fn;
	(void)str_fn;
	return (DR_NAME_MAX >= 127 && DR_VALUE_MAX >= 64) ? 0 : 1;
}
