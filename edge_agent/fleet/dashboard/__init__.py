"""`edge-agent dashboard`: a live web page of the fleet (topology, links, learning), read as `status` and `inspect`
read agents; needs the `dashboard` extra (aiohttp)."""
