"""The environment doctor: its warnings on hand-made machines, collect() here, and the CLI."""

from __future__ import annotations

import copy
import importlib.metadata
import json
import os
import platform
import subprocess
import sys

import pytest

from bireal_larq import doctor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

A100 = {"device": "/physical_device:GPU:0", "name": "NVIDIA A100-SXM4-40GB",
        "compute_capability": [8, 0]}
H100 = {"device": "/physical_device:GPU:0", "name": "NVIDIA H100 80GB HBM3",
        "compute_capability": (9, 0)}
B200 = {"device": "/physical_device:GPU:0", "name": "NVIDIA B200", "compute_capability": (10, 0)}
T4 = {"device": "/physical_device:GPU:0", "name": "Tesla T4", "compute_capability": [7, 5]}
P100 = {"device": "/physical_device:GPU:0", "name": "Tesla P100-PCIE-16GB",
        "compute_capability": [6, 0]}

# A Linux machine with one A100 on the main stack: nothing to warn about.
HEALTHY = {
    "python": {"version": "3.12.3", "implementation": "CPython", "executable": "/venv/bin/python"},
    "platform": {"system": "linux", "machine": "x86_64"},
    "environment": {"TF_USE_LEGACY_KERAS": None},
    "packages": {"tf-keras": "2.21.0", "keras": "3.11.3", "larq": "0.14.0",
                 "larq-compute-engine": "0.16.0", "tensorflow-datasets": "4.9.9",
                 "numpy": "1.26.4"},
    "nvidia": {"driver": True, "driver_version": "570.86.15", "nvidia_smi": "/usr/bin/nvidia-smi",
               "gpus": [{"name": A100["name"], "compute_capability": [8, 0]}], "error": None},
    "cpus": {"count": 12, "available": 12},
    "bireal_larq_import": None,
    "tensorflow": {"version": "2.21.0", "distributions": {"tensorflow": "2.21.0"},
                   "import_error": None, "cuda_build": True, "cuda_version": "12.5.1",
                   "cudnn_version": "9",
                   "cuda_compute_capabilities": ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]},
    "keras": {"major": 2, "source": "tf-keras", "version": "2.21.0", "error": None},
    "gpus": [A100],
    "tpus": [],
    "xla": {"usable": True, "error": None},
}
NO_DRIVER = {"driver": False, "driver_version": None, "nvidia_smi": None, "gpus": [], "error": None}
REFERENCE = {  # TF 2.15.1 with its own Keras 2 on Python 3.11
    "python": {"version": "3.11.9"},
    "packages": {"tf-keras": None, "keras": "2.15.0"},
    "tensorflow": {"version": "2.15.1", "distributions": {"tensorflow": "2.15.1"},
                   "cuda_version": "12.2", "cudnn_version": "8",
                   "cuda_compute_capabilities": ["sm_50", "sm_60", "sm_70", "sm_75", "compute_80"]},
    "keras": {"major": 2, "source": "tensorflow", "version": "2.15.0"},
}


def _info(*changes: dict, **sections) -> dict:
    """HEALTHY with each section updated (dict sections merged, other values replaced)."""
    info = copy.deepcopy(HEALTHY)
    for change in (*changes, sections):
        for key, value in change.items():
            if isinstance(value, dict) and isinstance(info.get(key), dict):
                info[key] = {**info[key], **copy.deepcopy(value)}
            else:
                info[key] = copy.deepcopy(value)
    return info


def _cpu_only(**sections) -> dict:
    return _info(nvidia=NO_DRIVER, gpus=[], **sections)


