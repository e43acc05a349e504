"""RILQ adapters (python/rilq.py, docs/PTQ.md "Low-rank adapters") on the random-weight fixture model:
the fit lowers the model-wise loss it was fitted on, the engine running the adapters equals the PyTorch emulation
(and the engine's own decode moves toward float), the written file round-trips, and bad input is refused; both on
W4 weights stored as s8 codes and on packed group-wise low-bit weights (a w4-slim-like recipe: every dense decoder
layer W4A8 at 3.2 average code bits, two weight-only, one of them adapted; adapters on the low-bit Linear layers and
on the low-bit convolutions backbone.embed and pos_net.N.conv1/conv2).

Run by CTest as python_rilq (PYTHONPATH=build/python for the engine module, WAVTOK_CLI = the wavtok binary)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
import rilq  # noqa: E402
from losses import MelSpectrogram, safe_log  # noqa: E402
from wavtok_ref import load_wavtokenizer, read_wav  # noqa: E402
from wtk_io import WtkError, WtkFile  # noqa: E402
from wtk_quant import quantized_decoder  # noqa: E402

FIX = os.path.join(HERE, "..", "..", "..", "shared", "fixtures", "wavtokenizer-75")
CLI = os.environ.get("WAVTOK_CLI", os.path.join(HERE, "..", "..", "build", "wavtok"))
RECIPE = """rules:
  - match: 'pwconv1$'
    transform: repq
    weight_bits: 4
    weight_range: omse
  - match: 'pwconv2$'
    weight_bits: 4
    weight_range: omse
  - match: '^head\\.out$'
"""

# Packed low-bit weights (feature bit 2), as configs/quant/w4-slim.yaml on the decoder, but with two weight-only
# layers (float activations on codes * scale): the attention's proj_out (a conv) and head.out (a Linear, adapted).
RECIPE_PACKED = """rules:
  - match: 'convnext\\.\\d+\\.pwconv1$'
    transform: repq
    ln_fold: true
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: 'convnext\\.\\d+\\.pwconv2$'
    transform: sqb
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: 'pos_net\\.\\d+\\.(conv1|conv2)$'
    transform: sqb
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: 'pos_net\\.2\\.(q|k|v)$'
    transform: sqb
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: 'pos_net\\.2\\.proj_out$'
    weight_only: true
    group_size: 32
    avg_bits: 4
  - match: '^backbone\\.embed$'
    act_range: minmax
    group_size: 64
    avg_bits: 3.2
  - match: '^head\\.out$'
    weight_only: true
    group_size: 32
    avg_bits: 4
"""


def make_setup(d, recipe, rank, steps, lr, layers="low"):
    calib = d / "calib"
    calib.mkdir()
    os.symlink(os.path.abspath(os.path.join(FIX, "speech.input.wav")), calib / "speech.wav")
    (d / "recipe.yaml").write_text(recipe)
    q = d / "q.wtk"
    subprocess.run([CLI, "quantize", os.path.join(FIX, "model.ckpt"), "--config", os.path.join(FIX, "config.yaml"),
                    "--calib", str(calib), "--recipe", str(d / "recipe.yaml"), "-o", str(q), "-q", "-t", "1"],
                   check=True)
    teacher = load_wavtokenizer(os.path.join(FIX, "model.ckpt"), os.path.join(FIX, "config.yaml"))
    # One segment: the whole clip (the fixture's pos_net GroupNorm normalises over the whole input, so pieces of
    # a clip decode differently from the clip).
    segs = rilq.calib_segments(teacher, str(calib), 1, 10.0, 300)
    qf = WtkFile.read(str(q))
    adapters, summary = rilq.fit(teacher, qf, None, rank=rank, steps=steps, lr=lr, segments=segs, batch=1,
                                 eval_every=10, layers=layers)
    out = d / "q_rilq.wtk"
    rilq.attach(WtkFile.read(str(q)), adapters).write(str(out))
    x, sr = read_wav(os.path.join(FIX, "speech.input.wav"))
    feats, _, _ = teacher.encode(torch.from_numpy(x.astype(np.float32)))
    return dict(dir=d, q=q, out=out, teacher=teacher, summary=summary, adapters=adapters, feats=feats, calib=calib)


# The decoder's convolutions the engine adapts (backbone.embed, the pos_net ResnetBlock convs) weight-only at packed
# low bits, everything else float: the emulation of these layers is float arithmetic, with no u8 rounding ties.
RECIPE_CONVS_WONLY = """rules:
  - match: 'pos_net\\.\\d+\\.(conv1|conv2)$'
    weight_only: true
    group_size: 64
    avg_bits: 3.2
  - match: '^backbone\\.embed$'
    weight_only: true
    group_size: 64
    avg_bits: 3.2
