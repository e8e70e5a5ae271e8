"""The machine a run was made on: the fingerprint stored in every results file (no framework imported)."""
