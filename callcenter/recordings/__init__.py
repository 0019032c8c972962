"""Recordings of the simulated PBX (real WAV files, speech synthesised for both parties); the recording use cases
are ``callcenter.services.recordings``, the stores ``callcenter.adapters.recordings_*``."""