"""


@pytest.fixture(scope="module")
def setup_packed(tmp_path_factory):
    """Adapters on the low-bit Linear layers only (--layers low-linear)."""
    torch.set_num_threads(1)
    return make_setup(tmp_path_factory.mktemp("rilq_packed"), RECIPE_PACKED, rank=4, steps=30, lr=2e-3,
                      layers="low-linear")


@pytest.fixture(scope="module")
def setup_convs(tmp_path_factory):
    """The same packed model and fit with the default --layers low: the low-bit convs get adapters too."""
    torch.set_num_threads(1)
    return make_setup(tmp_path_factory.mktemp("rilq_convs"), RECIPE_PACKED, rank=4, steps=30, lr=2e-3)


@pytest.fixture(scope="module")
def setup_convs_wonly(tmp_path_factory):
    torch.set_num_threads(1)
    return make_setup(tmp_path_factory.mktemp("rilq_convs_wonly"), RECIPE_CONVS_WONLY, rank=4, steps=30, lr=2e-3)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    torch.set_num_threads(1)
    return make_setup(tmp_path_factory.mktemp("rilq"), RECIPE, rank=4, steps=30, lr=2e-3)


def test_fit_lowers_modelwise_loss(setup):
    s = setup["summary"]
    print(s)
    assert s["layers"] == [f"backbone.convnext.{i}.pwconv{j}" for i in range(4) for j in (1, 2)]
    assert s["loss_fitted"] <= s["loss_init"]
    assert s["loss_fitted"] < 0.92 * s["loss_without"], s  # measured 0.88 (30 steps)


def engine_decode(path, feats):
    import wavtok
    return wavtok.Model(str(path), threads=1).decode_latents(feats.numpy())


def test_engine_equals_reference_with_adapters(setup):
    pytest.importorskip("wavtok")
    teacher, feats = setup["teacher"], setup["feats"]
    with torch.no_grad():
        ref_a = quantized_decoder(teacher, WtkFile.read(str(setup["out"]))).decode(feats)[0].numpy()
        ref_q = quantized_decoder(teacher, WtkFile.read(str(setup["q"]))).decode(feats)[0].numpy()
        ref_f = teacher.decode(feats)[0].numpy()
    eng_a = engine_decode(setup["out"], feats).reshape(-1)
    eng_q = engine_decode(setup["q"], feats).reshape(-1)
    n = min(len(ref_a), len(eng_a))

    def rel(a, b):
        return float(np.linalg.norm(a[:n] - b[:n]) / np.linalg.norm(b[:n]))

    print(f"engine vs reference: adapters {rel(eng_a, ref_a):.2e}, none {rel(eng_q, ref_q):.2e}; "
          f"adapters' effect {rel(ref_a, ref_q):.2e}")
    assert rel(eng_q, ref_q) < 2e-3  # the emulation is the engine's arithmetic (rare rounding ties aside)
    assert rel(eng_a, ref_a) < 2e-3
    assert rel(ref_a, ref_q) > 20 * rel(eng_a, ref_a)  # the adapters' effect is far above that tolerance
    # The engine's decode with adapters is closer to float on the loss's mel term.
    mel = MelSpectrogram(24000, 1024, 256, 100)

    def mel_l1(y):
        a = torch.from_numpy(np.ascontiguousarray(y[:n]))[None]
        return float((safe_log(mel(a)) - safe_log(mel(torch.from_numpy(ref_f[:n])[None]))).abs().mean())

    print(f"engine log-mel L1 vs float: without {mel_l1(eng_q):.4f}, with adapters {mel_l1(eng_a):.4f}")
    assert mel_l1(eng_a) < mel_l1(eng_q)


def test_file_round_trips(setup):
    f = WtkFile.read(str(setup["out"]))
    q = WtkFile.read(str(setup["q"]))
    assert f.version == 2 and f.features == 1 | 16 and q.features == 1
    for n, (a, b) in setup["adapters"].items():
        assert np.array_equal(f.array(n + ".lora_a"), a) and np.array_equal(f.array(n + ".lora_b"), b)
    for n, e in q.entries.items():  # everything else byte for byte
        assert f.entries[n] == e, n
    assert set(f.entries) - set(q.entries) == {n + t for n in setup["adapters"] for t in (".lora_a", ".lora_b")}


def test_bad_input_refused(setup):
    d = setup["dir"]
    run = lambda *a: subprocess.run([sys.executable, os.path.join(HERE, "..", "rilq.py"), *map(str, a)],
                                    capture_output=True, text=True)
    base = ["--float", os.path.join(FIX, "model.ckpt"), "--calib", setup["calib"], "-o", d / "x.wtk"]
    r = run(*base, "--quant", setup["q"], "--rank", 17)
    assert r.returncode == 2 and "--rank must be 1..16" in r.stderr
    r = run(*base, "--quant", setup["out"], "--steps", 1)
    assert r.returncode == 1 and "already has adapters" in r.stderr
    bad = d / "bad.wtk"
    bad.write_bytes(setup["q"].read_bytes()[:5000])
    r = run(*base, "--quant", bad, "--steps", 1)
    assert r.returncode == 1 and ("truncated" in r.stderr or "bad size" in r.stderr), r.stderr
    assert not (d / "x.wtk").exists()
    with pytest.raises(WtkError):
        rilq.fit(setup["teacher"], WtkFile.read(str(setup["q"])), None, rank=0, segments=setup["feats"][:, :, :50])
    assert run("--help").returncode == 0
    # adapters in a file whose header does not declare them (bit 4 cleared) are refused, as by the engine
    data = setup["out"].read_bytes()
    nobit = d / "nobit.wtk"
    nobit.write_bytes(data[:12] + (int.from_bytes(data[12:16], "little") & ~16).to_bytes(4, "little") + data[16:])
    with pytest.raises(WtkError, match="does not declare the low-rank feature"):
        WtkFile.read(str(nobit))


CONVS = ["backbone.embed"] + [f"backbone.pos_net.{i}.conv{j}" for i in (0, 1, 3, 4) for j in (1, 2)]
PWCONVS = [f"backbone.convnext.{i}.pwconv{j}" for i in range(4) for j in (1, 2)]


def test_packed_fit_lowers_modelwise_loss(setup_packed):
    s = setup_packed["summary"]
    print(s)
    # --layers low-linear: adapters on the low-bit Linear layers, W4A8 and weight-only
    assert s["layers"] == PWCONVS + ["head.out"]
    assert s["loss_fitted"] <= s["loss_init"]
    assert s["loss_fitted"] < 0.92 * s["loss_without"], s


def test_conv_adapters_fit_lowers_modelwise_loss(setup_convs, setup_packed):
    """--layers low (the default) adds the low-bit convs (embed, pos_net ResnetBlocks; not the attention's 1x1
    q/k/v/proj_out, which the engine runs as Linear layers without adapters): the fit lowers the model-wise loss, and
    ends below the Linear-only fit of the same model (same rank, steps, learning rate and segments)."""
    s = setup_convs["summary"]
    print(s, "Linear only:", setup_packed["summary"]["loss_fitted"])
    assert sorted(s["layers"]) == sorted(CONVS + PWCONVS + ["head.out"])
    qf = WtkFile.read(str(setup_convs["q"]))
    for n in CONVS:  # conv adapters: A [r, Cin, K], B [Cout, r]
        cout, cin, k = qf.codes(n + ".weight").shape
        a, b = setup_convs["adapters"][n]
        assert a.shape == (4, cin, k) and b.shape == (cout, 4) and k in (3, 7), n
    assert s["loss_fitted"] <= s["loss_init"]
    assert s["loss_fitted"] < 0.92 * s["loss_without"], s  # measured 1.57 -> 0.48 (30 steps)
    assert s["loss_fitted"] < setup_packed["summary"]["loss_fitted"]  # measured 0.48 vs 0.74


def rel_l2(a, b):
    n = min(len(a), len(b))
    return float(np.linalg.norm(a[:n] - b[:n]) / np.linalg.norm(b[:n]))


def test_conv_adapters_engine_equals_emulation_weight_only(setup_convs_wonly):
    """Adapters on weight-only low-bit convs (float arithmetic on code * scale, no u8 rounding ties): the engine
    equals the emulation with and without them, far below the adapters' effect; the fit lowered the loss."""
    pytest.importorskip("wavtok")
    s = setup_convs_wonly
    print(s["summary"])
    assert s["summary"]["layers"] == CONVS
    assert s["summary"]["loss_fitted"] < 0.92 * s["summary"]["loss_without"]
    with torch.no_grad():
        ref_a = quantized_decoder(s["teacher"], WtkFile.read(str(s["out"]))).decode(s["feats"])[0].numpy()
        ref_q = quantized_decoder(s["teacher"], WtkFile.read(str(s["q"]))).decode(s["feats"])[0].numpy()
    eng_a = engine_decode(s["out"], s["feats"]).reshape(-1)
    eng_q = engine_decode(s["q"], s["feats"]).reshape(-1)
    print(f"weight-only convs: engine vs emulation: adapters {rel_l2(eng_a, ref_a):.2e}, none "
          f"{rel_l2(eng_q, ref_q):.2e}; adapters' effect {rel_l2(ref_a, ref_q):.2e}")
    assert rel_l2(eng_q, ref_q) < 1e-5
    assert rel_l2(eng_a, ref_a) < 1e-5
    assert rel_l2(ref_a, ref_q) > 1000 * rel_l2(eng_a, ref_a)


