"""How a target-mapped Spark column becomes a PostgreSQL column, exactly.

| Spark type            | PostgreSQL type     | note                                          |
|-----------------------|---------------------|-----------------------------------------------|
| boolean               | boolean             |                                               |
| byte, short           | smallint            |                                               |
| int                   | integer             |                                               |
| long                  | bigint              |                                               |
| float                 | real                | NaN and ±Infinity kept                        |
| double                | double precision    | NaN and ±Infinity kept                        |
| decimal(p,s)          | numeric(p,s)        | exact, never a float                          |
| string, char, varchar | text                | NUL characters cannot be stored: quarantined  |
| binary                | bytea               |                                               |
| date                  | date                |                                               |
| timestamp             | timestamptz         | an instant; stored with time zone             |
| timestamp_ntz         | timestamp           | a wall-clock time without zone                |
| array, map, struct    | jsonb               | nested values as JSON                         |

Anything else (interval, variant, void) is refused at start-up, naming the column. The table is
applied to Spark schemas by `connectors/spark_types.py`; this module holds what the rest of
lakesync shares without Spark: a target column as envelopes carry it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TargetColumn:
    """One column of a target table: its name and PostgreSQL type, as carried in envelopes."""

    name: str
    pg_type: str
