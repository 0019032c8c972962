"""The hotline's use cases: flow loading and checking, the one carrier loop, the backend the IVR asks."""
