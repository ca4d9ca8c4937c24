#!/usr/bin/env bash
# A cluster of three hosts on this machine: three segments, three bridges on
# loopback TCP, echo workers for global names on their owner hosts, calls
# from every host, one bridge killed and the view updated, shmdump of each
# host. Run by .ci/demo after the single-host demonstration.
#
#   tools/cluster-demo.sh [--build DIR] [--keep]
#
# The segments are <segment>.a, .b and .c, where <segment> is
# $DISTREG_SEGMENT or "default". They are removed at the end unless --keep.
set -euo pipefail

build=build
keep=0
while [ $# -gt 0 ]; do
	case "$1" in
	--build) build=$2; shift 2 ;;
	--keep) keep=1; shift ;;
	-h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "cluster-demo: unknown argument $1 (try --help)" >&2; exit 2 ;;
	esac
done

bridge=$build/bridge/distreg-bridge
cli=$build/tools/distreg
shmdump=$build/tools/shmdump
for b in "$bridge" "$cli" "$shmdump"; do
	[ -x "$b" ] || { echo "cluster-demo: $b is not built" >&2; exit 1; }
done

base=${DISTREG_SEGMENT:-default}
hosts=(a b c)
work=$(mktemp -d /tmp/distreg-cluster-demo.XXXXXX)
declare -A pid seg bus rpc
workers=()

cleanup() {
	for p in "${workers[@]}"; do kill "$p" 2>/dev/null || true; done
	for h in "${hosts[@]}"; do
		[ -n "${pid[$h]:-}" ] && kill "${pid[$h]}" 2>/dev/null || true
	done
	wait 2>/dev/null || true
	if [ "$keep" = 0 ]; then
		local removed=()
		for h in "${hosts[@]}"; do
			[ -n "${seg[$h]:-}" ] && "$cli" unlink "${seg[$h]}" 2>/dev/null &&
				removed+=("${seg[$h]}") || true
		done
		rm -rf "$work"
		echo "removed: segments ${removed[*]:-none} (--keep keeps them)"
	else
		echo "kept: segments ${seg[*]}, logs in $work"
	fi
}
trap cleanup EXIT

say() { printf '\n== %s\n' "$*"; }

# Ports: a random block of six, tried again if a bridge cannot bind.
start_bridges() {
	local port=$((20000 + RANDOM % 40000)) i=0
	for h in "${hosts[@]}"; do
		seg[$h]=$base.$h
		bus[$h]=tcp://127.0.0.1:$((port + 2 * i))
		rpc[$h]=tcp://127.0.0.1:$((port + 2 * i + 1))
		i=$((i + 1))
	done
	for h in "${hosts[@]}"; do
		local peers=()
		for o in "${hosts[@]}"; do
			[ "$o" = "$h" ] || peers+=(--peer "${bus[$o]}")
		done
		"$bridge" --segment "${seg[$h]}" --host "$h" --bus "${bus[$h]}" --rpc "${rpc[$h]}" \
			"${peers[@]}" --heartbeat-ms 100 --down-after-ms 1000 2>"$work/bridge-$h.log" &
		pid[$h]=$!
	done
	sleep 0.3
	for h in "${hosts[@]}"; do
		if ! kill -0 "${pid[$h]}" 2>/dev/null; then
			cat "$work/bridge-$h.log" >&2
			return 1
		fi
	done
}

# Wait until host $1 sees $2 hosts up.
wait_up() {
	local h=$1 want=$2 n=0
	for _ in $(seq 100); do
		n=$("$cli" --segment "${seg[$h]}" --json hosts 2>/dev/null | grep -c '"state": "up"' || true)
		[ "$n" = "$want" ] && return 0
		sleep 0.1
	done
	echo "cluster-demo: host $h sees $n hosts up, not $want" >&2
	return 1
}

# Wait until host $1 sees host $2 in state $3.
wait_state() {
	local h=$1 other=$2 want=$3 st=
	for _ in $(seq 100); do
		st=$("$cli" --segment "${seg[$h]}" hosts 2>/dev/null | awk -v o="$other" '$1 == o { print $2 }')
		[ "$st" = "$want" ] && return 0
		sleep 0.1
	done
	echo "cluster-demo: host $h sees $other $st, not $want" >&2
	return 1
}

say "three bridges on loopback (hosts a, b, c; segments $base.a, .b, .c)"
tries=0
until start_bridges; do
	tries=$((tries + 1))
	[ $tries -lt 5 ] || { echo "cluster-demo: no free ports" >&2; exit 1; }
	for h in "${hosts[@]}"; do kill "${pid[$h]}" 2>/dev/null || true; done
	wait 2>/dev/null || true
done
for h in "${hosts[@]}"; do wait_up "$h" 3; done
"$cli" --segment "${seg[a]}" hosts

say "echo workers for six global names, each on its owner host"
names=(orders invoices users sessions mail search)
for n in "${names[@]}"; do
	owner=$("$cli" --segment "${seg[a]}" owner "$n")
	"$cli" --segment "${seg[$owner]}" echo-worker --global "$n" >"$work/worker-$n.log" 2>&1 &
	workers+=($!)
	printf '%-9s owner %s (pid %s)\n' "$n" "$owner" "$!"
done
for n in "${names[@]}"; do
	for _ in $(seq 50); do
		"$cli" --segment "${seg[a]}" whereis --global "$n" >/dev/null 2>&1 && break
		owner=$("$cli" --segment "${seg[a]}" owner "$n")
		"$cli" --segment "${seg[$owner]}" whereis --global "$n" >/dev/null 2>&1 && break
		sleep 0.1
	done
done

say "calls from every host to every name"
for h in "${hosts[@]}"; do
	for n in "${names[@]}"; do
		printf 'host %s -> %-9s: ' "$h" "$n"
		"$cli" --segment "${seg[$h]}" call --global "$n" "hello from $h" --timeout 2000
	done
done

say "host c's bridge killed (SIGKILL): a and b see it down"
{ kill -KILL "${pid[c]}"; wait "${pid[c]}"; } 2>/dev/null || true
pid[c]=
wait_state a c down
wait_state b c down
"$cli" --segment "${seg[a]}" hosts
printf '\nowners now (host c owns nothing):\n'
for n in "${names[@]}"; do
	printf '%-9s owner %s\n' "$n" "$("$cli" --segment "${seg[a]}" owner "$n")"
done
printf '\ncalls from host a now: a name that moved has no worker on its new owner\n'
printf '(workers are not moved yet: they stay registered on c, outside the view)\n'
for n in "${names[@]}"; do
	printf 'host a -> %-9s: ' "$n"
	"$cli" --segment "${seg[a]}" call --global "$n" "hello again" --timeout 2000 2>&1 || true
done
printf '\non host c, with no bridge, global calls fail at once:\n'
"$cli" --segment "${seg[c]}" call --global orders "hi" --timeout 1000 || true

for h in "${hosts[@]}"; do
	say "shmdump of host $h"
	"$shmdump" --segment "${seg[$h]}"
done
