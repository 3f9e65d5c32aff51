"""Checks the environment bireal_larq runs in: ``python -m bireal_larq.doctor [--json]``.

Prints the Python, TensorFlow, Keras, larq, Larq Compute Engine, tensorflow-datasets and numpy
versions, which TensorFlow distribution is installed and whether it is a CUDA build, the GPUs
(with their compute capability), TPUs and CPUs TensorFlow sees, whether an NVIDIA driver is
present, and whether mixed precision and XLA are usable. Problems that stop a run or badly hurt
it are printed as warnings, each saying what to do.

Exit status: 0 when nothing is wrong, 1 when there is at least one warning. ``--json`` prints the
collected facts and the warnings as one JSON object instead of the text report.

The doctor also runs where ``import bireal_larq`` fails (Keras 3 as ``tf.keras``, numpy 2,
tf-keras missing, no TensorFlow at all): it reads versions from the installed packages'
metadata and catches every error of TensorFlow while it looks at the devices.

Library use: :func:`collect` returns the facts as a plain, JSON-serialisable dict;
:func:`warnings` and :func:`report` read such a dict (also a hand-made one).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from typing import Any

from bireal_larq.stack import (
    MAIN_TF_MINORS,
    REFERENCE_TF_MINOR,
    SUPPORTED_PYTHON,
    keras_version,
    select_keras2,
)

try:  # absl-py comes with TensorFlow; without it the doctor still reports (see run())
    from absl import app, flags
except ImportError:
    app = flags = None

# Distributions whose versions the report lists (looked up in the installed metadata).
PACKAGES = (
    "tf-keras",
    "keras",
    "larq",
    "larq-compute-engine",
    "tensorflow-datasets",
    "numpy",
)
LCE_INSTALL = "pip install larq-compute-engine==0.16.0"
NO_LCE = "not installed: export cannot run on this platform"
_MAIN_TF = f"2.{MAIN_TF_MINORS[0]}-2.{MAIN_TF_MINORS[-1]}"
_NVIDIA_VERSION_FILE = "/proc/driver/nvidia/version"

Info = dict[str, Any]


# ----------------------------------------------------------------------------------- collecting


def collect() -> Info:
    """The facts about this process's environment, as a JSON-serialisable dict.

    Like ``import bireal_larq``, it sets ``TF_USE_LEGACY_KERAS=1`` unless the variable is
    already set, so that TensorFlow (imported here if it is not yet) serves the Keras that a
    bireal_larq run would get. Never raises for a broken stack: what could not be read is None,
    with the error message beside it.

    Returns:
        A dict of plain values: ``python`` (version, implementation, executable), ``platform``
        (``sys.platform``, machine), ``environment`` (``TF_USE_LEGACY_KERAS`` as found),
        ``packages`` (distribution name -> version or None), ``nvidia`` (driver found, its
        version, what nvidia-smi lists), ``cpus``, ``bireal_larq_import`` (None, or why the
        package cannot be imported), ``tensorflow`` (version, the distributions providing it,
        CUDA build facts, import error), ``keras`` (what ``tf.keras`` is: major version, source
        package, version), ``gpus`` (name and compute capability of each GPU TensorFlow sees),
        ``tpus``, ``mixed_precision`` and ``xla`` (usable, and why not).
    """
    legacy_keras = os.environ.get("TF_USE_LEGACY_KERAS")
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    info: Info = {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {"system": sys.platform, "machine": platform.machine()},
        "environment": {"TF_USE_LEGACY_KERAS": legacy_keras},
        "packages": {name: _version(name) for name in PACKAGES},
        "nvidia": _nvidia(),
        "cpus": {"count": os.cpu_count(), "available": _available_cpus()},
    }
    info["bireal_larq_import"] = _import_check()
    distributions = _tf_distributions()
    tf, tf_error = _import_tensorflow(distributions, info["packages"]["numpy"])
    info["tensorflow"] = _tensorflow(tf, tf_error, distributions)
    info["keras"] = _keras(tf)
    info["gpus"], info["tpus"] = _devices(tf)
    info["mixed_precision"] = mixed_precision(info)
    info["xla"] = _xla(tf)
    return info


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    message = f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
    return message if len(message) <= 300 else message[:297] + "..."


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _tf_distributions() -> dict[str, str | None]:
    """Every installed distribution that provides the ``tensorflow`` package, with its version."""
    try:
        names = importlib.metadata.packages_distributions().get("tensorflow", [])
    except Exception:  # a malformed distribution elsewhere in site-packages
        names = ["tensorflow"] if _version("tensorflow") else []
    return {_normalized(name): _version(name) for name in dict.fromkeys(names)}


def _available_cpus() -> int | None:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on macOS / Windows
        return None


def _nvidia() -> Info:
    """The NVIDIA driver: its kernel module's version file and what ``nvidia-smi`` lists."""
    found: Info = {
        "driver": False,
        "driver_version": None,
        "nvidia_smi": shutil.which("nvidia-smi"),
        "gpus": [],
        "error": None,
    }
    try:
        with open(_NVIDIA_VERSION_FILE, encoding="utf-8", errors="replace") as f:
            text = f.read()
        found["driver"] = True
        match = re.search(r"Module\b.*?\s(\d+\.\d+(?:\.\d+)*)\s", text)
        found["driver_version"] = match.group(1) if match else None
    except OSError:
        pass
    if found["nvidia_smi"]:
        rows, error = _nvidia_smi(found["nvidia_smi"])
        found["error"] = error
        if rows is not None:
            found["driver"] = True
        for row in rows or []:
            name, driver_version, *capability = (cell.strip() for cell in row.split(","))
            found["driver_version"] = found["driver_version"] or driver_version
            found["gpus"].append({"name": name, "compute_capability": _capability(capability)})
    return found


