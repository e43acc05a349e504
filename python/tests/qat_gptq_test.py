#!/usr/bin/env python3
"""GPTQ rounding of W4 weights (`qat.py train --w-init gptq`, docs/PTQ.md "W4 with GPTQ rounding") against closed
forms and brute force:
- two inputs with correlation r, unit step: the first weight rounds to nearest and its error e is carried onto the
  second as w1 + e r (the least-squares update), which then rounds; checked on a case where that changes its code;
- uncorrelated inputs (diagonal second moment): GPTQ is plain rounding to nearest;
- correlated random inputs, 6 weights per row: the codes equal GPTQ written the long way (explicit inverses of the
  free weights' second moment after each step), the output error is below rounding's and within 10 % of the best of
  all 3^6 codes within one step of rounding's, and every code is on the grid and within [-qmax, qmax];
- every recipe of configs/quant/qat parses (the GPTQ ones set w_init: gptq), an unknown key is refused;
- QConv1d.set_gptq_weight on a W4 conv in groups of 8: the weight lands on its grid (the fake-quant weight is the
  weight itself), the codes keep the group rule (m q, |q| <= 7), and the output error on held-out inputs is lower.

    /usr/bin/python3 python/tests/qat_gptq_test.py
"""
import itertools
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import qat  # noqa: E402


def out_err(d, h):
    d = d.double()
    return float(torch.einsum("oi,ij,oj->", d, h.double(), d))


def check_closed_form(failures):
    r = 0.9
    h = torch.tensor([[1.0, r], [r, 1.0]])
    w = torch.tensor([[0.4, 0.3]])
    q = qat.gptq_round(w, torch.ones_like(w), 7, h, damp=0.0, act_order=False)
    # w0 = 0.4 -> 0, error 0.4 carried: 0.3 + 0.4 * 0.9 = 0.66 -> 1
    if q.tolist() != [[0.0, 1.0]]:
        failures.append(f"closed form: codes {q.tolist()}, want [[0, 1]]")
    e_g, e_r = out_err(w - q, h), out_err(w, h)  # rounding to nearest gives [0, 0]
    print(f"closed form: GPTQ {q.tolist()} error {e_g:.3f} (want 0.146), rounding error {e_r:.3f} (want 0.466)")
    if abs(e_g - 0.146) > 1e-6 or abs(e_r - 0.466) > 1e-6:
        failures.append(f"closed form: errors {e_g}, {e_r}")


def check_diagonal(failures):
    torch.manual_seed(1)
    w = torch.randn(16, 40)
    step = torch.rand(16, 40) * 0.3 + 0.1
    h = torch.diag(torch.rand(40) + 0.5)
    q = qat.gptq_round(w, step, 7, h)
    rtn = torch.clamp(torch.round(w / step), -7, 7) * step
    if not torch.equal(q, rtn):
        failures.append(f"diagonal second moment: {int((q != rtn).sum())} codes differ from rounding to nearest")


def obs_reference(w, h, step, qmax, order):
    """GPTQ written the long way (optimal brain surgeon updates): round the next weight of `order`, then move every
    weight not yet rounded by -e [H_F^-1]_{:,j} / [H_F^-1]_jj, H_F the second moment over those still free."""
    w = w.copy()
    q = np.zeros_like(w)
    free = list(order)
    while free:
        j = free[0]
        hi = np.linalg.inv(h[np.ix_(free, free)])
        q[j] = np.clip(np.round(w[j] / step[j]), -qmax, qmax) * step[j]
        e = (w[j] - q[j]) / hi[0, 0]
        for t, k in enumerate(free):
            w[k] -= e * hi[t, 0]
        free = free[1:]
    return q


