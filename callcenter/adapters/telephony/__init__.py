"""Telephony adapters behind ``callcenter.ports.telephony``: AMI (panoramisk), the simulated PBX, Twilio."""
