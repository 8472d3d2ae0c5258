"""`python -m jaxnas.train --config=configs/<file>.py --workdir=DIR [--config.key=value ...]`.

With no flags: DARTS_V2 trained on the offline digits (`jaxnas/train/config.py`) into `runs/train`.
Rerunning a command on the same workdir resumes it from its latest checkpoint.
"""

from absl import app

from jaxnas import cli
from jaxnas.train import config as default_config
from jaxnas.train.loop import closing_lines, run

_CONFIG, _WORKDIR = cli.define_flags(default_config, "runs/train", "training")

if __name__ == "__main__":
    app.run(cli.main_for(run, _CONFIG, _WORKDIR, closing_lines))
