"""Sources: validate, normalise and deduplicate product photos; draw procedural samples."""
