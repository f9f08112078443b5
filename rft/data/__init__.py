"""Data for rft: one `Record` type, readers for every source format, writers, train/ID/OOD splits,
image opening and synthetic data sets (`python -m rft.data.synth`). The Reason-RFT converter
renders the tasks' prompts, so it lives with them (`python -m rft.tasks.convert`).

    from rft.data import load_records
    records = load_records("train.json").records
"""

from rft.data.readers import BadExample, DataError, LoadResult, load_records
from rft.data.records import Record
from rft.data.writers import write_records

__all__ = ["BadExample", "DataError", "LoadResult", "Record", "load_records", "write_records"]
