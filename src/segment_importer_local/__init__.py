"""segment_importer_local: the CLI, the local stack (moto, the embedded Segment endpoint) and template
reading. None of it runs in Lambda, so none of it is in the layer."""
