"""The requestor daemon: the yagna-compatible REST API yapapi scripts talk to, and ``gftp``.

Built in a later step on ``market.client``; this package holds nothing yet.
"""
