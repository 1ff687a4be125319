"""``python -m mapreduce``: see :mod:`mapreduce.cli`."""
from mapreduce.cli import main

raise SystemExit(main())
