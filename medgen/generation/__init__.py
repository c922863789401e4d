"""Generation: four candidates per source, planned, sharded across ranks and stored in the catalog."""
