"""SendPulse actions, one module each, named as imperative verbs."""
