"""Training and evaluation of a VLM on medgen datasets: prompts, rewards, SFT, GRPO, eval."""
