"""bireal_larq: Bi-Real Net binarized neural networks on Larq, from training to LCE."""

import importlib as _importlib
import os as _os
import sys as _sys

from bireal_larq import console as _console
from bireal_larq import stack as _stack
from bireal_larq.utils import lazy_exports as _lazy_exports

# TensorFlow's default CPU allocator hands large freed buffers back to the OS, so every decoded
# and resized image of the input pipeline pays its page faults again; TF's BFC allocator keeps a
# pool instead (benchmarks/input_pipeline.py: about 20 % less CPU time per training image, the
# same for the plain decode + resize; a quick check of model.fit steps on the study's backbone
# showed no difference either way). It only takes effect when set before TensorFlow's first
# allocation, i.e. when bireal_larq is imported before any TF work.
# TF_CPU_ALLOCATOR_USE_BFC=false in the environment keeps TF's default. On CPUs where TF turns
# oneDNN on by default (AVX-512 VNNI / AMX), TF pools through oneDNN's allocator either way.
_os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

# The command run as `python -m bireal_larq.<module>` (sys.argv[0] is "-m" while its package is
# imported) or as its console script `bireal-<module>` (setup.py), or None.
_CLI = None
if _sys.argv[:1] == ["-m"]:
    _CLI = next((a for a in _sys.orig_argv if a.startswith("bireal_larq.")), None)
elif _sys.argv and _os.path.basename(_sys.argv[0]).startswith("bireal-"):
    _CLI = "bireal_larq." + _os.path.basename(_sys.argv[0])[len("bireal-"):].replace("-", "_")
_QUIET_CLI = _CLI is not None and not _console.verbose_requested(_sys.orig_argv)
if _QUIET_CLI:
    # TensorFlow's C++ warnings (among them a second copy of every input-pipeline error, with a
    # Python traceback) stay out of the commands' output; the commands print their own errors.
    # --verbose brings them back (see bireal_larq.console).
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Keras 2 (tf-keras) must be chosen before TensorFlow first loads tf.keras: the environment
# variable is set here, without importing TensorFlow (see bireal_larq.stack). When TensorFlow is
# already loaded (a notebook that imported it first), the stack is checked at once: a clear
# ImportError (bireal_larq.stack.StackError) if this process holds Keras 3 or an unsupported
# stack. `python -m bireal_larq.doctor` skips both: it reports a broken stack instead of failing
# here, and runs the same check itself.
if _CLI != "bireal_larq.doctor":
    _stack.check_installed()
    if _CLI is not None:
        import contextlib as _contextlib

        # A command holds back the native libraries' start-up lines (see bireal_larq.console).
        with _console.held_native_logs() if _QUIET_CLI else _contextlib.nullcontext():
            _stack.select_keras2()
            import larq as _larq  # noqa: F401 - loads tf.keras: its start-up lines are held too
            import tensorflow as _tf

            # Finds the devices (CUDA's start-up lines) inside the hold; no runtime is
            # initialised, so a distribution strategy can still be set up afterwards.
            _tf.config.list_physical_devices()
    elif "tensorflow" in _sys.modules:
        _stack.select_keras2()


__version__ = "0.2.0"

# The public names, loaded from bireal_larq.models on first use (importing the package or one
# of its config modules does not import TensorFlow).
__all__ = [
    "CUSTOM_OBJECTS",
    "BiRealConfig",
    "build_model",
    "create_model",
    "list_models",
    "load_weights",
    "real_valued_twin",
    "register_model",
    "save_weights",
    "transfer_weights",
]
_EXPORTS = {name: "models" for name in __all__}
_load, __dir__ = _lazy_exports(__name__, _EXPORTS)


# Subpackages (and deploy) reachable as attributes after `import bireal_larq` (bireal_larq.data.get_dataset),
# imported on first use like the names above.
_SUBPACKAGES = ("data", "deploy", "export", "models", "training")


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return _importlib.import_module(f"{__name__}.{name}")
    if name in __all__ and _CLI != "bireal_larq.doctor":
        _stack.select_keras2()  # a clear StackError before larq meets a Keras 3 tf.keras
    return _load(name)
