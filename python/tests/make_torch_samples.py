#!/usr/bin/python3
"""Independent truth for the C++ checkpoint and .npy readers (io/torch_checkpoint_test.cc, io/npy_test.cc).

    make_torch_samples.py OUTDIR [--fixtures DIR]  write checkpoints with torch.save, each tensor as .npy, a manifest
    make_torch_samples.py --check-npy DIR          verify .npy files the C++ writer produced (exit status 1 if not)

manifest.tsv, one record per line, tab-separated:
    T  checkpoint  name  dtype  shape(comma-separated)  npy  f32.npy|-  i64.npy|-
         a tensor, its NumPy copy, and torch's own conversion to float32 / int64 ("-" where that is the identity)
    S  checkpoint  name  text      a scalar, as Python prints it
    D  checkpoint  name            an entry expected in state_dict()
Paths are relative to OUTDIR unless outside it. Names are the dotted paths of dict keys / list indices from the root;
tensors inside other objects are not listed.
"""
import argparse
import collections
import os
import pathlib
import sys
import zipfile

import numpy as np

# Closed-form .npy contents shared with io/npy_test.cc: element k of the (2, 3, 4) array.
NPY_DTYPES = ["<f4", "<f8", "<f2", "<i8", "<i4", "<i2", "|i1", "|u1", "|b1"]


def npy_value(descr, k):
    kind = descr[1]
    if kind == "f":
        return k * 0.25 - 2.0
    if kind == "i":
        return k * 5 - 60
    if kind == "u":
        return k * 10
    return k % 3 == 0


def npy_expected(descr):
    vals = [npy_value(descr, k) for k in range(24)]
    return np.array(vals, dtype=np.dtype(descr)).reshape(2, 3, 4)


def npy_name(descr):
    return descr[1:] + ".npy"


def check_npy(folder):
    bad = []
    cases = {npy_name(d): npy_expected(d) for d in NPY_DTYPES}
    cases["scalar_f8.npy"] = np.array(2.5, dtype="<f8")
    cases["vec_i4.npy"] = np.arange(5, dtype="<i4")
    cases["empty_f4.npy"] = np.zeros((0, 3), dtype="<f4")
    for name, want in cases.items():
        path = os.path.join(folder, name)
        try:
            got = np.load(path, allow_pickle=False)
        except Exception as e:  # report every file, not just the first
            bad.append(f"{name}: numpy cannot load it: {e}")
            continue
        if got.dtype != want.dtype or got.shape != want.shape or got.tobytes() != want.tobytes():
            bad.append(f"{name}: got {got.dtype} {got.shape}, want {want.dtype} {want.shape} (or values differ)")
    for b in bad:
        print("check-npy:", b, file=sys.stderr)
    return 1 if bad else 0


