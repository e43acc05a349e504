"""PEP 517 build backend for the `wavtok` Python package, used by `pip install .` (pyproject.toml).

It needs nothing from the network (no setuptools, no wheel package): the extension is built by the project's
CMake build (target `wavtok_python`, in ./build unless WAVTOK_BUILD_DIR says otherwise, configured first if it is
not yet), which assembles the package in <build>/python/wavtok; this file only zips that folder into a wheel.
"""
import base64
import hashlib
import importlib.machinery
import os
import re
import subprocess
import sys
import sysconfig
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NAME = "wavtok"


def _version():
    with open(os.path.join(ROOT, "CMakeLists.txt")) as f:
        m = re.search(r"project\(wavtok\s+VERSION\s+([0-9.]+)", f.read())
    if not m:
        raise RuntimeError("wavtok: no project(wavtok VERSION ...) in CMakeLists.txt")
    return m.group(1)


def _build_dir():
    return os.path.abspath(os.environ.get("WAVTOK_BUILD_DIR") or os.path.join(ROOT, "build"))


def _run(cmd):
    print("wavtok build:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=sys.stderr)


def _build_extension():
    """Builds the package with CMake; returns <build>/python/wavtok."""
    build = _build_dir()
    cache = os.path.join(build, "CMakeCache.txt")
    if not os.path.exists(cache):
        _run(["cmake", "-S", ROOT, "-B", build, "-DCMAKE_BUILD_TYPE=Release", "-DPython_EXECUTABLE=" + sys.executable])
    else:
        with open(cache) as f:
            text = f.read()
        if re.search(r"^WAVTOK_SANITIZE:BOOL=ON$", text, re.M):
            raise RuntimeError("wavtok: " + build + " is a sanitizer build (no Python module); set WAVTOK_BUILD_DIR "
                               "to another folder")
    jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(os.cpu_count() or 1)
    _run(["cmake", "--build", build, "--target", "wavtok_python", "-j", jobs])
    pkg = os.path.join(build, "python", NAME)
    exts = [f for f in os.listdir(pkg) if f.startswith("_wavtok.") and f.endswith(".so")]
    ok = [f for f in exts if any(f == "_wavtok" + s for s in importlib.machinery.EXTENSION_SUFFIXES)]
    if not ok:
        raise RuntimeError("wavtok: %s holds %s, none built for this Python (%s, suffixes %s); configure %s for it "
                           "(-DPython_EXECUTABLE=%s) or set WAVTOK_BUILD_DIR"
                           % (pkg, exts or "no extension", sys.executable, importlib.machinery.EXTENSION_SUFFIXES,
                              build, sys.executable))
    return pkg, ok[0]


def _tag(ext_name):
    m = re.match(r"_wavtok\.cpython-(\d+)", ext_name)
    py = "cp" + (m.group(1) if m else "%d%d" % sys.version_info[:2])
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    return "%s-%s-%s" % (py, py, plat)


def _metadata(version):
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
            "Summary: Neural audio codec tokenizer (WavTokenizer, EnCodec RVQ) on CPU: Python bindings of the wavtok engine\n"
            "Requires-Python: >=3.8\nRequires-Dist: numpy\n" % (NAME, version))


class _Wheel:
    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.records = []

    def add(self, arcname, data):
        self.zip.writestr(arcname, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.records.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))

    def close(self, dist_info):
        record = dist_info + "/RECORD"
        self.zip.writestr(record, "\n".join(self.records + [record + ",,"]) + "\n")
        self.zip.close()


def _write_wheel(wheel_directory, files, tag):
    """files: (arcname, bytes) pairs of the package; returns the wheel's file name."""
    version = _version()
    dist_info = "%s-%s.dist-info" % (NAME, version)
    name = "%s-%s-%s.whl" % (NAME, version, tag)
    w = _Wheel(os.path.join(wheel_directory, name))
    for arcname, data in files:
        w.add(arcname, data)
    w.add(dist_info + "/METADATA", _metadata(version).encode())
    w.add(dist_info + "/WHEEL", ("Wheel-Version: 1.0\nGenerator: wavtok_build_backend\nRoot-Is-Purelib: false\n"
                                 "Tag: %s\n" % tag).encode())
    w.close(dist_info)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    pkg, ext = _build_extension()
    files = []
    for f in sorted(os.listdir(pkg)):
        if f == ext or f.endswith((".py", ".pyi")) or f == "py.typed":
            with open(os.path.join(pkg, f), "rb") as fh:
                files.append((NAME + "/" + f, fh.read()))
    return _write_wheel(wheel_directory, files, _tag(ext))


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """`pip install -e .`: a .pth file that puts <build>/python on sys.path (rebuild with scripts/build.sh)."""
    pkg, ext = _build_extension()
    return _write_wheel(wheel_directory, [("wavtok_build.pth", (os.path.dirname(pkg) + "\n").encode())], _tag(ext))
