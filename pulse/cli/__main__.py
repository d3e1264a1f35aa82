import sys

from pulse.cli import main

sys.exit(main())
