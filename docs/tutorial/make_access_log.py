"""Write a made-up web server access log for the tutorial (docs/tutorial.md).

    python docs/tutorial/make_access_log.py access.log                    # 200,000 good lines
    python docs/tutorial/make_access_log.py access.log --malformed 3      # ... and 3 broken ones

Lines are in the Common Log Format, one request each, spread over one day in time order::

    198.51.100.23 - - [12/Mar/2024:00:00:00 +0000] "GET /index.html HTTP/1.1" 200 5120

``--malformed N`` replaces N lines (evenly spread through the file) with a line cut short,
as a log rotated in the middle of a write leaves.  The output only depends on the options
(the random generator is seeded), so the tutorial's numbers are reproducible.
"""
import argparse
import random

PATHS = ["/", "/index.html", "/about", "/search", "/cart", "/checkout", "/api/items",
         "/api/login", "/static/app.js", "/static/style.css", "/favicon.ico"]
METHODS = ["GET"] * 8 + ["POST"] * 2
# Status codes and their weights: mostly 200s, some redirects and client errors, a few 5xx.
STATUSES = [200, 301, 304, 404, 500, 503]
WEIGHTS = [880, 20, 60, 36, 3, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("path", help="file to write")
    parser.add_argument("--lines", type=int, default=200_000, help="lines (default 200000)")
    parser.add_argument("--malformed", type=int, default=0, metavar="N",
                        help="cut N of the lines short (default 0)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    bad = {(i + 1) * args.lines // (args.malformed + 1) for i in range(args.malformed)}
    with open(args.path, "w") as out:
        for i in range(args.lines):
            second = i * 86_400 // args.lines        # one day, in time order
            hh, mm, ss = second // 3600, second // 60 % 60, second % 60
            ip = f"198.51.100.{rng.randrange(1, 255)}"
            status = rng.choices(STATUSES, WEIGHTS)[0]
            size = 0 if status in (301, 304) else rng.randrange(200, 20_000)
            line = (f'{ip} - - [12/Mar/2024:{hh:02d}:{mm:02d}:{ss:02d} +0000] '
                    f'"{rng.choice(METHODS)} {rng.choice(PATHS)} HTTP/1.1" {status} {size}')
            if i in bad:
                line = line[:rng.randrange(20, 40)]  # cut short: no status, no size
            out.write(line + "\n")


if __name__ == "__main__":
    main()
