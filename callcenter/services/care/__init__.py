"""Client care: reminders, greetings, SMS, notification calls, complaints, regulatory call-backs."""
