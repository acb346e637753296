"""``python -m neuroenc.report``: a sweep's report (table, intervals, plots).

The command's name is kept for users; the code is :mod:`neuroenc.analysis.report`.
"""

from neuroenc.analysis.report import main

if __name__ == "__main__":
    main()
