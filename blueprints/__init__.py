"""Blueprints: ready-to-run requestor scripts, payload recipes and the local devnet.

Built in a later step; this package holds nothing yet.
"""
