"""Label Studio annotation: serve, push, pull, validate, agreement."""
