"""Runtimes behind the :class:`~exeunits.runtime.base.ExeUnitRuntime` protocol."""
