"""Getting onto boards: profiles, the cluster CA, inventories, per-board bundles and systemd units, and ssh steps that
check, flash, roll back and remove them."""
