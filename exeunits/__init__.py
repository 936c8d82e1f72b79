"""Exe units: where requestors' work runs.

ExeScript and Activity models, the runtime protocol, the Docker (``vm``) and WebAssembly
(``wasmtime``) runtimes, package download and verification, usage counters. Built in a later step;
this package holds nothing yet.
"""
