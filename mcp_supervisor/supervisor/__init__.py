"""The supervisor process: spawns, watches and restarts the gateway and one worker per backend."""
