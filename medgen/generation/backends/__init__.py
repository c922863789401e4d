"""Generation backends: diffusers checkpoints, and the model-free synthetic compositor."""