def test_conv_adapters_engine_equals_emulation_w4a8(setup_convs):
    """The W4A8 decoder with adapters on its convs and Linear layers: the engine follows the emulation to within a
    small fraction of what the adapters change. Not to 2e-3 as without conv adapters: the float32 arithmetic of the
    adapters (oneDNN's summation order against torch's) moves the next layers' inputs by ~1e-7, and on this
    random-weight model a single u8 code that then rounds the other way in a pos_net conv moves the decoded audio by
    ~3e-2 (its GroupNorm spans the whole clip, the attention follows): measured 1.6e-2 here, against an effect of
    1.07, with one code differing at the first divergent layer; each adapted layer alone agrees with the emulation
    to 2e-7 on the same input, and the weight-only test above, which has no u8 codes, to 1.4e-6."""
    pytest.importorskip("wavtok")
    s = setup_convs
    with torch.no_grad():
        ref_a = quantized_decoder(s["teacher"], WtkFile.read(str(s["out"]))).decode(s["feats"])[0].numpy()
        ref_q = quantized_decoder(s["teacher"], WtkFile.read(str(s["q"]))).decode(s["feats"])[0].numpy()
    eng_a = engine_decode(s["out"], s["feats"]).reshape(-1)
    eng_q = engine_decode(s["q"], s["feats"]).reshape(-1)
    print(f"W4A8 with conv adapters: engine vs emulation: adapters {rel_l2(eng_a, ref_a):.2e}, none "
          f"{rel_l2(eng_q, ref_q):.2e}; adapters' effect {rel_l2(ref_a, ref_q):.2e}")
    assert rel_l2(eng_q, ref_q) < 2e-3
    assert rel_l2(ref_a, ref_q) > 20 * rel_l2(eng_a, ref_a)


