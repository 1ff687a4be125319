"""``python -m mapreduce``: see :mod:`mapreduce.cli`; ``--version`` names the active core."""
import sys

if sys.argv[1:] == ["--version"]:
    from mapreduce.info import version_text
    print(version_text())
    raise SystemExit(0)

from mapreduce.cli import main  # noqa: E402

raise SystemExit(main())