def _nvidia_smi(executable: str) -> tuple[list[str] | None, str | None]:
    # compute_cap is a query field of drivers from 2021 on; older ones list name and driver.
    error = None
    for fields in ("name,driver_version,compute_cap", "name,driver_version"):
        try:
            done = subprocess.run(
                [executable, f"--query-gpu={fields}", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=30,
            )
        except (OSError, subprocess.SubprocessError) as err:
            return None, _one_line(err)
        if done.returncode == 0:
            return [line for line in done.stdout.splitlines() if line.strip()], None
        error = (done.stdout + done.stderr).strip().splitlines()[:1] or [f"exit {done.returncode}"]
        error = f"nvidia-smi: {error[0]}"
    return None, error


def _capability(cells: list[str]) -> list[int] | None:
    match = re.fullmatch(r"(\d+)\.(\d+)", cells[0]) if cells else None
    return [int(match.group(1)), int(match.group(2))] if match else None


def _import_check() -> str | None:
    """None when bireal_larq's stack check and model code import here, else the error."""
    try:
        select_keras2()
        importlib.import_module("bireal_larq.models")
    except Exception as err:  # StackError, or whatever a broken install raises
        return _one_line(err)
    return None


def _import_tensorflow(
    distributions: dict[str, str | None], numpy_version: str | None
) -> tuple[Any, str | None]:
    tf_version = next((v for v in distributions.values() if v), None)
    numpy_2 = (_major(numpy_version) or 0) >= 2
    if tf_version and numpy_2 and (_minor(tf_version) or (0, 0)) < (2, 18):
        # TensorFlow < 2.18 is built against numpy 1: numpy 2 would abort its import.
        return None, f"not imported: TensorFlow {tf_version} needs numpy < 2"
    try:
        import tensorflow as tf
    except Exception as err:  # not installed, or built against another numpy
        return None, _one_line(err)
    return tf, None


def _tensorflow(tf: Any, error: str | None, distributions: dict[str, str | None]) -> Info:
    found: Info = {
        "version": getattr(tf, "__version__", None)
        or next((v for v in distributions.values() if v), None),
        "distributions": distributions,
        "import_error": error,
        "cuda_build": None,
        "cuda_version": None,
        "cudnn_version": None,
        "cuda_compute_capabilities": [],
    }
    if tf is None:
        return found
    try:
        found["cuda_build"] = bool(tf.test.is_built_with_cuda())
        build = tf.sysconfig.get_build_info()
        for key in ("cuda_version", "cudnn_version"):
            found[key] = str(build[key]) if build.get(key) else None
        capabilities = build.get("cuda_compute_capabilities") or []
        found["cuda_compute_capabilities"] = [str(c) for c in capabilities]
    except Exception as err:  # an unusual build without these attributes
        found["build_info_error"] = _one_line(err)
    return found


def _keras(tf: Any) -> Info:
    """Which Keras ``tf.keras`` is: 2 via tf-keras, 2 built into TF 2.15, or 3."""
    found: Info = {"major": None, "source": None, "version": None, "error": None}
    if tf is None:
        return found
    try:
        package = tf.keras.layers.Layer.__module__.split(".")[0]
        if package == "tf_keras":
            found.update(major=2, source="tf-keras", version=keras_version())
        elif package == "keras" and _minor(tf.__version__) == (2, REFERENCE_TF_MINOR):
            found.update(major=2, source="tensorflow", version=keras_version())
        else:
            version = _version("keras")
            found.update(major=_major(version), source=package, version=version)
    except Exception as err:  # TF's lazy loader raises ImportError without tf-keras
        found["error"] = _one_line(err)
    return found


def _devices(tf: Any) -> tuple[list[Info], list[str]]:
    if tf is None:
        return [], []
    gpus: list[Info] = []
    try:
        for device in tf.config.list_physical_devices("GPU"):
            try:  # the doctor takes no more GPU memory than it uses
                tf.config.experimental.set_memory_growth(device, True)
            except (RuntimeError, ValueError):
                pass
            details = tf.config.experimental.get_device_details(device)
            capability = details.get("compute_capability")
            gpus.append({
                "device": device.name,
                "name": details.get("device_name", device.name),
                "compute_capability": [int(c) for c in capability] if capability else None,
            })
    except Exception:  # a broken CUDA set-up: TF's own log says why
        pass
    try:
        tpus = [device.name for device in tf.config.list_logical_devices("TPU")]
    except Exception:
        tpus = []
    return gpus, tpus


def _xla(tf: Any) -> Info:
    if tf is None:
        return {"usable": False, "error": "TensorFlow cannot be imported"}
    try:
        with tf.device("/CPU:0"):
            double = tf.function(lambda x: 2.0 * x + 1.0, jit_compile=True, autograph=False)
            result = double(tf.constant([1.0, 2.0])).numpy().tolist()
    except Exception as err:
        return {"usable": False, "error": _one_line(err)}
    if result != [3.0, 5.0]:
        return {"usable": False, "error": f"a jit-compiled 2x+1 returned {result}"}
    return {"usable": True, "error": None}


# ------------------------------------------------------------------------------------- reading


def _minor(version: str | None) -> tuple[int, int] | None:
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def _major(version: str | None) -> int | None:
    minor = _minor(version)
    return minor[0] if minor else None


def _all_gpus(info: Info) -> list[tuple[str, tuple[int, int] | None]]:
    """(name, compute capability) of the GPUs TensorFlow sees, else of those nvidia-smi lists."""
    listed = info.get("gpus") or (info.get("nvidia") or {}).get("gpus") or []
    found = []
    for gpu in listed:
        capability = gpu.get("compute_capability")
        found.append((gpu.get("name") or "GPU", tuple(capability) if capability else None))
    return found


def mixed_precision(info: Info) -> Info:
    """Whether a Keras mixed-precision policy speeds training up on these devices.

    Args:
        info: A dict as :func:`collect` returns it (``gpus`` and ``tpus`` are read).

    Returns:
        ``{"usable": bool, "policy": name or None, "reason": str}``.
    """
    if info.get("tpus"):
        return {"usable": True, "policy": "mixed_bfloat16", "reason": "TPU"}
    gpus = [(name, cc) for name, cc in _all_gpus({"gpus": info.get("gpus")}) if cc]
    fast = [name for name, cc in gpus if cc >= (7, 0)]
    if fast:
        return {"usable": True, "policy": "mixed_float16",
                "reason": f"{fast[0]}: compute capability >= 7.0 (tensor cores)"}
    if info.get("gpus"):
        return {"usable": False, "policy": None,
                "reason": "GPU of compute capability below 7.0: float16 brings no speed-up"}
    return {"usable": False, "policy": None,
            "reason": "CPU only: bfloat16 only, no speed-up"}


def lce_has_wheels(info: Info) -> bool:
    """Whether larq-compute-engine 0.16 publishes wheels for this platform and Python.

    Wheels exist for Linux x86-64, macOS and Windows, CPython 3.10-3.12 (the Pythons
    bireal_larq supports for that reason).
    """
    system = (info.get("platform") or {}).get("system", "")
    machine = ((info.get("platform") or {}).get("machine") or "").lower()
    python = info.get("python") or {}
    linux_x86 = system.startswith("linux") and machine in ("x86_64", "amd64")
    on_platform = linux_x86 or system in ("darwin", "win32")
    version = _minor(python.get("version"))
    low, high = SUPPORTED_PYTHON
    return (on_platform and python.get("implementation", "CPython") == "CPython"
            and version is not None and low <= version <= high)


def _gpu_remedy(info: Info) -> str:
    if (info.get("platform") or {}).get("system") == "win32":
        return ("TensorFlow has no GPU support on native Windows since 2.11: run bireal_larq "
                "under WSL2 and install `bireal_larq[gpu]` (tensorflow[and-cuda]) there")
    return "install `bireal_larq[gpu]` (`pip install 'tensorflow[and-cuda]'` of the same version)"


def warnings(info: Info) -> list[str]:
    """The problems that would stop a bireal_larq run or badly hurt it, one sentence each.

    Args:
        info: A dict as :func:`collect` returns it. A missing key counts as unknown (and
            warns of nothing), except the TensorFlow version: without it, TensorFlow counts as
            not installed.

    Returns:
        The warnings, each saying what hurts and what to do; empty when nothing is wrong.
    """
    found = _stack_warnings(info)
    explained = bool(found)
    found += _gpu_warnings(info)
    packages = info.get("packages") or {}
    lce_missing = "larq-compute-engine" in packages and not packages["larq-compute-engine"]
    if lce_missing and lce_has_wheels(info):
        found.append(
            "larq-compute-engine is not installed, so `python -m bireal_larq.export` can neither "
            f"convert nor verify a model; install it with `{LCE_INSTALL}`."
        )
    error = info.get("bireal_larq_import")
    if error and not explained:
        found.append(f"bireal_larq cannot be imported here ({error}); do what the message says.")
    return found


def _stack_warnings(info: Info) -> list[str]:
    """Python, TensorFlow, Keras and numpy: the versions ``import bireal_larq`` checks."""
    found = []
    python = (info.get("python") or {}).get("version")
    low, high = SUPPORTED_PYTHON
    if _minor(python) is not None and not low <= _minor(python) <= high:
        found.append(
            f"Python {python} is not supported (larq 0.14 needs numpy < 2 and "
            "larq-compute-engine 0.16 has wheels for CPython 3.10-3.12 only); create the "
            "environment with Python 3.12."
        )
    tf = info.get("tensorflow") or {}
    version, minor = tf.get("version"), _minor(tf.get("version"))
    main = "pip install 'tensorflow==2.21.*' 'tf-keras==2.21.*'"
    if version is None:
        found.append(
            f"TensorFlow is not installed, so nothing can run; install the main stack (`{main}`)."
        )
    elif tf.get("import_error"):
        found.append(
            f"TensorFlow {version} cannot be imported ({tf['import_error']}), so nothing can "
            f"run; reinstall it (`{main}`)."
        )
    supported = minor == (2, REFERENCE_TF_MINOR) or (
        minor is not None and minor[0] == 2 and minor[1] in MAIN_TF_MINORS
    )
    if minor is not None and not supported:
        found.append(
            f"TensorFlow {version} is outside the supported versions ({_MAIN_TF} with tf-keras "
            f"of the same minor, or 2.15.1), so larq and bireal_larq are untested or fail on it; "
            f"install `{main}`."
        )
    keras = info.get("keras") or {}
    packages = info.get("packages") or {}
    if keras.get("major") is not None and keras["major"] != 2:
        setting = (info.get("environment") or {}).get("TF_USE_LEGACY_KERAS")
        why = f" (TF_USE_LEGACY_KERAS={setting!r})" if setting is not None else ""
        found.append(
            f"tf.keras is Keras {keras.get('version') or keras['major']} in this process{why}, "
            "which larq cannot run on, so bireal_larq cannot be imported; unset "
            "TF_USE_LEGACY_KERAS or set it to 1, install tf-keras of TensorFlow's minor version "
            "and restart Python."
        )
    tf_keras = packages.get("tf-keras")
    if minor is not None and minor >= (2, 16) and "tf-keras" in packages:
        pin = f"pip install 'tf-keras=={minor[0]}.{minor[1]}.*'"
        if not tf_keras:
            found.append(
                f"tf-keras is not installed, so TensorFlow {version} has no Keras 2 for larq and "
                f"bireal_larq cannot be imported; install it with `{pin}`."
            )
        elif _minor(tf_keras) != minor:
            found.append(
                f"tf-keras {tf_keras} does not match TensorFlow {version} (each tf-keras release "
                f"is built for one TensorFlow minor), so Keras 2 may fail to load; `{pin}`."
            )
    for name, pin in (("larq", "larq==0.14.0"), ("tensorflow-datasets", "tensorflow-datasets")):
        if name not in packages or packages[name]:
            continue
        found.append(
            f"{name} is not installed, so bireal_larq cannot run; install it with "
            f"`pip install '{pin}'` (or install bireal_larq itself, which pulls it in)."
        )
    numpy = packages.get("numpy")
    if _major(numpy) is not None and _major(numpy) >= 2:
        found.append(
            f"numpy {numpy} is installed but larq 0.14 needs numpy < 2, so bireal_larq cannot be "
            "imported; install `pip install 'numpy<2'`."
        )
    return found


def _gpu_warnings(info: Info) -> list[str]:
    """An NVIDIA GPU that TensorFlow cannot use, or can use only after a long JIT at start."""
    found = []
    tf = info.get("tensorflow") or {}
    version, minor = tf.get("version"), _minor(tf.get("version"))
    nvidia = info.get("nvidia") or {}
    distributions = tf.get("distributions") or {}
    if nvidia.get("driver") and "tensorflow-cpu" in distributions:
        found.append(
            f"tensorflow-cpu {distributions['tensorflow-cpu'] or ''} is installed on a machine "
            "with an NVIDIA driver; it is not a CUDA build, so the GPU is never used: "
            f"`pip uninstall tensorflow-cpu`, then {_gpu_remedy(info)}."
        )
    elif nvidia.get("driver") and tf.get("cuda_build") is False:
        found.append(
            f"TensorFlow {version} ({', '.join(distributions) or 'unknown distribution'}) is not "
            f"a CUDA build while an NVIDIA driver is present, so the GPU is never used; "
            f"{_gpu_remedy(info)}."
        )
    elif tf.get("cuda_build") and nvidia.get("gpus") and not info.get("gpus"):
        found.append(
            f"nvidia-smi lists {nvidia['gpus'][0].get('name') or 'a GPU'} but TensorFlow "
            f"{version} sees no GPU (usually its CUDA libraries are missing), so the run uses "
            f"the CPU; {_gpu_remedy(info)} and look for 'Cannot dlopen some GPU libraries' in "
            "TensorFlow's log."
        )
    for name, capability in _all_gpus(info):
        if capability is None:
            continue
        cc = f"{capability[0]}.{capability[1]}"
        if minor == (2, REFERENCE_TF_MINOR) and capability >= (9, 0):
            found.append(
                f"TensorFlow {version}'s CUDA build carries no machine code for {name} (compute "
                f"capability {cc}), only compute_80 PTX, so every kernel is JIT-compiled at start "
                "(up to 30 minutes, TensorFlow issue #60739); use the main stack (TensorFlow "
                f"{_MAIN_TF}), or at least set CUDA_CACHE_MAXSIZE=4294967296 so that only the "
                "first start pays."
            )
        if capability >= (10, 0):
            found.append(
                f"{name} (compute capability {cc}) is a Blackwell GPU, for which TensorFlow's "
                f"wheels (CUDA 12.5 builds for {_MAIN_TF}) carry no machine code, so expect a long "
                "PTX JIT at every start or a failure; set CUDA_CACHE_MAXSIZE=4294967296 so that "
                "only the first start pays, and use a GPU of compute capability 9.0 or lower if "
                "TensorFlow fails."
            )
    return found


def _package_line(info: Info, name: str) -> str:
    version = (info.get("packages") or {}).get(name)
    if version:
        return version
    if name == "larq-compute-engine" and not lce_has_wheels(info):
        return NO_LCE
    return "not installed"


def report(info: Info) -> list[str]:
    """The text report of a dict that :func:`collect` returned, warnings last.

    Args:
        info: A dict as :func:`collect` returns it (also after a JSON round trip).

    Returns:
        The report's lines, without line ends.
    """
    python = info.get("python") or {}
    where = info.get("platform") or {}
    tf = info.get("tensorflow") or {}
    keras = info.get("keras") or {}
    nvidia = info.get("nvidia") or {}
    cpus = info.get("cpus") or {}
    lines = ["bireal_larq doctor"]

    def row(label: str, value: Any) -> None:
        lines.append(f"  {label:<22}{value}")

    row("Python", f"{python.get('version')} ({python.get('implementation', 'CPython')}, "
                  f"{where.get('system')} {where.get('machine')})")
    if tf.get("version") is None:
        row("TensorFlow", "not installed")
    else:
        distributions = ", ".join(
            f"{name} {v}" for name, v in (tf.get("distributions") or {}).items()) or "unknown"
        row("TensorFlow", f"{tf['version']} (installed as: {distributions})")
        if tf.get("import_error"):
            row("", f"cannot be used: {tf['import_error']}")
    if tf.get("cuda_build"):
        capabilities = " ".join(tf.get("cuda_compute_capabilities") or []) or "unknown"
        row("CUDA build", f"yes: CUDA {tf.get('cuda_version')}, cuDNN {tf.get('cudnn_version')}, "
                          f"compute capabilities {capabilities}")
    elif tf.get("cuda_build") is False:
        row("CUDA build", "no (TensorFlow cannot use an NVIDIA GPU)")
    row("Keras (tf.keras)", _keras_line(keras, tf.get("version")))
    for label, name in (("tf-keras", "tf-keras"), ("larq", "larq"),
                        ("larq-compute-engine", "larq-compute-engine"),
                        ("tensorflow-datasets", "tensorflow-datasets"), ("numpy", "numpy")):
        row(label, _package_line(info, name))
    row("import bireal_larq", info.get("bireal_larq_import") or "ok")
    if nvidia.get("driver"):
        row("NVIDIA driver", nvidia.get("driver_version") or "present (version unknown)")
    else:
        row("NVIDIA driver", "none found" + (f" ({nvidia['error']})" if nvidia.get("error")
                                            else ""))
    gpus = _all_gpus({"gpus": info.get("gpus")})
    row("GPUs (TensorFlow)", "; ".join(
        f"{name}, compute capability {cc[0]}.{cc[1]}" if cc else name for name, cc in gpus
    ) or "none")
    if nvidia.get("gpus") and not info.get("gpus"):
        row("GPUs (nvidia-smi)", "; ".join(g.get("name") or "GPU" for g in nvidia["gpus"]))
    row("TPUs", ", ".join(info.get("tpus") or []) or "none")
    available = cpus.get("available")
    row("CPUs", f"{cpus.get('count')}" + (
        f" ({available} available to this process)"
        if available and available != cpus.get("count") else ""))
    precision = mixed_precision(info)
    row("Mixed precision", (f"yes, {precision['policy']}" if precision["usable"] else "no")
        + f" ({precision['reason']})")
    xla = info.get("xla") or {}
    row("XLA (jit_compile)", "usable" if xla.get("usable") else f"not usable: {xla.get('error')}")
    found = warnings(info)
    lines.append("")
    if found:
        lines.append(f"{len(found)} problem(s):")
        lines.extend(f"  WARNING: {text}" for text in found)
    else:
        lines.append("No problems found.")
    return lines


def _keras_line(keras: Info, tf_version: str | None) -> str:
    if keras.get("error"):
        return f"unavailable: {keras['error']}"
    if keras.get("major") is None:
        return "unknown (TensorFlow cannot be imported)"
    if keras["major"] == 2 and keras.get("source") == "tf-keras":
        return f"{keras.get('version')} (Keras 2 via tf-keras)"
    if keras["major"] == 2:
        return f"{keras.get('version')} (Keras 2 built into TensorFlow {tf_version})"
    source = keras.get("source")
    return f"{keras.get('version')} (Keras {keras['major']}, from the {source!r} package)"


# ------------------------------------------------------------------------------ command line


def _print(as_json: bool) -> int:
    info = collect()
    found = warnings(info)
    if as_json:
        print(json.dumps({**info, "warnings": found}, indent=2))
        for text in found:
            print(f"WARNING: {text}", file=sys.stderr)
    else:
        print("\n".join(report(info)))
    return 1 if found else 0


if flags is not None:
    from bireal_larq.cli import parser_for

    FLAGS = flags.FlagValues()
    PARSER = parser_for(FLAGS)  # app.run's flags parser: no positional arguments
    flags.DEFINE_bool(
        "json", False, "Print the facts and warnings as one JSON object.", flag_values=FLAGS
    )


def main(argv: list[str]) -> int:
    """Prints the report (or the JSON); returns 1 when there is a warning, else 0."""
    del argv
    return _print(FLAGS.json)


def _main_without_absl(argv: list[str]) -> int:
    """The same command where absl-py (so TensorFlow) is not installed: only ``--json``."""
    args = argv[1:]
    if any(arg not in ("--json", "--json=true", "--nojson", "--json=false") for arg in args):
        print(f"FATAL Unexpected argument(s) {args}: valid: --json", file=sys.stderr)
        return 1
    return _print(bool(args) and args[-1] in ("--json", "--json=true"))


def run() -> None:
    """The command-line entry point."""
    if app is None:
        sys.exit(_main_without_absl(sys.argv))
    app.run(main, flags_parser=PARSER)


if __name__ == "__main__":
    run()