def write_npy_samples(folder):
    os.makedirs(folder, exist_ok=True)
    for d in NPY_DTYPES:
        np.save(os.path.join(folder, npy_name(d)), npy_expected(d))
    arr = npy_expected("<f4")
    for version in [(2, 0), (3, 0)]:
        with open(os.path.join(folder, f"f4_v{version[0]}.npy"), "wb") as f:
            np.lib.format.write_array(f, arr, version=version)
    np.save(os.path.join(folder, "fortran.npy"), np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
    np.save(os.path.join(folder, "fortran3.npy"), np.asfortranarray(np.arange(24, dtype="<i8").reshape(2, 3, 4)))
    np.save(os.path.join(folder, "bigendian.npy"), np.arange(6, dtype=">f4"))
    np.save(os.path.join(folder, "complex.npy"), np.arange(6, dtype="<c8"))
    np.save(os.path.join(folder, "scalar_f8.npy"), np.array(2.5, dtype="<f8"))


# ---- checkpoints ----

def c_order(a):
    """A C-ordered copy that keeps 0-d arrays 0-d (np.ascontiguousarray would make them 1-d)."""
    return np.array(a, order="C", copy=True)


def key_text(k):
    if k is None or type(k) in (bool, int, str):
        return str(k)
    if type(k) is float:
        return repr(k)
    return None


def flatten(obj, name, tensors, scalars):
    """The naming rule: dict keys and list/tuple indices joined by dots; other objects are opaque."""
    import torch

    def join(component):
        return component if name == "" else name + "." + component

    if isinstance(obj, torch.Tensor):
        tensors[name] = obj
    elif obj is None or type(obj) in (bool, int, str):
        scalars[name] = str(obj)
    elif type(obj) is float:
        scalars[name] = repr(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            kt = key_text(k)
            if kt is not None:
                flatten(v, join(kt), tensors, scalars)
    elif isinstance(obj, list) or type(obj) in (tuple, torch.Size):
        for i, v in enumerate(obj):
            flatten(v, join(str(i)), tensors, scalars)


class Manifest:
    def __init__(self, outdir):
        self.outdir = outdir
        self.lines = []
        self.count = 0

    def rel(self, path):
        """Paths inside OUTDIR are written relative to it, so the folder can be moved once complete."""
        path = os.path.abspath(path)
        out = os.path.abspath(self.outdir)
        return os.path.relpath(path, out) if path.startswith(out + os.sep) else path

    def add_checkpoint(self, path, obj):
        import torch

        tensors, scalars = {}, {}
        flatten(obj, "", tensors, scalars)
        path = self.rel(path)
        npydir = os.path.join(self.outdir, "npy")
        os.makedirs(npydir, exist_ok=True)
        for name, t in tensors.items():
            t = t.detach()
            self.count += 1
            base = os.path.join(npydir, f"{self.count:05d}")
            if t.dtype == torch.bfloat16:  # NumPy has no bfloat16: its float32 values are exact
                main = t.float().numpy()
            else:
                main = t.numpy()
            np.save(base + ".npy", c_order(main))
            f32 = i64 = "-"
            # torch's conversions: the truth for RawTensor::to_float / to_int64 (skipped where they are the identity).
            if t.is_floating_point() and t.dtype != torch.float32:
                f32 = base + ".f32.npy"
                np.save(f32, c_order(t.float().numpy()))
            elif not t.is_floating_point() and t.dtype != torch.int64:
                i64 = base + ".i64.npy"
                np.save(i64, c_order(t.to(torch.int64).numpy()))
            dtype = str(t.dtype).replace("torch.", "")
            shape = ",".join(str(d) for d in t.shape)
            f32, i64 = [x if x == "-" else self.rel(x) for x in (f32, i64)]
            self.lines.append("\t".join(["T", path, name, dtype, shape, self.rel(base + ".npy"), f32, i64]))
        for name, text in scalars.items():
            assert "\t" not in text and "\n" not in text, name
            self.lines.append("\t".join(["S", path, name, text]))
        if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
            sd = [n[len("state_dict."):] for n in tensors if n.startswith("state_dict.")]
        else:
            sd = [key_text(k) for k, v in obj.items() if isinstance(v, torch.Tensor)] if isinstance(obj, dict) else []
        for n in sd:
            self.lines.append("\t".join(["D", path, n]))

    def write(self):
        with open(os.path.join(self.outdir, "manifest.tsv"), "w", encoding="utf-8") as f:
            f.write("\n".join(self.lines) + "\n")


class Custom:
    """A class the C++ reader cannot know; it holds a tensor that must not show up."""

    def __init__(self):
        import torch

        self.weights = torch.ones(3)
        self.label = "custom"


class AttrDict(dict):
    pass


class Items(list):
    pass


def basic_tensors(torch):
    g = torch.Generator().manual_seed(1234)
    specials = [0.0, -0.0, 1.0, -2.5, 65504.0, 6.0e-8, 3.0e-5, 1e-5, float("inf"), float("-inf"), float("nan"), 1 / 3]
    shared = torch.arange(24, dtype=torch.float32)
    base = torch.arange(40.0).reshape(5, 8)
    return {
        "f32": torch.randn(3, 4, generator=g),
        "f16": torch.tensor(specials, dtype=torch.float16),
        "bf16": torch.tensor(specials + [1e30, -1e-30, 3.14159], dtype=torch.bfloat16),
        "f64": torch.randn(2, 3, generator=g, dtype=torch.float64),
        "i64": torch.tensor([0, -1, 2**40, -(2**62), 2**63 - 1, -(2**63)], dtype=torch.int64),
        "i32": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        "i16": torch.tensor([-32768, -1, 0, 1, 32767], dtype=torch.int16),
        "i8": torch.tensor([-128, -5, 0, 7, 127], dtype=torch.int8),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([[True, False, True], [False, False, True]]),
        "transposed": torch.randn(4, 5, generator=g).t(),
        "view_offset": base[2:4, 3:7],
        "shared_a": shared.view(4, 6),
        "shared_b": shared[6:18].view(3, 4),
        "stepped": torch.randn(3, 10, generator=g)[:, ::3],
        "permuted": torch.randn(2, 3, 4, generator=g).permute(2, 0, 1),
        "expanded": torch.randn(3, 1, generator=g).expand(3, 5),
        "half_t": torch.randn(3, 5, generator=g).half().t(),
        "scalar0d": torch.tensor(3.25),
        "empty": torch.zeros(0, 3),
        "param": torch.nn.Parameter(torch.randn(2, 2, generator=g)),
    }


def make_checkpoints(outdir, manifest):
    import argparse as ap
    import torch

    def save(name, obj, **kw):
        path = os.path.join(outdir, name)
        torch.save(obj, path, **kw)
        manifest.add_checkpoint(path, obj)
        return path

    basic = basic_tensors(torch)
    p2 = save("basic_p2.pt", basic)
    save("basic_p4.pt", basic, pickle_protocol=4)
    save("basic_p5.pt", basic, pickle_protocol=5)

    # The same archive recompressed with deflate: the reader must not assume stored entries.
    deflated = os.path.join(outdir, "basic_deflate.pt")
    with zipfile.ZipFile(p2) as src, zipfile.ZipFile(deflated, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            dst.writestr(info.filename, src.read(info.filename))
    manifest.add_checkpoint(deflated, basic)

    g = torch.Generator().manual_seed(99)
    r = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    nested = {
        "nested": {
            "list": [r(2), (r(3), {"deep": r(2, 2)}), [[r(1)]]],
            "od": collections.OrderedDict([("a", r(4)), ("b", [r(2, 3), 5, "text"])]),
            "items": Items([r(2), 7]),
        },
        "top": r(5),
        "count": 3,
    }
    save("nested.pt", nested)

    model = torch.nn.Sequential(
        torch.nn.utils.weight_norm(torch.nn.Conv1d(2, 4, 3)),
        torch.nn.BatchNorm1d(4),
        torch.nn.LSTM(4, 3, num_layers=2),
    )
    sd = model.state_dict()
    save("plain_state.pt", sd)

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model[0](torch.randn(1, 2, 8)).sum().backward()
    opt.step()
    hp = AttrDict(
        sample_rate=24000,
        lr=2e-4,
        tiny=1e-20,
        huge=1.5e300,
        whole=3.0,
        flag=True,
        nothing=None,
        name="wavtok ✓",
        neg=-5,
        big=2**100,
        negbig=-(2**70),
        path=pathlib.PosixPath("/tmp/some/where"),
        ns=ap.Namespace(a=1, b="x"),
        np_scalar=np.float32(1.5),
        np_float64=np.float64(2.5),
        np_int=np.int64(3),
        custom=Custom(),
        aset={1, 2},
        frozen=frozenset([3]),
        raw=b"abc",
        device=torch.device("cpu"),
        dtype=torch.float16,
        size=torch.Size([2, 3]),
        counts=collections.defaultdict(int, {"k": 4}),
        by_int={0: "zero", 7: [1.25, False]},
    )
    lightning = {
        "epoch": 7,
        "global_step": 1234,
        "pytorch-lightning_version": "1.8.6",
        "state_dict": collections.OrderedDict((k, v) for k, v in sd.items()),
        "loops": {"fit_loop": {"epoch_progress": {"total": {"ready": 8, "completed": 7}}}},
        "callbacks": {"ModelCheckpoint{'monitor': 'val_loss'}": {"best_model_score": torch.tensor(0.25)}},
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [{"last_epoch": 7, "base_lrs": [1e-3]}],
        "hparams_name": "kwargs",
        "hyper_parameters": hp,
    }
    save("lightning.ckpt", lightning)
    save("lightning_p4.ckpt", lightning, pickle_protocol=4)

    # The pre-1.6 format (not a zip): must be refused with a clear error, not misread.
    torch.save({"x": torch.ones(2)}, os.path.join(outdir, "legacy.pt"), _use_new_zipfile_serialization=False)


def dump_fixture(path, manifest):
    import torch

    obj = torch.load(path, map_location="cpu")
    manifest.add_checkpoint(os.path.abspath(path), obj)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?")
    ap.add_argument("--fixtures", help="also dump every tensor of the fixture checkpoints in this folder")
    ap.add_argument("--check-npy", metavar="DIR")
    args = ap.parse_args()
    if args.check_npy:
        return check_npy(args.check_npy)
    if not args.outdir:
        ap.error("OUTDIR is required")

    import torch

    torch.set_num_threads(1)
    torch.manual_seed(0)
    os.makedirs(args.outdir, exist_ok=True)
    write_npy_samples(os.path.join(args.outdir, "npy_samples"))
    manifest = Manifest(args.outdir)
    make_checkpoints(args.outdir, manifest)
    if args.fixtures:
        for rel in ["wavtokenizer-75/model.ckpt", "encodec-24k/model.th"]:
            dump_fixture(os.path.join(args.fixtures, rel), manifest)
    manifest.write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
