/*
 * layout.c - the sizes and field offsets of distreg.h's structs, one struct
 * a line ("name size field:offset:size ..."), for the Python binding's test to
 * compare with its ctypes mirrors.
 */
#include <stddef.h>
#include <stdio.h>

#include <distreg.h>

#define F(s, f) printf(" %s:%zu:%zu", #f, offsetof(struct s, f), sizeof(((struct s *)0)->f))
#define S(s) printf("%s %zu", #s, sizeof(struct s))

int main(void)
{
	S(dr_options);
	F(dr_options, segment); F(dr_options, capacity); F(dr_options, max_procs);
	F(dr_options, max_threads); F(dr_options, mode); F(dr_options, flags);
	F(dr_options, max_mailboxes); F(dr_options, max_lanes); F(dr_options, lane_bytes);
	puts("");
	S(dr_entry);
	F(dr_entry, pid); F(dr_entry, regid); F(dr_entry, value_len); F(dr_entry, value);
	puts("");
	S(dr_name_info);
	F(dr_name_info, name); F(dr_name_info, name_len); F(dr_name_info, entry);
	F(dr_name_info, alive); F(dr_name_info, global);
	puts("");
	S(dr_msg);
	F(dr_msg, kind); F(dr_msg, status); F(dr_msg, name); F(dr_msg, name_len);
	F(dr_msg, regid); F(dr_msg, sender); F(dr_msg, call_id); F(dr_msg, data);
	F(dr_msg, len); F(dr_msg, reply_to); F(dr_msg, global);
	puts("");
	return 0;
}
