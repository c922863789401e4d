"""The main job: every stage end to end on CPU, on procedurally drawn sample products."""
