"""Resource Service: accepts MP3 uploads, stores them in S3 and announces them."""