def test_conv_adapters_refused(setup_convs):
    """Bad conv adapters are refused by the emulation, naming the file: a Linear's 2-D A on a conv, half an
    adapter, and an adapter on the attention's q (a 1x1 conv here, a Linear without adapters in the engine)."""
    d = setup_convs["dir"]
    a, b = setup_convs["adapters"]["backbone.pos_net.0.conv1"]
    cases = {"flat.wtk": ({"backbone.pos_net.0.conv1": (a[:, :, 0], b)}, "do not fit"),
             "on_q.wtk": ({"backbone.pos_net.2.q": (a[:, :, :1], b)}, "is not on a quantized Linear, backbone.embed")}
    for name, (adapters, what) in cases.items():
        path = d / name
        rilq.attach(WtkFile.read(str(setup_convs["q"])), adapters).write(str(path))
        with pytest.raises(WtkError, match=what) as e:
            quantized_decoder(setup_convs["teacher"], WtkFile.read(str(path)))
        assert name in str(e.value)
    half = WtkFile.read(str(setup_convs["q"]))
    half.set_f32("backbone.embed.lora_b", setup_convs["adapters"]["backbone.embed"][1])
    half.write(str(d / "half.wtk"))
    with pytest.raises(WtkError, match="backbone.embed has .lora_b without .lora_a"):
        quantized_decoder(setup_convs["teacher"], WtkFile.read(str(d / "half.wtk")))


