import sys

from semanticface.cli import main

sys.exit(main())
