"""edgekit.boards: board profiles, board detection and CPU features. numpy-free, stdlib only."""
