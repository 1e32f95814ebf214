"""python -m kubenas.cli"""
import sys

from . import main

sys.exit(main())
