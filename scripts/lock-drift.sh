#!/usr/bin/env bash
# What `make test-latest` installed that differs from uv.lock: one line per package, "name locked -> latest".
# Usage: scripts/lock-drift.sh UV VENV_PYTHON
set -euo pipefail
uv="$1" python="$2"
locked=$("$uv" export --quiet --frozen --group test --no-hashes --no-emit-project --no-header --no-annotate \
    | sed -n 's/^\([A-Za-z0-9_.-]*\)==\([^ ;]*\).*/\1 \2/p' | tr 'A-Z_' 'a-z-' | sort)
latest=$("$uv" pip freeze --quiet --python "$python" --exclude-editable \
    | sed -n 's/^\([A-Za-z0-9_.-]*\)==\(.*\)/\1 \2/p' | tr 'A-Z_' 'a-z-' | sort)
drift=$(join -a 2 <(echo "$locked") <(echo "$latest") | awk '$2 != $3 { print $1, ($3 == "" ? "(not locked)" : $2), "->", ($3 == "" ? $2 : $3) }')
if [[ -z "$drift" ]]; then
    echo "test-latest: the newest allowed versions are the locked ones."
else
    echo "test-latest: newer than the lock (make lock takes them):"
    echo "$drift"
fi
