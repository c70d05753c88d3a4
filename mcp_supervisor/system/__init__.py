"""OS-level primitives shared by every process: the sandbox (namespaces, Landlock, cgroups, rlimits)."""
