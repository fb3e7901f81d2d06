"""Driving skiff-runtime: finding the binary, OCI bundles and monitors (the runtime
issue fills this in)."""
