"""Adapters to the outside world that are not telephony: trading calendar, depository bank, SMS."""
