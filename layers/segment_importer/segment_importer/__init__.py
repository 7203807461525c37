"""segment_importer: import historical event exports into Segment.

One concept per module; nothing here creates AWS clients or reads settings at import time.
"""

__version__ = "0.1.0"
