"""Getting onto boards: board profiles, bundles, systemd units, pushing to a board."""
