"""What every service of the platform is built from: errors, ids, config, logging, db, S3, web.

Nothing domain-specific lives here; a service never imports another service.
"""