def check_brute_force(failures):
    rng = np.random.default_rng(1)
    n, rows = 6, 16
    a = rng.standard_normal((n, n)) * 0.5 + np.eye(n)
    x = rng.standard_normal((4000, n)) @ a  # correlated inputs
    h = x.T @ x / len(x)
    w = rng.standard_normal((rows, n)) * 0.4
    step = np.full_like(w, 0.5)
    qmax = 3
    q = qat.gptq_round(torch.from_numpy(w), torch.from_numpy(step), qmax, torch.from_numpy(h), damp=0.0).numpy()
    codes = q / step
    if not np.array_equal(codes, np.round(codes)) or np.abs(codes).max() > qmax:
        failures.append("brute force: GPTQ codes off the grid or out of range")
    order = np.argsort(-np.diag(h), kind="stable")  # act_order: largest input energy first
    ref = np.array([obs_reference(w[o], h, step[o], qmax, order) for o in range(rows)])
    if np.abs(ref - q).max() > 1e-9:
        failures.append(f"brute force: {int((np.abs(ref - q) > 1e-9).sum())} codes differ from the explicit updates")

    def err(d):
        return float(d @ h @ d)
    rtn = np.clip(np.round(w / step), -qmax, qmax)
    e_g = sum(err(w[o] - q[o]) for o in range(rows))
    e_r = sum(err(w[o] - rtn[o] * step[o]) for o in range(rows))
    e_b = sum(min(err(w[o] - np.clip(rtn[o] + np.array(d), -qmax, qmax) * step[o])
                  for d in itertools.product((-1, 0, 1), repeat=n)) for o in range(rows))
    print(f"brute force ({rows} rows of {n}): output error rounding {e_r:.4f}, GPTQ {e_g:.4f}, best of 3^{n} "
          f"{e_b:.4f}")  # measured 3.875, 2.431, 2.388
    if not e_g < 0.8 * e_r:
        failures.append(f"brute force: GPTQ {e_g:.4f} not below rounding {e_r:.4f}")
    if not e_g <= 1.1 * e_b:
        failures.append(f"brute force: GPTQ {e_g:.4f} more than 10 % above the best {e_b:.4f}")


def check_conv(failures):
    torch.manual_seed(7)
    conv = torch.nn.Conv1d(16, 12, 3)
    m = qat.QConv1d(conv, "g.conv", 4, 8)
    mix = torch.randn(16, 16) * 0.5 + torch.eye(16)

    def inputs(seed):
        g = torch.Generator().manual_seed(seed)
        return torch.einsum("dc,bdt->bct", mix, torch.randn(8, 16, 200, generator=g))

    def moment(x):
        cols = qat.im2col(x, 3, 1, 1)
        c = cols.permute(1, 0, 2).reshape(cols.shape[1], -1).double()
        return c @ c.T / c.shape[1]

    w0 = m.weight.detach().clone()
    sw, _ = m.scales()
    rtn = m.qweight(w0, sw).detach()
    e_rtn, e_gptq = m.set_gptq_weight(moment(inputs(1)))
    w = m.weight.detach()
    fq = m.qweight(w, sw).detach()
    if (fq - w).abs().max() > 1e-6 * float(w.abs().max()):
        failures.append("conv: the GPTQ weight is not on its grid (the fake-quant weight differs)")
    codes = m.wcodes(w, sw).to(torch.int64).reshape(12, -1)
    mult = m.wmult.to(torch.int64)
    if torch.any(codes % mult != 0) or (codes // mult).abs().max() > 7:
        failures.append("conv: GPTQ codes break the group rule m q, |q| <= 7")
    h_held = moment(inputs(2))
    d_r = (w0 - rtn).reshape(12, -1)
    d_g = (w0 - w).reshape(12, -1)
    held_r, held_g = out_err(d_r, h_held), out_err(d_g, h_held)
    print(f"conv: calibration output error {10 * np.log10(e_rtn):.2f} -> {10 * np.log10(e_gptq):.2f} dB, held-out "
          f"{10 * np.log10(held_g / held_r):+.2f} dB against rounding")
    if not e_gptq < e_rtn or not held_g < 0.8 * held_r:
        failures.append(f"conv: GPTQ not better than rounding ({e_gptq:.3e} vs {e_rtn:.3e}; held-out {held_g:.3e} "
                        f"vs {held_r:.3e})")


def check_recipes(failures):
    """Every QAT recipe of configs/quant/qat parses into the train options (an unknown key is an error), and the
    GPTQ ones ask for it."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "configs", "quant", "qat")
    names = sorted(f for f in os.listdir(root) if f.endswith(".yaml"))
    for f in names:
        ap, t = qat.build_parser()
        try:
            qat.apply_recipe(t, os.path.join(root, f))
            a = ap.parse_args(["train", "--run", "unused"])
        except SystemExit as e:
            failures.append(f"recipe {f}: {e}")
            continue
        if ("gptq" in f) != (a.w_init == "gptq"):
            failures.append(f"recipe {f}: w_init {a.w_init}")
    print(f"{len(names)} QAT recipes parse")
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as bad:
        bad.write("train:\n  w_init: gptq\n  gptq_rounds: 3\n")
        bad.flush()
        ap, t = qat.build_parser()
        try:
            qat.apply_recipe(t, bad.name)
            failures.append("a recipe with an unknown key was accepted")
        except SystemExit as e:
            print("refused:", e)


def main():
    failures = []
    check_recipes(failures)
    check_closed_form(failures)
    check_diagonal(failures)
    check_brute_force(failures)
    check_conv(failures)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
