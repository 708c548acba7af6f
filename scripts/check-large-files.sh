#!/usr/bin/env bash
# Fails when a tracked file is over 1 MB: binaries and data dumps belong in
# bin/ or bench/out/ (both ignored), not in the repository. make test runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=$((1024 * 1024))
status=0
while IFS= read -r -d '' f; do
  [ -f "$f" ] || continue # deleted in the work tree, not yet committed
  size=$(stat -c %s "$f")
  if [ "$size" -gt "$limit" ]; then
    echo "tracked file over 1 MB: $f ($size bytes); git rm --cached it and ignore it" >&2
    status=1
  fi
done < <(git ls-files -z)
exit $status
