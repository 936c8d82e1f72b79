"""Payments: debit notes, invoices, allocations and the payment drivers (ERC-20 on an EVM chain).

Built in a later step; this package holds nothing yet.
"""
