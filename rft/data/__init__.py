"""Data for rft: one `Record` type, readers for every source format, writers, the Reason-RFT
converter (`python -m rft.data.convert`) and synthetic data sets (`python -m rft.data.synth`).

    from rft.data import load_records
    records = load_records("train.json").records
"""

from rft.data.readers import BadExample, DataError, LoadResult, load_records
from rft.data.records import Record
from rft.data.writers import write_records

__all__ = ["BadExample", "DataError", "LoadResult", "Record", "load_records", "write_records"]
