"""Tool pinning: trust on first use for what a backend tells the model (issue #25).

The first definition seen of each tool and prompt (by backend key and the backend's own name, so a
tool_config.json rename keeps its pin) is pinned as a hash of what the model reads or the call depends on. A
later change, or a definition suspicious at first sight, is held out of the catalog until an operator
approves it (`mcp-supervisor tools`, the admin page). Modules:

- `fingerprint.py`: which fields are pinned, and their canonical hash;
- `suspicious.py`: invisible or direction-changing characters, size limits;
- `store.py`: the pin file in the state directory (written by the gateway only, atomically) and the request
  inbox through which the CLI asks the running gateway to approve or reject;
- `policy.py`: the verdict on each exposed item at every catalog rebuild, approvals, reports;
- `review.py`: what the CLI and the admin show (rows, diffs).
"""
