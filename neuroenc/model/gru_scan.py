"""A GRU recurrence over all positions at once, with a hand-written backward.

The ConvGRU of the default model is 1x1: at every position of the feature map the same small GRU
runs over time. Written as ``T`` calls of a 1x1 convolution plus a dozen element-wise gate ops, the
CPU spent most of the default training step in oneDNN's small convolutions, in splitting and
re-concatenating the gates and in layout copies (docs/speed.md, "The default step"). Here the
positions are rows of one matrix, each frame's hidden gates are three small matrix products
into contiguous blocks, the gates are computed in place, and the backward runs the recurrence
in reverse, accumulating the weight gradient frame by frame.
"""

from __future__ import annotations

import torch


class _GRUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, gx: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
        t = gx.shape[0]
        w = weight.view(3, -1, weight.shape[1]).transpose(1, 2)  # (3, H, H): h @ w[g] is gate g's hidden part
        states = gx.new_empty(t + 1, *h0.shape)
        states[0] = h0
        acts = torch.empty_like(gx)  # r, z and n after their nonlinearities
        ghn = gx.new_empty(t, *h0.shape)  # the hidden part of n's pre-activation, which r gates
        gh = gx.new_empty(gx.shape[1:])
        for i in range(t):
            torch.bmm(states[i].expand(3, -1, -1), w, out=gh)
            r, z, n = acts[i].unbind(0)
            torch.add(gx[i, :2], gh[:2], out=acts[i, :2]).sigmoid_()  # r and z: adjacent blocks, one op
            ghn[i] = gh[2]
            # tanh(a) = 2 sigmoid(2a) - 1: torch's CPU tanh is ~6x slower than its sigmoid
            torch.addcmul(gx[i, 2], r, gh[2], out=n).mul_(2).sigmoid_().mul_(2).sub_(1)
            # h' = (1 - z) n + z h
            torch.addcmul(n, z, states[i] - n, out=states[i + 1])
        ctx.save_for_backward(weight, states, acts, ghn)
        return states[1:]

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        weight, states, acts, ghn = ctx.saved_tensors
        w = weight.view(3, -1, weight.shape[1])  # (3, H, H): d_gate @ w[g] is its part of dh
        d_gx = torch.empty_like(acts)
        d_weight = torch.zeros_like(w)
        dh = torch.zeros_like(states[0])
        d_hn = torch.empty_like(dh)
        for i in range(acts.shape[0] - 1, -1, -1):
            dh += grad_out[i]
            r, z, n = acts[i].unbind(0)
            d_r, d_z, d_n = d_gx[i].unbind(0)
            torch.mul(dh, 1 - z, out=d_n).mul_(1 - n * n)  # through h' = (1 - z) n + z h, then tanh
            torch.mul(dh * (states[i] - n), z * (1 - z), out=d_z)
            torch.mul(d_n * ghn[i], r * (1 - r), out=d_r)
            torch.mul(d_n, r, out=d_hn)  # the gradient of n's hidden part: r gates it
            h = states[i]
            dh = dh * z
            for g, d in enumerate((d_r, d_z, d_hn)):
                dh.addmm_(d, w[g])
                d_weight[g].addmm_(d.t(), h)
        return d_gx, d_weight.view_as(weight), dh


def gru_scan(gx: torch.Tensor, weight: torch.Tensor, h0: torch.Tensor) -> torch.Tensor:
    """Run a GRU over ``T`` steps for ``N`` independent rows (positions) at once.

    ``gx (T, 3, N, H)``: each step's input pre-activations of the reset, update and candidate
    gates, bias included, in that order (PyTorch's ``nn.GRU`` order r, z, n; each gate a contiguous
    ``(N, H)`` block: slices of a ``(N, 3H)`` row are ~10x slower to compute on); ``weight (3H, H)``:
    the hidden-to-gate weights (no hidden bias: r gates ``weight_n @ h`` alone); ``h0 (N, H)``: the
    state before step 0. Returns the states after each step, ``(T, N, H)``; step t's state depends
    on steps <= t only::

        r = sigmoid(gx_r + W_r h), z = sigmoid(gx_z + W_z h), n = tanh(gx_n + r * (W_n h))
        h' = (1 - z) * n + z * h
    """
    if gx.ndim != 4 or gx.shape[1] != 3 or weight.shape != (3 * gx.shape[3], gx.shape[3]) \
            or h0.shape != gx.shape[2:]:
        raise ValueError(f"gru_scan: gx (T, 3, N, H), weight (3H, H), h0 (N, H); got {tuple(gx.shape)}, "
                         f"{tuple(weight.shape)}, {tuple(h0.shape)}")
    return _GRUScan.apply(gx.contiguous(), weight.contiguous(), h0.contiguous())
