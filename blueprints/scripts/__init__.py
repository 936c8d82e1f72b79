"""Requestor scripts written for the real yapapi 0.13.1, run unchanged against our network."""
