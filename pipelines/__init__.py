"""rayswap's Ray wiring: one stage per module (extract, train, render) and the CLI."""