@pytest.mark.parametrize("info", [
    _info(), _cpu_only(), _info(REFERENCE), _info(gpus=[H100]), _info(gpus=[T4]),
    _cpu_only(tpus=["/device:TPU:0"]), _info(python={"version": "3.10.14"}),
    _info(tensorflow={"version": "2.18.1"}, packages={"tf-keras": "2.18.0"}),
    _cpu_only(tensorflow={"distributions": {"tensorflow-cpu": "2.21.0"}, "cuda_build": False}),
    _cpu_only(platform={"machine": "aarch64"}, packages={"larq-compute-engine": None}),
    _cpu_only(platform={"system": "darwin", "machine": "arm64"}, tensorflow={"cuda_build": False}),
], ids=["a100", "cpu", "reference", "h100_main_stack", "t4", "tpu", "py310", "tf218",
        "tensorflow_cpu_without_driver", "aarch64_without_lce", "macos"])
def test_a_healthy_machine_has_no_warnings(info):
    assert doctor.warnings(info) == []
    lines = doctor.report(info)
    assert lines[-1] == "No problems found."
    text = "\n".join(lines)
    assert info["tensorflow"]["version"] in text and info["packages"]["larq"] in text


H100_ON_215 = _info(REFERENCE, gpus=[H100])
CASES = {
    # what is wrong: (machine, words every warning of it contains)
    "h100_on_tf215": (H100_ON_215, ["H100", "9.0", "compute_80 PTX", "#60739", "2.18-2.21"]),
    "blackwell_main_stack": (_info(gpus=[B200]), ["B200", "10.0", "Blackwell", "PTX JIT"]),
    "blackwell_seen_by_nvidia_smi_only": (
        _info(gpus=[], nvidia={"gpus": [{"name": "NVIDIA RTX PRO 6000", "compute_capability":
                                         [12, 0]}]}, tensorflow={"cuda_build": False}),
        ["Blackwell", "12.0", "not a CUDA build"]),
    "tensorflow_cpu_with_driver": (
        _info(gpus=[], tensorflow={"distributions": {"tensorflow-cpu": "2.21.0"},
                                   "cuda_build": False}),
        ["tensorflow-cpu 2.21.0", "NVIDIA driver", "never used", "bireal_larq[gpu]",
         "tensorflow[and-cuda]"]),
    "no_cuda_build_with_driver": (
        _info(gpus=[], tensorflow={"distributions": {"tensorflow-aarch64": "2.21.0"},
                                   "cuda_build": False}),
        ["not a CUDA build", "NVIDIA driver", "never used", "bireal_larq[gpu]"]),
    "no_cuda_build_with_driver_on_windows": (
        _info(gpus=[], platform={"system": "win32", "machine": "AMD64"},
              tensorflow={"distributions": {"tensorflow-intel": "2.15.1"}, "cuda_build": False,
                          "version": "2.15.1"},
              python={"version": "3.11.9"}, keras=REFERENCE["keras"]),
        ["not a CUDA build", "WSL2"]),
    "cuda_build_without_cuda_libraries": (
        _info(gpus=[]), ["NVIDIA A100", "sees no GPU", "CPU", "bireal_larq[gpu]"]),
    "numpy2": (_info(packages={"numpy": "2.1.3"}, bireal_larq_import="StackError: numpy"),
               ["numpy 2.1.3", "numpy < 2", "pip install 'numpy<2'"]),
    "tf216": (_info(tensorflow={"version": "2.16.2"}, packages={"tf-keras": "2.16.0"}),
              ["TensorFlow 2.16.2", "outside the supported versions", "2.18-2.21", "2.15.1"]),
    "tf217": (_info(tensorflow={"version": "2.17.1"}, packages={"tf-keras": "2.17.0"}),
              ["TensorFlow 2.17.1", "outside the supported versions"]),
    "tf3": (_info(tensorflow={"version": "3.0.0"}), ["outside the supported", "TensorFlow 3.0.0"]),
    "tf214": (_info(tensorflow={"version": "2.14.1"}, keras={"source": "keras",
                                                             "version": "2.14.0"}),
              ["TensorFlow 2.14.1", "outside the supported versions"]),
    "keras3": (_info(keras={"major": 3, "source": "keras", "version": "3.11.3"},
                     environment={"TF_USE_LEGACY_KERAS": "0"},
                     bireal_larq_import="StackError: TF_USE_LEGACY_KERAS='0' asks for Keras 3"),
               ["Keras 3.11.3", "TF_USE_LEGACY_KERAS='0'", "larq", "cannot be imported",
                "set it to 1"]),
    "tf_keras_missing": (
        _info(packages={"tf-keras": None}, bireal_larq_import="StackError: needs tf-keras",
              keras={"major": None, "source": None, "version": None,
                     "error": "ImportError: Keras cannot be imported."}),
        ["tf-keras is not installed", "TensorFlow 2.21.0", "pip install 'tf-keras==2.21.*'"]),
    "tf_keras_of_another_minor": (
        _info(packages={"tf-keras": "2.20.0"}),
        ["tf-keras 2.20.0", "TensorFlow 2.21.0", "pip install 'tf-keras==2.21.*'"]),
    "python313": (_info(python={"version": "3.13.1"}, packages={"larq-compute-engine": None}),
                  ["Python 3.13.1", "3.10-3.12", "Python 3.12"]),
    "python39": (_info(python={"version": "3.9.18"}), ["Python 3.9.18", "3.10-3.12"]),
    "lce_missing_on_linux_x86_64": (
        _info(packages={"larq-compute-engine": None}),
        ["larq-compute-engine is not installed", "export", "pip install larq-compute-engine"]),
    "larq_missing": (_info(packages={"larq": None}, bireal_larq_import="ModuleNotFoundError"),
                     ["larq is not installed", "larq==0.14.0"]),
    "no_tensorflow": (
        _cpu_only(tensorflow={"version": None, "distributions": {}, "cuda_build": None,
                              "import_error": "ModuleNotFoundError: No module named 'tensorflow'"},
                  keras={"major": None, "source": None, "version": None}),
        ["TensorFlow is not installed", "pip install 'tensorflow==2.21.*'"]),
    "tensorflow_not_importable": (
        _cpu_only(tensorflow={"import_error": "ImportError: numpy.core.multiarray failed"}),
        ["TensorFlow 2.21.0 cannot be imported", "numpy.core.multiarray"]),
    "some_other_import_error": (
        _info(bireal_larq_import="ImportError: cannot import name 'x' from 'larq'"),
        ["bireal_larq cannot be imported", "cannot import name 'x'"]),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_problem_is_one_warning_saying_what_to_do(name):
    info, words = CASES[name]
    found = doctor.warnings(info)
    assert len([text for text in found if words[0] in text]) == 1, found
    for word in words:
        assert word in "\n".join(found), (word, found)
    lines = doctor.report(info)
    assert lines[-len(found) - 1] == f"{len(found)} problem(s):"
    assert lines[-len(found):] == [f"  WARNING: {text}" for text in found]


def test_tensorflow_cpu_on_a_gpu_machine_is_one_warning_not_two():
    (text,) = doctor.warnings(CASES["tensorflow_cpu_with_driver"][0])
    assert text.startswith("tensorflow-cpu 2.21.0 is installed") and text.endswith(".")


def test_a_blackwell_gpu_on_tf215_gets_both_gpu_warnings():
    found = doctor.warnings(_info(REFERENCE, gpus=[B200]))
    assert len(found) == 2 and "#60739" in found[0] and "Blackwell" in found[1]
    assert len(doctor.warnings(H100_ON_215)) == 1


def test_tensorflow_built_for_numpy1_is_not_imported_next_to_numpy2():
    assert doctor._import_tensorflow({"tensorflow": "2.15.1"}, "2.1.3") == (
        None, "not imported: TensorFlow 2.15.1 needs numpy < 2")


OLD_SMI = """#!/bin/sh
case "$1" in *compute_cap*) echo 'Field "compute_cap" is not a valid field to query.'; exit 2;; esac
echo "Tesla V100-SXM2-16GB, 470.57.02"
"""
NEW_SMI = """#!/bin/sh
echo "NVIDIA H100 80GB HBM3, 550.54.15, 9.0"
echo "NVIDIA H100 80GB HBM3, 550.54.15, 9.0"
"""


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for nvidia-smi")
def test_the_nvidia_driver_is_found_by_its_version_file_or_nvidia_smi(tmp_path, monkeypatch):
    proc = tmp_path / "version"
    monkeypatch.setattr(doctor, "_NVIDIA_VERSION_FILE", str(proc))
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert doctor._nvidia() == NO_DRIVER
    proc.write_text("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  "
                    "Release Build  (dvs-builder@U16-I3-B03-4-3)  Fri Aug 16 21:42:42 UTC 2024\n")
    assert doctor._nvidia() == {**NO_DRIVER, "driver": True, "driver_version": "560.35.03"}
    proc.unlink()
    smi = tmp_path / "nvidia-smi"
    monkeypatch.setattr(doctor.shutil, "which", lambda name: str(smi))
    for script, gpu, version in ((NEW_SMI, {"name": "NVIDIA H100 80GB HBM3",
                                            "compute_capability": [9, 0]}, "550.54.15"),
                                 (OLD_SMI, {"name": "Tesla V100-SXM2-16GB",
                                            "compute_capability": None}, "470.57.02")):
        smi.write_text(script)
        smi.chmod(0o755)
        found = doctor._nvidia()
        assert found["driver"] and found["driver_version"] == version and found["error"] is None
        assert found["gpus"][0] == gpu
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate "
                   "with the NVIDIA driver.'\nexit 9\n")
    found = doctor._nvidia()
    assert not found["driver"] and found["error"].startswith("nvidia-smi: NVIDIA-SMI has failed")


