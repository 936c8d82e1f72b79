"""The provider daemon: offers, negotiation, activities, billing.

Built in a later step on ``market.client``; this package holds nothing yet.
"""
