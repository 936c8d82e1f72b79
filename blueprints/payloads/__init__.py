"""The blueprints' payload image, built offline from the repo.

One ``vm`` image serves every Docker blueprint: Debian's static busybox (``exeunits.payloads.image``,
which declares the volumes ``/golem/input``, ``/golem/output``, ``/golem/work`` and
``/golem/resource``, with ``/golem/work`` as the working directory) plus the fractal renderer
``mandel.awk`` at :data:`blueprints.fractal.RENDERER_IN_IMAGE`. The renderer sits outside the
volumes because a volume masks whatever the image has at its path.

``python -m blueprints.payloads build DIR`` writes the archive (a ``docker save`` tarball, named by
its sha3-224) and prints its hash and path; a build whose recipe has not changed is reused.
"""

from __future__ import annotations

from pathlib import Path

from blueprints.fractal import RENDERER, RENDERER_IN_IMAGE
from exeunits.payloads.image import BuiltImage, build_busybox_image

TAG = "golem-blueprints:latest"


def build(out_dir: Path) -> BuiltImage:
    """Build (or reuse) the blueprints' image in ``out_dir``; where it is and its sha3-224."""
    return build_busybox_image(out_dir, tag=TAG, extra_files={RENDERER_IN_IMAGE: RENDERER.read_bytes()})
