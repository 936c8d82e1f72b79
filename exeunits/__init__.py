"""Exe units: where requestors' work runs.

An activity is one exe unit: a Docker container (runtime ``vm``) or a WebAssembly instance (runtime
``wasmtime``) behind the :class:`~exeunits.runtime.base.ExeUnitRuntime` protocol. ExeScript batches
(:mod:`exeunits.script`) are run command by command by :mod:`exeunits.batch`, which keeps the
activity's state machine, streams runtime events and enforces timeouts. Packages are downloaded,
verified by their sha3-224 and cached by :mod:`exeunits.package`; :mod:`exeunits.transfer` moves
files between ``container:``, ``http(s)://`` and (through a resolver the daemons supply) ``gftp://``.
An activity that joined a requestor's VPN at deploy (:mod:`exeunits.vpn`) is reached by TCP tunnels
that :mod:`exeunits.tunnels` serves over the relay.
"""
