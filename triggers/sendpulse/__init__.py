"""SendPulse triggers, one module each, named in the past tense."""
