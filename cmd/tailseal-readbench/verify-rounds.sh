#!/bin/bash
# verify-rounds.sh: alternated verify rounds on stores built by tailseal-readbench
# (static HMAC key of 32 bytes of 0x01), each case's wall and CPU seconds.
#
#   BASE=/tmp/tailseal-base CUR=/tmp/tailseal GZIP=/tmp/vg/data ZSTD=/tmp/vz/data \
#     ROUNDS=7 cmd/tailseal-readbench/verify-rounds.sh
#
# Cases: base-gzip (BASE's verify, e.g. c0592ff's, which read on one core),
# cur-gzip and cur-zstd (CUR on both cores), cur1-gzip (CUR with GOMAXPROCS=1).
# The order is reversed every other round. A run that does not end intact
# with 0 findings stops the script.
set -u
K=$(printf '01%.0s' $(seq 32))
out=$(mktemp) err=$(mktemp) tm=$(mktemp)
trap 'rm -f "$out" "$err" "$tm"' EXIT
run() { # name bin data gomaxprocs
	local s e user sys
	s=$(date +%s.%N)
	/usr/bin/time -o "$tm" -f "%U %S" env GOMAXPROCS="$4" TAILSEAL_HMAC_KEY="$K" TAILSEAL_DATA_DIR="$3" "$2" verify >"$out" 2>"$err"
	e=$(date +%s.%N)
	if ! grep -q "^intact: .* 0 findings" "$out"; then
		echo "$1: verify did not end intact" >&2
		cat "$out" "$err" >&2
		exit 1
	fi
	read -r user sys <"$tm"
	printf '%s wall %.3f cpu %.2f\n' "$1" "$(echo "$e - $s" | bc)" "$(echo "$user + $sys" | bc)"
}
for r in $(seq 1 "${ROUNDS:-7}"); do
	cases=("base-gzip $BASE $GZIP 2" "cur-gzip $CUR $GZIP 2" "cur-zstd $CUR $ZSTD 2" "cur1-gzip $CUR $GZIP 1")
	if ((r % 2 == 0)); then cases=("${cases[3]}" "${cases[2]}" "${cases[1]}" "${cases[0]}"); fi
	for c in "${cases[@]}"; do
		# shellcheck disable=SC2086
		echo "r$r $(run $c)"
	done
done
