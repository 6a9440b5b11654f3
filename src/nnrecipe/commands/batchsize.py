"""`nnrecipe batchsize DATA --target COL`: T17's measurement on the model `train` would build for a table,
without training it (docs/batch-size.md): throughput at batch sizes 8..1024 on this device, the gradient
noise scale, the batch size they advise and the verdict on the one the run would use."""

from __future__ import annotations

import argparse

HELP = "measure throughput and the gradient noise scale, and advise a batch size (T17)"
DESCRIPTION = ("Build the model `train` would train on DATA with these settings and, on copies, time a training "
               "step at batch sizes 8..1024 on this device and measure the gradient noise scale (McCandlish et al. "
               "2018) in a few steps; print the table, the recommended batch size with its reasons, and the verdict "
               "on the batch size the run would use (--batch-size, or the rule). Exit 0; 2 on bad input.")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..cli import _add_table_flags  # the same data, model and training flags as `doctor`

    _add_table_flags(p)
    p.add_argument("--out", metavar="FILE.json", default=None,
                   help="also write the report (the measurement, the advice and the verdict) as JSON")


def run(args: argparse.Namespace) -> int:
    from ..cli import DATA_FLAGS, _check_out, _config
    from ..config import DataConfig, ModelConfig, TrainConfig, read_config_file
    from ..io import write_json
    from ..logs import quiet
    from ..recipes.tabular import batch_sizes_table, refuse_training_settings

    # the flags typed here (a --config file shared with train may hold a run's settings)
    refuse_training_settings(_config(TrainConfig, args), "batchsize times training steps of the model without "
                             "training it")
    if args.out:
        _check_out(args.out, "file", "batchsize.json")
    file = read_config_file(args.config) if args.config else {}
    tcfg = _config(TrainConfig, args, base=file.get("train"))
    with quiet():  # the table and the advice are the output
        report, verdict, chosen = batch_sizes_table(
            args.data, args.target,
            data_config=_config(DataConfig, args, only=DATA_FLAGS, base=file.get("data"), target=args.target),
            model_config=_config(ModelConfig, args, base=file.get("model")), train_config=tcfg)
    print(report.table())
    print(f"this run's batch size: {chosen} ({'--batch-size' if tcfg.batch_size else 'the rule'})")
    print(verdict.line())
    if args.out:
        write_json(args.out, {"report": report.to_dict(), "batch_size": chosen, "verdict": verdict.to_dict()})
        print(f"report: {args.out}")
    return 0

