"""`python -m jaxnas.study --config=configs/<file>.py --workdir=DIR [--config.key=value ...]`.

With no flags: the offline study (`jaxnas/study/config.py`) into `runs/study`. Rerunning continues it.
"""

from absl import app

from jaxnas import cli
from jaxnas.study import config as default_config
from jaxnas.study.loop import closing_lines, run

_CONFIG, _WORKDIR = cli.define_flags(default_config, "runs/study", "study")

if __name__ == "__main__":
    app.run(cli.main_for(run, _CONFIG, _WORKDIR, closing_lines))
