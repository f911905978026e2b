"""`python -m keras_crvae.cli ARGS`: the `crvae` command (with the whole library imported first;
the console script `crvae` starts faster, through `crvae_cli`)."""

import sys

from keras_crvae.cli.main import main

sys.exit(main())
