"""Screening new generations with the trained model (`medgen screen`)."""
