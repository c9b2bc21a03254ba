import sys

from unitserve.cli.main import main

sys.exit(main())
