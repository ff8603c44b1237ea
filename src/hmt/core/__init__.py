"""The pure trigger core: decisions only, no I/O, no asyncio, no clock reads.

Adapters feed it values (ticks, records, the time) and act on what it returns.
Prices are integers in the instrument's wire unit (see `prices`), so a
comparison at exactly the trigger price is never a float-rounding question.
"""
