"""Reading export objects: formats, detection, compression, byte ranges."""
