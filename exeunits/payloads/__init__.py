"""Payload builders: packages made offline on this machine, for tests, benchmarks and blueprints.

No registry is reachable from where the project is built and tested, so test packages are assembled
locally. :mod:`exeunits.payloads.image` turns Debian's static busybox into a small image for the
``vm`` runtime, saves it as the ``docker save`` archive a requestor would publish, and names it by
its sha3-224 the way a demand's ``golem.srv.comp.task_package`` does; :mod:`exeunits.payloads.wasm`
holds the small WASI modules the ``wasmtime`` runtime is tested with.
"""
