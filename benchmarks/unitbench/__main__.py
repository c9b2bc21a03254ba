import sys

from unitbench.cli import main

sys.exit(main())
