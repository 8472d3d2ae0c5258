"""`python -m jaxnas.compare [--config=configs/<file>.py] --workdir=DIR [--config.key=value ...]`.

With no flags: every strategy on the offline digits search into `runs/compare`. Rerunning continues it.
"""

from absl import app

from jaxnas import cli
from jaxnas.compare import config as default_config
from jaxnas.compare.loop import closing_lines, run

_CONFIG, _WORKDIR = cli.define_flags(default_config, "runs/compare", "compare")

if __name__ == "__main__":
    app.run(cli.main_for(run, _CONFIG, _WORKDIR, closing_lines))
