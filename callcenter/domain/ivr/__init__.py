"""The IVR's pure parts: the flow model, the interpreter, numbers as spoken words (standard library only)."""
