"""The ports: every outside system the engine talks to, as a Protocol (with the values that cross it), in one place.

* ``telephony`` — the PBX (Asterisk over AMI, Twilio, the simulated PBX): originate, connect, play, hang up, events.
* ``bank`` — the depository bank's transfer gateway (third-party custody).
* ``sms`` — the text-message gateway.
* ``calendar`` — the exchange's trading calendar and the clock.

Adapters implement them (``callcenter/telephony``, ``callcenter/adapters``, ``callcenter/services/care/sms.py``); use cases
and the call core depend on these Protocols only.
"""
