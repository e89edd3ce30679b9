"""Train from the command line: a profile plus any config key as an override.

    python -m src.train --profile fast --data-dir ../shared/competition --epochs 2 --name try1
    python -m src.train --profile seed --val-size 0          # a final run on all 50,000 images
    python -m src.train --name try1 --resume                 # continue a killed run
    torchrun --standalone --nproc_per_node=2 -m src.train --profile fast   # two GPUs (DDP)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing

from torch.distributed.elastic.multiprocessing.errors import record

from .config import PROFILES, Config, make_config
from .engine import train


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=sorted(PROFILES), default=None)
    hints = typing.get_type_hints(Config)
    for f in dataclasses.fields(Config):
        if f.name == "profile":
            continue
        flag = "--" + f.name.replace("_", "-")
        kind = hints[f.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)  # X | None → X
        if base is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif f.name == "milestones":
            p.add_argument(flag, type=int, nargs="+", default=None)
        else:
            p.add_argument(flag, type=base, default=None)
    return p


@record  # under torchrun: a failing rank's traceback is reported as the job's root cause
def main(argv=None) -> None:
    args = vars(_parser().parse_args(argv))
    profile = args.pop("profile")
    if args.get("resume") and args.get("name") and profile is None:
        # a resumed run takes its own saved config, so the same flags need not be repeated
        from .paths import runs_dir
        saved = json.loads((runs_dir() / args["name"] / "config.json").read_text())
        cfg = Config.from_dict({**saved, **{k: v for k, v in args.items() if v is not None}})
    else:
        cfg = make_config(profile, **args)
    r = train(cfg)
    if r.rank != 0:  # under torchrun rank 0 alone reports
        return
    summary = {k: v for k, v in r.final.items()}
    summary.update(run_dir=str(r.run_dir), params=r.params, device=r.device, precision=r.precision,
                   train_seconds=round(r.train_seconds, 2), images_per_second=round(r.images_per_second, 1))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
