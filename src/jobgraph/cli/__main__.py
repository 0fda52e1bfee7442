import sys

from jobgraph.cli.main import main

sys.exit(main())
