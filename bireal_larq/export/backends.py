"""How LCE's interpreter runs a flatbuffer on this host: its "backend".

A backend is one of LCE's two bgemm kernels for ``LceBconv2d``, alone or with TFLite's XNNPACK
delegate taking the float layers (stem conv, 1x1 shortcuts, pooling, the classifier) while
the binary convs stay with LCE. Verification, the inference API and the benchmarks all name
backends this way, so what is verified is what is deployed and what is timed.
"""

from __future__ import annotations

import platform

KERNELS = ("default", "indirect_bgemm")
BACKENDS = (*KERNELS, *(f"{k}+xnnpack" for k in KERNELS))


def interpreter_options(backend: str) -> dict[str, bool]:
    """The LCE ``Interpreter`` keyword arguments of a backend name.

    Raises:
        ValueError: unknown backend.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is invalid; valid: {list(BACKENDS)}")
    kernel, _, delegate = backend.partition("+")
    return {"use_indirect_bgemm": kernel == "indirect_bgemm", "use_xnnpack": delegate == "xnnpack"}


def default_backend() -> str:
    """The backend for this host.

    On x86-64 LCE's indirect bgemm is several times faster than its default kernel (the
    default is the one tuned for ARM); XNNPACK speeds up the float layers on both.
    ``benchmarks/inference.py`` measures every choice side by side.
    """
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return f"{'indirect_bgemm' if x86 else 'default'}+xnnpack"