def test_a_keras3_process_names_the_cause_not_the_import_error():
    found = doctor.warnings(CASES["keras3"][0])
    assert len(found) == 1 and not found[0].startswith("bireal_larq cannot be imported")


def test_lce_is_expected_only_where_it_has_wheels():
    aarch64 = _info(platform={"machine": "aarch64"}, packages={"larq-compute-engine": None})
    assert doctor.warnings(aarch64) == []
    assert f"larq-compute-engine   {doctor.NO_LCE}" in "\n".join(doctor.report(aarch64))
    for system, machine in (("linux", "x86_64"), ("darwin", "arm64"), ("win32", "AMD64")):
        assert doctor.lce_has_wheels(_info(platform={"system": system, "machine": machine}))
    assert not doctor.lce_has_wheels(_info(python={"version": "3.13.0"}))
    assert not doctor.lce_has_wheels(_info(python={"implementation": "PyPy"}))


@pytest.mark.parametrize("info, usable, words", [
    (_info(), True, "mixed_float16"),
    (_info(gpus=[T4]), True, "mixed_float16"),
    (_info(gpus=[P100]), False, "below 7.0"),
    (_cpu_only(tpus=["/device:TPU:0"]), True, "mixed_bfloat16"),
    (_cpu_only(), False, "bfloat16 only, no speed-up"),
])
def test_mixed_precision_needs_tensor_cores_or_a_tpu(info, usable, words):
    precision = doctor.mixed_precision(info)
    assert precision["usable"] is usable
    line = next(line for line in doctor.report(info) if "Mixed precision" in line)
    assert words in line and line.split()[2].startswith("yes" if usable else "no")


