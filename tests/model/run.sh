#!/usr/bin/env bash
# Check the Promela model of the table's protocol with Spin (README.md here).
#
# Every configuration is checked exhaustively against the NEW protocol
# (edfb833), which must give no error in a complete search; and each
# fault's configuration against the OLD protocol with that fault (e21c23b),
# where Spin must find the expected violation, so the model is shown able to
# catch it. Exits 0 if all is as expected, 1 if not, 77 (skip) without spin
# or a C compiler.
#
#   run.sh [--trails] [config...]
#     --trails   for the OLD runs, search breadth-first for the shortest
#                trail and print its shared-memory steps (needs python3)
#     config     only these (f1_reclaim f2_aba f3_reader f4_slot m1_names
#                m2_reuse v1_view r1_relocate p1_slot l1_live w1_wake)
# Environment: CC (C compiler, default cc), MODEL_JOBS (parallel runs,
# default the number of CPUs), MODEL_MEMLIM (MB per run, default 4096).
set -euo pipefail

case "$0" in
*/*) here=$(cd "${0%/*}" && pwd) ;;
*) here=$(pwd) ;;
esac
trails=0
only=()
for a in "$@"; do
	case "$a" in
	--trails) trails=1 ;;
	-*) echo "usage: $0 [--trails] [config...]" >&2; exit 2 ;;
	*) only+=("${a%.pml}") ;;
	esac
done

command -v spin >/dev/null 2>&1 || { echo "spin not found: skipping the model check"; exit 77; }
read -r -a cc <<<"${CC:-cc}"
command -v "${cc[0]}" >/dev/null 2>&1 || { echo "no C compiler (${cc[0]}): skipping the model check"; exit 77; }
if [ "$trails" = 1 ] && ! command -v python3 >/dev/null 2>&1; then
	echo "--trails needs python3" >&2
	exit 2
fi
jobs=${MODEL_JOBS:-$(nproc 2>/dev/null || echo 1)}
memlim=${MODEL_MEMLIM:-4096}

# config  protocol  the assertions that may fail (- for none)
runs=(
	"f1_reclaim NEW  -"
	"f2_aba     NEW  -"
	"f3_reader  NEW  -"
	"f4_slot    NEW  -"
	"m1_names   NEW  -"
	"m2_reuse   NEW  -"
	"f1_reclaim OLD1 linked_entry_allocated|registration_visible"
	"f2_aba     OLD2 registration_visible|linked_entry_allocated"
	"f3_reader  OLD3 no_reuse_under_reader"
	"f4_slot    OLD4 owned_slot_below_hwm|no_slot_lost"
	"m2_reuse   OLD5 linked_entry_allocated"
	"v1_view    NEW  -"
	"v1_view    OLD1 whole_view"
	"v1_view    OLD2 whole_view"
	"v1_view    OLD3 reader_never_gives_up"
	"r1_relocate NEW  -"
	"r1_relocate OLD1 once"
	"r1_relocate OLD2 once"
	"r1_relocate OLD3 once"
	"p1_slot    NEW  -"
	"p1_slot    OLD  death_is_final"
	"p1_slot    OLD1 death_is_final"
	"l1_live    NEW  -"
	"l1_live    OLD1 vouched_alive"
	"l1_live    OLD2 vouched_alive"
	"w1_wake    NEW  -"
	"w1_wake    OLD1 no_lost_wakeup"
	"w1_wake    OLD2 no_lost_wakeup"
	"w1_wake    OLD3 no_lost_wakeup"
)

work=$(mktemp -d "${TMPDIR:-/tmp}/distreg-model.XXXXXX")
trap 'rm -rf "$work"' EXIT

# One run, in its own directory: result line in $dir/result, details in
# $dir/report.
run_one() {
	local id=$1 cfg=$2 proto=$3 expect=$4
	local dir="$work/$id" sflags=() cflags=(-O0 -DSAFETY -DCOLLAPSE "-DMEMLIM=$memlim") t0 t1
	mkdir "$dir"
	cp "$here"/*.pml "$dir"/
	[ "$proto" = NEW ] || sflags+=("-D$proto")
	if [ "$proto" != NEW ] && [ "$trails" = 1 ]; then
		sflags+=(-DSHORTEST)
		cflags+=(-DBFS)
	fi
	t0=$EPOCHREALTIME
	(
		cd "$dir"
		spin "${sflags[@]}" -a "$cfg.pml" >spin.out 2>&1 &&
			"${cc[@]}" "${cflags[@]}" -w -o pan pan.c >cc.out 2>&1 &&
			./pan -m100000 >pan.out 2>&1
	) || true
	t1=$EPOCHREALTIME
	local secs search states depth tdepth errors viol verdict
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
	if [ ! -s "$dir/pan.out" ]; then
		echo "FAIL $cfg $proto: spin or the compiler failed" >"$dir/result"
		cat "$dir/spin.out" "$dir/cc.out" 2>/dev/null | tail -20 >"$dir/report"
		return
	fi
	states=$(awk '/states, stored/ { print $1; exit }' "$dir/pan.out")
	depth=$(sed -n 's/.*depth reached \([0-9]*\).*/\1/p' "$dir/pan.out" | head -1)
	errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$dir/pan.out" | head -1)
	viol=$(sed -n 's/.*assertion violated \([a-z_]*\).*/\1/p' "$dir/pan.out" | head -1)
	tdepth=$(sed -n 's/.*assertion violated.*(at depth \([0-9]*\)).*/\1/p' "$dir/pan.out" | head -1)
	search=$(sed -n 's/^pan: elapsed time \([0-9.e+]*\) seconds.*/\1/p' "$dir/pan.out" | head -1)
	if [ "$proto" = NEW ]; then
		if [ "$errors" != 0 ]; then
			verdict="FAIL $cfg $proto: $errors error(s)${viol:+: $viol violated}"
		elif grep -qE 'max search depth too small|Search not completed|out of memory|MEMLIM' "$dir/pan.out"; then
			verdict="FAIL $cfg $proto: the search was not complete"
		else
			verdict="PASS $cfg $proto: errors 0, complete search, $states states, depth $depth, search ${search} s, ${secs} s in all"
		fi
	else
		if [ -n "$viol" ] && [[ "|$expect|" == *"|$viol|"* ]]; then
			verdict="PASS $cfg $proto: violation found as expected: $viol (trail of $tdepth steps, $states states, search ${search} s, ${secs} s in all)"
		elif [ -n "$errors" ] && [ "$errors" != 0 ]; then
			verdict="FAIL $cfg $proto: an unexpected error (want $expect)"
		else
			verdict="FAIL $cfg $proto: no violation found (want $expect)"
		fi
	fi
	echo "$verdict" >"$dir/result"
	# The trail: always for a failure, and for the OLD runs with --trails.
	if [ -f "$dir/$cfg.pml.trail" ] && { [ "${verdict%% *}" = FAIL ] || [ "$trails" = 1 ]; }; then
		(
			cd "$dir"
			if command -v python3 >/dev/null 2>&1; then
				spin "${sflags[@]}" -t -p "$cfg.pml" 2>&1 | python3 "$here/trail.py"
			else
				spin "${sflags[@]}" -t -p "$cfg.pml" 2>&1 | tail -60
			fi
		) >"$dir/report" 2>&1 || true
	fi
	if [ "${verdict%% *}" = FAIL ]; then
		grep -E 'error|violated|Warning' "$dir/pan.out" >>"$dir/report" || true
	fi
}

start=$EPOCHREALTIME
ids=()
n=0
for r in "${runs[@]}"; do
	read -r cfg proto expect <<<"$r"
	if [ "${#only[@]}" -gt 0 ] && [[ " ${only[*]} " != *" $cfg "* ]]; then
		continue
	fi
	n=$((n + 1))
	id="$n-$cfg-$proto"
	ids+=("$id")
	run_one "$id" "$cfg" "$proto" "$expect" &
	while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
		wait -n || true
	done
done
wait

fail=0
for id in "${ids[@]}"; do
	cat "$work/$id/result"
	if [ -s "$work/$id/report" ]; then
		sed 's/^/    /' "$work/$id/report"
	fi
	grep -q '^PASS' "$work/$id/result" || fail=1
done
echo "total $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s, $jobs job(s) at a time"
exit $fail
