"""C7's hooks on a host's live model (nnrecipe.integrations): a step's move measured on a sample of each
weight matrix agrees with the whole matrix's."""

from __future__ import annotations

import torch
from torch import nn


def test_a_live_models_step_is_measured_on_a_sample_of_each_matrix_as_on_a_whole_copy():
    """FlowHooks(sample=N) (the doctor in a host's loop) measures how far a step moves each weight matrix
    on N of its entries instead of copying it: the ratio agrees with the whole matrix's."""
    from nnrecipe.checks.gradient_flow import FlowHooks, FlowRecord

    ratios = []
    for sample in (None, 1024):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4))  # 65,536 entries in the first
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        rec = FlowRecord()
        hooks = FlowHooks(model, opt, rec, sample=sample)
        hooks.new_step()
        loss = nn.functional.cross_entropy(model(torch.randn(64, 256)), torch.randint(0, 4, (64,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        hooks.remove()
        ratios.append(rec.update_ratio["0.weight"][0])
    whole, sampled = ratios
    assert whole > 0 and abs(sampled - whole) / whole < 0.1
