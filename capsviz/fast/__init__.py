"""The fast path: speed work that swaps modules or functions into the reference model (capsviz.capsnet)."""
