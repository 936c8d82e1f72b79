"""The kernel every other package imports.

Ids, the exception root, the wire-model base, the injectable clock, node identity and EIP-191
signing, configuration loading, SQLite helpers, state-machine support and logging with correlation
ids. Nothing here imports from the rest of ``market`` or from any package above it.
"""
