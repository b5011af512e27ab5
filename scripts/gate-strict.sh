#!/bin/sh
# The strict gate: build two revisions side by side and run both in this job, alternating, so
# machine noise hits both alike; then gate the head against the base.
#   scripts/gate-strict.sh BASE_REV [HEAD_REV] [REPEATS]
# HEAD_REV defaults to the work tree as it is. Each scenario of scenarios/gate/ runs REPEATS
# times per side (default 5), in rounds of base then head, with --repeat 1 per run; the rounds
# are then gated as repeats.
set -eu
base_rev=$1
head_rev=${2:-}
repeats=${3:-5}
top=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$top" worktree remove --force "$work/base" >/dev/null 2>&1 || true;
      [ -n "$head_rev" ] && git -C "$top" worktree remove --force "$work/head" >/dev/null 2>&1;
      rm -rf "$work"' EXIT

git -C "$top" worktree add --detach "$work/base" "$base_rev" >/dev/null
make -C "$work/base" -s all >/dev/null
if [ -n "$head_rev" ]; then
    git -C "$top" worktree add --detach "$work/head" "$head_rev" >/dev/null
    make -C "$work/head" -s all >/dev/null
    head_dir=$work/head
else
    make -C "$top" -s all >/dev/null
    head_dir=$top
fi

status=0
for s in "$top"/scenarios/gate/*.json; do
    name=$(basename "$s" .json)
    for side in base head; do mkdir -p "$work/out/$side/$name"; done
    i=1
    while [ "$i" -le "$repeats" ]; do
        (cd "$work/base" && ./build/lockbench run "$s" --out "$work/out/base/$name/r$i" --no-plot --quiet) || true
        (cd "$head_dir" && ./build/lockbench run "$s" --out "$work/out/head/$name/r$i" --no-plot --quiet) || true
        i=$((i + 1))
    done
    "$head_dir/build/lockbench" gate "$work/out/base/$name" "$work/out/head/$name" || status=1
done
exit $status
