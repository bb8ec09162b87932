"""The link bench: real agent fleets per algorithm and link, and the report of what each cost."""
