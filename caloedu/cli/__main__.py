import sys

from caloedu.cli import main

sys.exit(main())
