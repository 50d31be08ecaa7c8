"""Variable-rate learned image compression (lambda-conditioned scale hyperprior)."""