def test_the_report_names_the_keras_and_the_devices():
    text = "\n".join(doctor.report(_info(gpus=[H100])))
    assert "2.21.0 (Keras 2 via tf-keras)" in text
    assert "NVIDIA H100 80GB HBM3, compute capability 9.0" in text
    assert "CUDA 12.5.1, cuDNN 9" in text and "compute_90" in text
    assert "570.86.15" in text and "XLA (jit_compile)     usable" in text
    reference = "\n".join(doctor.report(_info(REFERENCE)))
    assert "2.15.0 (Keras 2 built into TensorFlow 2.15.1)" in reference
    keras3 = "\n".join(doctor.report(CASES["keras3"][0]))
    assert "3.11.3 (Keras 3, from the 'keras' package)" in keras3


def test_a_json_round_trip_keeps_the_verdict():
    for info, _ in CASES.values():
        again = json.loads(json.dumps(info))
        assert doctor.warnings(again) == doctor.warnings(info)
        assert doctor.report(again) == doctor.report(info)


def test_collect_reports_this_machine():
    info = doctor.collect()
    assert json.loads(json.dumps(info)) == info  # plain JSON types only
    version = importlib.metadata.version
    import tensorflow as tf

    assert info["tensorflow"]["version"] == tf.__version__ == version("tensorflow")
    assert info["tensorflow"]["distributions"] == {"tensorflow": version("tensorflow")}
    assert info["tensorflow"]["cuda_build"] is tf.test.is_built_with_cuda()
    for name in doctor.PACKAGES:
        assert info["packages"][name] == version(name), name
    assert info["python"]["version"] == platform.python_version()
    assert info["keras"] == {"major": 2, "source": "tf-keras", "version": version("tf-keras"),
                             "error": None}
    assert info["bireal_larq_import"] is None
    assert info["cpus"]["count"] == os.cpu_count()
    assert info["xla"] == {"usable": True, "error": None}
    assert info["gpus"] == [] and info["tpus"] == []  # the test machines have no accelerator
    assert doctor.warnings(info) == []


