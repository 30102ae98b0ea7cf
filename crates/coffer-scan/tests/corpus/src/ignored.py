# A test fixture the team has accepted, marked inline.
FIXTURE_PASSWORD = "Kx9pL2mQ7rT4"  # coffer:ignore
