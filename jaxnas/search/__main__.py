"""`python -m jaxnas.search --config=configs/<file>.py --workdir=DIR [--config.key=value ...]`.

With no flags: the offline digits search (`jaxnas/search/config.py`) into `runs/search`.
Rerunning a command on the same workdir resumes it from its latest checkpoint.
"""

from absl import app

from jaxnas import cli
from jaxnas.search import config as default_config
from jaxnas.search.loop import closing_lines, run

_CONFIG, _WORKDIR = cli.define_flags(default_config, "runs/search", "search")

if __name__ == "__main__":
    app.run(cli.main_for(run, _CONFIG, _WORKDIR, closing_lines))
