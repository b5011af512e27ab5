#!/bin/sh
# The strict gate by revisions, for CI recipes that name both sides: scripts/gate.sh with a
# named base (and optionally a named head), alternate rounds and no committed baselines.
#   scripts/gate-strict.sh BASE_REV [HEAD_REV] [REPEATS]
# HEAD_REV defaults to the work tree as it is; REPEATS (rounds per side) to GATE_REPEATS or 12.
# Exit as scripts/gate.sh: 0 pass, 1 regression, 2 a side that cannot be built or cannot run the
# head's scenarios, 3 environment.
set -u
if [ $# -lt 1 ] || [ $# -gt 3 ]; then
    echo "usage: scripts/gate-strict.sh BASE_REV [HEAD_REV] [REPEATS]" >&2
    exit 2
fi
top=$(git rev-parse --show-toplevel) || exit 2
cd "$top" || exit 2
GATE_BASE=$1 GATE_HEAD=${2:-} GATE_REPEATS=${3:-${GATE_REPEATS:-12}} GATE_BASELINES=0 \
    exec sh scripts/gate.sh build