def test_packed_engine_equals_emulation(setup_packed):
    """The emulation of the packed W4A8 decoder (and its weight-only proj_out) is the engine's arithmetic, with and
    without adapters."""
    pytest.importorskip("wavtok")
    teacher, feats = setup_packed["teacher"], setup_packed["feats"]
    qf = WtkFile.read(str(setup_packed["q"]))
    assert qf.features == 1 | 4 and qf.entries["backbone.pos_net.2.proj_out.weight"][0] == 3
    assert "backbone.pos_net.2.proj_out.act_quant" not in qf.entries
    with torch.no_grad():
        student = quantized_decoder(teacher, qf)
        # embed, pos_net convs, pwconvs, q/k/v in W4A8; proj_out and head.out weight-only (float activations)
        assert len(student.quant_layers) == 1 + 4 * 2 + 4 * 2 + 3 + 1 + 1
        assert sorted(n for n, q in student.quant_layers.items() if q.weight_only) == [
            "backbone.pos_net.2.proj_out", "head.out"]
        ref_q = student.decode(feats)[0].numpy()
        ref_a = quantized_decoder(teacher, WtkFile.read(str(setup_packed["out"]))).decode(feats)[0].numpy()
        ref_f = teacher.decode(feats)[0].numpy()
    eng_q = engine_decode(setup_packed["q"], feats).reshape(-1)
    eng_a = engine_decode(setup_packed["out"], feats).reshape(-1)
    n = min(len(ref_a), len(eng_a))

    def rel(a, b):
        return float(np.linalg.norm(a[:n] - b[:n]) / np.linalg.norm(b[:n]))

    print(f"packed: engine vs emulation: adapters {rel(eng_a, ref_a):.2e}, none {rel(eng_q, ref_q):.2e}; "
          f"adapters' effect {rel(ref_a, ref_q):.2e}; W4 vs float {rel(ref_q, ref_f):.2e}")
    assert rel(eng_q, ref_q) < 2e-3
    assert rel(eng_a, ref_a) < 2e-3
    assert rel(ref_a, ref_q) > 20 * rel(eng_a, ref_a)
    assert rel(ref_q, ref_f) > 20 * rel(eng_q, ref_q)  # the W4 damage itself is far above that tolerance


def test_packed_file_keeps_packed_weights(setup_packed):
    f = WtkFile.read(str(setup_packed["out"]))
    q = WtkFile.read(str(setup_packed["q"]))
    assert f.version == 2 and f.features == 1 | 4 | 16 and q.features == 1 | 4
    for n, e in q.entries.items():  # the packed weights and their group tables byte for byte, as everything else
        assert f.entries[n] == e, n
    assert set(f.entries) - set(q.entries) == {n + t for n in setup_packed["adapters"] for t in (".lora_a", ".lora_b")}
    assert f.tobytes() == setup_packed["out"].read_bytes()
