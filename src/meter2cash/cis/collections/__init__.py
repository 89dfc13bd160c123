"""Collections: the dunning ladder, promises to pay, late-payment surcharges and write-offs."""
