"""Answer-driven chain of thought from a teacher model: `medgen cot`."""
