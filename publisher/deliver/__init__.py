"""Deliver: subscribers, signed tokens, the message built once per digest, the journal that makes
delivery exactly once, and the outbox and SMTP transports."""
