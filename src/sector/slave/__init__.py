"""The slave: stores whole files on its local disk and serves them directly to clients."""
