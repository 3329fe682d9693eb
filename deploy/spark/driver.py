"""The application spark-submit runs in the Spark image: the lakesync command line, unchanged.

    spark-submit [spark options] deploy/spark/driver.py stream --once

Everything after the script is lakesync's own arguments (`stream`, `reconcile --table people`,
`rebuild --table people`), so a job behaves the same under spark-submit as `lakesync ...` does.
Under spark-submit lakesync leaves the master and the jars to spark-submit (connectors/spark.py).
"""

from __future__ import annotations

import sys

from lakesync.cli import main

if __name__ == "__main__":
    sys.argv[0] = "lakesync"
    main()
