"""The IVR's carriers: FastAGI (panoramisk), Twilio voice webhooks, the text phone; prompt rendering."""
