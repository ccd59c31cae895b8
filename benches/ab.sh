#!/bin/bash
# Two builds side by side on one scenario, for a change to a hot path:
#
#   benches/ab.sh OLD_BINARY NEW_BINARY SCENARIO [PAIRS]
#
# Runs the two alternately PAIRS times (7 by default), so that the machine's noise
# falls on both, and prints each one's best and median wall time, the median of the
# per-pair ratios (new / old) and the ratio of the bests. Build the old binary from
# the previous commit in a worktree with its own CARGO_TARGET_DIR. Needs python3.
A=$1; B=$2; S=$3; N=${4:-7}
ra=(); rb=(); ratios=()
for i in $(seq $N); do
  t0=$(date +%s%N); $A "$S" >/dev/null 2>&1; t1=$(date +%s%N); $B "$S" >/dev/null 2>&1; t2=$(date +%s%N)
  a=$(( (t1-t0)/1000 )); b=$(( (t2-t1)/1000 ))
  ra+=($a); rb+=($b); ratios+=($(python3 -c "print(round($b/$a,4))"))
done
python3 - "${ra[*]}" "${rb[*]}" "${ratios[*]}" <<'PY'
import sys, statistics as s
a=[int(x) for x in sys.argv[1].split()]; b=[int(x) for x in sys.argv[2].split()]; r=[float(x) for x in sys.argv[3].split()]
print(f"A best {min(a)/1e6:.4f}s median {s.median(a)/1e6:.4f}s | B best {min(b)/1e6:.4f}s median {s.median(b)/1e6:.4f}s | B/A median pair ratio {s.median(r):.3f} best-ratio {min(b)/min(a):.3f}")
PY
