"""What the tests, benchmarks and demo run on: the whole stack as processes (`stack`, on
`processes`), a database and vhost sandbox per test module (`sandbox`), the MP3 writer (`mp3`),
the TCP fault proxy (`faultproxy`), and `make chaos` (`chaos`)."""