def _doctor(*args: str, **environ: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}  # set in pytest
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **environ)
    return subprocess.run([sys.executable, "-m", "bireal_larq.doctor", *args],
                          capture_output=True, text=True, timeout=120, env=env)


def test_the_cli_prints_the_versions_and_exits_0():
    done = _doctor()
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    version = importlib.metadata.version
    for name in ("tensorflow", "tf-keras", "larq", "larq-compute-engine", "tensorflow-datasets",
                 "numpy"):
        assert version(name) in done.stdout, name
    assert f"Python                {platform.python_version()} (CPython" in done.stdout
    assert done.stdout.rstrip().endswith("No problems found.")


def test_the_cli_prints_json():
    done = _doctor("--json")
    assert done.returncode == 0, done.stderr
    info = json.loads(done.stdout)
    assert info["warnings"] == []
    assert info["tensorflow"]["version"] == importlib.metadata.version("tensorflow")
    assert info["keras"]["source"] == "tf-keras"


def test_the_cli_refuses_a_stray_argument():
    done = _doctor("extra")
    assert done.returncode == 1 and "Unexpected argument(s) ['extra']" in done.stderr


# The next two run where `import bireal_larq` itself fails: bireal_larq/__init__.py must leave
# its stack check to the doctor when the process is `python -m bireal_larq.doctor`.


def test_the_cli_reports_keras3_instead_of_failing():
    done = _doctor(TF_USE_LEGACY_KERAS="0")
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert done.returncode == 1, done.stdout
    assert "WARNING: tf.keras is Keras 3" in done.stdout
    assert "TF_USE_LEGACY_KERAS='0'" in done.stdout


def test_the_cli_runs_on_a_bare_python(tmp_path):
    # -S: no site-packages (no TensorFlow, absl-py, numpy); bireal_larq from the source tree.
    done = subprocess.run([sys.executable, "-S", "-m", "bireal_larq.doctor"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path,
                          env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": ROOT})
    assert "Traceback" not in done.stdout + done.stderr, done.stderr[-3000:]
    assert done.returncode == 1
    assert "WARNING: TensorFlow is not installed" in done.stdout
    assert "Keras (tf.keras)      unknown" in done.stdout
