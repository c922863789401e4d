"""medgen: build, grow and publish a benchmark for screening AI-generated medicine-product images."""

__version__ = "0.1.0"
